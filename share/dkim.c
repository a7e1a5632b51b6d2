/*
 * NAME
 *	dkim - DKIM signatures (rsa-sha256) and the keys they are made with
 * SYNOPSIS
 *	#include "dkim.h"
 *
 *	s = dkim_sign_new(&opts);
 *	rc = dkim_sign_update(s, data, len, &error);	(the message, in pieces)
 *	if (dkim_sign_in_body(s)) rc = dkim_sign_from_domain(s, &domain, &error);
 *	rc = dkim_sign_final(s, key, time(NULL), ttl, &header, &error);
 *	dkim_sign_free(&s);
 *
 *	rc = dkim_sign_message(&opts, key_dir, envelope_domain, time(NULL), ttl,
 *			       reader, context, &header, &why);
 *
 *	rc = dkim_key_generate(domain, selector, bits, &key, &error);
 *	rc = dkim_key_save(dir, key, replace, group, &error);
 *	rc = dkim_key_load(dir, domain, &key, &error);	(key NULL: none)
 *	rc = dkim_key_delete(dir, domain, &error);
 *	rc = dkim_key_list(dir, &domains, &n, &error);
 *	text = dkim_key_dns_record(key);
 *	dkim_key_free(&key);
 * DESCRIPTION
 *	The signer takes a whole message as it is stored, in pieces of any
 *	size, and sees it as share/smtp_client.c will send it: every CRLF,
 *	bare CR and bare LF is one line end (CRLF on the wire) and a missing
 *	final line end is added. It keeps the header section (at most
 *	opts.header_max bytes, DKIM_FIELDS_MAX fields: a line that is
 *	neither a field nor a continuation of one is an error) and streams
 *	the body through its canonicalisation into the SHA-256 body hash, so
 *	a message of any size costs the size of its header; trailing empty
 *	lines are counted, never kept. dkim_sign_from_domain() gives the
 *	domain of the message's single From: mailbox once the header is
 *	complete (the caller picks the key by it, as OpenDKIM's signing table
 *	does, so that d= aligns with From: for DMARC). dkim_sign_final()
 *	hashes the chosen header fields and the signature field itself and
 *	signs with the key; *header_r is the DKIM-Signature field, folded at
 *	78 columns, CRLF-terminated, to be put in front of the message.
 *
 *	dkim_sign_message() does all of it for a message that reader gives
 *	in pieces: once the header is complete it loads the key of the From:
 *	domain from key_dir, and reads the body only when there is one. With
 *	envelope_domain not NULL the key is used only when the From: domain
 *	is that domain, compared exactly (case ignored): neither a parent nor
 *	a subdomain of it, nor two domains under one organizational domain
 *	(see queued.c for why); "" stands for no domain (the null sender of
 *	a message this host did not make), so nothing is signed. It returns
 *	0 with *header_r the signature, or NULL when the message is not
 *	signed: *why_r is then NULL when its From: domain has no key (the
 *	usual case), else the reason (no From:, a malformed header, a broken
 *	key file, a From: domain with a key that is not envelope_domain),
 *	for the caller to log. It returns -1 with *why_r only when reader
 *	failed.
 *
 *	Fields signed (opts.headers, else dkim_default_headers): every
 *	instance present of From, To, Cc, Subject, Date, Message-ID,
 *	Reply-To, In-Reply-To, References, MIME-Version, Content-Type and
 *	Content-Transfer-Encoding, and From once more than it occurs, so that
 *	a From: added on the way breaks the signature (RFC 6376 8.15). A
 *	message without a From: field is not signed.
 *
 *	Keys are files dkim_key_dir/DOMAIN.pem: a few "name: value" lines
 *	(selector, created, bits; RFC 7468 2 lets text precede the PEM block)
 *	and the RSA private key in PKCS #8 PEM. dkim_key_save() writes a
 *	temporary file and links (or, with replace, renames) it into place,
 *	mode 0600, or 0640 with its group set to group when group is not
 *	(gid_t)-1 (the service user's group, so the queue runner can read a
 *	key root made). dkim_key_load() refuses a key file others may read
 *	or write, a key that is not RSA or outside DKIM_BITS_MIN..MAX, and a
 *	file larger than DKIM_KEY_FILE_MAX. dkim_key_dns_record() is the TXT
 *	record to publish, "SELECTOR._domainkey.DOMAIN. IN TXT" and the value
 *	"v=DKIM1; k=rsa; p=..." cut into strings of at most 255 bytes.
 * SECURITY
 *	Messages are trusted as far as their size (the mta limited them) but
 *	their header is parsed here with its own limits. Domains and
 *	selectors that name files or DNS labels are checked by
 *	dkim_domain_check() and dkim_selector_check() (letters, digits,
 *	hyphens, dots between labels): nothing from a message reaches a path
 *	unchecked. An encrypted key file is refused, never prompted for.
 * STANDARDS
 *	RFC 6376 (DKIM: 3.4 canonicalisation, 3.5 the signature field, 3.7
 *	the hashes, 5.4 fields to sign); RFC 8301 (rsa-sha256 only, keys of
 *	1024 bits and more); RFC 8463 not (ed25519-sha256 is not made).
 */
#include "sys_defs.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "base64.h"
#include "dkim.h"
#include "rfc5322.h"
#include "strbuf.h"
#include "xmalloc.h"

