/*
 * NAME
 *	anvil - event counters shared by all processes of one daemon
 * SYNOPSIS
 *	#include "anvil.h"
 *
 *	anvil_init(slots);			in the master, before workers fork
 *	n = anvil_count(key, keylen, window_secs);
 *	anvil_add(key, keylen, window_secs);
 *	n = anvil_hit(key, keylen, window_secs);
 * DESCRIPTION
 *	A fixed table in anonymous shared memory, mapped by the daemon's
 *	master and inherited by every worker it forks, that  counts events
 *	(failed logins, connections, messages) per key (a client address; a client address and a
 *	login name) in fixed windows of window_secs. A worker sees what the
 *	others counted, so a client cannot escape a limit by opening more
 *	connections. The counters live as long as the master: a restart
 *	forgets them, as Postfix's anvil does.
 *
 *	The table is lossy by design: a key hashes to ANVIL_PROBE slots; when
 *	all are taken by live counters of other keys, the one whose window
 *	started first is reused. Updates are atomic per field, not per entry;
 *	two processes counting the same key at the same moment may lose one
 *	count. Both only make a limit a little softer, never stricter.
 *
 *	Each slot remembers the length of its window, so that a counter of a
 *	long window (the SMTP server's messages per hour) is never taken for
 *	an expired one by a key of a short window (connections per minute)
 *	looking for a free slot. Callers keep one window length per key (a
 *	prefix in the key says which limit it counts).

 *	anvil_hit() counts one event and returns the count including it: the
 *	rate limits' "count and decide" in one call.
 *
 *	Without anvil_init() (cyctl, unit tests) every count is 0 and
 *	anvil_add() does nothing.
 * SECURITY
 *	Keys are client-supplied. They are hashed with a random secret taken
 *	at anvil_init(), so a client cannot pick keys that collide with
 *	another's to evict its counter.
 */
#include "sys_defs.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>

#include "anvil.h"

#define ANVIL_PROBE	4	/* slots a key may live in */

struct anvil_slot {
	uint64_t tag;		/* keyed hash of the key, never 0; 0: empty */
	uint32_t window;	/* monotonic second its window started */
	uint32_t count;
	uint32_t span;		/* the window's length in seconds */
};

static struct anvil_slot *anvil_table;
static size_t anvil_slots;
static uint64_t anvil_secret[2];

/* anvil_now - monotonic seconds */
static uint32_t anvil_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint32_t)ts.tv_sec;
}

/* anvil_hash - FNV-1a over the secret and the key; never 0 */
static uint64_t anvil_hash(const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h = 0xcbf29ce484222325ULL ^ anvil_secret[0];

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	h ^= anvil_secret[1];
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h ? h : 1;
}

/* anvil_init - map the shared table (once, in the master); 0 or -1 with errno */
int anvil_init(size_t slots)
{
	void *p;

	if (anvil_table != NULL)
		return 0;
	if (getrandom(anvil_secret, sizeof(anvil_secret), 0) != (ssize_t)sizeof(anvil_secret))
		return -1;
	p = mmap(NULL, slots * sizeof(struct anvil_slot), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	anvil_table = p;
	anvil_slots = slots;
	return 0;
}

/* anvil_find - the slot of tag, or NULL */
static struct anvil_slot *anvil_find(uint64_t tag)
{
	for (size_t i = 0; i < ANVIL_PROBE; i++) {
		struct anvil_slot *s = &anvil_table[(tag + i) % anvil_slots];

		if (__atomic_load_n(&s->tag, __ATOMIC_ACQUIRE) == tag)
			return s;
	}
	return NULL;
}

/* anvil_live - the count of a slot if its window is still open, else 0 */
static uint32_t anvil_live(const struct anvil_slot *s, uint32_t now, unsigned window_secs)
{
	uint32_t start = __atomic_load_n(&s->window, __ATOMIC_RELAXED);

	if (now - start >= window_secs)
		return 0;
	return __atomic_load_n(&s->count, __ATOMIC_RELAXED);
}

/* anvil_count - events of key in its current window */
unsigned anvil_count(const void *key, size_t len, unsigned window_secs)
{
	struct anvil_slot *s;

	if (anvil_table == NULL || (s = anvil_find(anvil_hash(key, len))) == NULL)
		return 0;
	return anvil_live(s, anvil_now(), window_secs);
}

/* anvil_add - count one event of key */
void anvil_add(const void *key, size_t len, unsigned window_secs)
{
	(void)anvil_hit(key, len, window_secs);
}

/* anvil_hit - count one event of key; the count in its window, this one included (0: no table) */
unsigned anvil_hit(const void *key, size_t len, unsigned window_secs)
{
	uint64_t tag;
	uint32_t now;
	struct anvil_slot *s, *victim = NULL;

	if (anvil_table == NULL)
		return 0;
	tag = anvil_hash(key, len);
	now = anvil_now();
	if ((s = anvil_find(tag)) != NULL) {
		if (anvil_live(s, now, window_secs) == 0) {	/* a new window */
			__atomic_store_n(&s->count, 0, __ATOMIC_RELAXED);
			__atomic_store_n(&s->window, now, __ATOMIC_RELAXED);
			__atomic_store_n(&s->span, window_secs, __ATOMIC_RELAXED);
		}
		return __atomic_add_fetch(&s->count, 1, __ATOMIC_RELAXED);
	}
	for (size_t i = 0; i < ANVIL_PROBE; i++) {	/* an empty or expired slot, else the oldest */
		s = &anvil_table[(tag + i) % anvil_slots];
		if (s->tag == 0 || anvil_live(s, now, __atomic_load_n(&s->span, __ATOMIC_RELAXED)) == 0) {
			victim = s;
			break;
		}
		if (victim == NULL || s->window < victim->window)
			victim = s;
	}
	__atomic_store_n(&victim->tag, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&victim->window, now, __ATOMIC_RELAXED);
	__atomic_store_n(&victim->count, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&victim->span, window_secs, __ATOMIC_RELAXED);
	__atomic_store_n(&victim->tag, tag, __ATOMIC_RELEASE);
	return 1;
}
