/* Framing at every split point, readers, builders, startup and cancel packets. */
#include <criterion/criterion.h>
#include <string.h>

#include "protocol/proto.h"

static struct proto_buf sample_stream(void)
{
	struct proto_buf b;
	proto_buf_init(&b);
	cr_assert_eq(proto_put_query(&b, "select 1"), 0);
	cr_assert_eq(proto_put_msg(&b, 'S', NULL, 0), 0);
	cr_assert_eq(proto_put_error(&b, "ERROR", "42P01", "no such table", NULL, "create it"), 0);
	cr_assert_eq(proto_put_rfq(&b, 'I'), 0);
	return b;
}

/* Feed <stream> into a buffer in two parts split at <cut> and frame
 * everything; the messages must come out the same whatever the cut. */
static size_t frame_split(const struct proto_buf *stream, size_t cut, char *types)
{
	struct proto_buf in;
	size_t n = 0;
	struct proto_msg m;

	proto_buf_init(&in);
	const uint8_t *all = proto_buf_head(stream);
	size_t total = proto_buf_avail(stream);
	size_t parts[2][2] = {{0, cut}, {cut, total}};
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(proto_buf_append(&in, all + parts[i][0], parts[i][1] - parts[i][0]),
		             0);
		for (;;) {
			int rc = proto_next(proto_buf_head(&in), proto_buf_avail(&in), false,
			                    PROTO_MAX_MSG_LEN, &m);
			if (rc == PROTO_NEED_MORE)
				break;
			cr_assert_eq(rc, PROTO_OK);
			types[n++] = (char)m.type;
			proto_buf_consume(&in, m.raw_len);
		}
	}
	types[n] = 0;
	cr_assert_eq(proto_buf_avail(&in), 0);
	proto_buf_free(&in);
	return n;
}

Test(frame, every_split_point)
{
	struct proto_buf s = sample_stream();
	char types[16];

	for (size_t cut = 0; cut <= proto_buf_avail(&s); cut++) {
		cr_assert_eq(frame_split(&s, cut, types), 4, "cut at %zu", cut);
		cr_assert_str_eq(types, "QSEZ", "cut at %zu", cut);
	}
	proto_buf_free(&s);
}

Test(frame, one_byte_at_a_time)
{
	struct proto_buf s = sample_stream(), in;
	struct proto_msg m;
	size_t got = 0;

	proto_buf_init(&in);
	for (size_t i = 0; i < proto_buf_avail(&s); i++) {
		cr_assert_eq(proto_buf_append(&in, proto_buf_head(&s) + i, 1), 0);
		while (proto_next(proto_buf_head(&in), proto_buf_avail(&in), false, 1000, &m) ==
		       PROTO_OK) {
			got++;
			proto_buf_consume(&in, m.raw_len);
		}
	}
	cr_assert_eq(got, 4);
	proto_buf_free(&in);
	proto_buf_free(&s);
}

Test(frame, bad_and_oversized_lengths)
{
	struct proto_msg m;
	const uint8_t short_len[] = {'Q', 0, 0, 0, 3};
	const uint8_t huge[] = {'Q', 0x7f, 0xff, 0xff, 0xff};
	const uint8_t startup_short[] = {0, 0, 0, 7, 0, 0, 0};

	cr_assert_eq(proto_next(short_len, sizeof(short_len), false, PROTO_MAX_MSG_LEN, &m),
	             PROTO_ERR);
	cr_assert_eq(proto_next(huge, sizeof(huge), false, PROTO_MAX_MSG_LEN, &m), PROTO_TOO_BIG);
	cr_assert_eq(proto_next(startup_short, sizeof(startup_short), true, 10000, &m), PROTO_ERR);
	cr_assert_eq(proto_next(huge, 3, false, PROTO_MAX_MSG_LEN, &m), PROTO_NEED_MORE);
}

Test(frame, error_fields_round_trip)
{
	struct proto_buf b;
	struct proto_msg m;
	struct proto_error e;

	proto_buf_init(&b);
	cr_assert_eq(proto_put_error(&b, "FATAL", "08P01", "bad", "detail", NULL), 0);
	cr_assert_eq(proto_next(proto_buf_head(&b), proto_buf_avail(&b), false, 1000, &m),
	             PROTO_OK);
	cr_assert_eq(m.type, 'E');
	cr_assert_eq(proto_parse_error(&m, &e), 0);
	cr_assert_str_eq(e.severity, "FATAL");
	cr_assert_str_eq(e.sqlstate, "08P01");
	cr_assert_str_eq(e.message, "bad");
	cr_assert_str_eq(e.routine, "");
	proto_buf_free(&b);
}

Test(frame, error_routine_field)
{
	/* as PostgreSQL sends it: S, V, C, M, F, L, R */
	static const uint8_t msg[] = "E\0\0\0\x6c"
	                             "SERROR\0VERROR\0C0A000\0Mcached plan must not change "
	                             "result type\0Fplancache.c\0L740\0RRevalidateCachedQuery\0";
	struct proto_msg m;
	struct proto_error e;

	cr_assert_eq(proto_next(msg, sizeof(msg), false, 1000, &m), PROTO_OK);
	cr_assert_eq(m.raw_len, sizeof(msg)); /* the last NUL ends the fields */
	cr_assert_eq(proto_parse_error(&m, &e), 0);
	cr_assert_str_eq(e.sqlstate, "0A000");
	cr_assert_str_eq(e.routine, "RevalidateCachedQuery");
}

