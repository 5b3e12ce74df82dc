/*
 * proto_buf_shrink: a buffer that grew for a large message gives its memory
 * back once the relay has consumed it, and keeps what it still holds.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "protocol/proto.h"

Test(proto_buf_shrink, frees_a_drained_large_buffer)
{
	struct proto_buf b;
	static uint8_t big[300 * 1024];

	proto_buf_init(&b);
	cr_assert_eq(proto_buf_append(&b, big, sizeof(big)), 0);
	proto_buf_consume(&b, sizeof(big));
	proto_buf_shrink(&b, 64 * 1024);
	cr_assert_eq(b.cap, 0);
	cr_assert_null(b.data);
	cr_assert_eq(proto_buf_avail(&b), 0);
	cr_assert_eq(proto_buf_append(&b, "x", 1), 0); /* usable again */
	cr_assert_eq(proto_buf_avail(&b), 1);
	proto_buf_free(&b);
}

Test(proto_buf_shrink, shrinks_and_keeps_the_rest)
{
	struct proto_buf b;
	static uint8_t big[300 * 1024];

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	proto_buf_init(&b);
	cr_assert_eq(proto_buf_append(&b, big, sizeof(big)), 0);
	proto_buf_consume(&b, sizeof(big) - 100);
	proto_buf_shrink(&b, 64 * 1024);
	cr_assert_eq(b.cap, 64 * 1024);
	cr_assert_eq(proto_buf_avail(&b), 100);
	cr_assert(memcmp(proto_buf_head(&b), big + sizeof(big) - 100, 100) == 0);
	proto_buf_free(&b);
}

Test(proto_buf_shrink, leaves_small_or_full_buffers)
{
	struct proto_buf b;
	static uint8_t big[300 * 1024];
	size_t cap;

	proto_buf_init(&b);
	cr_assert_eq(proto_buf_append(&b, big, 1000), 0);
	cap = b.cap;
	proto_buf_consume(&b, 1000);
	proto_buf_shrink(&b, 64 * 1024);
	cr_assert_eq(b.cap, cap); /* never grew past the limit */
	cr_assert_eq(proto_buf_append(&b, big, sizeof(big)), 0);
	cap = b.cap;
	proto_buf_shrink(&b, 64 * 1024);
	cr_assert_eq(b.cap, cap); /* still holds more than it could keep */
	cr_assert_eq(proto_buf_avail(&b), sizeof(big));
	proto_buf_free(&b);
}
