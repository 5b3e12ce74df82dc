/*
 * Private to conf/: the parsing state and the helpers that conf.c (the
 * ini file), unsupported.c (PgBouncer keys sluice does not honour) and
 * cache_conf.c (the [cache] section) share.
 */
#ifndef SLUICE_CONF_INT_H
#define SLUICE_CONF_INT_H

#include <stdbool.h>
#include <stdio.h>

#include "conf/conf.h"

/* Parsing state shared by the inih callbacks. */
struct parse {
	struct conf *c;
	FILE *f;
	int line;       /* line the reader handed out last */
	bool long_line; /* a line did not fit inih's buffer */
	char err[512];  /* first error, without the file name */
	int err_line;
	int cache_url_line;      /* [cache] redis_url was set here (0: not set) */
	int cache_hostport_line; /* [cache] redis_host or redis_port was set here */
	int cache_inval_line;    /* [cache] invalidation was set here */
};

/* Record the first error (with the current line); later ones are dropped. */
void conf_fail(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "<what><name> = <value> is not supported by sluice (<instead>)". */
void conf_refuse(struct parse *p, const char *what, const char *name, const char *v,
                 const char *instead);
bool conf_parse_int(const char *v, long lo, long hi, int *out);
bool conf_parse_bool(const char *v, bool *out);
bool conf_parse_duration(const char *v, double *out);
/* True when <name> is a PgBouncer key sluice does not implement (after
 * conf_fail if <v> is a value sluice would not honour). */
bool conf_unsupported_key(struct parse *p, const char *name, const char *v);

/* cache_conf.c: the [cache] section. */
void conf_cache_defaults(struct conf_cache *cc);
void conf_cache_key(struct parse *p, const char *name, const char *v);
/* Checks across [cache] keys once the file is read (p->line is 0). */
void conf_cache_validate(struct parse *p);
void conf_cache_free(struct conf_cache *cc);

#endif /* SLUICE_CONF_INT_H */
