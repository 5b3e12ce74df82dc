/*
 * Session parameters that follow a client across servers: the built-in
 * names PostgreSQL reports with ParameterStatus, plus the names listed in
 * track_extra_parameters, each with a fixed slot in the per-connection
 * value arrays. Also the interned values and startup parameter sets that
 * connections share, and the reading of an "options" startup parameter.
 */
#include "proxy/proxy.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
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
        [PROXY_VAR_EXTRA_FLOAT_DIGITS] = "extra_float_digits",
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
		int slot = PROXY_VAR_EXTRA_FLOAT_DIGITS + 1;
		while (slot < PROXY_NVARS && var_names[slot])
			slot++;
		if (slot == PROXY_NVARS) {
			log_warn("track_extra_parameters: no room for \"%s\" (at most %d)", name,
			         PROXY_NVARS - PROXY_VAR_EXTRA_FLOAT_DIGITS - 1);
			return;
		}
		var_names[slot] = strdup(name);
	}
}

/* ---- extra_float_digits, read from a statement's own text ---- */

/* Skip blanks; true if any. */
static bool efd_blanks(const char **p, const char *end)
{
	const char *s = *p;

	while (*p < end && isspace((unsigned char)**p))
		(*p)++;
	return *p > s;
}

/* The keyword <kw> (lower case) at <*p>, case-insensitively, ending
 * there (no identifier character after it). */
static bool efd_word(const char **p, const char *end, const char *kw)
{
	size_t n = strlen(kw);

	if ((size_t)(end - *p) < n || strncasecmp(*p, kw, n) != 0)
		return false;
	if (*p + n < end && (isalnum((unsigned char)(*p)[n]) || (*p)[n] == '_' || (*p)[n] == '$'))
		return false;
	*p += n;
	return true;
}

/* The parameter's name, bare or double-quoted as PostgreSQL folds it. */
static bool efd_name(const char **p, const char *end)
{
	static const char q[] = "\"extra_float_digits\"";

	if ((size_t)(end - *p) >= sizeof(q) - 1 && memcmp(*p, q, sizeof(q) - 1) == 0) {
		*p += sizeof(q) - 1;
		return true;
	}
	return efd_word(p, end, "extra_float_digits");
}

/* An integer, bare or in single quotes, in PostgreSQL's range -15..3. */
static int16_t efd_value(const char **p, const char *end)
{
	bool quoted = *p < end && **p == '\'';
	bool neg = false;
	int v = 0, nd = 0;

	if (quoted)
		(*p)++;
	if (*p < end && (**p == '-' || **p == '+'))
		neg = *(*p)++ == '-';
	while (*p < end && isdigit((unsigned char)**p) && nd < 4) {
		v = v * 10 + (*(*p)++ - '0');
		nd++;
	}
	if (nd == 0 || (*p < end && isdigit((unsigned char)**p)))
		return 0;
	if (quoted && (*p >= end || *(*p)++ != '\''))
		return 0;
	if (!quoted && *p < end && (isalnum((unsigned char)**p) || **p == '.' || **p == '_'))
		return 0; /* "3.5", "3e1": not an integer sluice reads */
	v = neg ? -v : v;
	return v >= -15 && v <= 3 ? PROXY_EFD_VAL(v) : 0;
}

