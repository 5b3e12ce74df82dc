/* MD5 and SCRAM-SHA-256 against known answers (RFC 7677) and each other;
 * the server side's checks of the gs2 header and of client-final, mock
 * secrets for unknown users, and the client side's parsing of what a
 * server sends. */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "protocol/proto.h"

Test(md5, known_answer)
{
	/* The plaintext and the stored-hash forms of a secret give the same
	 * response, and only the right password and salt verify. */
	const uint8_t salt[4] = {1, 2, 3, 4};
	char from_plain[36], from_hash[36], stored[36];
	const uint8_t zero[4] = {0};

	proto_md5_response("alice", "secret", salt, from_plain);
	cr_assert_eq(strlen(from_plain), 35);
	cr_assert_eq(strncmp(from_plain, "md5", 3), 0);

	/* the PostgreSQL-stored form: "md5" + md5hex("secret" "alice") */
	unsigned char d[16];
	unsigned int dl;
	EVP_Digest("secretalice", 11, d, &dl, EVP_md5(), NULL);
	strcpy(stored, "md5");
	for (int i = 0; i < 16; i++)
		sprintf(stored + 3 + 2 * i, "%02x", d[i]);
	cr_assert(proto_is_md5_secret(stored));
	proto_md5_response("alice", stored, salt, from_hash);
	cr_assert_str_eq(from_plain, from_hash);
	cr_assert(proto_md5_verify("alice", stored, salt, from_plain));
	cr_assert(proto_md5_verify("alice", "secret", salt, from_plain));
	cr_assert_not(proto_md5_verify("alice", "Secret", salt, from_plain));
	cr_assert_not(proto_md5_verify("alice", "secret", zero, from_plain));
	cr_assert_not(proto_md5_verify("alice", "secret", salt, "md5"));
}

Test(md5, rfc1321_vector)
{
	/* md5("") = d41d8cd98f00b204e9800998ecf8427e: with an empty password and
	 * user the inner hash is that, so the response is md5(inner + salt). */
	const uint8_t salt[4] = {'a', 'b', 'c', 'd'};
	char out[36];
	unsigned char d[16];
	unsigned int dl;
	char want[36] = "md5";

	proto_md5_response("", "", salt, out);
	EVP_Digest("d41d8cd98f00b204e9800998ecf8427eabcd", 36, d, &dl, EVP_md5(), NULL);
	for (int i = 0; i < 16; i++)
		sprintf(want + 3 + 2 * i, "%02x", d[i]);
	cr_assert_str_eq(out, want);
}

/* RFC 7677 section 3: user "user", password "pencil". */
static const char *rfc_salt_b64 = "W22ZaJ0SNY7soEsUEjb6gQ==";
static const char *rfc_client_first = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
static const char *rfc_server_first =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
static const char *rfc_client_final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                                      "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
static const char *rfc_server_final = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

static struct proto_scram_secret rfc_secret(void)
{
	uint8_t salt[32];
	int n = EVP_DecodeBlock(salt, (const unsigned char *)rfc_salt_b64, 24);
	struct proto_scram_secret s;
	cr_assert_eq(n, 18);
	cr_assert_eq(proto_scram_secret_from_password("pencil", salt, 16, 4096, &s), 0);
	return s;
}

/* Step 1 of the client side, with the RFC's nonce in place of a random one. */
static void rfc_client_first_step(struct proto_scram_client *st)
{
	char out[512];
	size_t outlen;

	cr_assert_eq(proto_scram_client_first(st, out, sizeof(out), &outlen), 0);
	strcpy(st->client_nonce, "rOprNGfwEbeRWgbNEkqO");
	strcpy(st->client_first_bare, "n=user,r=rOprNGfwEbeRWgbNEkqO");
}

