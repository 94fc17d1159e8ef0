/* pipeline.c - submit batches to the writer; commits pushed to the reactors (see pipeline.h).
 *
 * Each thread that submits gets a reactor record: an inbox the writer thread fills (under the
 * record's mutex) with the ranges each write run decided, and an eventfd it writes to wake the
 * thread. The thread drains its inbox in one go into lock-free local state -- the highest
 * decided id and the recent failed ranges -- and wakes the waiters those ranges cover, from a
 * heap ordered by the id each waits for. */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/ev.h"
#include "core/log.h"
#include "ingest/ingest_internal.h"
#include "ingest/pipeline.h"
#include "store/store.h"

/* Set once by main, before any carrier runs. */
static const struct ingest_sink_ops *sink_ops;
static void *sink;
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct reactor *registry;

__thread struct reactor *tls_reactor;
static pthread_key_t reactor_key; /* Its destructor leaves the registry when a thread ends. */
static pthread_once_t reactor_key_once = PTHREAD_ONCE_INIT;

static void reactor_free(void *p)
{
    struct reactor *r = p;
    pthread_mutex_lock(&registry_mu);
    for (struct reactor **at = &registry; *at; at = &(*at)->next)
        if (*at == r) {
            *at = r->next;
            break;
        }
    pthread_mutex_unlock(&registry_mu);
    if (r->loop)
        ev_io_set(r->loop, &r->io, 0);
    close(r->io.fd);
    fanout_reactor_free(r);
    pthread_mutex_destroy(&r->mu);
    free(r->cw);
    free(r->due);
    free(r->heap);
    free(r);
}

static void reactor_key_init(void)
{
    if (pthread_key_create(&reactor_key, reactor_free) != 0)
        abort(); /* Only when the process has run out of keys: nothing sensible to do. */
}

/* The calling thread's record, made on first use; NULL when out of resources. */
struct reactor *reactor_get(void)
{
    struct reactor *r = tls_reactor;
    if (r)
        return r;
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->io.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->io.fd < 0) {
        log_error("ingest: eventfd: %s", strerror(errno));
        free(r);
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_once(&reactor_key_once, reactor_key_init);
    pthread_setspecific(reactor_key, r);
    pthread_mutex_lock(&registry_mu);
    /* Under the registry lock, so no commit falls between reading done and joining. */
    r->done = r->in_done = sink_ops->done_id(sink);
    r->next = registry;
    registry = r;
    pthread_mutex_unlock(&registry_mu);
    tls_reactor = r;
    return r;
}

void failed_add(struct store_range *list, size_t *n, struct store_range r)
{
    if (*n == FAILED_KEEP) {
        list[0].hi = list[1].hi; /* In id order: [0] and [1] are the oldest. */
        memmove(list + 1, list + 2, (FAILED_KEEP - 2) * sizeof(*list));
        --*n;
    }
    list[(*n)++] = r;
}

/* The writer thread, after each write run: every reactor learns the run's ranges, and those
 * with subscribers get the commits they decided. */
