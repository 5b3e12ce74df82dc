/*
 * Secrets: constant-time comparison, random bytes, the MD5 password
 * exchange and SCRAM-SHA-256 (RFC 5802 / RFC 7677) on both sides, with
 * OpenSSL's primitives.
 */
#include "protocol/proto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool proto_ct_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

int proto_random(void *p, size_t n)
{
	if (n > (size_t)INT32_MAX)
		return -1;
	return RAND_bytes(p, (int)n) == 1 ? 0 : -1;
}

/* ---- MD5 ---- */

static void md5_hex(const void *a, size_t alen, const void *b, size_t blen, char out[33])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	memset(d, 0, sizeof(d));
	if (ctx) {
		EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
		EVP_DigestUpdate(ctx, a, alen);
		EVP_DigestUpdate(ctx, b, blen);
		EVP_DigestFinal_ex(ctx, d, &dlen);
		EVP_MD_CTX_free(ctx);
	}
	for (int i = 0; i < 16; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[32] = 0;
}

bool proto_is_md5_secret(const char *s)
{
	if (!s || strncmp(s, "md5", 3) != 0 || strlen(s) != 35)
		return false;
	for (int i = 3; i < 35; i++) {
		char ch = s[i];
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
			return false;
	}
	return true;
}

void proto_md5_response(const char *user, const char *secret, const uint8_t salt[4], char out[36])
{
	char inner[33];

	if (proto_is_md5_secret(secret))
		memcpy(inner, secret + 3, 33);
	else
		md5_hex(secret, strlen(secret), user, strlen(user), inner);
	memcpy(out, "md5", 3);
	md5_hex(inner, 32, salt, 4, out + 3);
}

bool proto_md5_verify(const char *user, const char *secret, const uint8_t salt[4],
                      const char *response)
{
	char want[36];

	if (!response || strlen(response) != 35)
		return false;
	proto_md5_response(user, secret, salt, want);
	return proto_ct_equal(want, response, 35);
}

/* ---- SCRAM-SHA-256 ---- */

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding, NUL-terminated; the length written or -1
 * if <outsz> is too small. */
static int b64_encode(const uint8_t *in, size_t n, char *out, size_t outsz)
{
	if (n > (size_t)INT32_MAX / 2 || ((n + 2) / 3) * 4 + 1 > outsz)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = b64_chars[v >> 18 & 63];
		out[o++] = b64_chars[v >> 12 & 63];
		out[o++] = i + 1 < n ? b64_chars[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? b64_chars[v & 63] : '=';
	}
	out[o] = 0;
	return (int)o;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Decode strict standard base64 of <n> chars (a multiple of 4, padding
 * only at the end, nothing outside the alphabet: these come from untrusted
 * peers); returns the decoded length or -1.
 */
static int b64_decode(const char *in, size_t n, uint8_t *out, size_t outsz)
{
	if (n == 0 || n % 4 != 0 || n > (size_t)INT32_MAX || (n / 4) * 3 > outsz + 2)
		return -1;
	size_t pad = 0;
	if (in[n - 1] == '=')
		pad = in[n - 2] == '=' ? 2 : 1;
	size_t len = (n / 4) * 3 - pad;
	if (len > outsz)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 4) {
		uint32_t v = 0;
		for (size_t k = 0; k < 4; k++) {
			int d;
			if (i + k >= n - pad)
				d = 0; /* a padding position */
			else if ((d = b64_value(in[i + k])) < 0)
				return -1;
			v = v << 6 | (uint32_t)d;
		}
		for (size_t k = 0; k < 3 && o < len; k++)
			out[o++] = (uint8_t)(v >> (16 - 8 * k));
	}
	return (int)len;
}

/* HMAC-SHA-256; on failure <out> is zeroed and -1 returned. */
static int hmac(const uint8_t *key, size_t klen, const void *data, size_t n,
                uint8_t out[PROTO_SCRAM_KEY_LEN])
{
	unsigned int len = PROTO_SCRAM_KEY_LEN;

	/* keys here are 32 bytes: the cast cannot truncate */
	if (klen > (size_t)INT32_MAX || !HMAC(EVP_sha256(), key, (int)klen, data, n, out, &len)) {
		memset(out, 0, PROTO_SCRAM_KEY_LEN);
		return -1;
	}
	return 0;
}

static void sha256(const uint8_t *p, size_t n, uint8_t out[PROTO_SCRAM_KEY_LEN])
{
	SHA256(p, n, out);
}

