/* bench_irc.c - `logcaster bench-irc`: many IRC clients in #logs-all while lines are ingested
 * at a fixed rate; measures delivery latency from ingest to IRC client.
 *
 * Each ingested line carries its send time (CLOCK_MONOTONIC, ns). Every IRC client reads the
 * relayed PRIVMSGs, takes the time back out and records now - then in a histogram. One
 * thread does all of it with poll(), so the client costs as little CPU as it can. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "client/bench_irc.h"
#include "client/cli.h"
#include "client/net.h"

#define HIST_US 100    /* Histogram bucket width. */
#define HIST_N  100000 /* 100 us x 100000 = 10 s. */
#define RBUF    (256 * 1024)

const char lcc_bench_irc_help[] =
    "usage: logcaster bench-irc [--irc-port N] [--clients N] [--rate N] [--seconds S] [options]\n"
    "\n"
    "Connects N IRC clients, joins each to #logs-all, then sends RATE plain lines per second\n"
    "to the ingest port for S seconds. Every line carries its send time; each client measures\n"
    "how long the line took to reach it through the server. Prints\n"
    "  irc: clients=N rate=R sent=S delivered=D p50=..ms p99=..ms max=..ms dropped=K\n"
    "The server must let the stream through: start it with --irc-stream-rate above RATE.\n"
    "\n"
    "  --irc-port N     IRC port (default 6667)\n"
    "  --clients N      IRC clients (default 300)\n"
    "  --rate N         lines per second sent (default 20000)\n"
    "  --seconds S      how long to send (default 5)\n"
    "  --hold S         send nothing: keep the clients joined and reading for S seconds (to\n"
    "                   measure another load, e.g. `logcaster bench`, with IRC watchers)\n";

struct ircc {
    int fd;
    char *buf;
    size_t len;
    bool joined, dead;
};

/* Consume complete lines of one client; returns lines relayed from the bench. */
static uint64_t eat_lines(struct ircc *c, uint64_t *hist, int64_t now, uint64_t *maxus)
{
    uint64_t got = 0;
    size_t off = 0;
    for (;;) {
        char *nl = memchr(c->buf + off, '\n', c->len - off);
        if (!nl)
            break;
        *nl = 0;
        char *line = c->buf + off;
        off = (size_t)(nl - c->buf) + 1;
        if (!c->joined && strstr(line, " 366 ") && strstr(line, "#logs-all"))
            c->joined = true;
        else if (strncmp(line, "PING", 4) == 0)
            (void)!write(c->fd, "PONG :x\r\n", 9);
        else if (strncmp(line, "ERROR", 5) == 0)
            c->dead = true;
        char *t = strstr(line, "ircbench t=");
        if (!t || !c->joined)
            continue;
        int64_t sent = strtoll(t + 11, NULL, 10);
        int64_t us = (now - sent) / 1000;
        if (us < 0)
            us = 0;
        if ((uint64_t)us > *maxus)
            *maxus = (uint64_t)us;
        size_t b = (size_t)us / HIST_US;
        hist[b < HIST_N ? b : HIST_N - 1]++;
        got++;
    }
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
    return got;
}

static double percentile(const uint64_t *hist, uint64_t total, double p)
{
    uint64_t want = (uint64_t)((double)total * p), seen = 0;
    for (size_t i = 0; i < HIST_N; i++) {
        seen += hist[i];
        if (seen > want)
            return (double)(i * HIST_US + HIST_US / 2) / 1000.0;
    }
    return (double)HIST_N * HIST_US / 1000.0;
}

