/* libFuzzer target: the framing, startup, error and SCRAM parsers must
 * survive any bytes without reading out of bounds. */
#include <stdint.h>
#include <string.h>

#include "protocol/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
			struct proto_startup s;
			const char *err = NULL;
			(void)!proto_parse_startup(&m, &s, &err);
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
