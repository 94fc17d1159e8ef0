/* qry.h - the LogCaster query language: compile once, match entries, skip blocks, and run a
 * query over the store (scan.c).
 *
 * One language serves the query port, IRC !query and HTTP. Text form (README "Query
 * language"): terms separated by spaces are ANDed; OR between terms; '-' or NOT negates;
 * parentheses group; "quoted phrases"; level:ERROR, level:>=WARN (also >, <, <=);
 * source:PREFIX; since:15m / until:1h (relative: s m h d w), from:/to: absolute (unix
 * seconds or ISO-8601 UTC); /regex/ or regex:PATTERN (PCRE2); limit:N; name:value fields of
 * the message, and name:>N, >=, <, <=, [A,B] comparing one as a number with units (250ms, 10KiB);
 * '*' alone for every entry; then " | " and pipes (pipe.h).
 *
 * Keyword semantics: a bare word or phrase matches case-insensitively as a substring of the
 * message, and a bare word that equals a level name (case-insensitively, aliases included)
 * also matches entries of that level. So "error" finds ERROR entries even when the message
 * lacks the word, as in the seed's examples.
 *
 * A compiled query is immutable after compilation and may be shared by threads. */
#ifndef LC_QRY_H
#define LC_QRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct qry;
struct store;

#define QRY_ERR_MAX 160 /* Size of the error buffers below. */

/* Compile a query text of the language above. now_ms anchors relative times (since:15m).
 * On success returns 0 and *out (free with qry_free). On a malformed query returns -EINVAL and
 * writes one human sentence to err (no newline), e.g. "unbalanced parenthesis at 7". An empty
 * text is valid and matches everything. */
int qry_compile(const char *text, size_t len, int64_t now_ms, struct qry **out, char *err);

/* Builders for the older protocol forms, each returning a compiled query or NULL with err
 * set. They accept the same values the text language does. */
struct qry *qry_keyword(const char *kw, size_t len, char *err);        /* QUERY:<kw> */
struct qry *qry_level(const char *name, size_t len, char *err);        /* level, or >=WARN */
struct qry *qry_regex(const char *pat, size_t len, char *err);         /* PCRE2 pattern */
struct qry *qry_time_range(int64_t from_ms, int64_t to_ms, char *err); /* inclusive */

/* Combine: take ownership of a and b (either may be NULL: then the other is returned). */
struct qry *qry_and(struct qry *a, struct qry *b);
struct qry *qry_or(struct qry *a, struct qry *b);
void qry_set_limit(struct qry *q, uint64_t limit);

bool qry_match(const struct qry *q, const struct lc_entry *e);

/* False only when no entry of the block can match (time range disjoint, required level
 * absent, a required keyword absent from the block's text). Always true when unsure. */
bool qry_block_may_match(const struct qry *q, const struct lc_block_info *b);

/* The number of matching entries in the block when its summary alone tells (every entry
 * matches, none does, or the query is a level filter and the block has level counts), else
 * -1: the entries must be read. b->last_id - b->first_id + 1 must be its entry count. */
int64_t qry_block_count(const struct qry *q, const struct lc_block_info *b);

/* The stripes (store/tokfilter.h) of a block that may hold a match: bit s for stripe s, which
 * holds the block's entries tokf_stripe_first(s, count) .. tokf_stripe_first(s + 1, count) - 1.
 * QRY_ALL_STRIPES when the block has no stripe filters or they rule nothing out. */
#define QRY_ALL_STRIPES 0xFFFFu
uint32_t qry_block_stripes(const struct qry *q, const struct lc_block_info *b);

uint64_t qry_limit(const struct qry *q); /* 0 = no limit. */

/* True when the query has no filter at all (empty, or only limit:): every entry matches, so
 * a count needs no entries. */
bool qry_matches_all(const struct qry *q);

/* Inclusive event-time bounds implied by the query (INT64_MIN / INT64_MAX when open). */
void qry_time_bounds(const struct qry *q, int64_t *from_ms, int64_t *to_ms);

void qry_free(struct qry *q); /* NULL is a no-op. */

/* What another node needs to compile the same query (the cluster sends it): the text given to
 * qry_compile with its now_ms, narrowed to [win_from_ms, win_to_ms] by time ranges ANDed to it
 * (qry_time_range), and the limit (qry_limit). portable is false for the older forms' builders
 * and combinations the text cannot say. */
struct qry_source {
    bool portable;
    const char *text; /* Owned by the query; NUL-terminated. */
    size_t text_len;
    int64_t now_ms;
    int64_t win_from_ms, win_to_ms; /* INT64_MIN / INT64_MAX: open. */
};
const struct qry_source *qry_source(const struct qry *q);

/* The asker can show a partial answer (HTTP: "partial": true): in a cluster, partitions no copy
 * answered for are then named beside what the others answered, instead of failing the query. */
void qry_set_partial_ok(struct qry *q, bool ok);
bool qry_partial_ok(const struct qry *q);

/* Visit matching entries of the store with ids in [from_id, to_id], oldest first when forward,
 * else newest first. Blocks the query rules out are skipped without reading. visit returns true
 * to go on, false to stop. At most `budget` entries are examined per call (skipped blocks cost
 * little); *resume is set to the id to pass as the new start (from_id when forward, to_id when
 * backward) if the scan must continue. Returns 1 when the range is finished or visit stopped,
 * 0 when the budget ran out. The entry passed to visit is valid only during the call; no store
 * lock is held during it. q may be NULL (match all). */
typedef bool (*qry_visit_fn)(void *arg, const struct lc_entry *e);
int qry_scan(struct store *s, const struct qry *q, uint64_t from_id, uint64_t to_id, bool forward,
             size_t budget, qry_visit_fn visit, void *arg, uint64_t *resume);

/* Add the number of matching entries in [from_id, to_id] to *count, with the same budget rules
 * as qry_scan. Blocks whose summary tells the answer (qry_block_count) are not read. */
int qry_count(struct store *s, const struct qry *q, uint64_t from_id, uint64_t to_id, size_t budget,
              uint64_t *count, uint64_t *resume);
/* Fold the matching entries of ids [from_id, to_id] into arg, oldest first, without a budget
 * (the query pool's shares are bounded already). Each block wholly inside the range is first
 * offered to take_block (may be NULL): when it returns true, its summary answered and its
 * entries are not read. Returns 1, or 0 when visit returned false or the query pool asked
 * the step to stop (qpool_should_stop). */
typedef bool (*qry_block_fn)(void *arg, const struct lc_block_info *b);
int qry_fold(struct store *s, const struct qry *q, uint64_t from_id, uint64_t to_id,
             qry_block_fn take_block, qry_visit_fn visit, void *arg);

/* The language's value parsers, for other front ends (HTTP parameters): a time as unix
 * seconds (with a fraction) or ISO-8601, and a duration like 90s, 15m, 2h, 7d. Return 0, or
 * -EINVAL with one sentence in err. */
int qry_parse_time(const char *s, size_t len, int64_t *ms, char *err);
int qry_parse_duration(const char *s, size_t len, int64_t *ms, char *err);

/* Case-insensitive (ASCII) substring search; needle_len 0 returns hay. Fast for long hays:
 * stores use it on whole blocks. Returns a pointer into hay or NULL. */
const char *ci_memmem(const char *hay, size_t hay_len, const char *needle, size_t needle_len);

#endif