Test(scram, rfc7677_client_side)
{
	struct proto_scram_client st;
	char out[512];
	size_t outlen;
	const char *err = NULL;

	rfc_client_first_step(&st);
	cr_assert_eq(
	        proto_scram_client_final(&st, "pencil", NULL, (const uint8_t *)rfc_server_first,
	                                 strlen(rfc_server_first), out, sizeof(out), &outlen, &err),
	        0, "%s", err ? err : "");
	cr_assert_str_eq(out, rfc_client_final);
	cr_assert_eq(outlen, strlen(rfc_client_final));
	cr_assert_eq(proto_scram_client_verify(&st, (const uint8_t *)rfc_server_final,
	                                       strlen(rfc_server_final), &err),
	             0);
}

Test(scram, rfc7677_client_side_with_keys)
{
	struct proto_scram_client st;
	struct proto_scram_secret keys = rfc_secret();
	char out[512];
	size_t outlen;
	const char *err = NULL;

	rfc_client_first_step(&st);
	cr_assert_eq(proto_scram_client_final(&st, NULL, &keys, (const uint8_t *)rfc_server_first,
	                                      strlen(rfc_server_first), out, sizeof(out), &outlen,
	                                      &err),
	             0);
	cr_assert_str_eq(out, rfc_client_final);
}

