/*
 * libFuzzer target for the client state machine: startup, authentication,
 * the pool, the relay both ways and transaction-mode statement tracking,
 * driven through real sockets inside one libev loop.
 *
 * Each input gets a fresh struct proxy_ctx (from a config written once to a
 * temp dir) on a fresh ev_loop, so a crash or leak reproduces from that one
 * input. Clients are socketpairs whose sluice end goes to proxy_client_new();
 * the databases point to a unix socket where a scripted PostgreSQL (the fake
 * server below) answers logins, simple and extended queries, COPY, cancels.
 * The first bytes of the input pick the auth type, how the fake server logs
 * in and how it misbehaves; a second stream of input bytes is what it
 * injects into its replies. The rest is a list of operations: chunks of
 * client bytes (so messages arrive split) and harness actions (answer the
 * auth challenge properly, cancel, switch client, close, kill the servers,
 * reload, janitor...). After each one the loop runs until nothing moves.
 * At the end every client is closed, sluice shuts down and everything is
 * freed, so LeakSanitizer sees per-input leaks.
 *
 * Input layout (tests/fuzz/gen_client_seeds.py writes seeds in it):
 *   byte 0   bits 0-1 auth_type (enum conf_auth_type: trust, md5, scram, plain)
 *            bits 2-4 fake server login (see enum login)
 *   byte 1   bits 0-2 fake server behaviour (see enum smode)
 *            bits 3-5 trickle: fake server writes at most 1 << (n - 1) bytes
 *            per loop iteration (0: all at once)
 *            bit 6    small socket buffers on sluice's client side, so that
 *            its writes to clients fall short and wait for the socket
 *   byte 2   length S of the server byte stream, which follows
 *   then     operations (see run_ops)
 *
 * proxy/main.c is compiled into this file with its main() renamed: it holds
 * the context setup, the reaper and the shutdown this harness must use as
 * sluice itself does, and libFuzzer brings its own main().
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int sluice_main(int argc, char **argv);
#define main sluice_main
#include "proxy/main.c"
#undef main

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__ubsan_default_options(void);

/* Any undefined behaviour stops the run. */
const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}

#define NCLI          3       /* client connections an input may juggle */
#define MAX_STMTS     64      /* prepared statements per fake server */
#define MAX_PORTALS   16      /* portals per fake server */
#define MAX_QUIET_RUN 20000   /* loop iterations per operation, at most */
#define FS_MAX_MSG    1048576 /* larger messages: the fake server hangs up */

/* How the fake server answers sluice's startup packet. */
enum login {
	LOGIN_OK,        /* AuthenticationOk at once */
	LOGIN_OK2,       /* the same (twice as likely) */
	LOGIN_MD5,       /* asks for an md5 password, accepts any */
	LOGIN_CLEARTEXT, /* asks for a cleartext password, accepts any */
	LOGIN_SCRAM,     /* a real SCRAM-SHA-256 exchange */
	LOGIN_ERROR,     /* FATAL 28P01 */
	LOGIN_RAW,       /* answers with the server byte stream, as it is */
	LOGIN_CLOSE,     /* hangs up at once */
};

/* How the fake server behaves once logged in. */
enum smode {
	SM_CLEAN,       /* a well-behaved PostgreSQL */
	SM_INJECT,      /* each reply gets a canned or raw message from the stream */
	SM_REPLACE,     /* each reply is replaced by a raw chunk of the stream */
	SM_HOLD,        /* answers nothing until a cancel request or op RELEASE */
	SM_CLOSE_AFTER, /* hangs up after N messages (N: first stream byte) */
	SM_LOGIN_EXTRA, /* the login reply carries a raw chunk before BackendKeyData */
	SM_CLEAN2,
	SM_CLEAN3,
};

struct fuser {
	const char *name;
	const char *password;
	const char *secret; /* as in the auth file */
};

/* alice: plaintext; bob, stats: md5; carol, admin: SCRAM verifiers (16
 * iterations, so logins stay cheap), checked against the passwords at start. */
static const struct fuser users[] = {
        {"alice", "alicepw", "alicepw"},
        {"bob", "bobpw", "md50f3f71a3dd77afe47f64231994dfd347"},
        {"carol", "carolpw",
         "SCRAM-SHA-256$16:Y2Fyb2wtc2FsdC0xNmJ5dA==$cQtcm60HZKzGcxBAos3AJ8kjENC6kTJ2vZw1QUdF9Mk=:"
         "6AqvF4MHYCQFQ9hxm46JQSL0B0Gio4j8kLJqPyxhlFs="},
        {"admin", "adminpw",
         "SCRAM-SHA-256$16:YWRtaW4tc2FsdC0xNmJ5dA==$GwFVR9M1O9OBJItHqME6Lnbj+rIY2VAIbRNCNimtGQQ=:"
         "ziTzArbE1BNq7NxpKsxYSwl+EvOoAexqp+t/eVg4zRU="},
        {"stats", "statspw", "md56beef695d836a3f040aa06d3fe197fac"},
};
#define NUSERS (sizeof(users) / sizeof(users[0]))

/* The fake server's verifier per user (index as users[]). */
static struct proto_scram_secret user_scram[NUSERS];

struct fstmt {
	char name[64];
	uint8_t ncols; /* 0: no rows (NoData) */
	bool used;
	unsigned gen;   /* H.ddl_gen when prepared */
	unsigned shape; /* shape_of(text) without the generation */
};

/* One connection accepted by the fake PostgreSQL. */
struct fsrv {
	int fd;
	ev_io rd, wr;
	struct proto_buf in, out;
	bool started; /* startup packet handled */
	enum { W_NONE, W_PASSWORD, W_SASL_INIT, W_SASL_FINAL } wait;
	struct proto_scram_server scram;
	int user; /* index in users[], -1 if unknown */
	char appname[64];
	uint32_t pid, key;
	char status;       /* transaction status: 'I', 'T' or 'E' */
	bool skip_to_sync; /* extended protocol error: ignore up to Sync */
	bool copy_in;
	bool held;   /* SM_HOLD: not reading */
	bool hangup; /* close once the output is out (after a FATAL) */
	bool cancel_pending;
	unsigned nmsgs;
	struct fstmt stmts[MAX_STMTS];
	struct fstmt portals[MAX_PORTALS];
	struct fsrv *next;
};

/* The harness end of one client connection. */
struct fcli {
	int fd; /* -1: not open */
	ev_io rd;
	bool reading;
	/* scan of what sluice sends: message framing, 'R' and 'K' kept */
	uint8_t hdr[5];
	size_t hdr_have;
	uint32_t body_left;
	uint8_t body[1024];
	size_t body_have;
	bool auth_new;
	uint32_t auth_code;
	uint8_t auth_data[512];
	size_t auth_len;
	bool have_key;
	uint32_t key_pid, key_key;
	struct proto_scram_client scram;
	int auth_user;
};

static struct {
	char dir[64];
	char conf[3][128]; /* base, altered, broken */
	char userlist[128];
	int listen_fd;
	int verbose;
	bool trace; /* FUZZ_CLIENT_TRACE: print the messages each side gets */

	/* per input */
	struct ev_loop *loop;
	struct proxy_ctx ctx;
	ev_io listen_io;
	struct fsrv *servers;
	struct fcli cli[NCLI];
	int cur;
	unsigned long activity;
	uint32_t next_pid;
	enum login login;
	enum smode mode;
	size_t trickle;
	bool small_bufs;
	unsigned ddl_gen; /* bumped by DDL through the fake server: shapes change */
	const uint8_t *sb;
	size_t sb_len, sb_off;
	unsigned close_after;
	bool well_behaved; /* nothing happened that may leave a client legitimately stuck */
} H;

/* ---- small helpers ---- */

static void die(const char *what)
{
	fprintf(stderr, "fuzz_client: %s: %s\n", what, strerror(errno));
	abort();
}

static void must(int rc)
{
	if (rc < 0) {
		fprintf(stderr, "fuzz_client: out of memory building a message\n");
		abort();
	}
}

static bool sb_has(void)
{
	return H.sb_off < H.sb_len;
}

