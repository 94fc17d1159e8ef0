/* follow.c - `logcaster send --follow FILE`: ship the lines appended to a file, like
 * `tail -F`, through the client library (liblogcaster), surviving log rotation.
 *
 * The file is read in large chunks and every complete line goes to lc_log_raw() with its
 * level (given, or detected from the text as the server does for plain lines). The library
 * queues, batches, acknowledges and resends; its queue is opened with on_full=block, so a
 * server that falls behind slows the reading down instead of dropping lines: the file itself
 * is the buffer.
 *
 * Rotation, checked whenever the file has no more bytes:
 *   - the path now names another file (rename-and-create, as logrotate does by default):
 *     the old file is still read until it has been quiet for ROTATE_GRACE_MS (the writer may
 *     add lines before it reopens), then the new one from its start;
 *   - the file got shorter than what was read (copytruncate): read again from its start;
 *   - the path is gone: keep reading the open file, and pick the path up when it returns.
 * A partial last line waits for its newline, or is sent when its file is left behind or
 * truncated. A line longer than a message can be is sent cut; the rest of it is skipped.
 *
 * SIGINT or SIGTERM stops reading (a thread waits for them, so that it can also wake a
 * lc_log() blocked on a full queue while the server is away); what was read is flushed (up to
 * --timeout) and an exact summary is printed. */
#include "client/follow.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "client/cli.h"
#include "logcaster.h"
#include "proto/line.h"

#define CHUNK         (256 * 1024) /* Bytes per read(). */
#define POLL_MS       100          /* Wait between looks at a file with nothing new. */
#define PROGRESS_MS   1000
#define LINE_MAX_SEND LC_MAX_MESSAGE

#define ROTATE_GRACE_MS 1000    /* A renamed file is read until it has been quiet this long. */
#define CONNECT_MAX_MS  3600000 /* The library's limit for connect_timeout_ms. */

static atomic_bool stop_flag;
static atomic_bool signals_done; /* Set before signal_thread is woken to end. */

/* Waits for SIGINT or SIGTERM (blocked in every other thread). The first stops the follower,
 * which then waits for the server's acknowledgements; a second ends the process at once. */
static void *signal_thread(void *arg)
{
    lc_client *lc = arg;
    sigset_t set;
    int sig;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    while (sigwait(&set, &sig) == 0 && !atomic_load(&signals_done)) {
        if (!atomic_exchange(&stop_flag, true)) {
            lc_interrupt(lc);
            continue;
        }
        static const char msg[] = "logcaster: interrupted again: not waiting for "
                                  "acknowledgements\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void)w;
        _exit(128 + sig); /* As the shell reports a death by that signal. */
    }
    return NULL;
}

struct follower {
    const struct lcc_follow_opts *fo;
    lc_client *lc;
    int fd;    /* The open file, or -1 while the path does not exist. */
    dev_t dev; /* Identity of the open file. */
    ino_t ino;
    off_t pos; /* Bytes read from it. */
    char *buf; /* Read buffer: [0, len) holds a partial line. */
    size_t len, cap;
    uint64_t lines;  /* Lines handed to the library. */
    uint64_t failed; /* Lines the library would not take. */
    bool waiting_said;
    bool skipping;     /* The rest of a line longer than a message. */
    int64_t last_data; /* mono_ms of the last read that returned bytes. */
};

static void send_line(struct follower *f, const char *p, size_t n)
{
    if (n && p[n - 1] == '\r')
        n--;
    if (n == 0)
        return; /* Blank lines carry nothing, as on the ingest port. */
    int level = f->fo->level;
    if (level < 0) {
        level = line_detect_level(p, n);
        if (level < 0)
            level = LC_LOG_INFO;
    }
    int rc = lc_log_raw(f->lc, level, 0, p, n);
    if (rc == 0)
        f->lines++;
    else if (rc != -EINTR) /* -EINTR: stopping; the line was never sent. */
        f->failed++;
}

