/*
 * The auth file, in PgBouncer's userlist.txt format: one user per line,
 *   "user" "secret"
 * both double-quoted, a doubled quote standing for one quote. Blank lines
 * and lines starting with ';' or '#' are ignored; text after the second
 * field is ignored, as PgBouncer does.
 */
#include "conf/conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Read one quoted field at *p; returns a malloc'd string or NULL. */
static char *quoted(const char **pp)
{
	const char *p = *pp;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '"')
		return NULL;
	p++;
	size_t cap = strlen(p) + 1, n = 0;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	for (;;) {
		if (*p == 0 || *p == '\n' || *p == '\r') {
			free(out);
			return NULL;
		}
		if (*p == '"') {
			if (p[1] != '"')
				break;
			p++;
		}
		out[n++] = *p++;
	}
	out[n] = 0;
	*pp = p + 1;
	return out;
}

int conf_load_auth_file(const char *path, struct conf_authlist *out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0;

	out->v = NULL;
	out->n = 0;
	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	while (getline(&line, &cap, f) >= 0) {
		lineno++;
		const char *p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == 0 || *p == '\n' || *p == '\r' || *p == ';' || *p == '#')
			continue;
		char *user = quoted(&p);
		char *secret = user ? quoted(&p) : NULL;
		if (!user || !secret || !user[0]) {
			/* Never echo the line: it may hold a password. */
			snprintf(err, errlen,
			         "%s:%d: expected \"user\" \"password-or-secret\" (both in double "
			         "quotes)",
			         path, lineno);
			free(user);
			free(secret);
			goto fail;
		}
		struct conf_auth_entry *v = realloc(out->v, (out->n + 1) * sizeof(*v));
		if (!v) {
			free(user);
			free(secret);
			snprintf(err, errlen, "%s: out of memory", path);
			goto fail;
		}
		out->v = v;
		out->v[out->n].user = user;
		out->v[out->n].secret = secret;
		out->n++;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		goto fail;
	}
	free(line);
	fclose(f);
	return 0;
fail:
	free(line);
	fclose(f);
	conf_free_auth(out);
	return -1;
}

void conf_free_auth(struct conf_authlist *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free(a->v[i].user);
		if (a->v[i].secret) {
			/* Scrub secrets before handing the memory back. */
			volatile char *s = a->v[i].secret;
			while (*s)
				*s++ = 0;
			free(a->v[i].secret);
		}
	}
	free(a->v);
	a->v = NULL;
	a->n = 0;
}

const char *conf_auth_lookup(const struct conf_authlist *a, const char *user)
{
	const char *found = NULL;

	/* The last entry for a user wins, as in PgBouncer. */
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i].user, user) == 0)
			found = a->v[i].secret;
	return found;
}
