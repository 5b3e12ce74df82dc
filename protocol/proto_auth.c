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

static int b64_encode(const uint8_t *in, size_t n, char *out, size_t outsz)
{
	if (((n + 2) / 3) * 4 + 1 > outsz)
		return -1;
	return EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* Decode standard base64 of <n> chars; returns the decoded length or -1. */
static int b64_decode(const char *in, size_t n, uint8_t *out, size_t outsz)
{
	if (n == 0 || n % 4 != 0 || (n / 4) * 3 > outsz)
		return -1;
	int len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
	if (len < 0)
		return -1;
	if (in[n - 1] == '=')
		len--;
	if (in[n - 2] == '=')
		len--;
	return len;
}

static void hmac(const uint8_t *key, size_t klen, const void *data, size_t n,
                 uint8_t out[PROTO_SCRAM_KEY_LEN])
{
	unsigned int len = PROTO_SCRAM_KEY_LEN;
	HMAC(EVP_sha256(), key, (int)klen, data, n, out, &len);
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

	memset(s, 0, sizeof(*s));
	if (salt_len == 0 || salt_len > PROTO_SCRAM_MAX_SALT || iterations < 1)
		return -1;
	if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, iterations,
	                      EVP_sha256(), sizeof(salted), salted) != 1)
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

/* Value of attribute <name> ("r", "s", ...) in a comma-separated SCRAM
 * message, as a pointer and a length; NULL if absent. */
static const char *scram_attr(const char *msg, size_t n, char name, size_t *vlen)
{
	size_t i = 0;

	while (i < n) {
		size_t j = i;
		while (j < n && msg[j] != ',')
			j++;
		if (j - i >= 2 && msg[i] == name && msg[i + 1] == '=') {
			*vlen = j - i - 2;
			return msg + i + 2;
		}
		i = j + 1;
	}
	return NULL;
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
	hmac(stored_key, PROTO_SCRAM_KEY_LEN, msg, n, out);
	if (server_sig)
		hmac(server_key, PROTO_SCRAM_KEY_LEN, msg, n, server_sig);
	free(msg);
}

int proto_scram_server_first(struct proto_scram_server *st, const struct proto_scram_secret *secret,
                             const uint8_t *client_first, size_t len, char *out, size_t outsz,
                             size_t *outlen, const char **err)
{
	const char *m = (const char *)client_first;

	memset(st, 0, sizeof(*st));
	st->secret = *secret;
	st->secret.has_client_key = false;
	/* gs2-header: ("n" / "y" / "p=...") "," [authzid] "," */
	if (len < 3 || (m[0] != 'n' && m[0] != 'y')) {
		*err = m && len > 0 && m[0] == 'p' ? "channel binding is not supported"
		                                   : "malformed SCRAM client-first message";
		return -1;
	}
	if (m[1] != ',') {
		*err = "malformed SCRAM client-first message";
		return -1;
	}
	const char *comma = memchr(m + 2, ',', len - 2);
	if (!comma) {
		*err = "malformed SCRAM client-first message";
		return -1;
	}
	const char *bare = comma + 1;
	size_t bare_len = len - (size_t)(bare - m);
	if (bare_len + 1 > sizeof(st->client_first_bare) || memchr(bare, 0, bare_len)) {
		*err = "malformed SCRAM client-first message";
		return -1;
	}
	memcpy(st->client_first_bare, bare, bare_len);
	st->client_first_bare[bare_len] = 0;
	if (bare_len < 2 || bare[0] != 'n' || bare[1] != '=') {
		*err = "malformed SCRAM client-first message";
		return -1;
	}
	size_t rlen;
	const char *r = scram_attr(bare, bare_len, 'r', &rlen);
	if (!r || !printable_nonce(r, rlen) || rlen + 32 > sizeof(st->nonce)) {
		*err = "malformed SCRAM nonce";
		return -1;
	}
	char snonce[40];
	if (make_nonce(snonce, sizeof(snonce)) < 0) {
		*err = "could not generate a nonce";
		return -1;
	}
	snprintf(st->nonce, sizeof(st->nonce), "%.*s%s", (int)rlen, r, snonce);
	char salt[PROTO_SCRAM_MAX_SALT * 2];
	if (b64_encode(secret->salt, secret->salt_len, salt, sizeof(salt)) < 0) {
		*err = "bad SCRAM salt";
		return -1;
	}
	int n = snprintf(st->server_first, sizeof(st->server_first), "r=%s,s=%s,i=%d", st->nonce,
	                 salt, secret->iterations);
	if (n < 0 || (size_t)n >= sizeof(st->server_first) || (size_t)n + 1 > outsz) {
		*err = "SCRAM message too long";
		return -1;
	}
	memcpy(out, st->server_first, (size_t)n + 1);
	*outlen = (size_t)n;
	st->step = 1;
	return 0;
}

