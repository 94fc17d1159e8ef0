/* bench.c - `logcaster bench`: blast pre-built log lines at the ingest port and measure how
 * fast the server stores them.
 *
 * The benchmark shares a 2-core machine with the server, so the client must cost as little
 * CPU as possible: the lines are formatted once before the clock starts (gen.c), and the
 * timed phase is a single thread running one epoll loop over every connection, doing only
 * large send()s straight out of the shared buffer and, in the acknowledged formats, large
 * recv()s of the replies: framed OK|<id> lines are counted with memchr, binary acks (16-byte
 * frames) are walked by their headers. No per-line syscall, no per-line formatting. One
 * thread also bounds the client to one core whatever --connections is.
 *
 * --format picks the wire form (gen.h): plain lines, LOG| framed lines, octet-counted RFC
 * 5424 syslog, JSON lines or binary LOG_MS frames. Plain, syslog and JSON get no replies.
 *
 * Each connection sends an exact number of whole records: the buffer is repeated and the last
 * repetition is cut at a record boundary (gen.h keeps the offsets of every record). The result
 * counts only what the server really stored: COUNT (all entries) is read before sending and
 * polled afterwards until it has grown by the number of lines sent. A server that evicts old
 * entries under its memory limit shrinks COUNT, so the "evicted" counter of STATS, when the
 * server reports one, is added back.
 *
 * --ack-latency RATE measures something else with the same lines and connections: the time
 * a writer waits for its acknowledgement. The connections send framed (or binary) lines at
 * a steady RATE lines/s in all, each at its time however many are still unacknowledged;
 * the percentiles of the send-to-ack times are printed after the usual result line.
 * bench/query.sh runs it with the server idle and while full-scan queries run. */
#include "client/bench.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/cli.h"
#include "client/gen.h"
#include "client/net.h"
#include "client/query.h"
#include "client/util.h"
#include "proto/binary.h"

#define BUF_LINES      100000       /* Lines per buffer: the rare word is 1 in 100000. */
#define BUF_MAX_BYTES  (48u << 20)  /* Fewer lines when --line-size would pass this. */
#define RECV_CHUNK     (256 * 1024) /* Bytes per recv() of replies. */
#define VERIFY_POLL_MS 10           /* Interval between COUNT polls after sending. */
#define LAT_WINDOW     4096         /* --ack-latency: most lines in flight per connection. */

struct bconn {
    int fd;
    int idx;          /* Connection number, for messages. */
    uint64_t lines;   /* Lines this connection must send (UINT64_MAX until a --duration cut). */
    uint64_t total;   /* Bytes this connection must send (likewise). */
    uint64_t sent;    /* Bytes sent so far. */
    uint64_t replies; /* Replies received: lines (framed) or frames (binary). */
    uint64_t refused; /* Replies that were not OK|<id>, or not a binary ack in order. */
    bool bol;         /* The next reply byte starts a line (framed). */
    bool wdone;       /* Every byte is sent (and, without replies, the write side is shut). */
    bool done;        /* Nothing more to wait for on this connection. */
    unsigned char hdr[BIN_HEADER]; /* A reply header split over two recv()s (binary). */
    unsigned hlen;                 /* Bytes of it received so far. */
    uint32_t skip;                 /* Payload bytes of the current reply still to skip. */
    double due;                    /* --ack-latency: when the next line is due. */
    double *sent_at;               /* --ack-latency: send times of the lines in flight, a
                                      ring of LAT_WINDOW indexed by line number. */
    uint64_t nsent;                /* --ack-latency: lines sent whole. */
    size_t part;                   /* --ack-latency: bytes of the next line already sent. */
};

