/* Stored entries: encode/decode round trip, every malformed value refused
 * (a value from Redis is untrusted), and the capture of a streamed reply. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"

/* A message: type, big-endian length, <body>. */
static size_t msg(uint8_t *p, char type, const char *body, size_t blen)
{
	uint32_t n = (uint32_t)blen + 4;

	p[0] = (uint8_t)type;
	p[1] = (uint8_t)(n >> 24), p[2] = (uint8_t)(n >> 16), p[3] = (uint8_t)(n >> 8);
	p[4] = (uint8_t)n;
	memcpy(p + 5, body, blen);
	return blen + 5;
}

struct sample {
	uint8_t rd[64], body[256];
	size_t rdlen, bodylen;
	struct cache_entry e;
};

static void sample(struct sample *s)
{
	memset(s, 0, sizeof(*s));
	s->rdlen = msg(s->rd, 'T', "\0\1a\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 23);
	s->bodylen = msg(s->body, 'D', "\0\1\0\0\0\1x", 7);
	s->bodylen += msg(s->body + s->bodylen, 'D', "\0\1\0\0\0\1y", 7);
	s->bodylen += msg(s->body + s->bodylen, 'C', "SELECT 2", 9);
	s->e.key = (struct cache_key){.hi = 1, .lo = 2};
	s->e.created_ms = 1700000000123ull;
	s->e.ttl_s = 30;
	s->e.ngens = 3;
	s->e.gens[0] = (struct cache_gen){cache_gen_global(), 0};
	s->e.gens[1] = (struct cache_gen){cache_gen_db("app"), 7};
	s->e.gens[2] = (struct cache_gen){cache_gen_table("app", "t"), 123456789012ull};
	s->e.rowdesc = s->rd;
	s->e.rowdesc_len = (uint32_t)s->rdlen;
	s->e.body = s->body;
	s->e.body_len = (uint32_t)s->bodylen;
}

static uint8_t *encode(const struct cache_entry *e, size_t *len)
{
	*len = cache_entry_size(e);
	uint8_t *b = malloc(*len);
	cr_assert_not_null(b);
	cache_entry_encode(e, b);
	return b;
}

Test(cache_entry, round_trip)
{
	struct sample s;
	struct cache_entry d;
	size_t len;

	sample(&s);
	uint8_t *b = encode(&s.e, &len);
	cr_assert_eq(cache_entry_decode(b, len, &d), 0);
	cr_assert_eq(d.key.hi, 1);
	cr_assert_eq(d.key.lo, 2);
	cr_assert_eq(d.created_ms, s.e.created_ms);
	cr_assert_eq(d.ttl_s, 30);
	cr_assert_eq(d.ngens, 3);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(d.gens[i].id, s.e.gens[i].id);
		cr_assert_eq(d.gens[i].val, s.e.gens[i].val);
	}
	cr_assert_eq(d.rowdesc_len, s.rdlen);
	cr_assert_arr_eq(d.rowdesc, s.rd, s.rdlen);
	cr_assert_eq(d.body_len, s.bodylen);
	cr_assert_arr_eq(d.body, s.body, s.bodylen);
	cr_assert(cache_entry_replay(&d, CACHE_REPLAY_QUERY));

	/* without a RowDescription: only an Execute without Describe */
	s.e.rowdesc_len = 0;
	free(b);
	b = encode(&s.e, &len);
	cr_assert_eq(cache_entry_decode(b, len, &d), 0);
	cr_assert_eq(d.rowdesc_len, 0);
	cr_assert_not(cache_entry_replay(&d, CACHE_REPLAY_QUERY));
	cr_assert_not(cache_entry_replay(&d, CACHE_REPLAY_DESCRIBE));
	cr_assert(cache_entry_replay(&d, CACHE_REPLAY_EXECUTE));
	free(b);
}

Test(cache_entry, every_truncation_and_extension_is_refused)
{
	struct sample s;
	struct cache_entry d;
	size_t len;

	sample(&s);
	uint8_t *b = encode(&s.e, &len);
	for (size_t cut = 0; cut < len; cut++)
		cr_assert_eq(cache_entry_decode(b, cut, &d), -1, "cut at %zu of %zu", cut, len);
	uint8_t *longer = malloc(len + 1);
	memcpy(longer, b, len);
	longer[len] = 'D';
	cr_assert_eq(cache_entry_decode(longer, len + 1, &d), -1);
	free(longer);
	free(b);
}

