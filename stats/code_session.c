/*
 * The session state a DO block's body may make, read from its text.
 *
 * A DO block runs code whose text it carries, and that code can leave
 * state on the server beyond the transaction as any statement can (a SET
 * in a plpgsql body is a session SET). Its statement shape cannot say
 * which: the scanner folds the body, a string, into a placeholder, so
 * every DO block has one shape. So the shape says only "DO"
 * (STATS_SS_CODE), and the relay reads each DO text with this function,
 * which looks for the words that make state the way the classifier's
 * statement nodes would tell it (STATS_SS_*). It reads strings' contents
 * too (EXECUTE 'SET ...'), and errs towards finding state: a false find
 * only pins a client a while longer, a miss would hand the state to the
 * server's next client. Text built at run time from pieces that do not
 * spell the words (format('%s', v)) is not seen.
 *
 * Pure, linear in the text, no allocation; DO blocks are rare, so it runs
 * per text, not per shape.
 */
#include "stats/stats.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#define WORD_MAX 32

struct tok {
	char w[WORD_MAX]; /* lower-cased word, "" for a ';' */
	bool semi;        /* a ';' */
};

static bool word_byte(unsigned char ch)
{
	return isalnum(ch) || ch == '_' || ch >= 0x80;
}

/* The next word or ';' of [*pp, end), comments skipped; false at the end.
 * Any other byte (quotes, $, operators) only separates words. */
static bool next_tok(const char **pp, const char *end, struct tok *t)
{
	const char *p = *pp;

	for (;;) {
		while (p < end && !word_byte((unsigned char)*p) && *p != ';' && *p != '-' &&
		       *p != '/')
			p++;
		if (p >= end) {
			*pp = p;
			return false;
		}
		if (*p == '-' && p + 1 < end && p[1] == '-') {
			while (p < end && *p != '\n')
				p++;
			continue;
		}
		if (*p == '/' && p + 1 < end && p[1] == '*') {
			const char *q = p + 2;
			while (q + 1 < end && !(q[0] == '*' && q[1] == '/'))
				q++;
			p = q + 1 < end ? q + 2 : end;
			continue;
		}
		if (*p == '-' || *p == '/') {
			p++;
			continue;
		}
		break;
	}
	if (*p == ';') {
		t->semi = true;
		t->w[0] = 0;
		*pp = p + 1;
		return true;
	}
	size_t n = 0;
	t->semi = false;
	while (p < end && word_byte((unsigned char)*p)) {
		if (n + 1 < WORD_MAX)
			t->w[n++] = (char)tolower((unsigned char)*p);
		p++;
	}
	t->w[n] = 0;
	*pp = p;
	return true;
}

/* Can a statement start right after <prev>: the text's start, a ';', a
 * plpgsql block or branch keyword, or EXECUTE (of a string). */
static bool starts_after(const struct tok *prev, bool first)
{
	static const char *const kw[] = {"begin", "then", "else", "loop", "execute", "do", "as"};

	if (first || prev->semi)
		return true;
	for (size_t i = 0; i < sizeof(kw) / sizeof(kw[0]); i++)
		if (strcmp(prev->w, kw[i]) == 0)
			return true;
	return false;
}

static bool prefix(const char *w, const char *pre)
{
	return strncmp(w, pre, strlen(pre)) == 0;
}

uint32_t stats_code_session(const char *sql, size_t len)
{
	const char *p = sql, *end = sql + len;
	struct tok prev = {{0}, false}, t, t2;
	bool first = true, with = false;
	uint32_t ss = 0;

	while (next_tok(&p, end, &t)) {
		bool at_start = starts_after(&prev, first);

		first = false;
		if (t.semi) {
			prev = t;
			with = false;
			continue;
		}
		if (strcmp(t.w, "temp") == 0 || strcmp(t.w, "temporary") == 0 ||
		    strcmp(t.w, "pg_temp") == 0)
			ss |= STATS_SS_TEMP;
		else if ((prefix(t.w, "pg_advisory_lock") || prefix(t.w, "pg_try_advisory_lock")) &&
		         !strstr(t.w, "_xact_"))
			ss |= STATS_SS_ADVISORY;
		else if (strcmp(t.w, "currval") == 0 || strcmp(t.w, "lastval") == 0)
			ss |= STATS_SS_SEQ_READ;
		else if (strcmp(t.w, "pg_advisory_unlock") == 0 ||
		         strcmp(t.w, "pg_advisory_unlock_shared") == 0 ||
		         (at_start && (strcmp(t.w, "unlisten") == 0 || strcmp(t.w, "drop") == 0)))
			ss |= STATS_SS_MAY_END;
		else if (strcmp(t.w, "set_config") == 0)
			ss |= STATS_SS_SET | STATS_SS_SET_UNNAMED; /* is_local is not known */
		else if (strcmp(t.w, "hold") == 0 && with)
			ss |= STATS_SS_CURSOR;
		else if (at_start && strcmp(t.w, "listen") == 0)
			ss |= STATS_SS_LISTEN;
		else if (at_start && strcmp(t.w, "load") == 0)
			ss |= STATS_SS_LOAD;
		else if (at_start && strcmp(t.w, "prepare") == 0) {
			const char *q = p;
			if (!next_tok(&q, end, &t2) || strcmp(t2.w, "transaction") != 0)
				ss |= STATS_SS_PREPARE;
		} else if (at_start && strcmp(t.w, "set") == 0) {
			const char *q = p;
			if (!next_tok(&q, end, &t2))
				t2.w[0] = 0;
			if (strcmp(t2.w, "session") == 0) {
				struct tok t3;
				if (next_tok(&q, end, &t3) && strcmp(t3.w, "authorization") == 0)
					ss |= STATS_SS_AUTH;
				else if (strcmp(t3.w, "role") == 0)
					ss |= STATS_SS_ROLE;
				else
					ss |= STATS_SS_SET | STATS_SS_SET_UNNAMED;
			} else if (strcmp(t2.w, "role") == 0) {
				ss |= STATS_SS_ROLE;
			} else if (strcmp(t2.w, "local") != 0 && strcmp(t2.w, "transaction") != 0 &&
			           strcmp(t2.w, "constraints") != 0) {
				ss |= STATS_SS_SET | STATS_SS_SET_UNNAMED;
			}
		}
		with = strcmp(t.w, "with") == 0;
		prev = t;
	}
	return ss;
}