static uint8_t sb_byte(void)
{
	return sb_has() ? H.sb[H.sb_off++] : 0;
}

/* Up to <n> bytes of the server stream. */
static const uint8_t *sb_take(size_t n, size_t *got)
{
	const uint8_t *p = H.sb + H.sb_off;

	if (n > H.sb_len - H.sb_off)
		n = H.sb_len - H.sb_off;
	H.sb_off += n;
	*got = n;
	return p;
}

static uint32_t be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int user_index(const char *name)
{
	for (size_t i = 0; i < NUSERS; i++)
		if (name && strcmp(users[i].name, name) == 0)
			return (int)i;
	return -1;
}

static bool has_word(const char *sql, const char *word)
{
	return strcasestr(sql, word) != NULL;
}

/* ---- fake server: output ---- */

static void fs_close(struct fsrv *fs);

static void fs_flush(struct fsrv *fs)
{
	while (proto_buf_avail(&fs->out) > 0) {
		size_t n = proto_buf_avail(&fs->out);
		ssize_t w;

		if (H.trickle && n > H.trickle)
			n = H.trickle;
		w = send(fs->fd, proto_buf_head(&fs->out), n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			fs_close(fs);
			return;
		}
		H.activity++;
		proto_buf_consume(&fs->out, (size_t)w);
		if (H.trickle)
			break; /* one piece per loop iteration */
	}
	if (proto_buf_avail(&fs->out) > 0)
		ev_io_start(H.loop, &fs->wr);
	else if (fs->hangup)
		fs_close(fs);
	else
		ev_io_stop(H.loop, &fs->wr);
}

static void fs_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	fs_flush(w->data);
}

static void fs_queue(struct fsrv *fs, const void *p, size_t n)
{
	if (fs->fd < 0 || n == 0)
		return;
	must(proto_buf_append(&fs->out, p, n));
	if (!H.trickle)
		fs_flush(fs);
	else
		ev_io_start(H.loop, &fs->wr);
}

/* A message PostgreSQL might send at any time, or one it never would. */
static void put_canned(struct proto_buf *b, unsigned k)
{
	static const char *const one[] = {"1"};
	static const char *const col[] = {"c0"};

	switch (k % 36) {
	case 0:
		must(proto_put_notice(b, "WARNING", "01000", "a notice", NULL, NULL));
		break;
	case 1:
		must(proto_put_param_status(b, "TimeZone", "Europe/Paris"));
		break;
	case 2:
		must(proto_put_param_status(b, "application_name", "x\ny'\"\\"));
		break;
	case 3:
		must(proto_put_param_status(b, "client_encoding", "LATIN1"));
		break;
	case 4:
		must(proto_put_param_status(b, "search_path", "a, b"));
		break;
	case 5: {
		size_t st = proto_msg_begin(b, 'A');
		must(st == (size_t)-1 ? -1 : 0);
		must(proto_put_u32(b, 4242));
		must(proto_put_str(b, "chan"));
		must(proto_put_str(b, "payload"));
		proto_msg_end(b, st);
		break;
	}
	case 6:
		must(proto_put_rfq(b, 'I'));
		break;
	case 7:
		must(proto_put_rfq(b, 'T'));
		break;
	case 8:
		must(proto_put_rfq(b, 'E'));
		break;
	case 9:
		must(proto_put_error(b, "ERROR", "42000", "injected error", NULL, NULL));
		break;
	case 10:
		must(proto_put_error(b, "FATAL", "57P01",
		                     "terminating connection due to "
		                     "administrator command",
		                     NULL, NULL));
		break;
	case 11:
		must(proto_put_msg(b, '1', NULL, 0));
		break;
	case 12:
		must(proto_put_msg(b, '2', NULL, 0));
		break;
	case 13:
		must(proto_put_command_complete(b, "SELECT 1"));
		break;
	case 14:
		must(proto_put_data_row(b, one, 1));
		break;
	case 15:
		must(proto_put_row_desc(b, col, 1));
		break;
	case 16: {
		static const uint8_t g[] = {0, 0, 0};
		must(proto_put_msg(b, 'G', g, sizeof(g)));
		break;
	}
	case 17: {
		static const uint8_t h[] = {0, 0, 0};
		must(proto_put_msg(b, 'H', h, sizeof(h)));
		break;
	}
	case 18:
		must(proto_put_msg(b, 'd', "row\n", 4));
		break;
	case 19:
		must(proto_put_msg(b, 'c', NULL, 0));
		break;
	case 20:
		must(proto_put_msg(b, 'I', NULL, 0));
		break;
	case 21:
		must(proto_put_msg(b, 'n', NULL, 0));
		break;
	case 22:
		must(proto_put_msg(b, 's', NULL, 0));
		break;
	case 23:
		must(proto_put_msg(b, '3', NULL, 0));
		break;
	case 24: {
		static const uint8_t t[] = {0, 1, 0, 0, 0, 23};
		must(proto_put_msg(b, 't', t, sizeof(t)));
		break;
	}
	case 25:
		must(proto_put_backend_key(b, 77, 88));
		break;
	case 26:
		must(proto_put_auth(b, PROTO_AUTH_OK, NULL, 0));
		break;
	case 27: {
		size_t st = proto_msg_begin(b, 'v');
		must(st == (size_t)-1 ? -1 : 0);
		must(proto_put_u32(b, 0x30000));
		must(proto_put_u32(b, 1));
		must(proto_put_str(b, "_pq_.x"));
		proto_msg_end(b, st);
		break;
	}
	case 28: {
		/* a row larger than sluice's high-water mark */
		static char big[300000];
		const char *v[1] = {big};
		if (!big[0])
			memset(big, 'x', sizeof(big) - 1);
		must(proto_put_data_row(b, v, 1));
		break;
	}
	case 29: {
		static const uint8_t bad[] = {'D', 0, 0, 0, 3};
		must(proto_buf_append(b, bad, sizeof(bad)));
		break;
	}
	case 30: {
		static const uint8_t huge[] = {'D', 0x7f, 0xff, 0xff, 0xff, 0, 1};
		must(proto_buf_append(b, huge, sizeof(huge)));
		break;
	}
	case 31: {
		static const uint8_t e[] = {'S', 'E', 'R', 'R'};
		must(proto_put_msg(b, 'E', e, sizeof(e)));
		break;
	}
	case 32: {
		static const uint8_t t[] = {0, 5, 'a', 0};
		must(proto_put_msg(b, 'T', t, sizeof(t)));
		break;
	}
	case 33:
		must(proto_put_error_routine(b, "ERROR", "0A000",
		                             "cached plan must not change result type", NULL, NULL,
		                             "RevalidateCachedQuery"));
		break;
	case 34:
		must(proto_put_msg(b, 'Z', NULL, 0));
		break;
	default: {
		static const uint8_t v[] = {0, 0, 0, 1, '1'};
		must(proto_put_msg(b, 'V', v, sizeof(v)));
		break;
	}
	}
}

/* Send one reply (what a client message produced), as the mode says. */
static void fs_reply(struct fsrv *fs, struct proto_buf *r)
{
	struct proto_buf b;
	size_t n;
	const uint8_t *p;

	if (proto_buf_avail(r) == 0)
		return;
	proto_buf_init(&b);
	if (H.mode == SM_INJECT && sb_has()) {
		uint8_t k = sb_byte();

		if (k & 0x80) {
			p = sb_take(k & 0x7f, &n);
			must(proto_buf_append(&b, p, n));
			must(proto_buf_append(&b, proto_buf_head(r), proto_buf_avail(r)));
		} else if (k & 0x40) {
			must(proto_buf_append(&b, proto_buf_head(r), proto_buf_avail(r)));
			put_canned(&b, k & 0x3f);
		} else {
			put_canned(&b, k & 0x3f);
			must(proto_buf_append(&b, proto_buf_head(r), proto_buf_avail(r)));
		}
	} else if (H.mode == SM_REPLACE && sb_has()) {
		p = sb_take(sb_byte(), &n);
		must(proto_buf_append(&b, p, n));
	} else {
		must(proto_buf_append(&b, proto_buf_head(r), proto_buf_avail(r)));
	}
	fs_queue(fs, proto_buf_head(&b), proto_buf_avail(&b));
	proto_buf_free(&b);
	proto_buf_reset(r);
}

