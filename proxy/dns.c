/*
 * Server host names resolved without blocking the loop: c-ares, driven by
 * libev (an ev_io per resolver socket, one ev_timer for its timeouts), with
 * a small cache of answers.
 *
 * c-ares rather than a resolver thread or getaddrinfo_a: it runs on the
 * loop itself, so no thread, lock or signal crosses into the
 * single-threaded state, and a lookup costs a few sockets, not a thread.
 * It reads /etc/hosts and resolv.conf as libc does.
 *
 * Unix socket paths and numeric addresses never reach the resolver. A name
 * is looked up once for all the server connections that want it at the
 * same moment (they wait on its cache entry), and the answer, or the
 * failure, is kept for dns_max_ttl (dns_nxdomain_ttl) seconds. Entries are keyed by host name;
 * names come from the configuration only, so the cache stays small.
 * Servers try the addresses of an answer in turn (proxy_dns_next).
 */
#include "proxy/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <ares.h>

#include "stats/stats.h"

/* How long an answer (or a failure) is used before asking again. */
/* Addresses kept per name. */
#define DNS_MAX_ADDRS 8

struct proxy_dns_entry {
	struct proxy_dns_entry *next;
	struct proxy_dns *dns;                        /* borrowed */
	char *host;                                   /* owned */
	struct sockaddr_storage addrs[DNS_MAX_ADDRS]; /* port 0: the server sets its own */
	socklen_t lens[DNS_MAX_ADDRS];
	int naddrs;               /* 0 after a failure */
	char err[160];            /* the resolver's message when naddrs is 0 */
	double expires;           /* ev_now() until which the answer holds */
	bool resolving;           /* a lookup is under way */
	struct pool_list waiters; /* servers waiting for it (proxy_server.dns_node) */
};

/* One socket c-ares asked us to watch. */
struct dns_sock {
	ev_io io;
	struct dns_sock *next;
	struct proxy_dns *dns; /* borrowed */
};

struct proxy_dns {
	struct proxy_ctx *ctx; /* borrowed */
	ares_channel channel;
	ev_timer timer;
	struct dns_sock *socks;
	struct proxy_dns_entry *entries;
};

static void dns_free_obj(void *obj)
{
	free(obj);
}

/* Re-arm the timer for c-ares' next timeout, if it has one. */
static void dns_update_timer(struct proxy_dns *d)
{
	struct timeval tv, *t = ares_timeout(d->channel, NULL, &tv);

	ev_timer_stop(d->ctx->loop, &d->timer);
	if (t) {
		ev_timer_set(&d->timer, (double)t->tv_sec + (double)t->tv_usec / 1e6, 0);
		ev_timer_start(d->ctx->loop, &d->timer);
	}
}

static void dns_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct dns_sock *ds = w->data;
	struct proxy_dns *d = ds->dns;
	int fd = w->fd;

	(void)loop;
	/* may close the socket: <ds> is not touched afterwards */
	ares_process_fd(d->channel, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
	                (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_update_timer(d);
}

static void dns_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct proxy_dns *d = w->data;

	(void)loop;
	(void)revents;
	ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_update_timer(d);
}

/* c-ares opens, changes or closes a socket. */
static void dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct proxy_dns *d = data;
	struct dns_sock **pp, *ds;

	for (pp = &d->socks; (ds = *pp) != NULL; pp = &ds->next)
		if (ds->io.fd == fd)
			break;
	if (!readable && !writable) {
		if (ds) {
			ev_io_stop(d->ctx->loop, &ds->io);
			*pp = ds->next;
			proxy_defer_free(d->ctx, ds, dns_free_obj);
		}
		return;
	}
	if (!ds) {
		ds = calloc(1, sizeof(*ds));
		if (!ds) {
			log_error("out of memory watching a resolver socket");
			return;
		}
		ds->dns = d;
		ev_init(&ds->io, dns_io_cb);
		ds->io.data = ds;
		ds->next = d->socks;
		d->socks = ds;
	} else {
		ev_io_stop(d->ctx->loop, &ds->io);
	}
	ev_io_set(&ds->io, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
	ev_io_start(d->ctx->loop, &ds->io);
}

