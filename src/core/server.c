/* server.c - listeners, reactor threads, connection I/O, backpressure, timeouts, shutdown.
 *
 * Every reactor thread runs one epoll loop. Listening sockets are shared: each loop watches
 * them with EPOLLEXCLUSIVE, so one idle loop wakes per incoming connection and accepts it.
 * A connection lives on the loop that accepted it until it is freed, which always happens in a
 * deferred callback at the end of a loop turn, never inside a handler that still uses it. */
#define _GNU_SOURCE
#include "core/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/ev.h"
#include "core/log.h"
#include "core/policy.h"
#include "core/tls.h"
#include "store/store.h"

#define READ_CHUNK    (256 * 1024) /* Bytes asked of one read(). */
#define READS_PER_EV  4            /* Reads per readiness event before others get a turn. */
#define MAX_LISTENERS 8

#define UDP_BATCH 16          /* Datagrams per recvmmsg. */
#define UDP_MAX   (64 * 1024) /* Largest datagram taken; longer ones are counted and dropped. */

struct listener {
    int fd;
    const struct listener_spec *spec;
    char addr[80];
    int udp_fd; /* The datagram socket on the same address and port, or -1. */
    struct ev_io udp_io;
    char *udp_buf; /* UDP_BATCH buffers of UDP_MAX + 1 bytes. */
};

/* A connection on its way to another reactor (a protocol that lives on the first one). */
struct handoff {
    int fd;
    struct ssl_st *ssl;
    const struct proto *proto;
    int role;
    struct sockaddr_storage sa, local;
    char peer[64];
    struct buf in;
    bool read_eof;
    struct handoff *next;
};

struct reactor {
    struct server *srv;
    int index;
    pthread_t thread;
    struct ev_loop *loop;
    struct ev_io wake;       /* eventfd: shutdown requests. */
    struct ev_io store_wake; /* eventfd: the store made progress. */
    struct ev_io inbox_wake; /* eventfd: connections were handed to this reactor. */
    pthread_mutex_t inbox_mu;
    struct handoff *inbox;
    struct conn *waiting; /* Connections waiting for store progress. */
    bool accept_paused;   /* Out of file descriptors: listeners unwatched for a moment. */
    int64_t accept_resume_at, last_emfile_log, last_refusal_log;
    struct ev_io lio[MAX_LISTENERS]; /* This loop's watch on each shared listener. */
    struct conn *conns;              /* Doubly linked list of live connections. */
    size_t nconns;
    bool draining; /* Shutdown began: no accepts, close when flushed. */
    int64_t drain_deadline;
};

struct server {
    const struct config *cfg;
    struct store *store;
    struct listener listeners[MAX_LISTENERS];
    size_t nlisteners;
    struct reactor *reactors;
    int nallocated; /* Reactors allocated (loops to free). */
    int nreactors;  /* Reactors whose threads run (to join). */
    struct server_counters counters;
    int64_t started_ms;
};

struct conn {
    struct ev_io io; /* First member: the loop hands us &conn->io. */
    struct reactor *r;
    const struct proto *proto;
    void *state;
    struct buf in, out;
    char peer[64];
    size_t peer_len;
    struct sockaddr_storage sa, local; /* The peer, and the address it connected to. */
    int role;            /* The policy that admitted it (released when it is freed). */
    struct ssl_st *ssl;  /* TLS session, or NULL for plain TCP. */
    bool tls_checked;    /* The first byte was looked at for a TLS handshake. */
    bool tls_only;       /* The listener accepts TLS connections only. */
    bool tls_want_write; /* TLS must write before it can read on. */
    int64_t last_active; /* mono_ms of the last byte read or written. */
    int64_t last_read;   /* mono_ms of the last byte read. */
    bool busy;           /* Protocol has pending work; input waits. */
    bool read_eof;       /* Peer finished sending (or we stopped reading for good). */
    bool eof_delivered;  /* proto->input saw eof=true. */
    bool close_after_flush;
    bool closed; /* Freed at the end of this turn. */
    bool resume_queued;
    bool waiting_store;    /* On the reactor's waiting list. */
    bool held;             /* Owes replies: do not close yet. */
    bool flush_queued;     /* A flush at the end of this turn is scheduled. */
    bool opened;           /* proto->open succeeded: proto->close is due. */
    bool sniffing;         /* The protocol is not chosen yet (listener's pick). */
    bool sniff_forced;     /* Decide with what has arrived (the first line took too long). */
    int64_t partial_since; /* An incomplete line has waited since (0: none waits). */
    int64_t sniff_since;   /* When its first byte arrived. */
    proto_pick_fn pick;
    struct conn *wait_next;
    bool out_was_full;
    struct conn *prev, *next;
};

static void conn_io_cb(struct ev_loop *loop, struct ev_io *io, uint32_t events);
static void conn_read_deferred(struct ev_loop *loop, void *arg);
static __thread struct reactor *tls_reactor; /* The reactor whose loop runs on this thread. */
static void conn_update_interest(struct conn *c);
static void conn_process_input(struct conn *c);
static void conn_destroy(struct conn *c);
static int conn_flush(struct conn *c);
static bool conn_pick(struct conn *c);
static void refuse(struct reactor *r, int slot, const char *where, int fd, const char *peer,
                   enum policy_verdict v);

#define CNT_ADD(field, n)                                                                          \
    atomic_fetch_add_explicit((_Atomic uint64_t *)&srv->counters.field, (n), memory_order_relaxed)

/* ------------------------------------------------------------------------------------------ */
/* Accessors for protocols. */

