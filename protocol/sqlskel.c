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

/* XXH3 inline: this is its one call on the fast path, on short input */
#define XXH_INLINE_ALL
#include <xxhash.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Bytes that may matter: digits and . (numbers), quotes, $, - and /
 * (comments), ;, & (U&), y (the word "by"), and NUL (it ends a text). */
static const uint8_t stop[256] = {
        ['0' ... '9'] = 1, ['\''] = 1, ['"'] = 1, ['$'] = 1, ['-'] = 1, ['/'] = 1,
        ['.'] = 1,         [';'] = 1,  ['&'] = 1, ['y'] = 1, ['Y'] = 1, ['\0'] = 1,
};

#if defined(__SSE2__)
/*
 * The bytes of <v> that may matter, one bit each. Two ranges take most of
 * them in three instructions each: '"' .. '\'' (" # $ % & ') and
 * '-' .. ';' (- . / 0-9 : ;). They also take #, % and :, which do not
 * matter and which the caller steps over: these are rare in SQL, and a
 * comparison per byte value costs more than the odd extra stop.
 */
static inline unsigned stop_bits(const char *p)
{
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
	__m128i a = _mm_sub_epi8(v, _mm_set1_epi8('"'));
	__m128i b = _mm_sub_epi8(v, _mm_set1_epi8('-'));
	__m128i m = _mm_cmpeq_epi8(_mm_min_epu8(a, _mm_set1_epi8('\'' - '"')), a);

	m = _mm_or_si128(m, _mm_cmpeq_epi8(_mm_min_epu8(b, _mm_set1_epi8(';' - '-')), b));
	m = _mm_or_si128(m,
	                 _mm_cmpeq_epi8(_mm_or_si128(v, _mm_set1_epi8(0x20)), _mm_set1_epi8('y')));
	m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_setzero_si128()));
	return (unsigned)_mm_movemask_epi8(m);
}
#endif

/*
 * The stops of a window of the text, 64 bytes from <base> (fewer at the
 * end): each block of it is read once, however many stops it holds, and
 * finding the next stop is a shift and a count of trailing zeros.
 */
struct window {
	const char *sql, *end; /* the text */
	const char *base;      /* the window's first byte */
	uint64_t bits;         /* bit i: base[i] may matter */
};

static inline void window_at(struct window *w, const char *base)
{
	size_t n = (size_t)(w->end - base);
	uint64_t bits = 0;

	w->base = base;
	if (n > 64)
		n = 64;
#if defined(__SSE2__)
	if (w->end - w->sql >= 16) {
		size_t i = 0;

		for (; i + 16 <= n; i += 16)
			bits |= (uint64_t)stop_bits(base + i) << i;
		if (i < n) {
			/* the text's last 16 bytes, of which those before
			 * base + i are in the window already */
			const char *last = w->end - 16;

			bits |= (uint64_t)(stop_bits(last) >> (base + i - last)) << i;
		}
		w->bits = bits;
		return;
	}
#endif
	for (size_t i = 0; i < n; i++)
		bits |= (uint64_t)stop[(unsigned char)base[i]] << i;
	w->bits = bits;
}

/* The next byte from <p> on that may matter, or the text's end. */
static inline const char *next_stop(struct window *w, const char *p)
{
	for (;;) {
		if (p >= w->end)
			return w->end;
		if ((size_t)(p - w->base) >= 64) {
			window_at(w, p); /* past the window (the lexers jump) */
			continue;
		}
		uint64_t bits = w->bits >> (p - w->base);

		if (bits)
			return p + __builtin_ctzll(bits);
		p = w->base + 64;
	}
}

/* Whether the byte before <p> (not before <sql>) continues a word. */
static inline bool after_word(const char *sql, const char *p)
{
	return p > sql && IS(p[-1], F_CONT);
}

/*
 * Whether a word may start at the word byte <q>, as the full scanner cuts
 * tokens: yes when no word byte is before it; no when the run of word
 * bytes before it holds no digit (it is one word, begun before <q>); and
 * when the run holds a digit, maybe: a number ends where a word begins
 * ("0U&" is 0 then U&, "0x1by" is 0 then x1by), which only a lexing from
 * the run's start would say, so the caller takes it for a start.
 */