Test(scram, rfc7677_server_side_and_stored_verifier)
{
	struct proto_scram_secret sec = rfc_secret();
	struct proto_scram_server st;
	char out[512];
	size_t outlen;
	const char *err = NULL;

	cr_assert_eq(proto_scram_server_first(&st, &sec, (const uint8_t *)rfc_client_first,
	                                      strlen(rfc_client_first), out, sizeof(out), &outlen,
	                                      &err),
	             0);
	/* Replace our random server nonce with the RFC's to replay its exchange. */
	strcpy(st.nonce, "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
	strcpy(st.server_first, rfc_server_first);
	cr_assert_eq(proto_scram_server_final(&st, (const uint8_t *)rfc_client_final,
	                                      strlen(rfc_client_final), out, sizeof(out), &outlen,
	                                      &err),
	             0, "%s", err ? err : "");
	cr_assert_str_eq(out, rfc_server_final);
	cr_assert(st.secret.has_client_key);
	cr_assert(proto_ct_equal(st.secret.client_key, sec.client_key, 32));
}

Test(scram, wrong_proof_rejected)
{
	struct proto_scram_secret sec = rfc_secret();
	struct proto_scram_server st;
	char out[512], bad[256];
	size_t outlen;
	const char *err = NULL;

	cr_assert_eq(proto_scram_server_first(&st, &sec, (const uint8_t *)rfc_client_first,
	                                      strlen(rfc_client_first), out, sizeof(out), &outlen,
	                                      &err),
	             0);
	strcpy(st.nonce, "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
	strcpy(st.server_first, rfc_server_first);
	strcpy(bad, rfc_client_final);
	bad[strlen(bad) - 5] ^= 1; /* flip a bit of the proof */
	cr_assert_eq(proto_scram_server_final(&st, (const uint8_t *)bad, strlen(bad), out,
	                                      sizeof(out), &outlen, &err),
	             -1);
	cr_assert_not(st.secret.has_client_key);
}

Test(scram, channel_binding_refused)
{
	struct proto_scram_secret sec = rfc_secret();
	struct proto_scram_server st;
	char out[512];
	size_t outlen;
	const char *err = NULL;
	const char *cf = "p=tls-server-end-point,,n=,r=abc";

	cr_assert_eq(proto_scram_server_first(&st, &sec, (const uint8_t *)cf, strlen(cf), out,
	                                      sizeof(out), &outlen, &err),
	             -1);
	cr_assert_not_null(err);
}

Test(scram, parse_postgres_verifier)
{
	/* The verifier PostgreSQL stores for password "pencil" with the RFC salt. */
	struct proto_scram_secret want = rfc_secret(), got;
	char stored[64], server[64], v[256];

	EVP_EncodeBlock((unsigned char *)stored, want.stored_key, 32);
	EVP_EncodeBlock((unsigned char *)server, want.server_key, 32);
	snprintf(v, sizeof(v), "SCRAM-SHA-256$4096:%s$%s:%s", rfc_salt_b64, stored, server);
	cr_assert(proto_is_scram_secret(v));
	cr_assert_eq(proto_scram_parse_secret(v, &got), 0);
	cr_assert_eq(got.iterations, 4096);
	cr_assert_eq(got.salt_len, 16);
	cr_assert(proto_ct_equal(got.stored_key, want.stored_key, 32));
	cr_assert(proto_ct_equal(got.server_key, want.server_key, 32));
	cr_assert_not(got.has_client_key);
	cr_assert_eq(proto_scram_parse_secret("SCRAM-SHA-256$x:abc$def:ghi", &got), -1);
	cr_assert_eq(proto_scram_parse_secret("md5abc", &got), -1);
}

Test(scram, full_exchange_both_sides)
{
	uint8_t salt[16] = {9, 8, 7};
	struct proto_scram_secret sec;
	struct proto_scram_server sv;
	struct proto_scram_client cl;
	char a[512], b[512];
	size_t al, bl;
	const char *err = NULL;

	cr_assert_eq(proto_scram_secret_from_password("s3cret", salt, 16, 4096, &sec), 0);
	cr_assert_eq(proto_scram_client_first(&cl, a, sizeof(a), &al), 0);
	cr_assert_eq(proto_scram_server_first(&sv, &sec, (uint8_t *)a, al, b, sizeof(b), &bl, &err),
	             0);
	cr_assert_eq(proto_scram_client_final(&cl, "s3cret", NULL, (uint8_t *)b, bl, a, sizeof(a),
	                                      &al, &err),
	             0);
	cr_assert_eq(proto_scram_server_final(&sv, (uint8_t *)a, al, b, sizeof(b), &bl, &err), 0);
	cr_assert_eq(proto_scram_client_verify(&cl, (uint8_t *)b, bl, &err), 0);

	/* a different password fails at the server */
	cr_assert_eq(proto_scram_client_first(&cl, a, sizeof(a), &al), 0);
	cr_assert_eq(proto_scram_server_first(&sv, &sec, (uint8_t *)a, al, b, sizeof(b), &bl, &err),
	             0);
	cr_assert_eq(proto_scram_client_final(&cl, "wrong", NULL, (uint8_t *)b, bl, a, sizeof(a),
	                                      &al, &err),
	             0);
	cr_assert_eq(proto_scram_server_final(&sv, (uint8_t *)a, al, b, sizeof(b), &bl, &err), -1);
}

Test(scram, client_keeps_derived_keys_and_reuses_them)
{
	struct proto_scram_client st;
	struct proto_scram_secret derived;
	char out[512];
	size_t outlen;
	const char *err = NULL;

	/* with the password: the derived keys are handed back */
	rfc_client_first_step(&st);
	cr_assert_eq(
	        proto_scram_client_final(&st, "pencil", NULL, (const uint8_t *)rfc_server_first,
	                                 strlen(rfc_server_first), out, sizeof(out), &outlen, &err),
	        0);
	cr_assert(st.has_derived);
	derived = st.derived;

	/* keys that match the server's salt win over a (wrong) password */
	rfc_client_first_step(&st);
	cr_assert_eq(proto_scram_client_final(
	                     &st, "not-the-password", &derived, (const uint8_t *)rfc_server_first,
	                     strlen(rfc_server_first), out, sizeof(out), &outlen, &err),
	             0);
	cr_assert_not(st.has_derived, "the keys were used, nothing derived");
	cr_assert_str_eq(out, rfc_client_final);

	/* keys for another salt: the password is used instead */
	derived.salt[0] ^= 1;
	rfc_client_first_step(&st);
	cr_assert_eq(
	        proto_scram_client_final(&st, "pencil", &derived, (const uint8_t *)rfc_server_first,
	                                 strlen(rfc_server_first), out, sizeof(out), &outlen, &err),
	        0);
	cr_assert(st.has_derived);
	cr_assert_str_eq(out, rfc_client_final);
}

/* ---- the client proof, computed here from the RFC 5802 formulas, so the
 * server's checks can be tested with messages the client side never makes
 * (another gs2 header, another c=) ---- */

static void test_hmac(const uint8_t *key, size_t klen, const char *msg, size_t n, uint8_t out[32])
{
	unsigned int len = 32;
	cr_assert_not_null(
	        HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, n, out, &len));
}

/* "<without_proof>,p=<proof>" for <sec> (which must carry its ClientKey). */
static void client_final_for(const struct proto_scram_secret *sec, const char *client_first_bare,
                             const char *server_first, const char *without_proof, char *out,
                             size_t outsz)
{
	char auth[1024];
	uint8_t sig[32], proof[32];
	char b64[64];

	cr_assert(sec->has_client_key);
	int n = snprintf(auth, sizeof(auth), "%s,%s,%s", client_first_bare, server_first,
	                 without_proof);
	test_hmac(sec->stored_key, 32, auth, (size_t)n, sig);
	for (int i = 0; i < 32; i++)
		proof[i] = sec->client_key[i] ^ sig[i];
	EVP_EncodeBlock((unsigned char *)b64, proof, 32);
	snprintf(out, outsz, "%s,p=%s", without_proof, b64);
}

/* Run server_first on <client_first>; the combined nonce in <nonce>. */
static int server_first_of(struct proto_scram_server *st, const struct proto_scram_secret *sec,
                           const char *client_first, char *server_first, size_t sfsz,
                           const char **err)
{
	size_t outlen;

	*err = NULL;
	return proto_scram_server_first(st, sec, (const uint8_t *)client_first,
	                                strlen(client_first), server_first, sfsz, &outlen, err);
}

static int server_final_of(struct proto_scram_server *st, const char *client_final,
                           const char **err)
{
	char out[512];
	size_t outlen;

	*err = NULL;
	return proto_scram_server_final(st, (const uint8_t *)client_final, strlen(client_final),
	                                out, sizeof(out), &outlen, err);
}

static struct proto_scram_secret known_secret(void)
{
	const uint8_t salt[16] = {5, 4, 3, 2, 1};
	struct proto_scram_secret sec;

	cr_assert_eq(proto_scram_secret_from_password("pw", salt, 16, 4096, &sec), 0);
	return sec;
}

Test(scram_gs2, cbind_must_match_the_gs2_header)
{
	/* each (gs2 header, c=) pair with a proof that is right for its own
	 * message: only the matching pairs log in */
	const struct {
		const char *gs2;
		const char *c;
		bool ok;
	} cases[] = {
	        {"n,,", "biws", true},  {"y,,", "eSws", true},     {"n,,", "eSws", false},
	        {"y,,", "biws", false}, {"n,,", "cD10bHM", false}, {"n,,", "", false},
	};
	struct proto_scram_secret sec = known_secret();

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct proto_scram_server st;
		char cf[128], sf[512], without[512], final[600];
		const char *err;

		snprintf(cf, sizeof(cf), "%sn=,r=clientnonce", cases[i].gs2);
		cr_assert_eq(server_first_of(&st, &sec, cf, sf, sizeof(sf), &err), 0, "%s", err);
		snprintf(without, sizeof(without), "c=%s,r=%s", cases[i].c, st.nonce);
		client_final_for(&sec, "n=,r=clientnonce", sf, without, final, sizeof(final));
		int rc = server_final_of(&st, final, &err);
		cr_assert_eq(rc, cases[i].ok ? 0 : -1, "gs2 %s c=%s: %s", cases[i].gs2, cases[i].c,
		             err ? err : "ok");
		if (!cases[i].ok) {
			cr_assert_str_eq(st.sqlstate, "08P01");
			cr_assert_not(st.secret.has_client_key);
		}
	}
}

