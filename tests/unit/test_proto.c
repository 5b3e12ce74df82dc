/* Framing at every split point, readers, builders, startup and cancel packets,
 * protocol 3.x startups and NegotiateProtocolVersion, length limits of the
 * builders. */
#include <criterion/criterion.h>
#include <stdio.h>
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

/* Frame and parse a startup packet given byte by byte. */
static int parse_bytes(const uint8_t *p, size_t n, struct proto_startup *s, const char **err)
{
	struct proto_msg m;

	cr_assert_eq(proto_next(p, n, true, PROTO_MAX_STARTUP_LEN, &m), PROTO_OK);
	cr_assert_eq(m.raw_len, n, "the packet is framed whole");
	*err = NULL;
	return proto_parse_startup(&m, s, err);
}

Test(startup, v3_1_without_parameters_is_an_error_not_a_crash)
{
	/* The packet that crashed sluice: protocol 3.1, nothing after the code.
	 * PostgreSQL: FATAL 08P01 "invalid startup packet layout". */
	static const uint8_t pkt[] = {0, 0, 0, 8, 0, 3, 0, 1};
	struct proto_startup s;
	const char *err;

	cr_assert_eq(parse_bytes(pkt, sizeof(pkt), &s, &err), -1);
	cr_assert_eq(s.kind, PROTO_STARTUP_V3);
	cr_assert_eq(s.minor, 1);
	cr_assert_str_eq(s.sqlstate, "08P01");
	cr_assert_not_null(err);
	cr_assert_not_null(s.user, "user is never left NULL");
	cr_assert_not_null(s.database);
}

Test(startup, v3_1_terminator_only_has_no_user_28000)
{
	static const uint8_t pkt[] = {0, 0, 0, 9, 0, 3, 0, 1, 0};
	struct proto_startup s;
	const char *err;

	cr_assert_eq(parse_bytes(pkt, sizeof(pkt), &s, &err), -1);
	cr_assert_str_eq(s.sqlstate, "28000");
	cr_assert_str_eq(err, "no PostgreSQL user name specified in startup packet");
	cr_assert_str_eq(s.user, "");
}

Test(startup, empty_user_is_28000)
{
	static const uint8_t pkt[] = {0, 0, 0, 15, 0, 3, 0, 0, 'u', 's', 'e', 'r', 0, 0, 0};
	struct proto_startup s;
	const char *err;

	cr_assert_eq(parse_bytes(pkt, sizeof(pkt), &s, &err), -1);
	cr_assert_str_eq(s.sqlstate, "28000");
}

/*
 * A startup packet: length, <code>, then the body bytes of the string
 * literal <lit> (its own final NUL left out, so the body's NULs are all
 * written in the literal, as on the wire).
 */
#define PKT(buf, code, lit) mk_packet((buf), (code), (const uint8_t *)(lit), sizeof(lit) - 1)

static size_t mk_packet(uint8_t *out, uint32_t code, const uint8_t *body, size_t n)
{
	uint32_t len = (uint32_t)(n + 8);
	const uint8_t hdr[8] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16),  (uint8_t)(len >> 8),
	                        (uint8_t)len,         (uint8_t)(code >> 24), (uint8_t)(code >> 16),
	                        (uint8_t)(code >> 8), (uint8_t)code};
	memcpy(out, hdr, 8);
	memcpy(out + 8, body, n);
	return n + 8;
}

Test(startup, v3_2_with_protocol_options)
{
	/* 3.2 (libpq 18 with max_protocol_version=3.2), a user, two _pq_ options
	 * and a setting: the options are kept apart and not passed on */
	uint8_t pkt[256];
	size_t n = PKT(pkt, 0x00030002,
	               "user\0bob\0_pq_.foo\0"
	               "1\0TimeZone\0UTC\0"
	               "_pq_.bar\0\0database\0app\0\0");
	struct proto_startup s;
	const char *err;

	cr_assert_eq(parse_bytes(pkt, n, &s, &err), 0, "%s", err ? err : "");
	cr_assert_eq(s.kind, PROTO_STARTUP_V3);
	cr_assert_eq(s.code, 0x00030002);
	cr_assert_eq(s.minor, 2);
	cr_assert_str_eq(s.user, "bob");
	cr_assert_str_eq(s.database, "app");
	cr_assert_null(s.sqlstate);
	cr_assert_eq(s.nparams, 3);
	cr_assert_str_eq(s.names[0], "user");
	cr_assert_str_eq(s.names[1], "TimeZone");
	cr_assert_str_eq(s.values[1], "UTC");
	cr_assert_str_eq(s.names[2], "database");
	cr_assert_eq(s.npq_options, 2);
	cr_assert_str_eq(s.pq_options[0], "_pq_.foo");
	cr_assert_str_eq(s.pq_options[1], "_pq_.bar");
	cr_assert(proto_startup_wants_negotiation(&s));
}

