/*
 * sluice entry point and process context: configuration loading, the
 * listening socket, signals (SIGHUP reload, SIGINT/SIGTERM shutdown,
 * SIGUSR1/SIGUSR2 pause/resume), the once-a-second janitor and the reaper
 * that frees closed connections.
 */
#include "proxy/proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stats/stats.h"

#define SLUICE_VERSION PROXY_VERSION

struct proxy_zombie {
	struct proxy_zombie *next;
	void *obj;
	void (*fn)(void *);
};

double proxy_now(const struct proxy_ctx *ctx)
{
	return ev_now(ctx->loop);
}

void proxy_defer_free(struct proxy_ctx *ctx, void *obj, void (*fn)(void *))
{
	struct proxy_zombie *z = malloc(sizeof(*z));

	if (!z) {
		/* cannot queue it: leaking one object beats a use-after-free */
		log_error("out of memory queueing a closed connection");
		return;
	}
	z->obj = obj;
	z->fn = fn;
	z->next = ctx->zombies;
	ctx->zombies = z;
}

static void reaper_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct proxy_ctx *ctx = w->data;

	(void)loop;
	(void)revents;
	proxy_io_flush_dirty(ctx);
	while (ctx->zombies) {
		struct proxy_zombie *z = ctx->zombies;

		ctx->zombies = z->next;
		z->fn(z->obj);
		free(z);
	}
	proxy_mem_upkeep(ctx);
	/* cancel requests still under way must reach PostgreSQL (or time out)
	 * before the process goes: the queries they stop would run on */
	if (ctx->shutting_down && ctx->clients.n == 0 && ctx->servers.n == 0 && ctx->cancels.n == 0)
		ev_break(ctx->loop, EVBREAK_ALL);
}

/* Its only use is that the loop goes round once more without sleeping, so
 * the reaper flushes what callbacks run after it queued. */
static void kick_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)revents;
	ev_idle_stop(loop, w);
}

/* Shortest and longest pause of the listener after accept() failed for
 * want of file descriptors; the pause doubles while the shortage lasts. */
#define ACCEPT_PAUSE_MIN 0.1
#define ACCEPT_PAUSE_MAX 1.6

static void accept_resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct proxy_ctx *ctx = w->data;

	(void)revents;
	if (ctx->shutting_down)
		return;
	for (size_t i = 0; i < ctx->nlisteners; i++)
		ev_io_start(loop, &ctx->listeners[i].io);
}

/*
 * A connection accept() could not take stays in the listen queue, so the
 * listener stays readable and the loop would spin on it at full CPU,
 * logging each failure (libev's manual, "The special problem of
 * accept()ing when you can't"). Stop the listeners for a pause instead,
 * long enough for clients to leave, and log once per pause; the waiting
 * connections are accepted when it ends. A successful accept resets the
 * pause (proxy_accept_cb sets accept_backoff back to 0).
 */
void proxy_accept_pause(struct proxy_ctx *ctx, int err)
{
	double pause = ctx->accept_backoff > 0 ? ctx->accept_backoff : ACCEPT_PAUSE_MIN;

	/* descriptors are short for the whole process: stop every listener */
	for (size_t i = 0; i < ctx->nlisteners; i++)
		ev_io_stop(ctx->loop, &ctx->listeners[i].io);
	if (ev_is_active(&ctx->accept_pause))
		return;
	log_warn("accept failed: %s (%zu clients, %zu servers); not accepting for %.1f s%s",
	         strerror(err), ctx->clients.n, ctx->servers.n, pause,
	         err == EMFILE || err == ENFILE ? ": raise the open files limit (ulimit -n)" : "");
	ev_timer_set(&ctx->accept_pause, pause, 0);
	ev_timer_start(ctx->loop, &ctx->accept_pause);
	ctx->accept_backoff = pause * 2 > ACCEPT_PAUSE_MAX ? ACCEPT_PAUSE_MAX : pause * 2;
}

