/*
 * NAME
 *	dns_tool - ask DNS questions through share/dns.c, for t/proto/dns.t
 * SYNOPSIS
 *	t/bin/dns_tool [-a] [-s servers] [-t timeout_ms] [-r tries] [-c conf-servers]
 *		TYPE:NAME ...
 * DESCRIPTION
 *	Each argument is one question: a:NAME, aaaa:NAME, mx:NAME (as asked),
 *	mxi:DOMAIN (dns_lookup_mx: with the implicit MX), ptr:ADDRESS,
 *	txt:NAME, rev:ADDRESS (print dns_reverse_name) or bl:ZONE:ADDRESS (a
 *	DNSBL lookup). Without -a the questions are asked one after another
 *	with the blocking calls; with -a every plain question (a, aaaa, mx,
 *	ptr-by-name, txt) is started at once with dns_query() and the answers
 *	come from a poll() loop, in the order they arrive. -c sets the
 *	dns_servers configuration key and opens the resolver with dns_open()
 *	instead of dns_open_with(). One line per answer:
 *
 *		TYPE NAME STATUS [pref:]data ... [text="..."] [implicit] [null]
 *
 *	where STATUS is ok, nxdomain, nodata, tempfail, timeout or badname.
 *	The last line is "elapsed MS".
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "dns.h"
#include "msg.h"
#include "xmalloc.h"

static const char *status_word[] = { "ok", "nxdomain", "nodata", "tempfail", "timeout", "badname" };

/* show - print one result */
static void show(const char *label, struct dns_result *res)
{
	printf("%s %s %s", label, res->name, status_word[res->status]);
	for (size_t i = 0; i < res->count; i++) {
		if (res->type == DNS_T_MX)
			printf(" %u:%s", res->rr[i].pref, res->rr[i].data);
		else
			printf(" %s", res->rr[i].data);
	}
	if (res->text != NULL)
		printf(" text=\"%s\"", res->text);
	if (res->implicit_mx)
		printf(" implicit");
	if (res->null_mx)
		printf(" null");
	printf("\n");
	fflush(stdout);
}

/* parse_type - the question type of a prefix */
static int parse_type(const char *word, enum dns_type *type_r)
{
	static const struct {
		const char *word;
		enum dns_type type;
	} types[] = { { "a", DNS_T_A }, { "aaaa", DNS_T_AAAA }, { "mx", DNS_T_MX },
		      { "ptrname", DNS_T_PTR }, { "txt", DNS_T_TXT } };

	for (size_t i = 0; i < CY_ARRAY_SIZE(types); i++)
		if (strcmp(word, types[i].word) == 0) {
			*type_r = types[i].type;
			return 0;
		}
	return -1;
}

/* async_done - callback of -a: print and free */
static void async_done(struct dns_result *res, void *context)
{
	show(context, res);
	dns_result_free(&res);
}

/* ask - one blocking question */
static void ask(DNS_CTX *d, char *arg)
{
	char *colon = strchr(arg, ':'), *rest, *zone, *name;
	struct dns_result *res;
	enum dns_type type;

	if (colon == NULL)
		msg_fatal("bad question %s", arg);
	*colon = '\0';
	rest = colon + 1;
	if (strcmp(arg, "mxi") == 0) {
		res = dns_lookup_mx(d, rest);
	} else if (strcmp(arg, "ptr") == 0) {
		res = dns_lookup_ptr(d, rest);
	} else if (strcmp(arg, "rev") == 0) {
		name = dns_reverse_name(rest, NULL);
		printf("rev %s %s\n", rest, name ? name : "(none)");
		free(name);
		return;
	} else if (strcmp(arg, "bl") == 0) {
		zone = rest;
		if ((rest = strchr(zone, ':')) == NULL)
			msg_fatal("bad question bl:%s", zone);
		*rest++ = '\0';
		res = dns_lookup_dnsbl(d, rest, zone);
	} else if (parse_type(arg, &type) == 0) {
		res = dns_lookup(d, rest, type);
	} else {
		msg_fatal("bad question type %s", arg);
	}
	show(arg, res);
	dns_result_free(&res);
}

/* now_ms - monotonic milliseconds */
static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	const char *servers = NULL, *conf_servers = NULL;
	unsigned timeout = 1000, tries = 1;
	bool async = false;
	char *error = NULL, *colon;
	long long start;
	enum dns_type type;
	DNS_CTX *d;
	int ch;

	msg_open("dns_tool", "", NULL, true);
	while ((ch = getopt(argc, argv, "ac:r:s:t:")) != -1) {
		switch (ch) {
		case 'a':
			async = true;
			break;
		case 'c':
			conf_servers = optarg;
			break;
		case 'r':
			tries = (unsigned)atoi(optarg);
			break;
		case 's':
			servers = optarg;
			break;
		case 't':
			timeout = (unsigned)atoi(optarg);
			break;
		default:
			msg_fatal("usage: dns_tool [-a] [-s servers] [-t ms] [-r tries] TYPE:NAME ...");
		}
	}
	if (conf_servers != NULL) {
		if (conf_set("dns_servers", conf_servers, &error) < 0
		    || conf_set("dns_timeout", "1s", &error) < 0 || conf_set("dns_tries", "1", &error) < 0)
			msg_fatal("%s", error);
		d = dns_open(&error);
	} else {
		d = dns_open_with(servers, timeout, tries, &error);
	}
	if (d == NULL) {
		printf("open failed: %s\n", error);
		free(error);
		return 1;
	}
	start = now_ms();
	for (int i = optind; i < argc; i++) {
		if (!async) {
			ask(d, argv[i]);
			continue;
		}
		if ((colon = strchr(argv[i], ':')) == NULL)
			msg_fatal("bad question %s", argv[i]);
		*colon = '\0';
		if (parse_type(argv[i], &type) < 0)
			msg_fatal("-a takes a, aaaa, mx, ptrname and txt only");
		dns_query(d, colon + 1, type, async_done, argv[i]);
	}
	if (async) {
		printf("pending %u\n", dns_pending(d));
		dns_wait(d);
	}
	printf("elapsed %lld\n", now_ms() - start);
	dns_close(&d);
	return 0;
}
