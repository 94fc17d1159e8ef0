/* bench_cisearch.c - how fast ci_memmem scans block text for a rare keyword.
 *
 * Builds 120 MB of synthetic log text (timestamps, levels, paths, ids, key=value pairs) and
 * times ci_memmem over it for several needles that do not occur, plus one placed at the very
 * end, reporting the best of five runs in MB/s. glibc's case-sensitive memmem is timed on the
 * same text for reference. Not a test: the figures depend on the machine.
 *
 * Build: gcc -std=gnu11 -O2 -Isrc bench/bench_cisearch.c src/query/cisearch.c -o /tmp/bcs */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "query/qry.h"

#define TEXT_BYTES (120u * 1000 * 1000)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static char *make_text(size_t len)
{
    static const char *levels[] = {"INFO", "DEBUG", "WARN", "ERROR", "info", "trace"};
    static const char *words[] = {
        "GET",
        "POST",
        "/api/v1/users",
        "/static/app.js",
        "request",
        "completed",
        "status=200",
        "latency",
        "user=alice",
        "user=bob",
        "session",
        "connection",
        "accepted",
        "closed",
        "cache",
        "hit",
        "miss",
        "worker",
        "queue",
        "depth=3",
        "retrying",
        "upstream",
        "backend",
        "db.query",
        "rows=12",
        "took",
        "ms",
        "the",
        "and",
        "of",
        "payment",
        "order",
        "id",
        "Processing",
        "Started",
        "Finished",
    };
    char *t = malloc(len + 256);
    if (!t)
        exit(1);
    size_t n = 0;
    while (n < len) {
        char line[512];
        int k = snprintf(line, sizeof(line), "2024-03-%02u %02u:%02u:%02u.%03u %s [%u] 10.0.%u.%u",
                         rnd(28) + 1, rnd(24), rnd(60), rnd(60), rnd(1000), levels[rnd(6)],
                         rnd(99999), rnd(256), rnd(256));
        unsigned nw = 4 + rnd(10);
        for (unsigned w = 0; w < nw && k < 400; w++)
            k += snprintf(line + k, sizeof(line) - (size_t)k, " %s", words[rnd(36)]);
        k += snprintf(line + k, sizeof(line) - (size_t)k, " %u\n", rnd(1000000));
        memcpy(t + n, line, (size_t)k);
        n += (size_t)k;
    }
    return t;
}

/* Called through a volatile pointer so the compiler cannot hoist the pure call out of the
 * timed region. */
static void *(*volatile memmem_fn)(const void *, size_t, const void *, size_t) = memmem;

static double best_of(const char *text, size_t len, const char *needle, int ci, const char **hit)
{
    double best = 1e9;
    for (int r = 0; r < 5; r++) {
        double t0 = now_s();
        *hit = ci ? ci_memmem(text, len, needle, strlen(needle))
                  : memmem_fn(text, len, needle, strlen(needle));
        double dt = now_s() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

int main(void)
{
    char *text = make_text(TEXT_BYTES);
    size_t len = TEXT_BYTES;
    memcpy(text + len - 9, "SegFault\n", 9); /* One hit at the very end. */
    static const char *needles[] = {"segfault",    "timeout", "deadlock",
                                    "OutOfMemory", "panic:",  "x"};
    printf("text: %.0f MB\n", len / 1e6);
    for (size_t i = 0; i < sizeof(needles) / sizeof(needles[0]); i++) {
        const char *hit;
        double dt = best_of(text, len, needles[i], 1, &hit);
        printf("ci_memmem %-12s %8.0f MB/s  %6.2f ms  %s\n", needles[i], len / 1e6 / dt, dt * 1e3,
               hit ? "found" : "absent");
    }
    const char *hit;
    double dt = best_of(text, len, "SegFault", 0, &hit);
    printf("memmem    %-12s %8.0f MB/s  %6.2f ms  (glibc, case-sensitive)\n", "SegFault",
           len / 1e6 / dt, dt * 1e3);
    free(text);
    return 0;
}
