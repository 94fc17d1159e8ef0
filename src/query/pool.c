/* pool.c - the query pool's threads, admission queue and round-robin run queue.
 *
 * One lock guards both queues and every task's pool-private fields; steps run without it.
 * A parallel task stays in the run queue while it has work, so every idle worker may join
 * it; a sequential task is queued again only after its step returned. A task's finish runs
 * on whichever worker saw it end with no step running. */
#include "query/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/thread.h"
#include "core/log.h"
#include "core/metrics.h"

static _Thread_local struct qtask *current; /* The task whose step this thread runs. */

struct fifo {
    struct qtask *head, *tail;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t *threads;
    int nthreads;
    struct qpool_cfg cfg;
    bool stop, started;
    struct fifo run;     /* Admitted tasks with a step to run. */
    struct fifo waiting; /* Submitted beyond the concurrency limit. */
    uint64_t nwaiting, nadmitted, finished, cancelled, timed_out;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void fifo_push(struct fifo *f, struct qtask *t)
{
    t->next = NULL;
    if (f->tail)
        f->tail->next = t;
    else
        f->head = t;
    f->tail = t;
    t->queued = true;
}

static struct qtask *fifo_pop(struct fifo *f)
{
    struct qtask *t = f->head;
    if (t) {
        f->head = t->next;
        if (!f->head)
            f->tail = NULL;
        t->next = NULL;
        t->queued = false;
    }
    return t;
}

/* Queue t to run a step (lock held). */
static void make_runnable(struct qtask *t)
{
    if (!t->queued && !t->finished) {
        fifo_push(&pool.run, t);
        pthread_cond_signal(&pool.cv);
    }
}

/* The task ended: free its admission slot for the next waiting task (lock held). */
static void release_slot(struct qtask *t)
{
    if (!t->admitted)
        return;
    t->admitted = false;
    pool.nadmitted--;
    struct qtask *next = fifo_pop(&pool.waiting);
    if (next) {
        pool.nwaiting--;
        metrics_observe(MH_QUERY_WAIT, mono_ns() - next->submitted_ns);
        next->admitted = true;
        pool.nadmitted++;
        make_runnable(next);
    }
}

/* Run t's finish (lock held on entry and exit; released during the call). */
static void finish(struct qtask *t)
{
    t->finished = true;
    enum qend end = t->cancel ? QE_CANCELLED : t->expired ? QE_TIMEOUT : QE_DONE;
    if (end == QE_DONE)
        pool.finished++;
    else if (end == QE_CANCELLED)
        pool.cancelled++;
    else
        pool.timed_out++;
    release_slot(t);
    pthread_mutex_unlock(&pool.mu);
    t->ops->finish(t, end);
    pthread_mutex_lock(&pool.mu);
}

static void *worker(void *arg)
{
    thread_name("query%d", (int)(intptr_t)arg);
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        struct qtask *t = fifo_pop(&pool.run);
        if (!t) {
            if (pool.stop)
                break;
            pthread_cond_wait(&pool.cv, &pool.mu);
            continue;
        }
        if (t->finished)
            continue;
        bool late = t->deadline_ms && mono_ms() > t->deadline_ms;
        if (t->cancel || late || pool.stop) {
            if (pool.stop)
                t->cancel = true;
            t->expired = late && !t->cancel;
            t->paused = false;
            t->exhausted = true; /* No more steps; the last one running finishes it. */
            if (t->active == 0)
                finish(t);
            continue;
        }
        if (t->exhausted) { /* A parallel task whose shares are all taken. */
            if (t->active == 0)
                finish(t);
            continue;
        }
        t->active++;
        if (t->parallel)
            make_runnable(t); /* Another worker may take the next share meanwhile. */
        pthread_mutex_unlock(&pool.mu);
        current = t;
        enum qstep st = t->ops->step(t);
        current = NULL;
        pthread_mutex_lock(&pool.mu);
        t->active--;
        if (atomic_load_explicit(&t->interrupted, memory_order_relaxed)) {
            /* Its answer is incomplete: it can only end as cancelled or timed out. */
            t->expired = !t->cancel;
            t->exhausted = true;
        }
        if (st == QS_DONE)
            t->exhausted = true;
        if (t->exhausted) { /* If it is still queued, the worker that pops it finishes it. */
            if (t->active == 0 && !t->finished && !t->queued)
                finish(t);
            continue;
        }
        if (st == QS_PAUSED && !t->unpause && !t->cancel) {
            t->paused = true;
            continue;
        }
        t->unpause = false;
        make_runnable(t);
    }
    pthread_mutex_unlock(&pool.mu);
    return NULL;
}