struct server *conn_server(const struct conn *c)
{
    return c->r->srv;
}
struct store *conn_store(const struct conn *c)
{
    return c->r->srv->store;
}
const struct config *conn_config(const struct conn *c)
{
    return c->r->srv->cfg;
}
struct ev_loop *conn_loop(const struct conn *c)
{
    return c->r->loop;
}
void *conn_state(const struct conn *c)
{
    return c->state;
}
void conn_set_state(struct conn *c, void *state)
{
    c->state = state;
}
struct server_counters *server_counters(struct server *s)
{
    return &s->counters;
}
struct store *server_store(struct server *s)
{
    return s->store;
}
const struct config *server_config(const struct server *s)
{
    return s->cfg;
}
int64_t server_started_ms(const struct server *s)
{
    return s->started_ms;
}

bool conn_draining(const struct conn *c)
{
    return c->r->draining;
}

const struct sockaddr *conn_sockaddr(const struct conn *c)
{
    return (const struct sockaddr *)&c->sa;
}

const char *conn_peer(const struct conn *c, size_t *len)
{
    *len = c->peer_len;
    return c->peer;
}

bool conn_out_full(const struct conn *c)
{
    return buf_len(&c->out) >= c->r->srv->cfg->out_limit;
}

size_t conn_out_pending(const struct conn *c)
{
    return buf_len(&c->out);
}

/* ------------------------------------------------------------------------------------------ */
/* Closing and freeing. */

static void conn_free_deferred(struct ev_loop *loop, void *arg)
{
    (void)loop;
    struct conn *c = arg;
    /* The protocol's state goes only now: a handler up the stack may still have read it. */
    if (c->proto->close && c->opened)
        c->proto->close(c);
    if (c->opened)
        atomic_fetch_sub_explicit(
            (_Atomic uint64_t *)&c->r->srv->counters.conns_by_proto[c->proto->slot], 1,
            memory_order_relaxed);
    if (c->role >= 0)
        policy_release((enum policy_role)c->role, (const struct sockaddr *)&c->sa);
    buf_free(&c->in);
    buf_free(&c->out);
    free(c);
}

/* Take c off its reactor (no more events, off every list); the struct itself is freed after
 * this turn, because a caller up the stack may still look at it. */
static void conn_unlink(struct conn *c)
{
    struct server *srv = c->r->srv;
    c->closed = true;
    ev_io_set(c->r->loop, &c->io, 0);
    if (c->prev)
        c->prev->next = c->next;
    else
        c->r->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->r->nconns--;
    if (c->waiting_store) {
        for (struct conn **pp = &c->r->waiting; *pp; pp = &(*pp)->wait_next) {
            if (*pp == c) {
                *pp = c->wait_next;
                break;
            }
        }
    }
    atomic_fetch_sub_explicit((_Atomic uint64_t *)&srv->counters.conns_current, 1,
                              memory_order_relaxed);
    if (ev_defer(c->r->loop, conn_free_deferred, c) < 0)
        log_error("out of memory freeing a connection; leaking it");
}

/* Unlink and close the socket; the protocol frees its state at the end of the turn. */
static void conn_destroy(struct conn *c)
{
    if (c->closed)
        return;
    conn_unlink(c);
    tls_free(c->ssl);
    c->ssl = NULL;
    close(c->io.fd);
}

void conn_abort(struct conn *c, const char *last_words)
{
    if (!c->closed && last_words) {
        /* Best effort, past whatever is queued: the connection ends here anyway. */
        int want;
        ssize_t n =
            c->ssl ? tls_send(c->ssl, last_words, strlen(last_words), &want)
                   : send(c->io.fd, last_words, strlen(last_words), MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)n;
    }
    conn_destroy(c);
}

void conn_close_after_flush(struct conn *c)
{
    c->close_after_flush = true;
    c->read_eof = true;
    if (buf_len(&c->out) == 0 && !c->busy && !c->held)
        conn_destroy(c);
    else
        conn_update_interest(c);
}

/* ------------------------------------------------------------------------------------------ */
/* Output. */

