/*
 * For the unit tests of stats/: a statement noted as the scanner would
 * give it, <text> being both its source and its normalized text.
 */
#ifndef SLUICE_TEST_STATS_SEEN_H
#define SLUICE_TEST_STATS_SEEN_H

#include <string.h>

#include "stats/stats.h"

static inline const struct stats_shape_info *seen(struct stats *st, uint64_t fp,
                                                  enum proto_sql_kw kw, const char *text)
{
	struct proto_sql_stmt s;

	memset(&s, 0, sizeof(s));
	s.fp = fp;
	s.keyword = (uint8_t)kw;
	s.src_len = (uint32_t)strlen(text);
	s.norm_len = s.src_len;
	return stats_shape_seen(st, &s, text, text);
}

#endif /* SLUICE_TEST_STATS_SEEN_H */