int qpool_start(const struct qpool_cfg *cfg)
{
    pool.cfg = *cfg;
    if (pool.cfg.threads < 1)
        pool.cfg.threads = 1;
    if (pool.cfg.concurrency < 1)
        pool.cfg.concurrency = 1;
    pool.threads = calloc((size_t)pool.cfg.threads, sizeof(*pool.threads));
    if (!pool.threads)
        return -ENOMEM;
    pool.stop = false;
    for (int i = 0; i < pool.cfg.threads; i++) {
        int rc = pthread_create(&pool.threads[i], NULL, worker, (void *)(intptr_t)i);
        if (rc) {
            log_error("query pool: cannot start a thread: %s", strerror(rc));
            qpool_stop();
            return -rc;
        }
        pool.nthreads++;
    }
    pool.started = true;
    return 0;
}

void qpool_stop(void)
{
    pthread_mutex_lock(&pool.mu);
    __atomic_store_n(&pool.stop, true, __ATOMIC_RELAXED);
    /* Waiting tasks are admitted so that a worker finishes (cancels) each of them. */
    for (struct qtask *t; (t = fifo_pop(&pool.waiting));) {
        pool.nwaiting--;
        t->admitted = true;
        pool.nadmitted++;
        t->cancel = true;
        make_runnable(t);
    }
    pthread_cond_broadcast(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
    for (int i = 0; i < pool.nthreads; i++)
        pthread_join(pool.threads[i], NULL);
    free(pool.threads);
    pool.threads = NULL;
    pool.nthreads = 0;
    pool.started = false;
}

void qpool_submit(struct qtask *t)
{
    pthread_mutex_lock(&pool.mu);
    t->deadline_ms = pool.cfg.timeout_ms ? mono_ms() + pool.cfg.timeout_ms : 0;
    t->submitted_ns = mono_ns();
    if (pool.nadmitted < (uint64_t)pool.cfg.concurrency) {
        metrics_observe(MH_QUERY_WAIT, 0);
        t->admitted = true;
        pool.nadmitted++;
        make_runnable(t);
    } else {
        fifo_push(&pool.waiting, t);
        pool.nwaiting++;
    }
    pthread_mutex_unlock(&pool.mu);
}

/* Take t out of the admission queue (lock held). */
static bool unwait(struct qtask *t)
{
    struct qtask **pp = &pool.waiting.head, *prev = NULL;
    for (; *pp; prev = *pp, pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            if (pool.waiting.tail == t)
                pool.waiting.tail = prev;
            t->next = NULL;
            t->queued = false;
            pool.nwaiting--;
            return true;
        }
    return false;
}

void qpool_cancel(struct qtask *t)
{
    pthread_mutex_lock(&pool.mu);
    if (!t->finished) {
        t->cancel = true;
        atomic_store_explicit(&t->stop_now, true, memory_order_relaxed);
        if (!t->admitted && unwait(t)) { /* Never ran: it finishes through a worker. */
            t->admitted = true;
            pool.nadmitted++;
        }
        if (t->paused) {
            t->paused = false;
            make_runnable(t);
        } else if (!t->queued && t->active == 0) {
            make_runnable(t);
        }
    }
    pthread_mutex_unlock(&pool.mu);
}

void qpool_unpause(struct qtask *t)
{
    pthread_mutex_lock(&pool.mu);
    if (t->paused) {
        t->paused = false;
        make_runnable(t);
    } else if (t->active > 0) {
        t->unpause = true; /* The step about to report "paused" must not park. */
    }
    pthread_mutex_unlock(&pool.mu);
}

bool qpool_should_stop(void)
{
    struct qtask *t = current;
    bool stop = t && (atomic_load_explicit(&t->stop_now, memory_order_relaxed) ||
                      __atomic_load_n(&pool.stop, __ATOMIC_RELAXED) ||
                      (t->deadline_ms && mono_ms() > t->deadline_ms));
    if (stop)
        atomic_store_explicit(&t->interrupted, true, memory_order_relaxed);
    return stop;
}

int64_t qpool_timeout_ms(void)
{
    return pool.cfg.timeout_ms;
}

void qpool_get_stats(struct qpool_stats *st)
{
    pthread_mutex_lock(&pool.mu);
    st->queued = pool.nwaiting;
    st->running = pool.nadmitted;
    st->finished = pool.finished;
    st->cancelled = pool.cancelled;
    st->timed_out = pool.timed_out;
    st->threads = pool.cfg.threads;
    st->concurrency = pool.cfg.concurrency;
    pthread_mutex_unlock(&pool.mu);
}