#define DKIM_FOLD	78	/* columns of the signature field before folding */
#define DKIM_OUT_BUF	8192	/* canonical body bytes gathered before hashing */

static const char *const dkim_default_headers[] = {
	"from", "to", "cc", "subject", "date", "message-id", "reply-to", "in-reply-to",
	"references", "mime-version", "content-type", "content-transfer-encoding", NULL,
};

/* One header field: bytes of the header buffer, CRLF included. */
struct dkim_field {
	size_t off;
	size_t len;
	size_t name_len;	/* the name, white space before the colon excluded */
	bool used;		/* already picked for h= (bottom-up, RFC 6376 5.4.2) */
};

struct dkim_sign {
	struct dkim_sign_opts opts;
	const char *const *headers;
	/* line ends, as smtp_client.c's data encoder makes them */
	bool pending_cr;
	bool at_bol;
	/* the header section */
	bool in_body;
	STRBUF hdr;		/* the fields, line ends as CRLF */
	size_t line_start;	/* where the current header line begins in hdr */
	struct dkim_field *fields;
	size_t nfields;
	/* the body */
	bool line_has_text;	/* the current body line has something kept */
	bool pending_wsp;	/* relaxed: white space seen, SP written if text follows */
	uint64_t empty_lines;	/* line ends held back: trailing empty lines are dropped */
	uint64_t body_out;	/* canonical body bytes hashed */
	unsigned char out[DKIM_OUT_BUF];
	size_t out_len;
	EVP_MD_CTX *body_hash;
	char *error;		/* sticky: the first failure */
};

/* dkim_ssl_error - the newest OpenSSL error as text (the queue drained) */
static const char *dkim_ssl_error(void)
{
	static char buf[256];
	unsigned long e = ERR_get_error(), next;

	while ((next = ERR_get_error()) != 0)
		e = next;
	if (e == 0)
		return "unknown OpenSSL error";
	ERR_error_string_n(e, buf, sizeof(buf));
	return buf;
}

/* dkim_fail - record the first failure; returns -1 */
static int dkim_fail(DKIM_SIGN *s, const char *fmt, ...) CY_PRINTF(2, 3);
static int dkim_fail(DKIM_SIGN *s, const char *fmt, ...)
{
	va_list ap;
	STRBUF sb;

	if (s->error != NULL)
		return -1;
	strbuf_init(&sb, 128, STRBUF_UNLIMITED);
	va_start(ap, fmt);
	(void)strbuf_vprintf(&sb, fmt, ap);
	va_end(ap);
	s->error = strbuf_steal(&sb);
	strbuf_deinit(&sb);
	return -1;
}

/* dkim_canon_parse - "relaxed/simple", "simple", ...; -1 when not one of them */
int dkim_canon_parse(const char *text, struct dkim_sign_opts *opts)
{
	const char *slash = strchr(text, '/');
	size_t hlen = slash ? (size_t)(slash - text) : strlen(text);
	const char *body = slash ? slash + 1 : "simple";	/* RFC 6376 3.5 c= */

	if (hlen == 7 && strncmp(text, "relaxed", 7) == 0)
		opts->header_canon = DKIM_CANON_RELAXED;
	else if (hlen == 6 && strncmp(text, "simple", 6) == 0)
		opts->header_canon = DKIM_CANON_SIMPLE;
	else
		return -1;
	if (strcmp(body, "relaxed") == 0)
		opts->body_canon = DKIM_CANON_RELAXED;
	else if (strcmp(body, "simple") == 0)
		opts->body_canon = DKIM_CANON_SIMPLE;
	else
		return -1;
	return 0;
}

/* dkim_canon_name - "relaxed" or "simple" */
static const char *dkim_canon_name(enum dkim_canon c)
{
	return c == DKIM_CANON_RELAXED ? "relaxed" : "simple";
}

/*
 * dkim_canon_header - one field (name, colon, value, line ends) in canonical
 * form, with its CRLF, appended to out (RFC 6376 3.4.1, 3.4.2)
 */
int dkim_canon_header(STRBUF *out, enum dkim_canon canon, const char *field, size_t len)
{
	const char *colon = memchr(field, ':', len);
	size_t name_len, i;
	bool started = false, pending_sp = false;

	if (canon == DKIM_CANON_SIMPLE)
		return strbuf_append(out, field, len);
	if (colon == NULL)
		return -1;
	name_len = (size_t)(colon - field);
	while (name_len > 0 && (field[name_len - 1] == ' ' || field[name_len - 1] == '\t'))
		name_len--;
	for (i = 0; i < name_len; i++)
		if (strbuf_putc(out, tolower((unsigned char)field[i])) < 0)
			return -1;
	if (strbuf_putc(out, ':') < 0)
		return -1;
	for (i = (size_t)(colon - field) + 1; i < len; i++) {
		char c = field[i];

		if (c == '\r' || c == '\n')	/* unfolded */
			continue;
		if (c == ' ' || c == '\t') {
			pending_sp = started;
			continue;
		}
		if (pending_sp && strbuf_putc(out, ' ') < 0)
			return -1;
		if (strbuf_putc(out, c) < 0)
			return -1;
		started = true;
		pending_sp = false;
	}
	return strbuf_append(out, "\r\n", 2);
}

