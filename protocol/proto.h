/*
 * PostgreSQL v3 wire protocol: byte buffers, message framing, message
 * builders, startup/cancel packet parsing and the authentication exchanges
 * (MD5 and SCRAM-SHA-256, both as verifier and as client).
 *
 * Pure code: no sockets, no logging, no project dependencies. Functions that
 * can fail return 0 or a negative value and, where useful, a static message
 * in <*err> for the caller to report.
 */
#ifndef SLUICE_PROTO_H
#define SLUICE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PROTO_WUR __attribute__((warn_unused_result))

#define PROTO_MAX_MSG_LEN        (1u << 30) /* 1 GiB: PostgreSQL's own limit */
#define PROTO_MAX_STARTUP_LEN    10000      /* as PostgreSQL's MAX_STARTUP_PACKET_LENGTH */
#define PROTO_MAX_STARTUP_PARAMS 64

#define PROTO_V3             196608u /* 3.0 */
#define PROTO_CANCEL_REQUEST 80877102u
#define PROTO_SSL_REQUEST    80877103u
#define PROTO_GSSENC_REQUEST 80877104u

/* Authentication request codes ('R' messages). */
#define PROTO_AUTH_OK            0
#define PROTO_AUTH_CLEARTEXT     3
#define PROTO_AUTH_MD5           5
#define PROTO_AUTH_SASL          10
#define PROTO_AUTH_SASL_CONTINUE 11
#define PROTO_AUTH_SASL_FINAL    12

/*
 * Growable byte buffer. Valid bytes are data[off .. len). Consuming advances
 * <off>; the buffer compacts itself when it needs room.
 */
struct proto_buf {
	uint8_t *data; /* owned */
	size_t off;    /* first unconsumed byte */
	size_t len;    /* end of valid bytes */
	size_t cap;    /* allocated size */
};

void proto_buf_init(struct proto_buf *b);
void proto_buf_free(struct proto_buf *b);
/* Drop all content, keep the allocation. */
void proto_buf_reset(struct proto_buf *b);
/* Make room for <n> more bytes after len (may move data). -1 on OOM. */
int proto_buf_reserve(struct proto_buf *b, size_t n) PROTO_WUR;
int proto_buf_append(struct proto_buf *b, const void *p, size_t n) PROTO_WUR;
/* Consume <n> bytes from the front; resets off/len to 0 when drained. */
void proto_buf_consume(struct proto_buf *b, size_t n);

static inline size_t proto_buf_avail(const struct proto_buf *b)
{
	return b->len - b->off;
}

static inline uint8_t *proto_buf_head(const struct proto_buf *b)
{
	/* a buffer that never held data has no storage: NULL + 0 is undefined */
	return b->data ? b->data + b->off : b->data;
}

/* ---- framing ---- */

enum proto_rc {
	PROTO_OK = 0,        /* one whole message framed */
	PROTO_NEED_MORE = 1, /* incomplete: read more bytes */
	PROTO_ERR = -1,      /* malformed length field */
	PROTO_TOO_BIG = -2,  /* length over the caller's limit */
};

/*
 * A framed message: a view into the caller's bytes, valid while they are.
 * For startup-phase packets (no type byte) <type> is 0.
 */
struct proto_msg {
	uint8_t type;        /* type byte, 0 for startup packets */
	uint32_t len;        /* value of the length field (counts itself) */
	const uint8_t *body; /* bytes after the length field */
	size_t body_len;     /* len - 4 */
	const uint8_t *raw;  /* first byte of the whole message */
	size_t raw_len;      /* body_len + 5, or + 4 for startup packets */
};

/*
 * Frame the message at the start of <p>[0..n). <startup> selects the
 * untyped startup packet format (length, then body). <max_len> bounds the
 * length field. Returns enum proto_rc; on PROTO_OK fills <m>.
 * Works for any split of the stream: with fewer bytes than a whole message
 * it returns PROTO_NEED_MORE and touches nothing.
 */
int proto_next(const uint8_t *p, size_t n, bool startup, uint32_t max_len, struct proto_msg *m);

/*
 * Read just the header (type byte and length) of a typed message.
 * PROTO_NEED_MORE with fewer than 5 bytes, PROTO_ERR if length < 4.
 */