/* The resolver, made on first use. NULL with <err> when it cannot start. */
static struct proxy_dns *dns_get(struct proxy_ctx *ctx, char *err, size_t errlen)
{
	struct ares_options opts;
	struct proxy_dns *d;
	int rc;

	if (ctx->dns)
		return ctx->dns;
	rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "cannot start the resolver: %s", ares_strerror(rc));
		return NULL;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		ares_library_cleanup();
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = dns_sock_state;
	opts.sock_state_cb_data = d;
	/* bounded by server_connect_timeout anyway; fail well before it */
	opts.timeout = 2000;
	opts.tries = 2;
	rc = ares_init_options(&d->channel, &opts,
	                       ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		free(d);
		ares_library_cleanup();
		snprintf(err, errlen, "cannot start the resolver: %s", ares_strerror(rc));
		return NULL;
	}
	d->ctx = ctx;
	ev_init(&d->timer, dns_timer_cb);
	d->timer.data = d;
	ctx->dns = d;
	return d;
}

/* Put address <i> of <e> into <s>, with the database's port. */
static void take_addr(struct proxy_server *s, struct proxy_dns_entry *e, int i)
{
	int port = s->pool->db ? s->pool->db->port : 5432;

	memcpy(&s->addr, &e->addrs[i], e->lens[i]);
	s->addrlen = e->lens[i];
	if (s->addr.ss_family == AF_INET)
		((struct sockaddr_in *)&s->addr)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)&s->addr)->sin6_port = htons((uint16_t)port);
	s->dns = e;
	s->dns_idx = i;
}

static void dns_answer(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct proxy_dns_entry *e = arg;
	struct pool_node *n;

	(void)timeouts;
	e->resolving = false;
	if (status == ARES_EDESTRUCTION) {
		ares_freeaddrinfo(res);
		return; /* the process is going away: nobody waits any more */
	}
	e->naddrs = 0;
	if (status == ARES_SUCCESS && res) {
		for (struct ares_addrinfo_node *a = res->nodes; a && e->naddrs < DNS_MAX_ADDRS;
		     a = a->ai_next) {
			if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
			    (size_t)a->ai_addrlen > sizeof(e->addrs[0]))
				continue;
			memcpy(&e->addrs[e->naddrs], a->ai_addr, (size_t)a->ai_addrlen);
			e->lens[e->naddrs] = (socklen_t)a->ai_addrlen;
			e->naddrs++;
		}
	}
	if (e->naddrs == 0)
		snprintf(e->err, sizeof(e->err), "%s",
		         status == ARES_SUCCESS ? "no IPv4 or IPv6 address"
		                                : ares_strerror(status));
	ares_freeaddrinfo(res);
	e->expires = proxy_now(e->dns->ctx) + (e->naddrs > 0 ? e->dns->ctx->conf->dns_max_ttl
	                                                     : e->dns->ctx->conf->dns_nxdomain_ttl);
	/* each wakeup may close other waiters: take the first each time */
	while ((n = pool_list_first(&e->waiters))) {
		struct proxy_server *s = n->owner;

		pool_list_remove(&e->waiters, n);
		if (e->naddrs > 0)
			take_addr(s, e, 0);
		else
			s->dns = NULL;
		proxy_server_resolved(s, e->naddrs > 0 ? NULL : e->err);
	}
}

