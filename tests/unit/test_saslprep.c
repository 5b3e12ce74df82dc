/* SASLprep: RFC 4013's own examples, PostgreSQL's readings where it
 * departs from the RFC (ASCII passes unchecked, checks on the mapped
 * string), and the SCRAM keys derived from a password that needs it. */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/proto.h"

static void prep_is(const char *in, const char *want)
{
	char *out = NULL;
	int rc = proto_saslprep(in, &out);

	cr_assert_eq(rc, PROTO_SASLPREP_OK, "saslprep(\"%s\") = %d", in, rc);
	cr_assert_str_eq(out, want);
	free(out);
}

static void prep_fails(const char *in, int want)
{
	char *out = (char *)1;
	int rc = proto_saslprep(in, &out);

	cr_assert_eq(rc, want, "saslprep(\"%s\") = %d, want %d", in, rc, want);
	cr_assert_null(out);
}

Test(saslprep, rfc4013_examples)
{
	prep_is("I\xC2\xAD"
	        "X",
	        "IX");                 /* SOFT HYPHEN mapped to nothing */
	prep_is("user", "user");       /* no transformation */
	prep_is("USER", "USER");       /* case preserved, will not match #2 */
	prep_is("\xC2\xAA", "a");      /* U+00AA output is NFKC, input in ISO 8859-1 */
	prep_is("\xE2\x85\xA8", "IX"); /* U+2168 ROMAN NUMERAL NINE: NFKC */
	prep_fails("\xD8\xA7"
	           "1",
	           PROTO_SASLPREP_PROHIBITED); /* U+0627 then "1": bidi */
}

Test(saslprep, ascii_passes_unchecked_as_postgresql)
{
	/* RFC 4013 refuses U+0007; PostgreSQL uses any ASCII password as it
	 * is, and so must sluice to derive the same keys */
	prep_is("\x07", "\x07");
	prep_is("pass word\t", "pass word\t");
	/* with a non-ASCII character the string is checked, control included */
	prep_fails("\x07\xC3\xA9", PROTO_SASLPREP_PROHIBITED);
}

Test(saslprep, mapping)
{
	prep_is("IX-\xE2\x85\xA8", "IX-IX");
	prep_is("a\xC2\xA0"
	        "b",
	        "a b"); /* NO-BREAK SPACE: C.1.2 to space */
	prep_is("a\xE2\x80\x8B"
	        "b",
	        "a b"); /* ZERO WIDTH SPACE is C.1.2 first */
	prep_is("a\xE2\x81\xA0"
	        "b",
	        "ab");                    /* WORD JOINER: B.1 only */
	prep_is("\xEF\xAC\x81", "fi");    /* U+FB01 LATIN SMALL LIGATURE FI */
	prep_is("e\xCC\x81", "\xC3\xA9"); /* e + combining acute composes */
	/* a password that maps to nothing is refused (PostgreSQL: empty) */
	prep_fails("\xC2\xAD", PROTO_SASLPREP_PROHIBITED);
}

Test(saslprep, prohibited)
{
	prep_fails("a\xEE\x80\x80", PROTO_SASLPREP_PROHIBITED); /* U+E000 private use */
	prep_fails("a\xEF\xBF\xBE", PROTO_SASLPREP_PROHIBITED); /* U+FFFE non-character */
	prep_fails("\xC2\x85"
	           "a",
	           PROTO_SASLPREP_PROHIBITED);                      /* U+0085 C.2.2 control */
	prep_fails("a\xE2\x80\x8E", PROTO_SASLPREP_PROHIBITED);     /* U+200E LRM, C.8 */
	prep_fails("a\xEF\xBF\xBD", PROTO_SASLPREP_PROHIBITED);     /* U+FFFD, C.6 */
	prep_fails("a\xE2\xBF\xB0", PROTO_SASLPREP_PROHIBITED);     /* U+2FF0, C.7 */
	prep_fails("a\xF3\xA0\x80\x81", PROTO_SASLPREP_PROHIBITED); /* U+E0001 tag, C.9 */
	/* unassigned in Unicode 3.2 (A.1), as PostgreSQL checks: U+0221, and
	 * U+1F600 (an emoji of Unicode 6.1) */
	prep_fails("a\xC8\xA1", PROTO_SASLPREP_PROHIBITED);
	prep_fails("a\xF0\x9F\x98\x80", PROTO_SASLPREP_PROHIBITED);
}

Test(saslprep, bidi)
{
	prep_is("\xD8\xA7\xD8\xA8", "\xD8\xA7\xD8\xA8"); /* two AL characters */
	prep_is("\xD7\x90"
	        "1\xD7\x91",
	        "\xD7\x90"
	        "1\xD7\x91"); /* R, EN, R */
	prep_fails("\xD8\xA7"
	           "a\xD8\xA8",
	           PROTO_SASLPREP_PROHIBITED);              /* L among R/AL */
	prep_fails("1\xD7\x90", PROTO_SASLPREP_PROHIBITED); /* R not first */
}

Test(saslprep, invalid_and_long)
{
	prep_fails("\xFF\xFE", PROTO_SASLPREP_INVALID_UTF8);
	prep_fails("a\xC3", PROTO_SASLPREP_INVALID_UTF8);        /* truncated */
	prep_fails("\xED\xA0\x80", PROTO_SASLPREP_INVALID_UTF8); /* a surrogate in UTF-8 */
	prep_fails("\xC0\xAF", PROTO_SASLPREP_INVALID_UTF8);     /* overlong */

	char big[PROTO_SASLPREP_MAX_LEN + 2];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	prep_fails(big, PROTO_SASLPREP_TOO_LONG);
	big[PROTO_SASLPREP_MAX_LEN] = '\0';
	prep_is(big, big);
}

static void keys_of(const char *pw, struct proto_scram_secret *s)
{
	static const uint8_t salt[16] = "0123456789abcdef";

	cr_assert_eq(proto_scram_secret_from_password(pw, salt, sizeof(salt), 4096, s), 0);
}

Test(saslprep, scram_keys_use_the_prepared_password)
{
	struct proto_scram_secret a, b, raw;

	/* PostgreSQL stores "IX-Ⅸ" with the keys of "IX-IX" */
	keys_of("IX-\xE2\x85\xA8", &a);
	keys_of("IX-IX", &b);
	cr_assert_eq(memcmp(a.stored_key, b.stored_key, sizeof(a.stored_key)), 0);
	cr_assert_eq(memcmp(a.server_key, b.server_key, sizeof(a.server_key)), 0);
	cr_assert_eq(memcmp(a.client_key, b.client_key, sizeof(a.client_key)), 0);

	/* a password SASLprep refuses or that is not UTF-8 is used as it is:
	 * its ClientKey is HMAC(PBKDF2(raw bytes), "Client Key") */
	const char *asis[] = {"\xFF\xFE pw", "\xD8\xA7"
	                                     "1"};
	for (size_t i = 0; i < 2; i++) {
		static const uint8_t salt[16] = "0123456789abcdef";
		uint8_t salted[32], ck[32];
		unsigned int cklen = 0;

		keys_of(asis[i], &raw);
		cr_assert_eq(PKCS5_PBKDF2_HMAC(asis[i], (int)strlen(asis[i]), salt, 16, 4096,
		                               EVP_sha256(), 32, salted),
		             1);
		cr_assert_not_null(HMAC(EVP_sha256(), salted, 32, (const uint8_t *)"Client Key", 10,
		                        ck, &cklen));
		cr_assert_eq(memcmp(raw.client_key, ck, 32), 0);
	}
}
