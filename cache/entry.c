/*
 * The stored form of a result: what Redis and the L1 hold. Layout, all
 * integers little-endian:
 *
 *   "SLC" 0x01 | key hi, lo (8+8) | created_ms (8) | ttl_s (4)
 *   | ngens (1) | ngens x (id 8, value 8)
 *   | rowdesc_len (4) | RowDescription | body_len (4) | DataRow... CommandComplete
 *
 * A value read back from Redis is untrusted: decoding checks every length
 * against what is left and the PostgreSQL framing of the messages it
 * would replay to a client, so a corrupt or hostile value is a miss and
 * never reaches a client as bytes out of frame.
 *
 * The capture side builds the RowDescription and body as the reply
 * streams past, giving up (and freeing) as soon as it cannot be stored.
 */
#include "cache/cache.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t magic[4] = {'S', 'L', 'C', 1};

#define HEAD_LEN (4 + 16 + 8 + 4 + 1)

static uint8_t *put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		*p++ = (uint8_t)(v >> (8 * i));
	return p;
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

size_t cache_entry_size(const struct cache_entry *e)
{
	return HEAD_LEN + (size_t)e->ngens * 16 + 4 + e->rowdesc_len + 4 + e->body_len;
}

void cache_entry_encode(const struct cache_entry *e, uint8_t *buf)
{
	uint8_t *p = buf;

	memcpy(p, magic, 4);
	p = put_le(p + 4, e->key.hi, 8);
	p = put_le(p, e->key.lo, 8);
	p = put_le(p, e->created_ms, 8);
	p = put_le(p, e->ttl_s, 4);
	*p++ = e->ngens;
	for (unsigned i = 0; i < e->ngens; i++) {
		p = put_le(p, e->gens[i].id, 8);
		p = put_le(p, e->gens[i].val, 8);
	}
	p = put_le(p, e->rowdesc_len, 4);
	if (e->rowdesc_len)
		memcpy(p, e->rowdesc, e->rowdesc_len);
	p = put_le(p + e->rowdesc_len, e->body_len, 4);
	memcpy(p, e->body, e->body_len);
}

/* One whole message at <p> of at most <left> bytes: its size, or 0. */
static size_t msg_size(const uint8_t *p, size_t left)
{
	uint32_t n;

	if (left < 5)
		return 0;
	n = get_be32(p + 1);
	if (n < 4 || n > left - 1)
		return 0;
	return (size_t)n + 1;
}

/* <rowdesc> is empty or one RowDescription; <body> DataRows then one
 * CommandComplete that ends it. */
static bool framing_ok(const struct cache_entry *e)
{
	size_t off = 0, n;

	if (e->rowdesc_len &&
	    (e->rowdesc[0] != 'T' || msg_size(e->rowdesc, e->rowdesc_len) != e->rowdesc_len))
		return false;
	while (off < e->body_len) {
		n = msg_size(e->body + off, e->body_len - off);
		if (!n)
			return false;
		if (e->body[off] == 'C')
			return off + n == e->body_len;
		if (e->body[off] != 'D')
			return false;
		off += n;
	}
	return false; /* no CommandComplete */
}

int cache_entry_decode(const uint8_t *v, size_t len, struct cache_entry *out)
{
	const uint8_t *p = v, *end = v + len;
	size_t n;

	if (len < HEAD_LEN || memcmp(p, magic, 4) != 0)
		return -1;
	out->key.hi = get_le(p + 4, 8);
	out->key.lo = get_le(p + 12, 8);
	out->created_ms = get_le(p + 20, 8);
	out->ttl_s = (uint32_t)get_le(p + 28, 4);
	out->ngens = p[32];
	p += HEAD_LEN;
	if (out->ngens > CACHE_MAX_GENS || (size_t)(end - p) < (size_t)out->ngens * 16 + 4)
		return -1;
	for (unsigned i = 0; i < out->ngens; i++, p += 16) {
		out->gens[i].id = get_le(p, 8);
		out->gens[i].val = get_le(p + 8, 8);
	}
	n = get_le(p, 4);
	p += 4;
	if ((size_t)(end - p) < n || (size_t)(end - p) - n < 4)
		return -1;
	out->rowdesc = p;
	out->rowdesc_len = (uint32_t)n;
	p += n;
	n = get_le(p, 4);
	p += 4;
	if ((size_t)(end - p) != n)
		return -1;
	out->body = p;
	out->body_len = (uint32_t)n;
	return framing_ok(out) ? 0 : -1;
}