struct bench {
    const struct lcc_opts *o;
    struct lcc_gen g;
    struct bconn *c;
    int nconn;
    enum lcc_gen_format fmt;
    bool acked; /* The format gets a reply per line (framed, binary). */
    int ep;
    int active;            /* Connections not yet done. */
    char *rbuf;            /* Scratch for recv(). */
    char first_error[256]; /* First refused reply, for the report. */
    double *lat;           /* --ack-latency: ms from send to ack, one per acked line. */
    size_t nlat, lat_cap;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double tv_diff(const struct timeval *a, const struct timeval *b)
{
    return (double)(a->tv_sec - b->tv_sec) + (double)(a->tv_usec - b->tv_usec) / 1e6;
}

static uint64_t lines_to_bytes(const struct lcc_gen *g, uint64_t lines)
{
    return lines / g->lines * g->len + g->off[lines % g->lines];
}

/* Stop a --duration run: end this connection's stream at the next line boundary. */
static void cut_at_next_line(struct bench *b, struct bconn *c)
{
    uint64_t rep = c->sent / b->g.len;
    size_t idx = lcc_gen_line_at(&b->g, (size_t)(c->sent % b->g.len));
    uint64_t lines = rep * b->g.lines + idx;

    if (lines < c->lines) {
        c->lines = lines;
        c->total = lines_to_bytes(&b->g, lines);
    }
}

static void conn_mod(struct bench *b, struct bconn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(b->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_finish(struct bench *b, struct bconn *c)
{
    c->done = true;
    b->active--;
    epoll_ctl(b->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

/* Called when the last byte is out: without replies, half-close and wait for the server's
 * close, which proves it read everything; with replies, wait for the remaining ones. */
static void writes_done(struct bench *b, struct bconn *c)
{
    c->wdone = true;
    if (!b->acked)
        shutdown(c->fd, SHUT_WR);
    if (b->acked && c->replies >= c->lines)
        conn_finish(b, c);
    else
        conn_mod(b, c, EPOLLIN);
}

/* Send as much as the socket takes. Returns 0 or a negative errno. */
static int conn_write(struct bench *b, struct bconn *c)
{
    while (c->sent < c->total) {
        size_t off = (size_t)(c->sent % b->g.len);
        uint64_t left = c->total - c->sent;
        size_t chunk = b->g.len - off < left ? b->g.len - off : (size_t)left;
        ssize_t n = send(c->fd, b->g.data + off, chunk, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -errno;
        }
        c->sent += (uint64_t)n;
        if ((size_t)n < chunk)
            return 0; /* the socket buffer is full; save the EAGAIN round trip */
    }
    if (!c->wdone)
        writes_done(b, c);
    return 0;
}

/* Count reply lines in what arrived; remember the first one that is not OK|. */
static void count_replies(struct bench *b, struct bconn *c, const char *p, size_t n)
{
    const char *end = p + n;

    while (p < end) {
        const char *nl;
        if (c->bol && *p != 'O') {
            c->refused++;
            if (!b->first_error[0]) {
                const char *e = memchr(p, '\n', (size_t)(end - p));
                size_t l = e ? (size_t)(e - p) : (size_t)(end - p);
                if (l >= sizeof(b->first_error))
                    l = sizeof(b->first_error) - 1;
                memcpy(b->first_error, p, l);
                b->first_error[l] = '\0';
            }
        }
        c->bol = false;
        nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        c->replies++;
        c->bol = true;
        p = nl + 1;
    }
}

static void note_error(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Keep the first refusal's description for the report. */
static void note_error(struct bench *b, const char *fmt, ...)
{
    va_list ap;

    if (b->first_error[0])
        return;
    va_start(ap, fmt);
    vsnprintf(b->first_error, sizeof(b->first_error), fmt, ap);
    va_end(ap);
}

/* Count binary replies in what arrived. An ack is 16 bytes: header 0x01 0x86 length 8, the
 * request's sequence number, then the id. The common case, a whole ack in this chunk, costs a
 * few compares; a header split over two chunks, or any other frame (an error 0xFF with its
 * code and reason), goes the slow way and counts as refused. The acks must come in request
 * order, so the n-th ack of a connection carries the n-th record's sequence number (the
 * buffer's numbers repeat with the buffer, see lcc_cmd_bench). */
static void count_bin_replies(struct bench *b, struct bconn *c, const unsigned char *p, size_t n)
{
    const unsigned char *end = p + n;

    while (p < end) {
        size_t left = (size_t)(end - p), k;
        struct bin_header h;

        if (c->skip) {
            k = c->skip < left ? c->skip : left;
            p += k;
            c->skip -= (uint32_t)k;
            continue;
        }
        if (c->hlen == 0 && left >= BIN_HEADER + 8 && p[0] == BIN_VERSION &&
            p[1] == (BIN_LOG_MS | BIN_REPLY) && p[2] == 0 && p[3] == 8 &&
            bin_get32(p + 4) == (uint32_t)(c->replies % b->g.lines + 1)) {
            c->replies++;
            p += BIN_HEADER + 8;
            continue;
        }
        k = BIN_HEADER - c->hlen < left ? BIN_HEADER - c->hlen : left;
        memcpy(c->hdr + c->hlen, p, k);
        c->hlen += (unsigned)k;
        p += k;
        if (c->hlen < BIN_HEADER)
            break;
        c->hlen = 0;
        h.version = c->hdr[0];
        h.command = c->hdr[1];
        h.length = (uint16_t)(c->hdr[2] << 8 | c->hdr[3]);
        h.seq = bin_get32(c->hdr + 4);
        c->skip = h.length;
        if (h.version == BIN_VERSION && h.command == (BIN_LOG_MS | BIN_REPLY) && h.length == 8 &&
            h.seq == (uint32_t)(c->replies % b->g.lines + 1)) {
            c->replies++;
            continue;
        }
        c->refused++;
        c->replies++;
        if (h.command == BIN_ERROR && h.length >= 1 && p < end) {
            /* Code and reason, as far as they arrived with the header. */
            size_t rl = (size_t)(end - p) < h.length ? (size_t)(end - p) : h.length;
            note_error(b, "error frame, seq %u, code %u: %.*s", h.seq, p[0], (int)(rl - 1),
                       (const char *)p + 1);
        } else {
            note_error(b,
                       "frame version %u command 0x%02x length %u seq %u (expected an ack "
                       "0x86 of length 8 with seq %u)",
                       h.version, h.command, h.length, h.seq,
                       (uint32_t)((c->replies - 1) % b->g.lines + 1));
        }
    }
}

/* Read what arrived. Returns 0, or a negative errno (-EPIPE when the server closed early). */
static int conn_read(struct bench *b, struct bconn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, b->rbuf, RECV_CHUNK, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -errno;
        }
        if (n == 0) {
            if (c->wdone && (!b->acked || c->replies >= c->lines)) {
                conn_finish(b, c);
                return 0;
            }
            return -EPIPE;
        }
        if (b->acked) {
            if (b->fmt == LCC_GEN_BINARY)
                count_bin_replies(b, c, (const unsigned char *)b->rbuf, (size_t)n);
            else
                count_replies(b, c, b->rbuf, (size_t)n);
            if (c->wdone && c->replies >= c->lines) {
                conn_finish(b, c);
                return 0;
            }
        }
        if ((size_t)n < RECV_CHUNK)
            return 0;
    }
}

/* The timed phase. Returns 0, or -1 after reporting an error. */
static int run_loop(struct bench *b, double duration_s, double *t_first_done)
{
    struct epoll_event evs[64];
    double t0 = lcc_now_s(), last_progress = t0;
    bool cut = false;

    *t_first_done = 0;
    while (b->active > 0) {
        int n = epoll_wait(b->ep, evs, 64, 200);
        double now = lcc_now_s();

        if (n < 0 && errno != EINTR) {
            lcc_warn("epoll_wait: %s", strerror(errno));
            return -1;
        }
        if (duration_s > 0 && !cut && now - t0 >= duration_s) {
            cut = true;
            for (int i = 0; i < b->nconn; i++) {
                struct bconn *c = &b->c[i];
                if (c->done || c->wdone)
                    continue;
                cut_at_next_line(b, c);
                if (c->sent >= c->total)
                    writes_done(b, c);
            }
        }
        for (int i = 0; i < n; i++) {
            struct bconn *c = evs[i].data.ptr;
            int rc = 0;
            if (c->done)
                continue;
            if ((evs[i].events & EPOLLOUT) && !c->wdone)
                rc = conn_write(b, c);
            if (!rc && !c->done && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                rc = conn_read(b, c);
            if (rc < 0) {
                if (rc == -EPIPE)
                    lcc_warn("connection %d: the server closed it after %llu of %llu bytes", c->idx,
                             (unsigned long long)c->sent, (unsigned long long)c->total);
                else
                    lcc_warn("connection %d: %s", c->idx, strerror(-rc));
                return -1;
            }
            last_progress = now;
        }
        if (b->active > 0 && now - last_progress > b->o->timeout_ms / 1000.0) {
            bool all_sent = true;
            for (int i = 0; i < b->nconn; i++)
                all_sent = all_sent && b->c[i].wdone;
            if (all_sent && !b->acked) {
                /* Everything is written; a server that keeps half-closed connections open
                 * only costs us the close confirmation. COUNT will tell what was stored. */
                lcc_warn("the server did not close %d connection(s) after end of input; "
                         "going on",
                         b->active);
                return 0;
            }
            lcc_warn("no progress for %.1f s (%d connection(s) still busy)",
                     b->o->timeout_ms / 1000.0, b->active);
            return -1;
        }
        if (*t_first_done == 0 && b->active < b->nconn)
            *t_first_done = now;
    }
    return 0;
}

/* Send what is left of line k (counting from 0) of connection c: record k of the buffer,
 * which repeats. Returns 1 once the line is out whole, 0 when the socket takes no more for
 * now (c->part keeps how much went), or a negative errno. */
static int send_line(struct bench *b, struct bconn *c, uint64_t k)
{
    size_t i = (size_t)(k % b->g.lines), start = b->g.off[i] + c->part;
    size_t len = b->g.off[i + 1] - start;
    ssize_t n;

    do
        n = send(c->fd, b->g.data + start, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    c->sent += (uint64_t)n;
    if ((size_t)n < len) {
        c->part += (size_t)n;
        return 0;
    }
    c->part = 0;
    return 1;
}

/* Send the lines of connection c that are due by now; returns 0 or a negative errno. */
static int send_due(struct bench *b, struct bconn *c, double now, double interval)
{
    while (c->nsent < c->lines && now >= c->due && c->nsent - c->replies < LAT_WINDOW) {
        int rc = send_line(b, c, c->nsent);
        if (rc <= 0)
            return rc;
        c->sent_at[c->nsent % LAT_WINDOW] = now;
        c->nsent++;
        c->due += interval;
    }
    if (c->nsent >= c->lines)
        c->wdone = true;
    return 0;
}

/* The timed phase of --ack-latency. Each connection sends a line at each of its ticks (rate
 * lines/s in all, the connections' ticks staggered) whether or not the earlier ones are
 * acknowledged yet (up to LAT_WINDOW in flight), and late ticks are caught up at once: a slow
 * acknowledgement does not slow the sender, so it shows in the figures instead of hiding in
 * fewer lines sent. The acknowledgements of a connection come in order, so the n-th one
 * answers the n-th line, and the time from its send() to the ack's arrival is recorded.
 * Returns 0, or -1 after reporting an error. */
static int run_latency_loop(struct bench *b, double rate, double duration_s)
{
    struct epoll_event evs[64];
    double t0 = lcc_now_s(), interval = b->nconn / rate, limit = b->o->timeout_ms / 1000.0;
    bool cut = false;

    for (int i = 0; i < b->nconn; i++) {
        b->c[i].due = t0 + i / rate;
        if (!b->c[i].done)
            conn_mod(b, &b->c[i], EPOLLIN); /* Writes are paced, not driven by EPOLLOUT. */
    }
    while (b->active > 0) {
        double now = lcc_now_s(), wait_s = 0.2;
        int n;

        if (duration_s > 0 && !cut && now - t0 >= duration_s) {
            /* Stop at a line boundary: a line partly sent is finished first. */
            cut = true;
            for (int i = 0; i < b->nconn; i++) {
                struct bconn *c = &b->c[i];
                if (c->done)
                    continue;
                c->lines = c->nsent + (c->part ? 1 : 0);
                c->wdone = c->part == 0;
                if (c->replies >= c->lines)
                    conn_finish(b, c);
            }
        }
        for (int i = 0; i < b->nconn; i++) {
            struct bconn *c = &b->c[i];
            int rc;
            if (c->done)
                continue;
            if (c->replies < c->nsent && now - c->sent_at[c->replies % LAT_WINDOW] > limit) {
                lcc_warn("connection %d: no acknowledgement within %.1f s", c->idx, limit);
                return -1;
            }
            rc = send_due(b, c, now, interval);
            if (rc < 0) {
                lcc_warn("connection %d: %s", c->idx, strerror(-rc));
                return -1;
            }
            if (c->nsent < c->lines && c->due - now < wait_s)
                wait_s = c->due - now; /* may be past: the socket was full */
        }
        n = epoll_wait(b->ep, evs, 64, wait_s > 0 ? (int)(wait_s * 1000) + 1 : 1);
        if (n < 0 && errno != EINTR) {
            lcc_warn("epoll_wait: %s", strerror(errno));
            return -1;
        }
        now = lcc_now_s();
        for (int i = 0; i < n; i++) {
            struct bconn *c = evs[i].data.ptr;
            uint64_t before = c->replies;
            int rc;
            if (c->done)
                continue;
            rc = conn_read(b, c);
            for (uint64_t k = before; k < c->replies && k < c->nsent; k++)
                if (b->nlat < b->lat_cap)
                    b->lat[b->nlat++] = (now - c->sent_at[k % LAT_WINDOW]) * 1000;
            if (rc < 0) {
                if (rc == -EPIPE)
                    lcc_warn("connection %d: the server closed it after %llu lines", c->idx,
                             (unsigned long long)c->replies);
                else
                    lcc_warn("connection %d: %s", c->idx, strerror(-rc));
                return -1;
            }
        }
    }
    return 0;
}

const char lcc_bench_help[] =
    "usage: logcaster bench [--connections N] [--lines N] [--duration SEC]\n"
    "                       [--format plain|framed|syslog|json|binary] [--line-size B]\n"
    "                       [--ack-latency RATE] [--no-verify] [--verify-timeout SEC]\n"
    "                       [options]\n"
    "\n"
    "Ingest load generator. Builds a buffer of 100000 realistic log lines (mixed levels,\n"
    "hosts, numbers; the word '" LCC_RARE_WORD "' in exactly one of them, about one in three\n"
    "ERROR lines saying 'timeout after <N>ms') before the clock starts, then sends it\n"
    "repeatedly over N connections from one epoll thread with large writes. Prints\n"
    "  ingest: mode=plain connections=4 lines=N seconds=S lines/s=X MB/s=Y verified=yes\n"
    "where seconds runs from the first byte until COUNT on the query port shows every line\n"
    "stored (or, with --no-verify, until the server has read or acknowledged everything).\n"
    "MB is 10^6 bytes of line data as sent.\n"
    "\n"
    "  --connections N     parallel connections (default 4)\n"
    "  --lines N           total lines, split evenly (default 1000000)\n"
    "  --duration SEC      stop after SEC seconds at a line boundary (with --lines: whichever\n"
    "                      comes first)\n"
    "  --format F          the wire form of the lines (default plain):\n"
    "                        plain   text lines '<time> <host> <LEVEL> <app>[pid]: <text>'\n"
    "                        framed  LOG|<LEVEL>|<ts>|<msg>, counting the OK|<id> replies\n"
    "                        syslog  RFC 5424, octet-counted (RFC 6587), facility local0:\n"
    "                                'LEN <PRI>1 <time> <host> <app> <pid> - - <text>'\n"
    "                        json    "
    "{\"ts\":..,\"level\":..,\"host\":..,\"app\":..,\"pid\":..,\"msg\":..}\n"
    "                        binary  LOG_MS frames (0x01 0x06), counting the 16-byte acks\n"
    "                      In syslog, json and binary the message text alone is about\n"
    "                      --line-size bytes; the other fields come on top.\n"
    "  --framed            the same as --format framed\n"
    "  --line-size B       average line length in bytes, roughly (default 120)\n"
    "  --ack-latency RATE  framed and binary only: send RATE lines/s in all, paced, each line\n"
    "                      at its time whether or not the earlier ones are acknowledged,\n"
    "                      and print the time from sending each line to its\n"
    "                      acknowledgement (default length --duration 10):\n"
    "                        ack latency: lines=N p50=Xms p99=Yms max=Zms\n"
    "  --no-verify         do not use the query port at all\n"
    "  --verify-timeout S  how long to wait for COUNT to catch up (default 30)\n";

int lcc_cmd_bench(struct lcc_opts *o, int argc, char **argv)
{
    struct bench b = {.o = o, .nconn = 4, .ep = -1};
    struct lcc_qconn *q = NULL;
    struct lcc_argp p;
    uint64_t lines = 0, u, before = 0, after = 0, line_size = 120, ack_rate = 0;
    double duration = 0, verify_timeout = 30, t0, t_sent, t_end, t_first = 0;
    uint64_t evicted0 = 0; /* STATS "evicted" before sending, if the server reports it. */
    bool verify = true, verified = false, has_evicted = false;
    char err[512];
    const char *v;
    int rc, ret = LCC_EXIT_FAIL;
    size_t buf_lines;
    struct rusage ru0, ru; /* CPU use around the timed phase */

    lcc_argp_init(&p, argc, argv, 1);
    while (lcc_argp_next(&p)) {
        if (!lcc_argp_is_opt(&p))
            return lcc_usage(argv[0], "unexpected argument", p.arg);
        rc = lcc_common_opt(&p, o, argv[0], lcc_bench_help);
        if (rc > 0)
            continue;
        if (rc < 0)
            return LCC_EXIT_USAGE;
        if (lcc_argp_flag(&p, "--framed")) {
            b.fmt = LCC_GEN_FRAMED;
        } else if (lcc_argp_value(&p, "--format", &v)) {
            if (!v || lcc_gen_format_parse(v, &b.fmt) < 0)
                return lcc_usage(argv[0], "bad --format (plain, framed, syslog, json, binary)", v);
        } else if (lcc_argp_flag(&p, "--no-verify")) {
            verify = false;
        } else if (lcc_argp_value(&p, "--connections", &v)) {
            if (!v || lcc_parse_u64(v, 1, 1000, &u) < 0)
                return lcc_usage(argv[0], "bad --connections (1..1000)", v);
            b.nconn = (int)u;
        } else if (lcc_argp_value(&p, "--lines", &v)) {
            if (!v || lcc_parse_u64(v, 1, UINT64_MAX / 2, &lines) < 0)
                return lcc_usage(argv[0], "bad --lines", v);
        } else if (lcc_argp_value(&p, "--line-size", &v)) {
            if (!v || lcc_parse_u64(v, 16, 400, &line_size) < 0)
                return lcc_usage(argv[0], "bad --line-size (16..400)", v);
        } else if (lcc_argp_value(&p, "--ack-latency", &v)) {
            if (!v || lcc_parse_u64(v, 1, 1000000, &ack_rate) < 0)
                return lcc_usage(argv[0], "bad --ack-latency (lines/s, 1..1000000)", v);
        } else if (lcc_argp_value(&p, "--duration", &v)) {
            if (!v || lcc_parse_seconds(v, 86400, &duration) < 0 || duration <= 0)
                return lcc_usage(argv[0], "bad --duration (seconds)", v);
        } else if (lcc_argp_value(&p, "--verify-timeout", &v)) {
            if (!v || lcc_parse_seconds(v, 86400, &verify_timeout) < 0)
                return lcc_usage(argv[0], "bad --verify-timeout (seconds)", v);
        } else {
            return lcc_unknown_opt(&p, argv[0]);
        }
    }
    if (ack_rate && b.fmt != LCC_GEN_FRAMED && b.fmt != LCC_GEN_BINARY)
        return lcc_usage(argv[0], "--ack-latency needs --format framed or binary", NULL);
    if (lines == 0 && duration == 0) {
        if (ack_rate)
            duration = 10; /* A million paced lines would take minutes. */
        else
            lines = 1000000;
    }

    /* Syslog, JSON and binary add their header fields (up to ~110 bytes) to the text. */
    size_t per_line = (size_t)line_size + 1 + (b.fmt >= LCC_GEN_SYSLOG ? 110 : 0);
    buf_lines = BUF_LINES;
    if (buf_lines * per_line > BUF_MAX_BYTES)
        buf_lines = BUF_MAX_BYTES / per_line;
    b.acked = b.fmt == LCC_GEN_FRAMED || b.fmt == LCC_GEN_BINARY;
    /* Binary: every repetition of the buffer sends the same sequence numbers 1..buf_lines
     * again. Giving each repetition fresh ones would mean a private copy of the buffer per
     * connection, or patching it between sends that share it; the server only echoes the
     * numbers, so repeating them costs the measurement nothing. The acks are still checked
     * against the numbers they answer. */
    rc = lcc_gen_build(&b.g, buf_lines, (size_t)line_size, b.fmt, (int64_t)time(NULL), 42);
    if (rc < 0) {
        lcc_warn("cannot build the line buffer: %s", strerror(-rc));
        return LCC_EXIT_FAIL;
    }
    fprintf(stderr,
            "bench: %s, %zu-line buffer, %.1f MB, %.0f bytes/line, levels DEBUG/INFO/WARN/ERROR "
            "%zu/%zu/%zu/%zu, '" LCC_RARE_WORD "' once per buffer\n",
            lcc_gen_format_name(b.fmt), b.g.lines, b.g.len / 1e6,
            (double)b.g.len / (double)b.g.lines, b.g.levels[0], b.g.levels[1], b.g.levels[2],
            b.g.levels[3]);

    b.rbuf = malloc(RECV_CHUNK);
    b.c = calloc((size_t)b.nconn, sizeof(*b.c));
    b.ep = epoll_create1(EPOLL_CLOEXEC);
    if (ack_rate) {
        /* At most one latency per line sent: the lines given, or what the pace allows in
         * --duration (each connection sends at most one more line than its share). */
        double by_time = duration > 0 ? duration * (double)ack_rate + b.nconn + 1 : 0;
        b.lat_cap = lines ? (size_t)lines : (size_t)by_time;
        if (by_time > 0 && by_time < (double)b.lat_cap)
            b.lat_cap = (size_t)by_time;
        b.lat = malloc((b.lat_cap ? b.lat_cap : 1) * sizeof(*b.lat));
    }
    if (!b.rbuf || !b.c || b.ep < 0 || (ack_rate && !b.lat)) {
        lcc_warn("cannot set up: %s", strerror(errno));
        goto out;
    }
    for (int i = 0; i < b.nconn; i++) {
        b.c[i].fd = -1;
        if (ack_rate && !(b.c[i].sent_at = malloc(LAT_WINDOW * sizeof(double)))) {
            lcc_warn("cannot set up: %s", strerror(errno));
            goto out;
        }
    }

    if (verify) {
        q = lcc_qconn_open(o, err, sizeof(err));
        if (!q) {
            lcc_warn("%s (use --no-verify to skip the COUNT check)", err);
            ret = LCC_EXIT_UNREACHABLE;
            goto out;
        }
        rc = lcc_qconn_stat(q, "evicted", &evicted0, err, sizeof(err));
        if (rc < 0) {
            lcc_warn("STATS before sending: %s", err);
            ret = LCC_EXIT_UNREACHABLE;
            goto out;
        }
        has_evicted = rc == 0;
        rc = lcc_qconn_count(q, "", &before, err, sizeof(err));
        if (rc != 0) {
            lcc_warn("COUNT before sending: %s", err);
            ret = rc > 0 ? LCC_EXIT_FAIL : LCC_EXIT_UNREACHABLE;
            goto out;
        }
    }

    for (int i = 0; i < b.nconn; i++) {
        struct bconn *c = &b.c[i];
        struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
        c->idx = i;
        c->bol = true;
        c->fd = lcc_connect(o->host, o->log_port, o->timeout_ms, err, sizeof(err));
        if (c->fd < 0) {
            lcc_warn("%s", err);
            ret = LCC_EXIT_UNREACHABLE;
            goto out;
        }
        if (lines) {
            c->lines = lines / (uint64_t)b.nconn + ((uint64_t)i < lines % (uint64_t)b.nconn);
            c->total = lines_to_bytes(&b.g, c->lines);
        } else {
            c->lines = c->total = UINT64_MAX;
        }
        epoll_ctl(b.ep, EPOLL_CTL_ADD, c->fd, &ev);
        b.active++;
        if (c->lines == 0)
            writes_done(&b, c);
    }

    getrusage(RUSAGE_SELF, &ru0);
    t0 = lcc_now_s();
    if (ack_rate)
        rc = run_latency_loop(&b, (double)ack_rate, duration);
    else
        rc = run_loop(&b, duration, &t_first);
    t_sent = lcc_now_s();
    if (rc < 0) {
        ret = LCC_EXIT_UNREACHABLE;
        goto out;
    }

    uint64_t total_lines = 0, total_bytes = 0, refused = 0;
    for (int i = 0; i < b.nconn; i++) {
        total_lines += b.c[i].lines;
        total_bytes += b.c[i].sent;
        refused += b.c[i].refused;
    }

    t_end = t_sent;
    if (verify) {
        double deadline = t_sent + verify_timeout;
        for (;;) {
            /* Evictions make COUNT shrink; add the ones since the start back. STATS goes
             * first so that an entry evicted between the two reads is missed, never counted
             * twice: the check can be late, never wrong. */
            uint64_t ev = evicted0;
            if (has_evicted && lcc_qconn_stat(q, "evicted", &ev, err, sizeof(err)) != 0)
                ev = evicted0;
            rc = lcc_qconn_count(q, "", &after, err, sizeof(err));
            if (rc != 0) {
                lcc_warn("COUNT after sending: %s", err);
                break;
            }
            after += ev - evicted0;
            t_end = lcc_now_s();
            if (after >= before + total_lines - refused) {
                verified = true;
                break;
            }
            if (t_end > deadline)
                break;
            lcc_sleep_ms(VERIFY_POLL_MS);
        }
    }

    double secs = t_end - t0;
    getrusage(RUSAGE_SELF, &ru);
    printf("ingest: mode=%s connections=%d lines=%llu seconds=%.3f lines/s=%.0f MB/s=%.1f "
           "verified=%s\n",
           lcc_gen_format_name(b.fmt), b.nconn, (unsigned long long)total_lines, secs,
           secs > 0 ? (double)total_lines / secs : 0, secs > 0 ? total_bytes / 1e6 / secs : 0,
           !verify    ? "skipped"
           : verified ? "yes"
                      : "no");
    if (ack_rate && b.nlat) {
        qsort(b.lat, b.nlat, sizeof(*b.lat), cmp_double);
        printf("ack latency: lines=%zu p50=%.3fms p99=%.3fms max=%.3fms\n", b.nlat,
               lcc_percentile(b.lat, b.nlat, 50), lcc_percentile(b.lat, b.nlat, 99),
               b.lat[b.nlat - 1]);
    }
    fflush(stdout);
    fprintf(stderr,
            "bench: all sent%s after %.3f s (first connection done %.3f s), stored after %.3f "
            "s; in that time client cpu user %.2f s sys %.2f s\n",
            b.acked ? " and acknowledged" : "", t_sent - t0, t_first > 0 ? t_first - t0 : 0, secs,
            tv_diff(&ru.ru_utime, &ru0.ru_utime), tv_diff(&ru.ru_stime, &ru0.ru_stime));
    if (refused)
        lcc_warn("%llu line(s) refused; first reply: %s", (unsigned long long)refused,
                 b.first_error);
    if (verify && !verified)
        lcc_warn("COUNT (plus evictions) went from %llu to %llu, expected %llu",
                 (unsigned long long)before, (unsigned long long)after,
                 (unsigned long long)(before + total_lines - refused));
    ret = (refused || (verify && !verified)) ? LCC_EXIT_FAIL : LCC_EXIT_OK;
out:
    if (b.c)
        for (int i = 0; i < b.nconn; i++) {
            if (b.c[i].fd >= 0)
                close(b.c[i].fd);
            free(b.c[i].sent_at);
        }
    if (b.ep >= 0)
        close(b.ep);
    lcc_qconn_close(q);
    free(b.c);
    free(b.rbuf);
    free(b.lat);
    lcc_gen_free(&b.g);
    return ret;
}
