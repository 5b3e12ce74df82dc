/*
 * Pool bookkeeping: the lists that connections and clients move between,
 * the lookup of pools by (database, user), and the sizing rules resolved
 * from the configuration (database entry over [users] entry over global).
 */
#include "pool/pool.h"

#include <stdlib.h>
#include <string.h>

void pool_list_init(struct pool_list *l)
{
	l->head.prev = l->head.next = &l->head;
	l->head.owner = NULL;
	l->n = 0;
}

bool pool_node_linked(const struct pool_node *n)
{
	return n->next != NULL;
}

static void insert_between(struct pool_node *n, struct pool_node *prev, struct pool_node *next)
{
	n->prev = prev;
	n->next = next;
	prev->next = n;
	next->prev = n;
}

void pool_list_push_back(struct pool_list *l, struct pool_node *n)
{
	insert_between(n, l->head.prev, &l->head);
	l->n++;
}

void pool_list_push_front(struct pool_list *l, struct pool_node *n)
{
	insert_between(n, &l->head, l->head.next);
	l->n++;
}

void pool_list_remove(struct pool_list *l, struct pool_node *n)
{
	if (!pool_node_linked(n))
		return;
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = NULL;
	l->n--;
}

struct pool_node *pool_list_first(const struct pool_list *l)
{
	return l->head.next == &l->head ? NULL : l->head.next;
}

static char *make_key(const char *db_name, const char *user, size_t *len)
{
	size_t a = strlen(db_name), b = strlen(user);
	char *k = malloc(a + b + 2);

	if (!k)
		return NULL;
	memcpy(k, db_name, a + 1);
	memcpy(k + a + 1, user, b + 1);
	*len = a + b + 1;
	return k;
}

struct pool *pool_find(struct pool_set *s, const char *db_name, const char *user)
{
	size_t len;
	char *k = make_key(db_name, user, &len);
	struct pool *p = NULL;

	if (!k)
		return NULL;
	HASH_FIND(hh, s->by_key, k, len, p);
	free(k);
	return p;
}

/* The tally for <kind> 'd'/'u' and <name>, created on first use. */
static struct pool_tally *tally_get(struct pool_set *s, char kind, const char *name)
{
	size_t len = strlen(name) + 1;
	char *k = malloc(len + 1);
	struct pool_tally *t = NULL;

	if (!k)
		return NULL;
	k[0] = kind;
	memcpy(k + 1, name, len);
	HASH_FIND(hh, s->tallies, k, len, t);
	if (t) {
		free(k);
		t->refs++;
		return t;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		free(k);
		return NULL;
	}
	t->key = k;
	t->refs = 1;
	HASH_ADD_KEYPTR(hh, s->tallies, t->key, len, t);
	return t;
}

static void tally_put(struct pool_set *s, struct pool_tally *t)
{
	if (!t || --t->refs > 0)
		return;
	/* the analyzer loses track of the table uthash frees with its last entry */
	// NOLINTNEXTLINE(clang-analyzer-unix.Malloc,clang-analyzer-core.NullDereference)
	HASH_DEL(s->tallies, t);
	free(t->key);
	free(t);
}

void pool_apply_conf(struct pool *p, const struct conf *c, const struct conf_db *db)
{
	const struct conf_user *u = conf_find_user(c, p->user);

	p->db = db;
	p->autodb = db && strcmp(db->name, "*") == 0;
	/* the database entry's cap, else the global one; 0 = none */
	p->max_db_conns =
	        db && db->max_db_connections > 0 ? db->max_db_connections : c->max_db_connections;
	p->max_user_conns = u && u->max_user_connections > 0 ? u->max_user_connections
	                                                     : c->max_user_connections;
	p->pool_size = db && db->pool_size >= 0 ? db->pool_size : c->default_pool_size;
	p->min_size = db && db->min_pool_size >= 0 ? db->min_pool_size : c->min_pool_size;
	if (p->min_size > p->pool_size)
		p->min_size = p->pool_size;
	/* most specific first, as PgBouncer: the user's, the database's, the default */
	p->mode = c->pool_mode;
	if (db && db->pool_mode != CONF_POOL_UNSET)
		p->mode = db->pool_mode;
	if (u && u->pool_mode != CONF_POOL_UNSET)
		p->mode = u->pool_mode;
}