/* Send every complete line in the buffer; keep the partial tail. */
static void send_lines(struct follower *f)
{
    size_t start = 0;
    for (;;) {
        char *nl = memchr(f->buf + start, '\n', f->len - start);
        if (!nl)
            break;
        if (!f->skipping)
            send_line(f, f->buf + start, (size_t)(nl - (f->buf + start)));
        f->skipping = false;
        start = (size_t)(nl - f->buf) + 1;
    }
    if (f->len - start >= LINE_MAX_SEND || (f->skipping && start < f->len)) {
        /* A line longer than a message can be: its first LINE_MAX_SEND bytes go as one entry
         * (the library counts the cut), the rest up to its newline is skipped. */
        if (!f->skipping)
            send_line(f, f->buf + start, LINE_MAX_SEND);
        f->skipping = true;
        start = f->len;
    }
    memmove(f->buf, f->buf + start, f->len - start);
    f->len -= start;
}

/* Read what the open file has now. Returns bytes read (0 at its end), or -1. */
static ssize_t read_some(struct follower *f)
{
    if (f->cap - f->len < CHUNK) {
        size_t cap = f->len + CHUNK;
        char *b = realloc(f->buf, cap);
        if (!b)
            return -1;
        f->buf = b;
        f->cap = cap;
    }
    ssize_t k = read(f->fd, f->buf + f->len, CHUNK);
    if (k > 0) {
        f->len += (size_t)k;
        f->pos += k;
        f->last_data = mono_ms();
        send_lines(f);
    }
    return k;
}

/* The buffered partial line will get no newline now: send it as it is. */
static void send_partial(struct follower *f)
{
    if (f->len && !f->skipping)
        send_line(f, f->buf, f->len);
    f->len = 0;
    f->skipping = false;
}

