/*
 * Pins, the pure part (pin.h): what a server's pin holds, and how the
 * statements sent and the replies received change it. No I/O, no proxy
 * state: the hooks that feed it (pin_hooks.c) and the unit tests call it.
 */
#include "proxy/pin.h"

#include <stdio.h>
#include <string.h>

#include "stats/stats.h"

#define R(x)         ((uint16_t)(1u << PROXY_PIN_##x))
#define ALL_BUT_LOAD ((uint16_t)(((1u << PROXY_PIN_NREASONS) - 1) & ~R(LOAD)))

_Static_assert(STATS_SS_TEMP == 1u << PROXY_PIN_TEMP && STATS_SS_AUTH == 1u << PROXY_PIN_AUTH &&
                       STATS_SS_CREATES == (1u << PROXY_PIN_NREASONS) - 1,
               "pin reasons follow the classifier's bits");
_Static_assert(PROXY_PIN_NREASONS <= 16, "struct pool keeps 16 pin counters");

static const char *const reason_names[PROXY_PIN_NREASONS] = {
        [PROXY_PIN_TEMP] = "temp",
        [PROXY_PIN_ADVISORY] = "advisory_lock",
        [PROXY_PIN_LISTEN] = "listen",
        [PROXY_PIN_SET] = "set",
        [PROXY_PIN_CURSOR] = "cursor",
        [PROXY_PIN_PREPARE] = "prepare",
        [PROXY_PIN_LOAD] = "load",
        [PROXY_PIN_ROLE] = "role",
        [PROXY_PIN_AUTH] = "session_authorization",
};

const char *proxy_pin_reason_name(enum proxy_pin_reason r)
{
	return (unsigned)r < PROXY_PIN_NREASONS ? reason_names[r] : "?";
}

const char *proxy_pin_describe(uint16_t held, char *buf, size_t len)
{
	size_t off = 0;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	for (int r = 0; r < PROXY_PIN_NREASONS; r++) {
		if (!(held & (1u << r)))
			continue;
		int n = snprintf(buf + off, len - off, "%s%s", off ? ", " : "", reason_names[r]);
		if (n < 0 || (size_t)n >= len - off)
			break;
		off += (size_t)n;
	}
	return buf;
}

/* The reasons a statement's bits end wholly (the counted ones, CLOSE and
 * DEALLOCATE of one name, are settled by their counts). */
static uint16_t ends_of(uint32_t ss)
{
	uint16_t r = 0;

	if (ss & STATS_SS_DISCARD_ALL)
		r |= ALL_BUT_LOAD;
	if (ss & STATS_SS_DISCARD_TEMP)
		r |= R(TEMP);
	if (ss & STATS_SS_UNLISTEN_ALL)
		r |= R(LISTEN);
	if (ss & STATS_SS_UNLOCK_ALL)
		r |= R(ADVISORY);
	if (ss & STATS_SS_RESET_ALL)
		r |= R(SET);
	if (ss & STATS_SS_RESET_ROLE)
		r |= R(ROLE);
	if (ss & STATS_SS_RESET_AUTH)
		r |= R(AUTH);
	if (ss & STATS_SS_CLOSE_ALL)
		r |= R(CURSOR);
	if (ss & STATS_SS_DEALLOCATE_ALL)
		r |= R(PREPARE);
	return r;
}

static bool names_has(const uint64_t *v, uint8_t n, uint64_t h)
{
	for (uint8_t i = 0; i < n; i++)
		if (v[i] == h)
			return true;
	return false;
}

/* Drop <h> from the list <v> of <*n>. */
static void names_drop(uint64_t *v, uint8_t *n, uint64_t h)
{
	for (uint8_t i = 0; i < *n; i++)
		if (v[i] == h) {
			v[i] = v[--*n];
			return;
		}
}

