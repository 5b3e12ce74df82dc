/* libFuzzer target: the scanner's fast path (proto_sql_skeleton) may stand
 * for a full scan only if every two texts with one skeleton scan alike.
 * Each input is checked against itself with its literal values changed
 * (skel_mutate.h): when the two skeletons agree, proto_sql_scan must give
 * both the same statements, fingerprints, keywords, hints and parameter
 * counts. A text without literals must have the key of its raw bytes, and
 * a text proto_sql_again takes for the input but for its integer must have
 * the input's key. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "protocol/proto.h"
#include "tests/fuzz/skel_mutate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool alike(const struct proto_sql_scan *a, const struct proto_sql_scan *b)
{
	if (a->nstmts != b->nstmts)
		return false;
	for (unsigned i = 0; i < a->nstmts; i++) {
		const struct proto_sql_stmt *x = &a->stmt[i], *y = &b->stmt[i];

		if (x->fp != y->fp || x->keyword != y->keyword || x->hints != y->hints ||
		    x->cache_ttl != y->cache_ttl || x->nparams != y->nparams || x->cut != y->cut)
			return false;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct proto_sql_scan a, b;
	const char *sql;
	size_t len, mlen, cap;
	char *mut, *buf;
	uint64_t ka, kb;

	if (size < 1)
		return 0;
	sql = (const char *)data + 1;
	len = size - 1;
	mut = malloc(3 * len + 1);
	cap = 40 * len + 64; /* every statement whole, cut by nothing */
	buf = malloc(cap);
	if (!mut || !buf)
		abort();
	mlen = skel_mutate(sql, len, data[0], mut);

	ka = proto_sql_skeleton(sql, len);
	kb = proto_sql_skeleton(mut, mlen);
	/* the same text but for its one integer has its key */
	struct proto_sql_lits in_lits;
	if (proto_sql_skeleton_lits(sql, len, &in_lits) != ka)
		abort();
	if (ka && proto_sql_again(mut, mlen, sql, len, &in_lits) && kb != ka)
		abort();
	if (!ka)
		goto out;
	proto_sql_scan(sql, len, true, buf, cap, &a);
	if (ka == kb) {
		proto_sql_scan(mut, mlen, true, buf, cap, &b);
		if (!alike(&a, &b))
			abort();
	}
	/* no literal: the key of the raw text (a Parse's memo key) */
	bool lits = false;
	for (unsigned i = 0; i < a.nstmts; i++)
		lits |= a.stmt[i].nparams > 0;
	if (!lits && ka != (XXH3_64bits(sql, len) | 1))
		abort();
out:
	free(mut);
	free(buf);
	return 0;
}
