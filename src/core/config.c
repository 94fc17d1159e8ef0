/* config.c - defaults and command-line parsing for logcasterd. */
#include "core/config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

void config_defaults(struct config *c)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    *c = (struct config){
        .bind_addr = "0.0.0.0",
        .log_port = 9999,
        .query_port = 9998,
        .irc_port = 6667,
        .http_port = 8080,
        .http_max_body = (size_t)64 << 20,
        .http_max_header = 16 * 1024,
        .http_request_timeout_s = 10,
        .irc_server_name = "logcaster.local",
        .irc_password = NULL,
        .irc_stream_rate = 200,
        .irc_replay = 10,
        .data_dir = "./data",
        .threads = cpus > 0 ? (int)cpus : 1,
        .max_line = 64 * 1024,
        .memory_limit = (size_t)128 << 20,
        .fsync_policy = 1, /* FSYNC_BATCH */
        .fsync_interval_ms = 50,
        .segment_size = (size_t)64 << 20,
        .compression_level = 1,
        .retention_size = 0,
        .retention_age_ms = 0,
        .retention_min_free = (uint64_t)256 << 20,
        .out_limit = (size_t)1 << 20,
        .max_connections = 10000,
        .idle_timeout_s = 300,
        .backlog = 1024,
        .reuseport = false,
        .keepalive_idle_s = 60,
        .keepalive_interval_s = 10,
        .keepalive_count = 6,
        .user_timeout_ms = 30000,
        .rcvbuf = 0,
        .sndbuf = 0,
        .shutdown_timeout_s = 5,
        .verbosity = LOGV_INFO,
    };
}

static const char usage[] =
    "Usage: logcasterd [OPTION]...\n"
    "Collect log lines over TCP and answer queries about them.\n"
    "\n"
    "Listeners (port 0 picks a free port; a negative port disables the listener):\n"
    "  --bind ADDR              address to listen on (default 0.0.0.0; IPv6 like ::1 works)\n"
    "  --log-port N             log ingest port (default 9999)\n"
    "  --query-port N           query port (default 9998)\n"
    "  --irc-port N             IRC server port (default 6667)\n"
    "  --http-port N            HTTP API and web console port (default 8080)\n"
    "  --listen ADDR:PORT=ROLE  an extra listener; ROLE is auto, log, query, irc or http\n"
    "                           (repeatable, up to 4; [::1]:7000=auto for IPv6). Every\n"
    "                           listener detects HTTP, IRC and the binary protocol from the\n"
    "                           first bytes; other input gets the ROLE (auto: log lines)\n"
    "  --http-max-body SIZE     largest HTTP request body (default 64M)\n"
    "  --http-max-header SIZE   largest HTTP request line plus headers (default 16K)\n"
    "  --http-request-timeout SEC  a request must arrive whole within this (default 10)\n"
    "  --irc-server-name NAME   the IRC server's name (default logcaster.local)\n"
    "  --irc-password PASS      IRC clients must send PASS first (default: none)\n"
    "  --irc-stream-rate N      log lines per second per IRC log channel; beyond, LogBot\n"
    "                           counts suppressed lines (default 200)\n"
    "  --irc-replay N           entries replayed on joining a log channel (default 10)\n"
    "\n"
    "Storage:\n"
    "  --data-dir DIR           data directory, created if missing (default ./data)\n"
    "  --memory-limit SIZE      memory for recent and recently read log data (the block\n"
    "                           cache; default 128M; K, M, G suffixes)\n"
    "  --fsync POLICY           always: acknowledge after the fsync that covers the line;\n"
    "                           batch: acknowledge once written, fsync every --fsync-interval;\n"
    "                           never: acknowledge once written, leave syncing to the OS\n"
    "                           (default batch)\n"
    "  --fsync-interval MS      longest wait for the fsync of --fsync=batch (default 50)\n"
    "  --segment-size SIZE      seal a segment file at this size (default 64M)\n"
    "  --compression-level N    zstd level for stored blocks, 0 = none (default 1)\n"
    "  --retention-size SIZE    delete the oldest segments beyond this total, 0 = no limit\n"
    "                           (default 0)\n"
    "  --retention-age AGE      delete segments older than this (e.g. 7d, 12h), 0 = forever\n"
    "                           (default 0)\n"
    "  --retention-min-free SIZE  keep this much disk free: delete the oldest segments, then\n"
    "                           refuse writes (default 256M)\n"
    "  --max-line SIZE          longest line accepted (default 64K); longer plain lines are\n"
    "                           stored truncated and flagged, longer framed lines refused\n"
    "\n"
    "Connections:\n"
    "  --threads N              reactor threads, each with its own epoll loop (default: cores)\n"
    "  --max-connections N      open connections across all ports (default 10000)\n"
    "  --idle-timeout SEC       close connections idle this long, 0 = never (default 300)\n"
    "  --out-limit SIZE         unsent reply bytes per connection before its reading pauses\n"
    "                           (default 1M)\n"
    "  --backlog N              listen backlog (default 1024)\n"
    "  --reuseport              set SO_REUSEPORT so several servers can share the ports\n"
    "  --keepalive-idle SEC     TCP keepalive idle time, 0 disables keepalive (default 60)\n"
    "  --keepalive-interval SEC TCP keepalive probe interval (default 10)\n"
    "  --keepalive-count N      TCP keepalive probes before the peer is dead (default 6)\n"
    "  --user-timeout MS        TCP_USER_TIMEOUT for unacknowledged data, 0 = kernel default\n"
    "                           (default 30000)\n"
    "  --rcvbuf SIZE            SO_RCVBUF for connections, 0 = kernel autotuning (default 0)\n"
    "  --sndbuf SIZE            SO_SNDBUF for connections, 0 = kernel autotuning (default 0)\n"
    "  --shutdown-timeout SEC   longest flush on SIGINT/SIGTERM (default 5)\n"
    "\n"
    "Other:\n"
    "  -v, --verbose            more diagnostics on stderr (repeatable)\n"
    "  -q, --quiet              only errors on stderr\n"
    "  -h, --help               show this help\n"
    "      --version            show the version\n"
    "\n"
    "At start-up one line per listener is printed on stdout, e.g.\n"
    "  listening log 127.0.0.1:9999\n";

int parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        return -EINVAL;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -EINVAL;
    double mult = 1;
    switch (*end) {
    case 'k':
    case 'K':
        mult = 1024.0;
        end++;
        break;
    case 'm':
    case 'M':
        mult = 1024.0 * 1024;
        end++;
        break;
    case 'g':
    case 'G':
        mult = 1024.0 * 1024 * 1024;
        end++;
        break;
    default:
        break;
    }
    if (*end == 'B' || *end == 'b' || (*end == 'i' && end[1] == 'B' && end++))
        end++;
    if (*end)
        return -EINVAL;
    v *= mult;
    if (v > (double)SIZE_MAX / 2)
        return -EINVAL;
    *out = (size_t)v;
    return 0;
}

static int parse_int(const char *name, const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "logcasterd: invalid value '%s' for --%s (expected %ld..%ld)\n", s, name,
                lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_size_opt(const char *name, const char *s, size_t lo, size_t *out)
{
    if (parse_size(s, out) < 0 || *out < lo) {
        fprintf(stderr,
                "logcasterd: invalid size '%s' for --%s (e.g. 65536, 64K, 1G; at least %zu)\n", s,
                name, lo);
        return -1;
    }
    return 0;
}

enum {
    OPT_BIND = 256,
    OPT_LOG_PORT,
    OPT_QUERY_PORT,
    OPT_DATA_DIR,
    OPT_THREADS,
    OPT_MAX_LINE,
    OPT_MEMORY,
    OPT_OUT_LIMIT,
    OPT_MAX_CONN,
    OPT_IDLE,
    OPT_BACKLOG,
    OPT_REUSEPORT,
    OPT_KA_IDLE,
    OPT_KA_INTVL,
    OPT_KA_COUNT,
    OPT_USER_TIMEOUT,
    OPT_RCVBUF,
    OPT_SNDBUF,
    OPT_SHUTDOWN,
    OPT_VERSION,
    OPT_IRC_PORT,
    OPT_IRC_NAME,
    OPT_IRC_PASS,
    OPT_IRC_RATE,
    OPT_IRC_REPLAY,
    OPT_HTTP_PORT,
    OPT_HTTP_BODY,
    OPT_HTTP_HEADER,
    OPT_HTTP_TIMEOUT,
    OPT_LISTEN,
    OPT_FSYNC,
    OPT_FSYNC_INTERVAL,
    OPT_SEGMENT_SIZE,
    OPT_COMPRESSION,
    OPT_RET_SIZE,
    OPT_RET_AGE,
    OPT_RET_FREE,
};

/* "90" (seconds), "15m", "12h", "7d", "2w" to milliseconds. */
static int parse_age(const char *s, int64_t *ms)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return -1;
    long long mult = 1000;
    switch (*end) {
    case 0:
        break;
    case 's':
        mult = 1000;
        end++;
        break;
    case 'm':
        mult = 60000;
        end++;
        break;
    case 'h':
        mult = 3600000;
        end++;
        break;
    case 'd':
        mult = 86400000;
        end++;
        break;
    case 'w':
        mult = 7 * 86400000LL;
        end++;
        break;
    default:
        return -1;
    }
    if (*end || v > INT64_MAX / mult)
        return -1;
    *ms = v * mult;
    return 0;
}