static void close_file(struct follower *f)
{
    send_partial(f);
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

/* Open the path; at_end: start after what it holds now. */
static bool open_file(struct follower *f, bool at_end)
{
    int fd = open(f->fo->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (!f->waiting_said) {
            lcc_warn("waiting for %s: %s", f->fo->path, strerror(errno));
            f->waiting_said = true;
        }
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return false;
    }
    f->fd = fd;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->pos = at_end ? lseek(fd, 0, SEEK_END) : 0;
    if (f->pos < 0)
        f->pos = 0;
    f->waiting_said = false;
    f->last_data = mono_ms();
    return true;
}

/* At the end of the open file: has it been rotated or truncated? */
static void check_rotation(struct follower *f)
{
    struct stat st;
    if (stat(f->fo->path, &st) < 0)
        return; /* Gone for now: keep the open file, look again later. */
    if (st.st_dev != f->dev || st.st_ino != f->ino) {
        /* Renamed away: its writer may still add lines until it reopens the path. */
        if (mono_ms() - f->last_data < ROTATE_GRACE_MS)
            return;
        close_file(f);
        if (open_file(f, false))
            lcc_warn("%s was rotated: following the new file", f->fo->path);
    } else if (st.st_size < f->pos) {
        lcc_warn("%s was truncated: reading it from the start", f->fo->path);
        send_partial(f);
        f->pos = lseek(f->fd, 0, SEEK_SET);
    }
}

static void progress(const struct follower *f, int64_t t0, bool final)
{
    struct lc_counters k;
    lc_counters(f->lc, &k);
    double secs = (double)(mono_ms() - t0) / 1000.0;
    printf("\rlines %" PRIu64 "  %.0f lines/s  acknowledged %" PRIu64 "   %s", f->lines,
           secs > 0 ? (double)f->lines / secs : 0.0, k.acked, final ? "\n" : "");
    fflush(stdout);
}

/* Percent-encode s into out (cap bytes) for a URL query value. */
static void url_value(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s && o + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

int lcc_follow(const struct lcc_opts *o, const struct lcc_follow_opts *fo)
{
    size_t tlen = o->token ? strlen(o->token) : 0;
    size_t cap = strlen(o->host) + 3 * tlen + 160;
    char *url = malloc(cap), *enc = malloc(3 * tlen + 1);
    if (!url || !enc) {
        free(url);
        free(enc);
        lcc_warn("out of memory");
        return LCC_EXIT_FAIL;
    }
    url_value(o->token ? o->token : "", enc, 3 * tlen + 1);
    bool v6 = strchr(o->host, ':') != NULL;
    int connect_ms = o->timeout_ms < CONNECT_MAX_MS ? o->timeout_ms : CONNECT_MAX_MS;
    snprintf(url, cap,
             "logcaster://%s%s%s:%d?on_full=block&flush_timeout_ms=0&connect_timeout_ms=%d%s%s",
             v6 ? "[" : "", o->host, v6 ? "]" : "", o->log_port, connect_ms, tlen ? "&token=" : "",
             enc);
    /* SIGINT and SIGTERM go to signal_thread only (the library's threads block them too). */
    sigset_t stops, old;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stops, &old);
    signal(SIGPIPE, SIG_IGN);
    lc_client *lc = lc_open(url);
    free(url);
    free(enc);
    pthread_t sig_thread;
    if (!lc || pthread_create(&sig_thread, NULL, signal_thread, lc) != 0) {
        lcc_warn("cannot start the client library: %s", strerror(errno));
        lc_close(lc);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return LCC_EXIT_FAIL;
    }
    struct follower f = {.fo = fo, .lc = lc, .fd = -1};

    bool tty = isatty(STDOUT_FILENO);
    int64_t t0 = mono_ms(), last_progress = t0;
    open_file(&f, !fo->from_start);
    int rc = 0;
    while (!atomic_load(&stop_flag)) {
        ssize_t k = f.fd >= 0 ? read_some(&f) : 0;
        if (k < 0) {
            lcc_warn("reading %s: %s", fo->path, strerror(errno));
            rc = -1;
            break;
        }
        if (k == 0) {
            if (f.fd >= 0)
                check_rotation(&f);
            else
                open_file(&f, false); /* It appeared after we started: all of it is new. */
            poll(NULL, 0, POLL_MS);
        }
        int64_t now = mono_ms();
        if (tty && now - last_progress >= PROGRESS_MS) {
            progress(&f, t0, false);
            last_progress = now;
        }
    }
    if (f.fd >= 0)
        close_file(&f);             /* A partial last line too: following ends here. */
    atomic_store(&stop_flag, true); /* From here a signal means "stop waiting". */
    int flushed = lc_flush(lc, o->timeout_ms);
    atomic_store(&signals_done, true);
    pthread_kill(sig_thread, SIGTERM); /* Ends its sigwait. */
    pthread_join(sig_thread, NULL);
    /* A signal that came after that stays pending: take it, so that restoring the mask does
     * not kill the process before its summary. */
    struct timespec none = {0, 0};
    while (sigtimedwait(&stops, NULL, &none) > 0)
        ;
    struct lc_counters k;
    lc_counters(lc, &k);
    if (tty)
        progress(&f, t0, true);
    const char *why = lc_last_error(lc);
    fprintf(stderr, "sent %" PRIu64 " lines, acknowledged %" PRIu64 ", refused %" PRIu64, f.lines,
            k.acked, k.rejected);
    if (flushed < 0)
        fprintf(stderr, ", undelivered %" PRIu64 "%s%s", k.queued, *why ? ": " : "", why);
    fputc('\n', stderr);
    /* Never reached (exit 2) is not the same as reached and refused (exit 1). */
    bool unreachable =
        flushed < 0 && k.acked == 0 && k.reconnects == 0 && *why && !strstr(why, "authentication");
    lc_close(lc);
    free(f.buf);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (unreachable)
        return LCC_EXIT_UNREACHABLE;
    return rc < 0 || flushed < 0 || k.rejected || f.failed ? LCC_EXIT_FAIL : LCC_EXIT_OK;
}