static int conn_flush(struct conn *c)
{
    while (buf_len(&c->out)) {
        ssize_t n;
        if (c->ssl) {
            int want = 0;
            n = tls_send(c->ssl, buf_head(&c->out), buf_len(&c->out), &want);
            if (n == -2)
                return 0; /* EPOLLOUT (or input) brings us back. */
            if (n < 0) {
                log_debug("TLS send to %s failed", c->peer);
                return -1;
            }
        } else {
            n = send(c->io.fd, buf_head(&c->out), buf_len(&c->out), MSG_NOSIGNAL);
        }
        if (n > 0) {
            buf_consume(&c->out, (size_t)n);
            c->last_active = mono_ms();
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        log_debug("send to %s failed: %s", c->peer, n < 0 ? strerror(errno) : "closed");
        return -1;
    }
    return 0;
}

static void conn_after_work(struct conn *c);

/* Written to outside its own callbacks (another client's message, a broadcast): send at the
 * end of this turn rather than whenever the peer next speaks. */
static void conn_flush_deferred(struct ev_loop *loop, void *arg)
{
    (void)loop;
    struct conn *c = arg;
    c->flush_queued = false;
    conn_after_work(c);
}

int conn_flush_now(struct conn *c)
{
    if (c->closed)
        return -EPIPE;
    if (buf_len(&c->out) && conn_flush(c) < 0) {
        conn_destroy(c);
        return -EPIPE;
    }
    return 0;
}

int conn_write(struct conn *c, const void *p, size_t n)
{
    if (c->closed)
        return -EPIPE;
    if (buf_append(&c->out, p, n) < 0) {
        log_error("out of memory queueing a reply to %s; closing it", c->peer);
        conn_destroy(c);
        return -ENOMEM;
    }
    if (conn_out_full(c))
        c->out_was_full = true;
    if (!c->flush_queued && ev_defer(c->r->loop, conn_flush_deferred, c) == 0)
        c->flush_queued = true;
    return 0;
}

int conn_printf(struct conn *c, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n < sizeof(small))
        return conn_write(c, small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big)
        return conn_write(c, small, sizeof(small) - 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int r = conn_write(c, big, (size_t)n);
    free(big);
    return r;
}

/* For connections that produced output outside their own I/O callback (a resumed query, the
 * shutdown drain): try to send at once rather than waiting for EPOLLOUT. */
static void conn_after_work(struct conn *c)
{
    if (c->closed)
        return;
    if (buf_len(&c->out) && conn_flush(c) < 0) {
        conn_destroy(c);
        return;
    }
    conn_update_interest(c);
}

static void conn_resume_deferred(struct ev_loop *loop, void *arg)
{
    (void)loop;
    struct conn *c = arg;
    c->resume_queued = false;
    if (c->closed)
        return;
    if (c->proto->resume && !conn_out_full(c))
        c->proto->resume(c);
    if (c->closed)
        return;
    conn_process_input(c);
    conn_after_work(c);
}

void conn_schedule_resume(struct conn *c)
{
    if (c->resume_queued || c->closed)
        return;
    c->resume_queued = true;
    /* The struct stays allocated until the end of the turn after conn_destroy, and this
     * callback runs before that free is reached in the queue, so a closed flag suffices. */
    if (ev_defer(c->r->loop, conn_resume_deferred, c) < 0)
        c->resume_queued = false;
}

void conn_hold(struct conn *c, bool held)
{
    c->held = held;
}

void conn_wait_store(struct conn *c)
{
    if (c->waiting_store || c->closed)
        return;
    c->waiting_store = true;
    c->wait_next = c->r->waiting;
    c->r->waiting = c;
}

void conn_set_busy(struct conn *c, bool busy)
{
    bool was = c->busy;
    c->busy = busy;
    if (was && !busy && !c->closed)
        conn_schedule_resume(c); /* Deliver input that waited while we were busy. */
}

/* ------------------------------------------------------------------------------------------ */
/* Input. */

int64_t conn_last_read_ms(const struct conn *c)
{
    return c->last_read;
}

static size_t input_cap(const struct conn *c)
{
    /* Room for one longest line plus a full read, so a protocol always sees max_line + 1
     * bytes before having to decide that a line is too long, with headroom for a frame's
     * own header in front of max_line bytes of message (length prefix, octet count); and
     * for the largest binary frame whatever --max-line is, so a frame can always wait until
     * it is whole. */
    size_t line = c->r->srv->cfg->max_line + 16;
    if (line < CONN_MIN_INPUT)
        line = CONN_MIN_INPUT;
    return line + READ_CHUNK + 1;
}

static void conn_process_input(struct conn *c)
{
    if (c->sniffing && !conn_pick(c))
        return;
    while (!c->closed && !c->busy && !conn_out_full(c)) {
        size_t n = buf_len(&c->in);
        bool eof = c->read_eof && !c->eof_delivered;
        if (n == 0 && !eof)
            break;
        size_t used = c->proto->input(c, buf_head(&c->in), n, eof);
        if (c->closed)
            return;
        lc_assert(used <= n);
        buf_consume(&c->in, used);
        if (used)
            c->partial_since = 0; /* Progress: whatever is left is a new partial line. */
        if (eof && !c->busy && (used == n || used == 0)) {
            /* The protocol has seen the end; what it left is an unusable fragment. */
            c->eof_delivered = true;
            buf_consume(&c->in, buf_len(&c->in));
            break;
        }
        if (used == 0) {
            if (!eof && !c->busy && buf_len(&c->in) >= input_cap(c) - READ_CHUNK) {
                log_warn("%s sent %zu bytes the %s protocol cannot frame; closing", c->peer,
                         buf_len(&c->in), c->proto->name);
                conn_destroy(c);
            }
            break;
        }
    }
    if (!c->closed && c->eof_delivered && !c->busy)
        conn_close_after_flush(c);
    /* Bytes left while the protocol waits for more: an incomplete line, on the clock. */
    if (!c->closed && !c->busy && buf_len(&c->in) && !c->partial_since)
        c->partial_since = c->last_active;
}

/* Before the first read: a TLS handshake record (0x16) starts a TLS session when a certificate
 * is configured. Peeked, so the plain path still reads every byte itself. Returns 0 to go on,
 * 1 to wait for the first byte, or -errno. */
static int tls_check(struct conn *c)
{
    unsigned char b;
    ssize_t k = recv(c->io.fd, &b, 1, MSG_PEEK);
    if (k < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 1 : -errno;
    c->tls_checked = true;
    if (k == 1 && b == 0x16 && tls_enabled()) {
        c->ssl = tls_new(c->io.fd);
        return c->ssl ? 0 : -ENOMEM;
    }
    if (c->tls_only) {
        log_info("closing %s: this listener takes TLS connections only", c->peer);
        return -EPROTO;
    }
    return 0;
}

/* recv, through TLS when the connection has it. -2: nothing to read now. */
static ssize_t conn_recv(struct conn *c, char *p, size_t room)
{
    if (!c->ssl) {
        ssize_t n = recv(c->io.fd, p, room, 0);
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? -2 : n;
    }
    int want = 0;
    ssize_t n = tls_recv(c->ssl, p, room, &want);
    c->tls_want_write = n == -2 && want == TLS_WANT_WRITE;
    if (n == -1)
        errno = EPROTO;
    return n;
}

static int conn_read(struct conn *c)
{
    struct server *srv = c->r->srv;
    if (!c->tls_checked) {
        int t = tls_check(c);
        if (t != 0)
            return t > 0 ? 0 : t;
    }
    for (int i = 0; i < READS_PER_EV; i++) {
        if (buf_reserve(&c->in, READ_CHUNK) < 0)
            return -ENOMEM;
        size_t room = c->in.cap - c->in.end;
        size_t cap = input_cap(c);
        if (buf_len(&c->in) + room > cap)
            room = cap > buf_len(&c->in) ? cap - buf_len(&c->in) : 0;
        if (room == 0)
            return 0;
        ssize_t n = conn_recv(c, c->in.data + c->in.end, room);
        if (n > 0) {
            c->in.end += (size_t)n;
            c->last_active = c->last_read = mono_ms();
            CNT_ADD(bytes_in, (uint64_t)n);
            CNT_ADD(bytes_in_by_proto[c->proto->slot], (uint64_t)n);
            conn_process_input(c);
            if (c->closed || c->busy || conn_out_full(c))
                return 0;
            if ((size_t)n < room && !c->ssl)
                return 0; /* The socket is empty now; save a read that would say EAGAIN. */
            continue;
        }
        if (n == -2)
            return 0;
        if (n == 0) {
            c->read_eof = true;
            conn_process_input(c);
            return 0;
        }
        if (errno == EINTR)
            continue;
        log_debug("recv from %s failed: %s", c->peer, strerror(errno));
        return -errno;
    }
    return 0;
}

/* Watch for reading only while we can take input, and for writing only while bytes wait. */
static void conn_update_interest(struct conn *c)
{
    if (c->closed)
        return;
    if (c->out_was_full && buf_len(&c->out) <= c->r->srv->cfg->out_limit / 2) {
        /* Room again: a paused stream continues, and waiting input is read, on a deferred
         * turn so that one fast reader cannot keep this loop to itself. */
        c->out_was_full = false;
        conn_schedule_resume(c);
    }
    if (c->close_after_flush && buf_len(&c->out) == 0 && !c->busy && !c->held) {
        conn_destroy(c);
        return;
    }
    uint32_t want = 0;
    if (!c->read_eof && !c->busy && !conn_out_full(c)) {
        want |= EV_READ;
        /* Bytes TLS already decrypted raise no epoll event: read them on this turn. */
        if (c->ssl && tls_pending(c->ssl) && ev_defer(c->r->loop, conn_read_deferred, c) < 0)
            log_warn("out of memory deferring a TLS read for %s", c->peer);
    }
    if (buf_len(&c->out) || c->tls_want_write)
        want |= EV_WRITE;
    if (want == 0 && c->read_eof && !c->busy && buf_len(&c->out) == 0)
        return;
    if (ev_io_set(c->r->loop, &c->io, want) < 0) {
        log_error("epoll_ctl for %s failed: %s", c->peer, strerror(errno));
        conn_destroy(c);
    }
}

static void conn_read_deferred(struct ev_loop *loop, void *arg)
{
    struct conn *c = arg;
    if (!c->closed && !c->busy && !conn_out_full(c))
        conn_io_cb(loop, &c->io, EV_READ);
}

static void conn_io_cb(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    (void)loop;
    struct conn *c = (struct conn *)io;
    if (c->closed)
        return;
    if ((events & EV_READ) || (c->tls_want_write && (events & EV_WRITE))) {
        if (conn_read(c) < 0) {
            conn_destroy(c);
            return;
        }
        if (c->closed)
            return;
    }
    if (buf_len(&c->out) && conn_flush(c) < 0) {
        conn_destroy(c);
        return;
    }
    conn_update_interest(c);
}

/* ------------------------------------------------------------------------------------------ */
/* Accepting. */

static void tune_socket(int fd, const struct config *cfg)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (cfg->keepalive_idle_s > 0) {
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &cfg->keepalive_idle_s, sizeof(int));
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &cfg->keepalive_interval_s, sizeof(int));
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cfg->keepalive_count, sizeof(int));
    }
    if (cfg->user_timeout_ms > 0) {
        unsigned int t = (unsigned int)cfg->user_timeout_ms;
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &t, sizeof(t));
    }
    if (cfg->rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &cfg->rcvbuf, sizeof(int));
    if (cfg->sndbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cfg->sndbuf, sizeof(int));
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
        snprintf(out, outlen, "%s:%d", host, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
        snprintf(out, outlen, "[%s]:%d", host, port);
    } else {
        snprintf(out, outlen, "unix");
    }
}