/* ---- fake server: login ---- */

static void put_login_ok(struct fsrv *fs, struct proto_buf *b)
{
	static const char *const params[][2] = {
	        {"server_version", "15.0"},  {"server_encoding", "UTF8"},
	        {"client_encoding", "UTF8"}, {"DateStyle", "ISO, MDY"},
	        {"TimeZone", "UTC"},         {"IntervalStyle", "postgres"},
	        {"integer_datetimes", "on"}, {"standard_conforming_strings", "on"},
	        {"is_superuser", "off"},
	};

	must(proto_put_auth(b, PROTO_AUTH_OK, NULL, 0));
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
		must(proto_put_param_status(b, params[i][0], params[i][1]));
	must(proto_put_param_status(b, "application_name", fs->appname));
	if (H.mode == SM_LOGIN_EXTRA && sb_has()) {
		size_t n;
		const uint8_t *p = sb_take(sb_byte(), &n);

		must(proto_buf_append(b, p, n));
	}
	must(proto_put_backend_key(b, fs->pid, fs->key));
	must(proto_put_rfq(b, 'I'));
	fs->started = true;
	fs->wait = W_NONE;
	if (H.mode == SM_HOLD) {
		fs->held = true;
		ev_io_stop(H.loop, &fs->rd);
	}
}

static void fs_fatal(struct fsrv *fs, const char *sqlstate, const char *msg)
{
	struct proto_buf b;

	proto_buf_init(&b);
	must(proto_put_error(&b, "FATAL", sqlstate, msg, NULL, NULL));
	fs->hangup = true;
	fs_queue(fs, proto_buf_head(&b), proto_buf_avail(&b));
	proto_buf_free(&b);
}

static void fs_handle_cancel(const struct proto_startup *s)
{
	for (struct fsrv *t = H.servers; t; t = t->next) {
		if (t->fd >= 0 && t->pid == s->cancel_pid && t->key == s->cancel_key) {
			t->cancel_pending = true;
			if (t->held) {
				t->held = false;
				ev_io_start(H.loop, &t->rd);
			}
		}
	}
}

/* The untyped startup packet; false if the connection was closed. */
static bool fs_startup(struct fsrv *fs, const struct proto_msg *m, struct proto_buf *r)
{
	struct proto_startup s;
	const char *err = NULL;

	if (proto_parse_startup(m, &s, &err) < 0) {
		fs_fatal(fs, "08P01", "invalid startup packet");
		return false;
	}
	if (s.code == PROTO_SSL_REQUEST || s.code == PROTO_GSSENC_REQUEST) {
		fs_queue(fs, "N", 1);
		return true;
	}
	if (s.code == PROTO_CANCEL_REQUEST) {
		fs_handle_cancel(&s);
		fs_close(fs);
		return false;
	}
	if (s.code != PROTO_V3 || !s.user) {
		fs_fatal(fs, "08P01", "unsupported startup packet");
		return false;
	}
	fs->user = user_index(s.user);
	for (size_t i = 0; i < s.nparams; i++)
		if (strcmp(s.names[i], "application_name") == 0)
			snprintf(fs->appname, sizeof(fs->appname), "%s", s.values[i]);
	switch (H.login) {
	case LOGIN_MD5: {
		static const uint8_t salt[4] = {1, 2, 3, 4};
		must(proto_put_auth(r, PROTO_AUTH_MD5, salt, sizeof(salt)));
		fs->wait = W_PASSWORD;
		break;
	}
	case LOGIN_CLEARTEXT:
		must(proto_put_auth(r, PROTO_AUTH_CLEARTEXT, NULL, 0));
		fs->wait = W_PASSWORD;
		break;
	case LOGIN_SCRAM:
		must(proto_put_auth_sasl(r, "SCRAM-SHA-256"));
		fs->wait = W_SASL_INIT;
		break;
	case LOGIN_ERROR:
		fs_fatal(fs, "28P01", "password authentication failed");
		return false;
	case LOGIN_RAW: {
		size_t n;
		const uint8_t *p = sb_take(H.sb_len, &n);

		fs_queue(fs, p, n);
		fs->started = true;
		return true;
	}
	default:
		put_login_ok(fs, r);
		break;
	}
	fs_queue(fs, proto_buf_head(r), proto_buf_avail(r));
	proto_buf_reset(r);
	return true;
}

/* A password or SASL message during login; false if closed. */
static bool fs_login_msg(struct fsrv *fs, const struct proto_msg *m, struct proto_buf *r)
{
	struct proto_reader rd;
	char out[512];
	size_t outlen = 0;
	const char *err = NULL;

	if (m->type != 'p' || fs->wait == W_NONE) {
		fs_fatal(fs, "08P01", "expected a password message");
		return false;
	}
	proto_reader_init(&rd, m->body, m->body_len);
	switch (fs->wait) {
	case W_PASSWORD:
		put_login_ok(fs, r);
		break;
	case W_SASL_INIT: {
		const char *mech = proto_get_str(&rd);
		uint32_t len = proto_get_u32(&rd);
		const uint8_t *d = proto_get_bytes(&rd, len);
		const struct proto_scram_secret *sec = &user_scram[fs->user < 0 ? 0 : fs->user];

		if (!mech || !d || strcmp(mech, "SCRAM-SHA-256") != 0 ||
		    proto_scram_server_first(&fs->scram, sec, d, len, out, sizeof(out), &outlen,
		                             &err) < 0) {
			fs_fatal(fs, "28000", "bad SASL initial response");
			return false;
		}
		must(proto_put_auth(r, PROTO_AUTH_SASL_CONTINUE, out, outlen));
		fs->wait = W_SASL_FINAL;
		break;
	}
	default:
		if (fs->user < 0 || proto_scram_server_final(&fs->scram, m->body, m->body_len, out,
		                                             sizeof(out), &outlen, &err) < 0) {
			fs_fatal(fs, "28P01", "password authentication failed");
			return false;
		}
		must(proto_put_auth(r, PROTO_AUTH_SASL_FINAL, out, outlen));
		put_login_ok(fs, r);
		break;
	}
	fs_queue(fs, proto_buf_head(r), proto_buf_avail(r));
	proto_buf_reset(r);
	return true;
}

/* ---- fake server: statements ---- */

static struct fstmt *st_find(struct fstmt *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].used && strncmp(v[i].name, name, sizeof(v[i].name) - 1) == 0)
			return &v[i];
	return NULL;
}

static struct fstmt *st_add(struct fstmt *v, size_t n, const char *name)
{
	struct fstmt *e = st_find(v, n, name);

	if (!e)
		for (size_t i = 0; i < n && !e; i++)
			if (!v[i].used)
				e = &v[i];
	if (e) {
		e->used = true;
		snprintf(e->name, sizeof(e->name), "%s", name);
	}
	return e;
}

static void st_clear(struct fstmt *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		v[i].used = false;
}

static bool returns_rows(const char *sql)
{
	while (*sql == ' ' || *sql == '\n' || *sql == '\t' || *sql == '(')
		sql++;
	return strncasecmp(sql, "select", 6) == 0 || strncasecmp(sql, "show", 4) == 0 ||
	       strncasecmp(sql, "values", 6) == 0 || strncasecmp(sql, "with", 4) == 0 ||
	       strncasecmp(sql, "table", 5) == 0 || strncasecmp(sql, "execute", 7) == 0;
}

/* Column count a statement text returns: 0 (none) to 3, fixed per text and
 * DDL generation, so statements differ in shape, each keeps its own, and
 * DDL may change it. */
static uint8_t shape_of(const char *sql)
{
	unsigned h = 5381;

	if (!returns_rows(sql))
		return 0;
	for (const char *p = sql; *p; p++)
		h = h * 33 + (unsigned char)*p;
	return (uint8_t)(1 + (h + H.ddl_gen) % 3);
}

static bool is_ddl_word(const char *w)
{
	return strcmp(w, "ALTER") == 0 || strcmp(w, "DROP") == 0 || strcmp(w, "CREATE") == 0 ||
	       strcmp(w, "TRUNCATE") == 0;
}