int proto_peek_header(const uint8_t *p, size_t n, uint8_t *type, uint32_t *len);

/* Sequential reader over a message body; <err> sticks once set. */
struct proto_reader {
	const uint8_t *p;
	size_t n;
	bool err;
};

void proto_reader_init(struct proto_reader *r, const void *p, size_t n);
uint8_t proto_get_u8(struct proto_reader *r);
uint16_t proto_get_u16(struct proto_reader *r);
uint32_t proto_get_u32(struct proto_reader *r);
/* NUL-terminated string inside the body; NULL (and err) if unterminated. */
const char *proto_get_str(struct proto_reader *r);
/* <len> raw bytes; NULL (and err) if short. */
const uint8_t *proto_get_bytes(struct proto_reader *r, size_t len);

/* ---- startup phase ---- */

#define PROTO_MAJOR(code) ((uint32_t)(code) >> 16)
#define PROTO_MINOR(code) ((uint32_t)(code)&0xffffu)
/* The newest minor version of protocol 3 that sluice speaks (3.0). */
#define PROTO_V3_NEWEST_MINOR 0u

/* What a startup-phase packet asks for, from its code. */
enum proto_startup_kind {
	PROTO_STARTUP_UNSUPPORTED = 0, /* a code of no known kind: another major version,
	                                  or a request nobody defined; answer 0A000 */
	PROTO_STARTUP_V3,              /* StartupMessage of protocol 3.x, any minor x */
	PROTO_STARTUP_CANCEL,          /* CancelRequest: cancel_pid and cancel_key are set */
	PROTO_STARTUP_SSL,             /* SSLRequest */
	PROTO_STARTUP_GSSENC,          /* GSSENCRequest */
};

struct proto_startup {
	uint32_t code;                /* as sent: PROTO_V3 | minor, PROTO_*_REQUEST, or other */
	enum proto_startup_kind kind; /* what <code> means */
	uint16_t minor;               /* PROTO_STARTUP_V3: the minor version asked for */
	uint32_t cancel_pid;          /* for PROTO_CANCEL_REQUEST */
	uint32_t cancel_key;
	/* PROTO_STARTUP_V3: the name/value pairs in the order sent (views into the
	 * message), "user", "database" and "options" included, protocol options
	 * ("_pq_.*") left out: those are only in pq_options. */
	size_t nparams;
	const char *names[PROTO_MAX_STARTUP_PARAMS];
	const char *values[PROTO_MAX_STARTUP_PARAMS];
	/* PROTO_STARTUP_V3: names of the "_pq_." protocol options asked for, in
	 * order (views). sluice knows none: each goes back to the client in
	 * NegotiateProtocolVersion and none reaches PostgreSQL. */
	size_t npq_options;
	const char *pq_options[PROTO_MAX_STARTUP_PARAMS];
	const char *user;     /* view; never NULL; "" unless a 3.x StartupMessage parsed */
	const char *database; /* view; never NULL; defaults to <user> */
	const char *options;  /* view of "options"; NULL if absent */
	/* On -1: the SQLSTATE to answer with, never NULL:
	 *   "08P01" malformed packet (bad layout, bad cancel request length),
	 *   "28000" no user name: <*err> is then PostgreSQL's own message
	 *           "no PostgreSQL user name specified in startup packet",
	 *   "54000" more parameters than PROTO_MAX_STARTUP_PARAMS.
	 * NULL after a successful parse. */
	const char *sqlstate;
};

/*
 * Parse a startup-phase packet framed by proto_next(startup = true) into
 * <s> (which views into <m>, valid as long as the message bytes are).
 *
 * Sets <s->kind> from the code. For PROTO_STARTUP_V3 (protocol 3.x, any
 * minor, as PostgreSQL accepts) it checks the parameter list is well formed
 * (pairs of NUL-terminated strings, a final NUL as the last byte), collects
 * the parameters and the "_pq_." protocol options, and requires a non-empty
 * "user"; <database> defaults to <user>. A 3.x packet that parsed may need a
 * NegotiateProtocolVersion first: see proto_startup_wants_negotiation().
 *
 * For PROTO_STARTUP_UNSUPPORTED (e.g. protocol 2.0 or 4.0) it returns 0 and
 * leaves the refusal to the caller, who should answer FATAL 0A000
 * "unsupported frontend protocol M.m: server supports 3.0 to 3.0" (from
 * PROTO_MAJOR/PROTO_MINOR of <code>) and close, as PostgreSQL does.
 *
 * Returns 0, or -1 with <*err> (a static message) and <s->sqlstate> set.
 * Whatever it returns, <s->user> and <s->database> are never NULL.
 */
