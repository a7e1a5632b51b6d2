/*
 * NAME
 *	fuzz_tlsrec_import - libFuzzer target for tlsrec blobs and records
 * DESCRIPTION
 *	The first byte picks what the rest is:
 *
 *	0	a blob for tlsrec_import(): whatever it accepts must export
 *		to the same bytes, seal a record and refuse garbage records.
 *	1	bytes received on a connection (suite picked by the next
 *		byte): tlsrec_open() until it wants more, stops or fails;
 *		decrypting garbage must fail cleanly.
 *	2	records made valid: each piece of the input (a type byte, a
 *		length byte, that many bytes) is sealed by one state and
 *		opened by its twin, so the code after authentication (inner
 *		content type, padding, alerts, KeyUpdate and its split forms)
 *		sees fuzzed content too.
 */
#include "sys_defs.h"

#include <stdlib.h>
#include <string.h>

#include "tlsrec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* make_blob - a valid blob of a suite with fixed keys, both directions alike */
static size_t make_blob(unsigned pick, unsigned char *blob)
{
	static const struct { unsigned version, id, material; } suites[] = {
		{ 0x0304, 0x1301, 32 }, { 0x0304, 0x1302, 48 }, { 0x0304, 0x1303, 32 },
		{ 0x0303, 0xC02F, 20 }, { 0x0303, 0xC02C, 36 }, { 0x0303, 0xCCA8, 44 },
	};
	unsigned i = pick % (unsigned)CY_ARRAY_SIZE(suites);
	size_t n = 10;

	memcpy(blob, "CYTR\1\0", 6);
	blob[6] = (unsigned char)(suites[i].version >> 8);
	blob[7] = (unsigned char)suites[i].version;
	blob[8] = (unsigned char)(suites[i].id >> 8);
	blob[9] = (unsigned char)suites[i].id;
	for (int dir = 0; dir < 2; dir++) {
		memset(blob + n, 0, 8);
		n += 8;
		memset(blob + n, 0x5a, suites[i].material);
		n += suites[i].material;
	}
	return n;
}

/* open_all - feed bytes to tlsrec_open() until it stops */
static void open_all(TLSREC *rec, unsigned char *buf, size_t len)
{
	unsigned char *out;
	size_t used, olen;
	char *error = NULL;
	int alert, rc;

	for (;;) {
		rc = tlsrec_open(rec, buf, len, &used, &out, &olen, &alert, &error);
		free(error);
		error = NULL;
		if (rc != TLSREC_DATA)
			return;
		if (used == 0 || used > len || (olen > 0 && (out < buf || out + olen > buf + used)))
			abort();	/* the contract: data inside the record consumed */
		buf += used;
		len -= used;
	}
}

/* fuzz_blob - import, and the round trip of whatever was accepted */
static void fuzz_blob(const uint8_t *data, size_t size)
{
	unsigned char blob[TLSREC_BLOB_MAX], out[TLSREC_SEAL_SPACE(16)], junk[64];
	char *error = NULL;
	TLSREC *rec = tlsrec_import(data, size, &error);
	size_t olen;
	ssize_t n;

	free(error);
	error = NULL;
	if (rec == NULL)
		return;
	n = tlsrec_export(rec, blob, sizeof(blob), &error);
	if (n != (ssize_t)size || memcmp(blob, data, size) != 0)
		abort();
	if (tlsrec_seal(rec, "hello", 5, out, sizeof(out), &olen, &error) < 0)
		free(error);
	memset(junk, 0x17, sizeof(junk));
	junk[0] = 23;
	junk[1] = junk[2] = 3;
	junk[3] = 0;
	junk[4] = sizeof(junk) - 5;
	open_all(rec, junk, sizeof(junk));
	tlsrec_free(&rec);
}

/* fuzz_records - received bytes against a fixed state */
static void fuzz_records(const uint8_t *data, size_t size)
{
	unsigned char blob[TLSREC_BLOB_MAX], *buf;
	char *error = NULL;
	TLSREC *rec;

	if (size < 1)
		return;
	rec = tlsrec_import(blob, make_blob(data[0], blob), &error);
	if (rec == NULL)
		abort();
	buf = malloc(size);
	memcpy(buf, data + 1, size - 1);
	open_all(rec, buf, size - 1);
	free(buf);
	tlsrec_free(&rec);
}

/* fuzz_sealed - fuzzed content in records that authenticate */
static void fuzz_sealed(const uint8_t *data, size_t size)
{
	unsigned char blob[TLSREC_BLOB_MAX], *wire = NULL;
	size_t blen, wlen = 0, n;
	char *error = NULL;
	TLSREC *a, *b;

	if (size < 1)
		return;
	blen = make_blob(data[0], blob);
	a = tlsrec_import(blob, blen, &error);
	b = tlsrec_import(blob, blen, &error);
	if (a == NULL || b == NULL)
		abort();
	data++;
	size--;
	while (size >= 2) {
		int type = data[0] % 4 + 20;
		size_t len = data[1] < size - 2 ? data[1] : size - 2;

		wire = realloc(wire, wlen + TLSREC_SEAL_SPACE(len));
		if (tlsrec_seal_record(a, type, data + 2, len, wire + wlen, TLSREC_SEAL_SPACE(len), &n,
				       &error) < 0) {
			free(error);
			error = NULL;
		} else {
			wlen += n;
		}
		data += 2 + len;
		size -= 2 + len;
	}
	if (wire != NULL)
		open_all(b, wire, wlen);
	free(wire);
	tlsrec_free(&a);
	tlsrec_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		fuzz_blob(data + 1, size - 1);
		break;
	case 1:
		fuzz_records(data + 1, size - 1);
		break;
	default:
		fuzz_sealed(data + 1, size - 1);
		break;
	}
	return 0;
}