int16_t proxy_efd_parse(const char *sql, size_t len)
{
	const char *p = sql, *end = sql + len;
	int16_t code;

	efd_blanks(&p, end);
	if (efd_word(&p, end, "reset")) {
		if (!efd_blanks(&p, end) || !efd_name(&p, end))
			return 0;
		code = PROXY_EFD_RESET;
	} else {
		if (!efd_word(&p, end, "set") || !efd_blanks(&p, end))
			return 0;
		if (efd_word(&p, end, "session") && !efd_blanks(&p, end))
			return 0;
		if (!efd_name(&p, end))
			return 0;
		efd_blanks(&p, end);
		if (p < end && *p == '=')
			p++;
		else if (!efd_word(&p, end, "to"))
			return 0;
		efd_blanks(&p, end);
		code = efd_word(&p, end, "default") ? PROXY_EFD_RESET : efd_value(&p, end);
		if (!code)
			return 0;
	}
	/* one statement only: a ";" and blanks may end it, nothing else */
	efd_blanks(&p, end);
	if (p < end && *p == ';')
		p++;
	efd_blanks(&p, end);
	return p == end ? code : 0;
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

struct proxy_sparams {
	UT_hash_handle hh;
	uint32_t refs;
	uint32_t len; /* bytes of <data> */
	char data[];  /* key: "name\0value\0" pairs sorted by name */
};

static int cmp_pair(const void *a, const void *b)
{
	const char *const *x = a, *const *y = b;
	int r = strcmp(x[0], y[0]);

	return r ? r : strcmp(x[1], y[1]);
}

struct proxy_sparams *proxy_sparams_get(struct proxy_ctx *ctx, const char *const *names,
                                        const char *const *values, size_t n, bool *oom)
{
	const char *pairs[2 * PROTO_MAX_STARTUP_PARAMS];
	struct proxy_sparams *sp = NULL;
	size_t len = 0, o = 0;

	*oom = false;
	if (n == 0)
		return NULL;
	if (n > PROTO_MAX_STARTUP_PARAMS) {
		*oom = true;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		pairs[2 * i] = names[i];
		pairs[2 * i + 1] = values[i];
		len += strlen(names[i]) + strlen(values[i]) + 2;
	}
	/* the order a driver sends them in does not make another set */
	qsort(pairs, n, 2 * sizeof(pairs[0]), cmp_pair);
	sp = malloc(sizeof(*sp) + len);
	if (!sp) {
		*oom = true;
		return NULL;
	}
	memset(sp, 0, sizeof(*sp));
	for (size_t i = 0; i < 2 * n; i++) {
		size_t l = strlen(pairs[i]) + 1;

		memcpy(sp->data + o, pairs[i], l);
		o += l;
	}
	sp->len = (uint32_t)len;
	{
		struct proxy_sparams *e = NULL;

		HASH_FIND(hh, ctx->sparams, sp->data, len, e);
		if (e) {
			free(sp);
			e->refs++;
			return e;
		}
	}
	sp->refs = 1;
	HASH_ADD_KEYPTR(hh, ctx->sparams, sp->data, len, sp);
	return sp;
}

struct proxy_sparams *proxy_sparams_ref(struct proxy_sparams *sp)
{
	if (sp)
		sp->refs++;
	return sp;
}

void proxy_sparams_put(struct proxy_ctx *ctx, struct proxy_sparams *sp)
{
	if (!sp || --sp->refs > 0)
		return;
	HASH_DEL(ctx->sparams, sp); // NOLINT(clang-analyzer-unix.Malloc)
	free(sp);
}

const char *proxy_sparams_next(const struct proxy_sparams *sp, size_t *pos, const char **value)
{
	const char *name;

	if (!sp || *pos >= sp->len)
		return NULL;
	name = sp->data + *pos;
	*value = name + strlen(name) + 1;
	*pos = (size_t)(*value - sp->data) + strlen(*value) + 1;
	return name;
}

const char *proxy_sparams_find(const struct proxy_sparams *sp, const char *name)
{
	size_t pos = 0;
	const char *n, *v;

	while ((n = proxy_sparams_next(sp, &pos, &v)))
		if (strcmp(n, name) == 0)
			return v;
	return NULL;
}

void proxy_sparams_free_all(struct proxy_ctx *ctx)
{
	struct proxy_sparams *e;

	while ((e = ctx->sparams)) {
		HASH_DEL(ctx->sparams, e); // NOLINT(clang-analyzer-unix.Malloc)
		free(e);
	}
}

/* One "name=value" setting of <opts>, given after "-c" (<dash> false) or
 * "--" (<dash> true): dashes of the name become underscores, as in
 * PostgreSQL's ParseLongOption. */
static int options_setting(char *arg, bool dash,
                           int (*fn)(void *arg, const char *name, const char *value), void *farg,
                           char *err, size_t errlen)
{
	char *eq = strchr(arg, '=');

	if (!eq) {
		snprintf(err, errlen, "%s%s requires a value", dash ? "--" : "-c ", arg);
		return -1;
	}
	*eq = '\0';
	for (char *x = arg; *x; x++)
		if (*x == '-')
			*x = '_';
	return fn(farg, arg, eq + 1);
}

int proxy_options_parse(const char *opts, int (*fn)(void *arg, const char *name, const char *value),
                        void *arg, char *err, size_t errlen)
{
	size_t cap = strlen(opts) + 1;
	char *buf = calloc(1, cap), *prev = NULL;
	const char *p = opts;
	int rc = 0;

	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	while (rc == 0) {
		size_t o = 0;
		char *tok;
		bool escaped = false;

		while (isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		/* each argument gets its own part of <buf>: the previous one (a
		 * "-c") must stay readable */
		tok = prev ? prev + strlen(prev) + 1 : buf;
		while (*p && (escaped || !isspace((unsigned char)*p))) {
			if (!escaped && *p == '\\') {
				escaped = true;
				p++;
				continue;
			}
			escaped = false;
			tok[o++] = *p++;
		}
		tok[o] = '\0';
		if (prev) {
			/* the value of a "-c" before */
			rc = options_setting(tok, false, fn, arg, err, errlen);
			prev = NULL;
			continue;
		}
		if (strcmp(tok, "-c") == 0) {
			prev = tok;
			continue;
		}
		if (strncmp(tok, "-c", 2) == 0) {
			rc = options_setting(tok + 2, false, fn, arg, err, errlen);
		} else if (strncmp(tok, "--", 2) == 0 && tok[2]) {
			rc = options_setting(tok + 2, true, fn, arg, err, errlen);
		} else {
			snprintf(err, errlen,
			         "invalid command-line argument for server process: %s", tok);
			rc = -1;
		}
	}
	if (rc == 0 && prev) {
		snprintf(err, errlen, "option requires an argument -- 'c'");
		rc = -1;
	}
	free(buf);
	return rc;
}