int proto_parse_startup(const struct proto_msg *m, struct proto_startup *s,
                        const char **err) PROTO_WUR;

/*
 * true if a parsed 3.x StartupMessage <s> must be answered with
 * NegotiateProtocolVersion before authentication: it asked for a minor
 * version newer than PROTO_V3_NEWEST_MINOR or for any "_pq_." option. Then
 * call proto_put_negotiate_version(b, PROTO_V3_NEWEST_MINOR, s->pq_options,
 * s->npq_options) and carry on with the login in protocol 3.0, as PostgreSQL
 * does.
 */
bool proto_startup_wants_negotiation(const struct proto_startup *s);

/* ---- builders: each appends one whole message, or nothing and -1 on OOM
 * or when a count or length does not fit its field (a body over
 * PROTO_MAX_MSG_LEN, over 65535 columns) ---- */

/* Start a typed message: writes type and a length placeholder, returns
 * the offset to hand to proto_msg_end(), or (size_t)-1 on OOM. */
size_t proto_msg_begin(struct proto_buf *b, uint8_t type);
/* Patch the length of the message begun at <start>. */
void proto_msg_end(struct proto_buf *b, size_t start);
int proto_put_u8(struct proto_buf *b, uint8_t v) PROTO_WUR;
int proto_put_u16(struct proto_buf *b, uint16_t v) PROTO_WUR;
int proto_put_u32(struct proto_buf *b, uint32_t v) PROTO_WUR;
int proto_put_str(struct proto_buf *b, const char *s) PROTO_WUR; /* with NUL */
int proto_put_bytes(struct proto_buf *b, const void *p, size_t n) PROTO_WUR;

int proto_put_msg(struct proto_buf *b, uint8_t type, const void *body, size_t len) PROTO_WUR;
/* 'E' with S, V, C, M and optional D (detail) and H (hint). */
int proto_put_error(struct proto_buf *b, const char *severity, const char *sqlstate,
                    const char *msg, const char *detail, const char *hint) PROTO_WUR;
/* The same, with R: the name of the server routine that raised it. */
int proto_put_error_routine(struct proto_buf *b, const char *severity, const char *sqlstate,
                            const char *msg, const char *detail, const char *hint,
                            const char *routine) PROTO_WUR;
/* 'N' notice, same fields as proto_put_error. */
int proto_put_notice(struct proto_buf *b, const char *severity, const char *sqlstate,
                     const char *msg, const char *detail, const char *hint) PROTO_WUR;
/* 'R' with a code and optional payload. */
int proto_put_auth(struct proto_buf *b, uint32_t code, const void *data, size_t len) PROTO_WUR;
/* 'R' AuthenticationSASL advertising one mechanism. */
int proto_put_auth_sasl(struct proto_buf *b, const char *mechanism) PROTO_WUR;
int proto_put_param_status(struct proto_buf *b, const char *name, const char *value) PROTO_WUR;
int proto_put_backend_key(struct proto_buf *b, uint32_t pid, uint32_t key) PROTO_WUR;
int proto_put_rfq(struct proto_buf *b, char status) PROTO_WUR;
/*
 * 'v' NegotiateProtocolVersion, byte for byte as PostgreSQL sends it: Int32
 * the newest version supported for major version 3 (PostgreSQL writes the
 * whole version, (3 << 16) | <newest_minor>, e.g. 00 03 00 00 for 3.0, and
 * libpq reads it so), Int32 <n>, then the <n> option names, each
 * NUL-terminated. -1 on OOM or if <newest_minor> > 0xffff.
 */
int proto_put_negotiate_version(struct proto_buf *b, uint32_t newest_minor,
                                const char *const *unrecognized_options, size_t n) PROTO_WUR;
/* Untyped v3 StartupMessage with <n> name/value pairs. */
int proto_put_startup(struct proto_buf *b, const char *const *names, const char *const *values,
                      size_t n) PROTO_WUR;
