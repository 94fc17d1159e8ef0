/* stream.c - a client connection, plain or TLS (see stream.h).
 *
 * The socket stays non-blocking under OpenSSL too: every SSL call that wants to read or write
 * waits for the socket with poll() and the caller's deadline, so a silent server is a timeout
 * and a SIGINT interrupts a wait, exactly as on a plain socket. */
#include "client/stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int64_t deadline_of(int timeout_ms)
{
    return timeout_ms < 0 ? INT64_MAX : lcc_now_ms() + timeout_ms;
}

/* After an SSL call returned r <= 0: wait for what it wants. Returns 0 to retry, or -errno
 * (-EPIPE when the connection is finished or broken). */
static int ssl_wait(struct lcc_stream *s, int r, int64_t deadline)
{
    int e = SSL_get_error(s->ssl, r), rev;
    if (e == SSL_ERROR_WANT_READ)
        rev = lcc_wait_fd(s->fd, POLLIN, deadline);
    else if (e == SSL_ERROR_WANT_WRITE)
        rev = lcc_wait_fd(s->fd, POLLOUT, deadline);
    else if (e == SSL_ERROR_ZERO_RETURN)
        return -EPIPE;
    else if (e == SSL_ERROR_SYSCALL && errno)
        return errno == EINTR && !lcc_interrupted ? 0 : -errno;
    else
        return -EPROTO;
    return rev < 0 ? rev : 0;
}

static int tls_start(struct lcc_stream *s, const struct lcc_opts *o, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    unsigned char addr[16];
    int64_t deadline = deadline_of(o->timeout_ms);

    if (!ctx)
        goto ossl_fail;
    s->ctx = ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (o->tls_ca ? SSL_CTX_load_verify_locations(ctx, o->tls_ca, NULL) != 1
                  : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        snprintf(err, errlen, "cannot load the CA certificates%s%s", o->tls_ca ? " from " : "",
                 o->tls_ca ? o->tls_ca : "");
        return -EINVAL;
    }
    s->ssl = SSL_new(ctx);
    if (!s->ssl || SSL_set_fd(s->ssl, s->fd) != 1)
        goto ossl_fail;
    /* An address is checked against the certificate's IP names; a name also goes out as SNI. */
    if (inet_pton(AF_INET, o->host, addr) == 1 || inet_pton(AF_INET6, o->host, addr) == 1) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), o->host);
    } else {
        SSL_set_tlsext_host_name(s->ssl, o->host);
        SSL_set1_host(s->ssl, o->host);
    }
    for (;;) {
        int r = SSL_connect(s->ssl), rc;
        if (r == 1)
            return 0;
        rc = ssl_wait(s, r, deadline);
        if (rc == -EPROTO) {
            long v = SSL_get_verify_result(s->ssl);
            snprintf(err, errlen, "TLS handshake with %s failed: %s", o->host,
                     v != X509_V_OK ? X509_verify_cert_error_string(v)
                                    : ERR_reason_error_string(ERR_peek_last_error()));
            return rc;
        }
        if (rc < 0) {
            snprintf(err, errlen, "TLS handshake with %s: %s", o->host, strerror(-rc));
            return rc;
        }
    }
ossl_fail:
    snprintf(err, errlen, "TLS: %s", ERR_reason_error_string(ERR_get_error()));
    return -ENOMEM;
}

int lcc_stream_open(struct lcc_stream *s, const struct lcc_opts *o, int port, char *err,
                    size_t errlen)
{
    int rc;

    memset(s, 0, sizeof(*s));
    lcc_reader_init(&s->rd);
    s->fd = lcc_connect(o->host, port, o->timeout_ms, err, errlen);
    if (s->fd < 0)
        return s->fd;
    if (!o->tls)
        return 0;
    rc = tls_start(s, o, err, errlen);
    if (rc < 0)
        lcc_stream_close(s);
    return rc;
}

void lcc_stream_close(struct lcc_stream *s)
{
    if (s->ssl)
        SSL_free(s->ssl); /* No close_notify: the socket is closed right after. */
    if (s->ctx)
        SSL_CTX_free(s->ctx);
    if (s->fd >= 0)
        close(s->fd);
    lcc_reader_free(&s->rd);
    s->ssl = s->ctx = NULL;
    s->fd = -1;
}

int lcc_stream_write(struct lcc_stream *s, const void *buf, size_t len, int timeout_ms)
{
    const char *p = buf;

    if (!s->ssl)
        return lcc_write_all(s->fd, buf, len, timeout_ms, false);
    while (len > 0) {
        int r = SSL_write(s->ssl, p, len > (1u << 30) ? 1 << 30 : (int)len);
        if (r > 0) {
            p += r;
            len -= (size_t)r;
            continue;
        }
        int rc = ssl_wait(s, r, deadline_of(timeout_ms));
        if (rc < 0)
            return rc;
    }
    return 0;
}

long lcc_stream_fill(struct lcc_stream *s, int timeout_ms)
{
    int64_t deadline = deadline_of(timeout_ms);

    for (;;) {
        char *p;
        size_t room;
        long n;
        int rc = lcc_reader_space(&s->rd, &p, &room);
        if (rc < 0)
            return rc;
        if (s->ssl) {
            int r = SSL_read(s->ssl, p, room > (1u << 30) ? 1 << 30 : (int)room);
            if (r > 0) {
                s->rd.end += (size_t)r;
                return r;
            }
            rc = ssl_wait(s, r, deadline);
            if (rc == -EPIPE)
                return 0; /* close_notify: the end of the stream. */
            if (rc < 0)
                return rc;
            continue;
        }
        n = lcc_reader_fill(&s->rd, s->fd);
        if (n != -EAGAIN)
            return n;
        rc = lcc_wait_fd(s->fd, POLLIN, deadline);
        if (rc < 0)
            return rc;
    }
}

int lcc_stream_line(struct lcc_stream *s, int timeout_ms, char **line, size_t *len)
{
    for (;;) {
        long n;
        if (lcc_reader_next(&s->rd, line, len))
            return 1;
        n = lcc_stream_fill(s, timeout_ms);
        if (n <= 0)
            return (int)n;
    }
}
