/*
 * The scanner's fast path: a key for a text seen before, in one light pass.
 *
 * Applications send the same few statements again and again with other
 * literal values ("... WHERE aid = 12345"), so the full scan (normalized
 * text, canonical token stream, fingerprint) mostly recomputes what it
 * found last time. The skeleton of a text is the text itself with each
 * literal's bytes replaced by a NUL and a byte for its kind, number or
 * string (no text holds a NUL: it ends one; the kind is kept because the
 * full scanner folds a minus sign into a number after it, not into a
 * string). Two texts with one skeleton differ only in their literal
 * values, and nothing the full scanner reports (fingerprints, keywords,
 * hints, statements, parameters) depends on a literal's value but for two
 * forms this pass refuses: an integer in an ORDER BY / GROUP BY list (a
 * column position, kept), and the escape character of a UESCAPE. So a hash
 * of the skeleton keys a memo of what the full scan said (proxy/reply.c).
 *
 * Literals are found by the very rules the full scanner uses (sqllex.h),
 * so both agree on where each one ends. Words need no lexing here: a digit
 * right after a word byte continues a word, any other starts a number. So
 * the pass jumps from one byte that may matter to the next (16 at a time
 * with SSE2) and looks only at those. It refuses (and the caller scans in
 * full) what it does not follow: $ (parameters, dollar quotes), a string
 * right after a word byte (E'', B'', X'', N'', U&'' among them), U&, a
 * word "by", a ';' with more text after it, a NUL, and texts over
 * PROTO_SQL_SKEL_MAX bytes. Comments are kept whole in the skeleton, so
 * their hints are the same for every text with that skeleton.
 */
#include "protocol/proto.h"
#include "protocol/sqllex.h"

#include <xxhash.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Bytes that may matter: digits and . (numbers), quotes, $, - and /
 * (comments), ;, & (U&), y (the word "by"). */
static const uint8_t stop[256] = {
        ['0' ... '9'] = 1, ['\''] = 1, ['"'] = 1, ['$'] = 1, ['-'] = 1, ['/'] = 1,
        ['.'] = 1,         [';'] = 1,  ['&'] = 1, ['y'] = 1, ['Y'] = 1,
};

/* The next byte from <p> on that may matter, or <end>. */
static inline const char *next_stop(const char *p, const char *end)
{
#if defined(__SSE2__)
	const __m128i nine = _mm_set1_epi8(9);

	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i d = _mm_sub_epi8(v, _mm_set1_epi8('0'));
		__m128i m = _mm_cmpeq_epi8(_mm_min_epu8(d, nine), d); /* '0'..'9' */

		m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8('\'')));
		m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8('"')));
		m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8('$')));
		m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8('-')));
		m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8('/')));
		m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8('.')));
		m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8(';')));
		m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8('&')));
		m = _mm_or_si128(m, _mm_cmpeq_epi8(_mm_or_si128(v, _mm_set1_epi8(0x20)),
		                                   _mm_set1_epi8('y')));
		unsigned bits = (unsigned)_mm_movemask_epi8(m);
		if (bits)
			return p + __builtin_ctz(bits);
		p += 16;
	}
#endif
	while (p < end && !stop[(unsigned char)*p])
		p++;
	return p;
}

/* Whether the byte before <p> (not before <sql>) continues a word. */
static inline bool after_word(const char *sql, const char *p)
{
	return p > sql && IS(p[-1], F_CONT);
}

/* Appends [from, to) and the mark of the literal of <kind> at <to>. */
static inline size_t put_run(char *k, size_t w, const char *from, const char *to, char kind)
{
	size_t n = (size_t)(to - from);

	memcpy(k + w, from, n);
	w += n;
	k[w++] = '\0';
	k[w++] = kind;
	return w;
}

uint64_t proto_sql_skeleton(const char *sql, size_t len)
{
	/* a literal is at least one byte and its mark two */
	char k[2 * PROTO_SQL_SKEL_MAX];
	const char *p = sql, *end = sql + len, *run = sql, *q;
	size_t w = 0;
	char kind;

	/* a NUL ends a text for the full scanner, and would read as a mark
	 * here; the lexers below would step over it in a comment or string */
	if (len > PROTO_SQL_SKEL_MAX || memchr(sql, '\0', len))
		return 0;
	for (;;) {
		p = next_stop(p, end);
		if (p == end)
			break;
		switch (*p) {
		case '.':
			if (!(p + 1 < end && IS(p[1], F_DIGIT))) {
				p += p + 1 < end && p[1] == '.' ? 2 : 1; /* "..", as the scanner */
				continue;
			}
			q = lex_number(p, end); /* ".5" */
			kind = 'n';
			break;
		case '\'':
			if (after_word(sql, p))
				return 0;
			q = lex_string(p + 1, end, STR_PLAIN);
			kind = 's';
			break;
		case '"':
			p = lex_qident(p + 1, end);
			continue;
		case '-':
			if (p + 1 < end && p[1] == '-')
				while (p < end && *p != '\n' && *p != '\r')
					p++;
			else
				p++;
			continue;
		case '/':
			p = p + 1 < end && p[1] == '*' ? lex_block_comment(p, end) : p + 1;
			continue;
		case ';':
			for (q = p + 1; q < end; q++)
				if (cclass[(unsigned char)*q] != C_SPACE)
					return 0;
			p = end;
			continue;
		case '&':
			/* U& at the start of a word */
			if (after_word(sql, p) && (p[-1] | 0x20) == 'u' && !after_word(sql, p - 1))
				return 0;
			p++;
			continue;
		case 'y':
		case 'Y':
			/* the word "by" */
			if (after_word(sql, p) && (p[-1] | 0x20) == 'b' &&
			    !after_word(sql, p - 1) && !(p + 1 < end && IS(p[1], F_CONT)))
				return 0;
			p++;
			continue;
		case '$':
			return 0;
		default: /* a digit */
			if (after_word(sql, p)) {
				p++;
				continue;
			}
			q = lex_number(p, end);
			kind = 'n';
			break;
		}
		/* a literal at [p, q) */
		w = put_run(k, w, run, p, kind);
		p = run = q;
	}
	memcpy(k + w, run, (size_t)(end - run));
	w += (size_t)(end - run);
	return XXH3_64bits(k, w) | 1;
}
