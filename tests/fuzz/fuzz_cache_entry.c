/* libFuzzer target: a value read back from Redis is untrusted. Whatever
 * the bytes, cache_entry_decode() stays inside them, and what it accepts
 * is framed as a reply a client may be sent (one RowDescription or none,
 * DataRows, one CommandComplete at the end) and encodes back to the very
 * same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cache_entry e;
	uint8_t *copy, *again;

	/* a copy of exactly <size> bytes, so ASan sees any read past them */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (cache_entry_decode(copy, size, &e) == 0) {
		if (e.body < copy || e.body + e.body_len > copy + size ||
		    e.rowdesc + e.rowdesc_len > copy + size || e.ngens > CACHE_MAX_GENS)
			abort();
		if (e.body_len < 5 || e.body[0] == 'E')
			abort();
		if (e.rowdesc_len && e.rowdesc[0] != 'T')
			abort();
		if (cache_entry_size(&e) != size)
			abort();
		again = malloc(size);
		if (!again)
			abort();
		cache_entry_encode(&e, again);
		if (memcmp(again, copy, size) != 0)
			abort();
		free(again);
	}
	free(copy);
	return 0;
}
