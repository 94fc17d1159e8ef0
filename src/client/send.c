/* send.c - `logcaster send`: read lines from files or stdin and deliver them to the ingest
 * port over one persistent connection.
 *
 * Framed mode (the default) is at-least-once. Every line goes out as LOG|<level>|-|<line>
 * and stays in a window of unacknowledged lines until its OK|<id> or ERROR|<reason> arrives;
 * replies come in request order, so the oldest slot of the window is always the one being
 * answered. The framed bytes of the window sit contiguously in one buffer, [ack_off, end),
 * so sending is one large send() and resending after a reconnect is just rewinding sent_off
 * to ack_off. A single poll() loop watches the socket (replies, room to write) and the input
 * (more lines) at once, so a slow producer on stdin never stalls the acknowledgements.
 *
 * When the connection breaks, or no reply comes for --timeout while lines are in flight, the
 * sender reconnects with exponential backoff (100 ms doubling to 5 s) for at most --retry-for
 * seconds counted from the loss, and resends the whole window. The server may therefore
 * store a line twice, never zero times without the exit code saying so.
 *
 * Plain mode writes the raw bytes in large chunks and never waits for anything but the
 * final close, which proves the server read everything. With a terminal on stdin and no
 * FILE, send is a small interactive prompt instead. */
#include "client/send.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/entry.h"
#include "client/cli.h"
#include "client/follow.h"
#include "client/net.h"

#define WINDOW_DEFAULT   4096   /* Lines in flight; enough to hide a loopback round trip. */
#define WINDOW_MAX       262144 /* Upper bound for --window. */
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS   5000
#define PLAIN_CHUNK      (256 * 1024) /* Bytes per read()/send() in plain mode. */

struct slot {
    uint32_t len;    /* Framed bytes of this line in the pending buffer. */
    uint32_t file;   /* Index into sender.files, for error messages. */
    uint64_t lineno; /* 1-based line number in that file. */
};

struct sender {
    const struct lcc_opts *o; /* Borrowed. */
    const char *level;        /* "-" or the --level value. */
    int64_t retry_ms;         /* --retry-for, in ms. */
    size_t window;            /* Capacity of win. */

    char **files; /* Inputs; "-" is stdin. Borrowed from argv. */
    int nfiles;
    int cur;         /* Index of the open input, or the next to open when in_fd < 0. */
    int in_fd;       /* -1 when no input is open. */
    bool in_eof;     /* The open input has hit end of file. */
    bool input_done; /* Every input has been read to the end. */
    uint64_t lineno; /* Lines taken from the open input. */
    struct lcc_reader in;

    char *pend; /* Framed bytes: [ack_off, end) unacknowledged, [sent_off, end) unsent. */
    size_t pend_cap, ack_off, sent_off, end;
    struct slot *win; /* Ring of unacknowledged lines, oldest at head. */
    size_t head, count;

    int fd; /* Ingest connection or -1. */
    struct lcc_reader rep;
    int64_t wait_since;   /* Last sign of life while lines are in flight. */
    int64_t outage_start; /* When the current outage began; 0 when healthy. */
    int64_t backoff_ms;   /* Next delay between connect attempts. */
    int attempts;         /* Connect attempts since the last reply. */
    bool outage_warned;   /* This outage was already reported. */
    bool ever_connected;
    bool interactive; /* Replies are printed as they come, not reported as errors. */

    uint64_t sent, acked, refused, input_errors;
};

static const char *file_name(const struct sender *s, uint32_t i)
{
    return strcmp(s->files[i], "-") == 0 ? "<stdin>" : s->files[i];
}

/* --- input ------------------------------------------------------------------------------ */

/* Open the next input file; false when there is none left. Unreadable files are reported,
 * counted and skipped. */
static bool open_next_input(struct sender *s)
{
    while (s->cur < s->nfiles) {
        const char *f = s->files[s->cur];
        int fd = strcmp(f, "-") == 0 ? 0 : open(f, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            s->in_fd = fd;
            s->in_eof = false;
            s->lineno = 0;
            lcc_reader_reset(&s->in);
            return true;
        }
        lcc_warn("cannot open %s: %s", f, strerror(errno));
        s->input_errors++;
        s->cur++;
    }
    s->input_done = true;
    return false;
}

