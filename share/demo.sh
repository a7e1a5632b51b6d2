#!/bin/sh
# NAME
#	demo.sh - install what is missing, build, and start a demo instance
# SYNOPSIS
#	sh share/demo.sh		(as root, from the top of the source tree)
# DESCRIPTION
#	The README's first command. Installs the Debian packages, builds
#	Caiyou, creates the demo instance in ./demo (embedded directory, domain
#	demo.test with three users, a self-signed certificate for
#	mail.demo.test, unprivileged ports on 127.0.0.1) and starts it, then
#	prints how to connect. Running it again restarts the same instance.
set -e
cd "$(dirname "$0")/.."
sh share/install-deps.sh
[ -f config.mk ] || ./configure
make
ctl="bin/cyctl -d $(pwd)/demo"
if [ ! -f demo/caiyou.conf ]; then
	$ctl init --hostname mail.demo.test
	cat >>demo/caiyou.conf <<EOC
log_file = log
EOC
	$ctl domain add demo.test --max-users 1000
	$ctl user add alice@demo.test --password alice-demo --name "Alice Demo" --mobile +8613800000001
	$ctl user add bob@demo.test --password bob-demo --name "Bob Demo"
	$ctl user add carol@demo.test --password carol-demo --name "Carol Demo"
	$ctl alias add team@demo.test alice@demo.test bob@demo.test
fi
$ctl stop >/dev/null 2>&1 || true
$ctl start
cat <<EOM

Caiyou demo instance running in $(pwd)/demo (log: demo/log).
Users: alice@demo.test / alice-demo, bob@demo.test / bob-demo, carol@demo.test / carol-demo;
team@demo.test reaches alice and bob.

  SMTP (MX)        127.0.0.1:2525  STARTTLS
  submission       127.0.0.1:2587  STARTTLS + AUTH
  submission TLS   127.0.0.1:2465
  POP3             127.0.0.1:2110  STLS
  POP3 TLS         127.0.0.1:2995
  IMAP             127.0.0.1:2143  STARTTLS
  IMAP TLS         127.0.0.1:2993

Send:   swaks --server 127.0.0.1:2525 --to bob@demo.test --from alice@demo.test
Read:   openssl s_client -quiet -connect 127.0.0.1:2995 -CAfile demo/tls/cert.pem
        then: USER bob@demo.test / PASS bob-demo / LIST / RETR 1 / QUIT
        or IMAP: openssl s_client -quiet -connect 127.0.0.1:2993 -CAfile demo/tls/cert.pem
        then: a LOGIN bob@demo.test bob-demo / b SELECT INBOX / c FETCH 1 BODY[] / d LOGOUT
Manage: $ctl help
Stop:   $ctl stop
EOM