Test(scram_gs2, authzid_refused_0A000)
{
	struct proto_scram_secret sec = known_secret();
	struct proto_scram_server st;
	char sf[512];
	const char *err;

	cr_assert_eq(server_first_of(&st, &sec, "n,a=bob,n=,r=abc", sf, sizeof(sf), &err), -1);
	cr_assert_str_eq(st.sqlstate, "0A000");
	cr_assert_str_eq(err, "client uses authorization identity, but it is not supported");
	cr_assert_eq(server_first_of(&st, &sec, "y,a=,n=,r=abc", sf, sizeof(sf), &err), -1);
	cr_assert_str_eq(st.sqlstate, "0A000");
}

Test(scram_gs2, channel_binding_and_extensions_refused)
{
	struct proto_scram_secret sec = known_secret();
	struct proto_scram_server st;
	char sf[512];
	const char *err;

	cr_assert_eq(server_first_of(&st, &sec, "p=tls-server-end-point,,n=,r=abc", sf, sizeof(sf),
	                             &err),
	             -1);
	cr_assert_str_eq(st.sqlstate, "0A000");
	cr_assert_not_null(err);
	/* a mandatory extension */
	cr_assert_eq(server_first_of(&st, &sec, "n,,m=ext,n=,r=abc", sf, sizeof(sf), &err), -1);
	cr_assert_str_eq(st.sqlstate, "0A000");
	/* malformed gs2 headers and bare parts */
	const char *bad[] = {"x,,n=,r=abc", "n,n=,r=abc",   "n",
	                     "n,",          "n,,r=abc",     "n,,n=,x=1,r=abc",
	                     "n,,n=,r=",    "n,,n=,r=abc,", "n,,n=,r=a b"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(server_first_of(&st, &sec, bad[i], sf, sizeof(sf), &err), -1, "%s",
		             bad[i]);
		cr_assert_str_eq(st.sqlstate, "08P01", "%s", bad[i]);
	}
	/* an optional extension after the nonce is allowed */
	cr_assert_eq(server_first_of(&st, &sec, "n,,n=,r=abc,x=1", sf, sizeof(sf), &err), 0);
}

