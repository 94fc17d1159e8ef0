/* sender.c - a sender thread: one TCP connection to the log port, speaking the binary protocol.
 *
 * A connection starts with a handshake: an AUTH frame when there is a token, then a PING. The
 * PONG proves the peer speaks the protocol (and, after AUTH, that the token was taken) before
 * any entry is risked on it. Then the thread loops: take a batch from the queue, copy the
 * frames into one write buffer with the next sequence numbers, write what the socket takes,
 * read acknowledgements. The server answers in request order, so the oldest frame in flight
 * is always the one the next reply is about; its sequence number is checked all the same.
 *
 * When the connection fails (refused, reset, closed, an error frame that is not about one
 * entry, a reply that makes no sense) the thread waits a backoff, 50 ms doubling to 5 s with
 * jitter (reset by the first acknowledgement of a connection), connects again and sends the
 * entries that were in flight before anything new. Those are the only possible duplicates. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lc_internal.h"

#define WBUF_CAP    (256 * 1024)
#define RBUF_CAP    (2 * LCL_FRAME_MAX)
#define TAKE_BATCH  1024
#define BACKOFF_MIN 50
#define BACKOFF_MAX 5000
#define BACKOFF_AUTH                                                                               \
    30000                 /* After a refused token: the server locks an address out after 5        \
                             failures a minute, which would lock out correct clients too. */
#define IDLE_POLL_MS 1000 /* A safety net: no wake-up is needed for correctness. */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t get32be(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_header(unsigned char *p, int cmd, size_t len, uint32_t seq)
{
    p[0] = LCL_VERSION;
    p[1] = (unsigned char)cmd;
    p[2] = (unsigned char)(len >> 8);
    p[3] = (unsigned char)len;
    p[4] = (unsigned char)(seq >> 24);
    p[5] = (unsigned char)(seq >> 16);
    p[6] = (unsigned char)(seq >> 8);
    p[7] = (unsigned char)seq;
}

/* Printable text of p[0..n) for an error message (at most 80 bytes of it). */
static void printable(char *out, size_t outlen, const unsigned char *p, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && i < 80 && o + 5 < outlen; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7F)
            out[o++] = (char)p[i];
        else if (p[i] == '\n' && i + 1 == n)
            break;
        else
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", p[i]);
    }
    out[o] = '\0';
}

int lcl_sender_init(struct lc_client *lc, struct lcl_sender *s, int index)
{
    memset(s, 0, sizeof *s);
    s->wakefd = -1;
    s->lc = lc;
    s->index = index;
    s->fd = -1;
    atomic_init(&s->oldest, UINT64_MAX);
    s->backoff_ms = BACKOFF_MIN;
    s->rng = (unsigned)(lcl_now_ms() ^ ((unsigned)getpid() << 8) ^ ((unsigned)index << 24));
    snprintf(s->where, sizeof s->where, strchr(lc->cfg.host, ':') ? "[%s]:%s" : "%s:%s",
             lc->cfg.host, lc->cfg.port);
    s->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    s->wbuf = malloc(WBUF_CAP);
    s->rbuf = malloc(RBUF_CAP);
    if (s->wakefd < 0 || !s->wbuf || !s->rbuf)
        return s->wakefd < 0 ? -errno : -ENOMEM;
    return 0;
}

void lcl_sender_free(struct lcl_sender *s)
{
    if (s->fd >= 0)
        close(s->fd);
    if (s->wakefd >= 0)
        close(s->wakefd);
    lcl_list_free(&s->unsent);
    lcl_list_free(&s->inflight);
    free(s->wbuf);
    free(s->rbuf);
    s->fd = s->wakefd = -1;
    s->wbuf = s->rbuf = NULL;
}

