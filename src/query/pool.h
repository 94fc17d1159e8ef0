/* pool.h - the query pool: threads that run every query's work, so no reactor ever scans.
 *
 * A task is a unit of query work cut into steps of bounded length (tens of milliseconds).
 * At most `concurrency` tasks are admitted at once; the rest wait, first come first served.
 * Admitted tasks share the threads step by step, round robin, so a long scan does not hold
 * back a short one. A parallel task may run steps on several threads at once (each step takes
 * its own share of the store); its finish runs once, after the last step. The pool checks
 * cancellation and the deadline between steps. */
#ifndef LC_QUERY_POOL_H
#define LC_QUERY_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qpool_cfg {
    int threads;        /* Worker threads (>= 1). */
    int concurrency;    /* Tasks admitted at once; later ones queue. */
    int64_t timeout_ms; /* From submission; 0 = none. */
};

/* Start the workers. Returns 0 or -errno. */
int qpool_start(const struct qpool_cfg *cfg);

/* Cancel every task, let each finish, join the workers. */
void qpool_stop(void);

enum qstep {
    QS_MORE,   /* Call again (after other tasks had a turn). */
    QS_PAUSED, /* The output is full: wait for qpool_unpause. Sequential tasks only. */
    QS_DONE,   /* No work left (for a parallel task: no share left to take). */
};

enum qend {
    QE_DONE,      /* Every step finished. */
    QE_CANCELLED, /* qpool_cancel. */
    QE_TIMEOUT,   /* The deadline passed. */
};

struct qtask;
struct qtask_ops {
    enum qstep (*step)(struct qtask *t);
    /* Runs once on a pool thread when no step runs any more: the answer (or the reason it
     * ended) is written here. After it returns the pool does not touch the task again. */
    void (*finish)(struct qtask *t, enum qend end);
};

/* Embed in the caller's object; fill ops and parallel, leave the rest zero. */
struct qtask {
    const struct qtask_ops *ops;
    bool parallel;
    /* Private to the pool (under its lock). */
    struct qtask *next;
    int64_t deadline_ms;
    int64_t submitted_ns; /* For the wait histogram. */
    int active;           /* Steps running now. */
    bool queued;          /* In the run queue or the admission queue. */
    bool admitted;        /* Counted against concurrency. */
    bool paused, unpause, exhausted, finished, cancel, expired;
    _Atomic bool stop_now;    /* Cancelled: read by long steps without the lock. */
    _Atomic bool interrupted; /* A step stopped early (qpool_should_stop): work is missing. */
};

/* For a long step on a pool thread (a scan deep in a block): true when its task is cancelled
 * or past its deadline, so the step should return at once. False off the pool. Cheap. */
bool qpool_should_stop(void);

/* Hand t to the pool. From any thread. */
void qpool_submit(struct qtask *t);

/* Stop t at its next step boundary; its finish runs with QE_CANCELLED (unless it already
 * ran). From any thread, until finish has run. */
void qpool_cancel(struct qtask *t);

/* Make a paused task runnable again (the output drained). From any thread. */
void qpool_unpause(struct qtask *t);

/* The configured --query-timeout in milliseconds (0 = none), for messages. */
int64_t qpool_timeout_ms(void);

struct qpool_stats {
    uint64_t queued;   /* Waiting for admission now. */
    uint64_t running;  /* Admitted now. */
    uint64_t finished; /* Ended normally, since start. */
    uint64_t cancelled;
    uint64_t timed_out;
    int threads, concurrency;
};
void qpool_get_stats(struct qpool_stats *st);

#endif