/* A statement prepared before DDL that changed its shape: PostgreSQL refuses
 * to run it (and sluice must recognise that error). */
static bool stale_plan(struct fsrv *fs, struct proto_buf *b, const struct fstmt *e)
{
	if (e->gen == H.ddl_gen || e->ncols == 0 ||
	    (uint8_t)(1 + (e->shape + H.ddl_gen) % 3) == e->ncols)
		return false;
	must(proto_put_error_routine(b, "ERROR", "0A000", "cached plan must not change result type",
	                             NULL, NULL, "RevalidateCachedQuery"));
	if (fs->status == 'T')
		fs->status = 'E';
	fs->skip_to_sync = true;
	return true;
}

static void put_rows(struct proto_buf *b, uint8_t ncols, bool desc)
{
	static const char *const names[] = {"c0", "c1", "c2"};
	static const char *const vals[] = {"1", NULL, "three"};

	if (ncols == 0)
		return;
	if (desc)
		must(proto_put_row_desc(b, names, ncols));
	must(proto_put_data_row(b, vals, ncols));
}

static void put_err(struct fsrv *fs, struct proto_buf *b, const char *sqlstate, const char *msg)
{
	must(proto_put_error(b, "ERROR", sqlstate, msg, NULL, NULL));
	if (fs->status == 'T')
		fs->status = 'E';
}

/* An extended-protocol error: the server skips to Sync. */
static void ext_err(struct fsrv *fs, struct proto_buf *b, const char *sqlstate, const char *msg)
{
	put_err(fs, b, sqlstate, msg);
	fs->skip_to_sync = true;
}

static bool reportable(const char *name)
{
	static const char *const r[] = {"application_name",
	                                "client_encoding",
	                                "DateStyle",
	                                "TimeZone",
	                                "IntervalStyle",
	                                "search_path",
	                                "standard_conforming_strings"};

	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++)
		if (strcasecmp(r[i], name) == 0)
			return true;
	return false;
}

/* Read a '...' literal at <*pp> into <out> ('' unescaped). */
static bool read_quoted(const char **pp, char *out, size_t outsz)
{
	const char *p = *pp;
	size_t o = 0;

	if (*p != '\'')
		return false;
	for (p++; *p; p++) {
		if (*p == '\'') {
			if (p[1] != '\'')
				break;
			p++;
		}
		if (o + 1 < outsz)
			out[o++] = *p;
	}
	if (*p != '\'')
		return false;
	out[o] = '\0';
	*pp = p + 1;
	return true;
}

/* ParameterStatus for what a SET or set_config() changed, as PostgreSQL reports it. */
static void report_set(struct proto_buf *b, const char *stmt)
{
	char name[64], value[256];
	const char *p = strcasestr(stmt, "set_config(");

	if (p) {
		p += 11;
		while (*p == ' ')
			p++;
		if (!read_quoted(&p, name, sizeof(name)))
			return;
		while (*p == ' ' || *p == ',')
			p++;
		if (!read_quoted(&p, value, sizeof(value)))
			return;
	} else {
		size_t n = 0;

		p = stmt + 3;
		while (*p == ' ')
			p++;
		if (strncasecmp(p, "local ", 6) == 0 || strncasecmp(p, "session ", 8) == 0)
			p = strchr(p, ' ') + 1;
		while (*p && *p != ' ' && *p != '=' && n + 1 < sizeof(name))
			name[n++] = *p++;
		name[n] = '\0';
		while (*p == ' ' || *p == '=')
			p++;
		if (strncasecmp(p, "to ", 3) == 0)
			p += 3;
		if (!read_quoted(&p, value, sizeof(value)))
			snprintf(value, sizeof(value), "%.*s", (int)strcspn(p, " ;"), p);
	}
	if (reportable(name))
		must(proto_put_param_status(b, name, value));
}

/* One statement of a simple Query. Returns false to stop the query there. */
static bool run_stmt(struct fsrv *fs, struct proto_buf *b, char *stmt)
{
	char tag[64], word[16];
	size_t n = 0;

	while (*stmt == ' ' || *stmt == '\n' || *stmt == '\t')
		stmt++;
	while (stmt[n] && stmt[n] != ' ' && stmt[n] != '(' && n + 1 < sizeof(word)) {
		word[n] = stmt[n];
		n++;
	}
	word[n] = '\0';
	if (fs->status == 'E' && strcasecmp(word, "rollback") != 0 &&
	    strcasecmp(word, "abort") != 0 && strcasecmp(word, "commit") != 0 &&
	    strcasecmp(word, "end") != 0) {
		put_err(fs, b, "25P02", "current transaction is aborted");
		return false;
	}
	if (fs->cancel_pending) {
		fs->cancel_pending = false;
		put_err(fs, b, "57014", "canceling statement due to user request");
		return false;
	}
	if (has_word(stmt, "fatal")) {
		must(proto_put_error(b, "FATAL", "57P01", "terminating connection", NULL, NULL));
		fs->hangup = true;
		return false;
	}
	if (has_word(stmt, "error")) {
		put_err(fs, b, "42601", "syntax error");
		return false;
	}
	if (has_word(stmt, "notice"))
		must(proto_put_notice(b, "NOTICE", "00000", "a notice", NULL, NULL));
	for (size_t i = 0; word[i]; i++)
		word[i] = (char)(word[i] >= 'a' && word[i] <= 'z' ? word[i] - 32 : word[i]);
	snprintf(tag, sizeof(tag), "%s", word);
	if (strcmp(word, "BEGIN") == 0 || strcmp(word, "START") == 0) {
		fs->status = 'T';
		snprintf(tag, sizeof(tag), "BEGIN");
	} else if (strcmp(word, "COMMIT") == 0 || strcmp(word, "END") == 0) {
		snprintf(tag, sizeof(tag), fs->status == 'E' ? "ROLLBACK" : "COMMIT");
		fs->status = 'I';
	} else if (strcmp(word, "ROLLBACK") == 0 || strcmp(word, "ABORT") == 0) {
		snprintf(tag, sizeof(tag), "ROLLBACK");
		fs->status = 'I';
	} else if (strcmp(word, "SET") == 0) {
		report_set(b, stmt);
	} else if (strcmp(word, "DISCARD") == 0) {
		if (fs->status != 'I' && has_word(stmt, "all")) {
			put_err(fs, b, "25001",
			        "DISCARD ALL cannot run inside a transaction block");
			return false;
		}
		if (has_word(stmt, "all")) {
			st_clear(fs->stmts, MAX_STMTS);
			st_clear(fs->portals, MAX_PORTALS);
			snprintf(tag, sizeof(tag), "DISCARD ALL");
		}
	} else if (strcmp(word, "DEALLOCATE") == 0) {
		const char *nm = stmt + 10;

		while (*nm == ' ')
			nm++;
		if (strncasecmp(nm, "prepare ", 8) == 0)
			nm += 8;
		if (strncasecmp(nm, "all", 3) == 0) {
			st_clear(fs->stmts, MAX_STMTS);
			snprintf(tag, sizeof(tag), "DEALLOCATE ALL");
		} else {
			char name[64];
			struct fstmt *e;

			snprintf(name, sizeof(name), "%.*s", (int)strcspn(nm, " ;"), nm);
			e = st_find(fs->stmts, MAX_STMTS, name);
			if (!e) {
				put_err(fs, b, "26000", "prepared statement does not exist");
				return false;
			}
			e->used = false;
		}
	} else if (strcmp(word, "PREPARE") == 0) {
		char name[64];
		const char *nm = stmt + 7;
		struct fstmt *e;

		while (*nm == ' ')
			nm++;
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(nm, " (;"), nm);
		if (st_find(fs->stmts, MAX_STMTS, name)) {
			put_err(fs, b, "42P05", "prepared statement already exists");
			return false;
		}
		e = st_add(fs->stmts, MAX_STMTS, name);
		if (!e) {
			put_err(fs, b, "53200", "out of memory");
			return false;
		}
		e->ncols = 1;
	} else if (strcmp(word, "COPY") == 0) {
		static const uint8_t fmt[] = {0, 0, 1, 0, 0};

		if (has_word(stmt, "stdin")) {
			must(proto_put_msg(b, 'G', fmt, sizeof(fmt)));
			fs->copy_in = true;
			return false; /* the rest waits for CopyDone */
		}
		must(proto_put_msg(b, 'H', fmt, sizeof(fmt)));
		must(proto_put_msg(b, 'd', "1\n", 2));
		must(proto_put_msg(b, 'd', "2\n", 2));
		must(proto_put_msg(b, 'c', NULL, 0));
		snprintf(tag, sizeof(tag), "COPY 2");
	} else if (is_ddl_word(word)) {
		H.ddl_gen++;
		snprintf(tag, sizeof(tag), "%s TABLE", word);
	} else if (strcmp(word, "INSERT") == 0) {
		snprintf(tag, sizeof(tag), "INSERT 0 1");
	} else if (strcmp(word, "UPDATE") == 0 || strcmp(word, "DELETE") == 0) {
		snprintf(tag, sizeof(tag), "%s 1", word);
	} else if (strcmp(word, "NOTIFY") == 0) {
		size_t st = proto_msg_begin(b, 'A');

		must(st == (size_t)-1 ? -1 : 0);
		must(proto_put_u32(b, fs->pid));
		must(proto_put_str(b, "chan"));
		must(proto_put_str(b, ""));
		proto_msg_end(b, st);
	} else if (returns_rows(stmt)) {
		if (strcmp(word, "EXECUTE") == 0) {
			char name[64];
			const char *nm = stmt + 7;

			while (*nm == ' ')
				nm++;
			snprintf(name, sizeof(name), "%.*s", (int)strcspn(nm, " (;"), nm);
			if (!st_find(fs->stmts, MAX_STMTS, name)) {
				put_err(fs, b, "26000", "prepared statement does not exist");
				return false;
			}
		}
		if (strcasestr(stmt, "set_config("))
			report_set(b, stmt);
		put_rows(b, shape_of(stmt), true);
		snprintf(tag, sizeof(tag), "SELECT 1");
	}
	must(proto_put_command_complete(b, tag));
	return true;
}

