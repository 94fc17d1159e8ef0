/* metrics.c - latency histograms (see metrics.h). */
#include "core/metrics.h"

#include <stdatomic.h>

const double qlat_bounds[QLAT_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                          0.05,   0.1,   0.25,   0.5,   1,    5};

static struct {
    _Atomic uint64_t counts[QLAT_BUCKETS + 1];
    _Atomic uint64_t sum_ns;
} hists[MH_COUNT];

void metrics_observe(enum metrics_hist h, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    double s = (double)ns / 1e9;
    int i = 0;
    while (i < QLAT_BUCKETS && s > qlat_bounds[i])
        i++;
    atomic_fetch_add_explicit(&hists[h].counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&hists[h].sum_ns, (uint64_t)ns, memory_order_relaxed);
}

void metrics_snapshot(enum metrics_hist h, uint64_t cumulative[QLAT_BUCKETS + 1], uint64_t *count,
                      double *sum_seconds)
{
    uint64_t run = 0;
    for (int i = 0; i <= QLAT_BUCKETS; i++) {
        run += atomic_load_explicit(&hists[h].counts[i], memory_order_relaxed);
        cumulative[i] = run;
    }
    *count = run;
    *sum_seconds = (double)atomic_load_explicit(&hists[h].sum_ns, memory_order_relaxed) / 1e9;
}

double metrics_quantile(enum metrics_hist h, double phi)
{
    uint64_t cum[QLAT_BUCKETS + 1], n;
    double sum;
    metrics_snapshot(h, cum, &n, &sum);
    if (n == 0)
        return 0;
    uint64_t want = (uint64_t)(phi * (double)n);
    if (want == 0)
        want = 1;
    for (int i = 0; i < QLAT_BUCKETS; i++)
        if (cum[i] >= want)
            return qlat_bounds[i];
    return qlat_bounds[QLAT_BUCKETS - 1];
}
