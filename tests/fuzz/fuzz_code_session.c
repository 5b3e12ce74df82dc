/*
 * libFuzzer target for stats_code_session (stats/code_session.c), which
 * reads the text of every DO block a client sends: any bytes, any length,
 * never a read past the end, and only session-state bits come out, the
 * same for the same text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stats/stats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a copy of exactly <size> bytes: ASan sees any read beyond */
	char *text = malloc(size ? size : 1);
	uint32_t a, b;
	const uint32_t allowed = STATS_SS_CREATES | STATS_SS_SET_UNNAMED | STATS_SS_SEQ_READ |
	                         STATS_SS_MAY_END;

	if (!text)
		return 0;
	memcpy(text, data, size);
	a = stats_code_session(text, size);
	b = stats_code_session(text, size);
	if (a != b || (a & ~allowed))
		abort();
	/* SET_UNNAMED only ever comes with SET */
	if ((a & STATS_SS_SET_UNNAMED) && !(a & STATS_SS_SET))
		abort();
	free(text);
	return 0;
}
