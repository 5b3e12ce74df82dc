/*
 * The latency histogram: quantiles within 2 % of the exact ones on a
 * million heavy-tailed samples, one value at a time over its whole range,
 * merging, Prometheus-style counts, and counters past 2^32.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "stats/stats.h"

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* splitmix64: fixed seed, the same samples on every run */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double unit(void)
{
	return ((double)(rnd() >> 11) + 0.5) / 9007199254740992.0; /* (0, 1) */
}

static double normal(void)
{
	return sqrt(-2 * log(unit())) * cos(2 * M_PI * unit());
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The value of rank ceil(q n) in <sorted>, the definition the histogram uses. */
static uint64_t exact(const uint64_t *sorted, size_t n, double q)
{
	size_t rank = (size_t)ceil(q * (double)n);

	if (rank < 1)
		rank = 1;
	return sorted[rank - 1];
}

static void check_quantiles(uint64_t *v, size_t n)
{
	static const double qs[] = {0.5, 0.9, 0.95, 0.99, 0.999};
	struct stats_hist *h = stats_hist_new();

	cr_assert(h);
	for (size_t i = 0; i < n; i++)
		stats_hist_add(h, v[i]);
	qsort(v, n, sizeof(*v), cmp_u64);
	cr_assert_eq(stats_hist_count(h), n);
	for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		double want = (double)exact(v, n, qs[i]);
		double got = (double)stats_hist_quantile(h, qs[i]);

		cr_assert(want >= 2000, "sample below the histogram's range at q=%g", qs[i]);
		cr_expect(fabs(got - want) / want <= 0.02, "q=%g: got %.0f, exact %.0f (%.3f %%)",
		          qs[i], got, want, 100 * fabs(got - want) / want);
	}
	stats_hist_free(h);
}

Test(hist, lognormal_million)
{
	size_t n = 1000000;
	uint64_t *v = malloc(n * sizeof(*v));

	cr_assert(v);
	rng_state = 42;
	/* median 2 ms, sigma 1.5: p99 near 65 ms, a heavy right tail */
	for (size_t i = 0; i < n; i++)
		v[i] = (uint64_t)(2e6 * exp(1.5 * normal()));
	check_quantiles(v, n);
	free(v);
}

Test(hist, pareto_million)
{
	size_t n = 1000000;
	uint64_t *v = malloc(n * sizeof(*v));

	cr_assert(v);
	rng_state = 7;
	/* Pareto, x_m = 50 µs, alpha = 1.2: infinite variance */
	for (size_t i = 0; i < n; i++) {
		double x = 50e3 / pow(unit(), 1 / 1.2);

		v[i] = x > 1e15 ? (uint64_t)1e15 : (uint64_t)x;
	}
	check_quantiles(v, n);
	free(v);
}

Test(hist, every_value_within_two_percent)
{
	/* one value alone: its bucket's answer is within 2 % of it, 2 µs .. 1,000 s */
	for (int k = 0; k < 2760; k++) {
		struct stats_hist *h = stats_hist_new();
		uint64_t ns = (uint64_t)(2000 * pow(1.00731, k)), got;

		stats_hist_add(h, ns);
		got = stats_hist_quantile(h, 0.5);
		cr_assert(fabs((double)got - (double)ns) / (double)ns <= 0.02, "%llu -> %llu",
		          (unsigned long long)ns, (unsigned long long)got);
		stats_hist_free(h);
	}
}

Test(hist, empty_and_size)
{
	struct stats_hist *h = stats_hist_new();

	cr_assert_leq(stats_hist_size(), 2048);
	cr_assert_eq(stats_hist_quantile(h, 0.5), 0);
	cr_assert_eq(stats_hist_count(h), 0);
	cr_assert_eq(stats_hist_count_le(h, UINT64_MAX), 0);
	/* below the first bucket and beyond the last still count */
	stats_hist_add(h, 0);
	stats_hist_add(h, 10);
	stats_hist_add(h, UINT64_MAX);
	cr_assert_eq(stats_hist_count(h), 3);
	cr_assert_eq(stats_hist_count_le(h, UINT64_MAX), 3);
	cr_assert_eq(stats_hist_count_le(h, 1999), 2);
	cr_assert_lt(stats_hist_quantile(h, 0.5), 2000);
	stats_hist_free(h);
}

