/* reactor.c - the reactor threads: one epoll loop each, the periodic sweep (idle and line
 * timeouts, buffer trimming, protocol ticks), the shutdown drain, connections handed from one
 * reactor to another, and server_start/stop.
 *
 * A reactor owns its connections; other threads reach it only through its eventfds (shutdown,
 * inbox) and its inbox under a mutex. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/thread.h"
#include "core/log.h"
#include "core/policy.h"
#include "core/server_internal.h"

__thread struct reactor *this_reactor;

/* ------------------------------------------------------------------------------------------ */
/* Accessors. */

struct server_counters *server_counters(struct server *s)
{
    return &s->counters;
}
const struct config *server_config(const struct server *s)
{
    return s->cfg;
}
int64_t server_started_ms(const struct server *s)
{
    return s->started_ms;
}

/* Reset an eventfd after it woke us; the count itself carries no meaning. */
static void drain_eventfd(int fd)
{
    uint64_t v;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warn("eventfd read: %s", strerror(errno));
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
            CNT_ADD(r->srv, conns_timed_out, 1);
            char bye[160];
            int n = c->proto->timeout ? c->proto->timeout(c, bye, sizeof(bye)) : 0;
            if (n > 0)
                conn_last_words(c, bye, (size_t)n < sizeof(bye) ? (size_t)n : sizeof(bye) - 1);
            conn_destroy(c);
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
            CNT_ADD(r->srv, conns_timed_out, 1);
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

static void wake_cb(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    (void)loop;
    (void)events;
    drain_eventfd(io->fd);
    struct reactor *r = this_reactor;
    if (!r->draining)
        reactor_begin_drain(r);
}

static void *reactor_main(void *arg)
{
    struct reactor *r = arg;
    this_reactor = r;
    thread_name("reactor%d", r->index);
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
/* Hand-over between reactors. */

void reactor_handoff(struct conn *c)
{
    struct server *srv = c->r->srv;
    struct reactor *to = &srv->reactors[0];
    struct handoff *h = calloc(1, sizeof(*h));
    if (!h) {
        conn_destroy(c);
        return;
    }
    h->proto = c->proto;
    h->role = c->role;
    h->sa = c->sa;
    h->local = c->local;
    h->stream = c->stream; /* A TLS session moves with its socket. */
    c->stream = stream_tcp(-1);
    c->role = -1; /* Admission moves with it: not released here. */
    memcpy(h->peer, c->peer, sizeof(h->peer));
    h->in = c->in;
    memset(&c->in, 0, sizeof(c->in));
    h->read_eof = c->read_eof;
    conn_unlink(c);
    CNT_ADD(srv, conns_current, 1); /* Still open: it continues over there. */
    pthread_mutex_lock(&to->inbox_mu);
    h->next = to->inbox;
    to->inbox = h;
    pthread_mutex_unlock(&to->inbox_mu);
    uint64_t one = 1;
    if (write(to->inbox_wake.fd, &one, sizeof(one)) < 0)
        log_warn("eventfd write: %s", strerror(errno));
}

/* Connections handed over by other reactors. */
static void inbox_cb(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    (void)loop;
    (void)events;
    drain_eventfd(io->fd);
    struct reactor *r = this_reactor;
    pthread_mutex_lock(&r->inbox_mu);
    struct handoff *list = r->inbox;
    r->inbox = NULL;
    pthread_mutex_unlock(&r->inbox_mu);
    while (list) {
        struct handoff *h = list;
        list = h->next;
        if (r->draining) {
            CNT_SUB(r->srv, conns_current, 1);
            policy_release((enum policy_role)h->role, (const struct sockaddr *)&h->sa);
            stream_close(&h->stream);
            buf_free(&h->in);
        } else {
            conn_start(r, &h->stream, h->peer, &h->sa, &h->local, h->role, h->proto, NULL, &h->in,
                       h->read_eof, false);
        }
        free(h);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Starting and stopping. */

struct server *server_start(const struct config *cfg, const struct listener_spec *specs,
                            size_t nspecs)
{
    struct server *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cfg = cfg;
    s->started_ms = now_ms();
    lc_assert(nspecs <= MAX_LISTENERS);
    for (size_t i = 0; i < nspecs; i++) {
        if (specs[i].port < 0)
            continue;
        if (listener_open(cfg, &specs[i], &s->listeners[s->nlisteners]) < 0)
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
        s->reactors[i].wake.fd = s->reactors[i].inbox_wake.fd = -1;
        pthread_mutex_init(&s->reactors[i].inbox_mu, NULL);
    }
    for (int i = 0; i < s->nreactors; i++) {
        struct reactor *r = &s->reactors[i];
        r->srv = s;
        r->index = i;
        r->loop = ev_new();
        r->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        r->wake.cb = wake_cb;
        r->inbox_wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        r->inbox_wake.cb = inbox_cb;
        if (!r->loop || r->wake.fd < 0 || ev_io_set(r->loop, &r->wake, EV_READ) < 0 ||
            r->inbox_wake.fd < 0 || ev_io_set(r->loop, &r->inbox_wake, EV_READ) < 0) {
            fprintf(stderr, "logcasterd: cannot create event loop: %s\n", strerror(errno));
            goto fail;
        }
        for (size_t j = 0; j < s->nlisteners; j++) {
            r->lio[j].fd = s->listeners[j].fd;
            r->lio[j].cb = listener_accept_cb;
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
        l->udp_io.cb = listener_udp_cb;
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
        if (s->reactors[i].inbox_wake.fd >= 0)
            close(s->reactors[i].inbox_wake.fd);
        for (struct handoff *h = s->reactors[i].inbox, *next; h; h = next) {
            next = h->next;
            stream_close(&h->stream);
            buf_free(&h->in);
            free(h);
        }
        pthread_mutex_destroy(&s->reactors[i].inbox_mu);
    }
    free(s->reactors);
    for (size_t i = 0; i < s->nlisteners; i++)
        listener_close(&s->listeners[i]);
    free(s);
}