static int conn_open(struct conn *c)
{
    if (c->proto->open && c->proto->open(c) < 0) {
        conn_destroy(c);
        return -1;
    }
    c->opened = true;
    atomic_fetch_add_explicit(
        (_Atomic uint64_t *)&c->r->srv->counters.conns_by_proto[c->proto->slot], 1,
        memory_order_relaxed);
    return 0;
}

/* Run a new connection on fd in reactor r (counted in conns_current by the caller). pick:
 * sniff the protocol from the first bytes first. in (may be NULL): bytes already read. */
static void conn_start(struct reactor *r, int fd, const char *peer,
                       const struct sockaddr_storage *sa, const struct sockaddr_storage *local,
                       int role, const struct proto *proto, proto_pick_fn pick, struct buf *in,
                       bool read_eof, struct ssl_st *ssl, bool tls_only)
{
    struct server *srv = r->srv;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        atomic_fetch_sub_explicit((_Atomic uint64_t *)&srv->counters.conns_current, 1,
                                  memory_order_relaxed);
        policy_release((enum policy_role)role, (const struct sockaddr *)sa);
        tls_free(ssl);
        close(fd);
        return;
    }
    c->ssl = ssl;
    /* A handed-over connection was checked already; without TLS there is nothing to check. */
    c->tls_checked = pick == NULL || (!tls_enabled() && !tls_only);
    c->tls_only = tls_only;
    c->sa = *sa;
    c->local = *local;
    c->role = role;
    c->io.fd = fd;
    c->io.cb = conn_io_cb;
    c->r = r;
    c->proto = proto;
    c->pick = pick;
    c->sniffing = pick != NULL;
    c->last_active = c->last_read = mono_ms();
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    c->peer_len = strlen(c->peer);
    if (in) {
        c->in = *in;
        memset(in, 0, sizeof(*in));
    }
    c->read_eof = read_eof;
    c->next = r->conns;
    if (r->conns)
        r->conns->prev = c;
    r->conns = c;
    r->nconns++;
    if (!c->sniffing && conn_open(c) < 0)
        return;
    if (!c->closed && (buf_len(&c->in) || c->read_eof))
        conn_process_input(c);
    if (!c->closed)
        conn_after_work(c);
}