Test(startup, negotiation_only_when_needed)
{
	uint8_t pkt[256];
	size_t n;
	struct proto_startup s;
	const char *err;

	/* 3.0 with nothing new: no NegotiateProtocolVersion */
	n = PKT(pkt, PROTO_V3, "user\0bob\0\0");
	cr_assert_eq(parse_bytes(pkt, n, &s, &err), 0);
	cr_assert_eq(s.minor, 0);
	cr_assert_not(proto_startup_wants_negotiation(&s));

	/* 3.0 with a protocol option: PostgreSQL answers it */
	n = PKT(pkt, PROTO_V3, "user\0bob\0_pq_.x\0y\0\0");
	cr_assert_eq(parse_bytes(pkt, n, &s, &err), 0);
	cr_assert_eq(s.npq_options, 1);
	cr_assert_eq(s.nparams, 1);
	cr_assert(proto_startup_wants_negotiation(&s));

	/* 3.7: a newer minor, no options */
	n = PKT(pkt, 0x00030007, "user\0bob\0\0");
	cr_assert_eq(parse_bytes(pkt, n, &s, &err), 0);
	cr_assert_eq(s.minor, 7);
	cr_assert_eq(s.npq_options, 0);
	cr_assert(proto_startup_wants_negotiation(&s));

	/* 3.65535: still 3.x */
	n = PKT(pkt, 0x0003ffff, "user\0bob\0\0");
	cr_assert_eq(parse_bytes(pkt, n, &s, &err), 0);
	cr_assert_eq(s.minor, 0xffff);
	cr_assert_str_eq(s.user, "bob");
}

Test(startup, layout_errors_are_08P01)
{
	uint8_t pkt[256];
	size_t lens[4];
	struct proto_startup s;
	const char *err;

	lens[0] = PKT(pkt, PROTO_V3, "user\0bob\0\0x\0");  /* bytes after the terminator */
	lens[1] = PKT(pkt + 64, PROTO_V3, "user\0");       /* a name without its value */
	lens[2] = PKT(pkt + 128, PROTO_V3, "user\0bob");   /* a value without its NUL */
	lens[3] = PKT(pkt + 192, PROTO_V3, "user\0bob\0"); /* no terminator */
	for (size_t i = 0; i < 4; i++) {
		cr_assert_eq(parse_bytes(pkt + 64 * i, lens[i], &s, &err), -1, "case %zu", i);
		cr_assert_str_eq(s.sqlstate, "08P01", "case %zu", i);
		cr_assert_str_eq(err,
		                 "invalid startup packet layout: expected terminator as last byte");
		cr_assert_not_null(s.user);
		cr_assert_not_null(s.database);
	}
}

Test(startup, other_major_versions_unsupported)
{
	/* 4.0, 2.0, 0.0 and a 1234.x code that is no known request: kind
	 * UNSUPPORTED, for the caller to refuse with 0A000 */
	const uint32_t codes[] = {4u << 16, 2u << 16, (1234u << 16) | 5681u, 0};
	uint8_t pkt[64];
	struct proto_startup s;
	const char *err;

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		size_t n = PKT(pkt, codes[i], "user\0bob\0\0");
		cr_assert_eq(parse_bytes(pkt, n, &s, &err), 0);
		cr_assert_eq(s.kind, PROTO_STARTUP_UNSUPPORTED, "code %08x", codes[i]);
		cr_assert_eq(s.code, codes[i]);
		cr_assert_str_eq(s.user, "", "nothing is taken from a packet of another version");
		cr_assert_not(proto_startup_wants_negotiation(&s));
	}
}

Test(startup, request_kinds)
{
	static const uint8_t ssl[] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
	static const uint8_t gss[] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30};
	static const uint8_t cancel_short[] = {0, 0, 0, 12, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 1};
	struct proto_startup s;
	const char *err;

	cr_assert_eq(parse_bytes(ssl, sizeof(ssl), &s, &err), 0);
	cr_assert_eq(s.kind, PROTO_STARTUP_SSL);
	cr_assert_eq(parse_bytes(gss, sizeof(gss), &s, &err), 0);
	cr_assert_eq(s.kind, PROTO_STARTUP_GSSENC);
	cr_assert_eq(parse_bytes(cancel_short, sizeof(cancel_short), &s, &err), -1);
	cr_assert_str_eq(s.sqlstate, "08P01");
}

Test(startup, repeated_user_last_wins_and_empty_database_defaults)
{
	uint8_t pkt[64];
	size_t n = PKT(pkt, PROTO_V3, "user\0a\0user\0bob\0database\0\0\0");
	struct proto_startup s;
	const char *err;

	cr_assert_eq(parse_bytes(pkt, n, &s, &err), 0, "%s", err ? err : "");
	cr_assert_str_eq(s.user, "bob");
	cr_assert_str_eq(s.database, "bob");
}

