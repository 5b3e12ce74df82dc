/*
 * uthash for the cache's tables (l1.c, cache.c), whose keys are hashes
 * already (a cache key, a generation id, a fingerprint): their first eight
 * bytes spread well enough, so uthash takes those bits as they are
 * instead of hashing them again. Internal to cache/; include it in place
 * of <uthash.h>.
 */
#ifndef SLUICE_CACHE_HASH_H
#define SLUICE_CACHE_HASH_H

#include <stdint.h>
#include <string.h>

#define HASH_FUNCTION(keyptr, keylen, hashv)                                                       \
	do {                                                                                       \
		uint64_t h_;                                                                       \
		(void)(keylen);                                                                    \
		memcpy(&h_, (keyptr), sizeof(h_));                                                 \
		(hashv) = (unsigned)(h_ ^ (h_ >> 32));                                             \
	} while (0)
#include <uthash.h>

#endif /* SLUICE_CACHE_HASH_H */
