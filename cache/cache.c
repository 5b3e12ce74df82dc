/*
 * The cache object: L1 in front of Redis, Redis through hiredis' async API
 * on sluice's libev loop, single flight for concurrent misses, generation
 * bumps published to every instance, and a circuit breaker.
 *
 * Redis holds, per entry, "sluice:e:<key>" (cache_entry_encode's bytes,
 * with EX ttl) and, per generation id, "sluice:g:<id>" (a counter without
 * a TTL: run Redis with maxmemory-policy noeviction or volatile-*, so that
 * counters are never evicted and never restart below a value an entry has
 * seen). A lookup is one MGET of the entry and its generations; it is a
 * hit when the generations the entry recorded (read before its query ran)
 * are the current ones. A committed write runs a script that INCRs a
 * generation and PUBLISHes "<id> <value> <instance>" on
 * "sluice:bump:<db>"; every instance hears it on a second, subscribed
 * connection and drops that id's L1 entries at once.
 *
 * Why each piece is sound:
 *  - L1 entries are put only when their generations were just read from
 *    Redis, and are dropped on every bump this instance makes or hears of;
 *    the L1 serves only while the subscription is up (and a heartbeat
 *    published through it every heartbeat_ms comes back), and is flushed
 *    whenever it was not.
 *  - A bump heard while a lookup is in flight "poisons" the flights that
 *    depend on it: their waiters go to PostgreSQL and nothing is stored.
 *    A flight started after the bump was heard reads the new generation
 *    (its MGET leaves after the bump's INCR was done), so it needs no
 *    further check.
 *  - A bump that could not reach Redis (down, timed out) is remembered;
 *    at the next connect the global generation is bumped, invalidating
 *    every entry of every instance, and so is it when Redis' run_id
 *    changed (a restart may have restored old generations).
 *
 * Failures: every command has a deadline (redis_timeout_ms); replies come
 * in order, so one timer watches the oldest. A timeout, a disconnect or a
 * failed handshake opens the circuit: both connections are dropped,
 * lookups go to PostgreSQL at once, and after breaker_min_ms (doubling up
 * to breaker_max_ms) a probe reconnects. Redis coming back needs no
 * restart.
 *
 * Callbacks to the proxy are queued and run from the loop (prepare, check
 * and idle watchers), never from inside a cache_* call.
 */
#include "cache/cache.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "cache/cache_hash.h"

#include "conf/conf.h"
#include "stats/stats.h"

/* INCR the generation, publish "<id> <value> <instance>", return it. */
static const char bump_script[] =
        "local n = redis.call('INCR', KEYS[1]) "
        "redis.call('PUBLISH', ARGV[1], ARGV[2] .. ' ' .. n .. ' ' .. ARGV[3]) "
        "return n";

enum cmd_kind {
	CMD_HANDSHAKE, /* AUTH, SELECT: an error fails the connect */
	CMD_INFO,      /* INFO server: run_id, then maybe the global bump */
	CMD_READY,     /* the last handshake step: the command connection is ready */
	CMD_LOOKUP,    /* MGET entry, generations */
	CMD_CHECK,     /* MGET generations (cache_strict on an L1 hit) */
	CMD_STORE,     /* SET entry EX ttl */
	CMD_BUMP,      /* the bump script */
	CMD_HEARTBEAT, /* PUBLISH hb */
};

struct rconn;

struct cmd {
	struct rconn *conn;
	enum cmd_kind kind;
	struct cache_flight *fl; /* LOOKUP, CHECK: a reference */
	double sent, deadline;
	struct cmd *next; /* the connection's FIFO */
};

/* One hiredis connection. Lives until hiredis has run every callback that
 * points at it and the context is gone. */
struct rconn {
	struct cache *c;
	redisAsyncContext *ac; /* NULL once detached (being freed or gone) */
	bool sub;              /* the subscribed connection */
	int refs;              /* callbacks hiredis still holds for us */
	struct cmd *head, *tail;
};

enum flight_state {
	FL_LOOKUP,  /* MGET of entry and generations in flight */
	FL_CHECK,   /* MGET of the generations of an L1 entry (strict) */
	FL_RUNNING, /* the leader is at PostgreSQL */
};

struct cache_flight {
	struct cache_key key;
	UT_hash_handle hh;
	bool in_map;
	bool poisoned; /* a bump came: nothing is stored, waiters go to PostgreSQL */
	enum flight_state st;
	int refs; /* lookups that point here, and a command in flight */
	struct cache_lookup *leader;
	struct cache_lookup *waiters; /* a list through lk->next/prev */
	uint8_t ngens;
	struct cache_gen gens[CACHE_MAX_GENS]; /* ids; values once read */
	uint8_t *buf;                          /* owned: the entry handed to everyone */
	struct cache_entry entry;              /* view into buf */
};

struct cache {
	struct ev_loop *loop;
	/* settings, copied */
	char *host, *unix_path, *user, *password;
	int port, db;
	size_t max_result;
	bool strict;
	double timeout, connect_timeout, heartbeat;
	double breaker_min, breaker_max, breaker_wait;
	char channel[40];
	char nonce[17]; /* this instance, in bump and heartbeat messages */

	enum cache_redis_state state;
	bool started, ever_up, closing;
	bool cmd_ready, sub_ready;
	bool lost_bumps; /* a bump did not reach Redis: bump global at next connect */
	char run_id[48]; /* Redis' at the last connect, "" before */
	struct rconn *cmd, *subc;
	ev_timer cmd_timer;     /* the oldest command's deadline */
	ev_timer connect_timer; /* a connect must be up by then */
	ev_timer probe_timer;   /* circuit open: reconnect then */
	ev_timer hb_timer;      /* heartbeat */
	uint64_t hb_n;
	bool hb_seen;

