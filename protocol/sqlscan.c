/*
 * SQL scanner: one pass over the text of a simple Query or a Parse, on the
 * hot path, with no allocation. It follows PostgreSQL 15's lexer (scan.l)
 * closely enough to never mistake the inside of a string, a dollar quote, a
 * quoted identifier or a comment for code, and for each statement it writes
 * the normalized text (literals as $n, comments dropped, whitespace runs as
 * one space, an IN list of literals as one $n), fingerprints it, finds the
 * leading keyword and reads "sluice:" hints from comments.
 *
 * The fingerprint is an XXH3 hash of a canonical token stream kept apart
 * from the displayed text: every token followed by one space, unquoted words
 * lower-cased, a literal as one NUL byte. So spacing, case, comments and
 * literal values do not change it, a client's $n stays apart from a literal
 * (as pg_stat_statements keeps a Param apart from a Const), and it does not
 * depend on the size of the caller's buffer. Literals are written to the
 * buffer as NUL markers and numbered when the statement ends, since the
 * highest $n the statement already holds may come after them.
 */
#include "protocol/proto.h"
#include "protocol/sqllex.h"

#include <string.h>

#define XXH_INLINE_ALL /* XXH3 inlined, and XXH3_state_t usable on the stack */
#include <xxhash.h>

/* ---- keywords ---- */

/* Each keyword and its name; the enum order is proto.h's. */
#define KW_LIST(X)                                                                                 \
	X(PROTO_KW_SELECT, "select")                                                               \
	X(PROTO_KW_INSERT, "insert")                                                               \
	X(PROTO_KW_UPDATE, "update")                                                               \
	X(PROTO_KW_DELETE, "delete")                                                               \
	X(PROTO_KW_MERGE, "merge")                                                                 \
	X(PROTO_KW_WITH, "with")                                                                   \
	X(PROTO_KW_VALUES, "values")                                                               \
	X(PROTO_KW_TABLE, "table")                                                                 \
	X(PROTO_KW_COPY, "copy")                                                                   \
	X(PROTO_KW_BEGIN, "begin")                                                                 \
	X(PROTO_KW_START, "start")                                                                 \
	X(PROTO_KW_COMMIT, "commit")                                                               \
	X(PROTO_KW_END, "end")                                                                     \
	X(PROTO_KW_ROLLBACK, "rollback")                                                           \
	X(PROTO_KW_ABORT, "abort")                                                                 \
	X(PROTO_KW_SAVEPOINT, "savepoint")                                                         \
	X(PROTO_KW_RELEASE, "release")                                                             \
	X(PROTO_KW_PREPARE, "prepare")                                                             \
	X(PROTO_KW_EXECUTE, "execute")                                                             \
	X(PROTO_KW_DEALLOCATE, "deallocate")                                                       \
	X(PROTO_KW_SET, "set")                                                                     \
	X(PROTO_KW_RESET, "reset")                                                                 \
	X(PROTO_KW_SHOW, "show")                                                                   \
	X(PROTO_KW_EXPLAIN, "explain")                                                             \
	X(PROTO_KW_CREATE, "create")                                                               \
	X(PROTO_KW_ALTER, "alter")                                                                 \
	X(PROTO_KW_DROP, "drop")                                                                   \
	X(PROTO_KW_TRUNCATE, "truncate")                                                           \
	X(PROTO_KW_GRANT, "grant")                                                                 \
	X(PROTO_KW_REVOKE, "revoke")                                                               \
	X(PROTO_KW_COMMENT, "comment")                                                             \
	X(PROTO_KW_VACUUM, "vacuum")                                                               \
	X(PROTO_KW_ANALYZE, "analyze")                                                             \
	X(PROTO_KW_LISTEN, "listen")                                                               \
	X(PROTO_KW_UNLISTEN, "unlisten")                                                           \
	X(PROTO_KW_NOTIFY, "notify")                                                               \
	X(PROTO_KW_DO, "do")                                                                       \
	X(PROTO_KW_CALL, "call")                                                                   \
	X(PROTO_KW_LOCK, "lock")                                                                   \
	X(PROTO_KW_DISCARD, "discard")                                                             \
	X(PROTO_KW_DECLARE, "declare")                                                             \
	X(PROTO_KW_FETCH, "fetch")                                                                 \
	X(PROTO_KW_MOVE, "move")                                                                   \
	X(PROTO_KW_CLOSE, "close")                                                                 \
	X(PROTO_KW_REFRESH, "refresh")                                                             \
	X(PROTO_KW_REINDEX, "reindex")                                                             \
	X(PROTO_KW_CLUSTER, "cluster")                                                             \
	X(PROTO_KW_CHECKPOINT, "checkpoint")

#define KW_NAME(e, name) [e] = (name),
#define KW_LEN(e, name)  [e] = sizeof(name) - 1,

static const char *const kw_names[] = {
        [PROTO_KW_NONE] = "",
        KW_LIST(KW_NAME)[PROTO_KW_OTHER] = "other",
};

/* Their lengths, for kw_lookup(). */
static const uint8_t kw_lens[] = {KW_LIST(KW_LEN)};

const char *proto_sql_kw_name(enum proto_sql_kw kw)
{
	if ((unsigned)kw >= sizeof(kw_names) / sizeof(kw_names[0]))
		return "";
	return kw_names[kw];
}

/*
 * The keyword a statement's first word names. Candidates are picked by the
 * first letter so that a statement costs a few comparisons, not fifty.
 */
