/* MD5 and SCRAM-SHA-256 against known answers (RFC 7677) and each other. */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <string.h>

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
