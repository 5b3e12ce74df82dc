/*
 * Cache keys and generation ids. A key is XXH3-128 over everything a
 * result depends on apart from the data: database, role, normalized text,
 * parameter values and format codes, result format codes, search_path,
 * client_encoding and the other settings that shape the output. Each
 * field goes in as a tag, a length (or a count) and its bytes, so that
 * no two different inputs hash the same bytes ("ab","c" vs "a","bc"; a
 * NULL parameter vs an empty one). The Bind form reads the wire format
 * and feeds the same bytes as the array form. An extended-protocol key
 * also holds the parameter types of the Parse, whether the portal was
 * described, and the shape the client knows of a named statement; a
 * Query's key has none of these and a tag of its own, so no reply to one
 * protocol ever answers the other.
 * No allocation: the XXH3 state lives on the stack.
 */
#include "cache/cache.h"

#include <string.h>

/* the state type, to keep it on the stack */
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

enum {
	TAG_DB = 1,
	TAG_ROLE,
	TAG_TEXT,
	TAG_SEARCH_PATH,
	TAG_ENCODING,
	TAG_PARAMS,
	TAG_PARAM_FMT,
	TAG_RESULT_FMT,
	TAG_SETTINGS,
	TAG_EXTENDED,
};

#define KEY_VERSION 3 /* bump when the layout changes: old entries then miss */

static void put_u32(XXH3_state_t *st, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};

	XXH3_128bits_update(st, b, 4);
}

static void put_tag(XXH3_state_t *st, uint8_t tag)
{
	XXH3_128bits_update(st, &tag, 1);
}

/* A string field; NULL ("not given") is length 0xffffffff, "" is 0. */
static void put_str(XXH3_state_t *st, uint8_t tag, const char *s, size_t len)
{
	put_tag(st, tag);
	if (!s) {
		put_u32(st, UINT32_MAX);
		return;
	}
	put_u32(st, (uint32_t)len);
	XXH3_128bits_update(st, s, len);
}

static void put_cstr(XXH3_state_t *st, uint8_t tag, const char *s)
{
	put_str(st, tag, s, s ? strlen(s) : 0);
}

static void put_fmts(XXH3_state_t *st, uint8_t tag, uint16_t n, const int16_t *v)
{
	put_tag(st, tag);
	put_u32(st, n);
	for (uint16_t i = 0; i < n; i++)
		put_u32(st, (uint32_t)(uint16_t)v[i]);
}

static void key_begin(XXH3_state_t *st, const struct cache_key_input *in)
{
	uint8_t v = KEY_VERSION;

	XXH3_128bits_reset(st);
	XXH3_128bits_update(st, &v, 1);
	put_cstr(st, TAG_DB, in->db);
	put_cstr(st, TAG_ROLE, in->role);
	put_str(st, TAG_TEXT, in->text, in->text_len);
	put_cstr(st, TAG_SEARCH_PATH, in->search_path);
	put_cstr(st, TAG_ENCODING, in->client_encoding);
	put_str(st, TAG_SETTINGS, in->settings, in->settings_len);
	if (in->extended) {
		uint8_t d = (uint8_t)((in->describe ? 1 : 0) | (in->has_shape ? 2 : 0));

		put_str(st, TAG_EXTENDED, (const char *)in->param_types,
		        in->param_types ? in->param_types_len : 0);
		XXH3_128bits_update(st, &d, 1);
		if (in->has_shape) {
			put_u32(st, (uint32_t)in->shape);
			put_u32(st, (uint32_t)(in->shape >> 32));
		}
	}
}

static void key_end(XXH3_state_t *st, struct cache_key *out)
{
	XXH128_hash_t h = XXH3_128bits_digest(st);

	out->hi = h.high64;
	out->lo = h.low64;
}

void cache_key_make(const struct cache_key_input *in, struct cache_key *out)
{
	XXH3_state_t st;

	key_begin(&st, in);
	put_fmts(&st, TAG_PARAM_FMT, in->nparam_fmt, in->param_fmt);
	put_tag(&st, TAG_PARAMS);
	put_u32(&st, in->nparams);
	for (uint16_t i = 0; i < in->nparams; i++) {
		int32_t len = in->param_len[i];

		put_u32(&st, (uint32_t)len);
		if (len > 0)
			XXH3_128bits_update(&st, in->param_val[i], (size_t)len);
	}
	put_fmts(&st, TAG_RESULT_FMT, in->nresult_fmt, in->result_fmt);
	key_end(&st, out);
}