static uint8_t kw_lookup(const char *w, size_t n)
{
	static const uint8_t by_letter[26][8] = {
	        ['a' - 'a'] = {PROTO_KW_ALTER, PROTO_KW_ANALYZE, PROTO_KW_ABORT},
	        ['b' - 'a'] = {PROTO_KW_BEGIN},
	        ['c' - 'a'] = {PROTO_KW_CREATE, PROTO_KW_COMMIT, PROTO_KW_COPY, PROTO_KW_CALL,
	                       PROTO_KW_CLOSE, PROTO_KW_COMMENT, PROTO_KW_CLUSTER,
	                       PROTO_KW_CHECKPOINT},
	        ['d' - 'a'] = {PROTO_KW_DELETE, PROTO_KW_DROP, PROTO_KW_DO, PROTO_KW_DEALLOCATE,
	                       PROTO_KW_DISCARD, PROTO_KW_DECLARE},
	        ['e' - 'a'] = {PROTO_KW_EXECUTE, PROTO_KW_EXPLAIN, PROTO_KW_END},
	        ['f' - 'a'] = {PROTO_KW_FETCH},
	        ['g' - 'a'] = {PROTO_KW_GRANT},
	        ['i' - 'a'] = {PROTO_KW_INSERT},
	        ['l' - 'a'] = {PROTO_KW_LISTEN, PROTO_KW_LOCK},
	        ['m' - 'a'] = {PROTO_KW_MERGE, PROTO_KW_MOVE},
	        ['n' - 'a'] = {PROTO_KW_NOTIFY},
	        ['p' - 'a'] = {PROTO_KW_PREPARE},
	        ['r' - 'a'] = {PROTO_KW_ROLLBACK, PROTO_KW_RELEASE, PROTO_KW_RESET, PROTO_KW_REVOKE,
	                       PROTO_KW_REFRESH, PROTO_KW_REINDEX},
	        ['s' - 'a'] = {PROTO_KW_SELECT, PROTO_KW_SET, PROTO_KW_SHOW, PROTO_KW_START,
	                       PROTO_KW_SAVEPOINT},
	        ['t' - 'a'] = {PROTO_KW_TABLE, PROTO_KW_TRUNCATE},
	        ['u' - 'a'] = {PROTO_KW_UPDATE, PROTO_KW_UNLISTEN},
	        ['v' - 'a'] = {PROTO_KW_VALUES, PROTO_KW_VACUUM},
	        ['w' - 'a'] = {PROTO_KW_WITH},
	};
	unsigned first = (unsigned char)(w[0] | 0x20) - 'a';

	if (n < 2 || n > 10 || first >= 26)
		return PROTO_KW_OTHER;
	for (unsigned i = 0; i < 8 && by_letter[first][i]; i++) {
		uint8_t kw = by_letter[first][i];
		if (n == kw_lens[kw] && ci_eq(w, n, kw_names[kw], n))
			return kw;
	}
	if (WORD_IS(w, n, "analyse")) /* PostgreSQL takes both spellings */
		return PROTO_KW_ANALYZE;
	return PROTO_KW_OTHER;
}

/*
 * Whether a '-' right after the word <w, n> is a sign. PostgreSQL's grammar
 * folds a sign into the numeric constant after it (doNegate) wherever an
 * operand may start; a reserved word cannot be an operand, so after those
 * of them that take one, "-1" is one literal. After any other word (a column,
 * CURRENT_DATE, END of a CASE) the minus is an operator.
 */
static bool takes_operand(const char *w, size_t n)
{
	if (n < 2 || n > 10)
		return false;
	switch (w[0] | 0x20) {
	case 'a':
		return WORD_IS(w, n, "and") || WORD_IS(w, n, "all") || WORD_IS(w, n, "any") ||
		       WORD_IS(w, n, "asymmetric");
	case 'b':
		return WORD_IS(w, n, "by") || WORD_IS(w, n, "between") || WORD_IS(w, n, "both");
	case 'c':
		return WORD_IS(w, n, "case");
	case 'd':
		return WORD_IS(w, n, "default") || WORD_IS(w, n, "distinct");
	case 'e':
		return WORD_IS(w, n, "else") || WORD_IS(w, n, "escape");
	case 'f':
		return WORD_IS(w, n, "from") || WORD_IS(w, n, "for");
	case 'h':
		return WORD_IS(w, n, "having");
	case 'i':
		return WORD_IS(w, n, "ilike");
	case 'l':
		return WORD_IS(w, n, "limit") || WORD_IS(w, n, "like") || WORD_IS(w, n, "leading");
	case 'n':
		return WORD_IS(w, n, "not");
	case 'o':
		return WORD_IS(w, n, "or") || WORD_IS(w, n, "on") || WORD_IS(w, n, "offset") ||
		       WORD_IS(w, n, "overlaps");
	case 'p':
		return WORD_IS(w, n, "placing");
	case 'r':
		return WORD_IS(w, n, "returning") || WORD_IS(w, n, "return");
	case 's':
		return WORD_IS(w, n, "select") || WORD_IS(w, n, "some") ||
		       WORD_IS(w, n, "symmetric") || WORD_IS(w, n, "similar");
	case 't':
		return WORD_IS(w, n, "then") || WORD_IS(w, n, "to") || WORD_IS(w, n, "trailing");
	case 'u':
		return WORD_IS(w, n, "using");
	case 'v':
		return WORD_IS(w, n, "variadic");
	case 'w':
		return WORD_IS(w, n, "where") || WORD_IS(w, n, "when") || WORD_IS(w, n, "with");
	default:
		return false;
	}
}

