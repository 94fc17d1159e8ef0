/* metrics.h - process-wide latency histograms for /metrics (relaxed atomics, any thread). */
#ifndef LC_METRICS_H
#define LC_METRICS_H

#include <stdint.h>

#define QLAT_BUCKETS 12

/* Upper bounds of the query latency buckets, in seconds (Prometheus "le"). */
extern const double qlat_bounds[QLAT_BUCKETS];

/* A query (query port, HTTP, IRC !query) took ns nanoseconds from request to last byte. */
void metrics_query_observe(int64_t ns);

/* Cumulative counts per bucket (the last one is +Inf), the total count and the sum. */
void metrics_query_snapshot(uint64_t cumulative[QLAT_BUCKETS + 1], uint64_t *count,
                            double *sum_seconds);

#endif