static void fs_query(struct fsrv *fs, struct proto_buf *b, const struct proto_msg *m)
{
	char *sql = malloc(m->body_len + 1);
	char *p, *semi;
	bool any = false;

	if (!sql)
		abort();
	memcpy(sql, m->body, m->body_len);
	sql[m->body_len] = '\0';
	for (p = sql; p; p = semi) {
		semi = strchr(p, ';');
		if (semi)
			*semi++ = '\0';
		if (p[strspn(p, " \t\n")] == '\0')
			continue;
		any = true;
		if (!run_stmt(fs, b, p))
			break;
	}
	if (!any)
		must(proto_put_msg(b, 'I', NULL, 0));
	free(sql);
	if (!fs->copy_in)
		must(proto_put_rfq(b, fs->status));
}

/* One message of the extended protocol or a copy. */
static void fs_extended(struct fsrv *fs, struct proto_buf *b, const struct proto_msg *m)
{
	struct proto_reader r;
	struct fstmt *e;
	const char *name, *sql;

	proto_reader_init(&r, m->body, m->body_len);
	if (fs->skip_to_sync && m->type != 'S')
		return;
	switch (m->type) {
	case 'P':
		name = proto_get_str(&r);
		sql = proto_get_str(&r);
		if (!name || !sql) {
			ext_err(fs, b, "08P01", "malformed Parse");
		} else if (fs->status == 'E') {
			ext_err(fs, b, "25P02", "current transaction is aborted");
		} else if (has_word(sql, "error")) {
			ext_err(fs, b, "42601", "syntax error");
		} else if (*name && st_find(fs->stmts, MAX_STMTS, name)) {
			ext_err(fs, b, "42P05", "prepared statement already exists");
		} else if (!(e = st_add(fs->stmts, MAX_STMTS, name))) {
			ext_err(fs, b, "53200", "out of memory");
		} else {
			unsigned h = 5381;

			for (const char *x = sql; *x; x++)
				h = h * 33 + (unsigned char)*x;
			e->ncols = shape_of(sql);
			e->gen = H.ddl_gen;
			e->shape = h;
			must(proto_put_msg(b, '1', NULL, 0));
		}
		break;
	case 'B': {
		const char *portal = proto_get_str(&r);
		struct fstmt *pe;

		name = proto_get_str(&r);
		if (!portal || !name) {
			ext_err(fs, b, "08P01", "malformed Bind");
		} else if (!(e = st_find(fs->stmts, MAX_STMTS, name))) {
			ext_err(fs, b, "26000", "prepared statement does not exist");
		} else if (stale_plan(fs, b, e)) {
			break;
		} else if (!(pe = st_add(fs->portals, MAX_PORTALS, portal))) {
			ext_err(fs, b, "53200", "out of memory");
		} else {
			pe->ncols = e->ncols;
			must(proto_put_msg(b, '2', NULL, 0));
		}
		break;
	}
	case 'D': {
		uint8_t kind = proto_get_u8(&r);
		static const uint8_t nop[] = {0, 0};

		name = proto_get_str(&r);
		e = !name         ? NULL
		    : kind == 'S' ? st_find(fs->stmts, MAX_STMTS, name)
		                  : st_find(fs->portals, MAX_PORTALS, name);
		if (!e) {
			ext_err(fs, b, kind == 'S' ? "26000" : "34000", "does not exist");
			break;
		}
		if (kind == 'S' && e->gen != H.ddl_gen && e->ncols) {
			/* described anew: PostgreSQL replans and reports the new shape */
			e->ncols = (uint8_t)(1 + (e->shape + H.ddl_gen) % 3);
			e->gen = H.ddl_gen;
		}
		if (kind == 'S')
			must(proto_put_msg(b, 't', nop, sizeof(nop)));
		if (e->ncols) {
			static const char *const names[] = {"c0", "c1", "c2"};
			must(proto_put_row_desc(b, names, e->ncols));
		} else {
			must(proto_put_msg(b, 'n', NULL, 0));
		}
		break;
	}
	case 'E':
		name = proto_get_str(&r);
		if (!name || !(e = st_find(fs->portals, MAX_PORTALS, name))) {
			ext_err(fs, b, "34000", "portal does not exist");
		} else if (fs->cancel_pending) {
			fs->cancel_pending = false;
			ext_err(fs, b, "57014", "canceling statement due to user request");
		} else {
			put_rows(b, e->ncols, false);
			must(proto_put_command_complete(b, e->ncols ? "SELECT 1" : "UPDATE 1"));
		}
		break;
	case 'C': {
		uint8_t kind = proto_get_u8(&r);

		name = proto_get_str(&r);
		e = !name         ? NULL
		    : kind == 'S' ? st_find(fs->stmts, MAX_STMTS, name)
		                  : st_find(fs->portals, MAX_PORTALS, name);
		if (e)
			e->used = false;
		must(proto_put_msg(b, '3', NULL, 0));
		break;
	}
	case 'S':
		fs->skip_to_sync = false;
		if (fs->status == 'I')
			st_clear(fs->portals, MAX_PORTALS);
		must(proto_put_rfq(b, fs->status));
		break;
	case 'F': {
		static const uint8_t v[] = {0xff, 0xff, 0xff, 0xff};
		must(proto_put_msg(b, 'V', v, sizeof(v)));
		must(proto_put_rfq(b, fs->status));
		break;
	}
	default: /* 'H' Flush: replies go out at once anyway */
		break;
	}
}

