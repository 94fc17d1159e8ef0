/* tls.c - OpenSSL behind the few calls the connection layer needs (see tls.h). */
#include "core/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>

#include "core/log.h"

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

SSL *tls_new(int fd)
{
    SSL *ssl = ctx ? SSL_new(ctx) : NULL;
    if (ssl && SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    if (ssl)
        SSL_set_accept_state(ssl);
    return ssl;
}

void tls_free(SSL *ssl)
{
    if (!ssl)
        return;
    if (SSL_is_init_finished(ssl))
        SSL_shutdown(ssl); /* One try: the socket is non-blocking and closes next anyway. */
    SSL_free(ssl);
}

static ssize_t result(SSL *ssl, int r, int *want, bool reading)
{
    if (r > 0)
        return r;
    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
        *want = TLS_WANT_READ;
        return -2;
    case SSL_ERROR_WANT_WRITE:
        *want = TLS_WANT_WRITE;
        return -2;
    case SSL_ERROR_ZERO_RETURN:
        return reading ? 0 : -1;
    default: {
        unsigned long e = ERR_get_error();
        if (e) {
            char msg[200];
            ERR_error_string_n(e, msg, sizeof(msg));
            log_debug("tls: %s", msg);
        }
        ERR_clear_error();
        return -1;
    }
    }
}

ssize_t tls_recv(SSL *ssl, void *buf, size_t n, int *want)
{
    ERR_clear_error();
    return result(ssl, SSL_read(ssl, buf, n > 1 << 30 ? 1 << 30 : (int)n), want, true);
}

ssize_t tls_send(SSL *ssl, const void *buf, size_t n, int *want)
{
    ERR_clear_error();
    return result(ssl, SSL_write(ssl, buf, n > 1 << 30 ? 1 << 30 : (int)n), want, false);
}

size_t tls_pending(SSL *ssl)
{
    return (size_t)SSL_pending(ssl);
}
