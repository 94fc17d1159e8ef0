/* tls.c - the TLS transport (transport.h): OpenSSL behind the calls of struct transport, and
 * the one context every listener shares (see tls.h). */
#include "core/tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <sys/socket.h>

#include "core/log.h"
#include "core/transport.h"

static SSL_CTX *ctx;

static void print_ssl_error(const char *what, const char *file)
{
    char msg[256];
    ERR_error_string_n(ERR_get_error(), msg, sizeof(msg));
    fprintf(stderr, "logcasterd: %s %s: %s\n", what, file, msg);
}

int tls_init(const char *cert_file, const char *key_file)
{
    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        print_ssl_error("cannot create a TLS context for", cert_file);
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        print_ssl_error("cannot load the TLS certificate", cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        print_ssl_error("cannot load the TLS key", key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        print_ssl_error("the TLS key does not match the certificate", cert_file);
        goto fail;
    }
    return 0;
fail:
    SSL_CTX_free(ctx);
    ctx = NULL;
    return -1;
}

bool tls_enabled(void)
{
    return ctx != NULL;
}

void tls_cleanup(void)
{
    SSL_CTX_free(ctx);
    ctx = NULL;
}

static ssize_t tls_read(struct stream *s, void *buf, size_t n);
static ssize_t tls_write(struct stream *s, const void *buf, size_t n);
static size_t tls_pending(const struct stream *s);
static void tls_shutdown(struct stream *s);

static const struct transport transport_tls = {
    .name = "tls",
    .read = tls_read,
    .write = tls_write,
    .pending = tls_pending,
    .shutdown = tls_shutdown,
    .short_read_drains = false, /* SSL_read returns one record; more may wait behind it. */
};

/* A server-side session on s's socket that expects the client's handshake. */
static int tls_start(struct stream *s)
{
    SSL *ssl = ctx ? SSL_new(ctx) : NULL;
    if (ssl && SSL_set_fd(ssl, s->fd) != 1) {
        SSL_free(ssl);
        ssl = NULL;
    }
    if (!ssl)
        return -ENOMEM;
    SSL_set_accept_state(ssl);
    s->tp = &transport_tls;
    s->session = ssl;
    return 0;
}

int tls_detect(struct stream *s)
{
    unsigned char b;
    ssize_t k = recv(s->fd, &b, 1, MSG_PEEK);
    if (k < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (k == 1 && b == 0x16 && ctx)
        return tls_start(s) < 0 ? -ENOMEM : 1;
    return 0;
}

static void tls_shutdown(struct stream *s)
{
    SSL *ssl = s->session;
    if (!ssl)
        return;
    if (SSL_is_init_finished(ssl))
        SSL_shutdown(ssl); /* One try: the socket is non-blocking and closes next anyway. */
    SSL_free(ssl);
    s->session = NULL;
}

/* An SSL_read or SSL_write result as the transport reports it (transport.h). */
static ssize_t result(struct stream *s, int r, bool reading)
{
    if (r > 0)
        return r;
    switch (SSL_get_error(s->session, r)) {
    case SSL_ERROR_WANT_READ:
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        /* Only a read tells its caller: a write waits for EPOLLOUT anyway. */
        s->read_wants_write = reading;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return reading ? 0 : -EPIPE;
    default: {
        unsigned long e = ERR_get_error();
        if (e) {
            char msg[200];
            ERR_error_string_n(e, msg, sizeof(msg));
            log_debug("tls: %s", msg);
        }
        ERR_clear_error();
        return -EPROTO;
    }
    }
}

static ssize_t tls_read(struct stream *s, void *buf, size_t n)
{
    ERR_clear_error();
    s->read_wants_write = false;
    return result(s, SSL_read(s->session, buf, n > 1 << 30 ? 1 << 30 : (int)n), true);
}

static ssize_t tls_write(struct stream *s, const void *buf, size_t n)
{
    ERR_clear_error();
    return result(s, SSL_write(s->session, buf, n > 1 << 30 ? 1 << 30 : (int)n), false);
}

static size_t tls_pending(const struct stream *s)
{
    return (size_t)SSL_pending(s->session);
}
