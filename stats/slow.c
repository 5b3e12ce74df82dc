/*
 * Slow-query log: a statement whose execution took slow_query_ms or more
 * writes one line at LOG level (INFO, as PostgreSQL's
 * log_min_duration_statement does: it is a report, not a fault) and goes
 * into a ring of slow_query_log_size entries for SHOW SLOW, newest first.
 * The text is the normalized one (literals are $n), so no data leaks into
 * the log; every name and the text are escaped so that none can forge a
 * line. Each entry holds its strings in one allocation, cut at
 * STATS_NAME_MAX bytes for names and STATS_EXAMPLE_MAX for the text, so
 * the ring's memory is bounded by its size.
 */
#include "stats/stats_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t cut_len(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);

	if (n >= cap) {
		n = cap - 1;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	return n;
}

static void log_slow(const struct stats_event *ev, uint64_t exec_ns, uint8_t cls, const char *text)
{
	char db[STATS_NAME_MAX * 2], user[STATS_NAME_MAX * 2], app[STATS_NAME_MAX * 2],
	        addr[STATS_NAME_MAX * 2], txt[1024], state[24];

	if (log_current_level < LOG_LVL_INFO)
		return;
	log_write(LOG_LVL_INFO,
	          "slow statement: %.3f ms (waited %.3f ms) db=%s user=%s app=%s client=%s "
	          "server_pid=%u class=%s sqlstate=%s fp=%016llx: %s",
	          (double)exec_ns / 1e6, (double)ev->wait_ns / 1e6,
	          log_escape(db, sizeof(db), ev->scope->db),
	          log_escape(user, sizeof(user), ev->scope->user),
	          log_escape(app, sizeof(app), ev->app_name),
	          log_escape(addr, sizeof(addr), ev->client_addr), ev->server_pid,
	          stats_class_name((enum stats_class)cls),
	          log_escape(state, sizeof(state), ev->sqlstate[0] ? ev->sqlstate : NULL),
	          (unsigned long long)ev->fp, log_escape(txt, sizeof(txt), text));
}

static void entry_clear(struct stats *st, struct stats_slow_entry *e)
{
	stats_release(st, e->strs, e->strs_size);
	memset(e, 0, sizeof(*e));
}

void stats_slow_note(struct stats *st, const struct stats_event *ev, uint64_t exec_ns, uint8_t cls,
                     const char *text)
{
	const char *src[5] = {ev->scope->db, ev->scope->user, ev->app_name ? ev->app_name : "",
	                      ev->client_addr ? ev->client_addr : "", text ? text : ""};
	size_t len[5], total = 0, o = 0;
	const char **dst[5];
	struct stats_slow_entry *e;
	struct timespec ts;

	log_slow(ev, exec_ns, cls, text);
	if (st->slow_cap == 0)
		return;
	e = &st->slow[st->slow_next];
	entry_clear(st, e);
	for (unsigned i = 0; i < 5; i++) {
		len[i] = cut_len(src[i], i == 4 ? STATS_EXAMPLE_MAX : STATS_NAME_MAX);
		total += len[i] + 1;
	}
	e->strs = stats_alloc(st, total);
	if (!e->strs)
		return; /* the slot stays empty: stats_slow skips it */
	e->strs_size = total;
	dst[0] = &e->db;
	dst[1] = &e->user;
	dst[2] = &e->app;
	dst[3] = &e->addr;
	dst[4] = &e->text;
	for (unsigned i = 0; i < 5; i++) {
		memcpy(e->strs + o, src[i], len[i]);
		e->strs[o + len[i]] = 0;
		*dst[i] = e->strs + o;
		o += len[i] + 1;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	e->at = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	e->fp = ev->fp;
	e->wait_ns = ev->wait_ns;
	e->exec_ns = exec_ns;
	e->server_pid = ev->server_pid;
	e->cls = cls;
	memcpy(e->sqlstate, ev->sqlstate, sizeof(e->sqlstate));
	e->sqlstate[sizeof(e->sqlstate) - 1] = 0;
	st->slow_next = (st->slow_next + 1) % st->slow_cap;
	if (st->slow_n < st->slow_cap)
		st->slow_n++;
}

void stats_slow_clear(struct stats *st)
{
	for (uint32_t i = 0; i < st->slow_cap; i++)
		entry_clear(st, &st->slow[i]);
	st->slow_n = 0;
	st->slow_next = 0;
}

/* The ring gets <cap> slots keeping its newest entries; on OOM it stays as it was. */
void stats_slow_resize(struct stats *st, uint32_t cap)
{
	struct stats_slow_entry *ring = NULL;
	uint32_t keep = st->slow_n < cap ? st->slow_n : cap;

	if (cap == st->slow_cap)
		return;
	if (cap) {
		ring = stats_alloc(st, (size_t)cap * sizeof(*ring));
		if (!ring)
			return;
	}
	/* newest <keep> entries move, oldest first, so slot keep - 1 is the newest */
	for (uint32_t k = 0; k < st->slow_n; k++) {
		uint32_t i = (st->slow_next + st->slow_cap - 1 - k) % st->slow_cap;

		if (k < keep) {
			ring[keep - 1 - k] = st->slow[i];
			memset(&st->slow[i], 0, sizeof(st->slow[i]));
		} else {
			entry_clear(st, &st->slow[i]);
		}
	}
	stats_release(st, st->slow, (size_t)st->slow_cap * sizeof(*st->slow));
	st->slow = ring;
	st->slow_cap = cap;
	st->slow_n = keep;
	st->slow_next = cap ? keep % cap : 0;
}

void stats_slow(struct stats *st, stats_slow_cb cb, void *arg)
{
	for (uint32_t k = 0; k < st->slow_n; k++) {
		const struct stats_slow_entry *e =
		        &st->slow[(st->slow_next + st->slow_cap - 1 - k) % st->slow_cap];
		struct stats_slow_view v;

		if (!e->strs)
			continue;
		v.at = e->at;
		v.db = e->db;
		v.user = e->user;
		v.app_name = e->app;
		v.client_addr = e->addr;
		v.wait_ms = (double)e->wait_ns / 1e6;
		v.exec_ms = (double)e->exec_ns / 1e6;
		v.server_pid = e->server_pid;
		v.cls = e->cls;
		v.fp = e->fp;
		v.sqlstate = e->sqlstate;
		v.text = e->text;
		cb(arg, &v);
	}
}