/* Words that end an ORDER BY / GROUP BY list at its own depth. */
static bool ends_by_list(const char *w, size_t n)
{
	return WORD_IS(w, n, "select") || WORD_IS(w, n, "union") || WORD_IS(w, n, "intersect") ||
	       WORD_IS(w, n, "except") || WORD_IS(w, n, "having") || WORD_IS(w, n, "window") ||
	       WORD_IS(w, n, "limit") || WORD_IS(w, n, "offset") || WORD_IS(w, n, "fetch") ||
	       WORD_IS(w, n, "for") || WORD_IS(w, n, "values") || WORD_IS(w, n, "returning");
}

/* ---- hints ---- */

/* Folds a hint into <hints, ttl>: nocache wins over cache, whatever the
 * order, and drops the ttl. */
static void hint_add(uint8_t *hints, uint32_t *ttl, uint8_t h, uint32_t t)
{
	if (h == PROTO_SQL_HINT_NOCACHE || (*hints & PROTO_SQL_HINT_NOCACHE)) {
		*hints = PROTO_SQL_HINT_NOCACHE;
		*ttl = 0;
		return;
	}
	*hints |= h;
	if (t)
		*ttl = t;
}

/* The "sluice:" hints in the comment text [p, end). */
static void read_hints(const char *p, const char *end, uint8_t *hints, uint32_t *ttl)
{
	for (; end - p >= 12; p++) { /* "sluice:cache" is the shortest */
		const char *q = p + 7;

		if ((*p | 0x20) != 's' || !STARTS(p, end, "sluice:"))
			continue;
		if (STARTS(q, end, "nocache") && (q + 7 == end || !IS(q[7], F_CONT))) {
			hint_add(hints, ttl, PROTO_SQL_HINT_NOCACHE, 0);
			p = q + 6;
		} else if (STARTS(q, end, "cache") && (q + 5 == end || !IS(q[5], F_CONT))) {
			uint32_t t = 0;

			q += 5;
			p = q - 1;
			while (q < end && (*q == ' ' || *q == '\t'))
				q++;
			if (STARTS(q, end, "ttl=")) {
				for (q += 4; q < end && IS(*q, F_DIGIT); q++)
					t = t > (UINT32_MAX - 9) / 10
					            ? UINT32_MAX
					            : t * 10 + (uint32_t)(*q - '0');
				p = q - 1;
			}
			hint_add(hints, ttl, PROTO_SQL_HINT_CACHE, t);
		}
	}
}

/* ---- scanner state ---- */

/* The handlers of common tokens, inlined into the main loop. */
#define HOT static inline __attribute__((always_inline))

#define CANON_CAP 1024       /* canonical bytes hashed in one go; longer streams */
#define MARKS_MAX 64         /* literal markers whose place is remembered */
#define PARAM_MAX 100000000u /* $n above this counts as this */

enum prev_tok {
	PV_START,   /* start of the statement: a '-' here is a sign */
	PV_OP,      /* an operator */
	PV_OPEN,    /* ( or [ */
	PV_COMMA,   /* , */
	PV_SEMI,    /* ; kept inside a statement */
	PV_COLON,   /* : (array slices) or := */
	PV_WORD,    /* a word: see takes_operand() */
	PV_OPERAND, /* literal, parameter, quoted identifier, ) or ] */
	PV_NONE,    /* ::, ., anything else: a '-' after it is an operator */
};

enum in_state {
	IN_NONE, /* no IN list being watched */
	IN_ELEM, /* after "IN (" or a comma: a literal may come */
	IN_SEP,  /* after a literal: a comma or ")" may come */
};

enum tok_kind {
	K_WORD,
	K_LPAREN,
	K_LIT,    /* a literal: may extend an IN list */
	K_COMMA,  /* may extend an IN list */
	K_RPAREN, /* may close an IN list */
	K_OTHER,
};

struct sc {
	const char *sql, *end;
	struct proto_sql_scan *out;
	bool complete;

	/* normalized text: buf[0, lim) holds text, each statement ends in a NUL */
	char *buf;
	size_t cap, lim, w;

	/* the segment: the text since the last split */
	struct proto_sql_stmt *st; /* NULL until the segment's first token */
	const char *seg_first;     /* its first token or comment, NULL if none */
	const char *src_end;       /* end of its last token or comment */
	uint8_t seg_hints;         /* hints read before its first token */
	uint32_t seg_ttl;

	/* the statement being scanned */
	size_t norm_off;
	bool fast;       /* the rest of the text fits in both the buffer and the
	                    canonical chunk: no bound to check (the normalized
	                    text is never longer than its source, the canonical
	                    form never twice as long) */
	bool full;       /* the buffer ran out: the rest is not written */
	bool pend_space; /* whitespace or a comment came since the last token */
	bool kw_done;
	uint8_t prev;   /* enum prev_tok */
	const char *pw; /* the previous word, when prev is PV_WORD */
	size_t pwn;
	uint32_t maxparam;         /* highest $n in the text */
	uint32_t nlit;             /* literals so far */
	uint32_t nmark;            /* literal markers in the buffer */
	uint32_t marks[MARKS_MAX]; /* their offsets from norm_off */
	unsigned depth;            /* parentheses */
	int8_t routine;            /* CREATE [OR REPLACE] FUNCTION|PROCEDURE: 0..3 on the
	                              way, 4 yes, -1 no */
	unsigned body;             /* BEGIN .. END nesting of its SQL-standard body */
	uint8_t uesc;              /* 1 after a U& token, 2 after its UESCAPE */
	bool by_list;              /* in an ORDER BY / GROUP BY list ... */
	unsigned by_depth;         /* ... at this depth */
	uint8_t in;                /* enum in_state */
	size_t in_w;               /* the buffer right after "IN (" */
	bool in_full;
	uint32_t in_nlit, in_nmark, in_nelem;
	unsigned semis; /* ';' held back, past the last statement kept apart */
	size_t semi_w;
	bool semi_full;

