/*
 * Pins (pin.c): transaction pooling that never leaks session state.
 *
 * A client of a transaction-mode pool that runs a statement leaving state
 * on its server connection beyond the transaction (a temporary table, a
 * session advisory lock, LISTEN, a plain SET of a parameter sluice does
 * not carry over, a WITH HOLD cursor, an SQL PREPARE, LOAD, SET ROLE or
 * SESSION AUTHORIZATION) keeps that server, with session semantics, until
 * the state is gone again; then the server is pooled as usual. The
 * statement bits come from the classifier (STATS_SS_*, once per shape).
 *
 * This header holds the pure part: what a server's pin holds and how
 * statements sent and replies received change it. It depends on nothing,
 * so it can be unit-tested alone; the hooks that feed it live in proxy.h.
 */
#ifndef SLUICE_PROXY_PIN_H
#define SLUICE_PROXY_PIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Why a client is pinned. The order is that of STATS_SS_TEMP..STATS_SS_AUTH
 * (bit <reason> of the statement bits creates state of that reason). */
enum proxy_pin_reason {
	PROXY_PIN_TEMP = 0, /* temporary table, view, sequence or function */
	PROXY_PIN_ADVISORY, /* session advisory lock */
	PROXY_PIN_LISTEN,   /* LISTEN */
	PROXY_PIN_SET,      /* SET of a parameter sluice does not track */
	PROXY_PIN_CURSOR,   /* WITH HOLD cursor */
	PROXY_PIN_PREPARE,  /* SQL PREPARE */
	PROXY_PIN_LOAD,     /* LOAD: never ends; the server closes with its client */
	PROXY_PIN_ROLE,     /* SET ROLE */
	PROXY_PIN_AUTH,     /* SET SESSION AUTHORIZATION */
	PROXY_PIN_NREASONS
};

/* In a statement's bits as the relay carries them: the shape was known
 * (the rest of the bits can be trusted). */
#define PROXY_SS_KNOWN (1u << 31)
/* ... and it sets or resets extra_float_digits, which sluice follows for
 * an autocommit SET (pin_hooks.c) and pins for otherwise. */
#define PROXY_SS_EFD (1u << 30)
/* ... or sets it back with the rest (RESET ALL, DISCARD ALL) */
#define PROXY_SS_EFD_ALL (1u << 29)
#define PROXY_SS_EFD_ANY (PROXY_SS_EFD | PROXY_SS_EFD_ALL)

/* Cursors (or prepared statements) a pin knows by name; beyond, or when a
 * name is not known, only an "all" form (CLOSE ALL, DEALLOCATE ALL,
 * DISCARD ALL) or the client leaving ends them. */
#define PROXY_PIN_NAMES 8

/* The WITH HOLD cursors, or the SQL prepared statements, a server holds:
 * hashes of their names (stats_name_hash). */
struct proxy_pin_names {
	uint64_t held[PROXY_PIN_NAMES];   /* made, and not ended */
	uint64_t ending[PROXY_PIN_NAMES]; /* a CLOSE / DEALLOCATE sent since the last settle */
	uint8_t nheld, nending;
	bool many; /* some were not named or did not fit: <held> is not all */
};

/*
 * The session state a server connection holds for its transaction-mode
 * client. State is taken as held as soon as the statement that makes it
 * is sent (if it fails, the client just stays pinned a while longer);
 * what ends state counts only once the server has answered everything
 * with ReadyForQuery 'I' (its transaction committed), without an error or
 * a ROLLBACK in between (which would bring back what a DISCARD TEMP
 * dropped), so an end is never taken for done when it was not.
 */
struct proxy_pin {
	uint16_t held;                   /* 1 << enum proxy_pin_reason: state the server holds */
	uint16_t ending;                 /* reasons wholly ended by statements sent since the
	                                    last settle */
	struct proxy_pin_names cursors;  /* PROXY_PIN_CURSOR's */
	struct proxy_pin_names prepared; /* PROXY_PIN_PREPARE's */
	bool spoiled;                    /* an error or a rollback since: the ends do not count */
	bool may_end;     /* a statement that may end temp, advisory or listen state in part
	                     (UNLISTEN x, pg_advisory_unlock(k), DROP) was sent: once its
	                     transaction is over, the server is asked what it still holds */
	uint16_t probing; /* the reasons the question in flight speaks for: those held when
	                     it was sent, but for any made since (0 = none in flight) */
	uint16_t empty;   /* of those, the ones its answer found nothing left of */
	uint8_t probe_zs; /* hidden ReadyForQuery messages due until the question's */
	double since;     /* ev_now() when the first reason came */
};

/* The reasons the question (proxy_pin_probe_start) can tell the end of. */
#define PROXY_PIN_PROBED                                                                           \
	((uint16_t)((1u << PROXY_PIN_TEMP) | (1u << PROXY_PIN_ADVISORY) | (1u << PROXY_PIN_LISTEN)))

/* "temp", "advisory_lock", "listen", "set", "cursor", "prepare", "load",
 * "role", "session_authorization". */
const char *proxy_pin_reason_name(enum proxy_pin_reason r);

/*
 * A statement of bits <ss> (STATS_SS_*) was sent to the server of <p>;
 * <name> is the hash of the cursor or statement it names (0 = not known);
 * <many> when it may be several folded into one. Returns the reasons
 * newly held.
 */
uint16_t proxy_pin_sent_bits(struct proxy_pin *p, uint32_t ss, uint64_t name, bool many);
/* The server reported an error. */
void proxy_pin_error_seen(struct proxy_pin *p);
/*
 * A ReadyForQuery of <status> came and nothing else is outstanding: the
 * ends sent count if it is 'I' and nothing spoiled them. Returns the
 * reasons no longer held.
 */
uint16_t proxy_pin_settle(struct proxy_pin *p, char status);
/*
 * Called once the transaction is over ('I'): if a statement that may end
 * state in part was sent (<may_end>), the reasons the server should be
 * asked about, now <probing>; else 0. The answer goes to
 * proxy_pin_probed.
 */
uint16_t proxy_pin_probe_start(struct proxy_pin *p);
/* The answer came: of the reasons asked about, those in <empty> hold
 * nothing any more (unless made again since the question). Returns the
 * reasons no longer held. */
uint16_t proxy_pin_probed(struct proxy_pin *p, uint16_t empty);
/* Names of the reasons in <held> ("temp, listen") into <buf>. */
const char *proxy_pin_describe(uint16_t held, char *buf, size_t len);

#endif /* SLUICE_PROXY_PIN_H */