static void close_input(struct sender *s)
{
    if (s->in_fd > 0)
        close(s->in_fd);
    s->in_fd = -1;
    s->cur++;
}

/* Next input line, borrowed until the next input call. Returns 1 with a line, 0 when more
 * input must be read first, -1 when every input is exhausted. */
static int input_line(struct sender *s, char **line, size_t *len)
{
    for (;;) {
        if (s->input_done)
            return -1;
        if (s->in_fd < 0 && !open_next_input(s))
            return -1;
        if (lcc_reader_next(&s->in, line, len) ||
            (s->in_eof && lcc_reader_rest(&s->in, line, len))) {
            s->lineno++;
            return 1;
        }
        if (!s->in_eof)
            return 0;
        close_input(s);
    }
}

/* One read() from the open input; called when poll() says it is readable. */
static void input_read(struct sender *s)
{
    ssize_t n = lcc_reader_fill(&s->in, s->in_fd);

    if (n == 0) {
        s->in_eof = true;
    } else if (n < 0 && n != -EAGAIN) {
        lcc_warn("reading %s: %s", file_name(s, (uint32_t)s->cur), strerror((int)-n));
        s->input_errors++;
        s->in_eof = true;
    }
}

/* --- the window --------------------------------------------------------------------------- */

/* Append one framed line to the pending buffer and the window. Returns 0 or -ENOMEM. */
static int window_push(struct sender *s, const char *line, size_t len)
{
    size_t need = lcc_frame_size(s->level, len);
    struct slot *sl;

    if (s->end + need > s->pend_cap && s->ack_off > 0) {
        /* Slide the unacknowledged bytes to the front before growing. */
        memmove(s->pend, s->pend + s->ack_off, s->end - s->ack_off);
        s->end -= s->ack_off;
        s->sent_off -= s->ack_off;
        s->ack_off = 0;
    }
    if (s->end + need > s->pend_cap) {
        size_t ncap = s->pend_cap ? s->pend_cap : 1 << 20;
        while (ncap < s->end + need)
            ncap *= 2;
        char *nb = realloc(s->pend, ncap);
        if (!nb)
            return -ENOMEM;
        s->pend = nb;
        s->pend_cap = ncap;
    }
    s->end += lcc_frame_line(s->pend + s->end, s->level, line, len);
    sl = &s->win[(s->head + s->count) % s->window];
    sl->len = (uint32_t)need;
    sl->file = (uint32_t)s->cur;
    sl->lineno = s->lineno;
    s->count++;
    s->sent++;
    return 0;
}

/* Move input lines into the window while it has room. Blank lines are skipped: they carry
 * nothing and the server would only refuse them. Returns 0 or -ENOMEM. */