/* Flip each byte of the encoding: it decodes to the same framing checks or
 * is refused, and never reads out of bounds (ASan watches). */
Test(cache_entry, corrupt_bytes_never_crash)
{
	struct sample s;
	struct cache_entry d;
	size_t len;

	sample(&s);
	uint8_t *b = encode(&s.e, &len);
	for (size_t i = 0; i < len; i++) {
		uint8_t *c = malloc(len);
		memcpy(c, b, len);
		for (int v = 0; v < 256; v += 51) {
			c[i] = (uint8_t)(b[i] ^ (v | 1));
			if (cache_entry_decode(c, len, &d) == 0) {
				/* what decodes lies inside the value and is framed */
				cr_assert(d.body >= c && d.body + d.body_len <= c + len);
				cr_assert(d.rowdesc >= c && d.rowdesc + d.rowdesc_len <= c + len);
				cr_assert(d.body_len >= 5 && d.body[0] != 'E');
				cr_assert(d.rowdesc_len == 0 || d.rowdesc[0] == 'T');
			}
		}
		free(c);
	}
	free(b);
}

Test(cache_entry, framing_is_checked)
{
	struct sample s;
	struct cache_entry d;
	size_t len;
	uint8_t bad[64];

	sample(&s);
	/* the body must end in CommandComplete */
	s.e.body_len = (uint32_t)(s.bodylen - 14);
	uint8_t *b = encode(&s.e, &len);
	cr_assert_eq(cache_entry_decode(b, len, &d), -1, "no CommandComplete");
	free(b);

	/* an ErrorResponse in the body */
	sample(&s);
	size_t n = msg(bad, 'E', "SERROR\0", 7);
	n += msg(bad + n, 'C', "SELECT 0", 9);
	s.e.body = bad, s.e.body_len = (uint32_t)n;
	b = encode(&s.e, &len);
	cr_assert_eq(cache_entry_decode(b, len, &d), -1, "an error is never replayed");
	free(b);

	/* a message whose length runs past the body */
	sample(&s);
	memcpy(bad, s.body, s.bodylen);
	bad[4] = 200;
	s.e.body = bad;
	b = encode(&s.e, &len);
	cr_assert_eq(cache_entry_decode(b, len, &d), -1);
	free(b);

	/* something after CommandComplete */
	sample(&s);
	memcpy(bad, s.body, s.bodylen);
	n = s.bodylen + msg(bad + s.bodylen, 'D', "\0\0", 2);
	s.e.body = bad, s.e.body_len = (uint32_t)n;
	b = encode(&s.e, &len);
	cr_assert_eq(cache_entry_decode(b, len, &d), -1);
	free(b);

	/* a RowDescription that is not one */
	sample(&s);
	s.rd[0] = 'D';
	b = encode(&s.e, &len);
	cr_assert_eq(cache_entry_decode(b, len, &d), -1);
	free(b);

	/* too many generations */
	sample(&s);
	b = encode(&s.e, &len);
	b[32] = CACHE_MAX_GENS + 1;
	cr_assert_eq(cache_entry_decode(b, len, &d), -1);
	b[32] = 3;
	b[0] = 'X';
	cr_assert_eq(cache_entry_decode(b, len, &d), -1, "wrong magic");
	free(b);
}

Test(cache_capture, a_reply_streamed_past)
{
	struct cache_capture cap;
	uint8_t m[64];
	size_t n;

	cache_capture_init(&cap, 4096);
	n = msg(m, '1', "", 0);
	cache_capture_msg(&cap, m, n);
	n = msg(m, '2', "", 0);
	cache_capture_msg(&cap, m, n);
	n = msg(m, 'T', "\0\0", 2);
	cache_capture_msg(&cap, m, n);
	n = msg(m, 'D', "\0\0", 2);
	cache_capture_msg(&cap, m, n);
	n = msg(m, 'S', "a\0b\0", 4);
	cache_capture_msg(&cap, m, n);
	n = msg(m, 'C', "SELECT 1", 9);
	cache_capture_msg(&cap, m, n);
	cr_assert(cap.complete);
	cr_assert_not(cap.failed);
	cr_assert_eq(cap.rowdesc_len, 7);
	cr_assert_eq(cap.len, 7 + 7 + 14, "framing and ParameterStatus are left out");
	cr_assert_eq(cap.buf[7], 'D');
	cache_capture_reset(&cap);
	cr_assert_null(cap.buf);
	cr_assert_eq(cap.max, 4096);
}