int proto_put_ssl_request(struct proto_buf *b) PROTO_WUR;
int proto_put_cancel(struct proto_buf *b, uint32_t pid, uint32_t key) PROTO_WUR;
/* 'p' PasswordMessage (cleartext or md5 response). */
int proto_put_password(struct proto_buf *b, const char *pw) PROTO_WUR;
int proto_put_sasl_initial(struct proto_buf *b, const char *mechanism, const void *data,
                           size_t len) PROTO_WUR;
int proto_put_sasl_response(struct proto_buf *b, const void *data, size_t len) PROTO_WUR;
int proto_put_query(struct proto_buf *b, const char *sql) PROTO_WUR;
int proto_put_terminate(struct proto_buf *b) PROTO_WUR;
/* Result sets for locally answered queries: every column is text (OID 25). */
int proto_put_row_desc(struct proto_buf *b, const char *const *names, size_t n) PROTO_WUR;
/* Type OIDs of result columns, as PostgreSQL numbers them. */
#define PROTO_OID_BYTEA       17
#define PROTO_OID_INT8        20
#define PROTO_OID_INT4        23
#define PROTO_OID_TEXT        25
#define PROTO_OID_FLOAT8      701
#define PROTO_OID_NUMERIC     1700
#define PROTO_OID_TIMESTAMPTZ 1184
/* The same with each column's type (<oids>, text format all the same). */
int proto_put_row_desc_typed(struct proto_buf *b, const char *const *names, const uint32_t *oids,
                             size_t n) PROTO_WUR;
/* DataRow; a NULL value is sent as SQL NULL. */
int proto_put_data_row(struct proto_buf *b, const char *const *values, size_t n) PROTO_WUR;
int proto_put_command_complete(struct proto_buf *b, const char *tag) PROTO_WUR;

/* ErrorResponse / NoticeResponse fields (views into the message body). */
struct proto_error {
	const char *severity; /* V (non-localized) or S; "" if absent */
	const char *sqlstate; /* C; "" if absent */
	const char *message;  /* M; "" if absent */
	const char *routine;  /* R: the server function that raised it; "" if absent */
};

int proto_parse_error(const struct proto_msg *m, struct proto_error *e) PROTO_WUR;

/* ---- secrets ---- */

/* Constant-time comparison of <n> bytes. */
bool proto_ct_equal(const void *a, const void *b, size_t n);

/* Fill <p> with <n> cryptographically random bytes; -1 on failure. */
int proto_random(void *p, size_t n) PROTO_WUR;

/*
 * MD5 response to an AuthenticationMD5Password challenge:
 * "md5" + md5hex(md5hex(password + user) + salt). <secret> is either the
 * plaintext password or a stored "md5" + 32-hex hash. <out> gets 35 chars
 * plus NUL.
 */
void proto_md5_response(const char *user, const char *secret, const uint8_t salt[4], char out[36]);
/* The "md5" + hex(md5(password || user)) string PostgreSQL stores, with its
 * NUL, for the plaintext <password>, whatever it looks like. */
void proto_md5_password_hash(const char *user, const char *password, char out[36]);

/*
 * Verify a client's MD5 response against <secret> (plaintext or "md5..."
 * hash) in constant time.
 */
bool proto_md5_verify(const char *user, const char *secret, const uint8_t salt[4],
                      const char *response);

#define PROTO_SCRAM_KEY_LEN      32
#define PROTO_SCRAM_MAX_SALT     64
#define PROTO_SCRAM_DEFAULT_ITER 4096
/* Salt length of the verifiers PostgreSQL makes (SCRAM_DEFAULT_SALT_LEN)
 * and of those sluice makes from plaintext passwords: 24 base64 chars. */
#define PROTO_SCRAM_SALT_LEN 16

/* A SCRAM-SHA-256 secret: PostgreSQL's stored form, optionally with the
 * ClientKey when it is known (from a plaintext password, or recovered from
 * a client's proof). */
struct proto_scram_secret {
	int iterations;
	uint8_t salt[PROTO_SCRAM_MAX_SALT];
	size_t salt_len;
	uint8_t stored_key[PROTO_SCRAM_KEY_LEN];
	uint8_t server_key[PROTO_SCRAM_KEY_LEN];
	bool has_client_key;
	uint8_t client_key[PROTO_SCRAM_KEY_LEN];
	bool doomed; /* made by proto_scram_mock_secret: no password verifies */
};