/* dkim_sign_new - a signer for one message */
DKIM_SIGN *dkim_sign_new(const struct dkim_sign_opts *opts)
{
	DKIM_SIGN *s = xcalloc(1, sizeof(*s));

	s->opts = *opts;
	if (s->opts.header_max == 0)
		s->opts.header_max = DKIM_HEADER_MAX;
	s->headers = opts->headers ? opts->headers : dkim_default_headers;
	s->at_bol = true;
	strbuf_init(&s->hdr, 4096, s->opts.header_max);
	if ((s->body_hash = EVP_MD_CTX_new()) == NULL
	    || EVP_DigestInit_ex(s->body_hash, EVP_sha256(), NULL) != 1)
		(void)dkim_fail(s, "SHA-256: %s", dkim_ssl_error());
	return s;
}

/* dkim_sign_free - release a signer and clear the pointer */
void dkim_sign_free(DKIM_SIGN **sp)
{
	DKIM_SIGN *s = *sp;

	if (s == NULL)
		return;
	strbuf_deinit(&s->hdr);
	free(s->fields);
	EVP_MD_CTX_free(s->body_hash);
	free(s->error);
	free(s);
	*sp = NULL;
}

/* dkim_body_flush - hash the canonical bytes gathered */
static void dkim_body_flush(DKIM_SIGN *s)
{
	if (s->out_len > 0 && EVP_DigestUpdate(s->body_hash, s->out, s->out_len) != 1)
		(void)dkim_fail(s, "SHA-256: %s", dkim_ssl_error());
	s->body_out += s->out_len;
	s->out_len = 0;
}

/* dkim_body_put - canonical body bytes, towards the hash */
static void dkim_body_put(DKIM_SIGN *s, const char *p, size_t len)
{
	while (len > 0) {
		size_t n = sizeof(s->out) - s->out_len;

		if (n > len)
			n = len;
		memcpy(s->out + s->out_len, p, n);
		s->out_len += n;
		p += n;
		len -= n;
		if (s->out_len == sizeof(s->out))
			dkim_body_flush(s);
	}
}

/* dkim_body_text_starts - the first kept byte of a line: the held-back line ends go out */
static void dkim_body_text_starts(DKIM_SIGN *s)
{
	for (; s->empty_lines > 0; s->empty_lines--)
		dkim_body_put(s, "\r\n", 2);
	s->line_has_text = true;
}

/* dkim_body_text - bytes of a body line without line ends (RFC 6376 3.4.3, 3.4.4) */
static void dkim_body_text(DKIM_SIGN *s, const char *p, size_t len)
{
	size_t i, j;

	if (s->opts.body_canon == DKIM_CANON_SIMPLE) {
		if (len > 0 && !s->line_has_text)
			dkim_body_text_starts(s);
		dkim_body_put(s, p, len);
		return;
	}
	for (i = 0; i < len; i = j) {
		if (p[i] == ' ' || p[i] == '\t') {
			s->pending_wsp = true;
			j = i + 1;
			continue;
		}
		if (!s->line_has_text)
			dkim_body_text_starts(s);
		if (s->pending_wsp)
			dkim_body_put(s, " ", 1);
		s->pending_wsp = false;
		for (j = i; j < len && p[j] != ' ' && p[j] != '\t'; j++)
			;
		dkim_body_put(s, p + i, j - i);
	}
}

/* dkim_body_eol - the end of a body line */
static void dkim_body_eol(DKIM_SIGN *s)
{
	s->pending_wsp = false;		/* relaxed: white space at the end of a line goes */
	if (s->line_has_text) {
		dkim_body_put(s, "\r\n", 2);
		s->line_has_text = false;
	} else {
		s->empty_lines++;
	}
}

/* dkim_header_eol - the end of a header line: a field, a continuation or the end */
static int dkim_header_eol(DKIM_SIGN *s)
{
	const char *line = s->hdr.data + s->line_start;
	size_t len = s->hdr.len - s->line_start, n;

	if (len == 0) {
		s->in_body = true;
		return 0;
	}
	if (line[0] == ' ' || line[0] == '\t') {
		if (s->nfields == 0)
			return dkim_fail(s, "the header begins with a continuation line");
	} else {
		for (n = 0; n < len && line[n] != ':'; n++)
			if ((unsigned char)line[n] <= 32 || (unsigned char)line[n] >= 127)
				break;
		while (n < len && (line[n] == ' ' || line[n] == '\t'))	/* obsolete "Name :" */
			n++;
		if (n == 0 || n == len || line[n] != ':')
			return dkim_fail(s, "malformed header line %zu", s->nfields + 1);
		if (s->nfields == DKIM_FIELDS_MAX)
			return dkim_fail(s, "more than %d header fields", DKIM_FIELDS_MAX);
		if (s->nfields % 64 == 0)
			s->fields = xreallocarray(s->fields, s->nfields + 64, sizeof(*s->fields));
		s->fields[s->nfields].off = s->line_start;
		s->fields[s->nfields].name_len = (size_t)((const char *)memchr(line, ':', len) - line);
		while (s->fields[s->nfields].name_len > 0
		       && (line[s->fields[s->nfields].name_len - 1] == ' '
			   || line[s->fields[s->nfields].name_len - 1] == '\t'))
			s->fields[s->nfields].name_len--;
		s->fields[s->nfields].used = false;
		s->nfields++;
	}
	if (strbuf_append(&s->hdr, "\r\n", 2) < 0)
		return dkim_fail(s, "header section larger than %zu bytes", s->opts.header_max);
	s->fields[s->nfields - 1].len = s->hdr.len - s->fields[s->nfields - 1].off;
	s->line_start = s->hdr.len;
	return 0;
}