int lcc_cmd_bench_irc(struct lcc_opts *o, int argc, char **argv)
{
    struct lcc_argp p;
    uint64_t nclients = 300, rate = 20000, irc_port = 6667;
    double seconds = 5, hold = 0;
    const char *v;
    lcc_argp_init(&p, argc, argv, 1);
    while (lcc_argp_next(&p)) {
        int rc = lcc_common_opt(&p, o, argv[0], lcc_bench_irc_help);
        if (rc < 0)
            return LCC_EXIT_USAGE;
        if (rc > 0)
            continue;
        if (lcc_argp_value(&p, "--clients", &v)) {
            if (!v || lcc_parse_u64(v, 1, 5000, &nclients) < 0)
                return lcc_usage(argv[0], "bad --clients (1..5000)", v);
        } else if (lcc_argp_value(&p, "--rate", &v)) {
            if (!v || lcc_parse_u64(v, 1, 10000000, &rate) < 0)
                return lcc_usage(argv[0], "bad --rate", v);
        } else if (lcc_argp_value(&p, "--irc-port", &v)) {
            if (!v || lcc_parse_u64(v, 1, 65535, &irc_port) < 0)
                return lcc_usage(argv[0], "bad --irc-port", v);
        } else if (lcc_argp_value(&p, "--hold", &v)) {
            if (!v || lcc_parse_seconds(v, 3600, &hold) < 0)
                return lcc_usage(argv[0], "bad --hold", v);
        } else if (lcc_argp_value(&p, "--seconds", &v)) {
            if (!v || lcc_parse_seconds(v, 3600, &seconds) < 0)
                return lcc_usage(argv[0], "bad --seconds", v);
        } else {
            return lcc_unknown_opt(&p, argv[0]);
        }
    }
    struct ircc *cl = calloc(nclients, sizeof(*cl));
    struct pollfd *pfd = calloc(nclients, sizeof(*pfd));
    uint64_t *hist = calloc(HIST_N, sizeof(*hist));
    if (!cl || !pfd || !hist)
        return LCC_EXIT_FAIL;
    char err[256];
    for (uint64_t i = 0; i < nclients; i++) {
        cl[i].fd = lcc_connect(o->host, (int)irc_port, o->timeout_ms, err, sizeof(err));
        if (cl[i].fd < 0) {
            lcc_warn("cannot connect IRC client %llu: %s", (unsigned long long)i, err);
            return LCC_EXIT_UNREACHABLE;
        }
        cl[i].buf = malloc(RBUF);
        char reg[160];
        int n = snprintf(reg, sizeof(reg), "NICK b%llu\r\nUSER b 0 * :bench\r\nJOIN #logs-all\r\n",
                         (unsigned long long)i);
        if (lcc_write_all(cl[i].fd, reg, (size_t)n, o->timeout_ms, false) < 0) {
            lcc_warn("IRC client %llu: cannot register", (unsigned long long)i);
            return LCC_EXIT_UNREACHABLE;
        }
        fcntl(cl[i].fd, F_SETFL, fcntl(cl[i].fd, F_GETFL) | O_NONBLOCK);
        pfd[i].fd = cl[i].fd;
        pfd[i].events = POLLIN;
    }
    uint64_t delivered = 0, maxus = 0, joined = 0;
    int64_t deadline = mono_ns() + 30LL * 1000000000;
    while (joined < nclients && mono_ns() < deadline) { /* Wait for every JOIN. */
        poll(pfd, nclients, 100);
        joined = 0;
        for (uint64_t i = 0; i < nclients; i++) {
            ssize_t r = read(cl[i].fd, cl[i].buf + cl[i].len, RBUF - cl[i].len);
            if (r > 0) {
                cl[i].len += (size_t)r;
                eat_lines(&cl[i], hist, mono_ns(), &maxus);
            }
            joined += cl[i].joined;
        }
    }
    if (joined < nclients) {
        lcc_warn("only %llu of %llu IRC clients joined #logs-all", (unsigned long long)joined,
                 (unsigned long long)nclients);
        return LCC_EXIT_FAIL;
    }
    memset(hist, 0, HIST_N * sizeof(*hist));
    maxus = 0;
    if (hold > 0) {
        printf("irc: %llu clients joined #logs-all, holding %.0f s\n", (unsigned long long)joined,
               hold);
        fflush(stdout);
        uint64_t bytes = 0, dead = 0;
        int64_t until = mono_ns() + (int64_t)(hold * 1e9);
        while (mono_ns() < until) {
            poll(pfd, nclients, 100);
            for (uint64_t i = 0; i < nclients; i++) {
                if (!(pfd[i].revents & POLLIN))
                    continue;
                ssize_t r;
                while ((r = read(cl[i].fd, cl[i].buf, RBUF)) > 0)
                    bytes += (uint64_t)r;
                if (r == 0) {
                    pfd[i].fd = -1;
                    dead++;
                }
            }
        }
        printf("irc: held %llu clients, received %llu bytes, %llu disconnected\n",
               (unsigned long long)nclients, (unsigned long long)bytes, (unsigned long long)dead);
        return LCC_EXIT_OK;
    }
    int log = lcc_connect(o->host, o->log_port, o->timeout_ms, err, sizeof(err));
    if (log < 0) {
        lcc_warn("cannot connect to the log port: %s", err);
        return LCC_EXIT_UNREACHABLE;
    }
    int64_t start = mono_ns(), end = start + (int64_t)(seconds * 1e9);
    uint64_t sent = 0;
    char out[64 * 1024];
    while (mono_ns() < end + 3000000000LL) {
        int64_t now = mono_ns();
        if (now < end) {
            /* Send what the rate allows so far, at most 64 KiB at a time. */
            uint64_t due = (uint64_t)((double)(now - start) / 1e9 * (double)rate);
            size_t n = 0;
            while (sent < due && n < sizeof(out) - 64) {
                n += (size_t)snprintf(out + n, sizeof(out) - n, "INFO ircbench t=%lld seq=%llu\n",
                                      (long long)mono_ns(), (unsigned long long)sent);
                sent++;
            }
            if (n && lcc_write_all(log, out, n, o->timeout_ms, false) < 0) {
                lcc_warn("the log connection failed");
                break;
            }
        } else if (delivered >= sent * joined) {
            break;
        }
        poll(pfd, nclients, 1);
        now = mono_ns();
        for (uint64_t i = 0; i < nclients; i++) {
            if (cl[i].dead || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            for (;;) {
                ssize_t r = read(cl[i].fd, cl[i].buf + cl[i].len, RBUF - cl[i].len);
                if (r <= 0) {
                    if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                        cl[i].dead = true;
                        pfd[i].fd = -1;
                    }
                    break;
                }
                cl[i].len += (size_t)r;
                delivered += eat_lines(&cl[i], hist, now, &maxus);
            }
        }
    }
    uint64_t dead = 0;
    for (uint64_t i = 0; i < nclients; i++) {
        dead += cl[i].dead;
        close(cl[i].fd);
        free(cl[i].buf);
    }
    close(log);
    uint64_t total = 0;
    for (size_t i = 0; i < HIST_N; i++)
        total += hist[i];
    printf("irc: clients=%llu rate=%llu sent=%llu delivered=%llu expected=%llu p50=%.1fms "
           "p99=%.1fms max=%.1fms dropped=%llu\n",
           (unsigned long long)nclients, (unsigned long long)rate, (unsigned long long)sent,
           (unsigned long long)delivered, (unsigned long long)(sent * nclients),
           total ? percentile(hist, total, 0.50) : 0.0, total ? percentile(hist, total, 0.99) : 0.0,
           (double)maxus / 1000.0, (unsigned long long)dead);
    free(cl);
    free(pfd);
    free(hist);
    return delivered == sent * nclients ? LCC_EXIT_OK : LCC_EXIT_FAIL;
}
