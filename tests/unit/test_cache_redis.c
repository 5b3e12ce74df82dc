/*
 * The cache object against a real redis-server, started by each test on a
 * free loopback port (skipped when redis-server is not installed): store
 * then hit, generation bumps, two objects sharing one Redis through
 * pub/sub, single flight, Redis stopped (timeouts) or killed (fail open,
 * circuit breaker) and restarted (hits again, same object).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>
#include <hiredis/hiredis.h>

#include "cache/cache.h"
#include "conf/conf.h"

static int redis_port;
static pid_t redis_pid;
static struct ev_loop *loop;

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	cr_assert(fd >= 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static bool redis_answers(void)
{
	struct timeval tv = {0, 200000};
	redisContext *rc = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
	bool ok = false;

	if (rc && !rc->err) {
		redisReply *r = redisCommand(rc, "PING");
		ok = r && r->type == REDIS_REPLY_STATUS;
		if (r)
			freeReplyObject(r);
	}
	if (rc)
		redisFree(rc);
	return ok;
}

static void start_redis(void)
{
	char port[16];

	snprintf(port, sizeof(port), "%d", redis_port);
	redis_pid = fork();
	cr_assert(redis_pid >= 0);
	if (redis_pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 1);
		dup2(null, 2);
		execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
		       "--save", "", "--appendonly", "no", "--dir", "/tmp", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		if (redis_answers())
			return;
		usleep(20000);
	}
	cr_assert_fail("redis-server did not start on port %d", redis_port);
}

static void kill_redis(void)
{
	if (redis_pid > 0) {
		kill(redis_pid, SIGCONT);
		kill(redis_pid, SIGKILL);
		waitpid(redis_pid, NULL, 0);
		redis_pid = 0;
	}
}

static void setup(void)
{
	/* a fixed command, no input in it */
	// NOLINTNEXTLINE(cert-env33-c)
	if (system("command -v redis-server >/dev/null 2>&1") != 0)
		cr_skip_test("redis-server is not installed");
	redis_port = free_port();
	start_redis();
	loop = ev_loop_new(EVFLAG_AUTO);
}

static void teardown(void)
{
	kill_redis();
	if (loop)
		ev_loop_destroy(loop);
}

static const struct cache_opts opts = {.breaker_min_ms = 100,
                                       .breaker_max_ms = 400,
                                       .heartbeat_ms = 200,
                                       .connect_timeout_ms = 500};

static struct cache *new_cache(size_t l1_bytes, bool strict)
{
	struct conf_cache cc = {0};
	char err[256] = "";
	struct cache *c;

	cc.redis_host = "127.0.0.1";
	cc.redis_port = redis_port;
	cc.max_result_bytes = 64 * 1024;
	cc.l1_bytes = l1_bytes;
	cc.redis_timeout_ms = 100;
	cc.strict = strict;
	c = cache_new(loop, &cc, &opts, err, sizeof(err));
	cr_assert_not_null(c, "%s", err);
	cache_start(c);
	return c;
}

static void noop_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l, (void)w, (void)revents;
}

/* Run the loop until <done>(<arg>) or <secs> pass; false on timeout. */
static bool run_until(bool (*done)(void *), void *arg, double secs)
{
	double end = ev_time() + secs;
	ev_timer t;

	ev_timer_init(&t, noop_cb, 0.01, 0.01);
	ev_timer_start(loop, &t);
	while (!done(arg) && ev_time() < end)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &t);
	return done(arg);
}

static bool never(void *arg)
{
	(void)arg;
	return false;
}

static bool is_up(void *arg)
{
	return cache_state(arg) == CACHE_REDIS_UP;
}

static bool is_open(void *arg)
{
	return cache_state(arg) == CACHE_REDIS_OPEN;
}

static void wait_up(struct cache *c)
{
	cr_assert(run_until(is_up, c, 3), "Redis never came up (%s)",
	          cache_redis_state_name(cache_state(c)));
}

/* A lookup and what its callback heard. */
struct probe {
	struct cache_lookup lk;
	int calls;
	enum cache_result result;
	uint8_t body[256];
	size_t body_len;
	double at;
};

