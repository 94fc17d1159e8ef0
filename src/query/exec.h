/* exec.h - run a compiled query over the store in bounded slices, for any protocol.
 *
 * A search first counts its answer (newest first, stopping at the limit), then streams the
 * rows oldest first, so a protocol can print the count before the rows while holding only a
 * cursor: memory stays bounded whatever the number of matches. Each qexec_step examines at
 * most `budget` entries, so one query never holds a loop for long. */
#ifndef LC_EXEC_H
#define LC_EXEC_H

#include <stdbool.h>
#include <stdint.h>

#include "base/entry.h"

struct store;
struct qry;
struct qexec;

struct qexec_sink {
    /* The answer's size is known (called once, before any row). */
    void (*count)(void *arg, uint64_t n);
    /* One row. Return false when the output is full: the step pauses after this row. */
    bool (*row)(void *arg, const struct lc_entry *e);
};

enum qexec_status {
    QX_MORE,   /* Budget used up: call again (next loop turn). */
    QX_PAUSED, /* The sink is full: call again when it has room. */
    QX_DONE,   /* Finished; count and every row were delivered. */
};

/* Start a search (count_only = false) or a count. Takes ownership of q. The snapshot is the
 * store's content at this moment; entries appended later are not part of the answer. */
struct qexec *qexec_new(struct store *s, struct qry *q, bool count_only);
enum qexec_status qexec_step(struct qexec *x, size_t budget, const struct qexec_sink *sink,
                             void *arg);
/* The same over ids [lo, hi] only. */
struct qexec *qexec_new_range(struct store *s, struct qry *q, bool count_only, uint64_t lo,
                              uint64_t hi);
void qexec_free(struct qexec *x); /* NULL is a no-op. */

#endif