/* Handle one framed message; false if the connection was closed. */
static bool fs_message(struct fsrv *fs, const struct proto_msg *m, struct proto_buf *r)
{
	if (H.trace)
		fprintf(stderr, "  server %u <- '%c' %u bytes\n", fs->pid, m->type ? m->type : '0',
		        m->len);
	if (!fs->started && fs->wait == W_NONE)
		return fs_startup(fs, m, r);
	if (!fs->started)
		return fs_login_msg(fs, m, r);
	fs->nmsgs++;
	if (fs->copy_in) {
		if (m->type == 'd')
			return true;
		if (m->type == 'c' || m->type == 'f') {
			fs->copy_in = false;
			if (m->type == 'c')
				must(proto_put_command_complete(r, "COPY 1"));
			else
				put_err(fs, r, "57014", "COPY from stdin failed");
			must(proto_put_rfq(r, fs->status));
		} else if (m->type != 'H' && m->type != 'S') {
			fs->copy_in = false;
			put_err(fs, r, "08P01", "unexpected message type during COPY from stdin");
			must(proto_put_rfq(r, fs->status));
		}
	} else {
		switch (m->type) {
		case 'Q':
			fs_query(fs, r, m);
			break;
		case 'X':
			fs_close(fs);
			return false;
		case 'P':
		case 'B':
		case 'D':
		case 'E':
		case 'C':
		case 'S':
		case 'H':
		case 'F':
			fs_extended(fs, r, m);
			break;
		case 'd':
		case 'c':
		case 'f':
			break; /* PostgreSQL ignores copy messages outside a copy */
		default:
			fs_fatal(fs, "08P01", "invalid frontend message type");
			return false;
		}
	}
	fs_reply(fs, r);
	if (H.mode == SM_CLOSE_AFTER && fs->nmsgs >= H.close_after) {
		fs_close(fs);
		return false;
	}
	return true;
}

static void fs_process(struct fsrv *fs)
{
	struct proto_buf r;

	proto_buf_init(&r);
	while (fs->fd >= 0 && !fs->held && !fs->hangup) {
		struct proto_msg m;
		int rc = proto_next(
		        proto_buf_head(&fs->in), proto_buf_avail(&fs->in),
		        !fs->started && fs->wait == W_NONE,
		        fs->started || fs->wait != W_NONE ? FS_MAX_MSG : PROTO_MAX_STARTUP_LEN, &m);

		if (rc == PROTO_NEED_MORE)
			break;
		if (rc != PROTO_OK) {
			fs_fatal(fs, "08P01", "invalid message length");
			break;
		}
		if (!fs_message(fs, &m, &r))
			break;
		proto_buf_consume(&fs->in, m.raw_len);
	}
	proto_buf_free(&r);
}

static void fs_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fsrv *fs = w->data;
	ssize_t n;

	(void)loop;
	(void)revents;
	must(proto_buf_reserve(&fs->in, 65536));
	n = recv(fs->fd, fs->in.data + fs->in.len, fs->in.cap - fs->in.len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	H.activity++;
	if (n <= 0) {
		fs_close(fs);
		return;
	}
	fs->in.len += (size_t)n;
	fs_process(fs);
}

static void fs_close(struct fsrv *fs)
{
	if (fs->fd < 0)
		return;
	ev_io_stop(H.loop, &fs->rd);
	ev_io_stop(H.loop, &fs->wr);
	close(fs->fd);
	fs->fd = -1;
	H.activity++;
}

static void fs_release(struct fsrv *fs)
{
	if (fs->fd >= 0 && fs->held) {
		fs->held = false;
		ev_io_start(H.loop, &fs->rd);
		fs_process(fs);
	}
}

static void listen_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	(void)w;
	for (;;) {
		int fd = accept4(H.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct fsrv *fs;

		if (fd < 0)
			return;
		H.activity++;
		fs = calloc(1, sizeof(*fs));
		if (!fs)
			abort();
		fs->fd = fd;
		fs->status = 'I';
		fs->user = -1;
		fs->pid = ++H.next_pid;
		fs->key = fs->pid * 2654435761u;
		proto_buf_init(&fs->in);
		proto_buf_init(&fs->out);
		ev_io_init(&fs->rd, fs_read_cb, fd, EV_READ);
		ev_io_init(&fs->wr, fs_write_cb, fd, EV_WRITE);
		fs->rd.data = fs->wr.data = fs;
		fs->next = H.servers;
		H.servers = fs;
		if (H.login == LOGIN_CLOSE) {
			fs_close(fs);
			continue;
		}
		ev_io_start(H.loop, &fs->rd);
	}
}

/* ---- harness clients ---- */

/* Follow the framing of what sluice sends; keep the 'R' and 'K' messages. */
static void cli_scan(struct fcli *c, const uint8_t *p, size_t n)
{
	while (n > 0) {
		if (c->hdr_have < 5) {
			c->hdr[c->hdr_have++] = *p++;
			n--;
			if (c->hdr_have < 5)
				continue;
			uint32_t len = be32(c->hdr + 1);
			if ((c->hdr[0] == 'N' || c->hdr[0] == 'S') && (len < 4 || len > 0x100000)) {
				/* the one-byte answer to an SSL or GSS request */
				memmove(c->hdr, c->hdr + 1, 4);
				c->hdr_have = 4;
				continue;
			}
			if (len < 4) {
				c->hdr_have = 0; /* lost the framing: resync on the next byte */
				continue;
			}
			c->body_left = len - 4;
			c->body_have = 0;
		}
		size_t take = n < c->body_left ? n : c->body_left;
		if (c->hdr[0] == 'R' || c->hdr[0] == 'K') {
			size_t room = sizeof(c->body) - c->body_have;
			size_t k = take < room ? take : room;

			memcpy(c->body + c->body_have, p, k);
			c->body_have += k;
		}
		p += take;
		n -= take;
		c->body_left -= (uint32_t)take;
		if (c->body_left > 0)
			continue;
		c->hdr_have = 0;
		if (H.trace)
			fprintf(stderr, "  client %d <- '%c' %u bytes\n", (int)(c - H.cli),
			        c->hdr[0], be32(c->hdr + 1));
		if (c->hdr[0] == 'R' && c->body_have >= 4) {
			c->auth_code = be32(c->body);
			c->auth_len = c->body_have - 4;
			if (c->auth_len > sizeof(c->auth_data))
				c->auth_len = sizeof(c->auth_data);
			memcpy(c->auth_data, c->body + 4, c->auth_len);
			c->auth_new = true;
		} else if (c->hdr[0] == 'K' && c->body_have >= 8) {
			c->key_pid = be32(c->body);
			c->key_key = be32(c->body + 4);
			c->have_key = true;
		}
	}
}

static void cli_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fcli *c = w->data;
	uint8_t buf[65536];
	ssize_t n;

	(void)loop;
	(void)revents;
	n = recv(c->fd, buf, sizeof(buf), 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	H.activity++;
	if (n <= 0) {
		ev_io_stop(H.loop, &c->rd); /* sluice hung up; closed at the end */
		return;
	}
	cli_scan(c, buf, (size_t)n);
}

static void cli_open(struct fcli *c)
{
	int sv[2];
	struct sockaddr_storage ss = {.ss_family = AF_UNIX};

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair");
	c->fd = sv[0];
	c->reading = true;
	c->auth_user = -1;
	ev_io_init(&c->rd, cli_read_cb, c->fd, EV_READ);
	c->rd.data = c;
	ev_io_start(H.loop, &c->rd);
	if (H.small_bufs) {
		int sz = 4096;

		setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	}
	(void)!proxy_client_new(&H.ctx, sv[1], &ss);
}

static void cli_close(struct fcli *c)
{
	if (c->fd < 0)
		return;
	ev_io_stop(H.loop, &c->rd);
	close(c->fd);
	c->fd = -1;
}

static struct fcli *cur_cli(void)
{
	struct fcli *c = &H.cli[H.cur];

	if (c->fd < 0)
		cli_open(c);
	return c;
}

static void cli_send(struct fcli *c, const void *p, size_t n)
{
	/* socketpair buffers hold far more than one input: a short write only
	 * happens if sluice is gone, and then the bytes do not matter */
	if (c->fd >= 0 && n > 0 && send(c->fd, p, n, MSG_NOSIGNAL) > 0)
		H.activity++;
}

static void cli_send_buf(struct fcli *c, struct proto_buf *b)
{
	cli_send(c, proto_buf_head(b), proto_buf_avail(b));
	proto_buf_free(b);
}

/* ---- the loop ---- */