static bool may_start_word(const char *sql, const char *q)
{
	const char *r = q;

	while (r > sql && IS(r[-1], F_CONT)) {
		r--;
		if (IS(*r, F_DIGIT))
			return true;
	}
	return r == q;
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

/* The skeleton's key; with <lits> (not NULL) what the text holds. */
static inline uint64_t skeleton(const char *sql, size_t len, struct proto_sql_lits *lits)
{
	/* a literal is at least one byte and its mark two */
	char k[2 * PROTO_SQL_SKEL_MAX];
	const char *p = sql, *end = sql + len, *run = sql, *q;
	size_t w = 0;
	char kind;
	/* a NUL ends a text for the full scanner, and would read as a mark
	 * here: one between tokens is a stop byte; one inside a string, a
	 * quoted identifier or a comment, which the lexers below step over,
	 * is looked for at the end, only when there was one of those */
	bool skipped = false;
	const char *lit_off = NULL, *lit_end = NULL;
	unsigned nlits = 0;

	struct window win = {.sql = sql, .end = end};

	if (len > PROTO_SQL_SKEL_MAX)
		return 0;
	window_at(&win, sql);
	for (;;) {
		p = next_stop(&win, p);
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
			skipped = true;
			break;
		case '"':
			p = lex_qident(p + 1, end);
			skipped = true;
			continue;
		case '-':
			if (p + 1 < end && p[1] == '-') {
				while (p < end && *p != '\n' && *p != '\r')
					p++;
				skipped = true;
			} else {
				p++;
			}
			continue;
		case '/':
			if (p + 1 < end && p[1] == '*') {
				p = lex_block_comment(p, end);
				skipped = true;
			} else {
				p++;
			}
			continue;
		case ';':
			for (q = p + 1; q < end; q++)
				if (cclass[(unsigned char)*q] != C_SPACE)
					return 0;
			p = end;
			continue;
		case '&':
			/* U& at the start of a word */
			if (after_word(sql, p) && (p[-1] | 0x20) == 'u' &&
			    may_start_word(sql, p - 1))
				return 0;
			p++;
			continue;
		case 'y':
		case 'Y':
			/* the word "by" */
			if (after_word(sql, p) && (p[-1] | 0x20) == 'b' &&
			    may_start_word(sql, p - 1) && !(p + 1 < end && IS(p[1], F_CONT)))
				return 0;
			p++;
			continue;
		case '#':
		case '%':
		case ':':
			p++; /* stops of the block scan that do not matter */
			continue;
		case '$':
		case '\0':
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
		if (lits) {
			if (nlits++ == 0 && kind == 'n') {
				lit_off = p;
				lit_end = q;
			}
		}
		w = put_run(k, w, run, p, kind);
		p = run = q;
	}
	if (skipped && memchr(sql, '\0', len))
		return 0;
	memcpy(k + w, run, (size_t)(end - run));
	w += (size_t)(end - run);
	if (lits) {
		lits->kind = PROTO_SQL_LITS_OTHER;
		lits->off = lits->len = 0;
		if (nlits == 0) {
			lits->kind = PROTO_SQL_LITS_NONE;
		} else if (nlits == 1 && lit_off) {
			/* an integer: digits only (not 1.5, 1e3, 5.) */
			const char *d = lit_off;

			while (d < lit_end && IS(*d, F_DIGIT))
				d++;
			if (d == lit_end) {
				lits->kind = PROTO_SQL_LITS_INT;
				lits->off = (uint32_t)(lit_off - sql);
				lits->len = (uint32_t)(lit_end - lit_off);
			}
		}
	}
	return XXH3_64bits(k, w) | 1;
}

uint64_t proto_sql_skeleton(const char *sql, size_t len)
{
	return skeleton(sql, len, NULL);
}

uint64_t proto_sql_skeleton_lits(const char *sql, size_t len, struct proto_sql_lits *lits)
{
	lits->kind = PROTO_SQL_LITS_OTHER;
	lits->off = lits->len = 0;
	return skeleton(sql, len, lits);
}