/* ADDR:PORT=ROLE, with [v6addr]:PORT for IPv6. */
static int parse_listen(struct config *c, const char *arg)
{
    if (c->nlisten == CONFIG_MAX_LISTEN) {
        fprintf(stderr, "logcasterd: at most %d --listen options\n", CONFIG_MAX_LISTEN);
        return -1;
    }
    struct listen_extra *l = &c->listen[c->nlisten];
    const char *eq = strrchr(arg, '='), *colon;
    const char *a = arg, *a_end;
    if (*arg == '[') {
        a = arg + 1;
        a_end = strchr(a, ']');
        colon = a_end && a_end[1] == ':' ? a_end + 1 : NULL;
    } else {
        colon = eq ? memchr(arg, ':', (size_t)(eq - arg)) : NULL;
        a_end = colon;
    }
    static const char *const roles[] = {"auto", "log", "query", "irc", "http"};
    bool role_ok = false;
    for (size_t i = 0; eq && i < sizeof(roles) / sizeof(roles[0]); i++)
        role_ok |= strcmp(eq + 1, roles[i]) == 0;
    char *end = NULL;
    long port = colon && eq && colon < eq ? strtol(colon + 1, &end, 10) : -1;
    if (!role_ok || !a_end || a_end == a || (size_t)(a_end - a) >= sizeof(l->addr) || end != eq ||
        port < 0 || port > 65535) {
        fprintf(stderr,
                "logcasterd: invalid --listen '%s' (ADDR:PORT=ROLE, ROLE one of auto, log, "
                "query, irc, http; e.g. 0.0.0.0:7000=auto or [::1]:7000=http)\n",
                arg);
        return -1;
    }
    memcpy(l->addr, a, (size_t)(a_end - a));
    l->addr[a_end - a] = 0;
    l->port = (int)port;
    snprintf(l->role, sizeof(l->role), "%s", eq + 1);
    c->nlisten++;
    return 0;
}