static void run_quiet(void)
{
	int idle = 0;

	for (int i = 0; i < MAX_QUIET_RUN && idle < 3; i++) {
		unsigned long before = H.activity;

		ev_run(H.loop, EVRUN_NOWAIT);
		idle = H.activity == before ? idle + 1 : 0;
	}
}

/* What libev does when a one-shot timer expires: stop it, run its callback. */
static void expire(ev_timer *t)
{
	if (!ev_is_active(t))
		return;
	ev_timer_stop(H.loop, t);
	ev_feed_event(H.loop, t, EV_TIMER);
}

static void expire_timers(void)
{
	for (struct pool_node *n = H.ctx.clients.head.next; n != &H.ctx.clients.head; n = n->next)
		expire(&((struct proxy_client *)n->owner)->timer);
	for (struct pool_node *n = H.ctx.servers.head.next; n != &H.ctx.servers.head; n = n->next)
		expire(&((struct proxy_server *)n->owner)->timer);
	H.well_behaved = false;
}

/* Answer the auth request sluice sent the current client, properly, as
 * user <u> would; for SCRAM, the whole exchange. */
static void op_auth(struct fcli *c, int u)
{
	const char *pw = users[u].password;

	for (int step = 0; step < 4 && c->auth_new && c->fd >= 0; step++) {
		struct proto_buf b;
		char out[512], resp[36];
		size_t outlen = 0;
		const char *err = NULL;

		c->auth_new = false;
		proto_buf_init(&b);
		switch (c->auth_code) {
		case PROTO_AUTH_CLEARTEXT:
			must(proto_put_password(&b, pw));
			break;
		case PROTO_AUTH_MD5:
			if (c->auth_len < 4)
				break;
			proto_md5_response(users[u].name, pw, c->auth_data, resp);
			must(proto_put_password(&b, resp));
			break;
		case PROTO_AUTH_SASL:
			if (proto_scram_client_first(&c->scram, out, sizeof(out), &outlen) == 0)
				must(proto_put_sasl_initial(&b, "SCRAM-SHA-256", out, outlen));
			break;
		case PROTO_AUTH_SASL_CONTINUE:
			if (proto_scram_client_final(&c->scram, pw, NULL, c->auth_data, c->auth_len,
			                             out, sizeof(out), &outlen, &err) == 0)
				must(proto_put_sasl_response(&b, out, outlen));
			break;
		default:
			break; /* Ok, or SASLFinal: nothing to send */
		}
		if (proto_buf_avail(&b) == 0) {
			proto_buf_free(&b);
			break;
		}
		cli_send_buf(c, &b);
		run_quiet();
	}
}

/* A CancelRequest on a new connection, with the key the current client got
 * (or made-up key data from the input if it got none). */
static void op_cancel(const uint8_t **pp, const uint8_t *end)
{
	struct fcli *c = cur_cli();
	uint32_t pid = c->key_pid, key = c->key_key;
	struct fcli cc;
	struct proto_buf b;

	if (!c->have_key && end - *pp >= 8) {
		pid = be32(*pp);
		key = be32(*pp + 4);
		*pp += 8;
	}
	cli_open(&cc);
	proto_buf_init(&b);
	must(proto_put_cancel(&b, pid, key));
	cli_send_buf(&cc, &b);
	run_quiet();
	cli_close(&cc);
	run_quiet();
}

static void op_reload(int variant)
{
	char err[600];

	free(H.ctx.conf_path);
	H.ctx.conf_path = strdup(H.conf[variant % 3]);
	if (!H.ctx.conf_path)
		abort();
	/* a refused file keeps the running configuration, as in sluice */
	(void)proxy_reload(&H.ctx, err, sizeof(err));
}

/*
 * Operations, one after another until the input ends:
 *   0x00-0xdf  n+1 bytes for the current client
 *   0xe0-0xef  (n-0xdf)*256 bytes for the current client
 *   0xf0 U     answer the pending auth request properly as users[U % 5]
 *   0xf1       cancel request with the current client's key
 *   0xf2 N     make client N % 3 current (opened on first use)
 *   0xf3       close the current client's socket
 *   0xf4       every fake server connection hangs up
 *   0xf5       held fake servers go on answering
 *   0xf6       run the janitor
 *   0xf7       stop / resume reading what sluice sends the current client
 *   0xf8 V     reload the configuration (V % 3: same, altered, broken)
 *   0xf9       shut down, as on SIGTERM
 *   0xfa       every running client and server timer expires now (timeouts
 *              are an hour, so they never expire on their own)
 *   others     nothing
 */
static void run_ops(const uint8_t *p, const uint8_t *end)
{
	while (p < end) {
		uint8_t op = *p++;
		struct fcli *c;
		size_t n;

		if (H.trace)
			fprintf(stderr, "op 0x%02x (client %d)\n", op, H.cur);
		if (op < 0xf0) {
			n = op < 0xe0 ? (size_t)op + 1 : (size_t)(op - 0xdf) * 256;
			if (n > (size_t)(end - p))
				n = (size_t)(end - p);
			cli_send(cur_cli(), p, n);
			p += n;
			run_quiet();
			continue;
		}
		switch (op) {
		case 0xf0:
			if (p < end)
				op_auth(cur_cli(), *p++ % NUSERS);
			break;
		case 0xf1:
			op_cancel(&p, end);
			break;
		case 0xf2:
			if (p < end)
				H.cur = *p++ % NCLI;
			(void)cur_cli();
			break;
		case 0xf3:
			cli_close(&H.cli[H.cur]);
			break;
		case 0xf4:
			for (struct fsrv *fs = H.servers; fs; fs = fs->next)
				fs_close(fs);
			H.well_behaved = false;
			break;
		case 0xf5:
			for (struct fsrv *fs = H.servers; fs; fs = fs->next)
				fs_release(fs);
			break;
		case 0xf6:
			proxy_pool_janitor(&H.ctx);
			break;
		case 0xf7:
			c = cur_cli();
			c->reading = !c->reading;
			if (c->reading)
				ev_io_start(H.loop, &c->rd);
			else
				ev_io_stop(H.loop, &c->rd);
			break;
		case 0xf8:
			if (p < end)
				op_reload(*p++);
			H.well_behaved = false;
			break;
		case 0xf9:
			proxy_shutdown(&H.ctx);
			break;
		case 0xfa:
			expire_timers();
			break;
		default:
			break;
		}
		run_quiet();
	}
}

/* ---- per input ---- */

