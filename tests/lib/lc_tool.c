/* lc_tool.c - drives liblogcaster for tests/integration/test_lib.py.
 *
 *     lc_tool URL [options]
 *
 *   --lines N          lines per thread (default 0)
 *   --threads T        logging threads (default 1)
 *   --prefix P         messages are "P <thread> <i>" plus padding (default "line")
 *   --level L          0..5, or -1 to cycle through the levels by i (default 2)
 *   --size S           pad messages with 'x' to S bytes
 *   --raw-ts MS        log with lc_log_raw() and the timestamp MS + i
 *   --flush-every K    thread 0 calls lc_flush() after every K of its lines and prints
 *                      "flushed <lines logged before the call> <rc>"
 *   --flush-timeout MS for those flushes (default 10000)
 *   --pause-ms MS      sleep after every --flush-every block (default 0)
 *   --wait-stdin       after logging, print the counters and "ready", then wait for a line
 *                      on stdin before the final flush
 *   --final-flush MS   lc_flush() timeout before lc_close (default 30000; -1: none)
 *   --message TEXT     log this exact text (with lc_log_raw) once per line instead
 *   --long-every K     only every K-th line (i % K == K - 1) is padded to --size
 *
 * It prints, one per line: "counters k=v ...", "final_flush RC", "last_error TEXT",
 * "close RC MS" (lc_close's return and how long it took). An lc_open failure prints
 * "open_failed ERRNO TEXT" and exits 3. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "logcaster.h"

static struct {
    lc_client *lc;
    long lines;
    int threads, level, size, long_every, flush_every, flush_timeout, pause_ms, final_flush,
        wait_stdin;
    int64_t raw_ts;
    const char *prefix, *message;
} o = {.threads = 1,
       .level = 2,
       .flush_timeout = 10000,
       .final_flush = 30000,
       .raw_ts = -1,
       .prefix = "line"};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void print_counters(void)
{
    struct lc_counters c;
    lc_counters(o.lc, &c);
    printf("counters logged=%llu acked=%llu dropped=%llu spilled=%llu resent=%llu rejected=%llu "
           "reconnects=%llu queued=%llu spill_queued=%llu truncated=%llu\n",
           (unsigned long long)c.logged, (unsigned long long)c.acked, (unsigned long long)c.dropped,
           (unsigned long long)c.spilled, (unsigned long long)c.resent,
           (unsigned long long)c.rejected, (unsigned long long)c.reconnects,
           (unsigned long long)c.queued, (unsigned long long)c.spill_queued,
           (unsigned long long)c.truncated);
}

static void *worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    char pad[70000];
    for (long i = 0; i < o.lines; i++) {
        int level = o.level < 0 ? (int)(i % 6) : o.level;
        int rc;
        if (o.message) {
            rc = lc_log_raw(o.lc, level, o.raw_ts < 0 ? 0 : o.raw_ts + i, o.message,
                            strlen(o.message));
        } else if (o.raw_ts >= 0 || o.size > 0) {
            int n = snprintf(pad, sizeof pad, "%s %d %ld ", o.prefix, t, i);
            int size = !o.long_every || i % o.long_every == o.long_every - 1 ? o.size : 0;
            while (n < size && n < (int)sizeof pad - 1)
                pad[n++] = 'x';
            pad[n] = '\0';
            rc = lc_log_raw(o.lc, level, o.raw_ts < 0 ? 0 : o.raw_ts + i, pad, (size_t)n);
        } else {
            rc = lc_log(o.lc, level, "%s %d %ld", o.prefix, t, i);
        }
        if (rc < 0 && rc != -EAGAIN)
            printf("log_failed %d\n", rc);
        if (t == 0 && o.flush_every && (i + 1) % o.flush_every == 0) {
            int f = lc_flush(o.lc, o.flush_timeout);
            printf("flushed %ld %d\n", i + 1, f);
            if (o.pause_ms)
                usleep((useconds_t)o.pause_ms * 1000);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: lc_tool URL [options]\n");
        return 64;
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--wait-stdin") == 0) {
            o.wait_stdin = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "lc_tool: %s needs a value\n", a);
            return 64;
        }
        i++;
        if (strcmp(a, "--lines") == 0)
            o.lines = atol(v);
        else if (strcmp(a, "--threads") == 0)
            o.threads = atoi(v);
        else if (strcmp(a, "--prefix") == 0)
            o.prefix = v;
        else if (strcmp(a, "--level") == 0)
            o.level = atoi(v);
        else if (strcmp(a, "--size") == 0)
            o.size = atoi(v);
        else if (strcmp(a, "--raw-ts") == 0)
            o.raw_ts = atoll(v);
        else if (strcmp(a, "--long-every") == 0)
            o.long_every = atoi(v);
        else if (strcmp(a, "--flush-every") == 0)
            o.flush_every = atoi(v);
        else if (strcmp(a, "--flush-timeout") == 0)
            o.flush_timeout = atoi(v);
        else if (strcmp(a, "--pause-ms") == 0)
            o.pause_ms = atoi(v);
        else if (strcmp(a, "--final-flush") == 0)
            o.final_flush = atoi(v);
        else if (strcmp(a, "--message") == 0)
            o.message = v;
        else {
            fprintf(stderr, "lc_tool: unknown option %s\n", a);
            return 64;
        }
    }
    if (o.threads < 1 || o.threads > 64)
        return 64;

    o.lc = lc_open(argv[1]);
    if (!o.lc) {
        int e = errno;
        printf("open_failed %d %s\n", e, strerror(e));
        return 3;
    }
    pthread_t th[64];
    for (int t = 0; t < o.threads; t++)
        pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t);
    for (int t = 0; t < o.threads; t++)
        pthread_join(th[t], NULL);
    if (o.wait_stdin) {
        print_counters();
        printf("ready\n");
        char line[64];
        if (!fgets(line, sizeof line, stdin)) {
            /* EOF: go on. */
        }
    }
    if (o.final_flush >= 0)
        printf("final_flush %d\n", lc_flush(o.lc, o.final_flush));
    print_counters();
    printf("last_error %s\n", lc_last_error(o.lc));
    double t0 = now_ms();
    int rc = lc_close(o.lc);
    printf("close %d %.0f\n", rc, now_ms() - t0);
    return 0;
}