static void probe_cb(struct cache_lookup *lk, enum cache_result r)
{
	struct probe *p = lk->arg;

	p->calls++;
	p->result = r;
	p->at = ev_time();
	if (r == CACHE_HIT) {
		p->body_len = lk->entry.body_len < sizeof(p->body) ? lk->entry.body_len : 0;
		memcpy(p->body, lk->entry.body, p->body_len);
	}
}

static const char *tables_t[] = {"public.t"};

static void probe_init(struct probe *p, uint64_t key)
{
	memset(p, 0, sizeof(*p));
	p->lk.key = (struct cache_key){.hi = 0x5eed, .lo = key};
	p->lk.db = "app";
	p->lk.tables = tables_t;
	p->lk.ntables = 1;
	p->lk.cb = probe_cb;
	p->lk.arg = p;
}

static bool called(void *arg)
{
	return ((struct probe *)arg)->calls > 0;
}

/* Look up <p>; a synchronous answer is returned, else the callback's. */
static enum cache_result look(struct cache *c, struct probe *p)
{
	enum cache_result r = cache_lookup(c, &p->lk);

	if (r != CACHE_PENDING)
		return r;
	cr_assert(run_until(called, p, 2), "no callback");
	cr_assert_eq(p->calls, 1);
	return p->result;
}

static size_t put_msg(uint8_t *m, char type, const char *body, size_t blen)
{
	uint32_t n = (uint32_t)blen + 4;

	m[0] = (uint8_t)type;
	m[1] = (uint8_t)(n >> 24), m[2] = (uint8_t)(n >> 16), m[3] = (uint8_t)(n >> 8);
	m[4] = (uint8_t)n;
	memcpy(m + 5, body, blen);
	return blen + 5;
}

/* A reply of one row holding <val>, captured as the proxy would. */
static void capture(struct cache_capture *cap, const char *val)
{
	uint8_t m[128], row[64];
	size_t n, vl = strlen(val);

	cache_capture_init(cap, 64 * 1024);
	/* one text column "v": name, table oid, column, type oid 25, size,
	 * modifier, format */
	static const char rd[] = "\0\1v\0\0\0\0\0\0\0\0\0\0\x19\xff\xff\xff\xff\xff\xff\0";
	n = put_msg(m, 'T', rd, sizeof(rd));
	cache_capture_msg(cap, m, n);
	row[0] = 0, row[1] = 1, row[2] = 0, row[3] = 0, row[4] = 0, row[5] = (uint8_t)vl;
	memcpy(row + 6, val, vl);
	n = put_msg(m, 'D', (const char *)row, 6 + vl);
	cache_capture_msg(cap, m, n);
	n = put_msg(m, 'C', "SELECT 1", 9);
	cache_capture_msg(cap, m, n);
	cr_assert(cap->complete && !cap->failed);
}

static bool body_has(const struct probe *p, const char *val)
{
	return p->body_len > 0 && memmem(p->body, p->body_len, val, strlen(val)) != NULL;
}

static bool settled(void *arg)
{
	struct cache_stats st;

	cache_get_stats(arg, &st);
	return st.inflight == 0;
}

/* Miss, lead, store <val>, and wait until Redis has it (another
 * connection's lookup could otherwise overtake the SET). */
static void miss_and_store(struct cache *c, struct probe *p, const char *val)
{
	struct cache_capture cap;

	cr_assert_eq(look(c, p), CACHE_MISS);
	capture(&cap, val);
	cache_store(c, &p->lk, &cap, 60);
	cache_capture_reset(&cap);
	cr_assert(run_until(settled, c, 2));
}

// cppcheck-suppress unknownMacro
TestSuite(cache_redis, .init = setup, .fini = teardown, .timeout = 30);