	ev_prepare prep; /* the ready queue is drained from these three */
	ev_check chk;
	ev_idle idle;
	struct cache_lookup *ready, *ready_tail;

	struct cache_flight *flights; /* by key, in flight */
	struct cache_l1 *l1;          /* NULL when l1_bytes = 0 */
	struct cache_notify
	        *notify; /* owned: LISTEN connections; NULL unless invalidation = notify */
	struct cache_stats st;
};

static void set_state(struct cache *c, enum cache_redis_state s, const char *why);
static void trip(struct cache *c, const char *why);

const char *cache_redis_state_name(enum cache_redis_state s)
{
	switch (s) {
	case CACHE_REDIS_CONNECTING:
		return "connecting";
	case CACHE_REDIS_UP:
		return "up";
	case CACHE_REDIS_OPEN:
		return "open";
	}
	return "unknown";
}

static void gen_key(uint64_t id, char out[32])
{
	snprintf(out, 32, "sluice:g:%016" PRIx64, id);
}

/* ---- the ready queue: results handed to the proxy from the loop ---- */

static void unref_flight(struct cache *c, struct cache_flight *fl)
{
	if (--fl->refs > 0)
		return;
	if (fl->in_map)
		HASH_DEL(c->flights, fl);
	free(fl->buf);
	free(fl);
}

static void drop_from_map(struct cache *c, struct cache_flight *fl)
{
	if (fl->in_map) {
		HASH_DEL(c->flights, fl);
		fl->in_map = false;
	}
}

static void list_del(struct cache_lookup **head, struct cache_lookup *lk)
{
	if (lk->prev)
		lk->prev->next = lk->next;
	else
		*head = lk->next;
	if (lk->next)
		lk->next->prev = lk->prev;
	lk->next = lk->prev = NULL;
}

static void ready_del(struct cache *c, struct cache_lookup *lk)
{
	if (c->ready_tail == lk)
		c->ready_tail = lk->prev;
	list_del(&c->ready, lk);
	lk->queued = false;
}

/* Hand <r> to <lk> (leader or waiter of its flight) from the loop. */
static void deliver(struct cache *c, struct cache_lookup *lk, enum cache_result r)
{
	struct cache_flight *fl = lk->flight;

	if (fl->leader == lk)
		fl->leader = NULL;
	else
		list_del(&fl->waiters, lk);
	if (r == CACHE_MISS) {
		fl->leader = lk;
		lk->leader = true;
		c->st.misses++;
	} else if (r == CACHE_HIT) {
		c->st.hits_redis++;
	} else {
		c->st.bypass++;
	}
	lk->result = r;
	lk->queued = true;
	lk->next = NULL;
	lk->prev = c->ready_tail;
	if (c->ready_tail)
		c->ready_tail->next = lk;
	else
		c->ready = lk;
	c->ready_tail = lk;
	ev_idle_start(c->loop, &c->idle);
}

static void drain(struct cache *c)
{
	struct cache_lookup *lk;

	while ((lk = c->ready)) {
		struct cache_flight *fl = lk->flight;
		enum cache_result r = lk->result;

		ready_del(c, lk);
		if (r == CACHE_HIT)
			lk->entry = fl->entry;
		if (r != CACHE_MISS) {
			lk->flight = NULL;
			lk->leader = false;
		}
		/* <fl> (and so the entry's bytes) lives until the callback returns */
		lk->cb(lk, r);
		if (r != CACHE_MISS)
			unref_flight(c, fl);
	}
	ev_idle_stop(c->loop, &c->idle);
}

static void prep_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	(void)loop, (void)revents;
	drain(w->data);
}

static void chk_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	(void)loop, (void)revents;
	drain(w->data);
}

static void idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)loop, (void)revents;
	drain(w->data);
}

/* Every lookup of <fl> goes to PostgreSQL; nothing will be stored. A
 * leader already at PostgreSQL keeps running (its store is skipped). */
static void fail_flight(struct cache *c, struct cache_flight *fl)
{
	fl->poisoned = true;
	drop_from_map(c, fl);
	if (fl->leader && fl->st != FL_RUNNING)
		deliver(c, fl->leader, CACHE_BYPASS);
	while (fl->waiters)
		deliver(c, fl->waiters, CACHE_BYPASS);
}

static void fail_all_flights(struct cache *c)
{
	struct cache_flight *fl, *tmp;

	HASH_ITER(hh, c->flights, fl, tmp)
	{
		fail_flight(c, fl);
	}
}

/* Generation <id> changed (our write or another instance's). */
static void invalidate(struct cache *c, uint64_t id)
{
	struct cache_flight *fl, *tmp;

	c->st.invalidations++;
	if (c->l1)
		(void)cache_l1_drop_gen(c->l1, id);
	HASH_ITER(hh, c->flights, fl, tmp)
	{
		for (unsigned i = 0; i < fl->ngens; i++) {
			if (fl->gens[i].id == id) {
				fail_flight(c, fl);
				break;
			}
		}
	}
}

/* ---- connections and commands ---- */

static void rconn_maybe_free(struct rconn *rc)
{
	if (!rc->ac && rc->refs == 0)
		free(rc);
}

static void arm_cmd_timer(struct cache *c)
{
	ev_timer_stop(c->loop, &c->cmd_timer);
	if (c->cmd && c->cmd->head) {
		double left = c->cmd->head->deadline - ev_time();

		ev_timer_set(&c->cmd_timer, left > 0 ? left : 0.0001, 0);
		ev_timer_start(c->loop, &c->cmd_timer);
	}
}

/*
 * Stop using <rc>: hiredis frees the context (now, or when the callback it
 * is in returns) and calls its pending callbacks with NULL; the last of
 * them frees <rc>. <free_ac> is false when hiredis is already tearing the
 * context down. Callbacks hold their reference until they return, so <rc>
 * is freed here only when no callback can still reach it.
 */