/* true if <s> looks like "SCRAM-SHA-256$...". */
bool proto_is_scram_secret(const char *s);
/* true if <s> is "md5" followed by 32 hex digits. */
bool proto_is_md5_secret(const char *s);

/* Parse "SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>". */
int proto_scram_parse_secret(const char *verifier, struct proto_scram_secret *s) PROTO_WUR;

/* Derive a secret (with ClientKey) from a plaintext password, SASLprep'd
 * first as PostgreSQL does (proto_saslprep; as it is when that refuses it).
 * Runs PBKDF2
 * with <iterations> rounds: milliseconds at 4096, keep it off the hot path.
 * -1 for a bad salt or count, a password over INT_MAX bytes, or OOM. */
int proto_scram_secret_from_password(const char *password, const uint8_t *salt, size_t salt_len,
                                     int iterations, struct proto_scram_secret *s) PROTO_WUR;

/*
 * A stand-in secret for a user sluice cannot verify (unknown, or with no
 * usable SCRAM secret), so that the exchange runs to the end and fails
 * exactly as for a wrong password, telling nothing of which users exist, as
 * PostgreSQL's mock authentication does.
 *
 * <key> is a per-process random secret (32 bytes from proto_random() at
 * start-up, kept for the life of the process and never shown). The salt is
 * the first PROTO_SCRAM_SALT_LEN bytes of HMAC-SHA-256(<key>, <user>): the
 * same for the same name for the life of the process, unpredictable without
 * <key>, and of the length of a real salt; iterations are
 * PROTO_SCRAM_DEFAULT_ITER. StoredKey and ServerKey are derived from <key>
 * too (no PBKDF2: it costs a few microseconds) and <out->doomed> is set, so
 * proto_scram_server_final() always fails on it. Nothing is allocated; the
 * caller keeps no per-user state. Returns 0, or -1 if the HMAC failed (then
 * <out> must not be used).
 */
int proto_scram_mock_secret(const uint8_t key[PROTO_SCRAM_KEY_LEN], const char *user,
                            struct proto_scram_secret *out) PROTO_WUR;

/*
 * ---- SASLprep (saslprep.c) ----
 *
 * RFC 4013 as PostgreSQL applies it to SCRAM passwords: <in> mapped (B.1 to
 * nothing, non-ASCII spaces to a space), checked (prohibited output,
 * unassigned code points, bidi) and NFKC-normalized. ASCII-only input comes
 * back as it is. On PROTO_SASLPREP_OK <*out> is the malloc'd result (the
 * caller wipes and frees it); on any other code <*out> is NULL, and a
 * caller deriving keys uses <in> as it is, as PostgreSQL does, except on
 * PROTO_SASLPREP_OOM.
 */
#define PROTO_SASLPREP_MAX_LEN 1024 /* bytes, as PostgreSQL's MAX_PASSWORD_LENGTH */

enum proto_saslprep_rc {
	PROTO_SASLPREP_OK = 0,
	PROTO_SASLPREP_OOM = -1,
	PROTO_SASLPREP_INVALID_UTF8 = -2, /* not UTF-8: use the bytes as they are */
	PROTO_SASLPREP_PROHIBITED = -3,   /* SASLprep refuses it: use it as it is */
	PROTO_SASLPREP_TOO_LONG = -4,     /* over PROTO_SASLPREP_MAX_LEN bytes: as it is */
};

int proto_saslprep(const char *in, char **out) PROTO_WUR;

/* Exchange state, verifier side (sluice authenticating a client). */
struct proto_scram_server {
	struct proto_scram_secret secret;
	char client_first_bare[512];
	char server_first[512];
	char nonce[128]; /* combined client + server nonce */
	/* base64 of the gs2 header of client-first ("biws" for "n,,", "eSws" for
	 * "y,,"): the c= attribute client-final must carry */
	char cbind[8];
	/* true: server_final does all its work and then fails, whatever the proof
	 * (set from secret.doomed by server_first; a caller may also set it after
	 * server_first to fail an exchange it knows cannot succeed) */
	bool doomed;
	/* on -1 from either step: the SQLSTATE to answer with, with <*err>:
	 * "08P01" malformed or out-of-order message, "0A000" a feature sluice
	 * does not support (authzid, channel binding, mandatory extension),
	 * "28P01" wrong proof (report it as password authentication failed) */
	const char *sqlstate;
	int step;
};

