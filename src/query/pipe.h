/* pipe.h - the pipes after a query's filter, and the table they answer with.
 *
 * "level:ERROR | stats by (source) count() as n | sort by (n desc) | limit 5": the filter
 * picks entries (qry.h), the pipes turn them into a table. Syntax follows VictoriaLogs'
 * LogsQL where it fits (README "Pipes"): stats (count, count_uniq, sum, min, max, avg,
 * quantile; by fields and by (_time:DURATION) buckets), top, sort, limit, fields,
 * field_names. Fields of an entry: the built-ins _time, level, source, _msg, and every
 * key=value (or key="quoted value") pair of its message.
 *
 * A run is split into parts that may run on different threads: each part feeds the entries
 * of its share of the store into its own qagg, the parts are merged, and the merged run is
 * finished into a table. Every part's memory is counted against a limit, so a query that
 * would need too much ends with an error naming the limit instead of taking the server's
 * memory. */
#ifndef LC_QUERY_PIPE_H
#define LC_QUERY_PIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/entry.h"

struct qry;
struct qpipes; /* A compiled chain of pipes: immutable, shared by threads. */
struct qagg;   /* One part of a run of the pipes. */
struct buf;    /* core/buf.h */

/* True when the compiled query has pipes (then its answer is a table, not entries). */
bool qry_has_pipes(const struct qry *q);
const struct qpipes *qry_pipes(const struct qry *q); /* NULL without pipes. */

/* Where the first '|' stands in the query text (for errors about the pipes as a whole). */
size_t qpipes_bar(const struct qpipes *p);

/* True when the answer needs every matching entry (stats, top, sort); false when a limit
 * lets a part stop early (only limit/fields on entries). */
bool qpipes_needs_all(const struct qpipes *p);

struct qcell {
    const char *s; /* Owned by the table; NUL-terminated. */
    size_t len;
    bool num; /* A number: JSON writes it bare. */
};

struct qtable {
    size_t ncols, nrows;
    char **cols;         /* Column names, in order. */
    struct qcell *cells; /* nrows * ncols, row-major. */
};

/* A part of a run, counting its memory against mem_limit bytes (0 = no limit). */
struct qagg *qagg_new(const struct qpipes *p, size_t mem_limit);

/* Feed one matching entry. Within a part, entries come in one id order (the caller's scan
 * order); parts may overlap in time but not in ids. Returns false when this part needs no
 * more entries: a limit is reached, or an error (qagg_error) stopped it. */
bool qagg_add(struct qagg *a, const struct lc_entry *e);

/* A whole block as its summary tells it: counts[l] of its entries have level l and match the
 * filter, all with times in [min_ts, max_ts]. With level_counts (its entries per level) and
 * values (its value summary, store/valsum.h), a level's matching entries must be none or all
 * of them for the values to be used. */
struct qagg_block {
    uint64_t counts[LC_LEVEL_COUNT];
    const uint32_t *level_counts; /* NULL: no values either. */
    const uint8_t *values;        /* NULL: none. */
    uint32_t values_len;
    int64_t min_ts, max_ts;
};

/* Add a whole block without reading it, when its summary answers. True when the part took the
 * block: stats/top whose functions are all count(), whose by-fields are level, _time buckets
 * holding the whole block, and at most one other field (source, or a message field) whose
 * values the block's value summary lists; false when it needs the entries (nothing was added
 * then). */
bool qagg_add_summary(struct qagg *a, const struct qagg_block *b);

/* Blocks that parts took from their summaries, since start (STATS). */
uint64_t qagg_blocks_summarized(void);

/* Fold part b into a (same pipes), freeing b. Returns 0, or -ENOMEM / -E2BIG (the memory
 * limit; qagg_error(a) says so). */
int qagg_merge(struct qagg *a, struct qagg *b);

/* The sentence that stopped the run (e.g. "query needs more than 64 MiB (--query-memory)"),
 * or NULL. */
const char *qagg_error(const struct qagg *a);

/* Apply the rest of the pipes and return the table; consumes a. On error returns NULL and
 * writes one sentence to err (QRY_ERR_MAX bytes). */
struct qtable *qagg_finish(struct qagg *a, char *err);

/* Append a's wire form to out (core/buf.h), for a part sent to another node: the whole state
 * of every pipe kind (an entry chain's rows; every group with each function's state: counts,
 * sums, minimums, maximums, count_uniq's values, quantile's sketch; field_names' counts), or
 * the sentence of a part that stopped (qagg_error). Headed by a version and a hash of the
 * compiled pipes, which the decoder checks. a is not changed. Returns 0, or -ENOMEM with out
 * as it was. */
int qagg_encode(const struct qagg *a, struct buf *out);

/* A part for the compiled pipes p built from data[0..len), an encoding qagg_encode made for
 * the same pipes, possibly on another node; it owns all its memory (data is not kept), and
 * merges and finishes like the part that was encoded, so finishing the merge of decoded parts
 * gives the table the originals would. Its memory is charged to mem_limit (0 = no limit) as
 * qagg_add charges: past the limit it is a part stopped with that sentence (qagg_error, and
 * qagg_merge passes it on), as is a part that was encoded stopped. Any bytes are safe: ones
 * that are not such an encoding (truncated, corrupt, another version or other pipes) give NULL
 * and one sentence in err (QRY_ERR_MAX bytes), never a crash or an allocation beyond what len
 * backs. */
struct qagg *qagg_decode(const struct qpipes *p, const void *data, size_t len, size_t mem_limit,
                         char *err);

void qagg_free(struct qagg *a);     /* NULL is a no-op. */
void qtable_free(struct qtable *t); /* NULL is a no-op. */

/* Write row r as the query port prints it: name=value pairs in column order separated by
 * single spaces; a value that is empty or holds a space, '"' or '=' is double-quoted with \"
 * and \\ escapes, and so is a name that holds one of those or '|' ("quantile(0.9, x)"). Writes at
 * most cap bytes (no NUL) and returns the full length, so a caller can grow its buffer and call
 * again. */
size_t qtable_row_kv(const struct qtable *t, size_t r, char *out, size_t cap);

#endif
