/*
 * extra_float_digits read from a statement's own text (proxy_efd_parse):
 * PostgreSQL does not report it, so sluice follows a client's autocommit
 * SET of it by the value in each text it runs, and must read every form
 * drivers send, and nothing else (what it cannot read is pinned instead).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "proxy/proxy.h"

static int16_t efd(const char *sql)
{
	return proxy_efd_parse(sql, strlen(sql));
}

Test(efd, values)
{
	cr_expect_eq(efd("SET extra_float_digits = 3"), PROXY_EFD_VAL(3));
	cr_expect_eq(efd("set extra_float_digits to 2"), PROXY_EFD_VAL(2));
	cr_expect_eq(efd("SET SESSION extra_float_digits TO '0'"), PROXY_EFD_VAL(0));
	cr_expect_eq(efd("  SET\textra_float_digits=-15 ;  "), PROXY_EFD_VAL(-15));
	cr_expect_eq(efd("SET extra_float_digits = '+1';"), PROXY_EFD_VAL(1));
	cr_expect_eq(efd("SET \"extra_float_digits\" = 3"), PROXY_EFD_VAL(3));
	cr_expect_eq(efd("SET extra_float_digits = 003"), PROXY_EFD_VAL(3));
}

Test(efd, resets)
{
	cr_expect_eq(efd("RESET extra_float_digits"), PROXY_EFD_RESET);
	cr_expect_eq(efd("reset EXTRA_FLOAT_DIGITS;"), PROXY_EFD_RESET);
	cr_expect_eq(efd("SET extra_float_digits TO DEFAULT"), PROXY_EFD_RESET);
	cr_expect_eq(efd("SET SESSION extra_float_digits = default"), PROXY_EFD_RESET);
}

Test(efd, not_followed)
{
	static const char *const no[] = {
	        "SET LOCAL extra_float_digits = 3", /* ends with the transaction */
	        "SET extra_float_digits = 4",       /* out of range: the server refuses */
	        "SET extra_float_digits = -16",
	        "SET extra_float_digits = 3.5",
	        "SET extra_float_digits = '3",
	        "SET extra_float_digits = 3; SET x = 1", /* more than one statement */
	        "SET extra_float_digits = 3 -- c",
	        "SET extra_float_digits_x = 3",
	        "SET \"Extra_float_digits\" = 3",
	        "SET extra_float_digits",
	        "SET extra_float_digits = ",
	        "SETextra_float_digits = 3",
	        "RESET ALL",
	        "RESET extra_float_digits_x",
	        "SET sessionextra_float_digits = 3",
	        "SELECT 1",
	        "",
	};

	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		cr_expect_eq(efd(no[i]), 0, "%s: read as %d", no[i], efd(no[i]));
	/* the length given bounds the text */
	cr_expect_eq(proxy_efd_parse("SET extra_float_digits = 3", 25), 0);
	cr_expect_eq(proxy_efd_parse("SET extra_float_digits = 31", 26), PROXY_EFD_VAL(3));
}