Test(cache_redis, store_then_hit_in_l1_and_in_redis)
{
	struct cache *a = new_cache(1 << 20, false), *b = new_cache(1 << 20, false);
	struct probe p, q;
	struct cache_stats st;

	wait_up(a);
	wait_up(b);
	probe_init(&p, 1);
	miss_and_store(a, &p, "first");

	/* the same object: from its L1, at once */
	probe_init(&p, 1);
	cr_assert_eq(cache_lookup(a, &p.lk), CACHE_HIT);
	cr_assert(memmem(p.lk.entry.body, p.lk.entry.body_len, "first", 5));
	cr_assert_eq(p.lk.entry.rowdesc[0], 'T');

	/* another object sharing the Redis: from Redis */
	probe_init(&q, 1);
	cr_assert_eq(look(b, &q), CACHE_HIT);
	cr_assert(body_has(&q, "first"));
	probe_init(&q, 1);
	cr_assert_eq(cache_lookup(b, &q.lk), CACHE_HIT, "and then from its own L1");

	/* another key misses */
	probe_init(&q, 2);
	cr_assert_eq(look(b, &q), CACHE_MISS);
	cache_abandon(b, &q.lk);

	cache_get_stats(a, &st);
	cr_assert_eq(st.stores, 1);
	cr_assert_eq(st.misses, 1);
	cr_assert_eq(st.hits_l1, 1);
	cr_assert_gt(st.redis_calls, 0);
	cache_get_stats(b, &st);
	cr_assert_eq(st.hits_redis, 1);
	cr_assert_eq(st.hits_l1, 1);
	cache_free(a);
	cache_free(b);
}

Test(cache_redis, l1_off_serves_from_redis)
{
	struct cache *a = new_cache(0, false);
	struct probe p;

	wait_up(a);
	probe_init(&p, 1);
	miss_and_store(a, &p, "redis-only");
	probe_init(&p, 1);
	cr_assert_eq(cache_lookup(a, &p.lk), CACHE_PENDING, "no L1: every hit asks Redis");
	cr_assert(run_until(called, &p, 2));
	cr_assert_eq(p.result, CACHE_HIT);
	cr_assert(body_has(&p, "redis-only"));
	cache_free(a);
}

static bool invalidated(void *arg)
{
	struct cache_stats st;

	cache_get_stats(arg, &st);
	return st.l1.invalidations > 0;
}

static uint64_t heard_before;

static bool heard(void *arg)
{
	struct cache_stats st;

	cache_get_stats(arg, &st);
	return st.invalidations > heard_before;
}

Test(cache_redis, bumps_reach_every_instance)
{
	struct cache *a = new_cache(1 << 20, false), *b = new_cache(1 << 20, false);
	struct probe p, q;
	struct cache_stats st;
	const char *written[] = {"t"}; /* unqualified: the same table as public.t */

	wait_up(a);
	wait_up(b);
	probe_init(&p, 7);
	miss_and_store(a, &p, "old");
	probe_init(&q, 7);
	cr_assert_eq(look(b, &q), CACHE_HIT);
	probe_init(&q, 7);
	cr_assert_eq(cache_lookup(b, &q.lk), CACHE_HIT, "in b's L1 now");

	/* a commits a write to t: its own next lookup misses at once */
	cache_bump(a, "app", written, 1);
	probe_init(&p, 7);
	cr_assert_eq(look(a, &p), CACHE_MISS, "a bumped generation is a miss");
	cache_abandon(a, &p.lk);

	/* b hears it through pub/sub and drops its L1 entry */
	cr_assert(run_until(invalidated, b, 2), "b never heard the bump");
	probe_init(&q, 7);
	cr_assert_eq(look(b, &q), CACHE_MISS, "b must not serve the old value");
	struct cache_capture cap;
	capture(&cap, "new");
	cache_store(b, &q.lk, &cap, 60);
	cache_capture_reset(&cap);
	cr_assert(run_until(settled, b, 2));

	/* and a sees b's fresh entry */
	probe_init(&p, 7);
	cr_assert_eq(look(a, &p), CACHE_HIT);
	cr_assert(body_has(&p, "new"));

	/* a write to another table, or another database's t, changes
	 * nothing, even once a has heard of them */
	const char *other[] = {"u"};
	cache_get_stats(a, &st);
	heard_before = st.invalidations + 1;
	cache_bump(b, "app", other, 1);
	cache_bump(b, "otherdb", written, 1);
	cr_assert(run_until(heard, a, 2));
	probe_init(&p, 7);
	cr_assert_eq(look(a, &p), CACHE_HIT);

	/* a database-wide bump reaches every table of it, once a hears it
	 * (until then a's L1 may answer: the pub/sub window) */
	cache_get_stats(a, &st);
	heard_before = st.invalidations;
	cache_bump_db(b, "app");
	cr_assert(run_until(heard, a, 2));
	probe_init(&p, 7);
	cr_assert_eq(look(a, &p), CACHE_MISS);
	cache_abandon(a, &p.lk);
	cache_free(a);
	cache_free(b);
}