Test(startup, too_many_parameters_54000)
{
	/* a user and PROTO_MAX_STARTUP_PARAMS protocol options: one too many
	 * (the options count towards the same limit as settings) */
	uint8_t body[PROTO_MAX_STARTUP_LEN], pkt[PROTO_MAX_STARTUP_LEN];
	size_t n = (size_t)sprintf((char *)body, "user%cbob", 0) + 1;
	struct proto_startup s;
	const char *err;

	for (int i = 0; i < PROTO_MAX_STARTUP_PARAMS; i++) {
		n += (size_t)sprintf((char *)body + n, "_pq_.o%d", i) + 1;
		body[n++] = 0; /* empty value */
	}
	body[n++] = 0;
	size_t len = mk_packet(pkt, PROTO_V3, body, n);
	cr_assert_eq(parse_bytes(pkt, len, &s, &err), -1);
	cr_assert_str_eq(s.sqlstate, "54000");

	/* one fewer fits */
	n = (size_t)sprintf((char *)body, "user%cbob", 0) + 1;
	for (int i = 0; i < PROTO_MAX_STARTUP_PARAMS - 1; i++) {
		n += (size_t)sprintf((char *)body + n, "_pq_.o%d", i) + 1;
		body[n++] = 0;
	}
	body[n++] = 0;
	len = mk_packet(pkt, PROTO_V3, body, n);
	cr_assert_eq(parse_bytes(pkt, len, &s, &err), 0, "%s", err ? err : "");
	cr_assert_eq(s.npq_options, PROTO_MAX_STARTUP_PARAMS - 1);
}

Test(negotiate, bytes_as_postgresql_sends_them)
{
	const char *opts[] = {"_pq_.foo", "_pq_.b"};
	static const uint8_t want[] = {'v', 0, 0,   0,   28,  0,   3,   0,   0,   0,
	                               0,   0, 2,   '_', 'p', 'q', '_', '.', 'f', 'o',
	                               'o', 0, '_', 'p', 'q', '_', '.', 'b', 0};
	static const uint8_t none[] = {'v', 0, 0, 0, 12, 0, 3, 0, 0, 0, 0, 0, 0};
	struct proto_buf b;

	proto_buf_init(&b);
	cr_assert_eq(proto_put_negotiate_version(&b, PROTO_V3_NEWEST_MINOR, opts, 2), 0);
	cr_assert_eq(proto_buf_avail(&b), sizeof(want));
	cr_assert_arr_eq(proto_buf_head(&b), want, sizeof(want));

	proto_buf_reset(&b);
	cr_assert_eq(proto_put_negotiate_version(&b, 0, NULL, 0), 0);
	cr_assert_eq(proto_buf_avail(&b), sizeof(none));
	cr_assert_arr_eq(proto_buf_head(&b), none, sizeof(none));

	/* a minor that does not fit 16 bits: nothing written */
	proto_buf_reset(&b);
	cr_assert_eq(proto_put_negotiate_version(&b, 0x10000, NULL, 0), -1);
	cr_assert_eq(proto_buf_avail(&b), 0);
	proto_buf_free(&b);
}

Test(negotiate, answers_what_the_startup_asked)
{
	/* parse a 3.2 startup with one option and build the answer from it */
	uint8_t pkt[64];
	size_t n = PKT(pkt, 0x00030002, "user\0b\0_pq_.zz\0x\0\0");
	struct proto_startup s;
	const char *err;
	struct proto_buf b;
	struct proto_msg m;
	struct proto_reader r;

	cr_assert_eq(parse_bytes(pkt, n, &s, &err), 0, "%s", err ? err : "");
	cr_assert(proto_startup_wants_negotiation(&s));
	proto_buf_init(&b);
	cr_assert_eq(
	        proto_put_negotiate_version(&b, PROTO_V3_NEWEST_MINOR, s.pq_options, s.npq_options),
	        0);
	cr_assert_eq(proto_next(proto_buf_head(&b), proto_buf_avail(&b), false, 1000, &m),
	             PROTO_OK);
	cr_assert_eq(m.type, 'v');
	proto_reader_init(&r, m.body, m.body_len);
	cr_assert_eq(proto_get_u32(&r), PROTO_V3);
	cr_assert_eq(proto_get_u32(&r), 1);
	cr_assert_str_eq(proto_get_str(&r), "_pq_.zz");
	cr_assert_eq(r.n, 0);
	cr_assert_not(r.err);
	proto_buf_free(&b);
}

Test(builders, counts_that_do_not_fit_are_refused)
{
	/* 65536 columns do not fit the Int16 count: refused whole, rather than
	 * sent with a wrapped count of 0 and 65536 columns after it */
	static const char *names[65536];
	struct proto_buf b;

	for (size_t i = 0; i < 65536; i++)
		names[i] = "c";
	proto_buf_init(&b);
	cr_assert_eq(proto_put_rfq(&b, 'I'), 0);
	size_t before = proto_buf_avail(&b);
	cr_assert_eq(proto_put_row_desc(&b, names, 65536), -1);
	cr_assert_eq(proto_put_data_row(&b, names, 65536), -1);
	cr_assert_eq(proto_buf_avail(&b), before, "nothing partial left behind");
	cr_assert_eq(proto_put_row_desc(&b, names, 65535), 0);
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
