/* lc_bench.c - how fast one thread can log through liblogcaster, end to end.
 *
 *     lc_bench URL LINES [SIZE]
 *
 * One thread logs LINES lines (about SIZE bytes each, default 100) as fast as lc_log() takes
 * them, then waits in lc_flush() until the server has acknowledged every one as durable. It
 * prints lines/s, the lines stored per second over the whole run (logging plus flush),
 * log_calls/s, the rate lc_log() returned at, and the counters:
 *
 *     lines=1000000 seconds=0.80 lines/s=1250000 log_calls/s=2900000 logged=... acked=...
 *
 * With the default on_full=drop a queue smaller than LINES may drop lines (counted); use
 * on_full=block to measure the sustained rate: `lc_bench 'logcaster://127.0.0.1:9999?on_full=block'
 * 1000000`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "logcaster.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: lc_bench URL LINES [SIZE]\n");
        return 64;
    }
    long lines = atol(argv[2]);
    int size = argc > 3 ? atoi(argv[3]) : 100;
    if (lines <= 0 || size < 20 || size > 60000) {
        fprintf(stderr, "lc_bench: LINES must be > 0 and SIZE 20..60000\n");
        return 64;
    }
    lc_client *lc = lc_open(argv[1]);
    if (!lc) {
        fprintf(stderr, "lc_bench: %s: %s\n", argv[1], strerror(errno));
        return 64;
    }
    char *pad = malloc((size_t)size + 1);
    memset(pad, 'x', (size_t)size);
    pad[size - 20] = '\0'; /* Room for the prefix and the number. */

    double t0 = now();
    for (long i = 0; i < lines; i++)
        lc_log(lc, LC_LOG_INFO, "bench %ld %s", i, pad);
    double t1 = now();
    int rc = lc_flush(lc, 120000);
    double t2 = now();

    struct lc_counters c;
    lc_counters(lc, &c);
    printf("lines=%ld seconds=%.3f lines/s=%.0f log_calls/s=%.0f flush=%s logged=%llu acked=%llu "
           "dropped=%llu spilled=%llu resent=%llu rejected=%llu reconnects=%llu queued=%llu\n",
           lines, t2 - t0, (double)c.acked / (t2 - t0), lines / (t1 - t0),
           rc == 0 ? "ok" : "timeout", (unsigned long long)c.logged, (unsigned long long)c.acked,
           (unsigned long long)c.dropped, (unsigned long long)c.spilled,
           (unsigned long long)c.resent, (unsigned long long)c.rejected,
           (unsigned long long)c.reconnects, (unsigned long long)c.queued);
    if (rc < 0)
        fprintf(stderr, "lc_bench: flush: %s (%s)\n", strerror(-rc), lc_last_error(lc));
    lc_close(lc);
    free(pad);
    return rc == 0 ? 0 : 1;
}
