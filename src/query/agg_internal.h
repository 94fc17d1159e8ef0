/* agg_internal.h - what a part of a run (agg.c) shares with its wire form (agg_wire.c) and its
 * quantile sketch (sketch.c): the memory books a part keeps, the part itself, the map of its
 * groups and the state of each function.
 *
 * Every byte a part holds is charged to its books before it is allocated and released when it
 * is freed, so the same limit stops a part however its state arrived: fed entries, merged from
 * another part or decoded from the wire. */
#ifndef LC_QUERY_AGG_INTERNAL_H
#define LC_QUERY_AGG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "query/pipe_internal.h"

/* ---- Memory books ---- */

struct qmem {
    size_t limit, used;    /* Bytes; limit 0 = none. */
    int rc;                /* 0, or -E2BIG / -ENOMEM: the part stopped, and stays stopped. */
    char err[QRY_ERR_MAX]; /* rc's sentence. */
};

/* Charge n bytes. False (rc -E2BIG and its sentence naming the limit) when they do not fit,
 * or when the books have already stopped. */
bool qmem_charge(struct qmem *m, size_t n);
void qmem_release(struct qmem *m, size_t n);
/* n zeroed bytes, charged; NULL with rc set when the limit or the allocator said no. */
void *qmem_alloc(struct qmem *m, size_t n);
/* The allocator said no: rc -ENOMEM, "out of memory". */
void qmem_nomem(struct qmem *m);

/* ---- Groups and function states ---- */

/* A group's key is its nby values, each a native uint32 length and then that many bytes. */
struct qslot {
    char *key; /* Owned (counted); NULL = empty slot. */
    size_t klen;
    uint64_t h;     /* XXH3_64bits of the key. */
    uint64_t cnt;   /* field_names: entries having the name. */
    uint64_t stamp; /* field_names: the last entry counted (one count per entry). */
    void *val;      /* Groups: struct fstate[nfuncs], owned. */
};

/* Open addressing, linear probing; cap is a power of two. */
struct qmap {
    struct qslot *s;
    size_t cap, n;
};

struct qsketch;

struct fstate {
    uint64_t n; /* count: entries; sum, min, max, avg, quantile: numbers seen. */
    double sum, min, max;
    struct qmap *uniq;  /* count_uniq: the distinct values (keys only); owned. */
    struct qsketch *sk; /* quantile; owned. */
};

/* The slot of key (hash h), created (key copied, val NULL) when absent; NULL when the books
 * said no. */
struct qslot *qmap_get(struct qmem *m, struct qmap *map, const char *key, size_t klen, uint64_t h,
                       bool *created);

/* ---- Parts ---- */

struct qbuf { /* Scratch bytes, counted. */
    char *p;
    size_t len, cap;
};

struct qagg {
    const struct qpipes *p;
    const struct qpipe *agg; /* NULL: an entry chain. */
    struct qmem mem;
    uint64_t seq;       /* Entries added (field_names stamps). */
    struct qrow **rows; /* Entry chain; owned. */
    size_t nrows, cap;
    struct qsortspec spec; /* PRUNE_SORTED. */
    struct qmap groups;    /* Aggregation: by-key -> fstate[], or name -> count. */
    struct qbuf key, vals; /* Scratch. */
    /* While a block is taken from its value summary: the by-field named ov_name reads ov_v
     * (empty: missing) instead of the stand-in entry's. */
    const char *ov_name, *ov_v;
    size_t ov_nlen, ov_len;
};

/* Room for `more` bytes after b->len; false when the books said no. */
bool qbuf_room(struct qmem *m, struct qbuf *b, size_t more);

/* Append row r (an entry chain's; its bytes already charged) and prune when the chain allows.
 * On false the part took nothing: the caller still owns r and its charge. */
bool qagg_push_row(struct qagg *a, struct qrow *r);

#endif
