/* The pure part of pins (proxy/pin.h): what statements sent and replies
 * received do to what a server holds for its transaction-mode client. */
#include <stdio.h>

#include <criterion/criterion.h>

#include "proxy/pin.h"
#include "stats/stats.h"

#define R(x) (1u << PROXY_PIN_##x)

static uint16_t sent(struct proxy_pin *p, uint32_t ss, const char *name)
{
	return proxy_pin_sent_bits(p, ss, name ? stats_name_hash(name) : 0, false);
}

Test(pin, make_then_end_outside_a_transaction)
{
	struct proxy_pin p = {0};

	cr_expect_eq(sent(&p, STATS_SS_LISTEN, NULL), R(LISTEN));
	cr_expect_eq(proxy_pin_settle(&p, 'I'), 0);
	cr_expect_eq(p.held, R(LISTEN));
	cr_expect_eq(sent(&p, STATS_SS_UNLISTEN_ALL, NULL), 0);
	cr_expect_eq(p.held, R(LISTEN), "an end counts only once answered");
	cr_expect_eq(proxy_pin_settle(&p, 'I'), R(LISTEN));
	cr_expect_eq(p.held, 0);
}

Test(pin, end_in_a_transaction_counts_at_commit_not_at_rollback)
{
	struct proxy_pin p = {0};

	sent(&p, STATS_SS_TEMP, NULL);
	sent(&p, STATS_SS_DISCARD_TEMP, NULL);
	cr_expect_eq(proxy_pin_settle(&p, 'T'), 0);
	cr_expect_eq(proxy_pin_settle(&p, 'I'), R(TEMP), "committed: the temp tables are gone");

	sent(&p, STATS_SS_TEMP, NULL);
	proxy_pin_settle(&p, 'I');
	sent(&p, STATS_SS_DISCARD_TEMP, NULL);
	proxy_pin_settle(&p, 'T');
	sent(&p, STATS_SS_ROLLBACK, NULL);
	cr_expect_eq(proxy_pin_settle(&p, 'I'), 0, "rolled back: DISCARD TEMP is undone");
	cr_expect_eq(p.held, R(TEMP));
}

Test(pin, error_voids_ends)
{
	struct proxy_pin p = {0};

	sent(&p, STATS_SS_SET, NULL);
	sent(&p, STATS_SS_RESET_ALL, NULL);
	proxy_pin_error_seen(&p);
	cr_expect_eq(proxy_pin_settle(&p, 'I'), 0);
	cr_expect_eq(p.held, R(SET));
	sent(&p, STATS_SS_RESET_ALL, NULL);
	cr_expect_eq(proxy_pin_settle(&p, 'E'), 0, "a failed transaction ends nothing");
	sent(&p, STATS_SS_RESET_ALL, NULL);
	cr_expect_eq(proxy_pin_settle(&p, 'I'), R(SET), "the void ends are not carried over");
}

Test(pin, state_made_after_an_end_in_one_batch_stays)
{
	struct proxy_pin p = {0};

	sent(&p, STATS_SS_LISTEN, NULL);
	proxy_pin_settle(&p, 'I');
	sent(&p, STATS_SS_UNLISTEN_ALL, NULL);
	sent(&p, STATS_SS_LISTEN, NULL);
	cr_expect_eq(proxy_pin_settle(&p, 'I'), 0);
	cr_expect_eq(p.held, R(LISTEN));
}

Test(pin, cursors_by_name)
{
	struct proxy_pin p = {0};

	sent(&p, STATS_SS_CURSOR, "a");
	sent(&p, STATS_SS_CURSOR, "b");
	proxy_pin_settle(&p, 'I');
	/* a cursor of the transaction only, declared and closed */
	sent(&p, STATS_SS_CLOSE, "tmp");
	proxy_pin_settle(&p, 'T');
	proxy_pin_settle(&p, 'I');
	cr_expect_eq(p.held, R(CURSOR), "closing another cursor ends nothing");
	sent(&p, STATS_SS_CLOSE, "a");
	cr_expect_eq(proxy_pin_settle(&p, 'I'), 0, "b is still held");
	sent(&p, STATS_SS_CLOSE, "b");
	cr_expect_eq(proxy_pin_settle(&p, 'I'), R(CURSOR));
}