Test(hist, merge_equals_one)
{
	struct stats_hist *a = stats_hist_new(), *b = stats_hist_new(), *all = stats_hist_new();

	rng_state = 3;
	for (int i = 0; i < 200000; i++) {
		uint64_t ns = (uint64_t)(1e5 * exp(2 * normal())) + 1000;

		stats_hist_add(i % 3 ? a : b, ns);
		stats_hist_add(all, ns);
	}
	stats_hist_merge(a, b);
	cr_assert_eq(stats_hist_count(a), stats_hist_count(all));
	for (int k = 1; k < 100; k++)
		cr_assert_eq(stats_hist_quantile(a, k / 100.0), stats_hist_quantile(all, k / 100.0),
		             "q=%d%%", k);
	for (uint64_t ns = 1000; ns < 1000000000000ull; ns = ns * 3 / 2)
		cr_assert_eq(stats_hist_count_le(a, ns), stats_hist_count_le(all, ns));
	stats_hist_free(a);
	stats_hist_free(b);
	stats_hist_free(all);
}

Test(hist, count_le_bounds)
{
	size_t n = 100000;
	uint64_t *v = malloc(n * sizeof(*v));
	struct stats_hist *h = stats_hist_new();

	rng_state = 11;
	for (size_t i = 0; i < n; i++) {
		v[i] = (uint64_t)(1e6 * exp(1.2 * normal()));
		stats_hist_add(h, v[i]);
	}
	qsort(v, n, sizeof(*v), cmp_u64);
	/* Prometheus' le boundaries: never more than the values <= le, never fewer than
	 * those one bucket (4.04 %) below it */
	for (uint64_t le = 5000; le < 10000000000ull; le = le * 5 / 4) {
		size_t le_exact = 0, below = 0;
		uint64_t got = stats_hist_count_le(h, le);

		while (le_exact < n && v[le_exact] <= le)
			le_exact++;
		while (below < n && (double)v[below] * 1.0404 * 1.0404 <= (double)le)
			below++;
		cr_assert_leq(got, le_exact, "le=%llu", (unsigned long long)le);
		cr_assert_geq(got, below, "le=%llu", (unsigned long long)le);
	}
	cr_assert_eq(stats_hist_count_le(h, UINT64_MAX), n);
	stats_hist_free(h);
	free(v);
}

Test(hist, past_32_bits)
{
	struct stats_hist *h = stats_hist_new();
	uint64_t p25, p75;

	/* one in four at 10 µs, three at 1 ms; doubling by merging into itself goes
	 * past 2^32 in a bucket, which halves the counters */
	stats_hist_add(h, 10000);
	for (int i = 0; i < 3; i++)
		stats_hist_add(h, 1000000);
	for (int i = 0; i < 34; i++)
		stats_hist_merge(h, h);
	cr_assert_eq(stats_hist_count(h), 4ull << 34);
	p25 = stats_hist_quantile(h, 0.25);
	p75 = stats_hist_quantile(h, 0.75);
	cr_assert(fabs((double)p25 - 10000) / 10000 <= 0.02, "p25 %llu", (unsigned long long)p25);
	cr_assert(fabs((double)p75 - 1e6) / 1e6 <= 0.02, "p75 %llu", (unsigned long long)p75);
	/* scaled back to the exact count */
	cr_assert_eq(stats_hist_count_le(h, UINT64_MAX), 4ull << 34);
	cr_assert_eq(stats_hist_count_le(h, 20000), 1ull << 34);
	/* and adding goes on */
	stats_hist_add(h, 1000000);
	cr_assert_eq(stats_hist_count(h), (4ull << 34) + 1);
	stats_hist_free(h);
}

/* The three views' percentiles in one walk are the single quantiles, for an
 * empty histogram, a heavy-tailed one and one whose counters were halved. */
Test(hist, p50_p95_p99_in_one_walk)
{
	struct stats_hist *h = stats_hist_new();
	uint64_t p[3], want[3];
	static const double qs[3] = {0.50, 0.95, 0.99};

	stats_hist_p50_p95_p99(h, p);
	cr_assert(p[0] == 0 && p[1] == 0 && p[2] == 0);
	rng_state = 7;
	for (int i = 0; i < 100000; i++)
		stats_hist_add(h, (uint64_t)(50000.0 * exp(1.5 * normal())) + 1);
	for (int round = 0; round < 2; round++) {
		stats_hist_p50_p95_p99(h, p);
		for (int k = 0; k < 3; k++) {
			want[k] = stats_hist_quantile(h, qs[k]);
			cr_assert_eq(p[k], want[k], "q%.2f: %llu, alone %llu", qs[k],
			             (unsigned long long)p[k], (unsigned long long)want[k]);
		}
		for (int i = 0; i < 16; i++) /* past 2^32 in some bucket: halved */
			stats_hist_merge(h, h);
	}
	stats_hist_free(h);
}