/* dkim_text - bytes of a line without line ends */
static void dkim_text(DKIM_SIGN *s, const char *p, size_t len)
{
	s->at_bol = false;
	if (s->in_body)
		dkim_body_text(s, p, len);
	else if (strbuf_append(&s->hdr, p, len) < 0)
		(void)dkim_fail(s, "header section larger than %zu bytes", s->opts.header_max);
}

/* dkim_eol - one line end */
static void dkim_eol(DKIM_SIGN *s)
{
	s->at_bol = true;
	if (s->in_body)
		dkim_body_eol(s);
	else
		(void)dkim_header_eol(s);
}

/* dkim_sign_update - the next piece of the message */
int dkim_sign_update(DKIM_SIGN *s, const void *data, size_t len, char **error_r)
{
	const char *p = data;
	size_t i = 0, j;

	while (i < len && s->error == NULL) {
		if (s->pending_cr) {	/* CR then anything: one line end; CRLF stays one */
			s->pending_cr = false;
			dkim_eol(s);
			if (p[i] == '\n') {
				i++;
				continue;
			}
		}
		if (p[i] == '\r') {
			s->pending_cr = true;
			i++;
		} else if (p[i] == '\n') {
			dkim_eol(s);
			i++;
		} else {
			for (j = i; j < len && p[j] != '\r' && p[j] != '\n'; j++)
				;
			dkim_text(s, p + i, j - i);
			i = j;
		}
	}
	if (s->error != NULL) {
		*error_r = xstrdup(s->error);
		return -1;
	}
	return 0;
}

/* dkim_sign_in_body - is the header section complete? */
bool dkim_sign_in_body(const DKIM_SIGN *s)
{
	return s->in_body;
}

/* dkim_finish_input - the line end the encoder adds; the header ends if it had not */
static void dkim_finish_input(DKIM_SIGN *s)
{
	if (s->pending_cr) {
		s->pending_cr = false;
		dkim_eol(s);
	}
	if (!s->at_bol)
		dkim_eol(s);
	if (!s->in_body && s->error == NULL)
		(void)dkim_header_eol(s);	/* an empty line: a message with no body */
	s->in_body = true;
}

/* dkim_field_is - does field f have this name (case-insensitive)? */
static bool dkim_field_is(const DKIM_SIGN *s, const struct dkim_field *f, const char *name)
{
	return strlen(name) == f->name_len && strncasecmp(s->hdr.data + f->off, name, f->name_len) == 0;
}