/*
 * Step 1: take the client's SASLInitialResponse payload (client-first
 * message), produce the server-first message in <out> (NUL-terminated,
 * length in <*outlen>). Refused (-1, <*err> and st->sqlstate set):
 * channel binding ("p=" gs2 flag: sluice offers no SCRAM-SHA-256-PLUS) and
 * an authzid ("n,a=bob,...") with 0A000, as PostgreSQL refuses them; a
 * mandatory extension ("m=") with 0A000; anything malformed with 08P01.
 */
int proto_scram_server_first(struct proto_scram_server *st, const struct proto_scram_secret *secret,
                             const uint8_t *client_first, size_t len, char *out, size_t outsz,
                             size_t *outlen, const char **err) PROTO_WUR;

/*
 * Step 2: take the client-final message ("c=<cbind>,r=<nonce>[,ext...],
 * p=<proof>"): c= must be the base64 of the gs2 header sent in step 1, r=
 * the combined nonce; verify the proof in constant time. On success writes
 * server-final ("v=...") to <out> and stores the recovered ClientKey in
 * st->secret (has_client_key = true). Returns -1 with <*err> and
 * st->sqlstate if the message is malformed (08P01), the proof is wrong or
 * the exchange is doomed (28P01: both take the same path and time).
 */
int proto_scram_server_final(struct proto_scram_server *st, const uint8_t *client_final, size_t len,
                             char *out, size_t outsz, size_t *outlen, const char **err) PROTO_WUR;

/* Exchange state, client side (sluice logging in to PostgreSQL). */
struct proto_scram_client {
	char client_nonce[64];
	char client_first_bare[512];
	uint8_t server_signature[PROTO_SCRAM_KEY_LEN];
	int step;
	/* keys derived from the password in step 2, for the caller to keep
	 * (next time they spare the key derivation) */
	bool has_derived;
	struct proto_scram_secret derived;
};

/* Step 1: client-first message ("n,,n=,r=<nonce>") into <out>. */
int proto_scram_client_first(struct proto_scram_client *st, char *out, size_t outsz,
                             size_t *outlen) PROTO_WUR;

/*
 * Step 2: from the server-first message, build client-final with proof.
 * The message comes from the server, so it is parsed strictly:
 * "r=<nonce>,s=<salt>,i=<count>[,ext...]" in that order, the nonce
 * printable and extending ours, the salt strict base64, the count 1 to
 * 999999999; a mandatory extension ("m=") or anything else is -1.
 * Uses <keys> when they carry a ClientKey for the server's salt and
 * iteration count; otherwise derives the keys from <password> (and leaves
 * them in st->derived); with neither, -1 with <*err>.
 */
int proto_scram_client_final(struct proto_scram_client *st, const char *password,
                             const struct proto_scram_secret *keys, const uint8_t *server_first,
                             size_t len, char *out, size_t outsz, size_t *outlen,
                             const char **err) PROTO_WUR;

/* Step 3: check the server's signature in server-final ("v=...", or
 * "e=..." when the server refused). */
int proto_scram_client_verify(struct proto_scram_client *st, const uint8_t *server_final,
                              size_t len, const char **err) PROTO_WUR;

/* Give memory back: a buffer holding at most <keep> / 2 bytes whose
 * allocation grew past <keep> is freed (when empty) or shrunk to <keep>. */
void proto_buf_shrink(struct proto_buf *b, size_t keep);

/*
 * ---- SQL scanner (sqlscan.c) ----
 *
 * One pass over SQL text, on the hot path, with no allocation. It knows
 * every lexical form of PostgreSQL (quotes with doubled quotes, E'' with
 * backslash escapes, U&'' and U&"", dollar quotes with tags, nested block
 * comments, -- comments, quoted identifiers, numeric, bit and hex literals,
 * :: casts) and
 *  - splits the text at top-level semicolons (empty statements are none);
 *  - normalizes each statement: comments dropped, whitespace runs made one
 *    space, literals replaced by $n (numbered after the highest $n the text
 *    already has, as pg_query_normalize does), and the list of an
 *    IN (...) made of literals only collapsed to one: "IN ($1)";
 *  - fingerprints each normalized statement with xxHash over a canonical
 *    form (unquoted words lower-cased), so "SELECT 1" and "select  2" have
 *    the same fingerprint;
 *  - finds each statement's leading keyword and reads "sluice:" hints from
 *    its comments ("sluice:cache", "sluice:cache ttl=30", "sluice:nocache").
 * Malformed text (an unterminated string or comment) still scans: the rest
 * of the text is that token.
 */