bool proto_is_scram_secret(const char *s)
{
	return s && strncmp(s, "SCRAM-SHA-256$", 14) == 0;
}

int proto_scram_parse_secret(const char *v, struct proto_scram_secret *s)
{
	memset(s, 0, sizeof(*s));
	if (!proto_is_scram_secret(v))
		return -1;
	const char *p = v + 14;
	char *end;
	long iter = strtol(p, &end, 10);
	if (end == p || *end != ':' || iter < 1 || iter > 100000000)
		return -1;
	s->iterations = (int)iter;
	const char *salt = end + 1;
	const char *dollar = strchr(salt, '$');
	if (!dollar)
		return -1;
	int n = b64_decode(salt, (size_t)(dollar - salt), s->salt, sizeof(s->salt));
	if (n <= 0)
		return -1;
	s->salt_len = (size_t)n;
	const char *sk = dollar + 1;
	const char *colon = strchr(sk, ':');
	if (!colon)
		return -1;
	uint8_t tmp[PROTO_SCRAM_MAX_SALT];
	if (b64_decode(sk, (size_t)(colon - sk), tmp, sizeof(tmp)) != PROTO_SCRAM_KEY_LEN)
		return -1;
	memcpy(s->stored_key, tmp, PROTO_SCRAM_KEY_LEN);
	if (b64_decode(colon + 1, strlen(colon + 1), tmp, sizeof(tmp)) != PROTO_SCRAM_KEY_LEN)
		return -1;
	memcpy(s->server_key, tmp, PROTO_SCRAM_KEY_LEN);
	return 0;
}

int proto_scram_secret_from_password(const char *password, const uint8_t *salt, size_t salt_len,
                                     int iterations, struct proto_scram_secret *s)
{
	uint8_t salted[PROTO_SCRAM_KEY_LEN];
	char *prepped = NULL;
	int ok;

	memset(s, 0, sizeof(*s));
	/* the keys are of the prepared password when it has a prepared form,
	 * else of its bytes as they are: PostgreSQL's rule, on both sides */
	if (proto_saslprep(password, &prepped) == PROTO_SASLPREP_OOM)
		return -1;
	if (prepped)
		password = prepped;
	size_t pwlen = strlen(password);
	if (salt_len == 0 || salt_len > PROTO_SCRAM_MAX_SALT || iterations < 1 ||
	    pwlen > (size_t)INT32_MAX)
		ok = 0;
	else
		ok = PKCS5_PBKDF2_HMAC(password, (int)pwlen, salt, (int)salt_len, iterations,
		                       EVP_sha256(), sizeof(salted), salted);
	if (prepped) {
		OPENSSL_cleanse(prepped, pwlen);
		free(prepped);
	}
	if (ok != 1)
		return -1;
	s->iterations = iterations;
	memcpy(s->salt, salt, salt_len);
	s->salt_len = salt_len;
	hmac(salted, sizeof(salted), "Client Key", 10, s->client_key);
	s->has_client_key = true;
	sha256(s->client_key, PROTO_SCRAM_KEY_LEN, s->stored_key);
	hmac(salted, sizeof(salted), "Server Key", 10, s->server_key);
	OPENSSL_cleanse(salted, sizeof(salted));
	return 0;
}

/*
 * Mock secrets. Each value is an HMAC under the process key of a label and
 * the user name; a NUL separates them, and no user name holds a NUL, so no
 * two inputs coincide.
 */
static int mock_value(const uint8_t key[PROTO_SCRAM_KEY_LEN], const char *label, const char *user,
                      uint8_t out[PROTO_SCRAM_KEY_LEN])
{
	size_t llen = strlen(label) + 1, ulen = strlen(user);
	char small[256];
	char *buf = llen + ulen <= sizeof(small) ? small : malloc(llen + ulen);
	int rc;

	if (!buf)
		return -1;
	memcpy(buf, label, llen);
	memcpy(buf + llen, user, ulen);
	rc = hmac(key, PROTO_SCRAM_KEY_LEN, buf, llen + ulen, out);
	if (buf != small)
		free(buf);
	return rc;
}

int proto_scram_mock_secret(const uint8_t key[PROTO_SCRAM_KEY_LEN], const char *user,
                            struct proto_scram_secret *out)
{
	uint8_t salt[PROTO_SCRAM_KEY_LEN];

