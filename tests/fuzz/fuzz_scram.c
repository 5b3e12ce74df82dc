/*
 * libFuzzer target for both sides of SCRAM-SHA-256.
 *
 * Client side (sluice logging in to a server it does not control): the
 * input is a server-first and a server-final message, parsed by
 * proto_scram_client_final() and proto_scram_client_verify(). Server side
 * (sluice verifying a client): the input is a client-first and a
 * client-final message, parsed by proto_scram_server_first() and
 * proto_scram_server_final(), against a real secret or a mock one. Both
 * must survive any bytes, and what they write must be a proper message.
 *
 * The random nonces are replaced with fixed ones after step 1 (as the unit
 * tests do with RFC 7677's), so the fuzzer can reach the code behind the
 * nonce checks. Input layout: byte 0 picks the side and options, byte 1
 * where the two messages split, the rest the messages.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CLIENT_NONCE "fuzzclientnonce"
#define SERVER_NONCE "fuzzservernonce"

/* What a step writes must be NUL-terminated, of the length it reports. */
static void check_out(const char *out, size_t outsz, size_t outlen)
{
	if (outlen >= outsz || out[outlen] != 0 || strlen(out) != outlen)
		abort();
}

/* Keys for salt "fuzzsaltfuzzsalt" at 1 iteration: a server-first naming
 * them gets the full proof computed, without PBKDF2 on fuzzed counts. */
static const struct proto_scram_secret *fuzz_keys(void)
{
	static struct proto_scram_secret keys;
	static int state; /* 0 not made, 1 made, -1 failed */

	if (state == 0)
		state = proto_scram_secret_from_password("pw", (const uint8_t *)"fuzzsaltfuzzsalt",
		                                         16, 1, &keys) == 0
		                ? 1
		                : -1;
	return state == 1 ? &keys : NULL;
}

/* The iteration count a server-first asks for, or -1: the password path
 * (PBKDF2) is only taken for small counts, so that one input cannot run
 * for minutes. */
static long asked_iterations(const uint8_t *m, size_t n)
{
	for (size_t i = 0; i + 3 <= n; i++) {
		if (m[i] == ',' && m[i + 1] == 'i' && m[i + 2] == '=') {
			long v = 0;
			for (size_t k = i + 3; k < n && m[k] >= '0' && m[k] <= '9'; k++)
				if ((v = v * 10 + (m[k] - '0')) > 1000000)
					return -1;
			return v;
		}
	}
	return -1;
}

static void client_side(uint8_t flags, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	struct proto_scram_client st;
	char out[512];
	size_t outlen = 0;
	const char *err = NULL;

	if (proto_scram_client_first(&st, out, sizeof(out), &outlen) < 0)
		return;
	check_out(out, sizeof(out), outlen);
	strcpy(st.client_nonce, CLIENT_NONCE);
	strcpy(st.client_first_bare, "n=,r=" CLIENT_NONCE);

	long iter = asked_iterations(a, alen);
	const char *password = (flags & 2) && iter >= 1 && iter <= 16 ? "pw" : NULL;
	const struct proto_scram_secret *keys = (flags & 4) ? NULL : fuzz_keys();
	if (proto_scram_client_final(&st, password, keys, a, alen, out, sizeof(out), &outlen,
	                             &err) < 0) {
		if (!err)
			abort();
		return;
	}
	check_out(out, sizeof(out), outlen);
	if (strncmp(out, "c=biws,r=" CLIENT_NONCE, 9 + strlen(CLIENT_NONCE)) != 0)
		abort();
	err = NULL;
	if (proto_scram_client_verify(&st, b, blen, &err) < 0 && !err)
		abort();
}

static void server_side(uint8_t flags, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	static const uint8_t key[PROTO_SCRAM_KEY_LEN] = {42};
	struct proto_scram_secret sec;
	struct proto_scram_server st;
	char out[512];
	size_t outlen = 0;
	const char *err = NULL;

	if (flags & 2) {
		/* a mock secret for a user name taken from the input */
		char user[64];
		size_t n = alen < sizeof(user) - 1 ? alen : sizeof(user) - 1;
		memcpy(user, a, n);
		user[n] = 0;
		if (proto_scram_mock_secret(key, user, &sec) < 0 || !sec.doomed)
			abort();
	} else {
		const struct proto_scram_secret *k = fuzz_keys();
		if (!k)
			return;
		sec = *k;
	}
	if (proto_scram_server_first(&st, &sec, a, alen, out, sizeof(out), &outlen, &err) < 0) {
		if (!err || !st.sqlstate)
			abort();
		return;
	}
	check_out(out, sizeof(out), outlen);
	if (st.doomed != sec.doomed)
		abort();
	/* the client's part of the nonce, then a fixed server part */
	size_t cn = strlen(st.nonce);
	if (cn < 24)
		abort();
	cn -= 24; /* the random part: base64 of 18 bytes */
	if (cn + sizeof(SERVER_NONCE) > sizeof(st.nonce))
		return;
	memcpy(st.nonce + cn, SERVER_NONCE, sizeof(SERVER_NONCE));
	char salt[40];
	const char *s = strstr(st.server_first, ",s=");
	if (!s)
		abort();
	snprintf(salt, sizeof(salt), "%s", s);
	int w = snprintf(st.server_first, sizeof(st.server_first), "r=%s%s", st.nonce, salt);
	if (w < 0 || (size_t)w >= sizeof(st.server_first))
		return;
	err = NULL;
	int rc = proto_scram_server_final(&st, b, blen, out, sizeof(out), &outlen, &err);
	if (rc < 0) {
		if (!err || !st.sqlstate)
			abort();
		return;
	}
	/* only a proof made with the password gets through, never a mock */
	if (sec.doomed || !st.secret.has_client_key)
		abort();
	check_out(out, sizeof(out), outlen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t flags = data[0];
	size_t cut = data[1];
	data += 2;
	size -= 2;
	if (cut > size)
		cut = size;
	if (flags & 1)
		server_side(flags, data, cut, data + cut, size - cut);
	else
		client_side(flags, data, cut, data + cut, size - cut);
	return 0;
}