/* Move a connection whose protocol lives on the first reactor there, with what it sent. */
static void conn_handoff(struct conn *c)
{
    struct server *srv = c->r->srv;
    struct reactor *to = &srv->reactors[0];
    struct handoff *h = calloc(1, sizeof(*h));
    if (!h) {
        conn_destroy(c);
        return;
    }
    h->fd = c->io.fd;
    h->proto = c->proto;
    h->role = c->role;
    h->sa = c->sa;
    h->local = c->local;
    h->ssl = c->ssl;
    c->ssl = NULL; /* The session moves with the socket. */
    c->role = -1;  /* Admission moves with it: not released here. */
    memcpy(h->peer, c->peer, sizeof(h->peer));
    h->in = c->in;
    memset(&c->in, 0, sizeof(c->in));
    h->read_eof = c->read_eof;
    conn_unlink(c);
    CNT_ADD(conns_current, 1); /* Still open: it continues over there. */
    pthread_mutex_lock(&to->inbox_mu);
    h->next = to->inbox;
    to->inbox = h;
    pthread_mutex_unlock(&to->inbox_mu);
    uint64_t one = 1;
    if (write(to->inbox_wake.fd, &one, sizeof(one)) < 0)
        log_warn("eventfd write: %s", strerror(errno));
}

/* Choose the protocol from the first bytes. True when the connection may process input now
 * (false: undecided yet, moved to another reactor, or closed). */
static bool conn_pick(struct conn *c)
{
    if (!c->sniff_since && buf_len(&c->in))
        c->sniff_since = mono_ms();
    const struct proto *p =
        c->pick(buf_head(&c->in), buf_len(&c->in), c->read_eof || c->sniff_forced, c->proto);
    if (!p)
        return false;
    c->sniffing = false;
    c->proto = p;
    /* Another protocol than the listener's: that protocol's access policy decides too (its
     * allow list, its lock-outs, local-only without a secret), so no port is a side door. */
    _Static_assert((int)SLOT_INGEST == (int)ROLE_LOG && (int)SLOT_QUERY == (int)ROLE_QUERY &&
                       (int)SLOT_IRC == (int)ROLE_IRC && (int)SLOT_HTTP == (int)ROLE_HTTP,
                   "protocol slots name policy roles");
    if (c->role >= 0 && p->slot != c->role) {
        const struct sockaddr *sa = (const struct sockaddr *)&c->sa;
        enum policy_verdict v = policy_admit((enum policy_role)p->slot, sa,
                                             (const struct sockaddr *)&c->local, mono_ms());
        if (v != POLICY_OK) {
            struct server *srv = c->r->srv;
            CNT_ADD(conns_refused, 1);
            refuse(c->r, p->slot, p->name, c->io.fd, c->peer, v);
            conn_destroy(c);
            return false;
        }
        policy_release((enum policy_role)c->role, sa);
        c->role = p->slot;
    }
    if (p->one_loop && c->r->index != 0) {
        conn_handoff(c);
        return false;
    }
    return conn_open(c) == 0 && !c->closed;
}

/* One explicit, cheap answer to a refused connection, in its listener's protocol, then close.
 * Refusals are logged at most once a second per reactor, so a flood cannot flood the log. */
static void refuse(struct reactor *r, int slot, const char *where, int fd, const char *peer,
                   enum policy_verdict v)
{
    const char *why = policy_verdict_text(v);
    char msg[512];
    int n;
    switch (slot) {
    case SLOT_IRC:
        n = snprintf(msg, sizeof(msg), ":%s 465 * :%s\r\nERROR :Closing Link: %s (%s)\r\n",
                     r->srv->cfg->irc_server_name, why, peer, why);
        break;
    case SLOT_HTTP: {
        int status = v == POLICY_DENIED || v == POLICY_LOCAL_ONLY ? 403 : 429;
        char body[160];
        int blen = snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", why);
        n = snprintf(msg, sizeof(msg),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     "Connection: close\r\n%s\r\n%s",
                     status, status == 403 ? "Forbidden" : "Too Many Requests", blen,
                     status == 429 ? "Retry-After: 1\r\n" : "", body);
        break;
    }
    default:
        n = snprintf(msg, sizeof(msg), "ERROR|%s\n", why);
    }
    ssize_t w = send(fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)w;
    int64_t now = mono_ms();
    if (now - r->last_refusal_log >= 1000) {
        r->last_refusal_log = now;
        log_warn("refused %s on %s: %s", peer, where, why);
    }
}

static void accept_one(struct reactor *r, struct listener *l, int fd,
                       const struct sockaddr_storage *ss)
{
    struct server *srv = r->srv;
    uint64_t cur = atomic_fetch_add_explicit((_Atomic uint64_t *)&srv->counters.conns_current, 1,
                                             memory_order_relaxed);
    if (cur >= (uint64_t)srv->cfg->max_connections || r->draining) {
        atomic_fetch_sub_explicit((_Atomic uint64_t *)&srv->counters.conns_current, 1,
                                  memory_order_relaxed);
        CNT_ADD(conns_refused, 1);
        close(fd);
        return;
    }
    char peer[64];
    format_addr(ss, peer, sizeof(peer));
    struct sockaddr_storage local = {0};
    socklen_t ll = sizeof(local);
    getsockname(fd, (struct sockaddr *)&local, &ll);
    enum policy_verdict v =
        policy_admit((enum policy_role)l->spec->role, (const struct sockaddr *)ss,
                     (const struct sockaddr *)&local, mono_ms());
    if (v != POLICY_OK) {
        atomic_fetch_sub_explicit((_Atomic uint64_t *)&srv->counters.conns_current, 1,
                                  memory_order_relaxed);
        CNT_ADD(conns_refused, 1);
        refuse(r, l->spec->proto->slot, l->spec->role_name, fd, peer, v);
        close(fd);
        return;
    }
    CNT_ADD(conns_total, 1);
    tune_socket(fd, srv->cfg);
    log_debug("%s connection from %s", l->spec->role_name, peer);
    conn_start(r, fd, peer, ss, &local, l->spec->role, l->spec->proto, l->spec->pick, NULL, false,
               NULL, l->spec->tls_only);
}