bool cache_entry_replay(const struct cache_entry *e, enum cache_replay how)
{
	return how == CACHE_REPLAY_EXECUTE || e->rowdesc_len > 0;
}

/* ---- capture ---- */

void cache_capture_init(struct cache_capture *cap, size_t max)
{
	memset(cap, 0, sizeof(*cap));
	cap->max = max;
}

void cache_capture_reset(struct cache_capture *cap)
{
	size_t max = cap->max;

	free(cap->buf);
	cache_capture_init(cap, max);
}

static void give_up(struct cache_capture *cap, bool too_big)
{
	free(cap->buf);
	cap->buf = NULL;
	cap->len = cap->cap = 0;
	cap->failed = true;
	cap->too_big = too_big;
}

/* Room for <len> more bytes in <cap>'s buffer (within max); false: given up. */
static bool capture_room(struct cache_capture *cap, size_t len)
{
	/* the entry around it must fit max too: the header and generations */
	if (cap->len + len + HEAD_LEN + CACHE_MAX_GENS * 16 + 8 > cap->max) {
		give_up(cap, true);
		return false;
	}
	if (cap->len + len > cap->cap) {
		size_t ncap = cap->cap ? cap->cap : 256;
		uint8_t *nb;

		while (ncap < cap->len + len)
			ncap *= 2;
		if (ncap > cap->max)
			ncap = cap->max;
		nb = realloc(cap->buf, ncap);
		if (!nb) {
			give_up(cap, false);
			return false;
		}
		cap->buf = nb;
		cap->cap = ncap;
	}
	return true;
}

void cache_capture_msg(struct cache_capture *cap, const uint8_t *msg, size_t len)
{
	if (cap->failed || len < 1)
		return;
	if (cap->pending) { /* a streamed DataRow is not over: out of order */
		give_up(cap, false);
		return;
	}
	switch (msg[0]) {
	case '1': /* ParseComplete */
	case '2': /* BindComplete */
	case 'n': /* NoData */
	case 'S': /* ParameterStatus: the session's, not the result's */
	case 'A': /* NotificationResponse: asynchronous */
		return;
	case 'T':
		if (cap->len || cap->complete || msg_size(msg, len) != len) {
			give_up(cap, false);
			return;
		}
		cap->rowdesc_len = (uint32_t)len;
		break;
	case 'D':
	case 'C':
		if (cap->complete || msg_size(msg, len) != len) {
			give_up(cap, false);
			return;
		}
		break;
	default: /* an error, a notice, EmptyQuery, PortalSuspended, COPY ... */
		give_up(cap, false);
		return;
	}
	if (!capture_room(cap, len))
		return;
	memcpy(cap->buf + cap->len, msg, len);
	cap->len += len;
	if (msg[0] == 'C')
		cap->complete = true;
}

void cache_capture_begin(struct cache_capture *cap, uint8_t type, size_t len)
{
	if (cap->failed)
		return;
	/* only rows are that big; a RowDescription of thousands of columns is
	 * not stored (it would have to come first, whole) */
	if (cap->pending || type != 'D' || cap->complete || len < 5) {
		give_up(cap, false);
		return;
	}
	if (capture_room(cap, len))
		cap->pending = len;
}

void cache_capture_more(struct cache_capture *cap, const uint8_t *p, size_t n)
{
	if (cap->failed)
		return;
	if (n > cap->pending) {
		give_up(cap, false);
		return;
	}
	memcpy(cap->buf + cap->len, p, n);
	cap->len += n;
	cap->pending -= n;
}
