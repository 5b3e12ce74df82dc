/*
 * The lexing both SQL scanners share (sqlscan.c, the full scanner, and
 * sqlskel.c, its fast path for texts seen before): PostgreSQL 15's
 * character classes and the rules that find where a number, a string, a
 * quoted identifier, a dollar quote, a comment or an operator ends. Kept in
 * one place so that the two can never disagree on a token's extent, which
 * the fast path's correctness rests on. Internal to protocol/.
 */
#ifndef SLUICE_SQLLEX_H
#define SLUICE_SQLLEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- character classes ---- */

enum cclass {
	C_OTHER = 0, /* a one-byte token of its own: { } \ control bytes */
	C_SPACE,     /* space \t \n \r \f \v */
	C_IDENT,     /* starts a word: letters, _, bytes >= 0x80 */
	C_DIGIT,
	C_QUOTE,  /* ' */
	C_DQUOTE, /* " */
	C_DOLLAR, /* $: a parameter, a dollar quote or a lone $ */
	C_OP,     /* operator characters other than - and / */
	C_MINUS,  /* - : an operator, a sign or a -- comment */
	C_SLASH,  /* / : an operator or a block comment */
	C_DOT,
	C_COLON,
	C_SEMI,
	C_LPAREN,
	C_RPAREN,
	C_COMMA,
	C_LBRACKET,
	C_RBRACKET,
};

static const uint8_t cclass[256] = {
        [' '] = C_SPACE,
        ['\t'] = C_SPACE,
        ['\n'] = C_SPACE,
        ['\r'] = C_SPACE,
        ['\f'] = C_SPACE,
        ['\v'] = C_SPACE,
        ['a' ... 'z'] = C_IDENT,
        ['A' ... 'Z'] = C_IDENT,
        ['_'] = C_IDENT,
        [0x80 ... 0xff] = C_IDENT,
        ['0' ... '9'] = C_DIGIT,
        ['\''] = C_QUOTE,
        ['"'] = C_DQUOTE,
        ['$'] = C_DOLLAR,
        ['~'] = C_OP,
        ['!'] = C_OP,
        ['@'] = C_OP,
        ['#'] = C_OP,
        ['^'] = C_OP,
        ['&'] = C_OP,
        ['|'] = C_OP,
        ['`'] = C_OP,
        ['?'] = C_OP,
        ['+'] = C_OP,
        ['*'] = C_OP,
        ['%'] = C_OP,
        ['<'] = C_OP,
        ['>'] = C_OP,
        ['='] = C_OP,
        ['-'] = C_MINUS,
        ['/'] = C_SLASH,
        ['.'] = C_DOT,
        [':'] = C_COLON,
        [';'] = C_SEMI,
        ['('] = C_LPAREN,
        [')'] = C_RPAREN,
        [','] = C_COMMA,
        ['['] = C_LBRACKET,
        [']'] = C_RBRACKET,
};

/* Flags per byte for the inner loops. */
#define F_CONT   1u /* continues a word: letters, digits, _, $, >= 0x80 */
#define F_TAG    2u /* continues a dollar-quote tag: a word byte but not $ */
#define F_OPCH   4u /* an operator character */
#define F_NOTRIM 8u /* an operator holding one keeps a trailing + or - */
#define F_DIGIT  16u

static const uint8_t cflags[256] = {
        ['a' ... 'z'] = F_CONT | F_TAG,
        ['A' ... 'Z'] = F_CONT | F_TAG,
        ['_'] = F_CONT | F_TAG,
        [0x80 ... 0xff] = F_CONT | F_TAG,
        ['0' ... '9'] = F_CONT | F_TAG | F_DIGIT,
        ['$'] = F_CONT,
        ['~'] = F_OPCH | F_NOTRIM,
        ['!'] = F_OPCH | F_NOTRIM,
        ['@'] = F_OPCH | F_NOTRIM,
        ['#'] = F_OPCH | F_NOTRIM,
        ['^'] = F_OPCH | F_NOTRIM,
        ['&'] = F_OPCH | F_NOTRIM,
        ['|'] = F_OPCH | F_NOTRIM,
        ['`'] = F_OPCH | F_NOTRIM,
        ['?'] = F_OPCH | F_NOTRIM,
        ['%'] = F_OPCH | F_NOTRIM,
        ['+'] = F_OPCH,
        ['-'] = F_OPCH,
        ['*'] = F_OPCH,
        ['/'] = F_OPCH,
        ['<'] = F_OPCH,
        ['>'] = F_OPCH,
        ['='] = F_OPCH,
};

#define IS(c, f) (cflags[(unsigned char)(c)] & (f))

/*
 * Case folding of a word's byte for the fingerprint: ASCII bytes get bit
 * 0x20, which lower-cases letters and leaves digits and $ as they are ('_'
 * becomes DEL, which no word holds, so no two words meet). Bytes >= 0x80
 * stay: PostgreSQL folds only ASCII in UTF-8. FOLD8 does eight at once.
 */
static inline char fold(char c)
{
	unsigned char u = (unsigned char)c;

	return (char)(u < 0x80 ? u | 0x20 : u);
}

#define FOLD8(x) ((x) | ((~(x)&0x8080808080808080ull) >> 2))

/* <w, n> equals the lower-case ASCII <lit, ln>, ignoring case. */
static inline bool ci_eq(const char *w, size_t n, const char *lit, size_t ln)
{
	if (n != ln)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((char)(w[i] | 0x20) != lit[i])
			return false;
	return true;
}

#define WORD_IS(w, n, lit) ci_eq((w), (n), (lit), sizeof(lit) - 1)

