/* Cache keys: every field changes the key, fields never meet by
 * concatenation, and the Bind form equals the array form. */
#include <criterion/criterion.h>
#include <string.h>

#include "cache/cache.h"

static const uint8_t v1[] = "42", v2[] = "abc";
static const uint8_t *const vals[] = {v1, v2};
static const int32_t lens[] = {2, 3};
static const int16_t pfmt[] = {0, 1};
static const int16_t rfmt[] = {1};

static struct cache_key_input base(void)
{
	struct cache_key_input in = {
	        .db = "app",
	        .role = "alice",
	        .text = "SELECT a FROM t WHERE id = $1 AND b = $2",
	        .search_path = "\"$user\", public",
	        .client_encoding = "UTF8",
	        .nparams = 2,
	        .param_val = vals,
	        .param_len = lens,
	        .nparam_fmt = 2,
	        .param_fmt = pfmt,
	        .nresult_fmt = 1,
	        .result_fmt = rfmt,
	};
	in.text_len = strlen(in.text);
	return in;
}

static struct cache_key key_of(const struct cache_key_input *in)
{
	struct cache_key k;

	cache_key_make(in, &k);
	return k;
}

static bool same(struct cache_key a, struct cache_key b)
{
	return a.hi == b.hi && a.lo == b.lo;
}

Test(cache_key, every_field_changes_the_key)
{
	struct cache_key_input b = base(), in;
	struct cache_key k0 = key_of(&b);
	static const uint8_t v43[] = "43", vab[] = "ab";
	const uint8_t *vals2[] = {v43, v2};
	const uint8_t *vals3[] = {v1, vab};
	const int32_t lens_null[] = {-1, 3};
	const int32_t lens_empty[] = {0, 3};
	const int32_t lens3[] = {2, 2};
	const int16_t pfmt2[] = {0, 0};
	const int16_t rfmt2[] = {0};

	cr_assert(same(k0, key_of(&b)), "the same input gives the same key");
#define DIFFERS(what, change)                                                                      \
	do {                                                                                       \
		in = base();                                                                       \
		change;                                                                            \
		cr_assert_not(same(k0, key_of(&in)), "changing %s must change the key", what);     \
	} while (0)
	DIFFERS("db", in.db = "app2");
	DIFFERS("role", in.role = "bob");
	DIFFERS("text", in.text = "SELECT b FROM t WHERE id = $1 AND b = $2");
	DIFFERS("text length", in.text_len--);
	DIFFERS("search_path", in.search_path = "public");
	DIFFERS("client_encoding", in.client_encoding = "LATIN1");
	DIFFERS("settings", (in.settings = "TimeZone=UTC", in.settings_len = 12));
	DIFFERS("a parameter value", in.param_val = vals2);
	DIFFERS("a parameter made NULL", in.param_len = lens_null);
	DIFFERS("a parameter made empty", in.param_len = lens_empty);
	DIFFERS("a parameter's length", (in.param_val = vals3, in.param_len = lens3));
	DIFFERS("the parameter count", in.nparams = 1);
	DIFFERS("a parameter format", in.param_fmt = pfmt2);
	DIFFERS("the parameter format count", in.nparam_fmt = 1);
	DIFFERS("a result format", in.result_fmt = rfmt2);
	DIFFERS("the result format count", in.nresult_fmt = 0);
	DIFFERS("search_path not given", in.search_path = NULL);
	DIFFERS("search_path empty", in.search_path = "");
#undef DIFFERS
}

Test(cache_key, no_collision_by_concatenation)
{
	struct cache_key_input a = base(), b = base();

	a.db = "ab";
	a.role = "c";
	b.db = "a";
	b.role = "bc";
	cr_assert_not(same(key_of(&a), key_of(&b)));

	/* two parameters "ab","c" against "a","bc" */
	static const uint8_t pa[] = "ab", pc[] = "c", pa1[] = "a", pbc[] = "bc";
	const uint8_t *x[] = {pa, pc}, *y[] = {pa1, pbc};
	const int32_t lx[] = {2, 1}, ly[] = {1, 2};
	a = base();
	b = base();
	a.param_val = x, a.param_len = lx;
	b.param_val = y, b.param_len = ly;
	cr_assert_not(same(key_of(&a), key_of(&b)));

	/* the text running into the search path */
	a = base();
	b = base();
	a.text = "SELECT 1x", a.text_len = 9, a.search_path = "y";
	b.text = "SELECT 1", b.text_len = 8, b.search_path = "xy";
	cr_assert_not(same(key_of(&a), key_of(&b)));
}

/* Append a big-endian integer of <n> bytes. */
static size_t be(uint8_t *p, uint32_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	return (size_t)n;
}

static size_t bind_body(uint8_t *b)
{
	size_t n = 0;

	n += be(b + n, 2, 2); /* two parameter formats */
	n += be(b + n, 0, 2);
	n += be(b + n, 1, 2);
	n += be(b + n, 2, 2); /* two parameters */
	n += be(b + n, 2, 4);
	memcpy(b + n, "42", 2), n += 2;
	n += be(b + n, 3, 4);
	memcpy(b + n, "abc", 3), n += 3;
	n += be(b + n, 1, 2); /* one result format */
	n += be(b + n, 1, 2);
	return n;
}

