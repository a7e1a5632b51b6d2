#!/usr/bin/env python3
# NAME
#	make_inputs.py - write the IMAP golden inputs t/golden/imap/NAME.eml
# DESCRIPTION
#	The messages are written here as text with "\n" and stored with CRLF
#	line ends (as the spool stores them), so that the offsets and sizes in
#	the references can be counted by hand. Run from anywhere; rewrites the
#	.eml files only.
import os

D = os.path.dirname(os.path.abspath(__file__))

M = {}

M['simple'] = """\
Date: Mon, 7 Feb 1994 21:52:25 -0800
From: Fred Foobar <foobar@Blurdybloop.example>
Subject: afternoon
 meeting =?UTF-8?B?5Lya6K6u?=
To: mooch@owatagu.example
Message-Id: <B27397-0100000@Blurdybloop.example>
In-Reply-To: <x@y>
MIME-Version: 1.0
Content-Type: TEXT/PLAIN; CHARSET=US-ASCII

Hello Joe, do you think we can meet at 3:30 tomorrow?
"quoted" and \\backslash\\
"""

M['mixed'] = """\
From: a@example.com
To: b@example.com
Subject: files
Content-Type: multipart/mixed; boundary="XX"

preamble
--XX
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

caf=C3=A9 =
ok
--XX
Content-Type: application/pdf; name="r.pdf"
Content-Transfer-Encoding: base64
Content-ID: <pdf1@example.com>
Content-Description: the report
Content-Disposition: attachment; filename="r.pdf"
Content-Language: en, de
Content-Location: http://example.com/r.pdf

SGVsbG8gUERG
--XX--
epilogue
"""

M['alternative'] = """\
From: "Doe, John" <john@example.com>
Subject: alt
Content-Type: multipart/alternative; boundary=b1

--b1
Content-Type: text/plain

plain
--b1
Content-Type: text/html; charset="iso-8859-1"
Content-Disposition: inline

<p>html</p>
--b1--
"""

M['nested'] = """\
From: outer@example.com
Subject: fwd
Content-Type: multipart/mixed; boundary=o

--o

see below
--o
Content-Type: message/rfc822

From: inner@example.com
Subject: inner
Content-Type: multipart/alternative; boundary=i

--i
Content-Type: text/plain

in1
--i
Content-Type: text/html

<b>in2</b>
--i--
--o--
"""

M['toprfc822'] = """\
From: wrap@example.com
Content-Type: message/rfc822

From: x@example.com
Subject: enclosed

body
"""

M['digest'] = """\
From: list@example.com
Content-Type: multipart/digest; boundary=d

--d

From: one@example.com
Subject: one

first
--d
Content-Type: text/plain

not a message
--d--
"""

M['groups'] = """\
From: "Joe Q. \\"Pub\\"" <joe@example.com>
To: A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;, undisclosed-recipients:;
Cc: <@route.test:rt@example.com>, nodomain, (comment only) 
Bcc: =?ISO-8859-1?Q?Andr=E9?= <andre@example.com>
Subject: 

x
"""

M['missing'] = """\

no header at all
"""

M['header8bit'] = ("From: 张三 <zhang@example.com>\n"
                   "Subject: 你好\n"
                   "To: ").encode('utf-8') + "李四".encode('gb18030') + b" <li@example.com>\n\nbody\n"

M['badmime'] = """\
From: a@example.com
Content-Type: multipart/mixed

no boundary parameter
"""

M['unterminated'] = """\
From: a@example.com
Content-Type: multipart/mixed; boundary=u

--u
Content-Type: text/plain

one
--u
Content-Type: application/octet-stream
Content-Transfer-Encoding: x-uuencode

begin 644 x
"""

M['nofields'] = """\
From: a@example.com
Content-Type: multipart/mixed; boundary=z

just a preamble, no parts
"""

for name, text in M.items():
    data = text if isinstance(text, bytes) else text.encode('utf-8')
    data = data.replace(b'\n', b'\r\n')
    with open(os.path.join(D, name + '.eml'), 'wb') as f:
        f.write(data)