Test(scram_gs2, client_final_attribute_order)
{
	struct proto_scram_secret sec = known_secret();
	struct proto_scram_server st;
	char sf[512], without[512], final[600];
	const char *err;

	/* r= before c=: refused even with a proof right for that text */
	cr_assert_eq(server_first_of(&st, &sec, "n,,n=,r=cn", sf, sizeof(sf), &err), 0);
	snprintf(without, sizeof(without), "r=%s,c=biws", st.nonce);
	client_final_for(&sec, "n=,r=cn", sf, without, final, sizeof(final));
	cr_assert_eq(server_final_of(&st, final, &err), -1);
	cr_assert_str_eq(st.sqlstate, "08P01");

	/* an extension between the nonce and the proof is fine */
	cr_assert_eq(server_first_of(&st, &sec, "n,,n=,r=cn", sf, sizeof(sf), &err), 0);
	snprintf(without, sizeof(without), "c=biws,r=%s,x=ext", st.nonce);
	client_final_for(&sec, "n=,r=cn", sf, without, final, sizeof(final));
	cr_assert_eq(server_final_of(&st, final, &err), 0, "%s", err ? err : "");

	/* something after the proof */
	cr_assert_eq(server_first_of(&st, &sec, "n,,n=,r=cn", sf, sizeof(sf), &err), 0);
	snprintf(without, sizeof(without), "c=biws,r=%s", st.nonce);
	client_final_for(&sec, "n=,r=cn", sf, without, final, sizeof(final));
	strcat(final, ",x=1");
	cr_assert_eq(server_final_of(&st, final, &err), -1);

	/* a proof that is not strict base64 */
	cr_assert_eq(server_first_of(&st, &sec, "n,,n=,r=cn", sf, sizeof(sf), &err), 0);
	snprintf(final, sizeof(final), "c=biws,r=%s,p=%s", st.nonce,
	         "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmm=z7AndVQ=");
	cr_assert_eq(server_final_of(&st, final, &err), -1);
	cr_assert_str_eq(st.sqlstate, "08P01");
}

