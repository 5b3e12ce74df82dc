/* libFuzzer target: the framing, startup, error and SCRAM parsers must
 * survive any bytes without reading out of bounds. Startup packets of any
 * 3.x with _pq_ options go through the parser and, when it asks for one,
 * the NegotiateProtocolVersion builder; the parser's promises (user and
 * database never NULL, an SQLSTATE with every error) are checked. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_startup(const struct proto_msg *m)
{
	struct proto_startup s;
	const char *err = NULL;
	int rc = proto_parse_startup(m, &s, &err);

	if (!s.user || !s.database)
		abort();
	if (rc < 0) {
		if (!err || !s.sqlstate)
			abort();
		return;
	}
	if (s.kind != PROTO_STARTUP_V3)
		return;
	if (!s.user[0] || !s.database[0] || s.nparams + s.npq_options > PROTO_MAX_STARTUP_PARAMS)
		abort();
	for (size_t i = 0; i < s.npq_options; i++)
		if (strncmp(s.pq_options[i], "_pq_.", 5) != 0)
			abort();
	for (size_t i = 0; i < s.nparams; i++)
		if (strncmp(s.names[i], "_pq_.", 5) == 0)
			abort();
	if (proto_startup_wants_negotiation(&s)) {
		/* the answer frames as one 'v' message holding what was asked */
		struct proto_buf b;
		struct proto_msg v;
		struct proto_reader r;

		proto_buf_init(&b);
		if (proto_put_negotiate_version(&b, PROTO_V3_NEWEST_MINOR, s.pq_options,
		                                s.npq_options) == 0) {
			if (proto_next(proto_buf_head(&b), proto_buf_avail(&b), false,
			               PROTO_MAX_MSG_LEN, &v) != PROTO_OK ||
			    v.type != 'v' || v.raw_len != proto_buf_avail(&b))
				abort();
			proto_reader_init(&r, v.body, v.body_len);
			if (proto_get_u32(&r) != PROTO_V3 || proto_get_u32(&r) != s.npq_options)
				abort();
			for (size_t i = 0; i < s.npq_options; i++) {
				const char *name = proto_get_str(&r);
				if (!name || strcmp(name, s.pq_options[i]) != 0)
					abort();
			}
			if (r.err || r.n != 0)
				abort();
		}
		proto_buf_free(&b);
	}
}

static void frame_all(const uint8_t *data, size_t size, bool startup)
{
	struct proto_msg m;
	size_t off = 0;

	while (off < size) {
		int rc = proto_next(data + off, size - off, startup,
		                    startup ? PROTO_MAX_STARTUP_LEN : PROTO_MAX_MSG_LEN, &m);
		if (rc != PROTO_OK)
			return;
		if (startup) {
			check_startup(&m);
		} else if (m.type == 'E' || m.type == 'N') {
			struct proto_error e;
			(void)!proto_parse_error(&m, &e);
		} else {
			struct proto_reader r;
			proto_reader_init(&r, m.body, m.body_len);
			while (!r.err && r.n > 0)
				(void)proto_get_str(&r);
		}
		off += m.raw_len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	/* First byte picks the parser; the rest is its input. */
	uint8_t which = data[0] % 4;
	data++;
	size--;
	switch (which) {
	case 0:
		frame_all(data, size, true);
		break;
	case 1:
		frame_all(data, size, false);
		break;
	case 2: {
		static struct proto_scram_secret sec;
		static bool init;
		struct proto_scram_server st;
		char out[512];
		size_t outlen;
		const char *err;
		if (!init) {
			const uint8_t salt[16] = {1};
			init = proto_scram_secret_from_password("pw", salt, 16, 1, &sec) == 0;
		}
		size_t cut = size / 2;
		if (proto_scram_server_first(&st, &sec, data, cut, out, sizeof(out), &outlen,
		                             &err) == 0)
			(void)!proto_scram_server_final(&st, data + cut, size - cut, out,
			                                sizeof(out), &outlen, &err);
		break;
	}
	default: {
		char v[512];
		struct proto_scram_secret s;
		size_t n = size < sizeof(v) - 1 ? size : sizeof(v) - 1;
		memcpy(v, data, n);
		v[n] = 0;
		(void)!proto_scram_parse_secret(v, &s);
		break;
	}
	}
	return 0;
}