Test(cache_capture, errors_notices_and_size_give_up)
{
	struct cache_capture cap;
	uint8_t m[64], big[2048];
	static const char zeros[1500];
	size_t n;

	cache_capture_init(&cap, 4096);
	n = msg(m, 'D', "\0\0", 2);
	cache_capture_msg(&cap, m, n);
	n = msg(m, 'E', "SERROR\0", 7);
	cache_capture_msg(&cap, m, n);
	cr_assert(cap.failed);
	cr_assert_not(cap.too_big);
	cr_assert_null(cap.buf, "freed at once");
	n = msg(m, 'C', "SELECT 1", 9);
	cache_capture_msg(&cap, m, n);
	cr_assert_not(cap.complete, "nothing after giving up");
	cache_capture_reset(&cap);

	n = msg(m, 'N', "SNOTICE\0", 8);
	cache_capture_msg(&cap, m, n);
	cr_assert(cap.failed, "a notice would be lost in a replay");
	cache_capture_reset(&cap);

	n = msg(big, 'D', zeros, sizeof(zeros));
	cache_capture_msg(&cap, big, n);
	cr_assert_not(cap.failed);
	cache_capture_msg(&cap, big, n);
	cache_capture_msg(&cap, big, n);
	cr_assert(cap.failed);
	cr_assert(cap.too_big, "over max");
	cache_capture_reset(&cap);

	n = msg(m, 'D', "\0\0", 2);
	m[4]++; /* the length word disagrees with the bytes */
	cache_capture_msg(&cap, m, n);
	cr_assert(cap.failed);
	cache_capture_reset(&cap);
}

/* A DataRow too big for the proxy to hold whole comes in pieces: the
 * capture holds the same bytes as if it had come at once. */
Test(cache_capture, a_big_row_in_pieces)
{
	struct cache_capture whole, parts;
	uint8_t m[64], *big = malloc(100005);
	char *val = malloc(100000);
	size_t n, bn;

	cr_assert(big && val);
	memset(val, 'x', 100000);
	bn = msg(big, 'D', val, 100000);
	free(val);
	cache_capture_init(&whole, 1 << 20);
	cache_capture_init(&parts, 1 << 20);
	n = msg(m, 'T', "\0\0", 2);
	cache_capture_msg(&whole, m, n);
	cache_capture_msg(&parts, m, n);
	cache_capture_msg(&whole, big, bn);
	cache_capture_begin(&parts, 'D', bn);
	for (size_t off = 0; off < bn; off += 32768)
		cache_capture_more(&parts, big + off, bn - off < 32768 ? bn - off : 32768);
	cr_assert_eq(parts.pending, 0);
	n = msg(m, 'C', "SELECT 1", 9);
	cache_capture_msg(&whole, m, n);
	cache_capture_msg(&parts, m, n);
	cr_assert(whole.complete && parts.complete);
	cr_assert_not(parts.failed);
	cr_assert_eq(parts.len, whole.len);
	cr_assert_eq(memcmp(parts.buf, whole.buf, whole.len), 0);
	cache_capture_reset(&whole);
	cache_capture_reset(&parts);

	/* a message before the row's last byte, or more bytes than announced */
	cache_capture_msg(&parts, m, n);
	cache_capture_reset(&parts);
	cache_capture_begin(&parts, 'D', bn);
	cache_capture_more(&parts, big, 100);
	n = msg(m, 'C', "SELECT 1", 9);
	cache_capture_msg(&parts, m, n);
	cr_assert(parts.failed && !parts.complete, "a CommandComplete inside a row");
	cache_capture_reset(&parts);
	cache_capture_begin(&parts, 'D', 10);
	cache_capture_more(&parts, big, 11);
	cr_assert(parts.failed, "more bytes than the row has");
	cache_capture_reset(&parts);
	/* only rows stream; over max is too big */
	cache_capture_begin(&parts, 'T', bn);
	cr_assert(parts.failed);
	cache_capture_reset(&parts);
	cache_capture_init(&parts, 50000);
	cache_capture_begin(&parts, 'D', bn);
	cr_assert(parts.failed && parts.too_big);
	cache_capture_reset(&parts);
	free(big);
}
