/* sketch.h - the quantile sketch of stats quantile(): a log-bucket histogram per group.
 *
 * Bucket i holds the values in (g^(i-1), g^i] with g = 1.01/0.99 and shows them as
 * 2g^i/(g+1), so every answer is within 1% of the exact nearest-rank value; positive values
 * and magnitudes of negative ones have a range of buckets each, zeros a count. The size grows
 * with the log of the values' spread, and merging adds counts bucket by bucket. The sketch
 * charges its memory to the books it is given (agg_internal.h). */
#ifndef LC_QUERY_SKETCH_H
#define LC_QUERY_SKETCH_H

#include <stdbool.h>
#include <stdint.h>

#include "query/agg_internal.h"

/* Every finite double's bucket index lies within +-QSK_INDEX_MAX (the smallest subnormal is
 * near g^-37221, the largest double near g^35490). */
#define QSK_INDEX_MAX 40000

struct qsk_side {
    int32_t lo; /* Index of c[0]. */
    uint32_t len;
    uint64_t *c; /* Counts; owned, counted. */
};

struct qsketch {
    uint64_t zero;
    struct qsk_side pos, neg; /* neg holds magnitudes. */
};

/* An empty sketch, charged to m; NULL when the books said no. */
struct qsketch *qsk_new(struct qmem *m);

/* Count one finite value. False when the books said no (the sketch is unchanged then). */
bool qsk_add(struct qmem *m, struct qsketch *sk, double v);

/* Add s's counts to d. False when the books said no. */
bool qsk_merge(struct qmem *m, struct qsketch *d, const struct qsketch *s);

/* Give an empty side the buckets [lo, lo + len), zeroed, for a decoder to fill; the caller has
 * checked that they lie within +-QSK_INDEX_MAX. NULL when the books said no. */
uint64_t *qsk_side_init(struct qmem *m, struct qsk_side *s, int32_t lo, uint32_t len);

/* The nearest-rank phi quantile of the n values the sketch counted, all within [min, max]. */
double qsk_quantile(const struct qsketch *sk, double phi, uint64_t n, double min, double max);

void qsk_free(struct qmem *m, struct qsketch *sk); /* NULL is a no-op. */

#endif
