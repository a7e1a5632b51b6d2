/*
 * NAME
 *	test_stream - unit tests for buffered connections with deadlines
 * DESCRIPTION
 *	Real sockets (socketpairs and, for TLS, a real OpenSSL client in a
 *	child process with a throwaway certificate made by the openssl command
 *	under t/tmp). Covers lines, over-long lines and recovery, partial last
 *	lines, per-operation deadlines against silent and slow-drip peers, EOF,
 *	pipelined input, buffered writes and write deadlines, exact reads, TLS
 *	I/O, and STARTTLS refusing plaintext pipelined before the handshake
 *	(CVE-2011-0411).
 */
#include "sys_defs.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "msg.h"
#include "stream.h"
#include "strbuf.h"
#include "test_common.h"
#include "xmalloc.h"

static char *cert_file, *key_file;

/* now_ms - monotonic milliseconds */
static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* pair - a connected socketpair */
static void pair(int fds[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0) {
		printf("Bail out! socketpair: %s\n", strerror(errno));
		exit(1);
	}
}

/* put - write all of a string to a raw descriptor */
static void put(int fd, const char *text)
{
	size_t len = strlen(text);

	while (len > 0) {
		ssize_t n = write(fd, text, len);
		if (n <= 0)
			return;
		text += n;
		len -= (size_t)n;
	}
}

static void test_lines(void)
{
	int fds[2];
	STREAM *s;
	STRBUF *line = strbuf_alloc(64, 1000);

	test_begin("getline returns lines with their LF");
	pair(fds);
	s = stream_open(fds[0], 5);
	put(fds[1], "HELO a\r\nNOOP\n\nQUIT\r\n");
	test_assert(stream_getline(s, line, 100) == STREAM_OK);
	test_assert_str(line->data, "HELO a\r\n");
	strbuf_reset(line);
	test_assert(stream_getline(s, line, 100) == STREAM_OK);
	test_assert_str(line->data, "NOOP\n");
	strbuf_reset(line);
	test_assert(stream_getline(s, line, 100) == STREAM_OK);
	test_assert_str(line->data, "\n");
	strbuf_reset(line);
	test_assert(stream_getline(s, line, 100) == STREAM_OK);
	test_assert_str(line->data, "QUIT\r\n");
	test_assert(stream_status(s) == STREAM_OK);
	stream_close(&s);
	test_assert(s == NULL);
	test_assert(write(fds[0], "x", 1) == 1);	/* stream_close left the descriptor open */
	close(fds[0]);
	close(fds[1]);
	strbuf_free(&line);
	test_end();
}