Test(cache_redis, clear_invalidates_everything)
{
	struct cache *a = new_cache(1 << 20, false);
	struct probe p;

	wait_up(a);
	probe_init(&p, 1);
	miss_and_store(a, &p, "x");
	probe_init(&p, 1);
	cr_assert_eq(cache_lookup(a, &p.lk), CACHE_HIT);
	cache_clear(a);
	probe_init(&p, 1);
	cr_assert_eq(look(a, &p), CACHE_MISS);
	cache_abandon(a, &p.lk);
	cache_free(a);
}

Test(cache_redis, strict_checks_generations_on_every_hit)
{
	struct cache *a = new_cache(1 << 20, true);
	struct probe p;
	redisContext *rc;
	redisReply *r;
	char cmd[64];

	wait_up(a);
	probe_init(&p, 3);
	miss_and_store(a, &p, "strict");
	probe_init(&p, 3);
	cr_assert_eq(cache_lookup(a, &p.lk), CACHE_PENDING, "strict: even an L1 hit asks Redis");
	cr_assert(run_until(called, &p, 2));
	cr_assert_eq(p.result, CACHE_HIT);
	cr_assert(body_has(&p, "strict"));

	/* a bump that never reached the subscription (written straight into
	 * Redis): strict mode still sees it */
	rc = redisConnect("127.0.0.1", redis_port);
	cr_assert(rc && !rc->err);
	snprintf(cmd, sizeof(cmd), "INCR sluice:g:%016llx",
	         (unsigned long long)cache_gen_table("app", "t"));
	r = redisCommand(rc, cmd);
	cr_assert(r && r->type == REDIS_REPLY_INTEGER);
	freeReplyObject(r);
	redisFree(rc);
	probe_init(&p, 3);
	cr_assert_eq(look(a, &p), CACHE_MISS);
	cache_abandon(a, &p.lk);
	cache_free(a);
}

Test(cache_redis, single_flight)
{
	struct cache *a = new_cache(1 << 20, false);
	struct probe p[4];
	struct cache_capture cap;
	struct cache_stats st;

	wait_up(a);
	for (int i = 0; i < 4; i++) {
		probe_init(&p[i], 9);
		cr_assert_eq(cache_lookup(a, &p[i].lk), CACHE_PENDING);
	}
	cr_assert(run_until(called, &p[0], 2));
	cr_assert_eq(p[0].result, CACHE_MISS, "the first leads");
	for (int i = 1; i < 4; i++)
		cr_assert_eq(p[i].calls, 0, "the others wait for its result");
	capture(&cap, "shared");
	cache_store(a, &p[0].lk, &cap, 60);
	cache_capture_reset(&cap);
	for (int i = 1; i < 4; i++)
		cr_assert_eq(p[i].calls, 0, "callbacks never run inside cache_store");
	for (int i = 1; i < 4; i++) {
		cr_assert(run_until(called, &p[i], 2));
		cr_assert_eq(p[i].result, CACHE_HIT);
		cr_assert(body_has(&p[i], "shared"));
	}
	cache_get_stats(a, &st);
	cr_assert_eq(st.coalesced, 3);
	cr_assert_eq(st.misses, 1, "one query for four lookups");

	/* a leader that fails sends its waiters to PostgreSQL */
	for (int i = 0; i < 3; i++) {
		probe_init(&p[i], 10);
		cr_assert_eq(cache_lookup(a, &p[i].lk), CACHE_PENDING);
	}
	cr_assert(run_until(called, &p[0], 2));
	cr_assert_eq(p[0].result, CACHE_MISS);
	cache_capture_init(&cap, 64 * 1024);
	uint8_t m[32];
	size_t n = put_msg(m, 'E', "SERROR\0", 7);
	cache_capture_msg(&cap, m, n);
	cache_store(a, &p[0].lk, &cap, 60);
	cache_capture_reset(&cap);
	for (int i = 1; i < 3; i++) {
		cr_assert(run_until(called, &p[i], 2));
		cr_assert_eq(p[i].result, CACHE_BYPASS);
	}
	probe_init(&p[0], 10);
	cr_assert_eq(look(a, &p[0]), CACHE_MISS, "an error was not stored");

	/* a leader whose client closes: likewise; a cancelled waiter hears nothing */
	probe_init(&p[1], 10);
	probe_init(&p[2], 10);
	cr_assert_eq(cache_lookup(a, &p[1].lk), CACHE_PENDING);
	cr_assert_eq(cache_lookup(a, &p[2].lk), CACHE_PENDING);
	cache_lookup_cancel(a, &p[2].lk);
	cache_lookup_cancel(a, &p[0].lk);
	cr_assert(run_until(called, &p[1], 2));
	cr_assert_eq(p[1].result, CACHE_BYPASS);
	run_until(called, &p[2], 0.1);
	cr_assert_eq(p[2].calls, 0);
	cache_free(a);
}