static void listener_cb(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    (void)loop;
    (void)events;
    /* The watch's position in this reactor's array names the listener. */
    struct reactor *r = tls_reactor;
    struct listener *l = &r->srv->listeners[io - r->lio];
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE) {
                /* The connection stays queued in the kernel: stop watching the listeners for
                 * a moment instead of spinning on it, and say so once a second at most. */
                int64_t now = mono_ms();
                if (now - r->last_emfile_log >= 1000) {
                    r->last_emfile_log = now;
                    log_warn("accept on %s: %s (raise the open-file limit); pausing accepts",
                             l->addr, strerror(errno));
                }
                r->accept_paused = true;
                r->accept_resume_at = now + 100;
                for (size_t k = 0; k < r->srv->nlisteners; k++)
                    ev_io_set(r->loop, &r->lio[k], 0);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_warn("accept on %s: %s", l->addr, strerror(errno));
            return;
        }
        accept_one(r, l, fd, &ss);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Reactor threads: idle sweep, shutdown drain. */

static void reactor_tick(struct ev_loop *loop, void *arg)
{
    struct reactor *r = arg;
    const struct config *cfg = r->srv->cfg;
    int64_t now = mono_ms();
    if (r->accept_paused && now >= r->accept_resume_at && !r->draining) {
        r->accept_paused = false;
        for (size_t i = 0; i < r->srv->nlisteners; i++)
            if (!r->srv->listeners[i].spec->proto->one_loop || r->index == 0)
                ev_io_set(r->loop, &r->lio[i], EV_READ | EV_EXCLUSIVE);
    }
    struct conn *next;
    for (struct conn *c = r->conns; c; c = next) {
        next = c->next;
        if (r->draining) {
            if (now >= r->drain_deadline) {
                if (buf_len(&c->out))
                    log_warn("shutdown: dropping %zu unsent bytes to %s", buf_len(&c->out),
                             c->peer);
                conn_destroy(c);
            }
            continue;
        }
        if (c->sniffing && c->sniff_since &&
            now - c->sniff_since > (int64_t)cfg->http_request_timeout_s * 1000) {
            /* A first line trickled in (slowloris): decide with what is there, so the
             * protocol's own timeouts apply from now on. */
            c->sniff_forced = true;
            conn_process_input(c);
            if (c->closed)
                continue;
        }
        if (c->partial_since && !c->busy && cfg->line_timeout_s > 0 &&
            now - c->partial_since > (int64_t)cfg->line_timeout_s * 1000) {
            /* Slowloris: a line that never ends holds a connection and its buffer. */
            log_info("closing %s: a line not completed within %d s", c->peer, cfg->line_timeout_s);
            char bye[160];
            if (c->proto->slot == SLOT_IRC)
                snprintf(bye, sizeof(bye), "ERROR :Closing Link: %s (Line timeout)\r\n", c->peer);
            else
                snprintf(bye, sizeof(bye), "ERROR|line not completed within %d s\n",
                         cfg->line_timeout_s);
            atomic_fetch_add_explicit((_Atomic uint64_t *)&r->srv->counters.conns_timed_out, 1,
                                      memory_order_relaxed);
            conn_abort(c, c->proto->slot == SLOT_HTTP ? NULL : bye);
            continue;
        }
        if (c->proto->tick && !c->sniffing) {
            c->proto->tick(c, now);
            if (c->closed)
                continue;
        }
        /* A burst long ago should not pin its buffers for good; a steady stream keeps them
         * (growing and shrinking them every turn costs page faults, not memory). */
        if (buf_len(&c->in) == 0 && now - c->last_active > 1000)
            buf_shrink(&c->in, 0);
        if (buf_len(&c->out) == 0 && now - c->last_active > 1000)
            buf_shrink(&c->out, 64 * 1024);
        if (cfg->idle_timeout_s > 0 && now - c->last_active > (int64_t)cfg->idle_timeout_s * 1000 &&
            ((!c->busy && !c->held) || buf_len(&c->out) > 0)) {
            log_info("closing %s: idle for %d s", c->peer, cfg->idle_timeout_s);
            atomic_fetch_add_explicit((_Atomic uint64_t *)&r->srv->counters.conns_timed_out, 1,
                                      memory_order_relaxed);
            conn_destroy(c);
        }
    }
    if (r->draining && r->nconns == 0)
        ev_stop(loop);
}

/* Shutdown for one reactor: stop accepting, read what the peers already sent, treat it as
 * their last data, and close each connection once its replies are out. */
static void reactor_begin_drain(struct reactor *r)
{
    r->draining = true;
    r->drain_deadline = mono_ms() + (int64_t)r->srv->cfg->shutdown_timeout_s * 1000;
    for (size_t i = 0; i < r->srv->nlisteners; i++)
        ev_io_set(r->loop, &r->lio[i], 0);
    struct conn *next;
    for (struct conn *c = r->conns; c; c = next) {
        next = c->next;
        if (!c->read_eof) {
            /* Busy ones too (a throttled sender, a running query): what the peer sent
             * before the stop is buffered and handled once they resume. */
            if (conn_read(c) < 0) {
                conn_destroy(c);
                continue;
            }
        }
        if (c->closed)
            continue;
        /* The peer did not finish: complete lines count, a fragment is not a line. */
        if (!c->read_eof) {
            c->read_eof = true;
            c->eof_delivered = true;
        }
        conn_process_input(c);
        if (c->closed)
            continue;
        if (c->busy)
            conn_schedule_resume(c); /* A paused connection continues under the deadline. */
        conn_close_after_flush(c);
        if (!c->closed)
            conn_after_work(c);
    }
    ev_set_tick(r->loop, 50, reactor_tick, r);
    if (r->nconns == 0)
        ev_stop(r->loop);
}

