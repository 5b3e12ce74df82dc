/*
 * Session parameters that follow a client across servers: the built-in
 * names PostgreSQL reports with ParameterStatus, plus the names listed in
 * track_extra_parameters, each with a fixed slot in the per-connection
 * value arrays.
 */
#include "proxy/proxy.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <stddef.h>
#include <stdint.h>

#include <uthash.h>

#include "stats/stats.h"

static const char *var_names[PROXY_NVARS] = {
        [PROXY_VAR_CLIENT_ENCODING] = "client_encoding",
        [PROXY_VAR_DATESTYLE] = "DateStyle",
        [PROXY_VAR_TIMEZONE] = "TimeZone",
        [PROXY_VAR_INTERVALSTYLE] = "IntervalStyle",
        [PROXY_VAR_STD_STRINGS] = "standard_conforming_strings",
        [PROXY_VAR_APPLICATION_NAME] = "application_name",
};

const char *proxy_var_name(enum proxy_var v)
{
	return var_names[v];
}

int proxy_var_index(const char *name)
{
	for (int i = 0; i < PROXY_NVARS && var_names[i]; i++)
		if (strcasecmp(var_names[i], name) == 0)
			return i;
	return -1;
}

/* Next item of a comma-separated list, blanks trimmed: its start and
 * length, or NULL at the end. Advances <*pp>. */
const char *proxy_list_next(const char **pp, size_t *len)
{
	const char *p = *pp;

	while (p && *p) {
		while (*p == ' ' || *p == ',')
			p++;
		const char *e = p;
		while (*e && *e != ',')
			e++;
		const char *t = e;
		while (t > p && t[-1] == ' ')
			t--;
		*pp = e;
		if (t > p) {
			*len = (size_t)(t - p);
			return p;
		}
		p = e;
	}
	return NULL;
}

void proxy_vars_track(const char *list)
{
	const char *item;
	size_t len;

	while ((item = proxy_list_next(&list, &len))) {
		char name[64];
		size_t n = len < sizeof(name) - 1 ? len : sizeof(name) - 1;
		bool ok = true;

		memcpy(name, item, n);
		name[n] = 0;
		for (size_t i = 0; i < n; i++)
			if (!isalnum((unsigned char)name[i]) && name[i] != '_' && name[i] != '.')
				ok = false;
		if (!ok) {
			log_warn("track_extra_parameters: \"%s\" is not a parameter name", name);
			continue;
		}
		if (proxy_var_index(name) >= 0)
			continue;
		int slot = PROXY_NBUILTIN_VARS;
		while (slot < PROXY_NVARS && var_names[slot])
			slot++;
		if (slot == PROXY_NVARS) {
			log_warn("track_extra_parameters: no room for \"%s\" (at most %d)", name,
			         PROXY_NVARS - PROXY_NBUILTIN_VARS);
			return;
		}
		var_names[slot] = strdup(name);
	}
}

struct proxy_istr {
	UT_hash_handle hh;
	uint32_t refs;
	char s[]; /* key */
};

static struct proxy_istr *istr_of(const char *s)
{
	return (struct proxy_istr *)(uintptr_t)(s - offsetof(struct proxy_istr, s));
}

const char *proxy_str_get(struct proxy_ctx *ctx, const char *s)
{
	struct proxy_istr *e = NULL;
	size_t n = strlen(s);

	HASH_FIND(hh, ctx->strs, s, n, e);
	if (e) {
		e->refs++;
		return e->s;
	}
	e = malloc(sizeof(*e) + n + 1);
	if (!e)
		return NULL;
	memset(e, 0, sizeof(*e));
	memcpy(e->s, s, n + 1);
	e->refs = 1;
	HASH_ADD_KEYPTR(hh, ctx->strs, e->s, n, e);
	return e->s;
}

void proxy_str_put(struct proxy_ctx *ctx, const char *s)
{
	struct proxy_istr *e;

	if (!s)
		return;
	e = istr_of(s);
	if (--e->refs > 0)
		return;
	HASH_DEL(ctx->strs, e); // NOLINT(clang-analyzer-unix.Malloc)
	free(e);
}

void proxy_strs_free(struct proxy_ctx *ctx)
{
	struct proxy_istr *e;

	while ((e = ctx->strs)) {
		HASH_DEL(ctx->strs, e); // NOLINT(clang-analyzer-unix.Malloc)
		free(e);
	}
}
