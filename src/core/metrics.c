/* metrics.c - latency histograms (see metrics.h). */
#include "core/metrics.h"

#include <stdatomic.h>

const double qlat_bounds[QLAT_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                          0.05,   0.1,   0.25,   0.5,   1,    5};

static _Atomic uint64_t qlat_counts[QLAT_BUCKETS + 1];
static _Atomic uint64_t qlat_sum_ns;

void metrics_query_observe(int64_t ns)
{
    if (ns < 0)
        ns = 0;
    double s = (double)ns / 1e9;
    int i = 0;
    while (i < QLAT_BUCKETS && s > qlat_bounds[i])
        i++;
    atomic_fetch_add_explicit(&qlat_counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&qlat_sum_ns, (uint64_t)ns, memory_order_relaxed);
}

void metrics_query_snapshot(uint64_t cumulative[QLAT_BUCKETS + 1], uint64_t *count,
                            double *sum_seconds)
{
    uint64_t run = 0;
    for (int i = 0; i <= QLAT_BUCKETS; i++) {
        run += atomic_load_explicit(&qlat_counts[i], memory_order_relaxed);
        cumulative[i] = run;
    }
    *count = run;
    *sum_seconds = (double)atomic_load_explicit(&qlat_sum_ns, memory_order_relaxed) / 1e9;
}
