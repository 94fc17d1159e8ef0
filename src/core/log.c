/* log.c - diagnostics to stderr and the clocks.
 *
 * A line has one of two forms. On a terminal, in a file or a pipe it carries its UTC time and
 * severity:
 *     2026-11-26T10:00:00.123Z warn: query: authentication is required ...
 * Under systemd, when stderr is the journal's stream, it starts with its sd-daemon(3) priority
 * instead of the time, since journald stamps every line itself and files it by priority:
 *     <4>warn: query: authentication is required ...
 * In that mode the other lines that reach stderr (the start-up paths print their errors with
 * fprintf) are prefixed <3>: each of them reports an error. */
#define _GNU_SOURCE
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int log_verbosity = LOGV_INFO;

static const char *const severity_names[] = {"error", "warn", "info", "debug"};
static const int journal_priorities[] = {3, 4, 6,
                                         7}; /* LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */

static bool journal; /* Set once by log_init(), before any other thread exists. */

/* Write all of p to fd, across short writes and signals. Returns 0 or -1. */
static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* systemd sets JOURNAL_STREAM to "<device>:<inode>" of the stream it connected to stdout or
 * stderr. Children inherit the variable, so it counts only when it names our stderr still
 * (systemd.exec(5)): a shell started from a service and its programs write to terminals. */
static bool stderr_is_journal(void)
{
    const char *v = getenv("JOURNAL_STREAM");
    if (!v || !*v)
        return false;
    char *end;
    errno = 0;
    unsigned long long dev = strtoull(v, &end, 10);
    if (errno || end == v || *end != ':')
        return false;
    const char *ino_text = end + 1;
    unsigned long long ino = strtoull(ino_text, &end, 10);
    if (errno || end == ino_text || *end)
        return false;
    struct stat st;
    if (fstat(STDERR_FILENO, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static bool stderr_at_line_start = true; /* Guarded by the stream's lock, as the writer is. */

/* The writer behind stderr in journal mode: <3> before every line that reaches it. stdio holds
 * the stream's lock while it calls this, and flushes at each newline (line buffering). */
static ssize_t journal_stderr_write(void *cookie, const char *buf, size_t size)
{
    (void)cookie;
    char out[4096];
    size_t n = 0;
    for (size_t i = 0; i < size; i++) {
        if (n + 4 > sizeof(out)) {
            if (write_all(STDERR_FILENO, out, n) < 0)
                return -1;
            n = 0;
        }
        if (stderr_at_line_start) {
            memcpy(out + n, "<3>", 3);
            n += 3;
        }
        out[n++] = buf[i];
        stderr_at_line_start = buf[i] == '\n';
    }
    if (n && write_all(STDERR_FILENO, out, n) < 0)
        return -1;
    return (ssize_t)size;
}

void log_init(void)
{
    journal = stderr_is_journal();
    if (!journal)
        return;
    cookie_io_functions_t io = {.write = journal_stderr_write};
    FILE *f = fopencookie(NULL, "w", io);
    if (!f)
        return;
    setvbuf(f, NULL, _IOLBF, 0);
    stderr = f; /* Held for the life of the process; exit() flushes it. */
}

void log_msg(int severity, const char *fmt, ...)
{
    if (severity > log_verbosity)
        return;
    if (severity < LOGV_ERROR || severity > LOGV_DEBUG)
        severity = LOGV_DEBUG;
    char line[1024];
    int n;
    if (journal) {
        n = snprintf(line, sizeof(line), "<%d>%s: ", journal_priorities[severity],
                     severity_names[severity]);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        n = snprintf(line, sizeof(line),
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: ", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                     severity_names[severity]);
    }
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    /* One write per line keeps lines from different threads whole. In journal mode the line
     * goes around the stderr stream, which would prefix it a second time. */
    if (journal)
        write_all(STDERR_FILENO, line, len);
    else
        fwrite(line, 1, len, stderr);
}

void lc_assert_fail(const char *expr, const char *file, int line)
{
    log_error("assertion failed: %s (%s:%d)", expr, file, line);
    abort();
}