static void janitor_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	proxy_pool_janitor(w->data);
	proxy_admin_tick(w->data);
	proxy_health_tick(w->data);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct proxy_ctx *ctx = w->data;

	(void)loop;
	(void)revents;
	if (w->signum == SIGHUP) {
		char err[600];

		log_info("SIGHUP: reloading configuration");
		if (proxy_reload(ctx, err, sizeof(err)) < 0)
			log_error("reload failed, keeping the running configuration: %s", err);
		return;
	}
	if (w->signum == SIGUSR1 || w->signum == SIGUSR2) {
		log_info("%s: %s every database", w->signum == SIGUSR1 ? "SIGUSR1" : "SIGUSR2",
		         w->signum == SIGUSR1 ? "pausing" : "resuming");
		proxy_admin_pause_all(ctx, w->signum == SIGUSR1);
		return;
	}
	/* as PgBouncer 1.18: SIGINT lets the running transactions end
	 * (PAUSE, then SHUTDOWN), SIGTERM closes everything now, also during
	 * a safe shutdown that takes too long */
	if (w->signum == SIGINT && !ctx->shutting_down) {
		log_info("SIGINT: shutting down once the running transactions end");
		proxy_admin_safe_shutdown(ctx);
		return;
	}
	log_info("%s: shutting down now", w->signum == SIGINT ? "SIGINT" : "SIGTERM");
	proxy_shutdown(ctx);
}

int proxy_listen_tcp(const char *what, const char *addr, int port, int backlog, int *fds,
                     size_t maxfds, bool first_only, size_t *nfds, char *err, size_t errlen)
{
	struct addrinfo hints = {0}, *res = NULL, *ai;
	char portstr[16];
	int gai, one = 1;

	*nfds = 0;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(portstr, sizeof(portstr), "%d", port);
	gai = getaddrinfo(addr, portstr, &hints, &res);
	if (gai != 0) {
		snprintf(err, errlen, "cannot resolve %s \"%s\": %s", what, addr,
		         gai_strerror(gai));
		return -1;
	}
	if (first_only && maxfds > 1)
		maxfds = 1;
	for (ai = res; ai && *nfds < maxfds; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		if (fd < 0 && (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT)) {
			log_warn("%s %s: address family not supported here, skipped", what, addr);
			continue;
		}
		if (fd < 0) {
			snprintf(err, errlen, "cannot listen on %s %s:%d: %s", what, addr, port,
			         strerror(errno));
			goto fail;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/* "0.0.0.0" and "::" are bound apart, so "::" must not take IPv4 too */
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
			int e = errno;

			close(fd);
			if (e == EADDRNOTAVAIL && ai->ai_family == AF_INET6) {
				log_warn("%s %s: no IPv6 here, skipped", what, addr);
				continue;
			}
			snprintf(err, errlen, "cannot listen on %s %s:%d: %s", what, addr, port,
			         strerror(e));
			goto fail;
		}
		fds[(*nfds)++] = fd;
	}
	if (ai && *nfds == maxfds && !first_only) {
		snprintf(err, errlen, "%s \"%s\" has more addresses than the %zu sluice listens on",
		         what, addr, maxfds);
		goto fail;
	}
	freeaddrinfo(res);
	if (*nfds == 0) {
		snprintf(err, errlen, "cannot listen on %s %s:%d: no usable address", what, addr,
		         port);
		return -1;
	}
	return 0;
fail:
	freeaddrinfo(res);
	while (*nfds > 0)
		close(fds[--(*nfds)]);
	return -1;
}

/* Bind every address <addr> resolves to; -1 with <err> on a failure other
 * than a missing address family (a host without IPv6 still serves "*"). */