	/* canonical form of the statement, for the fingerprint */
	size_t cw;
	bool streaming;
	char canon[CANON_CAP + 8]; /* + room for the last 8-byte store */
	XXH3_state_t hs;
};

/* ---- canonical form ---- */

static void canon_flush(struct sc *s)
{
	if (!s->streaming) {
		XXH3_INITSTATE(&s->hs);
		(void)XXH3_64bits_reset(&s->hs);
		s->streaming = true;
	}
	(void)XXH3_64bits_update(&s->hs, s->canon, s->cw);
	s->cw = 0;
}

static void canon_long(struct sc *s, const char *p, size_t n, bool folded)
{
	while (n) {
		size_t k;

		if (s->cw == CANON_CAP)
			canon_flush(s);
		k = CANON_CAP - s->cw < n ? CANON_CAP - s->cw : n;
		if (folded)
			for (size_t i = 0; i < k; i++)
				s->canon[s->cw + i] = fold(p[i]);
		else
			memcpy(s->canon + s->cw, p, k);
		s->cw += k;
		p += k;
		n -= k;
	}
	if (s->cw == CANON_CAP)
		canon_flush(s);
	s->canon[s->cw++] = ' ';
}

/* A token as it is, then the separator. */
HOT void canon_tok(struct sc *s, const char *p, size_t n)
{
	if (s->fast) {
		char *k = s->canon + s->cw;

		if (n == 1)
			*k = *p;
		else
			memcpy(k, p, n);
		k[n] = ' ';
		s->cw += n + 1;
		return;
	}
	if (n >= CANON_CAP - s->cw) {
		canon_long(s, p, n, false);
		return;
	}
	memcpy(s->canon + s->cw, p, n);
	s->cw += n;
	s->canon[s->cw++] = ' ';
}

/* A word, case-folded. */
static void canon_word(struct sc *s, const char *p, size_t n)
{
	char *k;

	if (n >= CANON_CAP - s->cw) {
		canon_long(s, p, n, true);
		return;
	}
	k = s->canon + s->cw;
	for (size_t i = 0; i < n; i++)
		k[i] = fold(p[i]);
	k[n] = ' ';
	s->cw += n + 1;
}

/* A literal: NUL is never in the text, so it stands for no other token. */
HOT void canon_lit(struct sc *s)
{
	canon_tok(s, "", 1);
}

/* ---- normalized text ---- */

static void out_space(struct sc *s)
{
	s->pend_space = false;
	if (s->full)
		return;
	if (s->w < s->lim)
		s->buf[s->w++] = ' ';
	else
		s->full = true;
}

/* Writes what fits, not splitting a UTF-8 sequence, and stops the text. */
static void out_cut(struct sc *s, const char *p, size_t n)
{
	if (s->w < s->lim) {
		size_t k = s->lim - s->w;

		while (k > 0 && k < n && ((unsigned char)p[k] & 0xc0) == 0x80)
			k--;
		memcpy(s->buf + s->w, p, k);
		s->w += k;
	}
	s->full = true;
}

HOT void emit(struct sc *s, const char *p, size_t n)
{
	if (s->fast) {
		char *d = s->buf + s->w;

		if (s->pend_space) {
			*d++ = ' ';
			s->pend_space = false;
		}
		if (n == 1)
			*d = *p;
		else
			memcpy(d, p, n);
		s->w = (size_t)(d - s->buf) + n;
		return;
	}
	if (s->pend_space)
		out_space(s);
	if (s->full)
		return;
	if (n <= s->lim - s->w && s->w <= s->lim) {
		memcpy(s->buf + s->w, p, n);
		s->w += n;
		return;
	}
	out_cut(s, p, n);
}

HOT void out_marker(struct sc *s)
{
	if (s->fast) {
		if (s->pend_space) {
			s->buf[s->w++] = ' ';
			s->pend_space = false;
		}
		if (s->nmark < MARKS_MAX)
			s->marks[s->nmark] = (uint32_t)(s->w - s->norm_off);
		s->nmark++;
		s->buf[s->w++] = '\0';
		return;
	}
	if (s->pend_space)
		out_space(s);
	if (s->full)
		return;
	if (s->w >= s->lim) {
		s->full = true;
		return;
	}
	if (s->nmark < MARKS_MAX)
		s->marks[s->nmark] = (uint32_t)(s->w - s->norm_off);
	s->nmark++;
	s->buf[s->w++] = '\0';
}

static unsigned ndigits(uint64_t v)
{
	unsigned d = 1;

	while (v >= 10) {
		v /= 10;
		d++;
	}
	return d;
}

/* Where marker <i> of the text <t, len> is, scanning from <from> (forward)
 * for those past the remembered ones. */
static size_t mark_fwd(const struct sc *s, const char *t, size_t len, uint32_t i, size_t from)
{
	const char *q;

	if (i < MARKS_MAX)
		return s->marks[i];
	q = memchr(t + from, '\0', len - from);
	return q ? (size_t)(q - t) : len;
}