static void on_commit(void *arg, const struct store_range *ranges, size_t n)
{
    (void)arg;
    if (n == 0)
        return;
    uint64_t one = 1;
    struct ingest_commit *decided = fanout_decided(ranges[n - 1].hi);
    pthread_mutex_lock(&registry_mu);
    for (struct reactor *r = registry; r; r = r->next) {
        pthread_mutex_lock(&r->mu);
        fanout_post(r, decided);
        r->in_done = ranges[n - 1].hi;
        r->in_round = true;
        for (size_t i = 0; i < n; i++) {
            if (ranges[i].failed)
                failed_add(r->in_failed, &r->nin_failed, ranges[i]);
        }
        pthread_mutex_unlock(&r->mu);
        if (write(r->io.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            log_warn("ingest: waking a reactor: %s", strerror(errno));
    }
    pthread_mutex_unlock(&registry_mu);
    fanout_release(decided);
}

static int store_sink_append(void *s, struct lc_entry *e, size_t n)
{
    return store_append(s, e, n);
}

static uint64_t store_sink_done_id(void *s)
{
    return store_done_id(s);
}

static bool store_sink_backlogged(void *s)
{
    return store_backlogged(s);
}

static void store_sink_on_commit(void *s, store_commit_fn fn, void *arg)
{
    store_on_commit(s, fn, arg);
}

static const struct ingest_sink_ops store_sink = {store_sink_append, store_sink_done_id,
                                                  store_sink_backlogged, store_sink_on_commit,
                                                  "store unavailable"};

const char *ingest_failure(void)
{
    return sink_ops->failure;
}

void reactors_post(struct ingest_commit *c)
{
    uint64_t one = 1;
    pthread_mutex_lock(&registry_mu);
    for (struct reactor *r = registry; r; r = r->next) {
        if (!atomic_load_explicit(&r->has_subs, memory_order_relaxed))
            continue;
        pthread_mutex_lock(&r->mu);
        fanout_post(r, c);
        pthread_mutex_unlock(&r->mu);
        if (write(r->io.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            log_warn("ingest: waking a reactor: %s", strerror(errno));
    }
    pthread_mutex_unlock(&registry_mu);
}

void ingest_init_sink(const struct ingest_sink_ops *ops, void *s)
{
    sink_ops = ops;
    sink = s;
    ops->on_commit(s, on_commit, NULL);
}

void ingest_init(struct store *s)
{
    ingest_init_sink(&store_sink, s);
}

static void count(uint64_t *field, uint64_t n)
{
    atomic_fetch_add_explicit((_Atomic uint64_t *)field, n, memory_order_relaxed);
}

int ingest_submit(struct ingest_batch *b, struct server_counters *cnt, int slot,
                  struct ingest_ticket *t)
{
    size_t n = ingest_batch_count(b);
    struct lc_entry *e = ingest_batch_entries(b);
    *t = (struct ingest_ticket){0, 0};
    if (n == 0)
        return 0;
    if (!reactor_get()) { /* Nobody could be told when these are durable. */
        count(&cnt->lines_rejected, n);
        ingest_batch_reset(b);
        return -ENOMEM;
    }
    int r = fanout_append(sink_ops->append, sink, e, n);
    if (r < 0) {
        count(&cnt->lines_rejected, n);
        ingest_batch_reset(b);
        return r;
    }
    t->first_id = e[0].id;
    t->last_id = e[n - 1].id;
    assert(t->last_id - t->first_id == n - 1); /* The store numbers a batch consecutively. */
    /* Per level, once per batch: an atomic add per line would cost more than the line. */
    uint64_t per_level[LC_LEVEL_COUNT] = {0};
    for (size_t i = 0; i < n; i++)
        per_level[e[i].level]++;
    for (int l = 0; l < LC_LEVEL_COUNT; l++)
        if (per_level[l])
            count(&cnt->lines_by_proto[slot][l], per_level[l]);
    ingest_batch_reset(b);
    return 0;
}

enum ingest_state ingest_ticket_state(const struct ingest_ticket *t)
{
    if (t->first_id == 0)
        return INGEST_DURABLE;       /* Nothing was stored: nothing to wait for. */
    struct reactor *r = tls_reactor; /* Made by the submit that issued the ticket. */
    assert(r);
    if (t->last_id > r->done)
        return INGEST_PENDING;
    for (size_t i = 0; i < r->nfailed; i++)
        if (t->first_id <= r->failed[i].hi && r->failed[i].lo <= t->last_id)
            return INGEST_FAILED;
    return INGEST_DURABLE;
}

bool ingest_backlogged(void)
{
    return sink_ops->backlogged(sink);
}

/* ---- Waiters: a min-heap on the id each waits for. ---- */

static void heap_swap(struct reactor *r, size_t i, size_t j)
{
    struct ingest_waiter *w = r->heap[i];
    r->heap[i] = r->heap[j];
    r->heap[j] = w;
    r->heap[i]->slot = i + 1;
    r->heap[j]->slot = j + 1;
}

static void heap_up(struct reactor *r, size_t i)
{
    while (i > 0 && r->heap[(i - 1) / 2]->id > r->heap[i]->id) {
        heap_swap(r, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct reactor *r, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < r->nheap && r->heap[l]->id < r->heap[m]->id)
            m = l;
        if (l + 1 < r->nheap && r->heap[l + 1]->id < r->heap[m]->id)
            m = l + 1;
        if (m == i)
            return;
        heap_swap(r, i, m);
        i = m;
    }
}

static void self_wake(struct reactor *r)
{
    uint64_t one = 1;
    if (write(r->io.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_warn("ingest: waking this reactor: %s", strerror(errno));
}

/* Note w among the waiters reactor_wake wakes this round. 0, or -ENOMEM. */
static int due_add(struct reactor *r, struct ingest_waiter *w, size_t *n)
{
    if (*n == r->capdue) {
        size_t cap = r->capdue ? 2 * r->capdue : 64;
        struct ingest_waiter **grown = realloc(r->due, cap * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        r->due = grown;
        r->capdue = cap;
    }
    r->due[(*n)++] = w;
    return 0;
}

static void heap_remove(struct reactor *r, struct ingest_waiter *w);

/* Take w off whichever list it waits on. */
static void waiter_remove(struct reactor *r, struct ingest_waiter *w)
{
    if (!w->slot)
        return;
    if (w->id != 0) {
        heap_remove(r, w);
        return;
    }
    size_t i = w->slot - 1;
    w->slot = 0;
    if (i != --r->ncw) {
        r->cw[i] = r->cw[r->ncw];
        r->cw[i]->slot = i + 1;
    }
}

static void heap_remove(struct reactor *r, struct ingest_waiter *w)
{
    size_t i = w->slot - 1;
    w->slot = 0;
    if (i != --r->nheap) {
        r->heap[i] = r->heap[r->nheap];
        r->heap[i]->slot = i + 1;
        heap_down(r, i);
        heap_up(r, i);
    }
}

/* The eventfd: take the inbox, then wake every waiter the decided ids now cover. */
static void reactor_wake(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    (void)loop;
    (void)events;
    struct reactor *r = tls_reactor;
    uint64_t n;
    if (read(io->fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_warn("ingest: reading the commit eventfd: %s", strerror(errno));
    bool committed;
    pthread_mutex_lock(&r->mu);
    /* Every round wakes the next-commit waiters, even one that decided nothing new: a sink's
     * poke after its backlog cleared is such a round. */
    committed = r->in_round;
    r->in_round = false;
    r->done = r->in_done;
    for (size_t i = 0; i < r->nin_failed; i++)
        failed_add(r->failed, &r->nfailed, r->in_failed[i]);
    r->nin_failed = 0;
    struct commit_vec arrived = fanout_take_inbox(r);
    pthread_mutex_unlock(&r->mu);
    fanout_deliver(r, arrived);
    /* Every waiter due now is taken off first, then woken: a wake may wait again, and that
     * wait is for a later round. */
    size_t ndue = 0;
    bool oom = false;
    while (committed && r->ncw && !(oom = due_add(r, r->cw[r->ncw - 1], &ndue) < 0))
        waiter_remove(r, r->cw[r->ncw - 1]);
    while (!oom && r->nheap && r->heap[0]->id <= r->done &&
           !(oom = due_add(r, r->heap[0], &ndue) < 0))
        heap_remove(r, r->heap[0]);
    for (size_t i = 0; i < ndue; i++)
        r->due[i]->wake(r->due[i]);
    if (oom) { /* The rest on the next turn, which counts as a round for them. */
        log_warn("ingest: out of memory waking waiters; retrying");
        if (committed && r->ncw) {
            pthread_mutex_lock(&r->mu);
            r->in_round = true;
            pthread_mutex_unlock(&r->mu);
        }
        self_wake(r);
    }
}

struct reactor *reactor_attach(struct ev_loop *loop)
{
    struct reactor *r = reactor_get();
    if (!r)
        return NULL;
    if (!r->loop) {
        r->loop = loop;
        r->io.cb = reactor_wake;
        if (ev_io_set(loop, &r->io, EV_READ) < 0) {
            r->loop = NULL;
            return NULL;
        }
    }
    assert(r->loop == loop); /* A thread runs one loop. */
    return r;
}

/* Append w to a growable list of waiters, setting its slot. 0, or -ENOMEM. */
static int list_add(struct ingest_waiter ***v, size_t *n, size_t *cap, struct ingest_waiter *w)
{
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 64;
        struct ingest_waiter **grown = realloc(*v, c * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        *v = grown;
        *cap = c;
    }
    (*v)[(*n)++] = w;
    w->slot = *n;
    return 0;
}

int ingest_wait(struct ev_loop *loop, struct ingest_waiter *w, uint64_t id)
{
    struct reactor *r = reactor_attach(loop);
    if (!r)
        return -ENOMEM;
    waiter_remove(r, w);
    w->id = id;
    if (id == 0) /* The next commit, whatever it holds. */
        return list_add(&r->cw, &r->ncw, &r->capcw, w);
    if (list_add(&r->heap, &r->nheap, &r->capheap, w) < 0)
        return -ENOMEM;
    heap_up(r, r->nheap - 1);
    if (id <= r->done) /* Decided already: wake it on the next turn. */
        self_wake(r);
    return 0;
}

int ingest_wake_next_commit_waiters(struct ev_loop *loop)
{
    struct reactor *r = reactor_attach(loop);
    if (!r)
        return -ENOMEM;
    pthread_mutex_lock(&r->mu);
    r->in_round = true;
    pthread_mutex_unlock(&r->mu);
    self_wake(r);
    return 0;
}

static void resume_conn(struct ingest_waiter *w)
{
    conn_schedule_resume(w->arg);
}

int ingest_wait_conn(struct conn *c, struct ingest_waiter *w, uint64_t id)
{
    w->wake = resume_conn;
    w->arg = c;
    return ingest_wait(conn_loop(c), w, id);
}

void ingest_wait_cancel(struct ingest_waiter *w)
{
    if (w->slot)
        waiter_remove(tls_reactor, w);
}