Test(cache_redis, a_bump_during_a_miss_stores_nothing)
{
	struct cache *a = new_cache(1 << 20, false), *b = new_cache(1 << 20, false);
	struct probe p, w;
	struct cache_capture cap;
	const char *written[] = {"t"};

	wait_up(a);
	wait_up(b);
	probe_init(&p, 11);
	probe_init(&w, 11);
	cr_assert_eq(look(a, &p), CACHE_MISS);
	cr_assert_eq(cache_lookup(a, &w.lk), CACHE_PENDING);
	/* another instance commits a write while the leader's query runs */
	cache_bump(b, "app", written, 1);
	cr_assert(run_until(called, &w, 2));
	cr_assert_eq(w.result, CACHE_BYPASS, "a waiter must not get a result older than the write");
	capture(&cap, "maybe-stale");
	cache_store(a, &p.lk, &cap, 60);
	cache_capture_reset(&cap);
	probe_init(&p, 11);
	cr_assert_eq(look(a, &p), CACHE_MISS, "nothing was stored");
	cache_abandon(a, &p.lk);
	cache_free(a);
	cache_free(b);
}

Test(cache_redis, too_big_is_not_stored)
{
	struct cache *a = new_cache(1 << 20, false);
	struct probe p;
	struct cache_capture cap;
	struct cache_stats st;
	static uint8_t row[70 * 1024];
	static const char zeros[66 * 1024];

	wait_up(a);
	probe_init(&p, 12);
	cr_assert_eq(look(a, &p), CACHE_MISS);
	cache_capture_init(&cap, 64 * 1024);
	size_t n = put_msg(row, 'D', zeros, sizeof(zeros));
	cache_capture_msg(&cap, row, n);
	cr_assert(cap.too_big);
	cache_store(a, &p.lk, &cap, 60);
	cache_capture_reset(&cap);
	cache_get_stats(a, &st);
	cr_assert_eq(st.too_big, 1);
	cr_assert_eq(st.stores, 0);
	cache_free(a);
}

Test(cache_redis, malformed_values_are_misses)
{
	struct cache *a = new_cache(1 << 20, false);
	struct probe p;
	redisContext *rc;
	redisReply *r;
	char key[CACHE_KEY_STR_LEN + 1];
	struct cache_stats st;

	wait_up(a);
	probe_init(&p, 13);
	cache_key_str(&p.lk.key, key);
	rc = redisConnect("127.0.0.1", redis_port);
	cr_assert(rc && !rc->err);
	r = redisCommand(rc, "SET %s %b", key, "SLC\1garbage", (size_t)11);
	freeReplyObject(r);
	cr_assert_eq(look(a, &p), CACHE_MISS);
	cache_abandon(a, &p.lk);
	/* a generation that is not a number fails the lookup open */
	r = redisCommand(rc, "SET sluice:g:%016llx notanumber",
	                 (unsigned long long)cache_gen_table("app", "t"));
	freeReplyObject(r);
	probe_init(&p, 13);
	cr_assert_eq(look(a, &p), CACHE_BYPASS);
	/* a bump message nobody can read flushes the L1 */
	r = redisCommand(rc, "PUBLISH sluice:bump:0 %s", "zzz");
	freeReplyObject(r);
	redisFree(rc);
	cache_get_stats(a, &st);
	uint64_t before = st.malformed;
	probe_init(&p, 14);
	run_until(called, &p, 0.3);
	cache_get_stats(a, &st);
	cr_assert_gt(st.malformed, before);
	cr_assert_eq(cache_state(a), CACHE_REDIS_UP, "bad data is not a Redis failure");
	cache_free(a);
}

