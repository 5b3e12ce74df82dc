/*
 * TLS with OpenSSL, both towards clients (sluice is the TLS server) and
 * towards PostgreSQL (sluice is the TLS client). The contexts are built
 * once from the configuration; each connection's SSL object lives in its
 * struct proxy_io, and io.c reads and writes through it.
 */
#include "proxy/proxy.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "stats/stats.h"

static void ssl_error(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (e) {
		ERR_error_string_n(e, buf, sizeof(buf));
		snprintf(err, errlen, "%s: %s", what, buf);
	} else {
		snprintf(err, errlen, "%s", what);
	}
	ERR_clear_error();
}

static SSL_CTX *make_ctx(bool server, enum conf_sslmode mode, const char *cert, const char *key,
                         const char *ca, const char *side, char *err, size_t errlen)
{
	SSL_CTX *sc = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	char what[256];

	if (!sc) {
		ssl_error(err, errlen, "cannot create TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(sc, TLS1_2_VERSION);
	SSL_CTX_set_mode(sc, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (server && (!cert || !key)) {
		snprintf(err, errlen, "%s_tls_sslmode needs %s_tls_cert_file and %s_tls_key_file",
		         side, side, side);
		goto fail;
	}
	if (cert && SSL_CTX_use_certificate_chain_file(sc, cert) != 1) {
		snprintf(what, sizeof(what), "cannot load %s_tls_cert_file \"%s\"", side, cert);
		ssl_error(err, errlen, what);
		goto fail;
	}
	if (key && SSL_CTX_use_PrivateKey_file(sc, key, SSL_FILETYPE_PEM) != 1) {
		snprintf(what, sizeof(what), "cannot load %s_tls_key_file \"%s\"", side, key);
		ssl_error(err, errlen, what);
		goto fail;
	}
	if (ca && SSL_CTX_load_verify_locations(sc, ca, NULL) != 1) {
		snprintf(what, sizeof(what), "cannot load %s_tls_ca_file \"%s\"", side, ca);
		ssl_error(err, errlen, what);
		goto fail;
	}
	if (mode >= CONF_SSL_VERIFY_CA) {
		if (!ca && !server)
			SSL_CTX_set_default_verify_paths(sc);
		if (!ca && server) {
			snprintf(err, errlen, "%s_tls_sslmode %s needs %s_tls_ca_file", side,
			         mode == CONF_SSL_VERIFY_CA ? "verify-ca" : "verify-full", side);
			goto fail;
		}
		SSL_CTX_set_verify(
		        sc, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
	} else {
		SSL_CTX_set_verify(sc, SSL_VERIFY_NONE, NULL);
	}
	return sc;
fail:
	SSL_CTX_free(sc);
	return NULL;
}

int proxy_tls_init(struct proxy_ctx *ctx, const struct conf *cf, char *err, size_t errlen)
{
	SSL_CTX *acc = NULL, *con = NULL;

	if (cf->client_tls_sslmode != CONF_SSL_DISABLE) {
		acc = make_ctx(true, cf->client_tls_sslmode, cf->client_tls_cert_file,
		               cf->client_tls_key_file, cf->client_tls_ca_file, "client", err,
		               errlen);
		if (!acc)
			return -1;
	}
	if (cf->server_tls_sslmode != CONF_SSL_DISABLE) {
		con = make_ctx(false, cf->server_tls_sslmode, cf->server_tls_cert_file,
		               cf->server_tls_key_file, cf->server_tls_ca_file, "server", err,
		               errlen);
		if (!con) {
			SSL_CTX_free(acc);
			return -1;
		}
	}
	proxy_tls_free(ctx);
	ctx->tls_accept = acc;
	ctx->tls_connect = con;
	return 0;
}

void proxy_tls_free(struct proxy_ctx *ctx)
{
	SSL_CTX_free(ctx->tls_accept);
	SSL_CTX_free(ctx->tls_connect);
	ctx->tls_accept = ctx->tls_connect = NULL;
}

int proxy_tls_start(struct proxy_ctx *ctx, struct proxy_io *io, bool accept, const char *host)
{
	/* what is queued (the 'S' answer) leaves in clear, before the handshake
	 * takes the socket */
	if (proto_buf_avail(&io->out) > 0 && proxy_io_flush(ctx, io) != 1)
		return -1;

	SSL *ssl = SSL_new(accept ? ctx->tls_accept : ctx->tls_connect);

	if (!ssl)
		return -1;
	if (SSL_set_fd(ssl, io->fd) != 1) {
		SSL_free(ssl);
		return -1;
	}
	if (accept) {
		SSL_set_accept_state(ssl);
	} else {
		SSL_set_connect_state(ssl);
		if (host && host[0] != '/') {
			SSL_set_tlsext_host_name(ssl, host);
			if (ctx->conf->server_tls_sslmode == CONF_SSL_VERIFY_FULL &&
			    SSL_set1_host(ssl, host) != 1) {
				SSL_free(ssl);
				return -1;
			}
		}
	}
	io->ssl = ssl;
	io->handshaking = true;
	return 0;
}

int proxy_tls_handshake(struct proxy_ctx *ctx, struct proxy_io *io, char *err, size_t errlen)
{
	int rc = SSL_do_handshake(io->ssl);

	if (rc == 1) {
		io->handshaking = false;
		if (ev_is_active(&io->wr) && proto_buf_avail(&io->out) == 0)
			ev_io_stop(ctx->loop, &io->wr);
		return 1;
	}
	switch (SSL_get_error(io->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		if (ev_is_active(&io->wr))
			ev_io_stop(ctx->loop, &io->wr);
		proxy_io_start_read(ctx, io);
		return 0;
	case SSL_ERROR_WANT_WRITE:
		if (!ev_is_active(&io->wr))
			ev_io_start(ctx->loop, &io->wr);
		return 0;
	default: {
		long v = SSL_get_verify_result(io->ssl);

		if (v != X509_V_OK)
			snprintf(err, errlen, "TLS handshake failed: certificate verify failed: %s",
			         X509_verify_cert_error_string(v));
		else
			ssl_error(err, errlen, "TLS handshake failed");
		return -1;
	}
	}
}
