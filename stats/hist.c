/*
 * Fixed-memory latency histogram: logarithmic buckets, so the error is
 * relative (DDSketch's idea) and the memory does not depend on how many
 * values went in.
 *
 * Geometry. Bucket 0 holds every value below HIST_LOW (2 µs); bucket i
 * (1 .. HIST_NB - 1) holds [HIST_LOW * g^(i-1), HIST_LOW * g^i) with
 * g = 1.0404, up to HIST_LOW * g^(HIST_NB - 1) ~ 1,140 s; the last bucket also
 * takes anything longer. A bucket answers with the harmonic mean of its
 * edges, 2 lo hi / (lo + hi), which is within (g - 1) / (g + 1) = 1.98 % of
 * every value in it: that is the 2 % bound of the quantiles.
 * Why 2 µs and not 1 µs: 510 counters of 4 bytes plus the exact count make
 * 2,048 bytes, and 2 % over 1 µs .. 1,000 s takes 521 buckets. Nothing
 * that crosses a network to PostgreSQL and back runs in under 2 µs, while
 * statements of 10 to 20 minutes do happen, so the cut is at the low end.
 *
 * Adding a value costs no log(): the value's power of two (a count of
 * leading zeros) and the next 5 bits index a table giving the first bucket
 * of that 1/32 of an octave; as 1/32 of an octave (3.1 %) is narrower than a
 * bucket (4 %), one comparison with the next bucket's lower edge finishes.
 *
 * Counters are 32-bit. When one would pass 2^32 every counter is halved
 * (rounded up, so no bucket empties): quantiles then weigh older values
 * half, which keeps them right for a stable load; the count stays exact.
 */
#include "stats/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HIST_NB    510    /* bucket 0 (below HIST_LOW) + 509 log buckets */
#define HIST_LOW   2000.0 /* ns: lower edge of bucket 1 */
#define HIST_GAMMA 1.0404 /* ratio of a bucket's upper edge to its lower */
#define HIST_SUB   5      /* bits of mantissa indexing the start table */

/* The top bit of <total>: some counter was halved (or merged rescaled), so
 * the counters no longer sum to the total and readers must sum them. */
#define HIST_SCALED (1ull << 63)

struct stats_hist {
	uint64_t total;          /* values added (exact, never halved) | HIST_SCALED */
	uint32_t count[HIST_NB]; /* per bucket */
};

_Static_assert(sizeof(struct stats_hist) <= 2048, "a histogram must fit 2 KB");

/*
 * Shared read-only tables, filled once before main() runs (a constructor,
 * so that several threads could use histograms without a race on a lazy
 * start). lower[i] is the smallest integer in bucket i (lower[HIST_NB] =
 * UINT64_MAX); rep[i] the value bucket i answers with; start[e][s] the
 * bucket of 2^e + s * 2^(e - HIST_SUB).
 */
static uint64_t hist_lower[HIST_NB + 1];
static uint64_t hist_rep[HIST_NB];
static uint16_t hist_start[64][1u << HIST_SUB];

