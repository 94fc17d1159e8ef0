/* ev.c - the epoll event loop. */
#include "core/ev.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/log.h"

#define EV_BATCH 256

struct deferred {
    ev_fn fn;
    void *arg;
};

struct ev_loop {
    int epfd;
    bool stop;
    struct deferred *defer; /* Queue filled during a turn, drained at its end. */
    size_t ndefer, capdefer;
    int tick_ms;
    ev_fn tick_fn;
    void *tick_arg;
    int64_t next_tick;
    /* Work posted by other threads (ev_post): a locked queue and the eventfd that wakes us. */
    pthread_mutex_t post_mu;
    struct deferred *posted;
    size_t nposted, capposted;
    struct ev_io post_io;
};

static void posted_run(struct ev_loop *loop)
{
    pthread_mutex_lock(&loop->post_mu);
    struct deferred *list = loop->posted;
    size_t n = loop->nposted;
    loop->posted = NULL;
    loop->nposted = loop->capposted = 0;
    pthread_mutex_unlock(&loop->post_mu);
    for (size_t i = 0; i < n; i++)
        list[i].fn(loop, list[i].arg);
    free(list);
}

static void post_wake(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    (void)events;
    uint64_t v;
    if (read(io->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warn("ev: reading the post eventfd: %s", strerror(errno));
    posted_run(loop);
}

struct ev_loop *ev_new(void)
{
    struct ev_loop *loop = calloc(1, sizeof(*loop));
    if (!loop)
        return NULL;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    loop->post_io.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    loop->post_io.cb = post_wake;
    if (loop->epfd < 0 || loop->post_io.fd < 0 || ev_io_set(loop, &loop->post_io, EV_READ) < 0) {
        if (loop->epfd >= 0)
            close(loop->epfd);
        if (loop->post_io.fd >= 0)
            close(loop->post_io.fd);
        free(loop);
        return NULL;
    }
    pthread_mutex_init(&loop->post_mu, NULL);
    return loop;
}

void ev_free(struct ev_loop *loop)
{
    if (!loop)
        return;
    posted_run(loop); /* What other threads posted last still releases what it carries. */
    close(loop->epfd);
    close(loop->post_io.fd);
    pthread_mutex_destroy(&loop->post_mu);
    free(loop->posted);
    free(loop->defer);
    free(loop);
}

int ev_io_set(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    if (events == io->events)
        return 0;
    struct epoll_event ee = {0};
    ee.data.ptr = io;
    if (events & EV_READ)
        ee.events |= EPOLLIN | EPOLLRDHUP;
    if (events & EV_HUP)
        ee.events |= EPOLLRDHUP;
    /* EV_KEEP adds nothing: epoll always reports EPOLLERR and EPOLLHUP. */
    if (events & EV_WRITE)
        ee.events |= EPOLLOUT;
    if (events & EV_EXCLUSIVE)
        ee.events = EPOLLIN | EPOLLEXCLUSIVE;
    int op = io->events == 0 ? EPOLL_CTL_ADD : events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (epoll_ctl(loop->epfd, op, io->fd, &ee) < 0)
        return -errno;
    io->events = events;
    return 0;
}

int ev_defer(struct ev_loop *loop, ev_fn fn, void *arg)
{
    if (loop->ndefer == loop->capdefer) {
        size_t cap = loop->capdefer ? loop->capdefer * 2 : 64;
        struct deferred *d = realloc(loop->defer, cap * sizeof(*d));
        if (!d)
            return -ENOMEM;
        loop->defer = d;
        loop->capdefer = cap;
    }
    loop->defer[loop->ndefer++] = (struct deferred){fn, arg};
    return 0;
}

int ev_post(struct ev_loop *loop, ev_fn fn, void *arg)
{
    pthread_mutex_lock(&loop->post_mu);
    if (loop->nposted == loop->capposted) {
        size_t cap = loop->capposted ? loop->capposted * 2 : 16;
        struct deferred *d = realloc(loop->posted, cap * sizeof(*d));
        if (!d) {
            pthread_mutex_unlock(&loop->post_mu);
            return -ENOMEM;
        }
        loop->posted = d;
        loop->capposted = cap;
    }
    bool was_empty = loop->nposted == 0;
    loop->posted[loop->nposted++] = (struct deferred){fn, arg};
    pthread_mutex_unlock(&loop->post_mu);
    if (was_empty) { /* One wake-up covers everything queued until the loop drains. */
        uint64_t one = 1;
        if (write(loop->post_io.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            return -errno;
    }
    return 0;
}

void ev_set_tick(struct ev_loop *loop, int period_ms, ev_fn fn, void *arg)
{
    loop->tick_ms = period_ms;
    loop->tick_fn = fn;
    loop->tick_arg = arg;
    loop->next_tick = mono_ms() + period_ms;
}

void ev_stop(struct ev_loop *loop)
{
    loop->stop = true;
}

/* Run the deferred queue as it stood when the turn ended; work queued meanwhile waits for the
 * next turn so that a job re-queueing itself cannot starve the sockets. */
static void run_deferred(struct ev_loop *loop)
{
    size_t n = loop->ndefer;
    for (size_t i = 0; i < n; i++)
        loop->defer[i].fn(loop, loop->defer[i].arg);
    size_t rest = loop->ndefer - n;
    for (size_t i = 0; i < rest; i++)
        loop->defer[i] = loop->defer[n + i];
    loop->ndefer = rest;
}

void ev_run_deferred(struct ev_loop *loop)
{
    for (;;) {
        pthread_mutex_lock(&loop->post_mu);
        bool posted = loop->nposted > 0;
        pthread_mutex_unlock(&loop->post_mu);
        if (posted)
            posted_run(loop);
        else if (loop->ndefer)
            run_deferred(loop);
        else
            break;
    }
}

int ev_run(struct ev_loop *loop)
{
    struct epoll_event evs[EV_BATCH];
    while (!loop->stop) {
        int timeout = -1;
        if (loop->ndefer)
            timeout = 0;
        else if (loop->tick_fn) {
            int64_t left = loop->next_tick - mono_ms();
            timeout = left < 0 ? 0 : (int)left;
        }
        int n = epoll_wait(loop->epfd, evs, EV_BATCH, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        for (int i = 0; i < n; i++) {
            struct ev_io *io = evs[i].data.ptr;
            uint32_t got = 0;
            if (evs[i].events & (EPOLLIN | EPOLLRDHUP))
                got |= EV_READ;
            if (evs[i].events & EPOLLOUT)
                got |= EV_WRITE;
            if (evs[i].events & (EPOLLERR | EPOLLHUP))
                got |= EV_ERROR | EV_READ;
            io->cb(loop, io, got);
        }
        run_deferred(loop);
        if (loop->tick_fn && mono_ms() >= loop->next_tick) {
            loop->next_tick = mono_ms() + loop->tick_ms;
            loop->tick_fn(loop, loop->tick_arg);
        }
    }
    return 0;
}