static int listen_on(struct proxy_ctx *ctx, const char *addr, int port, char *err, size_t errlen)
{
	int fds[PROXY_MAX_LISTEN];
	size_t n;

	if (proxy_listen_tcp("listen_addr", addr, port, 1024, fds,
	                     PROXY_MAX_LISTEN - ctx->nlisteners, false, &n, err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct proxy_listener *l = &ctx->listeners[ctx->nlisteners++];
		struct sockaddr_storage ss = {0};
		socklen_t sl = sizeof(ss);
		bool v6 = getsockname(fds[i], (struct sockaddr *)&ss, &sl) == 0 &&
		          ss.ss_family == AF_INET6;

		ev_io_init(&l->io, proxy_accept_cb, fds[i], EV_READ);
		l->io.data = ctx;
		snprintf(l->where, sizeof(l->where), v6 ? "[%s]:%d" : "%s:%d", addr, port);
		ev_io_start(ctx->loop, &l->io);
		log_info("listening on %s", l->where);
	}
	return 0;
}

/* Is something accepting connections on the unix socket <path>? */
static bool unix_socket_live(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live;

	if (fd < 0)
		return false;
	live = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	close(fd);
	return live;
}

/*
 * The unix socket <dir>/.s.PGSQL.<port>, where libpq looks for it (psql -h
 * <dir>). A socket file left by a process that died is replaced; one that
 * a running process (another sluice, a PostgreSQL) accepts on is an error.
 */
static int listen_unix(struct proxy_ctx *ctx, const char *dir, int port, char *err, size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct proxy_listener *l;
	int fd, n;

	n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/.s.PGSQL.%d", dir, port);
	if (n < 0 || (size_t)n >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "unix_socket_dir \"%s\" is too long for a socket path", dir);
		return -1;
	}
	if (ctx->nlisteners == PROXY_MAX_LISTEN) {
		snprintf(err, errlen, "too many listen addresses (at most %d)", PROXY_MAX_LISTEN);
		return -1;
	}
	if (unix_socket_live(&sun)) {
		snprintf(err, errlen,
		         "another process accepts connections on %s: stop it, or give "
		         "this sluice another listen_port or unix_socket_dir",
		         sun.sun_path);
		return -1;
	}
	unlink(sun.sun_path); /* a stale socket of a process that is gone */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    chmod(sun.sun_path, (mode_t)ctx->conf->unix_socket_mode) < 0 || listen(fd, 1024) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", sun.sun_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	snprintf(ctx->unix_path, sizeof(ctx->unix_path), "%s", sun.sun_path);
	l = &ctx->listeners[ctx->nlisteners++];
	ev_io_init(&l->io, proxy_accept_cb, fd, EV_READ);
	l->io.data = ctx;
	snprintf(l->where, sizeof(l->where), "%s", sun.sun_path);
	ev_io_start(ctx->loop, &l->io);
	log_info("listening on %s", l->where);
	return 0;
}

/* The unix socket goes with the process (as PostgreSQL's does). */
static void unix_socket_remove(struct proxy_ctx *ctx)
{
	if (ctx->unix_path[0]) {
		unlink(ctx->unix_path);
		ctx->unix_path[0] = '\0';
	}
}