	memset(out, 0, sizeof(*out));
	if (mock_value(key, "salt", user, salt) < 0 ||
	    mock_value(key, "stored key", user, out->stored_key) < 0 ||
	    mock_value(key, "server key", user, out->server_key) < 0) {
		memset(out, 0, sizeof(*out));
		return -1;
	}
	memcpy(out->salt, salt, PROTO_SCRAM_SALT_LEN);
	out->salt_len = PROTO_SCRAM_SALT_LEN;
	out->iterations = PROTO_SCRAM_DEFAULT_ITER;
	out->doomed = true;
	OPENSSL_cleanse(salt, sizeof(salt));
	return 0;
}

/*
 * A cursor over the comma-separated attributes of a SCRAM message. RFC 5802
 * fixes their order, so each step asks for the next one by name.
 */
struct attrs {
	const char *p;
	size_t n;
};

/* The next attribute, "<name>=<value>": its value in <*v>/<*vlen>. false
 * (and nothing consumed) if the next attribute is not <name>, or if a
 * comma after it ends the message (a trailing comma is malformed). */
static bool next_attr(struct attrs *a, char name, const char **v, size_t *vlen)
{
	if (a->n < 2 || a->p[0] != name || a->p[1] != '=')
		return false;
	const char *comma = memchr(a->p, ',', a->n);
	if (comma && comma == a->p + a->n - 1)
		return false;
	size_t len = comma ? (size_t)(comma - a->p) : a->n;
	*v = a->p + 2;
	*vlen = len - 2;
	a->p += len;
	a->n -= len;
	if (comma) {
		a->p++;
		a->n--;
	}
	return true;
}

/* Skip one attribute of any name (an extension); false at the end or on
 * something that is not "<letter>=". */
static bool skip_attr(struct attrs *a)
{
	const char *v;
	size_t vlen;
	char c = a->n > 0 ? a->p[0] : 0;

	if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
		return false;
	return next_attr(a, c, &v, &vlen);
}

static bool printable_nonce(const char *p, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
			return false;
	return true;
}

static int make_nonce(char *out, size_t outsz)
{
	uint8_t raw[18];

	if (proto_random(raw, sizeof(raw)) < 0)
		return -1;
	return b64_encode(raw, sizeof(raw), out, outsz) < 0 ? -1 : 0;
}