static void detach(struct cache *c, struct rconn *rc, bool free_ac)
{
	redisAsyncContext *ac;
	bool free_now;

	if (!rc)
		return;
	if (c->cmd == rc)
		c->cmd = NULL;
	if (c->subc == rc)
		c->subc = NULL;
	ac = rc->ac;
	rc->ac = NULL;
	free_now = rc->refs == 0;
	if (ac) {
		ac->data = NULL;
		if (free_ac)
			redisAsyncFree(ac);
	}
	if (free_now)
		free(rc);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct rconn *rc = ac->data;

	if (!rc || status == REDIS_OK)
		return;
	/* hiredis frees the context after this returns */
	struct cache *c = rc->c;
	detach(c, rc, false);
	trip(c, ac->errstr[0] ? ac->errstr : "connect failed");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rconn *rc = ac->data;

	(void)status;
	if (!rc)
		return;
	struct cache *c = rc->c;
	detach(c, rc, false);
	trip(c, "connection lost");
}

static void handle_reply(struct cache *c, struct cmd *cm, redisReply *r);
static void cmd_cb(redisAsyncContext *ac, void *reply, void *priv);

/*
 * Send <argc> arguments on the command connection, to be answered in
 * handle_reply as <kind> (holding a reference on <fl>). -1 when it could
 * not be queued (no connection): the caller treats it as a failure.
 */
static int send_cmd(struct cache *c, enum cmd_kind kind, struct cache_flight *fl, int argc,
                    const char **argv, const size_t *lens)
{
	struct rconn *rc = c->cmd;
	struct cmd *cm;

	if (!rc || !rc->ac)
		return -1;
	cm = calloc(1, sizeof(*cm));
	if (!cm)
		return -1;
	cm->conn = rc;
	cm->kind = kind;
	cm->fl = fl;
	cm->sent = ev_time();
	cm->deadline = cm->sent + (kind <= CMD_READY ? c->connect_timeout : c->timeout);
	if (redisAsyncCommandArgv(rc->ac, cmd_cb, cm, argc, argv, lens) != REDIS_OK) {
		free(cm);
		return -1;
	}
	if (fl)
		fl->refs++;
	rc->refs++;
	if (rc->tail)
		rc->tail->next = cm;
	else
		rc->head = cm;
	rc->tail = cm;
	if (rc->head == cm)
		arm_cmd_timer(c);
	return 0;
}

static void cmd_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cmd *cm = priv;
	struct rconn *rc = cm->conn;
	struct cache *c = rc->c;

	(void)ac;
	/* replies come in order: <cm> is the head */
	if (rc->head == cm) {
		rc->head = cm->next;
		if (!rc->head)
			rc->tail = NULL;
	}
	if (c->cmd == rc)
		arm_cmd_timer(c);
	if (!reply && rc->ac) {
		/* hiredis is dropping the connection: it frees the context */
		detach(c, rc, false);
		trip(c, "connection lost");
	}
	/* a detached connection's replies only fail their lookups */
	if (!c->closing && (rc == c->cmd || cm->kind == CMD_LOOKUP || cm->kind == CMD_CHECK)) {
		if (reply) {
			double ms = (ev_time() - cm->sent) * 1000.0;

			c->st.redis_calls++;
			c->st.redis_ms_total += ms;
		}
		handle_reply(c, cm, reply);
	}
	if (cm->fl)
		unref_flight(c, cm->fl);
	free(cm);
	/* a callback holds a reference: detach() left <rc> */
	rc->refs--; // NOLINT(clang-analyzer-unix.Malloc)
	            // left <rc>
	rconn_maybe_free(rc);
}

static void cmd_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct cache *c = w->data;

	(void)loop, (void)revents;
	if (!c->cmd || !c->cmd->head)
		return;
	if (c->cmd->head->deadline > ev_time() + 0.0005) {
		arm_cmd_timer(c);
		return;
	}
	c->st.redis_timeouts++;
	trip(c, "a command timed out");
}

