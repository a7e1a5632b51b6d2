#!/usr/bin/env python3
# NAME
#	make_inputs.py - write the golden MIME inputs t/golden/mime/*.in
# DESCRIPTION
#	The .in files are committed; this script documents how the encoded
#	ones (GB2312, GBK, BIG5, HZ, base64 attachments) were made, using
#	Python's own codecs as an independent encoder. Run it from anywhere;
#	then MIME_GOLDEN_UPDATE=1 t/bin/test_mime_golden.t, and read the .ref diff.
import base64, quopri, os
D=os.path.dirname(os.path.abspath(__file__)) + '/'
def w(name, data, crlf=True):
    if isinstance(data, str): data = data.encode('utf-8')
    if crlf: data = data.replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')
    open(D+name+'.in','wb').write(data)
def b64(s, enc): return base64.b64encode(s.encode(enc)).decode()
def b64lines(b):
    s = base64.b64encode(b).decode()
    return '\n'.join(s[i:i+76] for i in range(0, len(s), 76))

w('simple', """Return-Path: <alice@example.com>
From: Alice Example <alice@example.com>
To: bob@example.net
Subject: Lunch on Friday?
Date: Tue, 3 Jan 2006 15:04:05 +0800
Message-ID: <20060103150405.1234@example.com>

Hi Bob,

Are we still on for lunch on Friday?

-- 
Alice
""")

w('alternative', """From: "Shop, Online" <news@shop.example>
To: Customer <c@example.org>
Subject: =?UTF-8?Q?Caf=C3=A9_news?=
Date: 7 Feb 2011 10:00 -0500
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="alt-1"

This is a multi-part message in MIME format.
--alt-1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Caf=C3=A9 open from 8 to 18.=20
A long line that is soft-broken here =
and continues.
--alt-1
Content-Type: text/html; charset="iso-8859-1"
Content-Transfer-Encoding: quoted-printable

<p>Caf=E9</p>
--alt-1--
epilogue text
""")

att = bytes(range(256))
w('nested', """From: bob@example.net
To: alice@example.com, "Carol (work)" <carol@example.org>
Subject: report and pictures
Date: Wed, 09 Mar 2016 08:15:00 GMT
MIME-Version: 1.0
Content-Type: multipart/mixed;
 boundary="==outer=="

--==outer==
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=us-ascii

See attached.
--inner
Content-Type: text/html

<b>See attached.</b>
--inner--

--==outer==
Content-Type: application/octet-stream; name="data.bin"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="data.bin"; size=256
Content-ID: <part2@example.net>
Content-Description: all byte values
Content-MD5: 4/SHTtp1HoEW7dRfWZyqkA==

""" + b64lines(att) + """
--==outer==
Content-Type: application/msword
Content-Transfer-Encoding: base64
Content-Disposition: attachment;
 filename*0*=gb2312''%B1%A8%B8%E6;
 filename*1=".doc"
Content-Language: zh-CN
Content-Location: http://example.net/report.doc

""" + b64lines(b'\xd0\xcf\x11\xe0fake word document') + """
--==outer==
Content-Type: image/png; name="=?GB2312?B?""" + b64('图片','gb2312') + """?=.png"
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--==outer==--
""")

w('forward', """From: Dave <dave@example.com>
To: erin@example.com
Subject: Fwd: holiday plans
Date: Fri, 1 Jul 2011 12:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="fwd"

--fwd
Content-Type: text/plain

Forwarding this.
--fwd
Content-Type: message/rfc822
Content-Description: forwarded message

From: Frank <frank@example.org>
To: Dave <dave@example.com>
Subject: holiday plans
Date: Thu, 30 Jun 2011 09:30:00 -0700
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="inner-alt"

--inner-alt
Content-Type: text/plain; charset=utf-8

Let's go to Hangzhou.
--inner-alt
Content-Type: text/html; charset=utf-8

<p>Let's go to Hangzhou.</p>
--inner-alt--

--fwd--
""")

w('digest', """From: list-request@example.org
To: subscribers@example.org
Subject: Digest, Vol 1, Issue 2
Date: Mon, 2 Jan 2012 00:00:00 +0100
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="d0"

--d0
Content-Type: text/plain

Today's topics: two messages.
--d0
Content-Type: multipart/digest; boundary="d1"

--d1

From: a@example.org
Subject: first

first body
--d1
From: b@example.org
Subject: second
Content-Type: text/plain; charset=utf-8

second body
--d1
Content-Type: text/plain

explicitly typed text inside a digest
--d1--
--d0--
""")