static void test_long_lines(void)
{
	int fds[2];
	STREAM *s;
	STRBUF *line = strbuf_alloc(64, 1000), *small = strbuf_alloc(16, 20);
	char *big;
	pid_t pid;
	int status;

	test_begin("a line over max is discarded through its LF and the next one is read");
	pair(fds);
	s = stream_open(fds[0], 5);
	put(fds[1], "0123456789\nabcdefghijk\nok\n");
	test_assert(stream_getline(s, line, 11) == STREAM_OK);	/* exactly max, LF counted */
	test_assert_str(line->data, "0123456789\n");
	strbuf_reset(line);
	strbuf_puts(line, "keep");
	test_assert(stream_getline(s, line, 11) == STREAM_TOOLONG);
	test_assert_str(line->data, "keep");	/* left as it was */
	strbuf_reset(line);
	test_assert(stream_getline(s, line, 11) == STREAM_OK);
	test_assert_str(line->data, "ok\n");
	test_assert(stream_status(s) == STREAM_OK);
	test_end();

	test_begin("a 1 MB line without end costs no memory and the stream recovers");
	big = xmalloc(1024 * 1024 + 1);
	memset(big, 'A', 1024 * 1024);
	big[1024 * 1024] = '\0';
	if ((pid = fork()) == 0) {
		put(fds[1], big);
		put(fds[1], "\nnext\n");
		_exit(0);
	}
	strbuf_reset(line);
	test_assert(stream_getline(s, line, 1000) == STREAM_TOOLONG);
	test_assert(line->len == 0 && line->size <= 1001);
	test_assert(stream_getline(s, line, 1000) == STREAM_OK);
	test_assert_str(line->data, "next\n");
	waitpid(pid, &status, 0);
	test_end();

	test_begin("a line over the buffer's own cap is TOOLONG too");
	put(fds[1], "123456789012345678901234567890\nshort\n");
	test_assert(stream_getline(s, small, 1000) == STREAM_TOOLONG);
	test_assert(small->len == 0);
	test_assert(stream_getline(s, small, 1000) == STREAM_OK);
	test_assert_str(small->data, "short\n");
	test_end();

	test_begin("an over-long line cut by EOF is TOOLONG, then EOF");
	put(fds[1], "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	shutdown(fds[1], SHUT_WR);
	strbuf_reset(line);
	test_assert(stream_getline(s, line, 10) == STREAM_TOOLONG);
	test_assert(stream_getline(s, line, 10) == STREAM_EOF);
	test_end();

	stream_close(&s);
	close(fds[0]);
	close(fds[1]);
	free(big);
	strbuf_free(&line);
	strbuf_free(&small);
}

static void test_partial_and_eof(void)
{
	int fds[2];
	STREAM *s;
	STRBUF *line = strbuf_alloc(64, 1000);

	test_begin("bytes before EOF without LF come back as a last line, then EOF");
	pair(fds);
	s = stream_open(fds[0], 5);
	put(fds[1], "one\ntwo");
	close(fds[1]);
	test_assert(stream_getline(s, line, 100) == STREAM_OK);
	test_assert_str(line->data, "one\n");
	strbuf_reset(line);
	test_assert(stream_getline(s, line, 100) == STREAM_OK);
	test_assert_str(line->data, "two");
	strbuf_reset(line);
	test_assert(stream_getline(s, line, 100) == STREAM_EOF);
	test_assert(line->len == 0);
	test_assert(stream_getline(s, line, 100) == STREAM_EOF);
	test_assert(stream_status(s) == STREAM_EOF);
	stream_close(&s);
	close(fds[0]);
	test_end();

	test_begin("EOF on an empty stream");
	pair(fds);
	s = stream_open(fds[0], 5);
	close(fds[1]);
	test_assert(stream_getline(s, line, 100) == STREAM_EOF);
	stream_close(&s);
	close(fds[0]);
	test_end();
	strbuf_free(&line);
}

static void test_timeouts(void)
{
	int fds[2], status;
	STREAM *s;
	STRBUF *line = strbuf_alloc(64, 1000);
	long long t0, took;
	pid_t pid;

	test_begin("a silent peer times out after the deadline and the error sticks");
	pair(fds);
	s = stream_open(fds[0], 1);
	t0 = now_ms();
	test_assert(stream_getline(s, line, 100) == STREAM_TIMEOUT);
	took = now_ms() - t0;
	test_assert(took >= 900 && took < 3000);
	test_assert(stream_status(s) == STREAM_TIMEOUT);
	put(fds[1], "late\n");
	test_assert(stream_getline(s, line, 100) == STREAM_TIMEOUT);	/* sticky */
	test_assert(stream_puts(s, "x") < 0);
	test_assert(stream_flush(s) < 0);
	stream_close(&s);
	close(fds[0]);
	close(fds[1]);
	test_end();

	test_begin("a slow-drip peer cannot stretch one line past the deadline");
	pair(fds);
	if ((pid = fork()) == 0) {
		close(fds[0]);
		for (int i = 0; i < 20; i++) {
			put(fds[1], "x");
			usleep(200 * 1000);
		}
		_exit(0);
	}
	close(fds[1]);
	s = stream_open(fds[0], 1);
	t0 = now_ms();
	test_assert(stream_getline(s, line, 100) == STREAM_TIMEOUT);
	took = now_ms() - t0;
	test_assert(took >= 900 && took < 2500);
	stream_close(&s);
	close(fds[0]);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	test_end();

	test_begin("a peer that never reads makes flush time out");
	pair(fds);
	s = stream_open(fds[0], 1);
	{
		char *chunk = xcalloc(1, 65536);

		t0 = now_ms();
		for (int i = 0; i < 200 && stream_write(s, chunk, 65536) == 0; i++)
			;
		(void)stream_flush(s);
		took = now_ms() - t0;
		free(chunk);
	}
	test_assert(stream_status(s) == STREAM_TIMEOUT);
	test_assert(took >= 900 && took < 3000);
	stream_close(&s);
	close(fds[0]);
	close(fds[1]);
	test_end();
	strbuf_free(&line);
}

static void test_pipelining(void)
{
	int fds[2];
	STREAM *s;
	STRBUF *line = strbuf_alloc(64, 1000);

	test_begin("pipelined input is counted by stream_pending and can be discarded");
	pair(fds);
	s = stream_open(fds[0], 5);
	test_assert(stream_pending(s) == 0);
	put(fds[1], "MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n");
	test_assert(stream_getline(s, line, 100) == STREAM_OK);
	test_assert_str(line->data, "MAIL FROM:<a>\r\n");
	test_assert(stream_pending(s) == strlen("RCPT TO:<b>\r\nDATA\r\n"));
	stream_discard_input(s);
	test_assert(stream_pending(s) == 0);
	put(fds[1], "QUIT\r\n");
	strbuf_reset(line);
	test_assert(stream_getline(s, line, 100) == STREAM_OK);
	test_assert_str(line->data, "QUIT\r\n");
	stream_close(&s);
	close(fds[0]);
	close(fds[1]);
	test_end();
	strbuf_free(&line);
}

static void test_parts_and_read(void)
{
	int fds[2];
	STREAM *s;
	STRBUF *out = strbuf_alloc(64, 1000);
	bool complete;
	char buf[16];

	test_begin("getline_part hands out long lines in pieces");
	pair(fds);
	s = stream_open(fds[0], 5);
	put(fds[1], "aaaaaaaaaabbbbbbbbbbcc\r\nshort\n");
	test_assert(stream_getline_part(s, out, 10, &complete) == STREAM_OK && !complete);
	test_assert_str(out->data, "aaaaaaaaaa");
	strbuf_reset(out);
	test_assert(stream_getline_part(s, out, 10, &complete) == STREAM_OK && !complete);
	test_assert_str(out->data, "bbbbbbbbbb");
	strbuf_reset(out);
	test_assert(stream_getline_part(s, out, 10, &complete) == STREAM_OK && complete);
	test_assert_str(out->data, "cc\r\n");
	strbuf_reset(out);
	test_assert(stream_getline_part(s, out, 10, &complete) == STREAM_OK && complete);
	test_assert_str(out->data, "short\n");
	test_end();

	test_begin("stream_read reads exact counts; EOF in the middle is EOF");
	put(fds[1], "0123456789tail");
	test_assert(stream_read(s, buf, 4) == STREAM_OK && memcmp(buf, "0123", 4) == 0);
	test_assert(stream_read(s, buf, 6) == STREAM_OK && memcmp(buf, "456789", 6) == 0);
	close(fds[1]);
	test_assert(stream_read(s, buf, 10) == STREAM_EOF);
	strbuf_reset(out);
	test_assert(stream_getline_part(s, out, 10, &complete) == STREAM_EOF);
	stream_close(&s);
	close(fds[0]);
	test_end();
	strbuf_free(&out);
}

static void test_write(void)
{
	int fds[2], status;
	STREAM *s, *peer;
	STRBUF *line = strbuf_alloc(64, 1000);
	pid_t pid;
	long total = 0;

	test_begin("buffered writes, reserved writes and flush deliver everything in order");
	pair(fds);
	if ((pid = fork()) == 0) {
		/* the child counts bytes and lines, then answers */
		STREAM *c = stream_open(fds[1], 10);
		STRBUF *l = strbuf_alloc(64, 1000);
		long bytes = 0, lines = 0, bad = 0;

		close(fds[0]);
		while (stream_getline(c, l, 1000) == STREAM_OK) {
			char want[64];
			snprintf(want, sizeof(want), "line %ld\r\n", lines);
			if (strcmp(l->data, want) != 0 && strcmp(l->data, "END\r\n") != 0)
				bad++;
			bytes += (long)l->len;
			lines++;
			if (strcmp(l->data, "END\r\n") == 0)
				break;
			strbuf_reset(l);
		}
		stream_printf(c, "%ld %ld %ld\n", lines, bytes, bad);
		stream_flush(c);
		stream_close(&c);
		_exit(0);
	}
	close(fds[1]);
	s = stream_open(fds[0], 10);
	for (int i = 0; i < 20000; i++) {
		char text[64];
		int n = snprintf(text, sizeof(text), "line %d\r\n", i);
		total += n;
		if (i % 3 == 0) {	/* straight into the buffer, reserving more than used */
			char *at = stream_reserve(s, 40000);

			test_assert(at != NULL);
			memcpy(at, text, (size_t)n);
			stream_commit(s, (size_t)n);
		} else {
			test_assert(stream_printf(s, "line %d\r\n", i) == 0);
		}
	}
	test_assert(stream_puts(s, "END\r\n") == 0);
	test_assert(stream_flush(s) == 0);
	test_assert(stream_getline(s, line, 100) == STREAM_OK);
	{
		char want[64];
		snprintf(want, sizeof(want), "20001 %ld 0\n", total + 5);
		test_assert_str(line->data, want);
	}
	waitpid(pid, &status, 0);
	stream_close(&s);
	close(fds[0]);
	test_end();

	test_begin("stream_close flushes what is left");
	pair(fds);
	s = stream_open(fds[0], 5);
	stream_puts(s, "221 Bye\r\n");
	stream_close(&s);
	peer = stream_open(fds[1], 5);
	strbuf_reset(line);
	test_assert(stream_getline(peer, line, 100) == STREAM_OK);
	test_assert_str(line->data, "221 Bye\r\n");
	stream_close(&peer);
	close(fds[0]);
	close(fds[1]);
	test_end();

	test_begin("writing to a closed peer is an error that sticks");
	pair(fds);
	s = stream_open(fds[0], 5);
	close(fds[1]);
	stream_puts(s, "hello\r\n");
	test_assert(stream_flush(s) < 0);
	test_assert(stream_status(s) == STREAM_ERROR);
	test_assert(stream_puts(s, "again") < 0);
	test_assert(stream_reserve(s, 10) == NULL);
	stream_close(&s);
	close(fds[0]);
	test_end();
	strbuf_free(&line);
}

/* make_cert - a throwaway self-signed certificate made by the openssl command */
static bool make_cert(void)
{
	char *dir = test_tmpdir(), *cmd;
	int rc;

	cert_file = xasprintf("%s/cert.pem", dir);
	key_file = xasprintf("%s/key.pem", dir);
	cmd = xasprintf("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
			"-keyout %s -out %s -days 1 -subj /CN=localhost >/dev/null 2>&1",
			key_file, cert_file);
	rc = system(cmd);
	free(cmd);
	free(dir);
	return rc == 0;
}

/* server_ctx - an SSL_CTX for the server side, built directly with OpenSSL */
static SSL_CTX *server_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL || SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		printf("Bail out! cannot load the test certificate\n");
		exit(1);
	}
	return ctx;
}