/* A decimal counter from MGET: NIL is 0. False when malformed. */
static bool parse_gen(const redisReply *r, uint64_t *out)
{
	uint64_t v = 0;

	if (r->type == REDIS_REPLY_NIL) {
		*out = 0;
		return true;
	}
	if (r->type == REDIS_REPLY_INTEGER && r->integer >= 0) {
		*out = (uint64_t)r->integer;
		return true;
	}
	if (r->type != REDIS_REPLY_STRING || r->len < 1 || r->len > 19)
		return false;
	for (size_t i = 0; i < r->len; i++) {
		if (r->str[i] < '0' || r->str[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(r->str[i] - '0');
	}
	*out = v;
	return true;
}

/* An entry too big for the L1 (or no memory) is served from Redis only. */
static void l1_keep(struct cache *c, const struct cache_entry *e, const uint8_t *v, size_t len)
{
	if (cache_l1_put(c->l1, e, v, len) < 0)
		return;
}

/* Copy <len> bytes of an encoded entry into <fl> for everyone waiting. */
static int keep_entry(struct cache_flight *fl, const uint8_t *v, size_t len)
{
	uint8_t *b = malloc(len ? len : 1);

	if (!b)
		return -1;
	memcpy(b, v, len);
	free(fl->buf);
	fl->buf = b;
	if (cache_entry_decode(b, len, &fl->entry) < 0)
		return -1;
	return 0;
}

static void hand_out(struct cache *c, struct cache_flight *fl, enum cache_result r)
{
	drop_from_map(c, fl);
	if (fl->leader)
		deliver(c, fl->leader, r);
	while (fl->waiters)
		deliver(c, fl->waiters, r);
}

/* The lookup's MGET came back: hit, miss (a leader runs the query) or
 * failure (everyone to PostgreSQL). */
static void lookup_reply(struct cache *c, struct cache_flight *fl, redisReply *r, bool check)
{
	size_t first = check ? 0 : 1;
	struct cache_entry e;
	bool hit;

	if (fl->poisoned)
		return; /* its lookups were sent on already */
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != first + fl->ngens) {
		if (r)
			c->st.redis_errors++;
		fail_flight(c, fl);
		return;
	}
	for (unsigned i = 0; i < fl->ngens; i++) {
		if (!parse_gen(r->element[first + i], &fl->gens[i].val)) {
			c->st.malformed++;
			fail_flight(c, fl);
			return;
		}
	}
	if (check) {
		const struct cache_entry *le =
		        c->l1 ? cache_l1_get(c->l1, &fl->key, ev_now(c->loop)) : NULL;
		hit = le && le->ngens == fl->ngens;
		for (unsigned i = 0; hit && i < fl->ngens; i++)
			hit = le->gens[i].id == fl->gens[i].id &&
			      le->gens[i].val == fl->gens[i].val;
		if (hit) {
			size_t n = cache_entry_size(le);
			uint8_t *b = malloc(n);

			if (b)
				cache_entry_encode(le, b);
			if (!b || keep_entry(fl, b, n) < 0) {
				free(b);
				fail_flight(c, fl);
				return;
			}
			free(b);
			hand_out(c, fl, CACHE_HIT);
			return;
		}
		if (c->l1)
			cache_l1_drop_key(c->l1, &fl->key);
	} else {
		const redisReply *v = r->element[0];

		hit = false;
		if (v->type == REDIS_REPLY_STRING) {
			if (cache_entry_decode((const uint8_t *)v->str, v->len, &e) < 0 ||
			    e.key.hi != fl->key.hi || e.key.lo != fl->key.lo) {
				c->st.malformed++;
			} else {
				hit = e.ngens == fl->ngens;
				for (unsigned i = 0; hit && i < fl->ngens; i++)
					hit = e.gens[i].id == fl->gens[i].id &&
					      e.gens[i].val == fl->gens[i].val;
			}
		} else if (v->type != REDIS_REPLY_NIL) {
			c->st.malformed++;
		}
		if (hit) {
			if (keep_entry(fl, (const uint8_t *)v->str, v->len) < 0) {
				fail_flight(c, fl);
				return;
			}
			if (c->l1)
				l1_keep(c, &fl->entry, fl->buf, v->len);
			hand_out(c, fl, CACHE_HIT);
			return;
		}
	}
	/* a miss: the leader (or the first waiter, if the leader left) runs it */
	fl->st = FL_RUNNING;
	if (!fl->leader && fl->waiters) {
		struct cache_lookup *w = fl->waiters;

		list_del(&fl->waiters, w);
		fl->leader = w;
	}
	if (!fl->leader) {
		drop_from_map(c, fl);
		return;
	}
	deliver(c, fl->leader, CACHE_MISS);
}

static void maybe_up(struct cache *c)
{
	if (c->state == CACHE_REDIS_CONNECTING && c->cmd_ready && c->sub_ready)
		set_state(c, CACHE_REDIS_UP, NULL);
}

static void send_bump(struct cache *c, uint64_t id, enum cmd_kind kind)
{
	char gk[32], idhex[17];
	const char *argv[7] = {"EVAL", bump_script, "1", gk, c->channel, idhex, c->nonce};
	size_t lens[7];

	gen_key(id, gk);
	snprintf(idhex, sizeof(idhex), "%016" PRIx64, id);
	for (int i = 0; i < 7; i++)
		lens[i] = strlen(argv[i]);
	if (send_cmd(c, kind, NULL, 7, argv, lens) < 0)
		c->lost_bumps = true;
}

static void info_reply(struct cache *c, redisReply *r)
{
	const char *p;
	char id[48] = "";
	bool bump;

	if (!r || r->type != REDIS_REPLY_STRING) {
		trip(c, "INFO failed");
		return;
	}
	p = strstr(r->str, "run_id:");
	if (p) {
		size_t n = strcspn(p + 7, "\r\n");

		if (n < sizeof(id)) {
			memcpy(id, p + 7, n);
			id[n] = 0;
		}
	}
	bump = c->lost_bumps || (c->run_id[0] && strcmp(c->run_id, id) != 0);
	snprintf(c->run_id, sizeof(c->run_id), "%s", id);
	if (bump) {
		log_info("cache: bumping every entry's generation (%s)",
		         c->lost_bumps ? "writes were not published while Redis was away"
		                       : "Redis restarted");
		c->lost_bumps = false;
		send_bump(c, cache_gen_global(), CMD_READY);
		if (c->lost_bumps)
			trip(c, "cannot send the global bump");
		return;
	}
	c->cmd_ready = true;
	maybe_up(c);
}

static void handle_reply(struct cache *c, struct cmd *cm, redisReply *r)
{
	bool err = !r || r->type == REDIS_REPLY_ERROR;

	if (r && r->type == REDIS_REPLY_ERROR)
		c->st.redis_errors++;
	switch (cm->kind) {
	case CMD_HANDSHAKE:
		if (err) {
			if (r)
				log_warn("cache: Redis refused the connection setup: %.200s",
				         r->str);
			trip(c, "handshake refused");
		}
		break;
	case CMD_INFO:
		if (err)
			trip(c, "INFO refused");
		else
			info_reply(c, r);
		break;
	case CMD_READY:
		if (err) {
			c->lost_bumps = true;
			trip(c, "the global bump failed");
		} else {
			c->cmd_ready = true;
			maybe_up(c);
		}
		break;
	case CMD_LOOKUP:
	case CMD_CHECK:
		lookup_reply(c, cm->fl, err ? NULL : r, cm->kind == CMD_CHECK);
		break;
	case CMD_STORE:
		if (err)
			c->st.store_failed++;
		break;
	case CMD_BUMP:
		if (err) {
			/* other instances may still serve entries of that table */
			c->lost_bumps = true;
			trip(c, "a generation bump failed");
		}
		break;
	case CMD_HEARTBEAT:
		break;
	}
}

/* ---- the subscription ---- */

static bool parse_hex64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n != 16)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		int d = ch >= '0' && ch <= '9'   ? ch - '0'
		        : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
		                                 : -1;

		if (d < 0)
			return false;
		v = v << 4 | (uint64_t)d;
	}
	*out = v;
	return true;
}