static void names_made(struct proxy_pin_names *nm, uint64_t h, bool many)
{
	if (!h || many || (nm->nheld == PROXY_PIN_NAMES && !names_has(nm->held, nm->nheld, h))) {
		nm->many = true;
		return;
	}
	/* made after an end of its name sent in this batch: it outlives it */
	names_drop(nm->ending, &nm->nending, h);
	if (!names_has(nm->held, nm->nheld, h))
		nm->held[nm->nheld++] = h;
}

/* An end of the name <h> was sent; one that does not fit is forgotten
 * (the state then seems held a while longer, never less). */
static void names_ended(struct proxy_pin_names *nm, uint64_t h)
{
	if (h && nm->nending < PROXY_PIN_NAMES && !names_has(nm->ending, nm->nending, h))
		nm->ending[nm->nending++] = h;
}

/* Settle <nm>: all of them end (<all>), or those named; true when none is
 * left. */
static bool names_settle(struct proxy_pin_names *nm, bool all)
{
	if (all) {
		nm->nheld = 0;
		nm->many = false;
	}
	for (uint8_t i = 0; i < nm->nending; i++)
		names_drop(nm->held, &nm->nheld, nm->ending[i]);
	nm->nending = 0;
	return nm->nheld == 0 && !nm->many;
}

uint16_t proxy_pin_sent_bits(struct proxy_pin *p, uint32_t ss, uint64_t name, bool many)
{
	uint16_t creates = (uint16_t)(ss & STATS_SS_CREATES), fresh;

	if (ss & STATS_SS_ROLLBACK)
		p->spoiled = true;
	p->ending |= ends_of(ss);
	if (ss & STATS_SS_CLOSE)
		names_ended(&p->cursors, name);
	if (ss & STATS_SS_DEALLOCATE)
		names_ended(&p->prepared, name);
	if ((ss & STATS_SS_MAY_END) && (p->held & PROXY_PIN_PROBED))
		p->may_end = true;
	if (!creates)
		return 0;
	/* state made now outlives an end sent before it in the same batch
	 * (and one sent after it in a folded text: erring on "held"), and a
	 * question sent before it, whose answer cannot know of it */
	p->ending &= (uint16_t)~creates;
	p->probing &= (uint16_t)~creates;
	if (creates & R(CURSOR))
		names_made(&p->cursors, name, many);
	if (creates & R(PREPARE))
		names_made(&p->prepared, name, many);
	fresh = creates & (uint16_t)~p->held;
	p->held |= creates;
	return fresh;
}

void proxy_pin_error_seen(struct proxy_pin *p)
{
	p->spoiled = true;
}

uint16_t proxy_pin_settle(struct proxy_pin *p, char status)
{
	uint16_t before = p->held, ends;

	if (status == 'T')
		return 0; /* the transaction goes on: its ends count when it commits */
	if (status == 'I' && !p->spoiled) {
		ends = p->ending;
		if (names_settle(&p->cursors, ends & R(CURSOR)))
			ends |= R(CURSOR);
		if (names_settle(&p->prepared, ends & R(PREPARE)))
			ends |= R(PREPARE);
		p->held &= (uint16_t)~ends;
	}
	/* 'E': the transaction failed and rolls back, its ends with it */
	p->ending = 0;
	p->cursors.nending = p->prepared.nending = 0;
	p->spoiled = false;
	return before & (uint16_t)~p->held;
}

uint16_t proxy_pin_probe_start(struct proxy_pin *p)
{
	uint16_t ask = p->held & PROXY_PIN_PROBED;

	/* one question at a time: a later end waits for the next settle */
	if (!p->may_end || p->probing || p->probe_zs)
		return 0;
	p->may_end = false;
	p->probing = ask;
	p->empty = 0;
	return ask;
}

uint16_t proxy_pin_probed(struct proxy_pin *p, uint16_t empty)
{
	uint16_t gone = p->probing & empty & p->held;

	p->held &= (uint16_t)~gone;
	p->probing = 0;
	p->empty = 0;
	return gone;
}