Test(frame, error_routine_round_trip)
{
	struct proto_buf b;
	struct proto_msg m;
	struct proto_error e;

	proto_buf_init(&b);
	cr_assert_eq(proto_put_error_routine(&b, "ERROR", "0A000", "msg", NULL, "hint", "Routine"),
	             0);
	cr_assert_eq(proto_next(proto_buf_head(&b), proto_buf_avail(&b), false, 1000, &m),
	             PROTO_OK);
	cr_assert_eq(proto_parse_error(&m, &e), 0);
	cr_assert_str_eq(e.sqlstate, "0A000");
	cr_assert_str_eq(e.message, "msg");
	cr_assert_str_eq(e.routine, "Routine");
	proto_buf_free(&b);
}

Test(reader, sticky_error)
{
	const uint8_t body[] = {0, 1, 'a', 'b'};
	struct proto_reader r;

	proto_reader_init(&r, body, sizeof(body));
	cr_assert_eq(proto_get_u16(&r), 1);
	cr_assert_null(proto_get_str(&r)); /* unterminated */
	cr_assert(r.err);
	cr_assert_eq(proto_get_u8(&r), 0);
}

static int frame_startup(struct proto_buf *b, struct proto_startup *s, const char **err)
{
	struct proto_msg m;
	int rc = proto_next(proto_buf_head(b), proto_buf_avail(b), true, PROTO_MAX_STARTUP_LEN, &m);
	cr_assert_eq(rc, PROTO_OK);
	return proto_parse_startup(&m, s, err);
}

Test(startup, parameters_and_defaults)
{
	const char *names[] = {"user", "application_name"};
	const char *values[] = {"alice", "psql"};
	struct proto_buf b;
	struct proto_startup s;
	const char *err = NULL;

	proto_buf_init(&b);
	cr_assert_eq(proto_put_startup(&b, names, values, 2), 0);
	cr_assert_eq(frame_startup(&b, &s, &err), 0);
	cr_assert_eq(s.code, PROTO_V3);
	cr_assert_str_eq(s.user, "alice");
	cr_assert_str_eq(s.database, "alice"); /* defaults to the user */
	cr_assert_eq(s.nparams, 2);
	cr_assert_str_eq(s.values[1], "psql");
	proto_buf_free(&b);
}

Test(startup, missing_user_and_unterminated)
{
	const char *names[] = {"database"};
	const char *values[] = {"app"};
	struct proto_buf b;
	struct proto_startup s;
	const char *err = NULL;

	proto_buf_init(&b);
	cr_assert_eq(proto_put_startup(&b, names, values, 1), 0);
	cr_assert_eq(frame_startup(&b, &s, &err), -1);
	cr_assert_not_null(err);

	/* drop the final NUL and fix up the length */
	proto_buf_reset(&b);
	const char *n2[] = {"user"};
	const char *v2[] = {"bob"};
	cr_assert_eq(proto_put_startup(&b, n2, v2, 1), 0);
	b.len--;
	b.data[3]--;
	err = NULL;
	cr_assert_eq(frame_startup(&b, &s, &err), -1);
	cr_assert_not_null(err);
	proto_buf_free(&b);
}

Test(startup, cancel_and_ssl_requests)
{
	struct proto_buf b;
	struct proto_startup s;
	const char *err = NULL;

	proto_buf_init(&b);
	cr_assert_eq(proto_put_cancel(&b, 1234, 0xdeadbeef), 0);
	cr_assert_eq(frame_startup(&b, &s, &err), 0);
	cr_assert_eq(s.code, PROTO_CANCEL_REQUEST);
	cr_assert_eq(s.cancel_pid, 1234);
	cr_assert_eq(s.cancel_key, 0xdeadbeef);

	proto_buf_reset(&b);
	cr_assert_eq(proto_put_ssl_request(&b), 0);
	cr_assert_eq(frame_startup(&b, &s, &err), 0);
	cr_assert_eq(s.code, PROTO_SSL_REQUEST);

	/* a cancel request with a trailing byte is malformed */
	proto_buf_reset(&b);
	const uint8_t bad[] = {0, 0, 0, 17, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 1, 0, 0, 0, 2, 9};
	cr_assert_eq(proto_buf_append(&b, bad, sizeof(bad)), 0);
	cr_assert_eq(frame_startup(&b, &s, &err), -1);
	proto_buf_free(&b);
}

Test(buf, compacts_and_grows)
{
	struct proto_buf b;
	uint8_t chunk[1000];

	memset(chunk, 7, sizeof(chunk));
	proto_buf_init(&b);
	for (int i = 0; i < 100; i++) {
		cr_assert_eq(proto_buf_append(&b, chunk, sizeof(chunk)), 0);
		proto_buf_consume(&b, 900);
	}
	cr_assert_eq(proto_buf_avail(&b), 100 * 100);
	cr_assert_leq(b.cap, 32768, "consumed space is reused (cap %zu)", b.cap);
	proto_buf_consume(&b, 1u << 30);
	cr_assert_eq(b.off, 0);
	cr_assert_eq(b.len, 0);
	proto_buf_free(&b);
}