static void setup_input(void)
{
	char err[512];

	H.loop = ev_loop_new(EVFLAG_AUTO);
	if (!H.loop)
		die("ev_loop_new");
	if (proxy_ctx_init(&H.ctx, H.loop, H.conf[0], err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz_client: %s\n", err);
		abort();
	}
	/* the reaper and kick of start_watchers(); no signals (libFuzzer's own)
	 * and no janitor timer (op 0xf6 runs it, so inputs replay exactly) */
	ev_prepare_init(&H.ctx.reaper, reaper_cb);
	H.ctx.reaper.data = &H.ctx;
	ev_prepare_start(H.loop, &H.ctx.reaper);
	ev_idle_init(&H.ctx.kick, kick_cb);
	create_static_pools(&H.ctx);
	ev_io_init(&H.listen_io, listen_cb, H.listen_fd, EV_READ);
	ev_io_start(H.loop, &H.listen_io);
	for (int i = 0; i < NCLI; i++)
		H.cli[i].fd = -1;
	H.cur = 0;
	H.servers = NULL;
	H.next_pid = 1000;
}

static void teardown_input(void)
{
	struct fsrv *fs;

	/* every client hangs up; servers answer what they held */
	for (int i = 0; i < NCLI; i++)
		cli_close(&H.cli[i]);
	for (fs = H.servers; fs; fs = fs->next)
		fs_release(fs);
	run_quiet();
	/* the janitor (twice: a second passing) hands servers to clients that wait */
	proxy_pool_janitor(&H.ctx);
	run_quiet();
	proxy_pool_janitor(&H.ctx);
	run_quiet();
	if (H.well_behaved && H.ctx.clients.n > 0) {
		struct proxy_client *c = pool_list_first(&H.ctx.clients)->owner;

		fprintf(stderr,
		        "fuzz_client: %zu client(s) still open after every client hung up, "
		        "with a well-behaved server; first: C-%llu in state %d\n",
		        H.ctx.clients.n, (unsigned long long)c->id, (int)c->state);
		abort();
	}
	proxy_shutdown(&H.ctx);
	run_quiet();
	if (H.ctx.clients.n > 0 || H.ctx.servers.n > 0) {
		fprintf(stderr, "fuzz_client: %zu clients and %zu servers left after shutdown\n",
		        H.ctx.clients.n, H.ctx.servers.n);
		abort();
	}
	while ((fs = H.servers)) {
		H.servers = fs->next;
		fs_close(fs);
		proto_buf_free(&fs->in);
		proto_buf_free(&fs->out);
		free(fs);
	}
	for (;;) {
		int fd = accept4(H.listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			break;
		close(fd);
	}
	ev_io_stop(H.loop, &H.listen_io);
	ev_prepare_stop(H.loop, &H.ctx.reaper);
	ev_idle_stop(H.loop, &H.ctx.kick);
	proxy_ctx_destroy(&H.ctx);
	ev_loop_destroy(H.loop);
	H.loop = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t slen;

	if (size < 3)
		return 0;
	slen = data[2];
	if (slen > size - 3)
		slen = size - 3;
	H.activity = 0;
	H.login = (enum login)((data[0] >> 2) & 7);
	H.mode = (enum smode)(data[1] & 7);
	H.trickle = (data[1] >> 3) & 7 ? (size_t)1 << (((data[1] >> 3) & 7) - 1) : 0;
	H.small_bufs = (data[1] >> 6) & 1;
	H.ddl_gen = 0;
	H.sb = data + 3;
	H.sb_len = slen;
	H.sb_off = 0;
	H.well_behaved = (H.login == LOGIN_OK || H.login == LOGIN_OK2 || H.login == LOGIN_MD5 ||
	                  H.login == LOGIN_CLEARTEXT || H.login == LOGIN_SCRAM) &&
	                 (H.mode == SM_CLEAN || H.mode == SM_CLEAN2 || H.mode == SM_CLEAN3 ||
	                  H.mode == SM_HOLD);
	setup_input();
	H.close_after = H.mode == SM_CLOSE_AFTER ? (unsigned)sb_byte() + 1 : 0;
	H.ctx.conf->auth_type = (enum conf_auth_type)(data[0] & 3);
	log_set_verbose(H.verbose);
	run_ops(data + 3 + slen, data + size);
	teardown_input();
	return 0;
}

/* ---- once per process ---- */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		die(path);
}

static void remove_dir(void)
{
	char p[160];

	unlink(H.userlist);
	for (int i = 0; i < 3; i++)
		unlink(H.conf[i]);
	snprintf(p, sizeof(p), "%s/.s.PGSQL.5432", H.dir);
	unlink(p);
	rmdir(H.dir);
}

static void write_configs(void)
{
	char text[4096], ul[2048];
	size_t o = 0;
	static const char *const common =
	        "[sluice]\n"
	        "listen_addr = 127.0.0.1\n"
	        "listen_port = 6432\n"
	        "auth_type = md5\n"
	        "auth_file = %s\n"
	        "admin_users = admin\n"
	        "stats_users = stats\n"
	        "pool_mode = transaction\n"
	        "min_pool_size = 0\n"
	        "default_pool_size = %d\n"
	        "max_client_conn = 100\n"
	        "server_connect_timeout = 3600\n"
	        "server_login_retry = 0\n"
	        "query_wait_timeout = 3600\n"
	        "server_idle_timeout = 0\n"
	        "server_lifetime = 0\n"
	        "client_login_timeout = 3600\n"
	        "client_idle_timeout = 3600\n"
	        "idle_transaction_timeout = 0\n"
	        "query_timeout = 0\n"
	        "server_reset_query = DISCARD ALL\n"
	        "max_prepared_statements = %d\n"
	        "track_extra_parameters = search_path\n"
	        "ignore_startup_parameters = extra_float_digits, options\n"
	        "stats_listen =\n"
	        "logfile = %s\n"
	        "verbose = %d\n";
	const char *logfile = getenv("FUZZ_CLIENT_LOG") ? getenv("FUZZ_CLIENT_LOG") : "/dev/null";

	for (size_t i = 0; i < NUSERS; i++)
		o += (size_t)snprintf(ul + o, sizeof(ul) - o, "\"%s\" \"%s\"\n", users[i].name,
		                      users[i].secret);
	write_file(H.userlist, ul);

	o = (size_t)snprintf(text, sizeof(text),
	                     "[databases]\n"
	                     "sess = host=%s port=5432 pool_mode=session\n"
	                     "tx = host=%s port=5432 pool_mode=transaction pool_size=2\n"
	                     "stmt = host=%s port=5432 pool_mode=statement\n"
	                     "fixed = host=%s port=5432 user=alice password=alicepw\n"
	                     "* = host=%s port=5432\n"
	                     "[users]\n"
	                     "bob = pool_mode=session\n",
	                     H.dir, H.dir, H.dir, H.dir, H.dir);
	snprintf(text + o, sizeof(text) - o, common, H.userlist, 4, 4, logfile, 2);
	write_file(H.conf[0], text);

	/* modes swapped, a database gone, a port that nothing listens on */
	o = (size_t)snprintf(text, sizeof(text),
	                     "[databases]\n"
	                     "tx = host=%s port=5432 pool_mode=session pool_size=1\n"
	                     "stmt = host=%s port=5433 pool_mode=transaction\n"
	                     "sess = host=%s port=5432 pool_mode=transaction\n"
	                     "[users]\n",
	                     H.dir, H.dir, H.dir);
	snprintf(text + o, sizeof(text) - o, common, H.userlist, 1, 1, logfile, 1);
	write_file(H.conf[1], text);

	write_file(H.conf[2], "[databases\nbroken\n");
}

/* The verifiers in users[] must be what their passwords make. */
static void check_users(void)
{
	for (size_t i = 0; i < NUSERS; i++) {
		struct proto_scram_secret mine;
		const char *s = users[i].secret;

		if (proto_is_scram_secret(s)) {
			if (proto_scram_parse_secret(s, &user_scram[i]) < 0 ||
			    proto_scram_secret_from_password(users[i].password, user_scram[i].salt,
			                                     user_scram[i].salt_len,
			                                     user_scram[i].iterations, &mine) < 0 ||
			    memcmp(mine.stored_key, user_scram[i].stored_key,
			           sizeof(mine.stored_key))) {
				fprintf(stderr, "fuzz_client: bad verifier for %s\n",
				        users[i].name);
				abort();
			}
		} else {
			static const uint8_t salt[16] = "fake-server-salt";

			if (proto_scram_secret_from_password(users[i].password, salt, sizeof(salt),
			                                     16, &user_scram[i]) < 0)
				abort();
		}
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	const char *v = getenv("FUZZ_CLIENT_VERBOSE");

	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	snprintf(H.dir, sizeof(H.dir), "/tmp/sluice-fuzz-XXXXXX");
	if (!mkdtemp(H.dir))
		die("mkdtemp");
	snprintf(H.userlist, sizeof(H.userlist), "%s/userlist.txt", H.dir);
	for (int i = 0; i < 3; i++)
		snprintf(H.conf[i], sizeof(H.conf[i]), "%s/sluice%d.ini", H.dir, i);
	atexit(remove_dir);
	check_users();
	write_configs();

	snprintf(un.sun_path, sizeof(un.sun_path), "%s/.s.PGSQL.5432", H.dir);
	H.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (H.listen_fd < 0 || bind(H.listen_fd, (struct sockaddr *)&un, sizeof(un)) < 0 ||
	    listen(H.listen_fd, 128) < 0)
		die("fake server socket");

	if (log_open(getenv("FUZZ_CLIENT_LOG") ? getenv("FUZZ_CLIENT_LOG") : "/dev/null") < 0)
		die("log_open");
	/* logging at debug level runs the log formatting (escaped names) too */
	H.verbose = v ? atoi(v) : 2;
	H.trace = getenv("FUZZ_CLIENT_TRACE") != NULL;
	return 0;
}