static bool get_u16(const uint8_t **p, const uint8_t *end, uint16_t *v)
{
	if (end - *p < 2)
		return false;
	*v = (uint16_t)((*p)[0] << 8 | (*p)[1]);
	*p += 2;
	return true;
}

static bool get_i32(const uint8_t **p, const uint8_t *end, int32_t *v)
{
	if (end - *p < 4)
		return false;
	*v = (int32_t)((uint32_t)(*p)[0] << 24 | (uint32_t)(*p)[1] << 16 | (uint32_t)(*p)[2] << 8 |
	               (uint32_t)(*p)[3]);
	*p += 4;
	return true;
}

/* Format codes from the wire, hashed as put_fmts hashes an array. */
static bool wire_fmts(XXH3_state_t *st, uint8_t tag, const uint8_t **p, const uint8_t *end)
{
	uint16_t n, f = 0;

	if (!get_u16(p, end, &n) || (size_t)(end - *p) < 2u * n)
		return false;
	put_tag(st, tag);
	put_u32(st, n);
	for (uint16_t i = 0; i < n; i++) {
		(void)get_u16(p, end, &f);
		put_u32(st, f);
	}
	return true;
}

int cache_key_bind(const struct cache_key_input *in, const uint8_t *bind, size_t len,
                   struct cache_key *out)
{
	const uint8_t *p = bind, *end = bind + len;
	XXH3_state_t st;
	uint16_t n;

	key_begin(&st, in);
	if (!wire_fmts(&st, TAG_PARAM_FMT, &p, end) || !get_u16(&p, end, &n))
		return -1;
	put_tag(&st, TAG_PARAMS);
	put_u32(&st, n);
	for (uint16_t i = 0; i < n; i++) {
		int32_t l;

		if (!get_i32(&p, end, &l) || l < -1 || (l > 0 && end - p < l))
			return -1;
		put_u32(&st, (uint32_t)l);
		if (l > 0) {
			XXH3_128bits_update(&st, p, (size_t)l);
			p += l;
		}
	}
	if (!wire_fmts(&st, TAG_RESULT_FMT, &p, end) || p != end)
		return -1;
	key_end(&st, out);
	return 0;
}

void cache_key_str(const struct cache_key *k, char out[CACHE_KEY_STR_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t w[2] = {k->hi, k->lo};
	char *o = out;

	memcpy(o, "sluice:e:", 9);
	o += 9;
	for (int j = 0; j < 2; j++)
		for (int i = 60; i >= 0; i -= 4)
			*o++ = hex[(w[j] >> i) & 15];
	*o = 0;
}

/* ---- generation ids ---- */

static uint64_t gen_id(uint8_t kind, const char *db, const char *rel, size_t rel_len)
{
	XXH3_state_t st;
	size_t dlen = strlen(db);
	/* lengths in a fixed byte order: every instance sharing a Redis must
	 * compute the same ids */
	uint8_t l1[4] = {(uint8_t)dlen, (uint8_t)(dlen >> 8), (uint8_t)(dlen >> 16),
	                 (uint8_t)(dlen >> 24)};
	uint8_t l2[4] = {(uint8_t)rel_len, (uint8_t)(rel_len >> 8), (uint8_t)(rel_len >> 16),
	                 (uint8_t)(rel_len >> 24)};

	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, &kind, 1);
	XXH3_64bits_update(&st, l1, 4);
	XXH3_64bits_update(&st, db, dlen);
	XXH3_64bits_update(&st, l2, 4);
	XXH3_64bits_update(&st, rel, rel_len);
	return XXH3_64bits_digest(&st);
}

uint64_t cache_gen_global(void)
{
	return gen_id(0, "", "", 0);
}

uint64_t cache_gen_db(const char *db)
{
	return gen_id(1, db, "", 0);
}

uint64_t cache_gen_table(const char *db, const char *table)
{
	const char *dot = strrchr(table, '.');
	const char *rel = dot ? dot + 1 : table;

	return gen_id(2, db, rel, strlen(rel));
}
