/* conn.c - a connection's life and I/O: reading into its input buffer and delivering whole
 * frames to its protocol, queueing and flushing replies, backpressure (--out-limit), and
 * closing. Bytes cross the wire through the connection's transport (transport.h), the same
 * calls for plain TCP and TLS.
 *
 * A connection lives on the loop that accepted it (or was handed it) until it is freed, which
 * always happens in a deferred callback at the end of a loop turn, never inside a handler
 * that still uses it. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/policy.h"
#include "core/server_internal.h"
#include "core/tls.h"

#define READ_CHUNK   (256 * 1024) /* Bytes asked of one read(). */
#define READS_PER_EV 4            /* Reads per readiness event before others get a turn. */

static void conn_io_cb(struct ev_loop *loop, struct ev_io *io, uint32_t events);
static void conn_read_deferred(struct ev_loop *loop, void *arg);
static void conn_update_interest(struct conn *c);
static int conn_flush(struct conn *c);

/* ------------------------------------------------------------------------------------------ */
/* Accessors for protocols. */

struct server *conn_server(const struct conn *c)
{
    return c->r->srv;
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
        CNT_SUB(c->r->srv, conns_by_proto[c->proto->slot], 1);
    if (c->role >= 0)
        policy_release((enum policy_role)c->role, (const struct sockaddr *)&c->sa);
    buf_free(&c->in);
    buf_free(&c->out);
    free(c);
}

/* Take c off its reactor (no more events, off every list); the struct itself is freed after
 * this turn, because a caller up the stack may still look at it. */
void conn_unlink(struct conn *c)
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
    CNT_SUB(srv, conns_current, 1);
    if (ev_defer(c->r->loop, conn_free_deferred, c) < 0)
        log_error("out of memory freeing a connection; leaking it");
}

void conn_destroy(struct conn *c)
{
    if (c->closed)
        return;
    conn_unlink(c);
    stream_close(&c->stream);
}

void conn_last_words(struct conn *c, const char *p, size_t n)
{
    /* Best effort, past whatever is queued: the connection ends here anyway. */
    if (!c->closed && n)
        (void)c->stream.tp->write(&c->stream, p, n);
}

void conn_abort(struct conn *c, const char *last_words)
{
    if (last_words)
        conn_last_words(c, last_words, strlen(last_words));
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
        ssize_t n = c->stream.tp->write(&c->stream, buf_head(&c->out), buf_len(&c->out));
        if (n > 0) {
            buf_consume(&c->out, (size_t)n);
            c->last_active = mono_ms();
            continue;
        }
        if (n == -EINTR)
            continue;
        if (n == -EAGAIN)
            return 0; /* EPOLLOUT (or input) brings us back. */
        log_debug("%s send to %s failed: %s", c->stream.tp->name, c->peer, strerror((int)-n));
        return -1;
    }
    return 0;
}

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
void conn_after_work(struct conn *c)
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

void conn_process_input(struct conn *c)
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

/* Before the first read: the stream's first byte chooses its transport (tls.h). Returns 0
 * to go on, 1 to wait for the first byte, or -errno. */
static int tls_check(struct conn *c)
{
    int t = tls_detect(&c->stream);
    if (t == -EAGAIN || t == -EINTR)
        return 1;
    if (t < 0)
        return t;
    c->tls_checked = true;
    if (t == 0 && c->tls_only) {
        log_info("closing %s: this listener takes TLS connections only", c->peer);
        return -EPROTO;
    }
    return 0;
}

int conn_read(struct conn *c)
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
        ssize_t n = c->stream.tp->read(&c->stream, c->in.data + c->in.end, room);
        if (n > 0) {
            c->in.end += (size_t)n;
            c->last_active = c->last_read = mono_ms();
            CNT_ADD(srv, bytes_in, (uint64_t)n);
            CNT_ADD(srv, bytes_in_by_proto[c->proto->slot], (uint64_t)n);
            conn_process_input(c);
            if (c->closed || c->busy || conn_out_full(c))
                return 0;
            if ((size_t)n < room && c->stream.tp->short_read_drains)
                return 0; /* The socket is empty now; save a read that would say EAGAIN. */
            continue;
        }
        if (n == -EAGAIN)
            return 0;
        if (n == 0) {
            c->read_eof = true;
            conn_process_input(c);
            return 0;
        }
        if (n == -EINTR)
            continue;
        log_debug("%s recv from %s failed: %s", c->stream.tp->name, c->peer, strerror((int)-n));
        return (int)n;
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
        /* Bytes the transport already holds (decrypted TLS) raise no epoll event: read them
         * on this turn. */
        if (c->stream.tp->pending(&c->stream) && ev_defer(c->r->loop, conn_read_deferred, c) < 0)
            log_warn("out of memory deferring a %s read for %s", c->stream.tp->name, c->peer);
    } else if (c->busy) {
        /* A query runs: a peer that goes away meanwhile cancels it. Its close is seen as the
         * end of input; once that was read (or the input is full), only a reset can tell. */
        bool room = buf_len(&c->in) + READ_CHUNK <= input_cap(c);
        want |= !c->read_eof && room ? EV_HUP : EV_KEEP;
    }
    if (buf_len(&c->out) || c->stream.read_wants_write)
        want |= EV_WRITE;
    /* Nothing to wait for (want 0: the peer is done sending, nothing is due to it yet) takes
     * the socket out of epoll: a peer's close stays readable and its reset stays an error,
     * and either, still watched, would wake this loop again and again until the replies
     * this connection owes are ready (seconds, when the cluster is slow to confirm). */
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
    if ((events & EV_READ) || (c->stream.read_wants_write && (events & EV_WRITE))) {
        if (conn_read(c) < 0) {
            conn_destroy(c);
            return;
        }
    }
    conn_after_work(c);
}

/* ------------------------------------------------------------------------------------------ */
/* Starting. */

int conn_open(struct conn *c)
{
    if (c->proto->open && c->proto->open(c) < 0) {
        conn_destroy(c);
        return -1;
    }
    c->opened = true;
    CNT_ADD(c->r->srv, conns_by_proto[c->proto->slot], 1);
    return 0;
}

void conn_start(struct reactor *r, const struct stream *s, const char *peer,
                const struct sockaddr_storage *sa, const struct sockaddr_storage *local, int role,
                const struct proto *proto, proto_pick_fn pick, struct buf *in, bool read_eof,
                bool tls_only)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        CNT_SUB(r->srv, conns_current, 1);
        policy_release((enum policy_role)role, (const struct sockaddr *)sa);
        struct stream lost = *s;
        stream_close(&lost);
        return;
    }
    c->stream = *s;
    /* A handed-over connection was checked already; without TLS there is nothing to check. */
    c->tls_checked = pick == NULL || (!tls_enabled() && !tls_only);
    c->tls_only = tls_only;
    c->sa = *sa;
    c->local = *local;
    c->role = role;
    c->io.fd = s->fd;
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