static void client_signature(const uint8_t stored_key[PROTO_SCRAM_KEY_LEN], const char *a,
                             const char *b, const char *c, size_t clen,
                             uint8_t out[PROTO_SCRAM_KEY_LEN], const uint8_t *server_key,
                             uint8_t server_sig[PROTO_SCRAM_KEY_LEN])
{
	/* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
	size_t alen = strlen(a), blen = strlen(b);
	char *msg = malloc(alen + blen + clen + 3);

	if (!msg) {
		memset(out, 0, PROTO_SCRAM_KEY_LEN);
		if (server_sig)
			memset(server_sig, 0, PROTO_SCRAM_KEY_LEN);
		return;
	}
	size_t n = 0;
	memcpy(msg + n, a, alen);
	n += alen;
	msg[n++] = ',';
	memcpy(msg + n, b, blen);
	n += blen;
	msg[n++] = ',';
	memcpy(msg + n, c, clen);
	n += clen;
	(void)hmac(stored_key, PROTO_SCRAM_KEY_LEN, msg, n, out);
	if (server_sig)
		(void)hmac(server_key, PROTO_SCRAM_KEY_LEN, msg, n, server_sig);
	free(msg);
}

static int scram_fail(struct proto_scram_server *st, const char *sqlstate, const char *msg,
                      const char **err)
{
	st->sqlstate = sqlstate;
	*err = msg;
	return -1;
}

/*
 * client-first-message = gs2-header client-first-bare
 * gs2-header = ("n" / "y" / "p=" cb-name) "," [ "a=" authzid ] ","
 * client-first-bare = [ "m=" ext "," ] "n=" saslname "," "r=" nonce ["," ext...]
 */
int proto_scram_server_first(struct proto_scram_server *st, const struct proto_scram_secret *secret,
                             const uint8_t *client_first, size_t len, char *out, size_t outsz,
                             size_t *outlen, const char **err)
{
	static const char malformed[] = "malformed SCRAM client-first message";
	const char *m = (const char *)client_first;

	memset(st, 0, sizeof(*st));
	st->secret = *secret;
	st->secret.has_client_key = false;
	st->doomed = secret->doomed;
	if (len == 0 || !m || memchr(m, 0, len))
		return scram_fail(st, "08P01", malformed, err);
	switch (m[0]) {
	case 'n':
		strcpy(st->cbind, "biws"); /* base64 of "n,," */
		break;
	case 'y':
		/* the client could bind but thinks we cannot: true, sluice offers no
		 * SCRAM-SHA-256-PLUS, so this is no downgrade */
		strcpy(st->cbind, "eSws"); /* base64 of "y,," */
		break;
	case 'p':
		return scram_fail(
		        st, "0A000",
		        "channel binding is not supported: sluice offers SCRAM-SHA-256 only", err);
	default:
		return scram_fail(st, "08P01", malformed, err);
	}
	if (len < 2 || m[1] != ',')
		return scram_fail(st, "08P01", malformed, err);
	if (len > 2 && m[2] == 'a')
		return scram_fail(st, "0A000",
		                  "client uses authorization identity, but it is not supported",
		                  err);
	if (len < 3 || m[2] != ',')
		return scram_fail(st, "08P01", malformed, err);
	const char *bare = m + 3;
	size_t bare_len = len - 3;
	if (bare_len + 1 > sizeof(st->client_first_bare))
		return scram_fail(st, "08P01", malformed, err);
	memcpy(st->client_first_bare, bare, bare_len);
	st->client_first_bare[bare_len] = 0;

	struct attrs a = {bare, bare_len};
	const char *v, *r;
	size_t vlen, rlen;
	if (next_attr(&a, 'm', &v, &vlen))
		return scram_fail(st, "0A000", "client requires an unsupported SCRAM extension",
		                  err);
	/* the name in n= is not used: the user is the one of the startup packet */
	if (!next_attr(&a, 'n', &v, &vlen))
		return scram_fail(st, "08P01", malformed, err);
	if (!next_attr(&a, 'r', &r, &rlen) || !printable_nonce(r, rlen) ||
	    rlen + 32 > sizeof(st->nonce))
		return scram_fail(st, "08P01", "malformed SCRAM nonce", err);
	while (a.n > 0)
		if (!skip_attr(&a))
			return scram_fail(st, "08P01", malformed, err);

	char snonce[40];
	if (make_nonce(snonce, sizeof(snonce)) < 0)
		return scram_fail(st, "08P01", "could not generate a nonce", err);
	memcpy(st->nonce, r, rlen);
	memcpy(st->nonce + rlen, snonce, strlen(snonce) + 1);
	char salt[PROTO_SCRAM_MAX_SALT * 2];
	if (secret->salt_len == 0 ||
	    b64_encode(secret->salt, secret->salt_len, salt, sizeof(salt)) < 0)
		return scram_fail(st, "08P01", "bad SCRAM salt", err);
	int n = snprintf(st->server_first, sizeof(st->server_first), "r=%s,s=%s,i=%d", st->nonce,
	                 salt, secret->iterations);
	if (n < 0 || (size_t)n >= sizeof(st->server_first) || (size_t)n + 1 > outsz)
		return scram_fail(st, "08P01", "SCRAM message too long", err);
	memcpy(out, st->server_first, (size_t)n + 1);
	*outlen = (size_t)n;
	st->step = 1;
	return 0;
}

/*
 * client-final-message = "c=" cbind "," "r=" nonce ["," ext...] "," "p=" proof
 */
int proto_scram_server_final(struct proto_scram_server *st, const uint8_t *client_final, size_t len,
                             char *out, size_t outsz, size_t *outlen, const char **err)
{
	static const char malformed[] = "malformed SCRAM client-final message";
	const char *m = (const char *)client_final;

	if (st->step != 1)
		return scram_fail(st, "08P01", "SCRAM exchange out of order", err);
	st->step = 2;
	if (len == 0 || !m || memchr(m, 0, len))
		return scram_fail(st, "08P01", malformed, err);

	struct attrs a = {m, len};
	const char *cb, *r, *proof_b64 = NULL;
	size_t clen, rlen, proof_b64_len = 0, without_len = 0;
	if (!next_attr(&a, 'c', &cb, &clen))
		return scram_fail(st, "08P01", malformed, err);
	/* the gs2 header of client-first, as sent: "biws" only after "n,,",
	 * "eSws" only after "y,," */
	if (clen != strlen(st->cbind) || memcmp(cb, st->cbind, clen) != 0)
		return scram_fail(
		        st, "08P01",
		        "unexpected SCRAM channel-binding attribute in client-final-message", err);
	if (!next_attr(&a, 'r', &r, &rlen))
		return scram_fail(st, "08P01", malformed, err);
	if (rlen != strlen(st->nonce) || memcmp(r, st->nonce, rlen) != 0)
		return scram_fail(st, "08P01", "SCRAM nonce does not match", err);
	/* extensions, then the proof, which must be last */
	while (a.n > 0) {
		const char *at = a.p;
		if (next_attr(&a, 'p', &proof_b64, &proof_b64_len)) {
			without_len = (size_t)(at - m) - 1; /* up to the comma before p= */
			break;
		}
		if (!skip_attr(&a))
			return scram_fail(st, "08P01", malformed, err);
	}
	if (!proof_b64 || a.n > 0)
		return scram_fail(st, "08P01", malformed, err);
	uint8_t proof[PROTO_SCRAM_MAX_SALT];
	if (b64_decode(proof_b64, proof_b64_len, proof, sizeof(proof)) != PROTO_SCRAM_KEY_LEN)
		return scram_fail(st, "08P01", "malformed SCRAM proof", err);

	uint8_t sig[PROTO_SCRAM_KEY_LEN], ssig[PROTO_SCRAM_KEY_LEN], key[PROTO_SCRAM_KEY_LEN],
	        stored[PROTO_SCRAM_KEY_LEN];
	client_signature(st->secret.stored_key, st->client_first_bare, st->server_first, m,
	                 without_len, sig, st->secret.server_key, ssig);
	for (int i = 0; i < PROTO_SCRAM_KEY_LEN; i++)
		key[i] = proof[i] ^ sig[i];
	sha256(key, sizeof(key), stored);
	/* a doomed exchange does the same work and compare, then fails */
	bool ok = proto_ct_equal(stored, st->secret.stored_key, PROTO_SCRAM_KEY_LEN);
	if (!ok || st->doomed) {
		OPENSSL_cleanse(key, sizeof(key));
		return scram_fail(st, "28P01", "password authentication failed", err);
	}
	memcpy(st->secret.client_key, key, sizeof(key));
	OPENSSL_cleanse(key, sizeof(key));
	st->secret.has_client_key = true;
	char v[64];
	if (b64_encode(ssig, sizeof(ssig), v, sizeof(v)) < 0)
		return scram_fail(st, "08P01", "SCRAM message too long", err);
	int n = snprintf(out, outsz, "v=%s", v);
	if (n < 0 || (size_t)n >= outsz)
		return scram_fail(st, "08P01", "SCRAM message too long", err);
	*outlen = (size_t)n;
	st->sqlstate = NULL;
	return 0;
}

int proto_scram_client_first(struct proto_scram_client *st, char *out, size_t outsz, size_t *outlen)
{
	memset(st, 0, sizeof(*st));
	if (make_nonce(st->client_nonce, sizeof(st->client_nonce)) < 0)
		return -1;
	snprintf(st->client_first_bare, sizeof(st->client_first_bare), "n=,r=%s", st->client_nonce);
	int n = snprintf(out, outsz, "n,,%s", st->client_first_bare);
	if (n < 0 || (size_t)n >= outsz)
		return -1;
	*outlen = (size_t)n;
	st->step = 1;
	return 0;
}

/*
 * server-first-message = [ "m=" ext "," ] "r=" nonce "," "s=" salt ","
 *                        "i=" count ["," ext...]
 */
int proto_scram_client_final(struct proto_scram_client *st, const char *password,
                             const struct proto_scram_secret *keys, const uint8_t *server_first,
                             size_t len, char *out, size_t outsz, size_t *outlen, const char **err)
{
	static const char malformed[] = "malformed SCRAM server-first message";
	const char *m = (const char *)server_first;
	char sf[512];

	if (st->step != 1) {
		*err = "SCRAM exchange out of order";
		return -1;
	}
	st->step = 2;
	if (len + 1 > sizeof(sf) || (len > 0 && memchr(m, 0, len))) {
		*err = malformed;
		return -1;
	}
	if (len > 0)
		memcpy(sf, m, len);
	sf[len] = 0;

	struct attrs a = {sf, len};
	const char *r, *s, *i, *ext;
	size_t rlen, slen, ilen, extlen;
	size_t cnlen = strlen(st->client_nonce);
	if (next_attr(&a, 'm', &ext, &extlen)) {
		*err = "server requires an unsupported SCRAM extension";
		return -1;
	}
	if (!next_attr(&a, 'r', &r, &rlen) || !next_attr(&a, 's', &s, &slen) ||
	    !next_attr(&a, 'i', &i, &ilen) || rlen <= cnlen ||
	    memcmp(r, st->client_nonce, cnlen) != 0 || !printable_nonce(r, rlen) || ilen == 0 ||
	    ilen > 9) {
		*err = malformed;
		return -1;
	}
	while (a.n > 0)
		if (!skip_attr(&a)) {
			*err = malformed;
			return -1;
		}
	long iter = 0;
	for (size_t k = 0; k < ilen; k++) {
		if (i[k] < '0' || i[k] > '9') {
			*err = malformed;
			return -1;
		}
		iter = iter * 10 + (i[k] - '0'); /* at most 9 digits: no overflow */
	}
	uint8_t salt[PROTO_SCRAM_MAX_SALT];
	int salt_len = b64_decode(s, slen, salt, sizeof(salt));
	if (iter < 1 || salt_len <= 0) {
		*err = malformed;
		return -1;
	}
	struct proto_scram_secret sec;
	bool keys_match = keys && keys->has_client_key && keys->iterations == iter &&
	                  keys->salt_len == (size_t)salt_len &&
	                  memcmp(keys->salt, salt, (size_t)salt_len) == 0;
	if (keys_match) {
		sec = *keys;
	} else if (password) {
		if (proto_scram_secret_from_password(password, salt, (size_t)salt_len, (int)iter,
		                                     &sec) < 0) {
			*err = "could not derive SCRAM keys";
			return -1;
		}
		st->derived = sec;
		st->has_derived = true;
	} else {
		*err = "no SCRAM keys matching the server's salt and iteration count";
		return -1;
	}
	char without[600];
	int wn = snprintf(without, sizeof(without), "c=biws,r=%.*s", (int)rlen, r);
	if (wn < 0 || (size_t)wn >= sizeof(without)) {
		OPENSSL_cleanse(&sec, sizeof(sec));
		*err = "SCRAM message too long";
		return -1;
	}
	uint8_t sig[PROTO_SCRAM_KEY_LEN], proof[PROTO_SCRAM_KEY_LEN];
	client_signature(sec.stored_key, st->client_first_bare, sf, without, (size_t)wn, sig,
	                 sec.server_key, st->server_signature);
	for (int k = 0; k < PROTO_SCRAM_KEY_LEN; k++)
		proof[k] = sec.client_key[k] ^ sig[k];
	OPENSSL_cleanse(&sec, sizeof(sec));
	char pb[64];
	if (b64_encode(proof, sizeof(proof), pb, sizeof(pb)) < 0) {
		*err = "SCRAM message too long";
		return -1;
	}
	int n = snprintf(out, outsz, "%s,p=%s", without, pb);
	if (n < 0 || (size_t)n >= outsz) {
		*err = "SCRAM message too long";
		return -1;
	}
	*outlen = (size_t)n;
	return 0;
}

/* server-final-message = ("e=" error / "v=" verifier) ["," ext...] */
int proto_scram_client_verify(struct proto_scram_client *st, const uint8_t *server_final,
                              size_t len, const char **err)
{
	static const char malformed[] = "malformed SCRAM server-final message";
	const char *m = (const char *)server_final;

	if (st->step != 2) {
		*err = "SCRAM exchange out of order";
		return -1;
	}
	st->step = 3;
	if (len == 0 || !m || memchr(m, 0, len)) {
		*err = malformed;
		return -1;
	}
	struct attrs a = {m, len};
	const char *v;
	size_t vlen;
	if (next_attr(&a, 'e', &v, &vlen)) {
		*err = "server rejected the SCRAM exchange";
		return -1;
	}
	uint8_t sig[PROTO_SCRAM_MAX_SALT];
	if (!next_attr(&a, 'v', &v, &vlen) ||
	    b64_decode(v, vlen, sig, sizeof(sig)) != PROTO_SCRAM_KEY_LEN) {
		*err = malformed;
		return -1;
	}
	while (a.n > 0)
		if (!skip_attr(&a)) {
			*err = malformed;
			return -1;
		}
	if (!proto_ct_equal(sig, st->server_signature, PROTO_SCRAM_KEY_LEN)) {
		*err = "server signature does not match: the server does not know the password";
		return -1;
	}
	return 0;
}

void proto_md5_password_hash(const char *user, const char *password, char out[36])
{
	memcpy(out, "md5", 3);
	md5_hex(password, strlen(password), user, strlen(user), out + 3);
}