#define PROTO_SQL_MAX_STMTS 32 /* statements kept apart; later ones fold into the last */

enum proto_sql_kw {
	PROTO_KW_NONE = 0, /* empty or an unknown leading word */
	PROTO_KW_SELECT,
	PROTO_KW_INSERT,
	PROTO_KW_UPDATE,
	PROTO_KW_DELETE,
	PROTO_KW_MERGE,
	PROTO_KW_WITH,
	PROTO_KW_VALUES,
	PROTO_KW_TABLE,
	PROTO_KW_COPY,
	PROTO_KW_BEGIN,
	PROTO_KW_START,
	PROTO_KW_COMMIT,
	PROTO_KW_END,
	PROTO_KW_ROLLBACK,
	PROTO_KW_ABORT,
	PROTO_KW_SAVEPOINT,
	PROTO_KW_RELEASE,
	PROTO_KW_PREPARE,
	PROTO_KW_EXECUTE,
	PROTO_KW_DEALLOCATE,
	PROTO_KW_SET,
	PROTO_KW_RESET,
	PROTO_KW_SHOW,
	PROTO_KW_EXPLAIN,
	PROTO_KW_CREATE,
	PROTO_KW_ALTER,
	PROTO_KW_DROP,
	PROTO_KW_TRUNCATE,
	PROTO_KW_GRANT,
	PROTO_KW_REVOKE,
	PROTO_KW_COMMENT,
	PROTO_KW_VACUUM,
	PROTO_KW_ANALYZE,
	PROTO_KW_LISTEN,
	PROTO_KW_UNLISTEN,
	PROTO_KW_NOTIFY,
	PROTO_KW_DO,
	PROTO_KW_CALL,
	PROTO_KW_LOCK,
	PROTO_KW_DISCARD,
	PROTO_KW_DECLARE,
	PROTO_KW_FETCH,
	PROTO_KW_MOVE,
	PROTO_KW_CLOSE,
	PROTO_KW_REFRESH,
	PROTO_KW_REINDEX,
	PROTO_KW_CLUSTER,
	PROTO_KW_CHECKPOINT,
	PROTO_KW_OTHER, /* some other word */
};

#define PROTO_SQL_HINT_CACHE   1u /* sluice:cache */
#define PROTO_SQL_HINT_NOCACHE 2u /* sluice:nocache (wins over cache) */

struct proto_sql_stmt {
	uint64_t fp;       /* fingerprint of the normalized statement; never 0 */
	uint32_t norm_off; /* its normalized text: buf[norm_off, norm_off + norm_len) */
	uint32_t norm_len;
	uint32_t src_off; /* its original text: sql[src_off, src_off + src_len) */
	uint32_t src_len;
	uint32_t cache_ttl; /* seconds from "sluice:cache ttl=N", 0 = none given */
	uint16_t nparams;   /* highest $n in the normalized statement */
	uint8_t keyword;    /* enum proto_sql_kw */
	uint8_t hints;      /* PROTO_SQL_HINT_* */
	bool cut;           /* the text or <buf> ended inside it: a prefix only */
};

struct proto_sql_scan {
	unsigned nstmts; /* 0 for text with no statement (blank, comments, ";") */
	struct proto_sql_stmt stmt[PROTO_SQL_MAX_STMTS];
};

/*
 * Scan <len> bytes of <sql> (a NUL ends it early). <complete> is false when
 * <sql> is only the start of a longer text: the last statement is then
 * <cut>. Normalized statements go to <buf> of <cap> bytes (each followed by
 * a NUL); when <buf> is full the statement is cut and the rest is only
 * fingerprinted as far as it went. Pure, never fails.
 */
void proto_sql_scan(const char *sql, size_t len, bool complete, char *buf, size_t cap,
                    struct proto_sql_scan *out);