/* [p, end) starts with the lower-case <lit>, ignoring case. */
static inline bool ci_prefix(const char *p, const char *end, const char *lit, size_t ln)
{
	return (size_t)(end - p) >= ln && ci_eq(p, ln, lit, ln);
}

#define STARTS(p, end, lit) ci_prefix((p), (end), (lit), sizeof(lit) - 1)

/* ---- lexing of single tokens: each returns where the token ends ---- */

/*
 * A number at <p> (a digit, or '.' before a digit), PostgreSQL 15's forms:
 * 12, 1.5, .5, 5., 1e10, 1.5E-3. "1..2" is 1 then "..": PL/pgSQL ranges.
 * PostgreSQL 16's 0x1F, 0o17, 0b101 and 1_000 are not numbers in 15 (an
 * error there): here they are 0 or 1 followed by a word, the same tokens.
 */
static inline const char *lex_number(const char *p, const char *end)
{
	while (p < end && IS(*p, F_DIGIT))
		p++;
	if (p < end && *p == '.') {
		if (p + 1 < end && p[1] == '.')
			return p;
		p++;
		while (p < end && IS(*p, F_DIGIT))
			p++;
	}
	if (p < end && (*p | 0x20) == 'e') {
		const char *q = p + 1;

		if (q < end && (*q == '+' || *q == '-'))
			q++;
		if (q < end && IS(*q, F_DIGIT)) {
			while (q < end && IS(*q, F_DIGIT))
				q++;
			p = q;
		}
	}
	return p;
}

enum str_kind {
	STR_PLAIN,  /* '...' and U&'...': a doubled quote is a quote */
	STR_ESCAPE, /* E'...': backslash escapes too */
	STR_BITS,   /* B'...' and X'...': the first quote ends it */
};

/*
 * After a closing quote at <p>: the start of the body of a continuation
 * (whitespace holding a newline, -- comments allowed, then a quote), or
 * NULL. PostgreSQL joins 'foo'\n'bar' into one literal this way.
 */
static inline const char *continuation(const char *p, const char *end)
{
	bool newline = false;

	while (p < end) {
		char c = *p;

		if (c == ' ' || c == '\t' || c == '\f' || c == '\v') {
			p++;
		} else if (c == '\n' || c == '\r') {
			newline = true;
			p++;
		} else if (c == '-' && p + 1 < end && p[1] == '-') {
			while (p < end && *p != '\n' && *p != '\r')
				p++;
		} else {
			break;
		}
	}
	if (newline && p < end && *p == '\'')
		return p + 1;
	return NULL;
}

/* A string whose body starts at <p>, with its continuations; unterminated
 * runs to <end>. */
static inline const char *lex_string(const char *p, const char *end, enum str_kind kind)
{
	for (;;) {
		const char *q;

		if (kind == STR_ESCAPE) {
			while (p < end && *p != '\'') {
				if (*p == '\\' && p + 1 < end)
					p++;
				p++;
			}
			if (p >= end)
				return end;
			if (p + 1 < end && p[1] == '\'') {
				p += 2;
				continue;
			}
		} else {
			q = memchr(p, '\'', (size_t)(end - p));
			if (!q)
				return end;
			p = q;
			if (kind == STR_PLAIN && p + 1 < end && p[1] == '\'') {
				p += 2;
				continue;
			}
		}
		p++; /* the closing quote */
		q = continuation(p, end);
		if (!q)
			return p;
		p = q;
	}
}

/* A quoted identifier whose body starts at <p>. */
static inline const char *lex_qident(const char *p, const char *end)
{
	for (;;) {
		const char *q = memchr(p, '"', (size_t)(end - p));

		if (!q)
			return end;
		if (q + 1 < end && q[1] == '"') {
			p = q + 2;
			continue;
		}
		return q + 1;
	}
}

/* The body of a dollar quote after "$tag$"; unterminated runs to <end>. */
static inline const char *lex_dollar_body(const char *p, const char *end, const char *tag,
                                          size_t tl)
{
	for (;;) {
		const char *q = memchr(p, '$', (size_t)(end - p));

		if (!q)
			return end;
		if ((size_t)(end - q) >= tl + 2 && memcmp(q + 1, tag, tl) == 0 && q[tl + 1] == '$')
			return q + tl + 2;
		p = q + 1;
	}
}

/* A block comment opened at <p> ("/ *"), nested as PostgreSQL nests them. */
static inline const char *lex_block_comment(const char *p, const char *end)
{
	unsigned depth = 1;

	p += 2;
	while (p < end) {
		if (*p == '*' && p + 1 < end && p[1] == '/') {
			p += 2;
			if (--depth == 0)
				return p;
		} else if (*p == '/' && p + 1 < end && p[1] == '*') {
			p += 2;
			depth++;
		} else {
			p++;
		}
	}
	return end;
}

/*
 * The length of the operator at <p>, as PostgreSQL cuts a run of operator
 * characters: never across the start of a comment, and a trailing + or -
 * goes back to the text unless the run holds one of ~!@#^&|`?% (so "=-1"
 * is "=" then "-1", while "%-" stays one operator).
 */
static inline size_t op_len(const char *p, const char *end)
{
	size_t n = 1;
	bool notrim = IS(p[0], F_NOTRIM);

	while (p + n < end && IS(p[n], F_OPCH)) {
		if ((p[n] == '*' && p[n - 1] == '/') || (p[n] == '-' && p[n - 1] == '-')) {
			n--;
			break;
		}
		notrim |= IS(p[n], F_NOTRIM) != 0;
		n++;
	}
	if (n > 1 && !notrim)
		while (n > 1 && (p[n - 1] == '+' || p[n - 1] == '-'))
			n--;
	return n;
}

#endif /* SLUICE_SQLLEX_H */