int proxy_listen(struct proxy_ctx *ctx, char *err, size_t errlen)
{
	const struct conf *cf = ctx->conf;

	/* the unix socket first: when another process holds it, no TCP port
	 * is opened at all (a client must not reach a sluice that is exiting) */
	if (cf->unix_socket_dir[0] &&
	    listen_unix(ctx, cf->unix_socket_dir, cf->listen_port, err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < cf->nlisten_addrs; i++)
		if (listen_on(ctx, cf->listen_addrs[i], cf->listen_port, err, errlen) < 0)
			return -1;
	if (ctx->nlisteners == 0) {
		snprintf(err, errlen, "no address of listen_addr \"%s\" can be listened on",
		         cf->listen_addr);
		return -1;
	}
	return 0;
}

static int load_auth(const struct conf *cf, struct conf_authlist *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (!cf->auth_file)
		return 0;
	return conf_load_auth_file(cf->auth_file, out, err, errlen);
}

/* Pools whose login user is fixed by the configuration exist from the
 * start, so their min_pool_size connections are warm before any client. */
static void create_static_pools(struct proxy_ctx *ctx)
{
	const struct conf *cf = ctx->conf;

	for (size_t i = 0; i < cf->ndbs; i++) {
		const struct conf_db *db = &cf->dbs[i];
		enum proxy_err err;
		char msg[256];

		if (!db->user || strcmp(db->name, "*") == 0)
			continue;
		if (!proxy_pool_for(ctx, db->name, db->user, &err, msg, sizeof(msg)))
			log_warn("%s", msg);
	}
}

/* The statistics settings of <c>. */
static void stats_settings(const struct conf *c, struct stats_config *out)
{
	out->track = c->track_statements;
	out->memo = c->pin_session_state || c->cache.enabled; /* the cache needs verdicts */
	out->track_literals = c->track_literals;
	out->max_statements = (uint32_t)c->max_tracked_statements;
	out->slow_ms = (uint32_t)c->slow_query_ms;
	out->slow_log_size = (uint32_t)c->slow_query_log_size;
	out->nplus1_threshold = (uint32_t)c->nplusone_threshold;
	out->nplus1_window_ms = (uint32_t)c->nplusone_window_ms;
}

int proxy_ctx_init(struct proxy_ctx *ctx, struct ev_loop *loop, const char *conf_path, char *err,
                   size_t errlen)
{
	struct stats_config sc;

	memset(ctx, 0, sizeof(*ctx));
	ctx->loop = loop;
	pool_list_init(&ctx->clients);
	pool_list_init(&ctx->servers);
	pool_list_init(&ctx->cancels);
	proxy_bufpool_init(&ctx->bufs);
	proxy_slab_init(&ctx->client_slab, sizeof(struct proxy_client));
	proxy_slab_init(&ctx->server_slab, sizeof(struct proxy_server));
	ev_init(&ctx->accept_pause, accept_resume_cb);
	ctx->accept_pause.data = ctx;
	ctx->conf_path = strdup(conf_path);
	ctx->conf = calloc(1, sizeof(*ctx->conf));
	if (!ctx->conf_path || !ctx->conf) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (conf_load(conf_path, ctx->conf, err, errlen) < 0)
		return -1;
	if (load_auth(ctx->conf, &ctx->auth, err, errlen) < 0)
		return -1;
	proxy_vars_track(ctx->conf->track_extra_parameters);
	if (proto_random(ctx->mock_key, sizeof(ctx->mock_key)) < 0) {
		snprintf(err, errlen, "cannot read random bytes for the SCRAM mock key");
		return -1;
	}
	proxy_auth_keys_sync(ctx);
	if (proxy_tls_init(ctx, ctx->conf, err, errlen) < 0)
		return -1;
	stats_settings(ctx->conf, &sc);
	if (!(ctx->stats = stats_new(&sc))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (proxy_cache_init(ctx, err, errlen) < 0)
		return -1;
	ctx->started_at = ev_now(loop);
	return 0;
}

static void start_watchers(struct proxy_ctx *ctx)
{
	ev_signal_init(&ctx->sig_int, signal_cb, SIGINT);
	ev_signal_init(&ctx->sig_term, signal_cb, SIGTERM);
	ev_signal_init(&ctx->sig_hup, signal_cb, SIGHUP);
	ev_signal_init(&ctx->sig_usr1, signal_cb, SIGUSR1);
	ev_signal_init(&ctx->sig_usr2, signal_cb, SIGUSR2);
	ctx->sig_int.data = ctx->sig_term.data = ctx->sig_hup.data = ctx;
	ctx->sig_usr1.data = ctx->sig_usr2.data = ctx;
	ev_signal_start(ctx->loop, &ctx->sig_int);
	ev_signal_start(ctx->loop, &ctx->sig_term);
	ev_signal_start(ctx->loop, &ctx->sig_hup);
	ev_signal_start(ctx->loop, &ctx->sig_usr1);
	ev_signal_start(ctx->loop, &ctx->sig_usr2);
	ev_timer_init(&ctx->janitor, janitor_cb, 0.0, 1.0);
	ctx->janitor.data = ctx;
	ev_timer_start(ctx->loop, &ctx->janitor);
	ev_prepare_init(&ctx->reaper, reaper_cb);
	ctx->reaper.data = ctx;
	ev_prepare_start(ctx->loop, &ctx->reaper);
	ev_idle_init(&ctx->kick, kick_cb);
}

void proxy_apply_conf(struct proxy_ctx *ctx)
{
	struct stats_config sc;
	struct pool *p, *tmp;

	HASH_ITER(hh, ctx->pools.by_key, p, tmp)
	pool_apply_conf(p, ctx->conf, p->db);
	stats_settings(ctx->conf, &sc);
	stats_configure(ctx->stats, &sc);
	log_set_verbose(ctx->conf->verbose);
	/* a larger pool may serve waiting clients at once, a smaller one trims */
	proxy_pool_janitor(ctx);
}

int proxy_reload(struct proxy_ctx *ctx, char *err, size_t errlen)
{
	struct conf *nc = calloc(1, sizeof(*nc));
	struct conf_authlist na;
	struct pool *p, *tmp;

	if (!nc) {
		snprintf(err, errlen, "out of memory");
		log_error("reload failed: out of memory");
		return -1;
	}
	if (conf_load(ctx->conf_path, nc, err, errlen) < 0) {
		log_error("reload failed, keeping the running configuration: %s", err);
		free(nc);
		return -1;
	}
	if (load_auth(nc, &na, err, errlen) < 0) {
		log_error("reload failed, keeping the running configuration: %s", err);
		conf_free(nc);
		free(nc);
		return -1;
	}
	if (proxy_tls_init(ctx, nc, err, errlen) < 0) {
		log_error("reload failed, keeping the running configuration: %s", err);
		conf_free_auth(&na);
		conf_free(nc);
		free(nc);
		return -1;
	}
	if (nc->listen_port != ctx->conf->listen_port ||
	    strcmp(nc->listen_addr, ctx->conf->listen_addr) != 0)
		log_warn("listen_addr/listen_port changes need a restart");
	if (strcmp(nc->stats_listen, ctx->conf->stats_listen) != 0)
		log_warn("stats_listen changes need a restart");
	/* pools point into the configuration: move them over first, while the
	 * old entries are still there to compare with */
	HASH_ITER(hh, ctx->pools.by_key, p, tmp)
	{
		const struct conf_db *old = p->db;
		const struct conf_db *db = conf_find_db(nc, p->db_name);

		pool_apply_conf(p, nc, db);
		p->have_server_keys = false; /* the password may have changed */
		proxy_pool_reloaded(ctx, p, old);
	}
	proxy_vars_track(nc->track_extra_parameters);
	conf_free_auth(&ctx->auth);
	ctx->auth = na;
	conf_free(ctx->conf);
	free(ctx->conf);
	ctx->conf = nc;
	proxy_auth_keys_sync(ctx);
	proxy_cache_reload(ctx, nc);
	{
		struct stats_config sc;

		stats_settings(nc, &sc);
		stats_configure(ctx->stats, &sc);
	}
	log_set_verbose(nc->verbose);
	if (log_open(nc->logfile) < 0)
		log_error("cannot open logfile \"%s\"", nc->logfile);
	create_static_pools(ctx);
	proxy_pool_janitor(ctx);
	log_info("configuration reloaded");
	return 0;
}

void proxy_shutdown(struct proxy_ctx *ctx)
{
	struct pool_node *n;

	if (ctx->shutting_down)
		return;
	ctx->shutting_down = true;
	for (size_t i = 0; i < ctx->nlisteners; i++) {
		ev_io_stop(ctx->loop, &ctx->listeners[i].io);
		close(ctx->listeners[i].io.fd);
	}
	ctx->nlisteners = 0;
	unix_socket_remove(ctx);
	proxy_http_stop(ctx);
	ev_timer_stop(ctx->loop, &ctx->accept_pause);
	while ((n = pool_list_first(&ctx->clients)))
		proxy_client_fail(n->owner, PROXY_ERR_SHUTDOWN,
		                  "terminating connection: sluice is shutting down");
	while ((n = pool_list_first(&ctx->servers)))
		proxy_server_close(n->owner, "shutting down");
	ev_timer_stop(ctx->loop, &ctx->janitor);
}

void proxy_ctx_destroy(struct proxy_ctx *ctx)
{
	struct pool *p, *tmp;
	struct proxy_zombie *z;

	unix_socket_remove(ctx);
	/* first: c-ares and HTTP connections hand back objects to free through
	 * the zombies */
	proxy_http_free(ctx);
	proxy_dns_free(ctx);
	proxy_admin_free(ctx);
	proxy_server_cancels_free(ctx);
	while ((z = ctx->zombies)) {
		ctx->zombies = z->next;
		z->fn(z->obj);
		free(z);
	}
	HASH_ITER(hh, ctx->pools.by_key, p, tmp)
	{
		stats_scope_put(ctx->stats, p->stats_scope);
		proxy_sparams_put(ctx, p->warm_sp);
		pool_destroy(&ctx->pools, p);
	}
	proxy_cache_free(ctx); /* every client is gone: no lookup is pending */
	stats_free(ctx->stats);
	ctx->stats = NULL;
	HASH_CLEAR(hh_cancel, ctx->by_cancel);
	proxy_slab_destroy(&ctx->client_slab);
	proxy_slab_destroy(&ctx->server_slab);
	proxy_bufpool_destroy(&ctx->bufs);
	proxy_stmts_free(ctx);
	proxy_scram_cache_free(ctx);
	proxy_strs_free(ctx);
	proxy_sparams_free_all(ctx);
	conf_free_auth(&ctx->auth);
	proxy_tls_free(ctx);
	if (ctx->conf) {
		conf_free(ctx->conf);
		free(ctx->conf);
	}
	free(ctx->conf_path);
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: sluice [-h] [-V] CONFIG.ini\n"
	        "PostgreSQL connection pooler with per-statement statistics and a read cache.\n");
}

int main(int argc, char **argv)
{
	struct proxy_ctx ctx;
	struct ev_loop *loop;
	char err[1024];
	const char *path = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
			printf("sluice %s\n", SLUICE_VERSION);
			return 0;
		}
		if (argv[i][0] == '-' || path) {
			usage(stderr);
			return 2;
		}
		path = argv[i];
	}
	if (!path) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	/* A fixed threshold: buffers grown for large messages (128 KiB and
	 * more) are mapped on their own and unmapped when freed, instead of
	 * glibc raising the threshold after the first free and carving later
	 * ones out of the heap, where they would pin pages after a burst. */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	loop = ev_default_loop(EVFLAG_AUTO);
	if (!loop) {
		fprintf(stderr, "sluice: cannot initialise the event loop\n");
		return 1;
	}
	if (proxy_ctx_init(&ctx, loop, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "sluice: %s\n", err);
		proxy_ctx_destroy(&ctx);
		return 2;
	}
	log_set_verbose(ctx.conf->verbose);
	if (ctx.conf->logfile && log_open(ctx.conf->logfile) < 0) {
		fprintf(stderr, "sluice: cannot open logfile \"%s\": %s\n", ctx.conf->logfile,
		        strerror(errno));
		proxy_ctx_destroy(&ctx);
		return 2;
	}
	if (proxy_listen(&ctx, err, sizeof(err)) < 0 ||
	    proxy_http_start(&ctx, err, sizeof(err)) < 0) {
		log_error("%s", err);
		proxy_ctx_destroy(&ctx);
		return 1;
	}
	if (ctx.conf->pidfile) {
		FILE *f = fopen(ctx.conf->pidfile, "w");

		if (f) {
			fprintf(f, "%d\n", (int)getpid());
			fclose(f);
		}
	}
	start_watchers(&ctx);
	proxy_cache_start(&ctx);
	create_static_pools(&ctx);
	log_info("sluice %s started", SLUICE_VERSION);
	ev_run(loop, 0);
	log_info("sluice stopped");
	if (ctx.conf->pidfile)
		unlink(ctx.conf->pidfile);
	proxy_ctx_destroy(&ctx);
	if (log_open(NULL) < 0)
		return 1;
	ev_loop_destroy(loop);
	return 0;
}