/* "<id hex> <value> <instance>" or "hb <instance> <n>": untrusted. */
static void on_message(struct cache *c, const char *m, size_t len)
{
	char buf[96], *a, *b, *rest;
	uint64_t id;

	if (len >= sizeof(buf))
		goto bad;
	memcpy(buf, m, len);
	buf[len] = 0;
	a = strtok_r(buf, " ", &rest);
	b = a ? strtok_r(NULL, " ", &rest) : NULL;
	rest = b ? strtok_r(NULL, " ", &rest) : NULL;
	if (!rest)
		goto bad;
	if (strcmp(a, "hb") == 0) {
		if (strcmp(b, c->nonce) == 0 && strtoull(rest, NULL, 10) == c->hb_n)
			c->hb_seen = true;
		return;
	}
	if (!parse_hex64(a, strlen(a), &id))
		goto bad;
	if (strcmp(rest, c->nonce) == 0)
		return; /* ours: done when it was sent */
	invalidate(c, id);
	return;
bad:
	/* a bump we cannot read may be any table's */
	c->st.malformed++;
	if (c->l1)
		cache_l1_flush(c->l1);
	fail_all_flights(c);
}

static void sub_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rconn *rc = priv;
	struct cache *c = rc->c;
	redisReply *r = reply;

	(void)ac;
	if (!r) {
		/* the subscription's callback is dropped once, with NULL */
		if (rc->ac) {
			detach(c, rc, false);
			trip(c, "subscription lost");
		}
		/* a callback holds a reference: detach() left <rc> */
		rc->refs--; // NOLINT(clang-analyzer-unix.Malloc)
		            // detach() left <rc>
		rconn_maybe_free(rc);
		return;
	}
	if (c->closing || rc != c->subc)
		return;
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING) {
		c->st.malformed++;
		return;
	}
	if (strcmp(r->element[0]->str, "subscribe") == 0) {
		c->sub_ready = true;
		maybe_up(c);
	} else if (strcmp(r->element[0]->str, "message") == 0 &&
	           r->element[2]->type == REDIS_REPLY_STRING) {
		on_message(c, r->element[2]->str, r->element[2]->len);
	}
}

static void hs_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rconn *rc = priv;
	struct cache *c = rc->c;
	redisReply *r = reply;

	(void)ac;
	if (!r && rc->ac) {
		detach(c, rc, false);
		trip(c, "subscription lost");
	} else if (r && r->type == REDIS_REPLY_ERROR && !c->closing && rc == c->subc) {
		trip(c, "the subscription's AUTH failed");
	}
	/* a callback holds a reference: detach() left <rc> */
	rc->refs--; // NOLINT(clang-analyzer-unix.Malloc)
	            // left <rc>
	rconn_maybe_free(rc);
}

static struct rconn *open_conn(struct cache *c, bool sub)
{
	struct rconn *rc = calloc(1, sizeof(*rc));
	redisAsyncContext *ac;