/* Reset an eventfd after it woke us; the count itself carries no meaning. */
static void drain_eventfd(int fd)
{
    uint64_t v;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warn("eventfd read: %s", strerror(errno));
}

static void wake_cb(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    (void)loop;
    (void)events;
    drain_eventfd(io->fd);
    struct reactor *r = tls_reactor;
    if (!r->draining)
        reactor_begin_drain(r);
}

/* The store made progress: every waiting connection gets its resume call. */
static void store_wake_cb(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    (void)loop;
    (void)events;
    drain_eventfd(io->fd);
    struct reactor *r = tls_reactor;
    struct conn *list = r->waiting;
    r->waiting = NULL;
    while (list) {
        struct conn *c = list;
        list = c->wait_next;
        c->waiting_store = false;
        c->wait_next = NULL;
        if (c->proto->resume)
            c->proto->resume(c);
        if (c->closed)
            continue;
        conn_process_input(c);
        conn_after_work(c);
    }
}

/* Connections handed over by other reactors. */
static void inbox_cb(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    (void)loop;
    (void)events;
    drain_eventfd(io->fd);
    struct reactor *r = tls_reactor;
    pthread_mutex_lock(&r->inbox_mu);
    struct handoff *list = r->inbox;
    r->inbox = NULL;
    pthread_mutex_unlock(&r->inbox_mu);
    while (list) {
        struct handoff *h = list;
        list = h->next;
        if (r->draining) {
            atomic_fetch_sub_explicit((_Atomic uint64_t *)&r->srv->counters.conns_current, 1,
                                      memory_order_relaxed);
            policy_release((enum policy_role)h->role, (const struct sockaddr *)&h->sa);
            tls_free(h->ssl);
            close(h->fd);
            buf_free(&h->in);
        } else {
            conn_start(r, h->fd, h->peer, &h->sa, &h->local, h->role, h->proto, NULL, &h->in,
                       h->read_eof, h->ssl, false);
        }
        free(h);
    }
}

static void *reactor_main(void *arg)
{
    struct reactor *r = arg;
    tls_reactor = r;
    int rc = ev_run(r->loop);
    if (rc < 0)
        log_error("reactor %d: event loop failed: %s", r->index, strerror(-rc));
    /* Anything left (a deadline hit mid-turn) is closed now. */
    while (r->conns)
        conn_destroy(r->conns);
    ev_run_deferred(r->loop);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Listeners. */

static void udp_cb(struct ev_loop *loop, struct ev_io *io, uint32_t events);

static int open_listener(const struct config *cfg, const struct listener_spec *spec,
                         struct listener *l)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", spec->port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    const char *bind_addr = spec->bind ? spec->bind : cfg->bind_addr;
    int gai = getaddrinfo(bind_addr, port, &hints, &res);
    if (gai != 0) {
        fprintf(stderr, "logcasterd: cannot use bind address %s: %s\n", bind_addr,
                gai_strerror(gai));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "logcasterd: socket: %s\n", strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (cfg->reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, cfg->backlog) < 0) {
        int e = errno;
        fprintf(stderr, "logcasterd: cannot listen on %s port %d for %s: %s\n", bind_addr,
                spec->port, spec->role_name, strerror(e));
        if (e == EADDRINUSE)
            fprintf(stderr,
                    "logcasterd: another process uses that port; pick another with "
                    "--%s-port or stop it\n",
                    spec->role_name);
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    l->fd = fd;
    l->spec = spec;
    l->udp_fd = -1;
    format_addr(&ss, l->addr, sizeof(l->addr));
    if (!spec->datagram)
        return 0;
    /* UDP on the very address and port TCP got (port 0 picked one). */
    int u = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int big = 4 << 20;
    if (u < 0 || bind(u, (struct sockaddr *)&ss, sl) < 0) {
        fprintf(stderr, "logcasterd: cannot listen for UDP on %s for %s: %s\n", l->addr,
                spec->role_name, strerror(errno));
        if (u >= 0)
            close(u);
        return -1;
    }
    setsockopt(u, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big)); /* Bursts wait here, not lost. */
    l->udp_buf = malloc((size_t)UDP_BATCH * (UDP_MAX + 1));
    if (!l->udp_buf) {
        close(u);
        return -1;
    }
    l->udp_fd = u;
    return 0;
}