/* dkim_sign_from_domain - the domain of the single From: mailbox, lower case */
int dkim_sign_from_domain(DKIM_SIGN *s, char **domain_r, char **error_r)
{
	struct rfc5322_addr *list = NULL;
	const struct dkim_field *from = NULL;
	const char *v;
	char *d;
	int n = 0;

	if (s->error != NULL) {
		*error_r = xstrdup(s->error);
		return -1;
	}
	if (!s->in_body) {
		*error_r = xstrdup("the header section is not complete");
		return -1;
	}
	for (size_t i = 0; i < s->nfields; i++) {
		if (dkim_field_is(s, &s->fields[i], "from")) {
			from = &s->fields[i];
			n++;
		}
	}
	if (n != 1) {
		*error_r = xstrdup(n == 0 ? "no From: field" : "more than one From: field");
		return -1;
	}
	v = s->hdr.data + from->off + from->name_len;
	v = (const char *)memchr(v, ':', from->len - from->name_len) + 1;
	n = rfc5322_addr_parse(v, from->len - (size_t)(v - (s->hdr.data + from->off)), NULL, &list);
	if (n != 1 || list->kind != RFC5322_ADDR_MAILBOX || list->invalid || list->domain == NULL) {
		rfc5322_addr_free(&list);
		*error_r = xstrdup("From: is not a single mailbox with a domain");
		return -1;
	}
	d = xstrdup(list->domain);
	rfc5322_addr_free(&list);
	for (char *c = d; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	if (dkim_domain_check(d, error_r) < 0) {
		free(d);
		return -1;
	}
	*domain_r = d;
	return 0;
}

/* dkim_fold - append a piece of the signature field, folding before it when the line is full */
static void dkim_fold(STRBUF *sig, size_t *col, const char *piece, bool space)
{
	size_t len = strlen(piece);

	if (*col + (space ? 1 : 0) + len > DKIM_FOLD) {
		(void)strbuf_append(sig, "\r\n\t", 3);
		*col = 8;
	} else if (space) {
		(void)strbuf_putc(sig, ' ');
		(*col)++;
	}
	(void)strbuf_puts(sig, piece);
	*col += len;
}

/* dkim_sign_final - hash the fields, sign, and make the DKIM-Signature field */
int dkim_sign_final(DKIM_SIGN *s, const struct dkim_key *key, time_t now, unsigned ttl,
		    char **header_r, char **error_r)
{
	unsigned char md[EVP_MAX_MD_SIZE], *sigbytes = NULL;
	unsigned int mdlen = 0;
	size_t siglen = 0, col, nh = 0, hmax, i, k;
	bool from_listed = false;
	const char **h;
	STRBUF sig, tmp, b64;
	EVP_MD_CTX *ctx = NULL;
	char piece[512];
	int rc = -1;

	dkim_finish_input(s);
	if (s->error == NULL && s->opts.body_canon == DKIM_CANON_SIMPLE && s->body_out == 0
	    && s->out_len == 0)
		dkim_body_put(s, "\r\n", 2);	/* RFC 6376 3.4.3: an empty body is one CRLF */
	dkim_body_flush(s);
	if (s->error == NULL && EVP_DigestFinal_ex(s->body_hash, md, &mdlen) != 1)
		(void)dkim_fail(s, "SHA-256: %s", dkim_ssl_error());
	if (s->error != NULL) {
		*error_r = xstrdup(s->error);
		return -1;
	}

	/* h=: every instance present of each listed name, From once more */
	hmax = s->nfields + 2;
	h = xcalloc(hmax, sizeof(*h));
	for (const char *const *name = s->headers; *name != NULL; name++) {
		bool is_from = strcasecmp(*name, "from") == 0, from_seen = false;

		from_listed |= is_from;
		for (i = 0; i < s->nfields && nh + 1 < hmax; i++) {
			if (dkim_field_is(s, &s->fields[i], *name)) {
				h[nh++] = *name;
				from_seen |= is_from;
			}
		}
		if (is_from && !from_seen) {
			free(h);
			*error_r = xstrdup("no From: field");
			return -1;
		}
	}
	if (!from_listed) {	/* RFC 6376 5.4: From MUST be signed */
		free(h);
		*error_r = xstrdup("the fields to sign do not include From");
		return -1;
	}
	h[nh++] = "from";	/* over-signed: a From: added later breaks the signature */

	strbuf_init(&sig, 1024, STRBUF_UNLIMITED);
	strbuf_init(&tmp, 1024, STRBUF_UNLIMITED);
	strbuf_init(&b64, 1024, STRBUF_UNLIMITED);
	(void)strbuf_puts(&sig, "DKIM-Signature:");
	col = sig.len;
	dkim_fold(&sig, &col, "v=1;", true);
	dkim_fold(&sig, &col, "a=rsa-sha256;", true);
	snprintf(piece, sizeof(piece), "c=%s/%s;", dkim_canon_name(s->opts.header_canon),
		 dkim_canon_name(s->opts.body_canon));
	dkim_fold(&sig, &col, piece, true);
	snprintf(piece, sizeof(piece), "d=%s;", key->domain);
	dkim_fold(&sig, &col, piece, true);
	snprintf(piece, sizeof(piece), "s=%s;", key->selector);
	dkim_fold(&sig, &col, piece, true);
	snprintf(piece, sizeof(piece), "t=%lld;", (long long)now);
	dkim_fold(&sig, &col, piece, true);
	if (ttl > 0) {
		snprintf(piece, sizeof(piece), "x=%lld;", (long long)now + ttl);
		dkim_fold(&sig, &col, piece, true);
	}
	for (i = 0; i < nh; i++) {
		snprintf(piece, sizeof(piece), "%s%s%s", i == 0 ? "h=" : "", h[i],
			 i + 1 < nh ? ":" : ";");
		dkim_fold(&sig, &col, piece, i == 0);
	}
	(void)base64_encode(&b64, md, mdlen);
	snprintf(piece, sizeof(piece), "bh=%s;", b64.data);
	dkim_fold(&sig, &col, piece, true);
	dkim_fold(&sig, &col, "b=", true);

	/* the header hash: the fields bottom-up per name, then this field without b='s value */
	if ((ctx = EVP_MD_CTX_new()) == NULL
	    || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key->pkey) != 1) {
		*error_r = xasprintf("signing with the key of %s: %s", key->domain, dkim_ssl_error());
		goto out;
	}
	for (i = 0; i < nh; i++) {
		for (k = s->nfields; k-- > 0;) {
			struct dkim_field *f = &s->fields[k];

			if (f->used || !dkim_field_is(s, f, h[i]))
				continue;
			f->used = true;
			strbuf_reset(&tmp);
			if (dkim_canon_header(&tmp, s->opts.header_canon, s->hdr.data + f->off, f->len) < 0
			    || EVP_DigestSignUpdate(ctx, tmp.data, tmp.len) != 1) {
				*error_r = xasprintf("hashing the header: %s", dkim_ssl_error());
				goto out;
			}
			break;
		}
	}
	strbuf_reset(&tmp);
	(void)dkim_canon_header(&tmp, s->opts.header_canon, sig.data, sig.len);
	if (s->opts.header_canon == DKIM_CANON_RELAXED)
		strbuf_truncate(&tmp, tmp.len - 2);	/* hashed without its CRLF (3.7) */
	if (EVP_DigestSignUpdate(ctx, tmp.data, tmp.len) != 1
	    || EVP_DigestSignFinal(ctx, NULL, &siglen) != 1) {
		*error_r = xasprintf("signing: %s", dkim_ssl_error());
		goto out;
	}
	sigbytes = xmalloc(siglen);
	if (EVP_DigestSignFinal(ctx, sigbytes, &siglen) != 1) {
		*error_r = xasprintf("signing: %s", dkim_ssl_error());
		goto out;
	}
	strbuf_reset(&b64);
	(void)base64_encode(&b64, sigbytes, siglen);
	for (i = 0; i < b64.len;) {
		size_t room = col < DKIM_FOLD ? DKIM_FOLD - col : 0;

		if (room < 8) {
			(void)strbuf_append(&sig, "\r\n\t", 3);
			col = 8;
			continue;
		}
		if (room > b64.len - i)
			room = b64.len - i;
		(void)strbuf_append(&sig, b64.data + i, room);
		col += room;
		i += room;
	}
	(void)strbuf_append(&sig, "\r\n", 2);
	*header_r = strbuf_steal(&sig);
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	free(sigbytes);
	free(h);
	strbuf_deinit(&sig);
	strbuf_deinit(&tmp);
	strbuf_deinit(&b64);
	if (rc < 0)
		ERR_clear_error();
	return rc;
}