	if (!rc)
		return NULL;
	ac = c->unix_path ? redisAsyncConnectUnix(c->unix_path)
	                  : redisAsyncConnect(c->host, c->port);
	if (!ac || ac->err) {
		if (ac)
			redisAsyncFree(ac);
		free(rc);
		return NULL;
	}
	rc->c = c;
	rc->ac = ac;
	rc->sub = sub;
	ac->data = rc;
	if (redisLibevAttach(c->loop, ac) != REDIS_OK) {
		redisAsyncFree(ac);
		free(rc);
		return NULL;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	return rc;
}

static int auth_argv(const struct cache *c, const char **argv, size_t *lens)
{
	int n = 0;

	argv[n++] = "AUTH";
	if (c->user)
		argv[n++] = c->user;
	argv[n++] = c->password;
	for (int i = 0; i < n; i++)
		lens[i] = strlen(argv[i]);
	return n;
}

static void connect_both(struct cache *c)
{
	const char *argv[4];
	size_t lens[4];
	char db[16];
	int n;

	c->cmd_ready = c->sub_ready = false;
	c->cmd = open_conn(c, false);
	c->subc = c->cmd ? open_conn(c, true) : NULL;
	if (!c->cmd || !c->subc) {
		trip(c, "cannot open a connection");
		return;
	}
	/* the command connection: AUTH, SELECT, INFO (then maybe a bump) */
	if (c->password) {
		n = auth_argv(c, argv, lens);
		if (send_cmd(c, CMD_HANDSHAKE, NULL, n, argv, lens) < 0)
			goto fail;
	}
	if (c->db) {
		snprintf(db, sizeof(db), "%d", c->db);
		argv[0] = "SELECT", argv[1] = db;
		lens[0] = 6, lens[1] = strlen(db);
		if (send_cmd(c, CMD_HANDSHAKE, NULL, 2, argv, lens) < 0)
			goto fail;
	}
	argv[0] = "INFO", argv[1] = "server";
	lens[0] = 4, lens[1] = 6;
	if (send_cmd(c, CMD_INFO, NULL, 2, argv, lens) < 0)
		goto fail;
	/* the subscription: AUTH, SUBSCRIBE */
	if (c->password) {
		n = auth_argv(c, argv, lens);
		if (redisAsyncCommandArgv(c->subc->ac, hs_cb, c->subc, n, argv, lens) != REDIS_OK)
			goto fail;
		c->subc->refs++;
	}
	argv[0] = "SUBSCRIBE", argv[1] = c->channel;
	lens[0] = 9, lens[1] = strlen(c->channel);
	if (redisAsyncCommandArgv(c->subc->ac, sub_cb, c->subc, 2, argv, lens) != REDIS_OK)
		goto fail;
	c->subc->refs++;
	return;
fail:
	trip(c, "cannot send the handshake");
}

/* ---- the breaker ---- */

static void set_state(struct cache *c, enum cache_redis_state s, const char *why)
{
	enum cache_redis_state old = c->state;

	c->state = s;
	switch (s) {
	case CACHE_REDIS_OPEN:
		ev_timer_stop(c->loop, &c->connect_timer);
		ev_timer_stop(c->loop, &c->hb_timer);
		ev_timer_stop(c->loop, &c->cmd_timer);
		if (old == CACHE_REDIS_UP) {
			c->breaker_wait = c->breaker_min;
			log_warn("cache: Redis unavailable (%s); queries go to PostgreSQL, "
			         "retrying in %.1fs",
			         why, c->breaker_wait);
		}
		c->st.breaker_trips++;
		detach(c, c->cmd, true);
		detach(c, c->subc, true);
		/* bumps may be missed from now on */
		if (c->l1)
			cache_l1_flush(c->l1);
		fail_all_flights(c);
		ev_timer_set(&c->probe_timer, c->breaker_wait, 0);
		ev_timer_start(c->loop, &c->probe_timer);
		if (old != CACHE_REDIS_UP) {
			c->breaker_wait *= 2;
			if (c->breaker_wait > c->breaker_max)
				c->breaker_wait = c->breaker_max;
		}
		break;
	case CACHE_REDIS_CONNECTING:
		ev_timer_set(&c->connect_timer, c->connect_timeout, 0);
		ev_timer_start(c->loop, &c->connect_timer);
		connect_both(c);
		break;
	case CACHE_REDIS_UP:
		ev_timer_stop(c->loop, &c->connect_timer);
		/* invalidations may have been missed while away */
		if (c->l1)
			cache_l1_flush(c->l1);
		if (c->ever_up) {
			c->st.reconnects++;
			log_info("cache: Redis is back");
		}
		c->ever_up = true;
		c->breaker_wait = c->breaker_min;
		c->hb_seen = true;
		ev_timer_set(&c->hb_timer, c->heartbeat, c->heartbeat);
		ev_timer_start(c->loop, &c->hb_timer);
		break;
	}
}

static void trip(struct cache *c, const char *why)
{
	if (c->closing || c->state == CACHE_REDIS_OPEN)
		return;
	set_state(c, CACHE_REDIS_OPEN, why);
}

static void probe_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct cache *c = w->data;

	(void)loop, (void)revents;
	if (c->state == CACHE_REDIS_OPEN)
		set_state(c, CACHE_REDIS_CONNECTING, NULL);
}

static void connect_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct cache *c = w->data;

	(void)loop, (void)revents;
	c->st.redis_timeouts++;
	trip(c, "connect timed out");
}

static void hb_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct cache *c = w->data;
	char msg[64];
	const char *argv[3] = {"PUBLISH", c->channel, msg};
	size_t lens[3];

	(void)loop, (void)revents;
	if (!c->hb_seen) {
		trip(c, "the subscription went silent");
		return;
	}
	c->hb_seen = false;
	c->hb_n++;
	snprintf(msg, sizeof(msg), "hb %s %" PRIu64, c->nonce, c->hb_n);
	for (int i = 0; i < 3; i++)
		lens[i] = strlen(argv[i]);
	if (send_cmd(c, CMD_HEARTBEAT, NULL, 3, argv, lens) < 0)
		trip(c, "cannot send the heartbeat");
}

/* ---- the API ---- */

static char *dup_opt(const char *s)
{
	return s ? strdup(s) : NULL;
}

