/*
 * Byte buffers, message framing, readers and builders for the PostgreSQL
 * v3 protocol.
 */
#include "protocol/proto.h"

#include <stdlib.h>
#include <string.h>

/* ---- buffers ---- */

void proto_buf_init(struct proto_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void proto_buf_free(struct proto_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void proto_buf_reset(struct proto_buf *b)
{
	b->off = 0;
	b->len = 0;
}

int proto_buf_reserve(struct proto_buf *b, size_t n)
{
	if (b->cap - b->len >= n)
		return 0;
	/* Compact first: consumed bytes at the front are free room. */
	if (b->off > 0) {
		size_t avail = b->len - b->off;

		memmove(b->data, b->data + b->off, avail);
		b->off = 0;
		b->len = avail;
		if (b->cap - b->len >= n)
			return 0;
	}
	size_t need = b->len + n;
	if (need < b->len)
		return -1;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need) {
		if (cap > SIZE_MAX / 2)
			return -1;
		cap *= 2;
	}
	uint8_t *p = realloc(b->data, cap);
	if (!p)
		return -1;
	b->data = p;
	b->cap = cap;
	return 0;
}

int proto_buf_append(struct proto_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (proto_buf_reserve(b, n) < 0)
		return -1;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

void proto_buf_consume(struct proto_buf *b, size_t n)
{
	size_t avail = b->len - b->off;

	if (n >= avail) {
		b->off = 0;
		b->len = 0;
		return;
	}
	b->off += n;
}

/* ---- framing ---- */

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int proto_peek_header(const uint8_t *p, size_t n, uint8_t *type, uint32_t *len)
{
	if (n < 5)
		return PROTO_NEED_MORE;
	*type = p[0];
	*len = rd32(p + 1);
	if (*len < 4)
		return PROTO_ERR;
	return PROTO_OK;
}

int proto_next(const uint8_t *p, size_t n, bool startup, uint32_t max_len, struct proto_msg *m)
{
	size_t hdr = startup ? 4 : 5;

	if (n < hdr)
		return PROTO_NEED_MORE;
	uint32_t len = rd32(p + hdr - 4);
	/* A startup packet holds at least its length and a 4-byte code. */
	if (len < (startup ? 8u : 4u))
		return PROTO_ERR;
	if (len > max_len)
		return PROTO_TOO_BIG;
#if SIZE_MAX <= UINT32_MAX
	if (!startup && len == UINT32_MAX)
		return PROTO_TOO_BIG; /* the type byte would wrap raw_len */
#endif
	size_t raw_len = (size_t)len + (startup ? 0 : 1);
	if (n < raw_len)
		return PROTO_NEED_MORE;
	m->type = startup ? 0 : p[0];
	m->len = len;
	m->raw = p;
	m->raw_len = raw_len;
	m->body = p + hdr;
	m->body_len = len - 4;
	return PROTO_OK;
}

/* ---- reader ---- */

void proto_reader_init(struct proto_reader *r, const void *p, size_t n)
{
	r->p = p;
	r->n = n;
	r->err = false;
}

static const uint8_t *take(struct proto_reader *r, size_t len)
{
	if (r->err || r->n < len) {
		r->err = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += len;
	r->n -= len;
	return p;
}

uint8_t proto_get_u8(struct proto_reader *r)
{
	const uint8_t *p = take(r, 1);
	return p ? p[0] : 0;
}

uint16_t proto_get_u16(struct proto_reader *r)
{
	const uint8_t *p = take(r, 2);
	return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

uint32_t proto_get_u32(struct proto_reader *r)
{
	const uint8_t *p = take(r, 4);
	return p ? rd32(p) : 0;
}

const char *proto_get_str(struct proto_reader *r)
{
	if (r->err)
		return NULL;
	if (r->n && r->p[0] == 0) /* the unnamed statement or portal, most of all */
		return (const char *)take(r, 1);
	const uint8_t *nul = memchr(r->p, 0, r->n);
	if (!nul) {
		r->err = true;
		return NULL;
	}
	return (const char *)take(r, (size_t)(nul - r->p) + 1);
}

const uint8_t *proto_get_bytes(struct proto_reader *r, size_t len)
{
	return take(r, len);
}

/* ---- startup ---- */

static enum proto_startup_kind startup_kind(uint32_t code)
{
	switch (code) {
	case PROTO_CANCEL_REQUEST:
		return PROTO_STARTUP_CANCEL;
	case PROTO_SSL_REQUEST:
		return PROTO_STARTUP_SSL;
	case PROTO_GSSENC_REQUEST:
		return PROTO_STARTUP_GSSENC;
	default:
		/* the special codes have major 1234, so this catches no request */
		return PROTO_MAJOR(code) == 3 ? PROTO_STARTUP_V3 : PROTO_STARTUP_UNSUPPORTED;
	}
}

static int startup_fail(struct proto_startup *s, const char *sqlstate, const char *msg,
                        const char **err)
{
	s->sqlstate = sqlstate;
	*err = msg;
	return -1;
}

/*
 * The body of a 3.x StartupMessage after the code: name/value pairs of
 * NUL-terminated strings, then one NUL that must be the last byte (as
 * PostgreSQL insists). Protocol options ("_pq_.*") are kept apart: they are
 * answered, never passed on as settings.
 */
static int parse_v3_params(struct proto_reader *r, struct proto_startup *s, const char **err)
{
	static const char layout[] =
	        "invalid startup packet layout: expected terminator as last byte";
	bool have_user = false, have_db = false;

	for (;;) {
		if (r->n == 0)
			return startup_fail(s, "08P01", layout, err);
		if (r->p[0] == 0) {
			if (r->n != 1)
				return startup_fail(s, "08P01", layout, err);
			break;
		}
		const char *name = proto_get_str(r);
		const char *value = proto_get_str(r);
		if (r->err)
			return startup_fail(s, "08P01", layout, err);
		if (s->nparams + s->npq_options >= PROTO_MAX_STARTUP_PARAMS)
			return startup_fail(s, "54000", "too many startup packet parameters", err);
		if (strncmp(name, "_pq_.", 5) == 0) {
			s->pq_options[s->npq_options++] = name;
			continue;
		}
		s->names[s->nparams] = name;
		s->values[s->nparams] = value;
		s->nparams++;
		/* the last of a repeated name wins, as in PostgreSQL */
		if (strcmp(name, "user") == 0) {
			s->user = value;
			have_user = true;
		} else if (strcmp(name, "database") == 0) {
			s->database = value;
			have_db = true;
		} else if (strcmp(name, "options") == 0) {
			s->options = value;
		}
	}
	if (!have_user || !s->user[0]) {
		s->user = "";
		return startup_fail(s, "28000",
		                    "no PostgreSQL user name specified in startup packet", err);
	}
	if (!have_db || !s->database[0])
		s->database = s->user;
	return 0;
}

int proto_parse_startup(const struct proto_msg *m, struct proto_startup *s, const char **err)
{
	struct proto_reader r;

	memset(s, 0, sizeof(*s));
	/* never NULL, so a caller that skips a check reads "" rather than crash */
	s->user = "";
	s->database = "";
	proto_reader_init(&r, m->body, m->body_len);
	s->code = proto_get_u32(&r);
	if (r.err)
		return startup_fail(s, "08P01", "invalid length of startup packet", err);
	s->kind = startup_kind(s->code);
	switch (s->kind) {
	case PROTO_STARTUP_CANCEL:
		s->cancel_pid = proto_get_u32(&r);
		s->cancel_key = proto_get_u32(&r);
		if (r.err || r.n != 0)
			return startup_fail(s, "08P01", "invalid length of cancel request packet",
			                    err);
		return 0;
	case PROTO_STARTUP_V3:
		s->minor = (uint16_t)PROTO_MINOR(s->code);
		return parse_v3_params(&r, s, err);
	default:
		return 0;
	}
}

bool proto_startup_wants_negotiation(const struct proto_startup *s)
{
	return s->kind == PROTO_STARTUP_V3 &&
	       (s->minor > PROTO_V3_NEWEST_MINOR || s->npq_options > 0);
}

/* ---- builders ---- */

size_t proto_msg_begin(struct proto_buf *b, uint8_t type)
{
	if (proto_buf_reserve(b, 5) < 0)
		return (size_t)-1;
	size_t start = b->len;
	b->data[b->len++] = type;
	memset(b->data + b->len, 0, 4);
	b->len += 4;
	return start;
}

static void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void proto_msg_end(struct proto_buf *b, size_t start)
{
	wr32(b->data + start + 1, (uint32_t)(b->len - start - 1));
}

int proto_put_u8(struct proto_buf *b, uint8_t v)
{
	return proto_buf_append(b, &v, 1);
}

int proto_put_u16(struct proto_buf *b, uint16_t v)
{
	uint8_t p[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	return proto_buf_append(b, p, 2);
}

int proto_put_u32(struct proto_buf *b, uint32_t v)
{
	uint8_t p[4];
	wr32(p, v);
	return proto_buf_append(b, p, 4);
}

int proto_put_str(struct proto_buf *b, const char *s)
{
	return proto_buf_append(b, s, strlen(s) + 1);
}

int proto_put_bytes(struct proto_buf *b, const void *p, size_t n)
{
	return proto_buf_append(b, p, n);
}

/*
 * Builders write into the buffer and, on OOM half way or a body too long
 * for the length field, roll the buffer back so no partial message is ever
 * left behind.
 */
#define BUILD(b, type, body)                                                                       \
	do {                                                                                       \
		size_t start_ = proto_msg_begin((b), (type));                                      \
		if (start_ == (size_t)-1)                                                          \
			return -1;                                                                 \
		if ((body) < 0 || (b)->len - start_ - 1 > PROTO_MAX_MSG_LEN) {                     \
			(b)->len = start_;                                                         \
			return -1;                                                                 \
		}                                                                                  \
		proto_msg_end((b), start_);                                                        \
		return 0;                                                                          \
	} while (0)

int proto_put_msg(struct proto_buf *b, uint8_t type, const void *body, size_t len)
{
	BUILD(b, type, proto_put_bytes(b, body, len));
}

static int put_field(struct proto_buf *b, char code, const char *v)
{
	if (!v)
		return 0;
	if (proto_put_u8(b, (uint8_t)code) < 0)
		return -1;
	return proto_put_str(b, v);
}

static int put_fields(struct proto_buf *b, const char *severity, const char *sqlstate,
                      const char *msg, const char *detail, const char *hint, const char *routine)
{
	if (put_field(b, 'S', severity) < 0 || put_field(b, 'V', severity) < 0 ||
	    put_field(b, 'C', sqlstate) < 0 || put_field(b, 'M', msg) < 0 ||
	    put_field(b, 'D', detail) < 0 || put_field(b, 'H', hint) < 0 ||
	    put_field(b, 'R', routine) < 0)
		return -1;
	return proto_put_u8(b, 0);
}

int proto_put_error(struct proto_buf *b, const char *severity, const char *sqlstate,
                    const char *msg, const char *detail, const char *hint)
{
	BUILD(b, 'E', put_fields(b, severity, sqlstate, msg, detail, hint, NULL));
}

int proto_put_error_routine(struct proto_buf *b, const char *severity, const char *sqlstate,
                            const char *msg, const char *detail, const char *hint,
                            const char *routine)
{
	BUILD(b, 'E', put_fields(b, severity, sqlstate, msg, detail, hint, routine));
}

int proto_put_notice(struct proto_buf *b, const char *severity, const char *sqlstate,
                     const char *msg, const char *detail, const char *hint)
{
	BUILD(b, 'N', put_fields(b, severity, sqlstate, msg, detail, hint, NULL));
}

static int put_auth_body(struct proto_buf *b, uint32_t code, const void *data, size_t len)
{
	if (proto_put_u32(b, code) < 0)
		return -1;
	return proto_put_bytes(b, data, len);
}

int proto_put_auth(struct proto_buf *b, uint32_t code, const void *data, size_t len)
{
	BUILD(b, 'R', put_auth_body(b, code, data, len));
}

static int put_sasl_body(struct proto_buf *b, const char *mechanism)
{
	if (proto_put_u32(b, PROTO_AUTH_SASL) < 0 || proto_put_str(b, mechanism) < 0)
		return -1;
	return proto_put_u8(b, 0);
}

int proto_put_auth_sasl(struct proto_buf *b, const char *mechanism)
{
	BUILD(b, 'R', put_sasl_body(b, mechanism));
}

static int put_two_str(struct proto_buf *b, const char *x, const char *y)
{
	if (proto_put_str(b, x) < 0)
		return -1;
	return proto_put_str(b, y);
}

int proto_put_param_status(struct proto_buf *b, const char *name, const char *value)
{
	BUILD(b, 'S', put_two_str(b, name, value));
}

static int put_two_u32(struct proto_buf *b, uint32_t x, uint32_t y)
{
	if (proto_put_u32(b, x) < 0)
		return -1;
	return proto_put_u32(b, y);
}

int proto_put_backend_key(struct proto_buf *b, uint32_t pid, uint32_t key)
{
	BUILD(b, 'K', put_two_u32(b, pid, key));
}

int proto_put_rfq(struct proto_buf *b, char status)
{
	BUILD(b, 'Z', proto_put_u8(b, (uint8_t)status));
}

static int put_negotiate_body(struct proto_buf *b, uint32_t newest_minor,
                              const char *const *options, size_t n)
{
	if (newest_minor > 0xffff || n > INT32_MAX)
		return -1;
	if (proto_put_u32(b, PROTO_V3 | newest_minor) < 0 || proto_put_u32(b, (uint32_t)n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (proto_put_str(b, options[i]) < 0)
			return -1;
	return 0;
}

int proto_put_negotiate_version(struct proto_buf *b, uint32_t newest_minor,
                                const char *const *unrecognized_options, size_t n)
{
	BUILD(b, 'v', put_negotiate_body(b, newest_minor, unrecognized_options, n));
}

/* Untyped packets: length, then body. */
static size_t untyped_begin(struct proto_buf *b)
{
	if (proto_buf_reserve(b, 4) < 0)
		return (size_t)-1;
	size_t start = b->len;
	memset(b->data + b->len, 0, 4);
	b->len += 4;
	return start;
}

static int untyped_end(struct proto_buf *b, size_t start)
{
	if (b->len - start > PROTO_MAX_MSG_LEN) {
		b->len = start;
		return -1;
	}
	wr32(b->data + start, (uint32_t)(b->len - start));
	return 0;
}

static int put_startup_body(struct proto_buf *b, const char *const *names,
                            const char *const *values, size_t n)
{
	if (proto_put_u32(b, PROTO_V3) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (put_two_str(b, names[i], values[i]) < 0)
			return -1;
	return proto_put_u8(b, 0);
}

int proto_put_startup(struct proto_buf *b, const char *const *names, const char *const *values,
                      size_t n)
{
	size_t start = untyped_begin(b);
	if (start == (size_t)-1)
		return -1;
	if (put_startup_body(b, names, values, n) < 0) {
		b->len = start;
		return -1;
	}
	return untyped_end(b, start);
}

int proto_put_ssl_request(struct proto_buf *b)
{
	uint8_t p[8];
	wr32(p, 8);
	wr32(p + 4, PROTO_SSL_REQUEST);
	return proto_buf_append(b, p, 8);
}

int proto_put_cancel(struct proto_buf *b, uint32_t pid, uint32_t key)
{
	uint8_t p[16];
	wr32(p, 16);
	wr32(p + 4, PROTO_CANCEL_REQUEST);
	wr32(p + 8, pid);
	wr32(p + 12, key);
	return proto_buf_append(b, p, 16);
}

int proto_put_password(struct proto_buf *b, const char *pw)
{
	BUILD(b, 'p', proto_put_str(b, pw));
}

static int put_sasl_initial_body(struct proto_buf *b, const char *mechanism, const void *data,
                                 size_t len)
{
	if (len > PROTO_MAX_MSG_LEN || proto_put_str(b, mechanism) < 0 ||
	    proto_put_u32(b, (uint32_t)len) < 0)
		return -1;
	return proto_put_bytes(b, data, len);
}

int proto_put_sasl_initial(struct proto_buf *b, const char *mechanism, const void *data, size_t len)
{
	BUILD(b, 'p', put_sasl_initial_body(b, mechanism, data, len));
}

int proto_put_sasl_response(struct proto_buf *b, const void *data, size_t len)
{
	BUILD(b, 'p', proto_put_bytes(b, data, len));
}

int proto_put_query(struct proto_buf *b, const char *sql)
{
	BUILD(b, 'Q', proto_put_str(b, sql));
}

int proto_put_terminate(struct proto_buf *b)
{
	return proto_put_msg(b, 'X', NULL, 0);
}

/* Type size of the OIDs the console sends (pg_type.typlen). */
static int16_t type_len(uint32_t oid)
{
	switch (oid) {
	case PROTO_OID_INT4:
		return 4;
	case PROTO_OID_INT8:
	case PROTO_OID_FLOAT8:
	case PROTO_OID_TIMESTAMPTZ:
		return 8;
	default:
		return -1;
	}
}

static int put_row_desc_body(struct proto_buf *b, const char *const *names, const uint32_t *oids,
                             size_t n)
{
	/* the column count is an Int16 */
	if (n > UINT16_MAX || proto_put_u16(b, (uint16_t)n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		uint32_t oid = oids ? oids[i] : PROTO_OID_TEXT;

		if (proto_put_str(b, names[i]) < 0 || proto_put_u32(b, 0) < 0 ||
		    proto_put_u16(b, 0) < 0 || proto_put_u32(b, oid) < 0 ||
		    proto_put_u16(b, (uint16_t)type_len(oid)) < 0 ||
		    proto_put_u32(b, (uint32_t)-1) < 0 || proto_put_u16(b, 0) < 0)
			return -1;
	}
	return 0;
}

int proto_put_row_desc(struct proto_buf *b, const char *const *names, size_t n)
{
	BUILD(b, 'T', put_row_desc_body(b, names, NULL, n));
}

int proto_put_row_desc_typed(struct proto_buf *b, const char *const *names, const uint32_t *oids,
                             size_t n)
{
	BUILD(b, 'T', put_row_desc_body(b, names, oids, n));
}

static int put_data_row_body(struct proto_buf *b, const char *const *values, size_t n)
{
	if (n > UINT16_MAX || proto_put_u16(b, (uint16_t)n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!values[i]) {
			if (proto_put_u32(b, (uint32_t)-1) < 0)
				return -1;
			continue;
		}
		size_t len = strlen(values[i]);
		/* -1 (0xffffffff) is NULL: a value must stay below the message limit */
		if (len > PROTO_MAX_MSG_LEN || proto_put_u32(b, (uint32_t)len) < 0 ||
		    proto_put_bytes(b, values[i], len) < 0)
			return -1;
	}
	return 0;
}

int proto_put_data_row(struct proto_buf *b, const char *const *values, size_t n)
{
	BUILD(b, 'D', put_data_row_body(b, values, n));
}

int proto_put_command_complete(struct proto_buf *b, const char *tag)
{
	BUILD(b, 'C', proto_put_str(b, tag));
}

int proto_parse_error(const struct proto_msg *m, struct proto_error *e)
{
	struct proto_reader r;
	bool have_v = false;

	e->severity = "";
	e->sqlstate = "";
	e->message = "";
	e->routine = "";
	proto_reader_init(&r, m->body, m->body_len);
	for (;;) {
		uint8_t code = proto_get_u8(&r);
		if (r.err)
			return -1;
		if (code == 0)
			return 0;
		const char *v = proto_get_str(&r);
		if (!v)
			return -1;
		switch (code) {
		case 'V':
			e->severity = v;
			have_v = true;
			break;
		case 'S':
			if (!have_v)
				e->severity = v;
			break;
		case 'C':
			e->sqlstate = v;
			break;
		case 'M':
			e->message = v;
			break;
		case 'R':
			e->routine = v;
			break;
		default:
			break;
		}
	}
}

/* ---- giving buffer memory back (called by the relay after it consumed) ---- */

void proto_buf_shrink(struct proto_buf *b, size_t keep)
{
	size_t avail = b->len - b->off;
	uint8_t *p;

	if (b->cap <= keep || avail > keep / 2)
		return;
	if (avail == 0) {
		free(b->data);
		memset(b, 0, sizeof(*b));
		return;
	}
	memmove(b->data, b->data + b->off, avail);
	b->off = 0;
	b->len = avail;
	p = realloc(b->data, keep);
	if (p) {
		b->data = p;
		b->cap = keep;
	}
}