int config_parse(struct config *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"bind", required_argument, NULL, OPT_BIND},
        {"log-port", required_argument, NULL, OPT_LOG_PORT},
        {"query-port", required_argument, NULL, OPT_QUERY_PORT},
        {"data-dir", required_argument, NULL, OPT_DATA_DIR},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"max-line", required_argument, NULL, OPT_MAX_LINE},
        {"memory-limit", required_argument, NULL, OPT_MEMORY},
        {"out-limit", required_argument, NULL, OPT_OUT_LIMIT},
        {"max-connections", required_argument, NULL, OPT_MAX_CONN},
        {"idle-timeout", required_argument, NULL, OPT_IDLE},
        {"backlog", required_argument, NULL, OPT_BACKLOG},
        {"reuseport", no_argument, NULL, OPT_REUSEPORT},
        {"keepalive-idle", required_argument, NULL, OPT_KA_IDLE},
        {"keepalive-interval", required_argument, NULL, OPT_KA_INTVL},
        {"keepalive-count", required_argument, NULL, OPT_KA_COUNT},
        {"user-timeout", required_argument, NULL, OPT_USER_TIMEOUT},
        {"rcvbuf", required_argument, NULL, OPT_RCVBUF},
        {"sndbuf", required_argument, NULL, OPT_SNDBUF},
        {"shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN},
        {"irc-port", required_argument, NULL, OPT_IRC_PORT},
        {"irc-server-name", required_argument, NULL, OPT_IRC_NAME},
        {"irc-password", required_argument, NULL, OPT_IRC_PASS},
        {"irc-stream-rate", required_argument, NULL, OPT_IRC_RATE},
        {"irc-replay", required_argument, NULL, OPT_IRC_REPLAY},
        {"http-port", required_argument, NULL, OPT_HTTP_PORT},
        {"http-max-body", required_argument, NULL, OPT_HTTP_BODY},
        {"http-max-header", required_argument, NULL, OPT_HTTP_HEADER},
        {"http-request-timeout", required_argument, NULL, OPT_HTTP_TIMEOUT},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"fsync", required_argument, NULL, OPT_FSYNC},
        {"fsync-interval", required_argument, NULL, OPT_FSYNC_INTERVAL},
        {"segment-size", required_argument, NULL, OPT_SEGMENT_SIZE},
        {"compression-level", required_argument, NULL, OPT_COMPRESSION},
        {"retention-size", required_argument, NULL, OPT_RET_SIZE},
        {"retention-age", required_argument, NULL, OPT_RET_AGE},
        {"retention-min-free", required_argument, NULL, OPT_RET_FREE},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {0, 0, 0, 0},
    };
    size_t sz;
    optind = 1;
    opterr = 0;
    for (;;) {
        int o = getopt_long(argc, argv, ":vqh", opts, NULL);
        if (o == -1)
            break;
        int r = 0;
        switch (o) {
        case OPT_BIND:
            c->bind_addr = optarg;
            break;
        case OPT_LOG_PORT:
            r = parse_int("log-port", optarg, -1, 65535, &c->log_port);
            break;
        case OPT_QUERY_PORT:
            r = parse_int("query-port", optarg, -1, 65535, &c->query_port);
            break;
        case OPT_DATA_DIR:
            c->data_dir = optarg;
            break;
        case OPT_THREADS:
            r = parse_int("threads", optarg, 1, 256, &c->threads);
            break;
        case OPT_MAX_LINE:
            r = parse_size_opt("max-line", optarg, 64, &c->max_line);
            if (!r && c->max_line > ((size_t)64 << 20)) {
                fprintf(stderr, "logcasterd: --max-line %s is above the 64M maximum\n", optarg);
                r = -1;
            }
            break;
        case OPT_MEMORY:
            r = parse_size_opt("memory-limit", optarg, (size_t)4 << 20, &c->memory_limit);
            break;
        case OPT_OUT_LIMIT:
            r = parse_size_opt("out-limit", optarg, 4096, &c->out_limit);
            break;
        case OPT_MAX_CONN:
            r = parse_int("max-connections", optarg, 1, 1000000, &c->max_connections);
            break;
        case OPT_IDLE:
            r = parse_int("idle-timeout", optarg, 0, 86400 * 365, &c->idle_timeout_s);
            break;
        case OPT_BACKLOG:
            r = parse_int("backlog", optarg, 1, 65535, &c->backlog);
            break;
        case OPT_REUSEPORT:
            c->reuseport = true;
            break;
        case OPT_KA_IDLE:
            r = parse_int("keepalive-idle", optarg, 0, 32767, &c->keepalive_idle_s);
            break;
        case OPT_KA_INTVL:
            r = parse_int("keepalive-interval", optarg, 1, 32767, &c->keepalive_interval_s);
            break;
        case OPT_KA_COUNT:
            r = parse_int("keepalive-count", optarg, 1, 127, &c->keepalive_count);
            break;
        case OPT_USER_TIMEOUT:
            r = parse_int("user-timeout", optarg, 0, INT_MAX, &c->user_timeout_ms);
            break;
        case OPT_RCVBUF:
        case OPT_SNDBUF:
            r = parse_size_opt(o == OPT_RCVBUF ? "rcvbuf" : "sndbuf", optarg, 0, &sz);
            if (!r && sz > (size_t)INT_MAX / 2) {
                fprintf(stderr, "logcasterd: buffer size %s is too large\n", optarg);
                r = -1;
            }
            if (!r)
                *(o == OPT_RCVBUF ? &c->rcvbuf : &c->sndbuf) = (int)sz;
            break;
        case OPT_SHUTDOWN:
            r = parse_int("shutdown-timeout", optarg, 0, 3600, &c->shutdown_timeout_s);
            break;
        case OPT_IRC_PORT:
            r = parse_int("irc-port", optarg, -1, 65535, &c->irc_port);
            break;
        case OPT_IRC_NAME:
            c->irc_server_name = optarg;
            if (!*optarg || strlen(optarg) > 63 || strpbrk(optarg, " :!@,\r\n")) {
                fprintf(stderr, "logcasterd: invalid --irc-server-name '%s'\n", optarg);
                r = -1;
            }
            break;
        case OPT_IRC_RATE:
            r = parse_int("irc-stream-rate", optarg, 1, 1000000, &c->irc_stream_rate);
            break;
        case OPT_IRC_REPLAY:
            r = parse_int("irc-replay", optarg, 0, 1000, &c->irc_replay);
            break;
        case OPT_HTTP_PORT:
            r = parse_int("http-port", optarg, -1, 65535, &c->http_port);
            break;
        case OPT_HTTP_BODY:
            r = parse_size_opt("http-max-body", optarg, 1024, &c->http_max_body);
            break;
        case OPT_HTTP_HEADER:
            r = parse_size_opt("http-max-header", optarg, 1024, &c->http_max_header);
            if (!r && c->http_max_header > (size_t)1 << 20) {
                fprintf(stderr, "logcasterd: --http-max-header is at most 1M\n");
                r = -1;
            }
            break;
        case OPT_HTTP_TIMEOUT:
            r = parse_int("http-request-timeout", optarg, 1, 3600, &c->http_request_timeout_s);
            break;
        case OPT_LISTEN:
            r = parse_listen(c, optarg);
            break;
        case OPT_IRC_PASS:
            c->irc_password = optarg;
            break;
        case OPT_FSYNC:
            if (strcmp(optarg, "always") == 0)
                c->fsync_policy = 0;
            else if (strcmp(optarg, "batch") == 0)
                c->fsync_policy = 1;
            else if (strcmp(optarg, "never") == 0)
                c->fsync_policy = 2;
            else {
                fprintf(stderr, "logcasterd: --fsync takes always, batch or never, not '%s'\n",
                        optarg);
                r = -1;
            }
            break;
        case OPT_FSYNC_INTERVAL:
            r = parse_int("fsync-interval", optarg, 1, 60000, &c->fsync_interval_ms);
            break;
        case OPT_SEGMENT_SIZE:
            r = parse_size_opt("segment-size", optarg, (size_t)1 << 20, &c->segment_size);
            break;
        case OPT_COMPRESSION:
            r = parse_int("compression-level", optarg, 0, 19, &c->compression_level);
            break;
        case OPT_RET_SIZE:
        case OPT_RET_FREE:
            r = parse_size_opt(o == OPT_RET_SIZE ? "retention-size" : "retention-min-free", optarg,
                               0, &sz);
            if (!r)
                *(o == OPT_RET_SIZE ? &c->retention_size : &c->retention_min_free) = sz;
            break;
        case OPT_RET_AGE:
            if (parse_age(optarg, &c->retention_age_ms) < 0) {
                fprintf(stderr, "logcasterd: invalid --retention-age '%s' (e.g. 7d, 12h, 0)\n",
                        optarg);
                r = -1;
            }
            break;
        case 'v':
            c->verbosity++;
            break;
        case 'q':
            c->verbosity = LOGV_ERROR;
            break;
        case 'h':
            fputs(usage, stdout);
            return 1;
        case OPT_VERSION:
            printf("logcasterd %s\n", LC_VERSION);
            return 1;
        case ':':
            fprintf(stderr, "logcasterd: option '%s' needs a value (see --help)\n",
                    argv[optind - 1]);
            return -1;
        default:
            fprintf(stderr, "logcasterd: unknown option '%s' (see --help)\n", argv[optind - 1]);
            return -1;
        }
        if (r)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "logcasterd: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    return 0;
}