void lcl_sender_wake(struct lcl_sender *s)
{
    uint64_t one = 1;
    if (write(s->wakefd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is already non-zero, which wakes it as well. */
    }
}

static bool stopping(struct lcl_sender *s)
{
    return atomic_load_explicit(&s->lc->stop, memory_order_acquire);
}

/* Wait up to timeout_ms for events on fd (-1: none) or a wake-up. Returns fd's revents (0 on a
 * timeout or a wake-up). */
static short wait_fd(struct lcl_sender *s, int fd, short events, int timeout_ms)
{
    struct pollfd p[2] = {{.fd = s->wakefd, .events = POLLIN}, {.fd = fd, .events = events}};
    int n = poll(p, fd >= 0 ? 2 : 1, timeout_ms < 0 ? 0 : timeout_ms);
    if (n <= 0)
        return 0;
    if (p[0].revents) {
        uint64_t v;
        if (read(s->wakefd, &v, sizeof v) < 0) {
            /* Already drained by a spurious wake-up. */
        }
    }
    return fd >= 0 ? p[1].revents : 0;
}

static void conn_close(struct lcl_sender *s)
{
    /* Producers must wake a connected sender, not this one. */
    pthread_mutex_lock(&s->lc->mu);
    s->idle = false;
    pthread_mutex_unlock(&s->lc->mu);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    s->wlen = s->woff = s->rlen = 0;
    s->failed = true;
}

/* Connect to the first address that answers before deadline. Returns 0 or -1 (error set). */
static int conn_open(struct lcl_sender *s, int64_t deadline)
{
    struct lc_client *lc = s->lc;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res;
    int g = getaddrinfo(lc->cfg.host, lc->cfg.port, &hints, &res);
    if (g) {
        lcl_set_error(lc, "%s: cannot resolve the host: %s", s->where,
                      g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
        return -1;
    }
    int err = ETIMEDOUT, fd = -1;
    for (struct addrinfo *ai = res; ai && !stopping(s); ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        err = errno;
        while (err == EINPROGRESS && !stopping(s)) {
            int64_t left = deadline - mono_ms();
            if (left <= 0) {
                err = ETIMEDOUT;
                break;
            }
            if (wait_fd(s, fd, POLLOUT, (int)left) & (POLLOUT | POLLERR | POLLHUP)) {
                socklen_t l = sizeof err;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
                    err = errno;
            }
        }
        if (err == 0 || err == EISCONN)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        if (!stopping(s))
            lcl_set_error(lc, "%s: cannot connect: %s", s->where, strerror(err));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->fd = fd;
    return 0;
}

/* Send wbuf[0..wlen) completely before deadline. Returns 0 or -1 (error set). */
static int send_all(struct lcl_sender *s, int64_t deadline)
{
    while (s->woff < s->wlen) {
        ssize_t n = send(s->fd, s->wbuf + s->woff, s->wlen - s->woff, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            s->woff += (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            lcl_set_error(s->lc, "%s: send: %s", s->where, strerror(errno));
            return -1;
        }
        int64_t left = deadline - mono_ms();
        if (left <= 0 || stopping(s)) {
            lcl_set_error(s->lc, "%s: handshake timed out", s->where);
            return -1;
        }
        wait_fd(s, s->fd, POLLOUT, (int)left);
    }
    s->wlen = s->woff = 0;
    return 0;
}

/* Describe an error frame at p (header included) as a sentence. */
static void error_frame(struct lcl_sender *s, const unsigned char *p, size_t len, const char *what)
{
    char reason[400];
    int code = len > 0 ? p[LCL_HDR] : 0;
    printable(reason, sizeof reason, p + LCL_HDR + 1, len > 0 ? len - 1 : 0);
    if (code == LCL_E_AUTH) {
        lcl_set_error(s->lc, "%s: authentication failed (server: %s)", s->where, reason);
        s->backoff_ms = BACKOFF_AUTH;
    } else
        lcl_set_error(s->lc, "%s: %s: error %d (server: %s)", s->where, what, code, reason);
}

/* AUTH (with a token) and PING, then wait for their answers. Returns 0 or -1 (error set). */
static int handshake(struct lcl_sender *s, int64_t deadline)
{
    struct lc_client *lc = s->lc;
    int expect = 1;
    s->seq = 0;
    s->wlen = s->woff = s->rlen = 0;
    if (lc->cfg.token) {
        size_t tl = strlen(lc->cfg.token);
        put_header(s->wbuf, LCL_AUTH, tl, ++s->seq);
        memcpy(s->wbuf + LCL_HDR, lc->cfg.token, tl);
        s->wlen = LCL_HDR + tl;
        expect = 2;
    }
    put_header(s->wbuf + s->wlen, LCL_PING, 0, ++s->seq);
    s->wlen += LCL_HDR;
    if (send_all(s, deadline) < 0)
        return -1;

    uint32_t want_seq = 1;
    while (expect > 0) {
        char text[400];
        if (s->rlen > 0 && s->rbuf[0] != LCL_VERSION) {
            printable(text, sizeof text, s->rbuf, s->rlen);
            if (strncmp(text, "ERROR", 5) == 0) /* A policy refusal, before any protocol. */
                lcl_set_error(lc, "%s: the server refused the connection: %s", s->where, text);
            else
                lcl_set_error(lc,
                              "%s: the server does not speak the binary protocol (it "
                              "answered '%s')",
                              s->where, text);
            return -1;
        }
        if (s->rlen >= LCL_HDR) {
            size_t len = (size_t)s->rbuf[2] << 8 | s->rbuf[3];
            if (s->rlen >= LCL_HDR + len) {
                int cmd = s->rbuf[1];
                if (cmd == LCL_R_ERROR) {
                    error_frame(s, s->rbuf, len, "handshake refused");
                    return -1;
                }
                int want = expect == 2 ? LCL_R_AUTHED : LCL_R_PONG;
                if (cmd != want || get32be(s->rbuf + 4) != want_seq) {
                    lcl_set_error(lc, "%s: unexpected reply 0x%02x (sequence %u) in the handshake",
                                  s->where, cmd, get32be(s->rbuf + 4));
                    return -1;
                }
                memmove(s->rbuf, s->rbuf + LCL_HDR + len, s->rlen - LCL_HDR - len);
                s->rlen -= LCL_HDR + len;
                expect--;
                want_seq++;
                continue;
            }
        }
        ssize_t n = recv(s->fd, s->rbuf + s->rlen, RBUF_CAP - s->rlen, MSG_DONTWAIT);
        if (n > 0) {
            s->rlen += (size_t)n;
            continue;
        }
        if (n == 0) {
            printable(text, sizeof text, s->rbuf, s->rlen);
            lcl_set_error(lc, "%s: the server closed the connection in the handshake%s%s%s",
                          s->where, s->rlen ? " (it said '" : "", text, s->rlen ? "')" : "");
            return -1;
        }
        if (errno != EAGAIN && errno != EINTR) {
            lcl_set_error(lc, "%s: recv: %s", s->where, strerror(errno));
            return -1;
        }
        int64_t left = deadline - mono_ms();
        if (left <= 0 || stopping(s)) {
            lcl_set_error(lc, "%s: no answer to the handshake within %d ms", s->where,
                          lc->cfg.connect_timeout_ms);
            return -1;
        }
        wait_fd(s, s->fd, POLLIN, (int)left);
    }
    return 0;
}

static void publish_oldest(struct lcl_sender *s)
{
    struct lcl_rec *o = s->inflight.head ? s->inflight.head : s->unsent.head;
    atomic_store(&s->oldest, o ? o->ticket : UINT64_MAX);
}

/* Handle the complete replies in rbuf. Returns 0, or -1 when the connection must go. */
static int replies(struct lcl_sender *s)
{
    struct lc_client *lc = s->lc;
    size_t pos = 0, acked = 0, rejected = 0;
    int rc = 0;
    while (s->rlen - pos >= LCL_HDR) {
        const unsigned char *p = s->rbuf + pos;
        size_t len = (size_t)p[2] << 8 | p[3];
        if (p[0] != LCL_VERSION) {
            lcl_set_error(lc, "%s: reply with version %d: connection reset", s->where, p[0]);
            rc = -1;
            break;
        }
        if (s->rlen - pos < LCL_HDR + len)
            break;
        struct lcl_rec *r = s->inflight.head;
        bool mine = r && get32be(p + 4) == get32be(r->frame + 4);
        int code = len > 0 ? p[LCL_HDR] : 0;
        if (p[1] == LCL_R_LOG_MS && len == 8 && mine) {
            free(lcl_list_pop(&s->inflight));
            acked++;
        } else if (p[1] == LCL_R_ERROR && mine &&
                   (code == LCL_E_MALFORMED || code == LCL_E_TOO_LONG)) {
            /* About this entry only: sending it again would be refused again. */
            error_frame(s, p, len, "entry refused");
            free(lcl_list_pop(&s->inflight));
            rejected++;
        } else if (p[1] == LCL_R_ERROR) {
            error_frame(s, p, len, "reconnecting after a server error");
            rc = -1;
            break;
        } else {
            lcl_set_error(lc, "%s: unexpected reply 0x%02x (sequence %u, expected %u)", s->where,
                          p[1], get32be(p + 4), r ? get32be(r->frame + 4) : 0);
            rc = -1;
            break;
        }
        pos += LCL_HDR + len;
    }
    memmove(s->rbuf, s->rbuf + pos, s->rlen - pos);
    s->rlen -= pos;
    if (acked || rejected) {
        s->backoff_ms = BACKOFF_MIN;
        atomic_fetch_sub(&lc->held, acked + rejected);
        atomic_fetch_add(&lc->n_acked, acked);
        atomic_fetch_add(&lc->n_rejected, rejected);
        publish_oldest(s);
        lcl_progress(lc);
    }
    return rc;
}

/* Copy unsent frames into wbuf with their sequence numbers; they are in flight from now. */
static bool fill(struct lcl_sender *s)
{
    if (!s->unsent.head)
        return false;
    if (s->woff > 0) {
        memmove(s->wbuf, s->wbuf + s->woff, s->wlen - s->woff);
        s->wlen -= s->woff;
        s->woff = 0;
    }
    bool any = false;
    while (s->unsent.head && s->wlen + s->unsent.head->len <= WBUF_CAP) {
        struct lcl_rec *r = lcl_list_pop(&s->unsent);
        uint32_t seq = ++s->seq;
        r->frame[4] = (unsigned char)(seq >> 24);
        r->frame[5] = (unsigned char)(seq >> 16);
        r->frame[6] = (unsigned char)(seq >> 8);
        r->frame[7] = (unsigned char)seq;
        memcpy(s->wbuf + s->wlen, r->frame, r->len);
        s->wlen += r->len;
        lcl_list_push(&s->inflight, r);
        any = true;
    }
    return any;
}

/* Run the connection until it fails (-1) or the client stops (0). */
static int pump(struct lcl_sender *s)
{
    struct lc_client *lc = s->lc;
    size_t window = (size_t)lc->cfg.window;
    while (!stopping(s)) {
        bool progress = false;
        size_t held = s->unsent.n + s->inflight.n;
        if (!s->unsent.head && held < window) {
            size_t max = window - held < TAKE_BATCH ? window - held : TAKE_BATCH;
            pthread_mutex_lock(&lc->mu);
            lcl_take(lc, s, max);
            pthread_mutex_unlock(&lc->mu);
        }
        progress |= fill(s);
        if (s->wlen > s->woff) {
            ssize_t n =
                send(s->fd, s->wbuf + s->woff, s->wlen - s->woff, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                s->woff += (size_t)n;
                if (s->woff == s->wlen)
                    s->woff = s->wlen = 0;
                progress = true;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                lcl_set_error(lc, "%s: send: %s", s->where, strerror(errno));
                return -1;
            }
        }
        ssize_t n = recv(s->fd, s->rbuf + s->rlen, RBUF_CAP - s->rlen, MSG_DONTWAIT);
        if (n > 0) {
            s->rlen += (size_t)n;
            if (replies(s) < 0)
                return -1;
            progress = true;
        } else if (n == 0) {
            lcl_set_error(lc, "%s: the server closed the connection", s->where);
            return -1;
        } else if (errno != EAGAIN && errno != EINTR) {
            lcl_set_error(lc, "%s: recv: %s", s->where, strerror(errno));
            return -1;
        }
        if (!progress)
            wait_fd(s, s->fd, (short)(POLLIN | (s->wlen > s->woff ? POLLOUT : 0)), IDLE_POLL_MS);
    }
    return 0;
}

void *lcl_sender_main(void *arg)
{
    struct lcl_sender *s = arg;
    struct lc_client *lc = s->lc;
    bool first = true;
    while (!stopping(s)) {
        if (!first) {
            int d = s->backoff_ms;
            int64_t until = mono_ms() + d / 2 + rand_r(&s->rng) % (d / 2 + 1);
            for (int64_t left; !stopping(s) && (left = until - mono_ms()) > 0;)
                wait_fd(s, -1, 0, (int)left);
            s->backoff_ms = d * 2 > BACKOFF_MAX ? BACKOFF_MAX : d * 2;
            if (stopping(s))
                break;
        }
        first = false;
        int64_t deadline = mono_ms() + lc->cfg.connect_timeout_ms;
        if (conn_open(s, deadline) < 0) {
            s->failed = true;
            continue;
        }
        if (handshake(s, deadline) < 0) {
            conn_close(s);
            continue;
        }
        if (s->failed)
            atomic_fetch_add(&lc->n_reconnects, 1);
        s->failed = false;
        if (s->inflight.n) {
            atomic_fetch_add(&lc->n_resent, s->inflight.n);
            lcl_list_prepend(&s->unsent, &s->inflight);
        }
        if (pump(s) < 0)
            conn_close(s);
    }
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    return NULL;
}