int proto_scram_server_final(struct proto_scram_server *st, const uint8_t *client_final, size_t len,
                             char *out, size_t outsz, size_t *outlen, const char **err)
{
	const char *m = (const char *)client_final;

	if (st->step != 1) {
		*err = "SCRAM exchange out of order";
		return -1;
	}
	st->step = 2;
	/* The proof is the last attribute: ",p=<base64>". */
	const char *p = NULL;
	for (size_t i = len; i >= 3; i--) {
		if (m[i - 3] == ',' && m[i - 2] == 'p' && m[i - 1] == '=') {
			p = m + i - 3;
			break;
		}
	}
	if (!p || memchr(m, 0, len)) {
		*err = "malformed SCRAM client-final message";
		return -1;
	}
	size_t without_len = (size_t)(p - m);
	size_t clen, rlen;
	const char *cb = scram_attr(m, without_len, 'c', &clen);
	const char *r = scram_attr(m, without_len, 'r', &rlen);
	if (!cb || !((clen == 4 && (memcmp(cb, "biws", 4) == 0 || memcmp(cb, "eSws", 4) == 0)))) {
		*err = "unexpected SCRAM channel binding";
		return -1;
	}
	if (!r || rlen != strlen(st->nonce) || memcmp(r, st->nonce, rlen) != 0) {
		*err = "SCRAM nonce does not match";
		return -1;
	}
	const char *proof_b64 = p + 3;
	size_t proof_b64_len = len - without_len - 3;
	uint8_t proof[PROTO_SCRAM_MAX_SALT];
	if (b64_decode(proof_b64, proof_b64_len, proof, sizeof(proof)) != PROTO_SCRAM_KEY_LEN) {
		*err = "malformed SCRAM proof";
		return -1;
	}
	uint8_t sig[PROTO_SCRAM_KEY_LEN], ssig[PROTO_SCRAM_KEY_LEN], key[PROTO_SCRAM_KEY_LEN],
	        stored[PROTO_SCRAM_KEY_LEN];
	client_signature(st->secret.stored_key, st->client_first_bare, st->server_first, m,
	                 without_len, sig, st->secret.server_key, ssig);
	for (int i = 0; i < PROTO_SCRAM_KEY_LEN; i++)
		key[i] = proof[i] ^ sig[i];
	sha256(key, sizeof(key), stored);
	if (!proto_ct_equal(stored, st->secret.stored_key, PROTO_SCRAM_KEY_LEN)) {
		*err = "password authentication failed";
		return -1;
	}
	memcpy(st->secret.client_key, key, sizeof(key));
	st->secret.has_client_key = true;
	char v[64];
	if (b64_encode(ssig, sizeof(ssig), v, sizeof(v)) < 0) {
		*err = "SCRAM message too long";
		return -1;
	}
	int n = snprintf(out, outsz, "v=%s", v);
	if (n < 0 || (size_t)n >= outsz) {
		*err = "SCRAM message too long";
		return -1;
	}
	*outlen = (size_t)n;
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

int proto_scram_client_final(struct proto_scram_client *st, const char *password,
                             const struct proto_scram_secret *keys, const uint8_t *server_first,
                             size_t len, char *out, size_t outsz, size_t *outlen, const char **err)
{
	const char *m = (const char *)server_first;
	char sf[512];

	if (st->step != 1) {
		*err = "SCRAM exchange out of order";
		return -1;
	}
	st->step = 2;
	if (len + 1 > sizeof(sf) || memchr(m, 0, len)) {
		*err = "malformed SCRAM server-first message";
		return -1;
	}
	memcpy(sf, m, len);
	sf[len] = 0;
	size_t rlen, slen, ilen;
	const char *r = scram_attr(sf, len, 'r', &rlen);
	const char *s = scram_attr(sf, len, 's', &slen);
	const char *i = scram_attr(sf, len, 'i', &ilen);
	size_t cnlen = strlen(st->client_nonce);
	if (!r || !s || !i || rlen <= cnlen || memcmp(r, st->client_nonce, cnlen) != 0 ||
	    !printable_nonce(r, rlen) || ilen == 0 || ilen > 9) {
		*err = "malformed SCRAM server-first message";
		return -1;
	}
	char ibuf[10];
	memcpy(ibuf, i, ilen);
	ibuf[ilen] = 0;
	char *end;
	long iter = strtol(ibuf, &end, 10);
	uint8_t salt[PROTO_SCRAM_MAX_SALT];
	int salt_len = b64_decode(s, slen, salt, sizeof(salt));
	if (*end || iter < 1 || salt_len <= 0) {
		*err = "malformed SCRAM server-first message";
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
	char without[300];
	int wn = snprintf(without, sizeof(without), "c=biws,r=%.*s", (int)rlen, r);
	if (wn < 0 || (size_t)wn >= sizeof(without)) {
		*err = "SCRAM message too long";
		return -1;
	}
	uint8_t sig[PROTO_SCRAM_KEY_LEN], proof[PROTO_SCRAM_KEY_LEN];
	client_signature(sec.stored_key, st->client_first_bare, sf, without, (size_t)wn, sig,
	                 sec.server_key, st->server_signature);
	for (int k = 0; k < PROTO_SCRAM_KEY_LEN; k++)
		proof[k] = sec.client_key[k] ^ sig[k];
	char pb[64];
	if (b64_encode(proof, sizeof(proof), pb, sizeof(pb)) < 0) {
		*err = "SCRAM message too long";
		return -1;
	}
	int n = snprintf(out, outsz, "%s,p=%s", without, pb);
	OPENSSL_cleanse(&sec, sizeof(sec));
	if (n < 0 || (size_t)n >= outsz) {
		*err = "SCRAM message too long";
		return -1;
	}
	*outlen = (size_t)n;
	return 0;
}

int proto_scram_client_verify(struct proto_scram_client *st, const uint8_t *server_final,
                              size_t len, const char **err)
{
	const char *m = (const char *)server_final;
	size_t vlen;

	if (st->step != 2) {
		*err = "SCRAM exchange out of order";
		return -1;
	}
	st->step = 3;
	if (len >= 2 && m[0] == 'e' && m[1] == '=') {
		*err = "server rejected the SCRAM exchange";
		return -1;
	}
	const char *v = scram_attr(m, len, 'v', &vlen);
	uint8_t sig[PROTO_SCRAM_MAX_SALT];
	if (!v || b64_decode(v, vlen, sig, sizeof(sig)) != PROTO_SCRAM_KEY_LEN) {
		*err = "malformed SCRAM server-final message";
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