struct cache *cache_new(struct ev_loop *loop, const struct conf_cache *cc,
                        const struct cache_opts *opts, char *err, size_t errlen)
{
	struct cache_opts o = {500, 5000, 1000, 1000, 500, 30000};
	struct cache *c = calloc(1, sizeof(*c));

	if (opts)
		o = *opts;
	if (!c)
		goto oom;
	c->loop = loop;
	c->host = dup_opt(cc->redis_host);
	c->unix_path = dup_opt(cc->redis_unix);
	c->user = dup_opt(cc->redis_user);
	c->password = dup_opt(cc->redis_password);
	if ((cc->redis_host && !c->host) || (cc->redis_unix && !c->unix_path) ||
	    (cc->redis_user && !c->user) || (cc->redis_password && !c->password))
		goto oom;
	if (!c->host && !c->unix_path) {
		snprintf(err, errlen, "cache: no Redis address");
		cache_free(c);
		return NULL;
	}
	c->port = cc->redis_port;
	c->db = cc->redis_db;
	c->max_result = cc->max_result_bytes;
	c->strict = cc->strict;
	c->timeout = cc->redis_timeout_ms / 1000.0;
	c->connect_timeout = (o.connect_timeout_ms > cc->redis_timeout_ms ? o.connect_timeout_ms
	                                                                  : cc->redis_timeout_ms) /
	                     1000.0;
	c->heartbeat = o.heartbeat_ms / 1000.0;
	c->breaker_min = c->breaker_wait = o.breaker_min_ms / 1000.0;
	c->breaker_max = o.breaker_max_ms / 1000.0;
	snprintf(c->channel, sizeof(c->channel), "sluice:bump:%d", c->db);
	snprintf(c->nonce, sizeof(c->nonce), "%016" PRIx64,
	         (uint64_t)stats_clock_ns() ^ ((uint64_t)(uintptr_t)c << 16) ^
	                 ((uint64_t)getpid() << 40) ^ (uint64_t)random());
	if (cc->invalidation == CONF_CACHE_INVAL_NOTIFY && cc->nnotify) {
		c->notify = cache_notify_new(loop, c, cc, &o);
		if (!c->notify)
			goto oom;
	}
	if (cc->l1_bytes) {
		c->l1 = cache_l1_new(cc->l1_bytes);
		if (!c->l1)
			goto oom;
	}
	c->state = CACHE_REDIS_CONNECTING;
	ev_timer_init(&c->cmd_timer, cmd_timer_cb, 0, 0);
	ev_timer_init(&c->connect_timer, connect_timer_cb, 0, 0);
	ev_timer_init(&c->probe_timer, probe_cb, 0, 0);
	ev_timer_init(&c->hb_timer, hb_cb, 0, 0);
	c->cmd_timer.data = c->connect_timer.data = c->probe_timer.data = c->hb_timer.data = c;
	ev_prepare_init(&c->prep, prep_cb);
	ev_check_init(&c->chk, chk_cb);
	ev_idle_init(&c->idle, idle_cb);
	c->prep.data = c->chk.data = c->idle.data = c;
	return c;
oom:
	snprintf(err, errlen, "cache: out of memory");
	cache_free(c);
	return NULL;
}

void cache_start(struct cache *c)
{
	if (c->started)
		return;
	c->started = true;
	ev_prepare_start(c->loop, &c->prep);
	ev_check_start(c->loop, &c->chk);
	set_state(c, CACHE_REDIS_CONNECTING, NULL);
	cache_notify_start(c->notify);
}

void cache_free(struct cache *c)
{
	struct cache_flight *fl, *tmp;

	if (!c)
		return;
	c->closing = true;
	/* first: a notification must not bump into a cache being freed */
	cache_notify_free(c->notify);
	c->notify = NULL;
	if (c->loop) {
		ev_timer_stop(c->loop, &c->cmd_timer);
		ev_timer_stop(c->loop, &c->connect_timer);
		ev_timer_stop(c->loop, &c->probe_timer);
		ev_timer_stop(c->loop, &c->hb_timer);
		ev_prepare_stop(c->loop, &c->prep);
		ev_check_stop(c->loop, &c->chk);
		ev_idle_stop(c->loop, &c->idle);
	}
	detach(c, c->cmd, true);
	detach(c, c->subc, true);
	while (c->ready)
		ready_del(c, c->ready);
	HASH_ITER(hh, c->flights, fl, tmp)
	{
		HASH_DEL(c->flights, fl); // NOLINT(clang-analyzer-unix.Malloc)
		free(fl->buf);
		free(fl);
	}
	cache_l1_free(c->l1);
	free(c->host);
	free(c->unix_path);
	free(c->user);
	free(c->password);
	free(c);
}

enum cache_result cache_lookup(struct cache *c, struct cache_lookup *lk)
{
	struct cache_flight *fl;
	const struct cache_entry *le = NULL;
	char ek[CACHE_KEY_STR_LEN + 1], gk[CACHE_MAX_GENS][32];
	const char *argv[2 + CACHE_MAX_GENS];
	size_t lens[2 + CACHE_MAX_GENS];
	int argc = 0;

	lk->flight = NULL;
	lk->leader = lk->queued = false;
	lk->next = lk->prev = NULL;
	if (c->state != CACHE_REDIS_UP || lk->ntables > CACHE_MAX_TABLES) {
		c->st.bypass++;
		return CACHE_BYPASS;
	}
	if (c->l1) {
		le = cache_l1_get(c->l1, &lk->key, ev_now(c->loop));
		if (le && !c->strict) {
			lk->entry = *le;
			c->st.hits_l1++;
			return CACHE_HIT;
		}
	}
	HASH_FIND(hh, c->flights, &lk->key, sizeof(lk->key), fl);
	if (fl) {
		lk->flight = fl;
		fl->refs++;
		lk->next = fl->waiters;
		if (fl->waiters)
			fl->waiters->prev = lk;
		fl->waiters = lk;
		c->st.coalesced++;
		return CACHE_PENDING;
	}
	fl = calloc(1, sizeof(*fl));
	if (!fl) {
		c->st.bypass++;
		return CACHE_BYPASS;
	}
	fl->key = lk->key;
	fl->gens[fl->ngens++].id = cache_gen_global();
	fl->gens[fl->ngens++].id = cache_gen_db(lk->db);
	for (unsigned i = 0; i < lk->ntables; i++)
		fl->gens[fl->ngens++].id = cache_gen_table(lk->db, lk->tables[i]);
	fl->st = le ? FL_CHECK : FL_LOOKUP;
	argv[argc] = "MGET", lens[argc++] = 4;
	if (!le) {
		cache_key_str(&lk->key, ek);
		argv[argc] = ek, lens[argc++] = CACHE_KEY_STR_LEN;
	}
	for (unsigned i = 0; i < fl->ngens; i++) {
		gen_key(fl->gens[i].id, gk[i]);
		argv[argc] = gk[i], lens[argc++] = strlen(gk[i]);
	}
	fl->refs = 1; /* the lookup's; send_cmd takes the command's */
	if (send_cmd(c, le ? CMD_CHECK : CMD_LOOKUP, fl, argc, argv, lens) < 0) {
		free(fl);
		c->st.bypass++;
		trip(c, "cannot send a lookup");
		return CACHE_BYPASS;
	}
	HASH_ADD(hh, c->flights, key, sizeof(fl->key), fl);
	fl->in_map = true;
	fl->leader = lk;
	lk->flight = fl;
	return CACHE_PENDING;
}