static unsigned bucket_slow(uint64_t ns)
{
	unsigned lo = 0, hi = HIST_NB - 1;

	/* the last bucket whose lower edge is <= ns */
	while (lo < hi) {
		unsigned mid = (lo + hi + 1) / 2;

		if (hist_lower[mid] <= ns)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

__attribute__((constructor)) static void hist_tables(void)
{
	double lo, hi;

	hist_lower[0] = 0;
	for (unsigned i = 1; i < HIST_NB; i++)
		hist_lower[i] = (uint64_t)ceil(HIST_LOW * pow(HIST_GAMMA, (double)(i - 1)));
	hist_lower[HIST_NB] = UINT64_MAX;
	hist_rep[0] = (uint64_t)(HIST_LOW / 2);
	for (unsigned i = 1; i < HIST_NB; i++) {
		lo = HIST_LOW * pow(HIST_GAMMA, (double)(i - 1));
		hi = lo * HIST_GAMMA;
		hist_rep[i] = (uint64_t)llround(2 * lo * hi / (lo + hi));
	}
	for (unsigned e = 0; e < 64; e++)
		for (unsigned s = 0; s < (1u << HIST_SUB); s++) {
			uint64_t v;

			if (e < HIST_SUB) {
				hist_start[e][s] = 0;
				continue;
			}
			v = (1ull << e) + ((uint64_t)s << (e - HIST_SUB));
			hist_start[e][s] = (uint16_t)bucket_slow(v);
		}
}

static unsigned bucket_of(uint64_t ns)
{
	unsigned e, s, i;

	if (ns < hist_lower[1])
		return 0;
	e = 63u - (unsigned)__builtin_clzll(ns);
	s = (unsigned)(ns >> (e - HIST_SUB)) & ((1u << HIST_SUB) - 1);
	i = hist_start[e][s];
	/* the sub-range is narrower than a bucket: it reaches one more at most */
	if (i < HIST_NB - 1 && ns >= hist_lower[i + 1])
		i++;
	return i;
}

static void halve(struct stats_hist *h)
{
	h->total |= HIST_SCALED;
	for (unsigned i = 0; i < HIST_NB; i++)
		h->count[i] = h->count[i] / 2 + (h->count[i] & 1);
}

unsigned stats_hist_bucket(uint64_t ns)
{
	return bucket_of(ns);
}

void stats_hist_add_bucket(struct stats_hist *h, unsigned i)
{
	if (i >= HIST_NB)
		i = HIST_NB - 1;
	if (h->count[i] == UINT32_MAX)
		halve(h);
	h->count[i]++;
	h->total++;
}

void stats_hist_add(struct stats_hist *h, uint64_t ns)
{
	stats_hist_add_bucket(h, bucket_of(ns));
}

static inline void add_at(struct stats_hist *h, unsigned i)
{
	if (h->count[i] == UINT32_MAX)
		halve(h);
	h->count[i]++;
	h->total++;
}

void stats_hist_add3(struct stats_hist *a, struct stats_hist *b, struct stats_hist *c, uint64_t ns)
{
	unsigned i = bucket_of(ns); /* < HIST_NB */

	if (a)
		add_at(a, i);
	if (b)
		add_at(b, i);
	if (c)
		add_at(c, i);
}

/* What the counters sum to: the total itself unless some were halved. */
static uint64_t sum_counts(const struct stats_hist *h)
{
	uint64_t n = 0;

	if (!(h->total & HIST_SCALED))
		return h->total;

	for (unsigned i = 0; i < HIST_NB; i++)
		n += h->count[i];
	return n;
}

void stats_hist_p50_p95_p99(const struct stats_hist *h, uint64_t out[3])
{
	static const double qs[3] = {0.50, 0.95, 0.99};
	uint64_t n, cum = 0, rank[3];
	unsigned j = 0;

	out[0] = out[1] = out[2] = 0;
	if (h->total == 0 || (n = sum_counts(h)) == 0)
		return;
	for (unsigned k = 0; k < 3; k++) { /* as stats_hist_quantile ranks them */
		rank[k] = (uint64_t)ceil(qs[k] * (double)n);
		rank[k] = rank[k] < 1 ? 1 : rank[k] > n ? n : rank[k];
	}
	/* one walk for the three */
	for (unsigned i = 0; i < HIST_NB && j < 3; i++) {
		cum += h->count[i];
		while (j < 3 && cum >= rank[j])
			out[j++] = hist_rep[i];
	}
	while (j < 3)
		out[j++] = hist_rep[HIST_NB - 1];
}

uint64_t stats_hist_quantile(const struct stats_hist *h, double q)
{
	uint64_t n, rank, cum = 0;

	if (h->total == 0) /* never counted: every bucket is 0 (most classes) */
		return 0;
	n = sum_counts(h);
	if (n == 0)
		return 0;
	/* the value of rank ceil(q n) (1-based) in sorted order */
	if (!(q > 0))
		rank = 1;
	else if (q >= 1)
		rank = n;
	else {
		rank = (uint64_t)ceil(q * (double)n);
		if (rank < 1)
			rank = 1;
		if (rank > n)
			rank = n;
	}
	for (unsigned i = 0; i < HIST_NB; i++) {
		cum += h->count[i];
		if (cum >= rank)
			return hist_rep[i];
	}
	return hist_rep[HIST_NB - 1];
}

/*
 * A bucket counts when every value it can hold is <= <ns> (its upper edge,
 * exclusive, is <= ns + 1): values of the one bucket that straddles <ns>
 * are left out, so the answer may be short by that bucket, which spans 4 %
 * around <ns>. The last bucket, open above, counts only for UINT64_MAX.
 * After a halving the counters are scaled back to the exact count.
 */
uint64_t stats_hist_count_le(const struct stats_hist *h, uint64_t ns)
{
	uint64_t cum = 0, n;

	for (unsigned i = 0; i < HIST_NB; i++) {
		if (hist_lower[i + 1] - 1 > ns)
			break;
		cum += h->count[i];
	}
	n = sum_counts(h);
	if (n == stats_hist_count(h) || n == 0)
		return cum;
	return (uint64_t)((double)cum * (double)stats_hist_count(h) / (double)n);
}

void stats_hist_count_le_many(const struct stats_hist *h, const uint64_t *ns, size_t n,
                              uint64_t *out)
{
	uint64_t cum = 0, all, total = stats_hist_count(h);
	unsigned i = 0;

	if (total == 0) {
		memset(out, 0, n * sizeof(*out));
		return;
	}
	all = sum_counts(h);
	/* one walk for every bound: the same answers as stats_hist_count_le */
	for (size_t j = 0; j < n; j++) {
		while (i < HIST_NB && hist_lower[i + 1] - 1 <= ns[j])
			cum += h->count[i++];
		out[j] = all == total || all == 0
		                 ? cum
		                 : (uint64_t)((double)cum * (double)total / (double)all);
	}
}

uint64_t stats_hist_count(const struct stats_hist *h)
{
	return h->total & ~HIST_SCALED;
}

void stats_hist_merge(struct stats_hist *dst, const struct stats_hist *src)
{
	uint64_t max = 0;
	unsigned shift = 0;

	if (src->total == 0) /* adds nothing, and <dst> needs no rescaling */
		return;
	for (unsigned i = 0; i < HIST_NB; i++) {
		uint64_t v = (uint64_t)dst->count[i] + src->count[i];

		if (v > max)
			max = v;
	}
	while ((max >> shift) > UINT32_MAX)
		shift++;
	if (shift || (src->total & HIST_SCALED))
		dst->total |= HIST_SCALED;
	for (unsigned i = 0; i < HIST_NB; i++) {
		uint64_t v = (uint64_t)dst->count[i] + src->count[i];

		/* rounded up, like halve() */
		dst->count[i] = (uint32_t)((v + ((1ull << shift) - 1)) >> shift);
	}
	dst->total += src->total & ~HIST_SCALED;
}

struct stats_hist *stats_hist_new(void)
{
	return calloc(1, sizeof(struct stats_hist));
}

void stats_hist_free(struct stats_hist *h)
{
	free(h);
}

size_t stats_hist_size(void)
{
	return sizeof(struct stats_hist);
}