Test(pin, unnamed_or_too_many_need_an_all_form)
{
	struct proxy_pin p = {0};
	char name[16];

	sent(&p, STATS_SS_PREPARE, NULL); /* a portal's: its name is not known */
	proxy_pin_settle(&p, 'I');
	sent(&p, STATS_SS_DEALLOCATE, "x");
	cr_expect_eq(proxy_pin_settle(&p, 'I'), 0);
	sent(&p, STATS_SS_DEALLOCATE_ALL, NULL);
	cr_expect_eq(proxy_pin_settle(&p, 'I'), R(PREPARE));

	for (int i = 0; i < PROXY_PIN_NAMES + 1; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		sent(&p, STATS_SS_CURSOR, name);
	}
	proxy_pin_settle(&p, 'I');
	for (int i = 0; i < PROXY_PIN_NAMES + 1; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		sent(&p, STATS_SS_CLOSE, name);
		proxy_pin_settle(&p, 'I');
	}
	cr_expect_eq(p.held, R(CURSOR), "one did not fit: only CLOSE ALL can tell");
	sent(&p, STATS_SS_DISCARD_ALL, NULL);
	cr_expect_eq(proxy_pin_settle(&p, 'I'), R(CURSOR));
}

Test(pin, discard_all_ends_all_but_load)
{
	struct proxy_pin p = {0};

	cr_expect_eq(sent(&p, STATS_SS_CREATES & ~(STATS_SS_CURSOR | STATS_SS_PREPARE), NULL),
	             (uint16_t)((1u << PROXY_PIN_NREASONS) - 1) & ~(R(CURSOR) | R(PREPARE)));
	sent(&p, STATS_SS_CURSOR, "c");
	sent(&p, STATS_SS_PREPARE, "s");
	proxy_pin_settle(&p, 'I');
	sent(&p, STATS_SS_DISCARD_ALL, NULL);
	proxy_pin_settle(&p, 'I');
	cr_expect_eq(p.held, R(LOAD), "nothing unloads a library");
}

Test(pin, describe)
{
	char buf[64];

	cr_expect_str_eq(proxy_pin_describe(R(TEMP) | R(LISTEN), buf, sizeof(buf)), "temp, listen");
	cr_expect_str_eq(proxy_pin_describe(0, buf, sizeof(buf)), "");
	cr_expect_str_eq(proxy_pin_reason_name(PROXY_PIN_AUTH), "session_authorization");
}

/* UNLISTEN x, pg_advisory_unlock(k), DROP: the server is asked once the
 * transaction is over, and only what it says is empty ends. */
Test(pin, partial_ends_are_asked_about)
{
	struct proxy_pin p = {0};

	sent(&p, STATS_SS_MAY_END, NULL);
	cr_expect_not(p.may_end, "nothing held: nothing to ask");
	sent(&p, STATS_SS_LISTEN, NULL);
	sent(&p, STATS_SS_ADVISORY, NULL);
	sent(&p, STATS_SS_SET, NULL);
	proxy_pin_settle(&p, 'I');
	cr_expect_eq(proxy_pin_probe_start(&p), 0, "no partial end sent: no question");
	sent(&p, STATS_SS_MAY_END, NULL);
	cr_expect(p.may_end);
	cr_expect_eq(proxy_pin_settle(&p, 'I'), 0, "a partial end ends nothing by itself");
	cr_expect_eq(proxy_pin_probe_start(&p), R(LISTEN) | R(ADVISORY),
	             "asked about what it can tell of");
	cr_expect_eq(proxy_pin_probe_start(&p), 0, "one question at a time");
	cr_expect_eq(proxy_pin_probed(&p, R(LISTEN) | R(TEMP)), R(LISTEN));
	cr_expect_eq(p.held, R(ADVISORY) | R(SET), "the locks left and the SET stay");
}

Test(pin, state_made_after_the_question_stays)
{
	struct proxy_pin p = {0};

	sent(&p, STATS_SS_LISTEN, NULL);
	sent(&p, STATS_SS_MAY_END, NULL);
	proxy_pin_settle(&p, 'I');
	cr_expect_eq(proxy_pin_probe_start(&p), R(LISTEN));
	/* LISTEN y goes out after the question: its answer cannot know of it */
	sent(&p, STATS_SS_LISTEN, NULL);
	cr_expect_eq(proxy_pin_probed(&p, R(LISTEN)), 0);
	cr_expect_eq(p.held, R(LISTEN));
}

Test(pin, a_failed_transaction_asks_after_its_rollback)
{
	struct proxy_pin p = {0};

	sent(&p, STATS_SS_ADVISORY, NULL);
	sent(&p, STATS_SS_MAY_END, NULL);
	proxy_pin_error_seen(&p);
	proxy_pin_settle(&p, 'E');
	cr_expect(p.may_end, "still to ask: session locks are not rolled back");
	sent(&p, STATS_SS_ROLLBACK, NULL);
	proxy_pin_settle(&p, 'I');
	cr_expect_eq(proxy_pin_probe_start(&p), R(ADVISORY));
	cr_expect_eq(proxy_pin_probed(&p, R(ADVISORY)), R(ADVISORY));
	cr_expect_eq(p.held, 0);
}