/* The leader gives up: its waiters go to PostgreSQL. */
static void leader_gone(struct cache *c, struct cache_flight *fl)
{
	fl->leader = NULL;
	if (fl->st == FL_RUNNING)
		fail_flight(c, fl);
	/* in LOOKUP/CHECK, a waiter takes over when the reply comes */
}

void cache_lookup_cancel(struct cache *c, struct cache_lookup *lk)
{
	struct cache_flight *fl = lk->flight;

	if (!fl)
		return;
	if (lk->queued) {
		ready_del(c, lk);
		if (lk->result == CACHE_MISS)
			leader_gone(c, fl);
	} else if (fl->leader == lk) {
		leader_gone(c, fl);
	} else {
		list_del(&fl->waiters, lk);
	}
	lk->flight = NULL;
	lk->leader = false;
	unref_flight(c, fl);
}

void cache_abandon(struct cache *c, struct cache_lookup *lk)
{
	cache_lookup_cancel(c, lk);
}

void cache_store(struct cache *c, struct cache_lookup *lk, const struct cache_capture *cap,
                 uint32_t ttl_s)
{
	struct cache_flight *fl = lk->flight;
	struct cache_entry e = {0};
	size_t len;
	uint8_t *v;
	char ek[CACHE_KEY_STR_LEN + 1], ttl[16];
	const char *argv[5];
	size_t lens[5];

	if (!fl || fl->leader != lk || fl->st != FL_RUNNING || lk->queued) {
		cache_lookup_cancel(c, lk);
		return;
	}
	if (!cap->complete || cap->failed || fl->poisoned || c->state != CACHE_REDIS_UP) {
		if (cap->too_big)
			c->st.too_big++;
		cache_lookup_cancel(c, lk);
		return;
	}
	e.key = fl->key;
	e.created_ms = (uint64_t)(ev_now(c->loop) * 1000.0);
	e.ttl_s = ttl_s ? ttl_s : 1;
	e.ngens = fl->ngens;
	memcpy(e.gens, fl->gens, sizeof(e.gens[0]) * fl->ngens);
	e.rowdesc = cap->buf;
	e.rowdesc_len = cap->rowdesc_len;
	e.body = cap->buf + cap->rowdesc_len;
	e.body_len = (uint32_t)(cap->len - cap->rowdesc_len);
	len = cache_entry_size(&e);
	if (len > c->max_result) {
		c->st.too_big++;
		cache_lookup_cancel(c, lk);
		return;
	}
	v = malloc(len);
	if (!v) {
		cache_lookup_cancel(c, lk);
		return;
	}
	cache_entry_encode(&e, v);
	free(fl->buf);
	fl->buf = v;
	if (cache_entry_decode(v, len, &fl->entry) < 0) {
		/* the capture let through something that would not decode */
		c->st.store_failed++;
		cache_lookup_cancel(c, lk);
		return;
	}
	cache_key_str(&fl->key, ek);
	snprintf(ttl, sizeof(ttl), "%u", (unsigned)e.ttl_s);
	argv[0] = "SET", argv[1] = ek, argv[2] = (const char *)v, argv[3] = "EX", argv[4] = ttl;
	lens[0] = 3, lens[1] = CACHE_KEY_STR_LEN, lens[2] = len, lens[3] = 2, lens[4] = strlen(ttl);
	if (send_cmd(c, CMD_STORE, NULL, 5, argv, lens) == 0)
		c->st.stores++;
	else
		c->st.store_failed++;
	if (c->l1)
		l1_keep(c, &fl->entry, v, len);
	/* the leader is done; everyone who waited gets the result */
	fl->leader = NULL;
	lk->flight = NULL;
	lk->leader = false;
	drop_from_map(c, fl);
	while (fl->waiters)
		deliver(c, fl->waiters, CACHE_HIT);
	unref_flight(c, fl);
}

static void bump_id(struct cache *c, uint64_t id)
{
	invalidate(c, id);
	if (c->state == CACHE_REDIS_UP)
		send_bump(c, id, CMD_BUMP);
	else
		c->lost_bumps = true;
	if (c->lost_bumps && c->state == CACHE_REDIS_UP)
		trip(c, "cannot send a generation bump");
}

void cache_bump(struct cache *c, const char *db, const char *const *tables, size_t n)
{
	for (size_t i = 0; i < n; i++)
		bump_id(c, cache_gen_table(db, tables[i]));
}

void cache_bump_db(struct cache *c, const char *db)
{
	bump_id(c, cache_gen_db(db));
}

void cache_clear(struct cache *c)
{
	if (c->l1)
		cache_l1_flush(c->l1);
	bump_id(c, cache_gen_global());
}

void cache_count(struct cache *c, enum cache_reason r)
{
	if (r != CACHE_OK && r != CACHE_NOT_MARKED && (unsigned)r < CACHE_NREASONS)
		c->st.uncacheable[r]++;
}

void cache_get_stats(const struct cache *c, struct cache_stats *out)
{
	*out = c->st;
	if (c->l1)
		cache_l1_stats(c->l1, &out->l1);
	else
		memset(&out->l1, 0, sizeof(out->l1));
	out->state = c->state;
	out->inflight = 0;
	for (const struct cmd *cm = c->cmd ? c->cmd->head : NULL; cm; cm = cm->next)
		out->inflight++;
	cache_notify_counts(c->notify, &out->notify);
}

const struct cache_notify *cache_get_notify(const struct cache *c)
{
	return c->notify;
}

enum cache_redis_state cache_state(const struct cache *c)
{
	return c->state;
}