Test(cache_key, bind_form_equals_array_form)
{
	struct cache_key_input in = base();
	struct cache_key kb;
	uint8_t b[64];
	size_t n = bind_body(b);

	cr_assert_eq(cache_key_bind(&in, b, n, &kb), 0);
	cr_assert(same(kb, key_of(&in)));

	/* a NULL parameter */
	const int32_t lnull[] = {2, -1};
	uint8_t c[64];
	size_t m = 0;
	m += be(c + m, 2, 2), m += be(c + m, 0, 2), m += be(c + m, 1, 2);
	m += be(c + m, 2, 2);
	m += be(c + m, 2, 4), memcpy(c + m, "42", 2), m += 2;
	m += be(c + m, 0xffffffffu, 4);
	m += be(c + m, 1, 2), m += be(c + m, 1, 2);
	in.param_len = lnull;
	cr_assert_eq(cache_key_bind(&in, c, m, &kb), 0);
	cr_assert(same(kb, key_of(&in)));
}

Test(cache_key, malformed_bind_is_refused)
{
	struct cache_key_input in = base();
	struct cache_key k;
	uint8_t b[64];
	size_t n = bind_body(b);

	for (size_t cut = 0; cut < n; cut++)
		cr_assert_eq(cache_key_bind(&in, b, cut, &k), -1, "cut at %zu", cut);
	b[n] = 0;
	cr_assert_eq(cache_key_bind(&in, b, n + 1, &k), -1, "a trailing byte");
	bind_body(b);
	be(b + 8, 0x7fffffff, 4); /* a parameter longer than the message */
	cr_assert_eq(cache_key_bind(&in, b, n, &k), -1);
	bind_body(b);
	be(b + 8, 0xfffffffe, 4); /* length -2 */
	cr_assert_eq(cache_key_bind(&in, b, n, &k), -1);
}

/* The extended protocol's own fields: a Parse/Bind/Execute reply never
 * answers a Query of the same text, and the parameter types, the Describe
 * and the shape a named statement's client knows each change the key. */
Test(cache_key, extended_fields_change_the_key)
{
	static const uint8_t no_types[] = {0, 0};
	static const uint8_t int4[] = {0, 1, 0, 0, 0, 23};
	static const uint8_t text[] = {0, 1, 0, 0, 0, 25};
	static const uint8_t unspec[] = {0, 1, 0, 0, 0, 0};
	struct cache_key_input q = base(), e;
	struct cache_key kq, ke;

	q.nparams = 0, q.nparam_fmt = 0, q.nresult_fmt = 0;
	kq = key_of(&q);
	e = q;
	e.extended = true;
	e.param_types = no_types;
	e.param_types_len = sizeof(no_types);
	e.describe = true;
	ke = key_of(&e);
	cr_assert_not(same(kq, ke), "a Query and an extended query of one text differ");
	cr_assert(same(ke, key_of(&e)), "the same input gives the same key");
	/* the extended fields are ignored for a Query */
	q.param_types = int4, q.param_types_len = sizeof(int4), q.describe = true;
	cr_assert(same(kq, key_of(&q)));

#define EDIFFERS(what, change)                                                                     \
	do {                                                                                       \
		struct cache_key_input x = e;                                                      \
		change;                                                                            \
		cr_assert_not(same(ke, key_of(&x)), "changing %s must change the key", what);      \
	} while (0)
	EDIFFERS("the Describe", x.describe = false);
	EDIFFERS("the parameter types", (x.param_types = int4, x.param_types_len = 6));
	EDIFFERS("no parameter types at all", x.param_types = NULL);
	EDIFFERS("a known shape", (x.has_shape = true, x.shape = 0));
#undef EDIFFERS
	{
		struct cache_key_input a = e, b = e;

		a.param_types = int4, a.param_types_len = 6;
		b.param_types = text, b.param_types_len = 6;
		cr_assert_not(same(key_of(&a), key_of(&b)), "int4 against text");
		b.param_types = unspec;
		cr_assert_not(same(key_of(&a), key_of(&b)), "int4 against unspecified");
		a = e, b = e;
		a.has_shape = b.has_shape = true;
		a.shape = 1;
		b.shape = (uint64_t)1 << 32;
		cr_assert_not(same(key_of(&a), key_of(&b)), "both halves of the shape count");
	}
}

Test(cache_key, extended_bind_form_equals_array_form)
{
	static const uint8_t types[] = {0, 2, 0, 0, 0, 23, 0, 0, 0, 25};
	struct cache_key_input in = base();
	struct cache_key kb;
	uint8_t b[64];
	size_t n = bind_body(b);

	in.extended = true;
	in.param_types = types;
	in.param_types_len = sizeof(types);
	in.describe = true;
	in.has_shape = true;
	in.shape = 0x1234567890abcdefull;
	cr_assert_eq(cache_key_bind(&in, b, n, &kb), 0);
	cr_assert(same(kb, key_of(&in)));
}

Test(cache_key, strings_and_generation_ids)
{
	struct cache_key k = {.hi = 0x0123456789abcdefull, .lo = 0xfedcba9876543210ull};
	char s[CACHE_KEY_STR_LEN + 1];

	cache_key_str(&k, s);
	cr_assert_str_eq(s, "sluice:e:0123456789abcdeffedcba9876543210");
	cr_assert_eq(strlen(s), CACHE_KEY_STR_LEN);

	cr_assert_eq(cache_gen_table("app", "public.users"), cache_gen_table("app", "users"),
	             "a table's id ignores the schema");
	cr_assert_eq(cache_gen_table("app", "s.users"), cache_gen_table("app", "users"));
	cr_assert_neq(cache_gen_table("app", "users"), cache_gen_table("app2", "users"));
	cr_assert_neq(cache_gen_table("app", "users"), cache_gen_table("app", "orders"));
	cr_assert_neq(cache_gen_table("ab", "c"), cache_gen_table("a", "bc"));
	cr_assert_neq(cache_gen_db("app"), cache_gen_table("app", ""));
	cr_assert_neq(cache_gen_db("app"), cache_gen_global());
	cr_assert_neq(cache_gen_db(""), cache_gen_global());
}