Test(scram_gs2, wrong_proof_is_28P01)
{
	struct proto_scram_secret sec = known_secret(), other;
	const uint8_t salt[16] = {5, 4, 3, 2, 1};
	struct proto_scram_server st;
	char sf[512], without[512], final[600];
	const char *err;

	cr_assert_eq(proto_scram_secret_from_password("not-pw", salt, 16, 4096, &other), 0);
	cr_assert_eq(server_first_of(&st, &sec, "n,,n=,r=cn", sf, sizeof(sf), &err), 0);
	snprintf(without, sizeof(without), "c=biws,r=%s", st.nonce);
	client_final_for(&other, "n=,r=cn", sf, without, final, sizeof(final));
	cr_assert_eq(server_final_of(&st, final, &err), -1);
	cr_assert_str_eq(st.sqlstate, "28P01");
	cr_assert_str_eq(err, "password authentication failed");
}

/* ---- mock secrets for unknown users ---- */

static const uint8_t mock_key[32] = {0x5e, 0xc7, 0xe7, 1, 2, 3, 4, 5, 6, 7, 8, 9};

Test(scram_mock, salt_stable_per_user_and_secret_per_process)
{
	uint8_t other_key[32];
	struct proto_scram_secret a1, a2, b, a_other;

	memcpy(other_key, mock_key, 32);
	other_key[31] ^= 1;
	cr_assert_eq(proto_scram_mock_secret(mock_key, "alice", &a1), 0);
	cr_assert_eq(proto_scram_mock_secret(mock_key, "alice", &a2), 0);
	cr_assert_eq(proto_scram_mock_secret(mock_key, "bob", &b), 0);
	cr_assert_eq(proto_scram_mock_secret(other_key, "alice", &a_other), 0);
	cr_assert_eq(a1.salt_len, PROTO_SCRAM_SALT_LEN);
	cr_assert_eq(a1.salt_len, 16, "as PostgreSQL's and sluice's own salts");
	cr_assert_eq(a1.iterations, PROTO_SCRAM_DEFAULT_ITER);
	cr_assert(a1.doomed);
	cr_assert_not(a1.has_client_key);
	cr_assert_arr_eq(a1.salt, a2.salt, 16, "the same name gets the same salt");
	cr_assert_arr_eq(a1.stored_key, a2.stored_key, 32);
	cr_assert_arr_neq(a1.salt, b.salt, 16, "another name, another salt");
	cr_assert_arr_neq(a1.salt, a_other.salt, 16, "another process key, another salt");

	/* the salt is HMAC-SHA-256 under the key of the label "salt", a NUL and
	 * the name, cut to 16 bytes */
	uint8_t want[32];
	test_hmac(mock_key, 32, "salt\0alice", 10, want);
	cr_assert_arr_eq(a1.salt, want, 16);
	/* and unrelated to the stored keys */
	cr_assert_arr_neq(a1.stored_key, want, 32);
	cr_assert_arr_neq(a1.stored_key, a1.server_key, 32);
}

Test(scram_mock, server_first_looks_like_a_real_users)
{
	/* the salt in server-first has the form of a real 16-byte one: 24
	 * base64 chars with "==", as in a verifier sluice derives */
	struct proto_scram_secret mock, real = known_secret();
	struct proto_scram_server st;
	char sf_mock[512], sf_real[512];
	const char *err;

	cr_assert_eq(proto_scram_mock_secret(mock_key, "nobody", &mock), 0);
	cr_assert_eq(server_first_of(&st, &mock, "n,,n=,r=cn", sf_mock, sizeof(sf_mock), &err), 0);
	cr_assert(st.doomed);
	cr_assert_eq(server_first_of(&st, &real, "n,,n=,r=cn", sf_real, sizeof(sf_real), &err), 0);
	cr_assert_not(st.doomed);
	const char *sm = strstr(sf_mock, ",s="), *sr = strstr(sf_real, ",s=");
	cr_assert_not_null(sm);
	cr_assert_not_null(sr);
	const char *em = strstr(sm, ",i="), *er = strstr(sr, ",i=");
	cr_assert_eq(em - sm, er - sr, "salt lengths differ: %s / %s", sf_mock, sf_real);
	cr_assert_eq(em - sm - 3, 24);
	cr_assert_eq(em[-1], '=');
	cr_assert_eq(em[-2], '=');
	cr_assert_str_eq(em, ",i=4096");
	cr_assert_str_eq(er, ",i=4096");
}