/*
 * Turns the statement's literal markers in <t, len> into $n, numbered after
 * its highest $n, within <room> bytes; drops what does not fit (a whole
 * placeholder, or text up to a UTF-8 boundary) and says so in <cut>.
 * Returns the final length.
 */
static size_t expand(struct sc *s, char *t, size_t len, size_t room, bool *cut)
{
	uint32_t n = s->nmark;
	uint64_t base = s->maxparam;
	size_t fin = len;

	if (!n)
		return len;
	for (uint32_t i = 0; i < n; i++)
		fin += ndigits(base + i + 1);
	if (fin > room) {
		size_t src = 0, dst = 0, keep;
		uint32_t i;

		*cut = true;
		for (i = 0; i < n; i++) {
			size_t m = mark_fwd(s, t, len, i, src);
			size_t wd = 1 + ndigits(base + i + 1);

			if (dst + (m - src) > room)
				break;
			dst += m - src;
			if (dst + wd > room) {
				src = m;
				dst = room; /* no text after a dropped placeholder */
				break;
			}
			dst += wd;
			src = m + 1;
		}
		keep = src + (room - dst < len - src ? room - dst : len - src);
		while (keep > src && keep < len && ((unsigned char)t[keep] & 0xc0) == 0x80)
			keep--;
		len = keep;
		n = i;
		fin = len;
		for (i = 0; i < n; i++)
			fin += ndigits(base + i + 1);
	}
	/* back to front, so that each byte moves once */
	size_t d = fin, e = len;
	for (uint32_t i = n; i-- > 0;) {
		size_t m;
		unsigned nd = ndigits(base + i + 1);
		uint64_t v = base + i + 1;

		if (i < MARKS_MAX) {
			m = s->marks[i];
		} else {
			const char *z = t + e;

			while (z > t && z[-1] != '\0')
				z--;
			m = z > t ? (size_t)(z - t) - 1 : 0;
		}
		d -= e - (m + 1);
		memmove(t + d, t + m + 1, e - (m + 1));
		d -= nd; /* never below m: the text only grows */
		for (unsigned k = nd; k-- > 0; v /= 10)
			t[d + k] = (char)('0' + v % 10);
		t[--d] = '$';
		e = m;
	}
	return fin;
}

/* ---- statements ---- */

static void stmt_reset(struct sc *s)
{
	s->full = false;
	s->pend_space = false;
	s->kw_done = false;
	s->prev = PV_START;
	s->maxparam = 0;
	s->nlit = 0;
	s->nmark = 0;
	s->depth = 0;
	s->routine = 0;
	s->body = 0;
	s->uesc = 0;
	s->by_list = false;
	s->in = IN_NONE;
	s->semis = 0;
	s->cw = 0;
	s->streaming = false;
	s->fast = false;
}

static void stmt_open(struct sc *s, const char *tok)
{
	struct proto_sql_stmt *st = &s->out->stmt[s->out->nstmts++];

	if (!s->seg_first)
		s->seg_first = tok;
	st->fp = 0;
	st->norm_off = 0;
	st->norm_len = 0;
	st->src_off = (uint32_t)(s->seg_first - s->sql);
	st->src_len = 0;
	st->hints = s->seg_hints;
	st->cache_ttl = s->seg_ttl;
	st->nparams = 0;
	st->keyword = PROTO_KW_NONE;
	st->cut = false;
	s->st = st;
	s->norm_off = s->w;
	stmt_reset(s);
	s->fast = s->w <= s->lim && s->lim - s->w >= (size_t)(s->end - tok) + 8 &&
	          (size_t)(s->end - tok) < CANON_CAP / 2;
}

/* The IN list being watched turned out not to be literals only: give the
 * fingerprint the literals and commas it held back. */
static void in_fail(struct sc *s)
{
	for (uint32_t i = 0; i < s->in_nelem; i++) {
		if (i)
			canon_tok(s, ",", 1);
		canon_lit(s);
	}
	if (s->in == IN_ELEM && s->in_nelem)
		canon_tok(s, ",", 1);
	s->in = IN_NONE;
}

/* A ';' past the last statement kept apart, now followed by more text. */
static void semis_flush(struct sc *s)
{
	for (; s->semis; s->semis--)
		canon_tok(s, ";", 1);
}

/* Before any token: opens the statement, takes its keyword, ends an IN
 * list that <kind> cannot continue. Returns the U& state before it. */
HOT uint8_t tok_begin(struct sc *s, const char *tok, size_t n, enum tok_kind kind)
{
	uint8_t u;

	if (!s->st)
		stmt_open(s, tok);
	if (s->semis)
		semis_flush(s);
	if (!s->kw_done && kind != K_LPAREN) {
		s->kw_done = true;
		if (kind == K_WORD)
			s->st->keyword = kw_lookup(tok, n);
	}
	if (s->in != IN_NONE && kind != K_LIT && kind != K_COMMA && kind != K_RPAREN)
		in_fail(s);
	u = s->uesc;
	s->uesc = 0;
	return u;
}

