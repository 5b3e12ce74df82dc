/*
 * Pool bookkeeping: intrusive lists, lookup by (database, user), sizing
 * resolved from database, user and global settings, and the login
 * parameter set.
 */
#include <criterion/criterion.h>
#include <string.h>

#include <stdio.h>

#include "pool/pool.h"

struct item {
	struct pool_node node;
	int v;
};

Test(pool_list, push_remove_order)
{
	struct pool_list l;
	struct item a = {.v = 1}, b = {.v = 2}, c = {.v = 3};

	pool_list_init(&l);
	a.node.owner = &a;
	b.node.owner = &b;
	c.node.owner = &c;
	cr_assert_null(pool_list_first(&l));
	pool_list_push_back(&l, &a.node);
	pool_list_push_back(&l, &b.node);
	pool_list_push_front(&l, &c.node);
	cr_assert_eq(l.n, 3);
	cr_assert_eq(((struct item *)pool_list_first(&l)->owner)->v, 3);
	pool_list_remove(&l, &c.node);
	cr_assert_not(pool_node_linked(&c.node));
	cr_assert_eq(((struct item *)pool_list_first(&l)->owner)->v, 1);
	/* removing twice is harmless */
	pool_list_remove(&l, &c.node);
	cr_assert_eq(l.n, 2);
	pool_list_remove(&l, &a.node);
	pool_list_remove(&l, &b.node);
	cr_assert_eq(l.n, 0);
	cr_assert_null(pool_list_first(&l));
}

static void base_conf(struct conf *c)
{
	memset(c, 0, sizeof(*c));
	c->pool_mode = CONF_POOL_SESSION;
	c->min_pool_size = 5;
	c->default_pool_size = 50;
}

Test(pool, sizes_resolve_db_over_user_over_global)
{
	struct conf c;
	struct conf_db db = {
	        .name = "app", .pool_size = -1, .min_pool_size = -1, .pool_mode = CONF_POOL_UNSET};
	struct conf_user u = {.name = "bob", .pool_mode = CONF_POOL_TRANSACTION};
	struct pool_set set = {0};
	struct pool *p, *q;

	base_conf(&c);
	c.users = &u;
	c.nusers = 1;
	p = pool_create(&set, &c, &db, "app", "bob", "bob");
	cr_assert_not_null(p);
	cr_assert_eq(p->pool_size, 50);
	cr_assert_eq(p->min_size, 5);
	cr_assert_eq(p->mode, CONF_POOL_TRANSACTION, "user entry overrides the global mode");

	db.pool_size = 3;
	db.pool_mode = CONF_POOL_SESSION;
	pool_apply_conf(p, &c, &db);
	cr_assert_eq(p->pool_size, 3);
	cr_assert_eq(p->min_size, 3, "min is clamped to the pool size");
	cr_assert_eq(p->mode, CONF_POOL_TRANSACTION,
	             "the user's entry overrides the database's, as in PgBouncer");
	u.pool_mode = CONF_POOL_UNSET;
	pool_apply_conf(p, &c, &db);
	cr_assert_eq(p->mode, CONF_POOL_SESSION, "database entry overrides the global mode");

	q = pool_find(&set, "app", "bob");
	cr_assert_eq(q, p);
	cr_assert_null(pool_find(&set, "app", "alice"));
	cr_assert_null(pool_find(&set, "ap", "pbob"), "key parts must not run together");
	cr_assert(pool_can_open(p));
	pool_destroy(&set, p);
	cr_assert_null(pool_find(&set, "app", "bob"));
}

Test(pool, params_replace_and_lookup)
{
	struct conf c;
	struct conf_db db = {
	        .name = "app", .pool_size = -1, .min_pool_size = -1, .pool_mode = CONF_POOL_UNSET};
	struct pool_set set = {0};
	struct pool *p;

	base_conf(&c);
	p = pool_create(&set, &c, &db, "app", "u", "u");
	cr_assert_not_null(p);
	cr_assert_eq(pool_set_param(p, "TimeZone", "UTC"), 0);
	cr_assert_eq(pool_set_param(p, "DateStyle", "ISO, MDY"), 0);
	cr_assert_eq(pool_set_param(p, "TimeZone", "Europe/Paris"), 0);
	cr_assert_eq(p->nparams, 2);
	cr_assert_str_eq(pool_get_param(p, "TimeZone"), "Europe/Paris");
	cr_assert_null(pool_get_param(p, "nope"));
	for (int i = 0; i < POOL_MAX_PARAMS; i++) {
		char n[16];

		snprintf(n, sizeof(n), "p%d", i);
		if (pool_set_param(p, n, "x") < 0) {
			cr_assert_eq(p->nparams, POOL_MAX_PARAMS, "only a full set refuses");
			break;
		}
	}
	cr_assert_eq(p->nparams, POOL_MAX_PARAMS);
	pool_destroy(&set, p);
}