/*
 * tls_client - in a child: optionally send plaintext first, then handshake,
 * send "hello", expect the echo "echo: hello", send "bye", close. Exit 0
 * when everything matched.
 */
static void tls_client(int fd, const char *plain_first)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = SSL_new(ctx);
	char buf[256];
	int n;

	if (plain_first != NULL) {
		put(fd, plain_first);
		do {	/* the server's reply to STARTTLS */
			if (read(fd, buf, 1) != 1)
				_exit(1);
		} while (buf[0] != '\n');
	}
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1)
		_exit(2);
	if (SSL_write(ssl, "hello\r\n", 7) != 7)
		_exit(3);
	n = SSL_read(ssl, buf, sizeof(buf) - 1);
	if (n <= 0)
		_exit(4);
	buf[n] = '\0';
	if (strcmp(buf, "echo: hello\r\n") != 0)
		_exit(5);
	if (SSL_write(ssl, "bye\r\n", 5) != 5)
		_exit(6);
	SSL_shutdown(ssl);
	_exit(0);
}

static void test_tls(void)
{
	int fds[2], status;
	STREAM *s;
	SSL_CTX *ctx;
	STRBUF *line = strbuf_alloc(64, 1000);
	char *error = NULL;
	pid_t pid;
	long long t0;

	test_begin("throwaway certificate made with the openssl command");
	test_assert(make_cert());
	test_end();
	ctx = server_ctx();

	test_begin("TLS handshake, lines both ways, summary, EOF by close_notify");
	pair(fds);
	if ((pid = fork()) == 0) {
		close(fds[0]);
		tls_client(fds[1], NULL);
	}
	close(fds[1]);
	s = stream_open(fds[0], 5);
	test_assert(!stream_is_tls(s));
	test_assert(stream_tls_summary(s) == NULL);
	test_assert(stream_starttls(s, ctx, &error) == 0);
	test_assert(error == NULL);
	test_assert(stream_is_tls(s));
	test_assert(stream_tls_summary(s) != NULL &&
		    strncmp(stream_tls_summary(s), "TLSv1.3 with cipher TLS_", 24) == 0 &&
		    strstr(stream_tls_summary(s), " bits)") != NULL);
	printf("# %s\n", stream_tls_summary(s) ? stream_tls_summary(s) : "(null)");
	test_assert(stream_getline(s, line, 100) == STREAM_OK);
	test_assert_str(line->data, "hello\r\n");
	stream_printf(s, "echo: %s", line->data);
	test_assert(stream_flush(s) == 0);
	strbuf_reset(line);
	test_assert(stream_getline(s, line, 100) == STREAM_OK);
	test_assert_str(line->data, "bye\r\n");
	strbuf_reset(line);
	test_assert(stream_getline(s, line, 100) == STREAM_EOF);
	waitpid(pid, &status, 0);
	test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	stream_close(&s);
	close(fds[0]);
	test_end();

	test_begin("STARTTLS refuses plaintext pipelined before the handshake (CVE-2011-0411)");
	pair(fds);
	if ((pid = fork()) == 0) {
		close(fds[0]);
		tls_client(fds[1], "STARTTLS\r\nRCPT TO:<injected@example.org>\r\n");
	}
	close(fds[1]);
	s = stream_open(fds[0], 5);
	strbuf_reset(line);
	test_assert(stream_getline(s, line, 100) == STREAM_OK);
	test_assert_str(line->data, "STARTTLS\r\n");
	stream_puts(s, "220 Ready to start TLS\r\n");
	test_assert(stream_pending(s) > 0);
	test_assert(stream_starttls(s, ctx, &error) < 0);
	test_assert(error != NULL && strstr(error, "before the TLS handshake") != NULL);
	printf("# %s\n", error ? error : "(null)");
	free(error);
	error = NULL;
	test_assert(!stream_is_tls(s));
	stream_discard_input(s);
	test_assert(stream_pending(s) == 0);
	test_assert(stream_starttls(s, ctx, &error) == 0);
	strbuf_reset(line);
	test_assert(stream_getline(s, line, 100) == STREAM_OK);
	test_assert_str(line->data, "hello\r\n");	/* not the injected RCPT */
	stream_puts(s, "echo: hello\r\n");
	stream_flush(s);
	waitpid(pid, &status, 0);
	test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	stream_close(&s);
	close(fds[0]);
	test_end();

	test_begin("a handshake with a silent client times out");
	pair(fds);
	s = stream_open(fds[0], 1);
	t0 = now_ms();
	test_assert(stream_starttls(s, ctx, &error) < 0);
	test_assert(now_ms() - t0 >= 900 && now_ms() - t0 < 3000);
	test_assert(error != NULL && strstr(error, "timeout") != NULL);
	free(error);
	error = NULL;
	test_assert(stream_status(s) == STREAM_TIMEOUT);
	stream_close(&s);
	close(fds[0]);
	close(fds[1]);
	test_end();

	test_begin("a handshake with a plaintext client fails with a reason");
	pair(fds);
	s = stream_open(fds[0], 5);
	put(fds[1], "GET / HTTP/1.0\r\n\r\n");
	/* the bytes are in the socket, not in our buffer, so the handshake reads them */
	test_assert(stream_starttls(s, ctx, &error) < 0);
	test_assert(error != NULL && strncmp(error, "TLS handshake: ", 15) == 0);
	printf("# %s\n", error ? error : "(null)");
	free(error);
	error = NULL;
	test_assert(stream_status(s) == STREAM_ERROR);
	stream_close(&s);
	close(fds[0]);
	close(fds[1]);
	test_end();

	SSL_CTX_free(ctx);
	strbuf_free(&line);
	free(cert_file);
	free(key_file);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	msg_open("test_stream", "", NULL, false);
	test_lines();
	test_long_lines();
	test_partial_and_eof();
	test_timeouts();
	test_pipelining();
	test_parts_and_read();
	test_write();
	test_tls();
	return test_done();
}