int proxy_dns_target(struct proxy_server *s, char *err, size_t errlen)
{
	const struct conf_db *db = s->pool->db;
	const char *host = db && db->host && db->host[0] ? db->host : "127.0.0.1";
	int port = db ? db->port : 5432;
	struct sockaddr_in *sin = (struct sockaddr_in *)&s->addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&s->addr;
	struct proxy_dns *d;
	struct proxy_dns_entry *e;
	struct ares_addrinfo_hints hints;

	memset(&s->addr, 0, sizeof(s->addr));
	if (host[0] == '/') {
		struct sockaddr_un *un = (struct sockaddr_un *)&s->addr;

		un->sun_family = AF_UNIX;
		snprintf(un->sun_path, sizeof(un->sun_path), "%s/.s.PGSQL.%d", host, port);
		s->addrlen = sizeof(*un);
		return 1;
	}
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		s->addrlen = sizeof(*sin);
		return 1;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		s->addrlen = sizeof(*sin6);
		return 1;
	}
	d = dns_get(s->ctx, err, errlen);
	if (!d)
		return -1;
	for (e = d->entries; e; e = e->next)
		if (strcmp(e->host, host) == 0)
			break;
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (e)
			e->host = strdup(host);
		if (!e || !e->host) {
			free(e);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		e->dns = d;
		pool_list_init(&e->waiters);
		e->next = d->entries;
		d->entries = e;
	}
	if (!e->resolving && e->expires > proxy_now(s->ctx)) {
		if (e->naddrs == 0) {
			snprintf(err, errlen, "%s", e->err);
			return -1;
		}
		take_addr(s, e, 0);
		return 1;
	}
	s->dns = e;
	s->dns_idx = -1;
	pool_list_push_back(&e->waiters, &s->dns_node);
	if (!e->resolving) {
		e->resolving = true;
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		/* may answer at once (hosts file): dns_answer then runs from here */
		ares_getaddrinfo(d->channel, host, NULL, &hints, dns_answer, e);
		dns_update_timer(d);
	}
	return 0;
}

void proxy_dns_forget(struct proxy_server *s)
{
	if (s->dns && pool_node_linked(&s->dns_node))
		pool_list_remove(&s->dns->waiters, &s->dns_node);
	s->dns = NULL;
}

int proxy_dns_next(struct proxy_server *s)
{
	struct proxy_dns_entry *e = s->dns;

	if (!e || s->dns_idx < 0 || s->dns_idx + 1 >= e->naddrs)
		return 0;
	take_addr(s, e, s->dns_idx + 1);
	return 1;
}

size_t proxy_dns_hosts(struct proxy_ctx *ctx, proxy_dns_host_cb cb, void *arg, size_t *pending)
{
	size_t n = 0, np = 0;
	double now = proxy_now(ctx);

	for (struct proxy_dns_entry *e = ctx->dns ? ctx->dns->entries : NULL; e; e = e->next) {
		char addrs[DNS_MAX_ADDRS * (INET6_ADDRSTRLEN + 1)] = "";
		size_t o = 0;

		n++;
		if (e->resolving)
			np++;
		if (!cb || e->resolving || e->naddrs == 0)
			continue;
		for (int i = 0; i < e->naddrs && o + INET6_ADDRSTRLEN + 1 < sizeof(addrs); i++) {
			const struct sockaddr *sa = (const struct sockaddr *)&e->addrs[i];
			const void *in =
			        sa->sa_family == AF_INET6
			                ? (const void *)&((const struct sockaddr_in6 *)sa)
			                          ->sin6_addr
			                : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;

			if (o)
				addrs[o++] = ',';
			if (!inet_ntop(sa->sa_family, in, addrs + o,
			               (socklen_t)(sizeof(addrs) - o)))
				addrs[o] = '\0';
			o += strlen(addrs + o);
		}
		cb(arg, e->host, e->expires > now ? e->expires - now : 0, addrs);
	}
	if (pending)
		*pending = np;
	return n;
}

void proxy_dns_free(struct proxy_ctx *ctx)
{
	struct proxy_dns *d = ctx->dns;

	if (!d)
		return;
	ares_destroy(d->channel); /* pending lookups end with ARES_EDESTRUCTION */
	ev_timer_stop(ctx->loop, &d->timer);
	while (d->socks) {
		struct dns_sock *ds = d->socks;

		d->socks = ds->next;
		ev_io_stop(ctx->loop, &ds->io);
		free(ds);
	}
	while (d->entries) {
		struct proxy_dns_entry *e = d->entries;

		d->entries = e->next;
		free(e->host);
		free(e);
	}
	free(d);
	ctx->dns = NULL;
	ares_library_cleanup();
}