static int fill_window(struct sender *s)
{
    char *line;
    size_t len;

    while (s->count < s->window) {
        if (input_line(s, &line, &len) <= 0)
            return 0;
        if (len == 0)
            continue;
        if (len > UINT32_MAX / 2) {
            lcc_warn("%s:%llu: line too long, skipped", file_name(s, (uint32_t)s->cur),
                     (unsigned long long)s->lineno);
            s->input_errors++;
            continue;
        }
        if (window_push(s, line, len) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* Match one reply to the oldest line in flight. */
static void handle_reply(struct sender *s, const char *line, size_t len)
{
    struct slot *sl;

    if (s->count == 0) {
        lcc_warn("unexpected reply with no line in flight: %.200s", line);
        return;
    }
    sl = &s->win[s->head];
    s->head = (s->head + 1) % s->window;
    s->count--;
    s->ack_off += sl->len;
    if (s->sent_off < s->ack_off)
        s->sent_off = s->ack_off;
    if (s->ack_off == s->end)
        s->ack_off = s->sent_off = s->end = 0;
    if (lcc_reply_kind(line, len, NULL) == 1) {
        s->acked++;
    } else {
        s->refused++;
        if (!s->interactive) /* the prompt already shows the reply */
            lcc_warn("%s:%llu: refused: %.300s", file_name(s, sl->file),
                     (unsigned long long)sl->lineno, line);
    }
    /* Any reply proves the connection works: the outage, if any, is over. */
    s->wait_since = lcc_now_ms();
    s->outage_start = 0;
    s->outage_warned = false;
    s->backoff_ms = BACKOFF_FIRST_MS;
    s->attempts = 0;
}

/* --- the connection ----------------------------------------------------------------------- */

static void drop_conn(struct sender *s, const char *why)
{
    close(s->fd);
    s->fd = -1;
    lcc_reader_reset(&s->rep);
    if (!s->outage_start)
        s->outage_start = lcc_now_ms();
    if (s->count > 0)
        lcc_warn("connection to %s:%d lost (%s); %zu line%s unacknowledged, reconnecting",
                 s->o->host, s->o->log_port, why, s->count, s->count == 1 ? "" : "s");
    else
        lcc_warn("connection to %s:%d lost (%s); will reconnect for the next line", s->o->host,
                 s->o->log_port, why);
    s->outage_warned = true;
}

/* Connect, retrying with backoff until --retry-for has passed since the outage began.
 * The first attempt of an outage is immediate; every later one, including one after a
 * connection that was accepted but then failed before any reply, waits the backoff first, so
 * a server that accepts and hangs up at once is not hammered. Returns 0 with s->fd set and
 * the window rewound for resending, or -1 after giving up. */
static int reconnect(struct sender *s)
{
    char err[256] = "";

    if (!s->outage_start)
        s->outage_start = lcc_now_ms();
    for (;;) {
        if (s->attempts > 0) {
            int64_t waited = lcc_now_ms() - s->outage_start;
            if (waited + s->backoff_ms > s->retry_ms) {
                if (err[0])
                    lcc_warn("%s%s", err, s->retry_ms > 0 ? "; giving up" : "");
                else
                    lcc_warn("connection to %s:%d keeps failing; giving up", s->o->host,
                             s->o->log_port);
                return -1;
            }
            lcc_sleep_ms(s->backoff_ms);
            s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
        }
        s->attempts++;
        int fd = lcc_connect(s->o->host, s->o->log_port, s->o->timeout_ms, err, sizeof(err));
        if (fd >= 0 && s->o->token) {
            char auth[256];
            int n = snprintf(auth, sizeof(auth), "AUTH %s\n", s->o->token);
            if (lcc_write_all(fd, auth, (size_t)n, s->o->timeout_ms, false) < 0) {
                close(fd);
                fd = -1;
                snprintf(err, sizeof(err), "cannot send AUTH to %s:%d", s->o->host, s->o->log_port);
            }
        }
        if (fd >= 0) {
            if (s->ever_connected && s->outage_warned)
                lcc_warn("reconnected to %s:%d; resending %zu line%s", s->o->host, s->o->log_port,
                         s->count, s->count == 1 ? "" : "s");
            s->fd = fd;
            s->ever_connected = true;
            s->sent_off = s->ack_off;
            s->wait_since = lcc_now_ms();
            return 0;
        }
        if (!s->outage_warned && s->retry_ms > 0)
            lcc_warn("%s; retrying for up to %.0f s", err, s->retry_ms / 1000.0);
        s->outage_warned = s->retry_ms > 0;
    }
}

/* Send what the socket takes of the unsent bytes. */
static void write_some(struct sender *s)
{
    while (s->sent_off < s->end) {
        ssize_t n = send(s->fd, s->pend + s->sent_off, s->end - s->sent_off, MSG_NOSIGNAL);
        if (n > 0) {
            s->sent_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        drop_conn(s, strerror(errno));
        return;
    }
}

/* Read what has arrived and match every complete reply. */
static void read_replies(struct sender *s)
{
    char *line;
    size_t len;
    ssize_t n = lcc_reader_fill(&s->rep, s->fd);

    if (n == -EAGAIN)
        return;
    if (n <= 0) {
        drop_conn(s, n == 0 ? "closed by the server" : strerror((int)-n));
        return;
    }
    while (lcc_reader_next(&s->rep, &line, &len))
        handle_reply(s, line, len);
}

/* The framed loop: returns once every line is answered or delivery was given up. */
static int run_framed(struct sender *s)
{
    /* Connect before reading anything, so an unreachable server reports "sent 0 lines". */
    if (reconnect(s) < 0)
        return -1;
    for (;;) {
        struct pollfd pf[2] = {{.fd = -1}, {.fd = -1}};
        int64_t now = lcc_now_ms(), timeout = -1;
        int rc;

        if (fill_window(s) < 0) {
            lcc_warn("out of memory");
            return -1;
        }
        if (s->input_done && s->count == 0)
            return 0;
        if (s->count == 0)
            s->wait_since = now;
        if (s->fd < 0 && s->count > 0 && reconnect(s) < 0)
            return -1;
        if (s->fd >= 0) {
            pf[0].fd = s->fd;
            pf[0].events = POLLIN | (s->sent_off < s->end ? POLLOUT : 0);
        }
        if (!s->input_done && s->count < s->window) {
            pf[1].fd = s->in_fd;
            pf[1].events = POLLIN;
        }
        if (s->count > 0) {
            timeout = s->wait_since + s->o->timeout_ms - now;
            if (timeout < 0)
                timeout = 0;
        }
        rc = poll(pf, 2, (int)timeout);
        if (rc < 0 && errno != EINTR) {
            lcc_warn("poll: %s", strerror(errno));
            return -1;
        }
        if (rc <= 0) {
            if (s->count > 0 && s->fd >= 0 && lcc_now_ms() - s->wait_since >= s->o->timeout_ms) {
                char why[64];
                snprintf(why, sizeof(why), "no reply within %.1f s", s->o->timeout_ms / 1000.0);
                drop_conn(s, why);
            }
            continue;
        }
        if (pf[1].revents)
            input_read(s);
        if (s->fd >= 0 && (pf[0].revents & POLLOUT))
            write_some(s);
        if (s->fd >= 0 && (pf[0].revents & (POLLIN | POLLERR | POLLHUP)))
            read_replies(s);
    }
}

/* --- plain mode -------------------------------------------------------------------------- */

static int run_plain(struct sender *s)
{
    char *buf = malloc(PLAIN_CHUNK);
    bool unfinished = false; /* The last byte sent was not a newline. */
    int rc = 0;

    if (!buf) {
        lcc_warn("out of memory");
        return -1;
    }
    if (reconnect(s) < 0) {
        free(buf);
        return -1;
    }
    while (rc == 0 && (s->in_fd >= 0 || open_next_input(s))) {
        ssize_t n = read(s->in_fd, buf, PLAIN_CHUNK - 1);
        size_t len;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            lcc_warn("reading %s: %s", file_name(s, (uint32_t)s->cur), strerror(errno));
            s->input_errors++;
            n = 0;
        }
        if (n == 0) {
            /* A file without a final newline must not glue its last line to the next. */
            if (unfinished) {
                rc = lcc_write_all(s->fd, "\n", 1, s->o->timeout_ms, true);
                s->sent++;
            }
            unfinished = false;
            close_input(s);
            continue;
        }
        len = (size_t)n;
        for (const char *p = buf; (p = memchr(p, '\n', (size_t)(buf + len - p))); p++)
            s->sent++;
        unfinished = buf[len - 1] != '\n';
        rc = lcc_write_all(s->fd, buf, len, s->o->timeout_ms, true);
    }
    free(buf);
    if (rc == 0) {
        /* Half-close and wait for the server to close: then it has read every byte. */
        shutdown(s->fd, SHUT_WR);
        for (;;) {
            char *line;
            size_t len;
            int r = lcc_read_line(&s->rep, s->fd, s->o->timeout_ms, &line, &len);
            if (r == 1)
                continue;
            if (r < 0 && r != -ECONNRESET)
                lcc_warn("waiting for %s:%d to close: %s (the lines were written)", s->o->host,
                         s->o->log_port, strerror(-r));
            break;
        }
        return 0;
    }
    lcc_warn("connection to %s:%d lost: %s; plain mode does not resend, some lines may be lost",
             s->o->host, s->o->log_port, strerror(-rc));
    return -1;
}

/* --- interactive mode ----------------------------------------------------------------------- */

/* Send one line and wait for its reply, reconnecting as framed mode does. Returns 0 or -1. */
static int interactive_one(struct sender *s, const char *line, size_t len)
{
    char *reply;
    size_t rlen;

    s->ack_off = s->sent_off = s->end = 0;
    s->head = s->count = 0;
    if (window_push(s, line, len) < 0)
        return -1;
    for (;;) {
        int rc;
        if (s->fd < 0 && reconnect(s) < 0)
            return -1;
        rc = lcc_write_all(s->fd, s->pend, s->end, s->o->timeout_ms, false);
        if (rc == 0)
            rc = lcc_read_line(&s->rep, s->fd, s->o->timeout_ms, &reply, &rlen);
        if (rc == 1) {
            printf("%s\n", reply);
            handle_reply(s, reply, rlen);
            return 0;
        }
        drop_conn(s, rc == 0 ? "closed by the server" : strerror(-rc));
    }
}

static int run_interactive(struct sender *s)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;

    if (reconnect(s) < 0)
        return -1;
    fprintf(stderr, "Connected to %s:%d. Type a log line; 'quit' or Ctrl-D exits.\n", s->o->host,
            s->o->log_port);
    s->cur = 0; /* messages name "<stdin>" */
    s->interactive = true;
    for (;;) {
        printf("log> ");
        fflush(stdout);
        n = getline(&line, &cap, stdin);
        if (n < 0) {
            putchar('\n');
            break;
        }
        s->lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (strcmp(line, "quit") == 0 || strcmp(line, "exit") == 0)
            break;
        if (n == 0)
            continue;
        if (interactive_one(s, line, (size_t)n) < 0) {
            rc = -1;
            break;
        }
    }
    free(line);
    return rc;
}

/* --- the subcommand ------------------------------------------------------------------------- */

const char lcc_send_help[] =
    "usage: logcaster send [--plain] [--level L] [--retry-for SEC] [--window N] [options]\n"
    "                      [FILE...]\n"
    "       logcaster send --follow FILE [--from-start] [--level L] [options]\n"
    "\n"
    "Send every line of the FILEs (or of stdin when none is given, or for '-') to the ingest\n"
    "port over one connection, then print 'sent N lines, acknowledged N, refused N' on\n"
    "stderr.\n"
    "\n"
    "By default each line is sent as LOG|<L>|-|<line> and kept until the server answers\n"
    "OK|<id>; up to --window lines are in flight at once. If the connection breaks, or no\n"
    "reply comes within --timeout, the client reconnects (backoff 100 ms doubling to 5 s)\n"
    "and resends every unacknowledged line, so a line may be stored twice but is never\n"
    "silently lost. ERROR replies are printed with file and line number. Blank lines are\n"
    "skipped.\n"
    "\n"
    "  --level L        level sent with every line (default '-': the server detects it\n"
    "                   from the text)\n"
    "  --plain          send the raw bytes without framing or acknowledgement (fastest;\n"
    "                   lines sent before a broken connection may be lost)\n"
    "  --retry-for SEC  how long to keep reconnecting after the connection is lost\n"
    "                   (default 30; 0 = fail at once)\n"
    "  --window N       most lines awaiting acknowledgement (default 4096)\n"
    "\n"
    "--follow FILE ships the lines appended to FILE, like 'tail -F', until Ctrl-C or\n"
    "SIGTERM, through the client library (binary protocol, acknowledged, resent after a\n"
    "reconnect). It survives log rotation (rename and create, copytruncate) and a file that\n"
    "does not exist yet. With a terminal on stdout it shows lines, lines/s and acknowledged\n"
    "once a second; at the end it flushes (up to --timeout) and prints the summary.\n"
    "  --from-start     also send what FILE holds already (default: only new lines)\n"
    "\n"
    "With a terminal on stdin and no FILE, send is interactive: it prompts 'log> ', sends\n"
    "each line framed and prints the server's reply; 'quit' or Ctrl-D exits.\n"
    "\n"
    "Exit status: 0 every line acknowledged, 1 a line was refused, could not be read or\n"
    "could not be delivered, 2 the server could not be reached at all.\n";

int lcc_cmd_send(struct lcc_opts *o, int argc, char **argv)
{
    static char *stdin_only[] = {"-"};
    struct sender s = {.o = o, .level = "-", .retry_ms = 30000, .window = WINDOW_DEFAULT};
    struct lcc_argp p;
    bool plain = false, level_set = false, from_start = false;
    const char *follow = NULL;
    char **files = calloc((size_t)argc + 1, sizeof(*files));
    int nfiles = 0, rc, ret;
    const char *v;

    if (!files)
        return LCC_EXIT_FAIL;
    lcc_argp_init(&p, argc, argv, 1);
    while (lcc_argp_next(&p)) {
        uint64_t u;
        double d;
        if (!lcc_argp_is_opt(&p)) {
            files[nfiles++] = (char *)p.arg;
            continue;
        }
        rc = lcc_common_opt(&p, o, argv[0], lcc_send_help);
        if (rc > 0)
            continue;
        if (rc < 0) {
            ret = LCC_EXIT_USAGE;
            goto out;
        }
        if (lcc_argp_flag(&p, "--plain")) {
            plain = true;
        } else if (lcc_argp_flag(&p, "--from-start")) {
            from_start = true;
        } else if (lcc_argp_value(&p, "--follow", &v)) {
            if (!v || !*v) {
                ret = lcc_usage(argv[0], "--follow needs a FILE", NULL);
                goto out;
            }
            follow = v;
        } else if (lcc_argp_value(&p, "--level", &v)) {
            if (!v || !lcc_level_ok(v)) {
                ret = lcc_usage(argv[0], "bad --level (a level name such as WARN, or -)", v);
                goto out;
            }
            s.level = v;
            level_set = true;
        } else if (lcc_argp_value(&p, "--retry-for", &v)) {
            if (!v || lcc_parse_seconds(v, 86400 * 365, &d) < 0) {
                ret = lcc_usage(argv[0], "bad --retry-for (seconds)", v);
                goto out;
            }
            s.retry_ms = (int64_t)(d * 1000);
        } else if (lcc_argp_value(&p, "--window", &v)) {
            if (!v || lcc_parse_u64(v, 1, WINDOW_MAX, &u) < 0) {
                ret = lcc_usage(argv[0], "bad --window (1..262144)", v);
                goto out;
            }
            s.window = (size_t)u;
        } else {
            ret = lcc_unknown_opt(&p, argv[0]);
            goto out;
        }
    }
    if (plain && level_set) {
        ret = lcc_usage(argv[0], "--level needs framed mode; it cannot be used with --plain", NULL);
        goto out;
    }
    if (follow || from_start) {
        int lv = -1;
        if (!follow || plain || nfiles) {
            ret = lcc_usage(argv[0],
                            from_start && !follow ? "--from-start needs --follow FILE"
                                                  : "--follow FILE takes no other FILE nor --plain",
                            NULL);
            goto out;
        }
        if (level_set && strcmp(s.level, "-") != 0 &&
            (lv = lc_level_parse(s.level, strlen(s.level))) < 0) {
            ret = lcc_usage(argv[0], "bad --level", s.level);
            goto out;
        }
        ret = lcc_follow(o, &(struct lcc_follow_opts){follow, lv, from_start});
        goto out;
    }

    s.files = nfiles ? files : stdin_only;
    s.nfiles = nfiles ? nfiles : 1;
    s.in_fd = -1;
    s.fd = -1;
    s.backoff_ms = BACKOFF_FIRST_MS;
    lcc_reader_init(&s.in);
    lcc_reader_init(&s.rep);
    s.win = calloc(s.window, sizeof(*s.win));
    if (!s.win) {
        lcc_warn("out of memory");
        ret = LCC_EXIT_FAIL;
        goto out;
    }

    if (plain)
        rc = run_plain(&s);
    else if (nfiles == 0 && isatty(0))
        rc = run_interactive(&s);
    else
        rc = run_framed(&s);

    if (s.fd >= 0)
        close(s.fd);
    if (s.in_fd > 0)
        close(s.in_fd);
    if (plain)
        fprintf(stderr, "sent %llu lines, acknowledged 0, refused 0 (plain: not acknowledged)\n",
                (unsigned long long)s.sent);
    else if (rc < 0 && s.count > 0)
        fprintf(stderr, "sent %llu lines, acknowledged %llu, refused %llu, undelivered %zu\n",
                (unsigned long long)s.sent, (unsigned long long)s.acked,
                (unsigned long long)s.refused, s.count);
    else
        fprintf(stderr, "sent %llu lines, acknowledged %llu, refused %llu\n",
                (unsigned long long)s.sent, (unsigned long long)s.acked,
                (unsigned long long)s.refused);

    if (rc < 0 && !s.ever_connected)
        ret = LCC_EXIT_UNREACHABLE;
    else if (rc < 0 || s.refused > 0 || s.input_errors > 0)
        ret = LCC_EXIT_FAIL;
    else
        ret = LCC_EXIT_OK;
    free(s.win);
    free(s.pend);
    lcc_reader_free(&s.in);
    lcc_reader_free(&s.rep);
out:
    free(files);
    return ret;
}
