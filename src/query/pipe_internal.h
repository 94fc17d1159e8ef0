/* pipe_internal.h - what the pipes' files share: the compiled chain (pipe_parse.c builds it),
 * the run's parts (agg.c) and the tables they finish into (table.c).
 *
 * A chain has two shapes. Entry pipes only (sort, limit, fields): each part keeps copies of
 * the fields the chain names, pruned to the newest N or the first N in sort order when a limit
 * allows, and finishing sorts, cuts and picks columns. Or one aggregation first (stats, top,
 * field_names), then table pipes on its answer: each part keeps a group per distinct key, and
 * finishing turns the groups into rows before the rest of the pipes run on them. */
#ifndef LC_QUERY_PIPE_INTERNAL_H
#define LC_QUERY_PIPE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "query/pipe.h"
#include "query/qry_internal.h"

#define QP_MAX_PIPES 32 /* Pipes in one query. */
#define QP_MAX_BY    16 /* Fields in one by (...). */
#define QP_MAX_FUNCS 32 /* Functions in one stats. */
#define QP_MAX_COLS  64 /* Names in one fields or sort by (...). */

enum qp_kind { QP_STATS, QP_TOP, QP_FIELD_NAMES, QP_SORT, QP_LIMIT, QP_FIELDS };

enum qf_kind { QF_COUNT, QF_COUNT_UNIQ, QF_SUM, QF_MIN, QF_MAX, QF_AVG, QF_QUANTILE };

struct qby {
    char *name; /* Owned, NUL-terminated; also the column's name. */
    size_t len;
    int64_t step_ms; /* _time:STEP: bucket width; 0 = the field's value as it is. */
};

struct qfunc {
    enum qf_kind kind;
    char *field; /* Owned; NULL for count(). */
    size_t field_len;
    double phi; /* quantile. */
    char *col;  /* Owned: the column's name ("count()", or the as name). */
};

struct qsortkey {
    char *col; /* Owned. */
    bool desc;
};

struct qpipe {
    enum qp_kind kind;
    size_t pos;
    struct qby *by; /* stats, top; owned. */
    size_t nby;
    struct qfunc *funcs; /* stats; owned (top: one count() called "hits"). */
    size_t nfuncs;
    uint64_t n;            /* top, limit. */
    struct qsortkey *keys; /* sort; owned. */
    size_t nkeys;
    char **cols; /* fields; owned. */
    size_t ncols;
};

/* How a part of an entry chain may drop entries early. */
enum qprune {
    PRUNE_NONE,   /* Keep every entry. */
    PRUNE_NEWEST, /* The first pipe that orders or cuts is limit N: keep the N highest ids. */
    PRUNE_SORTED, /* sort ... | limit N: keep the first N in that order. */
};

struct qpipes {
    size_t bar;      /* Where the first '|' is in the query text. */
    struct qpipe *p; /* Owned. */
    size_t n;
    size_t agg;   /* Index of stats / top / field_names; n when none (an entry chain). */
    char **ecols; /* Entry chain: the fields each kept entry carries (the first four are
                   * _time, level, source, _msg); owned. */
    size_t necols;
    enum qprune prune;
    uint64_t keep;     /* PRUNE_NEWEST, PRUNE_SORTED: N. */
    size_t prune_pipe; /* PRUNE_SORTED: the sort pipe. */
};

/* Compile the pipes of text starting at pos (just after the first '|'). Returns 0 with *out,
 * or -EINVAL / -ENOMEM with one sentence in err naming the byte position. */
int qpipes_parse(const char *text, size_t len, size_t pos, struct qpipes **out, char *err);
void qpipes_free(struct qpipes *p); /* NULL is a no-op. */

/* ---- Rows and tables (table.c) ---- */

/* One row: an entry's chosen fields, or an aggregated group's cells. One allocation. */
struct qrow {
    uint64_t id;  /* Entry id (entry chains: the order of ties and of limit). */
    size_t bytes; /* Its allocation's size. */
    char **v;     /* ncols NUL-terminated values. */
    size_t *len;
};

/* A table being worked on by the pipes after the run. */
struct wtable {
    size_t ncols;
    const char **names; /* Borrowed from the chain (or static). */
    bool *num;          /* Per column: its values are numbers (JSON writes them bare). */
    struct qrow **rows; /* Owned (malloc'ed, not counted). */
    size_t nrows;
    bool sorted; /* Rows are in sort order rather than by id (limit takes the first N). */
};

/* The order of sort by: numbers (val_number) before other values, numbers by value, the rest
 * bytewise; then by id. Sorts rows[0..n) by the keys, columns given by index. */
struct qsortspec {
    size_t nkeys;
    size_t col[QP_MAX_COLS];
    bool desc[QP_MAX_COLS];
};
int qrows_sort(struct qrow **rows, size_t n, const struct qsortspec *spec);

/* A row of n values (copies), malloc'ed as one block of *bytes bytes. */
struct qrow *qrow_make(uint64_t id, size_t n, const char *const *v, const size_t *len,
                       size_t *bytes);

/* Column index of name in t, or -1. */
long wtable_col(const struct wtable *t, const char *name);

/* Run pipes [from, to) of p over t, then return the finished table (t's rows consumed), or
 * NULL with err set. ecols: t is an entry table, shown as _time, level, source, _msg unless a
 * fields pipe chose. */
struct qtable *wtable_finish(struct wtable *t, const struct qpipes *p, size_t from, bool ecols,
                             size_t mem_limit, char *err);

/* Numbers as cells show them: integers up to 2^53 without a fraction, the rest in the fewest
 * digits that read back the same. Returns the length written (out holds 32 bytes). */
size_t qfmt_num(double v, char *out);

/* ts_ms as RFC 3339 UTC: "2026-12-07T03:00:00Z", with ".mmm" when millis. out: 40 bytes. */
size_t qfmt_time(int64_t ts_ms, bool millis, char *out);

#endif