Test(scram_mock, doomed_exchange_always_fails_like_a_wrong_password)
{
	/* a client that runs the whole exchange against a mock secret, with any
	 * password, fails at the proof with the error of a wrong password */
	struct proto_scram_secret mock;
	struct proto_scram_server sv;
	struct proto_scram_client cl;
	char a[512], b[512];
	size_t al, bl;
	const char *err = NULL;

	cr_assert_eq(proto_scram_mock_secret(mock_key, "ghost", &mock), 0);
	cr_assert_eq(proto_scram_client_first(&cl, a, sizeof(a), &al), 0);
	cr_assert_eq(
	        proto_scram_server_first(&sv, &mock, (uint8_t *)a, al, b, sizeof(b), &bl, &err), 0);
	cr_assert_eq(proto_scram_client_final(&cl, "guess", NULL, (uint8_t *)b, bl, a, sizeof(a),
	                                      &al, &err),
	             0);
	cr_assert_eq(proto_scram_server_final(&sv, (uint8_t *)a, al, b, sizeof(b), &bl, &err), -1);
	cr_assert_str_eq(sv.sqlstate, "28P01");
	cr_assert_str_eq(err, "password authentication failed");
	cr_assert_not(sv.secret.has_client_key);
}

Test(scram_mock, doomed_flag_fails_even_a_right_proof)
{
	/* doomed set by the caller after step 1 on a real secret: the right
	 * password still fails, so doomed does not depend on the keys */
	struct proto_scram_secret sec = known_secret();
	struct proto_scram_server st;
	char sf[512], without[512], final[600];
	const char *err;

	cr_assert_eq(server_first_of(&st, &sec, "n,,n=,r=cn", sf, sizeof(sf), &err), 0);
	snprintf(without, sizeof(without), "c=biws,r=%s", st.nonce);
	client_final_for(&sec, "n=,r=cn", sf, without, final, sizeof(final));
	st.doomed = true;
	cr_assert_eq(server_final_of(&st, final, &err), -1);
	cr_assert_str_eq(st.sqlstate, "28P01");
	cr_assert_not(st.secret.has_client_key);

	/* the same without doomed logs in: the message itself was right */
	cr_assert_eq(server_first_of(&st, &sec, "n,,n=,r=cn", sf, sizeof(sf), &err), 0);
	snprintf(without, sizeof(without), "c=biws,r=%s", st.nonce);
	client_final_for(&sec, "n=,r=cn", sf, without, final, sizeof(final));
	cr_assert_eq(server_final_of(&st, final, &err), 0, "%s", err ? err : "");
}