w('gb2312', """From: =?gb2312?B?""" + b64('张三','gb2312') + """?= <zhangsan@example.cn>
To: =?GB2312?B?""" + b64('李四','gb2312') + """?= <lisi@example.cn>
Subject: =?gb2312?B?""" + b64('会议通知','gb2312') + """?=
 =?gb2312?B?""" + b64('：明天下午三点','gb2312') + """?=
Date: Sat, 15 Aug 2009 14:30:00 +0800
MIME-Version: 1.0
Content-Type: text/plain; charset="gb2312"
Content-Transfer-Encoding: base64

""" + b64lines('各位同事：\n明天下午三点在三楼会议室开会。\n'.encode('gb2312')) + "\n")

# GBK-only character 镕 (not in GB2312); and a word split in the middle of a character
gbk_subj = '朱镕基讲话'.encode('gbk')
w('gbk', b"""From: =?GBK?Q?""" + b''.join(b'=%02X' % c for c in '王五'.encode('gbk')) + b"""?= <wangwu@example.cn>
To: team@example.cn
Subject: =?GBK?B?""" + base64.b64encode(gbk_subj[:3]) + b"""?= =?GBK?B?""" + base64.b64encode(gbk_subj[3:]) + b"""?=
Date: Sun, 16 Aug 2009 09:00:00 +0800
MIME-Version: 1.0
Content-Type: text/plain; charset=GBK
Content-Transfer-Encoding: quoted-printable

""" + quopri.encodestring('镕字在GBK里，不在GB2312里。\n'.encode('gbk')) + b"\n")

w('big5', b"""From: =?big5?B?""" + base64.b64encode('陳大文'.encode('big5')) + b"""?= <chan@example.hk>
To: friends@example.tw
Subject: =?Big5?Q?""" + b''.join(b'=%02X' % c for c in '繁體中文測試'.encode('big5')) + b"""?=
Date: Mon, 17 Aug 2009 10:00:00 +0800
MIME-Version: 1.0
Content-Type: text/plain; charset=big5
Content-Transfer-Encoding: 8bit

""" + '這是一封繁體中文的信。\n'.encode('big5'))

hz_body = '中文HZ编码测试。\n第二行 with English.\n'.encode('hz')
w('hz', b"""From: hz@example.cn
To: old@example.cn
Subject: =?HZ-GB-2312?Q?""" + '你好'.encode('hz').replace(b'~', b'=7E').replace(b'{', b'=7B').replace(b'}', b'=7D') + b"""?=
Date: Tue, 18 Aug 2009 11:00:00 +0800
MIME-Version: 1.0
Content-Type: text/plain; charset=HZ-GB-2312
Content-Transfer-Encoding: 7bit

""" + hz_body + b"~~ is a tilde, and a long line ~\ncontinues.\n")

w('broken_base64', """From: x@example.com
Subject: broken base64
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

SGVsbG8g!!d29y*bGQ=
junk line here
SGVsbG8=extra
--b
Content-Type: application/octet-stream
Content-Transfer-Encoding: Base64

QUJD
R
--b--
""")

w('missing_boundary', """From: x@example.com
Subject: no final boundary
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="never-closed"

--never-closed
Content-Type: text/plain

first part
--never-closed
Content-Type: multipart/alternative; boundary="inner-open"

--inner-open
Content-Type: text/plain

the message just stops here
""")

w('garbage_boundary', """From: x@example.com
Subject: boundaries with padding and garbage
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="gb"

preamble line
--gbx starts with our boundary, so it is a delimiter followed by garbage
--gb   \t
Content-Type: text/plain

padded boundary above
-- gb is not a boundary
---gb is not one either
--gb garbage after the boundary
Content-Type: text/plain

garbage boundary above
--gb--  trailing garbage after close
epilogue
--gb
epilogue line that looks like a delimiter
""")