static void stmt_end(struct sc *s, bool at_eof)
{
	struct proto_sql_stmt *st = s->st;
	bool cut = false, semi_ended = s->semis > 0;
	uint64_t fp;
	uint32_t np;

	if (s->in != IN_NONE)
		in_fail(s);
	if (s->semis) { /* the text ended in ';': not part of the statement */
		s->w = s->semi_w;
		s->full = s->semi_full;
		s->semis = 0;
	}
	if (s->streaming) {
		(void)XXH3_64bits_update(&s->hs, s->canon, s->cw);
		fp = XXH3_64bits_digest(&s->hs);
	} else {
		fp = XXH3_64bits(s->canon, s->cw);
	}
	st->fp = fp ? fp : 1;

	if (s->cap == 0) {
		st->norm_off = 0;
		st->norm_len = 0;
		cut = true;
	} else if (s->norm_off > s->lim) { /* no room left, not even for a NUL */
		st->norm_off = (uint32_t)s->lim;
		st->norm_len = 0;
		cut = true;
	} else {
		size_t fin = expand(s, s->buf + s->norm_off, s->w - s->norm_off,
		                    s->lim - s->norm_off, &cut);

		s->buf[s->norm_off + fin] = '\0';
		st->norm_off = (uint32_t)s->norm_off;
		st->norm_len = (uint32_t)fin;
		s->w = s->norm_off + fin + 1;
	}
	st->cut = cut || s->full || (at_eof && !s->complete && !semi_ended);
	np = s->maxparam + s->nlit;
	st->nparams = (uint16_t)(np > UINT16_MAX ? UINT16_MAX : np);
	st->src_len = (uint32_t)(s->src_end - s->sql) - st->src_off;
	s->st = NULL;
}

/* End of a segment at a split or at the end: a segment without a token is
 * no statement, and its hints go to the statement before it. */
static void seg_end(struct sc *s, bool at_eof)
{
	if (s->st) {
		stmt_end(s, at_eof);
	} else if (s->seg_hints && s->out->nstmts) {
		struct proto_sql_stmt *st = &s->out->stmt[s->out->nstmts - 1];

		hint_add(&st->hints, &st->cache_ttl, s->seg_hints, s->seg_ttl);
	}
	s->seg_first = NULL;
	s->seg_hints = 0;
	s->seg_ttl = 0;
	s->prev = PV_START;
}

/* ---- token handlers ---- */

static void comment(struct sc *s, const char *p, const char *q)
{
	if (!s->seg_first)
		s->seg_first = p;
	s->src_end = q;
	s->pend_space = true;
	if (s->st)
		read_hints(p, q, &s->st->hints, &s->st->cache_ttl);
	else
		read_hints(p, q, &s->seg_hints, &s->seg_ttl);
}

HOT void literal(struct sc *s, const char *p)
{
	(void)tok_begin(s, p, 0, K_LIT);
	out_marker(s);
	s->nlit++;
	if (s->in == IN_ELEM) {
		s->in = IN_SEP;
		s->in_nelem++;
	} else {
		if (s->in == IN_SEP)
			in_fail(s);
		canon_lit(s);
	}
	s->prev = PV_OPERAND;
}

/* A token kept as written (quoted identifiers, parameters, punctuation). */
HOT void plain(struct sc *s, const char *p, size_t n, uint8_t prev)
{
	(void)tok_begin(s, p, n, K_OTHER);
	emit(s, p, n);
	canon_tok(s, p, n);
	s->prev = prev;
}

HOT void word(struct sc *s, const char *p, size_t n)
{
	uint8_t u = tok_begin(s, p, n, K_WORD);

	if (u == 1 && WORD_IS(p, n, "uescape"))
		s->uesc = 2;
	if (s->routine >= 0 && s->routine < 4) {
		int8_t r = -1;

		if (s->routine == 0 && WORD_IS(p, n, "create"))
			r = 1;
		else if (s->routine == 1 && WORD_IS(p, n, "or"))
			r = 2;
		else if (s->routine == 2 && WORD_IS(p, n, "replace"))
			r = 3;
		else if ((s->routine == 1 || s->routine == 3) &&
		         (WORD_IS(p, n, "function") || WORD_IS(p, n, "procedure")))
			r = 4;
		s->routine = r;
	} else if (s->routine == 4 && s->depth == 0) {
		/* psql's rule: a BEGIN .. END body keeps its semicolons, and a
		 * CASE inside it has an END of its own */
		if (WORD_IS(p, n, "begin") || (s->body && WORD_IS(p, n, "case")))
			s->body++;
		else if (WORD_IS(p, n, "end") && s->body)
			s->body--;
	}
	if (n == 2 && WORD_IS(p, n, "by") && s->prev == PV_WORD &&
	    (WORD_IS(s->pw, s->pwn, "order") || WORD_IS(s->pw, s->pwn, "group"))) {
		s->by_list = true;
		s->by_depth = s->depth;
	} else if (s->by_list && s->depth == s->by_depth && ends_by_list(p, n)) {
		s->by_list = false;
	}
	if (s->fast) { /* display and fold eight bytes at a time */
		char *d = s->buf + s->w, *k = s->canon + s->cw;
		size_t i = 0;

		if (s->pend_space) {
			*d++ = ' ';
			s->pend_space = false;
		}
		for (; i < n && (size_t)(s->end - p) - i >= 8; i += 8) {
			uint64_t x;

			memcpy(&x, p + i, 8);
			memcpy(d + i, &x, 8);
			x = FOLD8(x);
			memcpy(k + i, &x, 8);
		}
		for (; i < n; i++) {
			d[i] = p[i];
			k[i] = fold(p[i]);
		}
		k[n] = ' ';
		s->w = (size_t)(d - s->buf) + n;
		s->cw += n + 1;
	} else {
		emit(s, p, n);
		canon_word(s, p, n);
	}
	s->prev = PV_WORD;
	s->pw = p;
	s->pwn = n;
}