/* dkim_sign_key - the From: domain's key, if it may sign; false: unsigned (*why_r maybe set) */
static bool dkim_sign_key(DKIM_SIGN *s, const char *key_dir, const char *envelope_domain,
			  char **domain_r, struct dkim_key **key_r, char **why_r)
{
	if (dkim_sign_from_domain(s, domain_r, why_r) < 0
	    || dkim_key_load(key_dir, *domain_r, key_r, why_r) < 0 || *key_r == NULL)
		return false;
	if (envelope_domain != NULL && strcasecmp(*domain_r, envelope_domain) != 0) {
		if (*envelope_domain == '\0')
			*why_r = xasprintf("the From: domain %s has a key but the envelope sender "
					   "is null", *domain_r);
		else
			*why_r = xasprintf("the From: domain %s is not the envelope sender's "
					   "domain %s", *domain_r, envelope_domain);
		dkim_key_free(key_r);
		return false;
	}
	return true;
}

/* dkim_sign_message - read a message and sign it with the key of its From: domain */
int dkim_sign_message(const struct dkim_sign_opts *opts, const char *key_dir,
		      const char *envelope_domain, time_t now, unsigned ttl, dkim_reader reader,
		      void *context, char **header_r, char **why_r)
{
	DKIM_SIGN *s = dkim_sign_new(opts);
	struct dkim_key *key = NULL;
	char *domain = NULL, *error = NULL;
	const void *data;
	bool looked = false;
	ssize_t n;
	int rc = 0;

	*header_r = NULL;
	*why_r = NULL;
	while ((n = reader(context, &data, &error)) > 0) {
		if (dkim_sign_update(s, data, (size_t)n, why_r) < 0)
			goto out;
		if (!looked && dkim_sign_in_body(s)) {
			looked = true;
			if (!dkim_sign_key(s, key_dir, envelope_domain, &domain, &key, why_r))
				goto out;	/* not signed; the body need not be read */
		}
	}
	if (n < 0) {
		*why_r = error;
		rc = -1;
		goto out;
	}
	if (!looked) {	/* a message that is all header: the key is chosen at its end */
		dkim_finish_input(s);
		if (!dkim_sign_key(s, key_dir, envelope_domain, &domain, &key, why_r))
			goto out;
	}
	(void)dkim_sign_final(s, key, now, ttl, header_r, why_r);
out:
	dkim_key_free(&key);
	free(domain);
	dkim_sign_free(&s);
	return rc;
}

/*
 * Keys.
 */

/* dkim_label_ok - one DNS label: letters, digits, hyphens inside, 1..63 */
static bool dkim_label_ok(const char *p, size_t len)
{
	if (len == 0 || len > 63 || p[0] == '-' || p[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)p[i]) && p[i] != '-')
			return false;
	return true;
}

/* dkim_name_ok - labels separated by single dots; how many in *labels_r */
static bool dkim_name_ok(const char *name, size_t max, int *labels_r)
{
	const char *p = name, *dot;
	size_t len = strlen(name);

	*labels_r = 0;
	if (len == 0 || len > max)
		return false;
	for (;;) {
		dot = strchr(p, '.');
		if (!dkim_label_ok(p, dot ? (size_t)(dot - p) : strlen(p)))
			return false;
		(*labels_r)++;
		if (dot == NULL)
			return true;
		p = dot + 1;
	}
}

/* dkim_domain_check - a domain a key may be for: a host name of two labels or more */
int dkim_domain_check(const char *domain, char **error_r)
{
	int labels;

	if (!dkim_name_ok(domain, 253, &labels) || labels < 2) {
		*error_r = xasprintf("bad domain \"%.300s\": a host name such as example.com", domain);
		return -1;
	}
	return 0;
}

/* dkim_selector_check - a selector: DNS labels, at most 63 bytes in all */
int dkim_selector_check(const char *selector, char **error_r)
{
	int labels;

	if (!dkim_name_ok(selector, 63, &labels)) {
		*error_r = xasprintf("bad selector \"%.300s\": letters, digits, hyphens and dots, "
				     "at most 63 characters", selector);
		return -1;
	}
	return 0;
}

/* dkim_key_path - dir/domain.pem; caller frees */
static char *dkim_key_path(const char *dir, const char *domain)
{
	return xasprintf("%s/%s.pem", dir, domain);
}

/* dkim_key_free - release a key and clear the pointer */
void dkim_key_free(struct dkim_key **kp)
{
	struct dkim_key *k = *kp;

	if (k == NULL)
		return;
	free(k->domain);
	free(k->selector);
	EVP_PKEY_free(k->pkey);
	free(k);
	*kp = NULL;
}

