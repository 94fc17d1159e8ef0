/* pipeline.h - the one door to the writer: whole batches in, tickets out.
 *
 * Every carrier (TCP, UDP, HTTP, later the cluster's stream consumer) builds a batch
 * (batch.h) and hands it to ingest_submit, which gives the batch's entries their ids and
 * answers with a ticket: the id range the batch occupies. A carrier that owes its sender an
 * answer keeps the ticket and asks ingest_ticket_state when it is woken. */
#ifndef LC_INGEST_PIPELINE_H
#define LC_INGEST_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/server.h"
#include "ingest/batch.h"

struct store;

/* The id range a submitted batch occupies; first_id 0: nothing was stored. */
struct ingest_ticket {
    uint64_t first_id, last_id;
};

enum ingest_state {
    INGEST_PENDING, /* Accepted, not yet as durable as the --fsync policy promises. */
    INGEST_DURABLE, /* Durable per the policy, and queryable: acknowledge it. */
    INGEST_FAILED,  /* Could not be stored (disk full, I/O error): report an error. */
};

/* Where submitted batches go. Called once by main before any listener starts. */
void ingest_init(struct store *sink);

/* Submit the batch's entries, in order, to the writer, and reset the batch. The batch's
 * entry i has id t->first_id + i (ids are consecutive). slot (enum in server.h) is the carrier's
 * protocol, for the per-protocol counters in cnt. Returns 0, or -errno when nothing was
 * accepted (the entries are counted as rejected). Never blocks on disk. */
int ingest_submit(struct ingest_batch *b, struct server_counters *cnt, int slot,
                  struct ingest_ticket *t);

/* The fate of a ticket's entries together: PENDING until all are decided, then FAILED if any
 * failed, else DURABLE. */
enum ingest_state ingest_ticket_state(const struct ingest_ticket *t);

/* True while the writer's queue is over its bound: carriers stop reading until woken. */
bool ingest_backlogged(void);

#endif