Test(scram_mock, costs_microseconds_not_pbkdf2)
{
	/* 2000 mock secrets with 9 KB names in well under a second; a single
	 * PBKDF2 at 4096 rounds costs milliseconds, 2000 of them seconds */
	static char name[9000];
	struct proto_scram_secret m;
	struct timespec t0, t1;

	memset(name, 'u', sizeof(name) - 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 2000; i++) {
		name[i % 8000] = (char)('a' + i % 26);
		cr_assert_eq(proto_scram_mock_secret(mock_key, name, &m), 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	cr_assert_lt(s, 0.5, "2000 mock secrets took %.3f s", s);
}

/* ---- the client side parses what an untrusted server sends ---- */

static int client_final_from(const char *server_first, const struct proto_scram_secret *keys,
                             const char **err)
{
	struct proto_scram_client st;
	char out[512];
	size_t outlen;

	rfc_client_first_step(&st);
	*err = NULL;
	return proto_scram_client_final(&st, NULL, keys, (const uint8_t *)server_first,
	                                strlen(server_first), out, sizeof(out), &outlen, err);
}

Test(scram_client, strict_server_first)
{
	struct proto_scram_secret keys = rfc_secret();
	const char *err;
	const char *n = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
	char m[512];

	/* as in the RFC, and with an extension after the count */
	cr_assert_eq(client_final_from(rfc_server_first, &keys, &err), 0);
	snprintf(m, sizeof(m), "%s,x=ext", rfc_server_first);
	cr_assert_eq(client_final_from(m, &keys, &err), 0, "%s", err ? err : "");

	const char *bad[] = {
	        "m=ext,r=%s,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", /* mandatory extension */
	        "s=W22ZaJ0SNY7soEsUEjb6gQ==,r=%s,i=4096",       /* order */
	        "r=%s,s=W22ZaJ0SNY7soEsUEjb6g!==,i=4096",       /* salt not base64 */
	        "r=%s,s= W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",      /* salt with a space */
	        "r=%s,s=W22ZaJ0SNY7soEsU=jb6gQ==,i=4096",       /* padding inside */
	        "r=%s,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=40x6",       /* count not a number */
	        "r=%s,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",          /* count zero */
	        "r=%s,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1",         /* negative */
	        "r=%s,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,",      /* trailing comma */
	        "r=%s,s=,i=4096",                               /* empty salt */
	        "r=%s,s=W22ZaJ0SNY7soEsUEjb6gQ==",              /* no count */
	};
	snprintf(m, sizeof(m), "m=ext,%s", rfc_server_first);
	cr_assert_eq(client_final_from(m, &keys, &err), -1);
	cr_assert_str_eq(err, "server requires an unsupported SCRAM extension");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* "%s" in each case stands for the server nonce */
		const char *at = strstr(bad[i], "%s");
		cr_assert_not_null(at);
		snprintf(m, sizeof(m), "%.*s%s%s", (int)(at - bad[i]), bad[i], n, at + 2);
		cr_assert_eq(client_final_from(m, &keys, &err), -1, "accepted %s", m);
		cr_assert_not_null(err);
	}
	/* a nonce that does not extend ours, or only repeats it */
	cr_assert_eq(
	        client_final_from("r=XOprNGfwEbeRWgbNEkqO%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	                          &keys, &err),
	        -1);
	cr_assert_eq(client_final_from("r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	                               &keys, &err),
	             -1);
}

Test(scram_client, strict_server_final)
{
	const char *err;
	const char *bad[] = {"e=invalid-proof",
	                     "v=", "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4",
	                     "x=1,v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", ""};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct proto_scram_client st;
		char out[512];
		size_t outlen;

		rfc_client_first_step(&st);
		cr_assert_eq(proto_scram_client_final(
		                     &st, "pencil", NULL, (const uint8_t *)rfc_server_first,
		                     strlen(rfc_server_first), out, sizeof(out), &outlen, &err),
		             0);
		err = NULL;
		cr_assert_eq(proto_scram_client_verify(&st, (const uint8_t *)bad[i], strlen(bad[i]),
		                                       &err),
		             -1, "accepted %s", bad[i]);
		cr_assert_not_null(err);
	}
}

Test(scram, verifier_salt_must_be_strict_base64)
{
	struct proto_scram_secret want = rfc_secret(), got;
	char stored[64], server[64], v[256];

	EVP_EncodeBlock((unsigned char *)stored, want.stored_key, 32);
	EVP_EncodeBlock((unsigned char *)server, want.server_key, 32);
	snprintf(v, sizeof(v), "SCRAM-SHA-256$4096:%s$%s:%s", "W22ZaJ0SNY7s=EsUEjb6gQ==", stored,
	         server);
	cr_assert_eq(proto_scram_parse_secret(v, &got), -1);
	snprintf(v, sizeof(v), "SCRAM-SHA-256$4096:%s$%s:%s", "W22ZaJ0SNY7soEsUEjb6gQ==", stored,
	         server);
	cr_assert_eq(proto_scram_parse_secret(v, &got), 0);
	cr_assert_arr_eq(got.salt, want.salt, 16);
}