/*
 * Whether the integer [p, q) is a position in an ORDER BY / GROUP BY list
 * ("ORDER BY 2"): a column reference, not a value, so PostgreSQL and
 * pg_stat_statements keep it, and so does this scanner.
 */
static bool by_position(const struct sc *s, const char *p, const char *q)
{
	const char *e = s->end;

	if (!s->by_list || s->depth != s->by_depth)
		return false;
	if (!(s->prev == PV_COMMA || (s->prev == PV_WORD && WORD_IS(s->pw, s->pwn, "by"))))
		return false;
	for (const char *r = p; r < q; r++)
		if (!IS(*r, F_DIGIT))
			return false;
	while (q < e && cclass[(unsigned char)*q] == C_SPACE)
		q++;
	return q == e || *q == ',' || *q == ')' || *q == ';' ||
	       cclass[(unsigned char)*q] == C_IDENT || (*q == '-' && q + 1 < e && q[1] == '-') ||
	       (*q == '/' && q + 1 < e && q[1] == '*');
}

HOT const char *number(struct sc *s, const char *p)
{
	const char *q = lex_number(p, s->end);

	if (by_position(s, p, q))
		plain(s, p, (size_t)(q - p), PV_OPERAND);
	else
		literal(s, p);
	return q;
}

/* A string literal from <p> (its prefix, if any) whose body is at <body>. */
static const char *string(struct sc *s, const char *p, const char *body, enum str_kind kind,
                          bool unicode)
{
	const char *q = lex_string(body, s->end, kind);

	if (s->uesc == 2) /* the escape character of UESCAPE: not a value */
		plain(s, p, (size_t)(q - p), PV_OPERAND);
	else
		literal(s, p);
	if (unicode)
		s->uesc = 1;
	return q;
}

static const char *dollar(struct sc *s, const char *p)
{
	const char *end = s->end, *q = p + 1;

	if (q < end && IS(*q, F_DIGIT)) { /* $n */
		uint32_t v = 0;

		for (; q < end && IS(*q, F_DIGIT); q++)
			v = v >= PARAM_MAX / 10 ? PARAM_MAX : v * 10 + (uint32_t)(*q - '0');
		plain(s, p, (size_t)(q - p), PV_OPERAND);
		if (v > s->maxparam)
			s->maxparam = v;
		return q;
	}
	while (q < end && IS(*q, F_TAG)) /* the first is not a digit: see above */
		q++;
	if (q < end && *q == '$') { /* $tag$ ... $tag$ */
		const char *r = lex_dollar_body(q + 1, end, p + 1, (size_t)(q - p - 1));

		literal(s, p);
		return r;
	}
	plain(s, p, 1, PV_NONE); /* a lone $: an error for the server */
	return p + 1;
}

HOT const char *op(struct sc *s, const char *p)
{
	const char *end = s->end;
	size_t n = op_len(p, end);

	if (n == 1 && *p == '-') {
		bool sign;

		switch (s->prev) {
		case PV_START:
		case PV_OP:
		case PV_OPEN:
		case PV_COMMA:
		case PV_SEMI:
		case PV_COLON:
			sign = true;
			break;
		case PV_WORD:
			sign = takes_operand(s->pw, s->pwn);
			break;
		default:
			sign = false;
			break;
		}
		if (sign) {
			const char *q = p + 1;

			while (q < end && cclass[(unsigned char)*q] == C_SPACE)
				q++;
			if (q < end &&
			    (IS(*q, F_DIGIT) || (*q == '.' && q + 1 < end && IS(q[1], F_DIGIT)))) {
				literal(s, p); /* "-1", "- 1": one literal */
				return lex_number(q, end);
			}
		}
	}
	plain(s, p, n, PV_OP);
	return p + n;
}

static void lparen(struct sc *s, const char *p)
{
	bool in_list = s->prev == PV_WORD && WORD_IS(s->pw, s->pwn, "in");

	(void)tok_begin(s, p, 1, K_LPAREN);
	emit(s, p, 1);
	canon_tok(s, p, 1);
	s->depth++;
	s->prev = PV_OPEN;
	if (in_list) { /* watch it: literals only collapse to one $n */
		s->in = IN_ELEM;
		s->in_w = s->w;
		s->in_full = s->full;
		s->in_nlit = s->nlit;
		s->in_nmark = s->nmark;
		s->in_nelem = 0;
	}
}

static void rparen(struct sc *s, const char *p)
{
	(void)tok_begin(s, p, 1, K_RPAREN);
	if (s->in == IN_SEP) {
		s->w = s->in_w;
		s->full = s->in_full;
		s->nlit = s->in_nlit;
		s->nmark = s->in_nmark;
		s->pend_space = false;
		s->in = IN_NONE;
		out_marker(s);
		s->nlit++;
		canon_lit(s);
	} else if (s->in == IN_ELEM) {
		in_fail(s);
	}
	emit(s, p, 1);
	canon_tok(s, p, 1);
	if (s->depth)
		s->depth--;
	if (s->by_list && s->depth < s->by_depth)
		s->by_list = false;
	s->prev = PV_OPERAND;
}

static void comma(struct sc *s, const char *p)
{
	(void)tok_begin(s, p, 1, K_COMMA);
	emit(s, p, 1);
	if (s->in == IN_SEP) {
		s->in = IN_ELEM;
	} else {
		if (s->in == IN_ELEM)
			in_fail(s);
		canon_tok(s, p, 1);
	}
	s->prev = PV_COMMA;
}

