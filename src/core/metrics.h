/* metrics.h - process-wide latency histograms for /metrics and STATS (relaxed atomics, any
 * thread): how long queries take from request to last byte, and how long they wait for a slot
 * on the query pool. */
#ifndef LC_METRICS_H
#define LC_METRICS_H

#include <stdint.h>

#define QLAT_BUCKETS 12

/* Upper bounds of the latency buckets, in seconds (Prometheus "le"). */
extern const double qlat_bounds[QLAT_BUCKETS];

enum metrics_hist {
    MH_QUERY,      /* A query (any front end) from request to last byte. */
    MH_QUERY_WAIT, /* A query's wait for admission to the query pool. */
    MH_COUNT
};

void metrics_observe(enum metrics_hist h, int64_t ns);

/* A query took ns nanoseconds from request to last byte. */
static inline void metrics_query_observe(int64_t ns)
{
    metrics_observe(MH_QUERY, ns);
}

/* Cumulative counts per bucket (the last one is +Inf), the total count and the sum. */
void metrics_snapshot(enum metrics_hist h, uint64_t cumulative[QLAT_BUCKETS + 1], uint64_t *count,
                      double *sum_seconds);

/* The upper bound (seconds) of the bucket holding quantile phi, or 0 with no observation;
 * the last bound when it lies beyond it. */
double metrics_quantile(enum metrics_hist h, double phi);

#endif
