/* libFuzzer target: the SQL scanner must take any bytes, complete or not,
 * with any buffer, and keep its promises: offsets within the text and the
 * buffer, each normalized text NUL-terminated inside the buffer with no
 * marker left in it and no space at its start, at most
 * PROTO_SQL_MAX_STMTS statements in order, each source starting at a token
 * or comment, hints that never hold both cache and nocache, a
 * fingerprint never 0, the same result when scanned twice, and the same
 * statements, fingerprints and keywords whatever the buffer's size, the
 * smaller buffer's text being a prefix of the larger one's. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *sql, size_t len, const char *buf, size_t cap,
                  const struct proto_sql_scan *r)
{
	const char *nul = len ? memchr(sql, '\0', len) : NULL;
	size_t end = nul ? (size_t)(nul - sql) : len, prev_end = 0;

	if (r->nstmts > PROTO_SQL_MAX_STMTS)
		abort();
	for (unsigned i = 0; i < r->nstmts; i++) {
		const struct proto_sql_stmt *st = &r->stmt[i];

		if (st->fp == 0 || st->keyword > PROTO_KW_OTHER ||
		    (st->hints & ~(PROTO_SQL_HINT_CACHE | PROTO_SQL_HINT_NOCACHE)) ||
		    st->hints == (PROTO_SQL_HINT_CACHE | PROTO_SQL_HINT_NOCACHE))
			abort();
		if ((st->hints & PROTO_SQL_HINT_NOCACHE) && st->cache_ttl)
			abort();
		/* the source: in the text, in order, trimmed, not empty */
		if (st->src_len == 0 || st->src_off < prev_end || st->src_off + st->src_len > end)
			abort();
		if (strchr(" \t\n\r\f\v", sql[st->src_off]))
			abort();
		prev_end = st->src_off + st->src_len;
		if (cap == 0) {
			if (st->norm_len || !st->cut)
				abort();
			continue;
		}
		if ((size_t)st->norm_off + st->norm_len >= cap || buf[st->norm_off + st->norm_len])
			abort();
		if (memchr(buf + st->norm_off, '\0', st->norm_len))
			abort();
		if (st->norm_len && buf[st->norm_off] == ' ')
			abort();
	}
}

/* What does not depend on the buffer (fields one by one: padding differs). */
static bool same_stmt(const struct proto_sql_stmt *a, const struct proto_sql_stmt *b)
{
	return a->fp == b->fp && a->src_off == b->src_off && a->src_len == b->src_len &&
	       a->keyword == b->keyword && a->hints == b->hints && a->cache_ttl == b->cache_ttl &&
	       a->nparams == b->nparams;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t caps[] = {0, 1, 2, 3, 7, 16, 61};
	struct proto_sql_scan big, again, small;
	bool complete;
	size_t cap, len;
	const char *sql;
	char *bigbuf, *smallbuf;

	if (size < 1)
		return 0;
	complete = data[0] & 1;
	cap = caps[(data[0] >> 1) % (sizeof(caps) / sizeof(caps[0]))];
	sql = (const char *)data + 1;
	len = size - 1;

	/* room for every statement whole: text never grows past 12 times its
	 * source ("1," becomes "$100000001,") */
	size_t bigcap = 12 * len + 64;
	bigbuf = malloc(bigcap);
	smallbuf = malloc(cap ? cap : 1);
	if (!bigbuf || !smallbuf)
		abort();

	proto_sql_scan(sql, len, complete, bigbuf, bigcap, &big);
	check(sql, len, bigbuf, bigcap, &big);
	for (unsigned i = 0; i < big.nstmts; i++)
		if (big.stmt[i].cut && (complete || i + 1 < big.nstmts))
			abort(); /* only the text's end cuts, when there is room */

	char *copy = malloc(bigcap);
	if (!copy)
		abort();
	proto_sql_scan(sql, len, complete, copy, bigcap, &again);
	if (again.nstmts != big.nstmts)
		abort();
	for (unsigned i = 0; i < big.nstmts; i++)
		if (!same_stmt(&again.stmt[i], &big.stmt[i]) ||
		    again.stmt[i].cut != big.stmt[i].cut ||
		    again.stmt[i].norm_off != big.stmt[i].norm_off ||
		    again.stmt[i].norm_len != big.stmt[i].norm_len ||
		    memcmp(copy + big.stmt[i].norm_off, bigbuf + big.stmt[i].norm_off,
		           big.stmt[i].norm_len) != 0)
			abort();
	free(copy);

	proto_sql_scan(sql, len, complete, smallbuf, cap, &small);
	check(sql, len, smallbuf, cap, &small);
	if (small.nstmts != big.nstmts)
		abort();
	for (unsigned i = 0; i < big.nstmts; i++) {
		const struct proto_sql_stmt *a = &small.stmt[i], *b = &big.stmt[i];

		if (!same_stmt(a, b))
			abort();
		if (a->norm_len > b->norm_len || (a->norm_len < b->norm_len && !a->cut) ||
		    (b->cut && !a->cut))
			abort();
		if (cap && memcmp(smallbuf + a->norm_off, bigbuf + b->norm_off, a->norm_len) != 0)
			abort();
	}
	free(bigbuf);
	free(smallbuf);
	return 0;
}
