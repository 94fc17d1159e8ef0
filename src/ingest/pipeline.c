/* pipeline.c - submit batches to the writer; the fate of tickets (see pipeline.h). */
#include <assert.h>
#include <errno.h>
#include <stdatomic.h>

#include "ingest/pipeline.h"
#include "store/store.h"

static struct store *sink; /* Set once by main, before any carrier runs. */

void ingest_init(struct store *s)
{
    sink = s;
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
    int r = store_append(sink, e, n);
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
        return INGEST_DURABLE; /* Nothing was stored: nothing to wait for. */
    switch (store_range_state(sink, t->first_id, t->last_id)) {
    case STORE_PENDING:
        return INGEST_PENDING;
    case STORE_FAILED:
        return INGEST_FAILED;
    default:
        return INGEST_DURABLE;
    }
}

bool ingest_backlogged(void)
{
    return store_backlogged(sink);
}