/* dkim_key_generate - a new RSA key for domain and selector */
int dkim_key_generate(const char *domain, const char *selector, unsigned bits,
		      struct dkim_key **key_r, char **error_r)
{
	struct dkim_key *k;
	EVP_PKEY *pkey;

	if (dkim_domain_check(domain, error_r) < 0 || dkim_selector_check(selector, error_r) < 0)
		return -1;
	if (bits < DKIM_BITS_MIN || bits > DKIM_BITS_MAX) {
		*error_r = xasprintf("bad key size %u: %d to %d bits", bits, DKIM_BITS_MIN,
				     DKIM_BITS_MAX);
		return -1;
	}
	if ((pkey = EVP_RSA_gen(bits)) == NULL) {
		*error_r = xasprintf("generating an RSA key: %s", dkim_ssl_error());
		return -1;
	}
	k = xcalloc(1, sizeof(*k));
	k->domain = xstrdup(domain);
	for (char *c = k->domain; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	k->selector = xstrdup(selector);
	k->bits = bits;
	k->created = time(NULL);
	k->pkey = pkey;
	*key_r = k;
	return 0;
}

/* dkim_key_save - write the key file: a temporary file linked or renamed into place */
int dkim_key_save(const char *dir, const struct dkim_key *key, bool replace, gid_t group,
		  char **error_r)
{
	char *path = dkim_key_path(dir, key->domain), *tmp = NULL, *pem = NULL;
	BIO *bio = NULL;
	STRBUF text;
	long pemlen;
	int fd = -1, rc = -1;

	strbuf_init(&text, 4096, STRBUF_UNLIMITED);
	tmp = xasprintf("%s/.%s.pem.%ld", dir, key->domain, (long)getpid());
	if ((bio = BIO_new(BIO_s_mem())) == NULL
	    || PEM_write_bio_PrivateKey(bio, key->pkey, NULL, NULL, 0, NULL, NULL) != 1
	    || (pemlen = BIO_get_mem_data(bio, &pem)) <= 0) {
		*error_r = xasprintf("writing the key as PEM: %s", dkim_ssl_error());
		goto out;
	}
	(void)strbuf_printf(&text, "# DKIM signing key of %s (cyctl dkim keygen); keep it secret.\n"
			    "selector: %s\ncreated: %lld\nbits: %u\n", key->domain, key->selector,
			    (long long)key->created, key->bits);
	(void)strbuf_append(&text, pem, (size_t)pemlen);
	(void)unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
		*error_r = xasprintf("create %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (group != (gid_t)-1 && (fchown(fd, (uid_t)-1, group) < 0 || fchmod(fd, 0640) < 0)) {
		*error_r = xasprintf("set the group of %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (write(fd, text.data, text.len) != (ssize_t)text.len || fsync(fd) < 0) {
		*error_r = xasprintf("write %s: %s", tmp, strerror(errno ? errno : EIO));
		goto out;
	}
	if (replace ? rename(tmp, path) < 0 : link(tmp, path) < 0) {
		if (errno == EEXIST)
			*error_r = xasprintf("%s has a key already (%s)", key->domain, path);
		else
			*error_r = xasprintf("install %s: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0) {
		close(fd);
		(void)unlink(tmp);	/* after link(), or a failure; gone after rename() */
	}
	OPENSSL_cleanse(text.data, text.len);
	strbuf_deinit(&text);
	BIO_free(bio);
	free(tmp);
	free(path);
	return rc;
}

/* dkim_no_passphrase - never prompt for an encrypted key */
static int dkim_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* dkim_key_parse - the key file's text: its "name: value" lines and the PEM key */
static int dkim_key_parse(const char *path, const char *text, size_t len, struct dkim_key *k,
			  char **error_r)
{
	const char *p = text, *end = text + len, *nl;
	BIO *bio;
	char *e = NULL;

	while (p < end && strncmp(p, "-----BEGIN", 10) != 0) {
		size_t n;

		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (n > 10 && strncmp(p, "selector: ", 10) == 0 && k->selector == NULL)
			k->selector = xstrndup(p + 10, n - 10);
		else if (n > 9 && strncmp(p, "created: ", 9) == 0)
			k->created = (time_t)strtoll(p + 9, NULL, 10);
		p = nl ? nl + 1 : end;
	}
	if (k->selector == NULL || dkim_selector_check(k->selector, &e) < 0) {
		*error_r = xasprintf("%s: %s", path, e ? e : "no \"selector:\" line");
		free(e);
		return -1;
	}
	if ((bio = BIO_new_mem_buf(text, (int)len)) == NULL) {
		*error_r = xasprintf("%s: %s", path, dkim_ssl_error());
		return -1;
	}
	k->pkey = PEM_read_bio_PrivateKey(bio, NULL, dkim_no_passphrase, NULL);
	BIO_free(bio);
	if (k->pkey == NULL) {
		*error_r = xasprintf("%s: no usable private key: %s", path, dkim_ssl_error());
		return -1;
	}
	if (EVP_PKEY_get_base_id(k->pkey) != EVP_PKEY_RSA) {
		*error_r = xasprintf("%s: not an RSA key", path);
		return -1;
	}
	k->bits = (unsigned)EVP_PKEY_get_bits(k->pkey);
	if (k->bits < DKIM_BITS_MIN || k->bits > DKIM_BITS_MAX) {
		*error_r = xasprintf("%s: a key of %u bits (%d to %d allowed)", path, k->bits,
				     DKIM_BITS_MIN, DKIM_BITS_MAX);
		return -1;
	}
	return 0;
}

/* dkim_key_load - the key of domain; 0 with *key_r NULL when it has none */
int dkim_key_load(const char *dir, const char *domain, struct dkim_key **key_r, char **error_r)
{
	char *path, *text = NULL;
	struct dkim_key *k = NULL;
	struct stat st;
	ssize_t n;
	int fd, rc = -1;

	*key_r = NULL;
	if (dkim_domain_check(domain, error_r) < 0)
		return -1;
	path = dkim_key_path(dir, domain);
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		if (errno == ENOENT) {
			free(path);
			return 0;
		}
		*error_r = xasprintf("open %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*error_r = xasprintf("%s: not a regular file", path);
	} else if (st.st_mode & (S_IROTH | S_IWOTH)) {
		*error_r = xasprintf("%s: others may read or write it (chmod o-rwx %s)", path, path);
	} else if (st.st_size <= 0 || st.st_size > DKIM_KEY_FILE_MAX) {
		*error_r = xasprintf("%s: %lld bytes (at most %d)", path, (long long)st.st_size,
				     DKIM_KEY_FILE_MAX);
	} else {
		text = xmalloc((size_t)st.st_size + 1);
		n = read(fd, text, (size_t)st.st_size);
		if (n != (ssize_t)st.st_size) {
			*error_r = xasprintf("read %s: %s", path, n < 0 ? strerror(errno) : "short read");
		} else {
			text[n] = '\0';
			k = xcalloc(1, sizeof(*k));
			k->domain = xstrdup(domain);
			if (dkim_key_parse(path, text, (size_t)n, k, error_r) == 0) {
				*key_r = k;
				k = NULL;
				rc = 0;
			}
		}
	}
	close(fd);
	if (text != NULL) {
		OPENSSL_cleanse(text, (size_t)st.st_size);
		free(text);
	}
	dkim_key_free(&k);
	free(path);
	ERR_clear_error();
	return rc;
}

/* dkim_key_delete - remove the key file of domain */
int dkim_key_delete(const char *dir, const char *domain, char **error_r)
{
	char *path;

	if (dkim_domain_check(domain, error_r) < 0)
		return -1;
	path = dkim_key_path(dir, domain);
	if (unlink(path) < 0) {
		*error_r = errno == ENOENT ? xasprintf("%s has no DKIM key", domain)
					   : xasprintf("remove %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	free(path);
	return 0;
}

/* dkim_strcmp - qsort order of domain names */
static int dkim_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* dkim_key_list - the domains with a key file, sorted; a missing dir is an empty list */
int dkim_key_list(const char *dir, char ***domains_r, size_t *n_r, char **error_r)
{
	char **v = NULL, *name, *e;
	size_t n = 0;
	struct dirent *de;
	DIR *d;

	*domains_r = NULL;
	*n_r = 0;
	if ((d = opendir(dir)) == NULL) {
		if (errno == ENOENT)
			return 0;
		*error_r = xasprintf("open %s: %s", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (de->d_name[0] == '.' || len < 5 || strcmp(de->d_name + len - 4, ".pem") != 0)
			continue;
		name = xstrndup(de->d_name, len - 4);
		e = NULL;
		if (dkim_domain_check(name, &e) < 0) {
			free(e);
			free(name);
			continue;
		}
		if (n % 32 == 0)
			v = xreallocarray(v, n + 32, sizeof(*v));
		v[n++] = name;
	}
	closedir(d);
	if (n > 0)
		qsort(v, n, sizeof(*v), dkim_strcmp);
	*domains_r = v;
	*n_r = n;
	return 0;
}

/* dkim_key_dns_value - "v=DKIM1; k=rsa; p=..." (the public key, SubjectPublicKeyInfo) */
char *dkim_key_dns_value(const struct dkim_key *key)
{
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(key->pkey, &der);
	char *value;
	STRBUF sb;

	strbuf_init(&sb, 1024, STRBUF_UNLIMITED);
	(void)strbuf_puts(&sb, "v=DKIM1; k=rsa; p=");
	if (len > 0)
		(void)base64_encode(&sb, der, (size_t)len);
	OPENSSL_free(der);
	value = strbuf_steal(&sb);
	strbuf_deinit(&sb);
	return value;
}

/* dkim_key_dns_record - the TXT record to publish, strings of at most 255 bytes */
char *dkim_key_dns_record(const struct dkim_key *key)
{
	char *value = dkim_key_dns_value(key);
	size_t len = strlen(value);
	STRBUF sb;

	strbuf_init(&sb, 1024, STRBUF_UNLIMITED);
	(void)strbuf_printf(&sb, "%s._domainkey.%s. IN TXT", key->selector, key->domain);
	for (size_t i = 0; i < len; i += 255)
		(void)strbuf_printf(&sb, " \"%.*s\"", (int)(len - i < 255 ? len - i : 255), value + i);
	free(value);
	value = strbuf_steal(&sb);
	strbuf_deinit(&sb);
	return value;
}