w('header_8bit', 'From: "Jörg Müller" <jörg@bücher.example>\nTo: 测试 <用户@例子.中国>\n'.encode('utf-8')
  + b'Subject: raw GB18030 ' + '中文主题'.encode('gb18030') + b'\n'
  + b'X-Bad: invalid \xff\xfe utf-8\n'
  + b'Content-Type: text/plain; charset=utf-8\n'
  + b'Content-Disposition: inline; filename="' + '文件.txt'.encode('gb18030') + b'"\n'
  + b'\n' + 'body in UTF-8: ünïcödé, 中文\n'.encode('utf-8') + b'invalid: \xc3\x28 \xed\xa0\x80 end\n')

w('invalid_gb18030', b"""From: x@example.com
Subject: =?GB18030?B?""" + base64.b64encode('坏'.encode('gb18030') + b'\x81\x20' + '字'.encode('gb18030') + b'\x81') + b"""?=
MIME-Version: 1.0
Content-Type: text/plain; charset=gb18030

""" + '好'.encode('gb18030') + b'\x81\x30\xff' + '的'.encode('gb18030') + b'\xfe\n' + b'\x80 lone 0x80 and truncated at end \xd6')

w('long_header', "From: x@example.com\nSubject: " + ("long subject " * 400) + "\nTo: " +
  ", ".join("user%d@example.com" % i for i in range(200)) + """
Content-Type: multipart/mixed; boundary=lh

--lh
Content-Type: text/plain
X-Long-Name-""" + "N" * 1500 + """: value

""" + ("x" * 3000) + """
--lh""" + " " * 2000 + """
Content-Type: text/plain

after a boundary padded beyond the line buffer
--lh--
""")

# bare LF, NUL bytes, header without body, body without header
w('bare_lf', b"""From: x@example.com
Subject: bare LF, NUL and empty parts
Content-Type: multipart/mixed; boundary=lf

--lf
Content-Type: text/plain
--lf

body without a header
--lf
Content-Type: application/octet-stream

NUL\x00bytes\x00here
--lf
this line is not a header field
--lf--""", crlf=False)

w('nested_prefix', """From: x@example.com
Subject: inner boundary is a prefix of the outer one
Content-Type: multipart/mixed; boundary="abc-outer"

--abc-outer
Content-Type: multipart/alternative; boundary="abc"

--abc
Content-Type: text/plain

inner one
--abc-outer
Content-Type: text/plain

outer two, closing the inner multipart
--abc-outer--
""")

w('no_boundary', """From: x@example.com
Subject: multipart without boundary, invalid content type
Content-Type: multipart/mixed

--whatever
Content-Type: text/plain

all of this is one body
--whatever--
""")

w('bad_type', """From: x@example.com
Subject: an unparsable Content-Type
Content-Type: text
Content-Transfer-Encoding: quoted-printable

default text/plain: soft=
 break, bad =ZZ escape and =4
""")

w('rfc2231', """From: x@example.com
Subject: RFC 2231 parameters
MIME-Version: 1.0
Content-Type: application/x-stuff;
 title*0*=us-ascii'en'This%20is%20even%20more%20;
 title*1*=%2A%2A%2Afun%2A%2A%2A%20;
 title*2="isn't it!";
 name*=UTF-8''%E6%96%87%E4%BB%B6.txt;
 plain=value;
 spaced = unquoted value with spaces ;
 PLAIN=duplicate

data
""")

w('addresses', """From: "Last, First" <first.last@example.com> (comment)
To: undisclosed-recipients:;, team: a@example.com, "B B" <b@example.com>;,
 <@route1,@route2:routed@example.com>, plain@example.com (Plain Name),
 =?UTF-8?B?""" + b64('王小明','utf-8') + """?= <wang@example.cn>, broken <no-at-sign>, , "quoted \\" name"@example.com
Cc: "=?gb2312?B?""" + b64('技术部','gb2312') + """?=" <tech@example.cn>
Subject: address forms
Date: 5 Nov 94 08:09 EST

body
""")

# Base64 message/rfc822 is a leaf; message with bad date and military zone
w('message_encoded', """From: x@example.com
Subject: a message/rfc822 in base64 stays a leaf
Date: Thu, 13 Feb 1969 23:32:54 -0330
Content-Type: multipart/mixed; boundary=me

--me
Content-Type: message/rfc822
Content-Transfer-Encoding: base64

""" + b64lines(b"Subject: hidden\r\n\r\nhidden body\r\n") + """
--me
Content-Type: message/rfc822

Subject: visible
Date: 32 Jan 2010 10:00:00 +0000

visible body
--me--
""")