/* Datagrams on the first reactor: a batch at a time, at most a few batches per turn. */
static void udp_cb(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    (void)loop;
    (void)events;
    struct reactor *r = tls_reactor;
    struct server *srv = r->srv;
    struct listener *l = NULL;
    for (size_t i = 0; i < srv->nlisteners; i++)
        if (&srv->listeners[i].udp_io == io)
            l = &srv->listeners[i];
    if (!l)
        return;
    for (int round = 0; round < 4; round++) {
        struct mmsghdr msgs[UDP_BATCH];
        struct iovec iov[UDP_BATCH];
        struct sockaddr_storage from[UDP_BATCH];
        memset(msgs, 0, sizeof(msgs));
        for (int i = 0; i < UDP_BATCH; i++) {
            iov[i].iov_base = l->udp_buf + (size_t)i * (UDP_MAX + 1);
            iov[i].iov_len = UDP_MAX + 1; /* One byte more: a longer datagram shows as such. */
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &from[i];
            msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
        }
        int n = recvmmsg(l->udp_fd, msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        for (int i = 0; i < n; i++) {
            size_t len = msgs[i].msg_len;
            const struct sockaddr *sa = (const struct sockaddr *)&from[i];
            if ((msgs[i].msg_hdr.msg_flags & MSG_TRUNC) || len > UDP_MAX ||
                !policy_allows((enum policy_role)l->spec->role, sa)) {
                CNT_ADD(udp_refused, 1);
                continue;
            }
            char peer[64];
            format_addr(&from[i], peer, sizeof(peer));
            CNT_ADD(udp_datagrams, 1);
            CNT_ADD(bytes_in, len);
            CNT_ADD(bytes_in_by_proto[l->spec->proto->slot], len);
            l->spec->datagram(srv, iov[i].iov_base, len, peer, strlen(peer));
        }
        if (n < UDP_BATCH)
            return;
    }
}

struct server *server_start(const struct config *cfg, struct store *store,
                            const struct listener_spec *specs, size_t nspecs)
{
    struct server *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cfg = cfg;
    s->store = store;
    s->started_ms = now_ms();
    lc_assert(nspecs <= MAX_LISTENERS);
    for (size_t i = 0; i < nspecs; i++) {
        if (specs[i].port < 0)
            continue;
        if (open_listener(cfg, &specs[i], &s->listeners[s->nlisteners]) < 0)
            goto fail;
        s->nlisteners++;
    }
    for (size_t i = 0; i < s->nlisteners; i++) {
        printf("listening %s %s\n", s->listeners[i].spec->role_name, s->listeners[i].addr);
        if (s->listeners[i].udp_fd >= 0)
            printf("listening udp %s\n", s->listeners[i].addr);
    }
    fflush(stdout);

    s->nreactors = cfg->threads;
    s->reactors = calloc((size_t)s->nreactors, sizeof(*s->reactors));
    if (!s->reactors)
        goto fail;
    s->nallocated = s->nreactors;
    for (int i = 0; i < s->nreactors; i++) {
        s->reactors[i].wake.fd = s->reactors[i].store_wake.fd = s->reactors[i].inbox_wake.fd = -1;
        pthread_mutex_init(&s->reactors[i].inbox_mu, NULL);
    }
    for (int i = 0; i < s->nreactors; i++) {
        struct reactor *r = &s->reactors[i];
        r->srv = s;
        r->index = i;
        r->loop = ev_new();
        r->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        r->wake.cb = wake_cb;
        r->store_wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        r->store_wake.cb = store_wake_cb;
        r->inbox_wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        r->inbox_wake.cb = inbox_cb;
        if (!r->loop || r->wake.fd < 0 || ev_io_set(r->loop, &r->wake, EV_READ) < 0 ||
            r->inbox_wake.fd < 0 || ev_io_set(r->loop, &r->inbox_wake, EV_READ) < 0 ||
            r->store_wake.fd < 0 || ev_io_set(r->loop, &r->store_wake, EV_READ) < 0 ||
            store_add_waker(store, r->store_wake.fd) < 0) {
            fprintf(stderr, "logcasterd: cannot create event loop: %s\n", strerror(errno));
            goto fail;
        }
        for (size_t j = 0; j < s->nlisteners; j++) {
            r->lio[j].fd = s->listeners[j].fd;
            r->lio[j].cb = listener_cb;
            if (s->listeners[j].spec->proto->one_loop && i > 0)
                continue;
            if (ev_io_set(r->loop, &r->lio[j], EV_READ | EV_EXCLUSIVE) < 0) {
                fprintf(stderr, "logcasterd: epoll: %s\n", strerror(errno));
                goto fail;
            }
        }
        ev_set_tick(r->loop, 250, reactor_tick, r);
    }
    for (size_t j = 0; j < s->nlisteners; j++) {
        struct listener *l = &s->listeners[j];
        if (l->udp_fd < 0)
            continue;
        l->udp_io.fd = l->udp_fd;
        l->udp_io.cb = udp_cb;
        if (ev_io_set(s->reactors[0].loop, &l->udp_io, EV_READ) < 0) {
            fprintf(stderr, "logcasterd: epoll: %s\n", strerror(errno));
            goto fail;
        }
    }
    for (int i = 0; i < s->nreactors; i++) {
        if (pthread_create(&s->reactors[i].thread, NULL, reactor_main, &s->reactors[i]) != 0) {
            fprintf(stderr, "logcasterd: cannot start thread %d\n", i);
            s->nreactors = i;
            server_stop(s);
            server_free(s);
            return NULL;
        }
    }
    return s;
fail:
    server_free(s);
    return NULL;
}

void server_stop(struct server *s)
{
    for (int i = 0; i < s->nreactors; i++) {
        uint64_t one = 1;
        if (write(s->reactors[i].wake.fd, &one, sizeof(one)) < 0)
            log_warn("eventfd write: %s", strerror(errno));
    }
    for (int i = 0; i < s->nreactors; i++)
        pthread_join(s->reactors[i].thread, NULL);
}

void server_free(struct server *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nallocated; i++) {
        ev_free(s->reactors[i].loop);
        if (s->reactors[i].wake.fd >= 0)
            close(s->reactors[i].wake.fd);
        if (s->reactors[i].store_wake.fd >= 0)
            close(s->reactors[i].store_wake.fd);
        if (s->reactors[i].inbox_wake.fd >= 0)
            close(s->reactors[i].inbox_wake.fd);
        for (struct handoff *h = s->reactors[i].inbox, *next; h; h = next) {
            next = h->next;
            tls_free(h->ssl);
            close(h->fd);
            buf_free(&h->in);
            free(h);
        }
        pthread_mutex_destroy(&s->reactors[i].inbox_mu);
    }
    free(s->reactors);
    for (size_t i = 0; i < s->nlisteners; i++) {
        close(s->listeners[i].fd);
        if (s->listeners[i].udp_fd >= 0)
            close(s->listeners[i].udp_fd);
        free(s->listeners[i].udp_buf);
    }
    free(s);
}