static void semicolon(struct sc *s, const char *p)
{
	if (!s->st) {
		seg_end(s, false);
		return;
	}
	if (s->body) { /* inside BEGIN ATOMIC .. END */
		plain(s, p, 1, PV_SEMI);
		return;
	}
	if (s->out->nstmts < PROTO_SQL_MAX_STMTS) {
		seg_end(s, false);
		return;
	}
	/* past the last statement kept apart: the rest folds into it; the ';'
	 * is written now and taken back if nothing follows it */
	if (s->in != IN_NONE)
		in_fail(s);
	if (!s->semis) {
		s->semi_w = s->w;
		s->semi_full = s->full;
	}
	s->semis++;
	emit(s, p, 1);
	s->by_list = false;
	s->prev = PV_SEMI;
}

void proto_sql_scan(const char *sql, size_t len, bool complete, char *buf, size_t cap,
                    struct proto_sql_scan *out)
{
	struct sc s;
	const char *p, *nul;

	nul = len ? memchr(sql, '\0', len) : NULL;
	s.sql = sql;
	s.end = nul ? nul : sql + len;
	s.out = out;
	s.complete = complete;
	s.buf = buf;
	s.cap = cap;
	s.lim = cap ? cap - 1 : 0;
	s.w = 0;
	s.st = NULL;
	s.seg_first = NULL;
	s.src_end = sql;
	s.seg_hints = 0;
	s.seg_ttl = 0;
	s.norm_off = 0;
	s.pw = NULL;
	s.pwn = 0;
	stmt_reset(&s);
	out->nstmts = 0;

	p = sql;
	while (p < s.end) {
		const char *q;
		unsigned char c = (unsigned char)*p;

		switch (cclass[c]) {
		case C_SPACE:
			do
				p++;
			while (p < s.end && cclass[(unsigned char)*p] == C_SPACE);
			s.pend_space = true;
			continue;
		case C_IDENT:
			if (p + 1 < s.end && p[1] == '\'') {
				char l = (char)(c | 0x20);

				if (l == 'e') {
					q = string(&s, p, p + 2, STR_ESCAPE, false);
					break;
				}
				if (l == 'b' || l == 'x') {
					q = string(&s, p, p + 2, STR_BITS, false);
					break;
				}
			}
			if ((c | 0x20) == 'u' && s.end - p > 2 && p[1] == '&' &&
			    (p[2] == '\'' || p[2] == '"')) {
				if (p[2] == '\'') {
					q = string(&s, p, p + 3, STR_PLAIN, true);
				} else {
					q = lex_qident(p + 3, s.end);
					plain(&s, p, (size_t)(q - p), PV_OPERAND);
					s.uesc = 1;
				}
				break;
			}
			q = p + 1;
			while (q < s.end && IS(*q, F_CONT))
				q++;
			word(&s, p, (size_t)(q - p));
			break;
		case C_DIGIT:
			q = number(&s, p);
			break;
		case C_QUOTE:
			q = string(&s, p, p + 1, STR_PLAIN, false);
			break;
		case C_DQUOTE:
			q = lex_qident(p + 1, s.end);
			plain(&s, p, (size_t)(q - p), PV_OPERAND);
			break;
		case C_DOLLAR:
			q = dollar(&s, p);
			break;
		case C_MINUS:
			if (p + 1 < s.end && p[1] == '-') {
				q = p + 2;
				while (q < s.end && *q != '\n' && *q != '\r')
					q++;
				comment(&s, p, q);
				p = q;
				continue;
			}
			q = op(&s, p);
			break;
		case C_SLASH:
			if (p + 1 < s.end && p[1] == '*') {
				q = lex_block_comment(p, s.end);
				comment(&s, p, q);
				p = q;
				continue;
			}
			q = op(&s, p);
			break;
		case C_OP:
			q = op(&s, p);
			break;
		case C_DOT:
			if (p + 1 < s.end && IS(p[1], F_DIGIT)) {
				q = number(&s, p);
			} else {
				q = p + (p + 1 < s.end && p[1] == '.' ? 2 : 1);
				plain(&s, p, (size_t)(q - p), PV_NONE);
			}
			break;
		case C_COLON:
			if (p + 1 < s.end && p[1] == ':') {
				q = p + 2;
				plain(&s, p, 2, PV_NONE);
			} else if (p + 1 < s.end && p[1] == '=') {
				q = p + 2;
				plain(&s, p, 2, PV_OP);
			} else {
				q = p + 1;
				plain(&s, p, 1, PV_COLON);
			}
			break;
		case C_SEMI:
			semicolon(&s, p);
			p++;
			continue;
		case C_LPAREN:
			lparen(&s, p);
			q = p + 1;
			break;
		case C_RPAREN:
			rparen(&s, p);
			q = p + 1;
			break;
		case C_COMMA:
			comma(&s, p);
			q = p + 1;
			break;
		case C_LBRACKET:
			plain(&s, p, 1, PV_OPEN);
			q = p + 1;
			break;
		case C_RBRACKET:
			plain(&s, p, 1, PV_OPERAND);
			q = p + 1;
			break;
		default:
			plain(&s, p, 1, PV_NONE);
			q = p + 1;
			break;
		}
		s.src_end = q;
		p = q;
		if (p < s.end && *p == ' ') { /* the usual single space, without a dispatch */
			p++;
			s.pend_space = true;
		}
	}
	seg_end(&s, true);
}