struct pool *pool_create(struct pool_set *s, const struct conf *c, const struct conf_db *db,
                         const char *db_name, const char *user, const char *server_user)
{
	struct pool *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->db_name = strdup(db_name);
	p->user = strdup(user);
	p->server_user = strdup(server_user);
	p->key = make_key(db_name, user, &p->key_len);
	if (!p->db_name || !p->user || !p->server_user || !p->key) {
		free(p->db_name);
		free(p->user);
		free(p->server_user);
		free(p->key);
		free(p);
		return NULL;
	}
	pool_list_init(&p->idle);
	pool_list_init(&p->used);
	pool_list_init(&p->connecting);
	pool_list_init(&p->waiting);
	pool_list_init(&p->cl_idle);
	pool_list_init(&p->cl_active);
	pool_list_init(&p->logins);
	p->db_tally = tally_get(s, 'd', db_name);
	p->user_tally = tally_get(s, 'u', user);
	if (!p->db_tally || !p->user_tally) {
		tally_put(s, p->db_tally);
		tally_put(s, p->user_tally);
		free(p->db_name);
		free(p->user);
		free(p->server_user);
		free(p->key);
		free(p);
		return NULL;
	}
	pool_apply_conf(p, c, db);
	HASH_ADD_KEYPTR(hh, s->by_key, p->key, p->key_len, p);
	return p;
}

void pool_clear_params(struct pool *p)
{
	for (size_t i = 0; i < p->nparams; i++) {
		free(p->params[i].name);
		free(p->params[i].value);
	}
	p->nparams = 0;
	p->have_params = false;
}

void pool_destroy(struct pool_set *s, struct pool *p)
{
	HASH_DEL(s->by_key, p);
	tally_put(s, p->db_tally);
	tally_put(s, p->user_tally);
	pool_clear_params(p);
	/* keys that log in as the user: gone with the pool */
	explicit_bzero(&p->scram_keys, sizeof(p->scram_keys));
	explicit_bzero(&p->server_keys, sizeof(p->server_keys));
	p->have_scram_keys = p->have_server_keys = false;
	free(p->db_name);
	free(p->user);
	free(p->server_user);
	free(p->key);
	free(p);
}

bool pool_can_open(const struct pool *p)
{
	return pool_server_count(p) < (size_t)p->pool_size;
}

bool pool_caps_allow(const struct pool *p)
{
	if (p->max_db_conns > 0 && p->db_tally && p->db_tally->n >= (size_t)p->max_db_conns)
		return false;
	if (p->max_user_conns > 0 && p->user_tally && p->user_tally->n >= (size_t)p->max_user_conns)
		return false;
	return true;
}

void pool_count_server(struct pool *p, int delta)
{
	if (delta > 0) {
		p->db_tally->n++;
		p->user_tally->n++;
	} else {
		p->db_tally->n--;
		p->user_tally->n--;
	}
}

int pool_set_param(struct pool *p, const char *name, const char *value)
{
	char *v;

	for (size_t i = 0; i < p->nparams; i++) {
		if (strcmp(p->params[i].name, name) != 0)
			continue;
		v = strdup(value);
		if (!v)
			return -1;
		free(p->params[i].value);
		p->params[i].value = v;
		return 0;
	}
	if (p->nparams == POOL_MAX_PARAMS)
		return -1;
	p->params[p->nparams].name = strdup(name);
	p->params[p->nparams].value = strdup(value);
	if (!p->params[p->nparams].name || !p->params[p->nparams].value) {
		free(p->params[p->nparams].name);
		free(p->params[p->nparams].value);
		return -1;
	}
	p->nparams++;
	return 0;
}

const char *pool_get_param(const struct pool *p, const char *name)
{
	for (size_t i = 0; i < p->nparams; i++)
		if (strcmp(p->params[i].name, name) == 0)
			return p->params[i].value;
	return NULL;
}