Test(cache_redis, stopped_redis_times_out_and_opens_the_circuit)
{
	struct cache *a = new_cache(1 << 20, false);
	struct probe p;
	struct cache_stats st;
	double t0;

	wait_up(a);
	kill(redis_pid, SIGSTOP); /* alive but silent: only timeouts notice */
	probe_init(&p, 20);
	t0 = ev_time();
	cr_assert_eq(cache_lookup(a, &p.lk), CACHE_PENDING);
	cr_assert(run_until(called, &p, 2));
	cr_assert_eq(p.result, CACHE_BYPASS, "fail open");
	cr_assert_lt(p.at - t0, 0.1 + 0.08, "answered within redis_timeout_ms (took %.3fs)",
	             p.at - t0);
	cr_assert_eq(cache_state(a), CACHE_REDIS_OPEN);
	probe_init(&p, 20);
	cr_assert_eq(cache_lookup(a, &p.lk), CACHE_BYPASS, "open circuit: not even asked");
	cache_get_stats(a, &st);
	cr_assert_geq(st.redis_timeouts, 1);
	cr_assert_geq(st.breaker_trips, 1);
	kill(redis_pid, SIGCONT);
	wait_up(a);
	probe_init(&p, 20);
	cr_assert_eq(look(a, &p), CACHE_MISS, "asked again once it answers");
	cache_abandon(a, &p.lk);
	cache_free(a);
}

Test(cache_redis, killed_then_restarted_redis)
{
	struct cache *a = new_cache(1 << 20, false), *b = new_cache(1 << 20, false);
	struct probe p;
	struct cache_stats st;
	const char *written[] = {"t"};

	wait_up(a);
	wait_up(b);
	probe_init(&p, 30);
	miss_and_store(a, &p, "before");
	probe_init(&p, 30);
	cr_assert_eq(cache_lookup(a, &p.lk), CACHE_HIT);

	kill_redis();
	cr_assert(run_until(is_open, a, 2), "the breaker opens when Redis dies");
	cr_assert(run_until(is_open, b, 2));
	probe_init(&p, 30);
	cr_assert_eq(cache_lookup(a, &p.lk), CACHE_BYPASS, "no L1 hit while bumps cannot be heard");
	/* a write while Redis is away cannot be published */
	cache_bump(b, "app", written, 1);

	start_redis();
	wait_up(a);
	wait_up(b);
	/* b's global bump (its write was lost) reaches a, which drops what
	 * it has in flight: let it pass */
	cr_assert(run_until(settled, b, 2));
	run_until(never, NULL, 0.1);
	cache_get_stats(a, &st);
	cr_assert_geq(st.reconnects, 1);
	cr_assert_eq(st.l1.entries, 0, "L1 flushed when Redis came back");
	probe_init(&p, 30);
	miss_and_store(a, &p, "after");
	probe_init(&p, 30);
	cr_assert_eq(look(b, &p), CACHE_HIT, "hits again without a new object");
	cr_assert(body_has(&p, "after"));
	cache_free(a);
	cache_free(b);
}

/* Redis restarted with the same data while a stayed connected... not
 * possible; but the lost bump of b above must invalidate entries that
 * survived in Redis: here Redis stays up and only b's connection drops. */
Test(cache_redis, lost_bumps_invalidate_everything_on_reconnect)
{
	struct cache *a = new_cache(1 << 20, false);
	struct probe p;
	redisContext *rc;
	redisReply *r;

	wait_up(a);
	probe_init(&p, 40);
	miss_and_store(a, &p, "kept");
	/* drop every client connection of this Redis: a sees a disconnect */
	rc = redisConnect("127.0.0.1", redis_port);
	cr_assert(rc && !rc->err);
	const char *written[] = {"t"};
	r = redisCommand(rc, "CLIENT KILL TYPE normal");
	freeReplyObject(r);
	r = redisCommand(rc, "CLIENT KILL TYPE pubsub");
	freeReplyObject(r);
	cr_assert(run_until(is_open, a, 2));
	cache_bump(a, "app", written, 1); /* lost: Redis was not reachable */
	wait_up(a);
	probe_init(&p, 40);
	cr_assert_eq(look(a, &p), CACHE_MISS, "the entry written before the lost bump is gone");
	cache_abandon(a, &p.lk);
	redisFree(rc);
	cache_free(a);
}