/* Lower-case name of a keyword ("select"), "" for PROTO_KW_NONE. */
const char *proto_sql_kw_name(enum proto_sql_kw kw);

/*
 * The fast path for a text seen before (sqlskel.c): a 64-bit key of the
 * <len> bytes of <sql> with their literal values left out, or 0 when the
 * text holds a form the key does not follow (then scan it in full). Texts
 * with one key differ only in literal values, and proto_sql_scan says the
 * same of them (fingerprints, keywords, hints, statements, parameters), so
 * the key can stand for a scan made before. A text without literals has
 * the key XXH3_64bits(sql, len) | 1.
 */
#define PROTO_SQL_SKEL_MAX 2048 /* longer texts have no key */
uint64_t proto_sql_skeleton(const char *sql, size_t len);

/*
 * What a text with a key holds that proto_sql_again can compare with: no
 * literal at all, or one integer literal (digits only) at [off, off + len).
 */
struct proto_sql_lits {
	uint8_t kind; /* PROTO_SQL_LITS_* */
	uint32_t off, len;
};
#define PROTO_SQL_LITS_OTHER 0 /* other literals: nothing to compare with */
#define PROTO_SQL_LITS_NONE  1 /* no literal */
#define PROTO_SQL_LITS_INT   2 /* one integer literal */
/* proto_sql_skeleton, and in <lits> what the text holds. */
uint64_t proto_sql_skeleton_lits(const char *sql, size_t len, struct proto_sql_lits *lits);
/*
 * Whether <sql, len> is the text <old, old_len>, whose literals <lits>
 * describes, with at most its one integer changed (to other digits): then
 * its key is <old>'s, known by a comparison of bytes. False says nothing.
 * Inline: it stands for a skeleton pass on every repeated Query.
 */
/* Whether the <n> bytes at <sql> + <off> are all digits. Up to eight of
 * them are checked at once, in the 8 bytes that end with them (a text's
 * integer is most often under eight digits, and most often near its end). */
static inline bool proto_sql_all_digits(const char *sql, size_t off, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	if (n <= 8 && off + n >= 8) {
		const uint64_t zeros = 0x3030303030303030ull, high = 0xf0f0f0f0f0f0f0f0ull;
		uint64_t x, keep = ~0ull << (8 * (8 - n)); /* the last n bytes */

		memcpy(&x, sql + off + n - 8, 8);
		x = (x & keep) | (zeros & ~keep);
		/* every byte 0x30 .. 0x3f, and none past 0x39 */
		return ((x & high) | (((x + 0x0606060606060606ull) & high) >> 4)) ==
		       0x3333333333333333ull;
	}
#endif
	for (const char *d = sql + off, *e = d + n; d < e; d++)
		if ((unsigned char)(*d - '0') > 9)
			return false;
	return true;
}

/*
 * Why a changed integer keeps the key: the bytes around it are the same,
 * so the byte before it is still no word byte (it started a number), and
 * the byte after it still ends the number (lex_number stopped there after
 * digits: no '.', no exponent); nothing the skeleton refuses depends on a
 * literal's value. Digits there are then one number, with one mark.
 */
static inline bool proto_sql_again(const char *sql, size_t len, const char *old, size_t old_len,
                                   const struct proto_sql_lits *lits)
{
	size_t off, tail, n;

	if (lits->kind == PROTO_SQL_LITS_NONE)
		return len == old_len && memcmp(sql, old, len) == 0;
	if (lits->kind != PROTO_SQL_LITS_INT)
		return false;
	off = lits->off;
	tail = old_len - off - lits->len;
	if (len <= off + tail || len > PROTO_SQL_SKEL_MAX)
		return false;
	n = len - off - tail; /* the new integer's digits */
	if (!proto_sql_all_digits(sql, off, n))
		return false;
	/* the tail after an integer is mostly short (";", ")"): no call */
	sql += off + n;
	old += off + lits->len;
	if (tail < 16) {
		unsigned diff = 0;

		for (size_t i = 0; i < tail; i++)
			diff |= (unsigned char)(sql[i] ^ old[i]);
		if (diff)
			return false;
	} else if (memcmp(sql, old, tail) != 0) {
		return false;
	}
	return memcmp(sql - off - n, old - off - lits->len, off) == 0;
}

#endif /* SLUICE_PROTO_H */
