#!/bin/sh
# NAME
#	install-deps.sh - install the Debian packages Caiyou builds and tests with
# DESCRIPTION
#	Installs every package listed in share/debian-packages that is missing,
#	non-interactively (run as root) and without letting their packages
#	start system services, and creates the unprivileged service user
#	"caiyou" that the daemons run as. Safe to run again.
set -e
cd "$(dirname "$0")/.."
pkgs=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' share/debian-packages)
missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "install-deps: run as root to install:$missing" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	# The servers the tests use as peers (slapd, postfix, unbound, dovecot)
	# are started by the tests on loopback ports; their packages must not
	# start system services (port 25, a resolver on port 53) on this machine.
	policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		policy=/usr/sbin/policy-rc.d
	fi
	apt-get update -q
	apt-get install -y -q --no-install-recommends $missing || { rm -f $policy; exit 1; }
	rm -f $policy
fi
if [ "$(id -u)" = 0 ] && ! getent passwd caiyou >/dev/null; then
	useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin caiyou
	echo "install-deps: created service user caiyou"
fi
