/* config.c - defaults and command-line parsing for logcasterd. */
#include "core/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <ini.h>
#include <pcre2.h>

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
        .archive_level = 16,
        .retention_size = 0,
        .retention_age_ms = 0,
        .retention_min_free = (uint64_t)256 << 20,
        .out_limit = (size_t)1 << 20,
        .max_connections = 10000,
        .idle_timeout_s = 300,
        .line_timeout_s = 60,
        .multiline_window_ms = 500,
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
    /* The seed's table, secure by default: anyone may send logs (100 new connections/s per
     * address); querying, IRC and HTTP need a secret, and without one they listen on
     * loopback only (main.c says so at start-up). */
    c->policy[ROLE_LOG] = (struct policy){.conn_rate = 100};
    c->policy[ROLE_QUERY] = (struct policy){.auth = true, .conn_rate = 100};
    c->policy[ROLE_IRC] = (struct policy){.auth = true, .conn_rate = 20};
    c->policy[ROLE_HTTP] = (struct policy){.auth = true, .conn_rate = 200};
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
    "  --tls-cert FILE, --tls-key FILE  PEM certificate chain and key: every listener then\n"
    "                           also speaks TLS 1.2/1.3 (recognised by the handshake);\n"
    "                           ROLE+tls in --listen accepts TLS only, e.g.\n"
    "                           --listen 0.0.0.0:6697=irc+tls\n"
    "  --http-max-body SIZE     largest HTTP request body (default 64M)\n"
    "  --http-max-header SIZE   largest HTTP request line plus headers (default 16K)\n"
    "  --http-request-timeout SEC  a request must arrive whole within this (default 10)\n"
    "  --irc-server-name NAME   the IRC server's name (default logcaster.local)\n"
    "  --irc-password PASS      IRC clients must send PASS first (default: none)\n"
    "  --irc-stream-rate N      log lines per second per IRC log channel; beyond, LogBot\n"
    "                           counts suppressed lines (default 200)\n"
    "  --irc-replay N           entries replayed on joining a log channel (default 10)\n"
    "\n"
    "Access (ROLE is log, query, irc or http; each applies to that role's listeners):\n"
    "  --ROLE-allow CIDRS       only these sources may connect (comma-separated, e.g.\n"
    "                           10.0.0.0/8,::1; default: any)\n"
    "  --ROLE-deny CIDRS        these sources may not connect\n"
    "  --ROLE-token SECRET      a secret clients authenticate with (repeatable, up to 4):\n"
    "                           AUTH <secret> on the log and query ports, PASS on IRC,\n"
    "                           Authorization: Bearer <secret> on HTTP\n"
    "  --ROLE-auth on|off       require authentication (default: off for log, on for the\n"
    "                           others; on without a token means: listen on loopback only)\n"
    "  --ROLE-conn-rate N       new connections per second per source address, 0 = no\n"
    "                           limit (defaults: log 100, query 100, irc 20, http 200)\n"
    "  --ROLE-max-conns-per-ip N  concurrent connections per source address (default 0:\n"
    "                           no limit)\n"
    "  --ROLE-max-conns N       concurrent connections on the role (default 0: no limit)\n"
    "  --log-line-rate N        lines per second per ingest connection, 0 = no limit;\n"
    "                           a faster sender is slowed down, nothing is dropped\n"
    "  --config FILE            read settings from an INI file (keys are these options'\n"
    "                           names; [log], [query], [irc], [http] sections for access)\n"
    "  --check-config           validate the configuration, print it, and exit\n"
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
    "  --archive-level N        re-compress sealed segments at this zstd level, 0 = no\n"
    "                           (default 16)\n"
    "  --retention-size SIZE    delete the oldest segments beyond this total, 0 = no limit\n"
    "                           (default 0)\n"
    "  --retention-age AGE      delete segments older than this (e.g. 7d, 12h), 0 = forever\n"
    "                           (default 0)\n"
    "  --retention-min-free SIZE  keep this much disk free: delete the oldest segments, then\n"
    "                           refuse writes (default 256M)\n"
    "  --max-line SIZE          longest line accepted (default 64K); longer plain lines are\n"
    "                           stored truncated and flagged, longer framed lines refused\n"
    "  --multiline              join continuation lines (starting with a space or tab) of\n"
    "                           plain text to the entry before them, per connection: stack\n"
    "                           traces become one entry (default: off)\n"
    "  --multiline-pattern RE   PCRE2 pattern for more continuation lines, e.g.\n"
    "                           '^(Caused by:|\\s)'; implies --multiline\n"
    "  --multiline-window MS    a continuation joins only if it arrives within this after\n"
    "                           the line before it (default 500)\n"
    "\n"
    "Connections:\n"
    "  --threads N              reactor threads, each with its own epoll loop (default: cores)\n"
    "  --max-connections N      open connections across all ports (default 10000)\n"
    "  --idle-timeout SEC       close connections idle this long, 0 = never (default 300)\n"
    "  --line-timeout SEC       close a connection whose started line (or command) is not\n"
    "                           complete within this, 0 = never (default 60; slowloris)\n"
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

#define OPT_POLICY 4096 /* --ROLE-KIND options: OPT_POLICY + role * PK_COUNT + kind. */

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
    OPT_CONFIG,
    OPT_CHECK_CONFIG,
    OPT_LINE_TIMEOUT,
    OPT_MULTILINE,
    OPT_MULTILINE_PATTERN,
    OPT_MULTILINE_WINDOW,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_FSYNC,
    OPT_FSYNC_INTERVAL,
    OPT_SEGMENT_SIZE,
    OPT_COMPRESSION,
    OPT_ARCHIVE_LEVEL,
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
    char spec[128];
    snprintf(spec, sizeof(spec), "%s", arg);
    bool tls = false;
    size_t sl = strlen(spec);
    if (sl > 4 && strcmp(spec + sl - 4, "+tls") == 0) {
        spec[sl - 4] = 0;
        tls = true;
    }
    arg = spec;
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
    long port = colon && eq && colon < eq && colon[1] >= '0' && colon[1] <= '9'
                    ? strtol(colon + 1, &end, 10)
                    : -1;
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
    l->tls = tls;
    c->nlisten++;
    return 0;
}

static const struct option base_opts[] = {
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
    {"archive-level", required_argument, NULL, OPT_ARCHIVE_LEVEL},
    {"retention-size", required_argument, NULL, OPT_RET_SIZE},
    {"retention-age", required_argument, NULL, OPT_RET_AGE},
    {"retention-min-free", required_argument, NULL, OPT_RET_FREE},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"line-timeout", required_argument, NULL, OPT_LINE_TIMEOUT},
    {"multiline", no_argument, NULL, OPT_MULTILINE},
    {"multiline-pattern", required_argument, NULL, OPT_MULTILINE_PATTERN},
    {"multiline-window", required_argument, NULL, OPT_MULTILINE_WINDOW},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
    {0, 0, 0, 0},
};

static int apply(struct config *c, int o, const char *optarg);
/* ------------------------------------------------------------------------------------------ */
/* Access policies: --ROLE-KIND options. */

enum {
    PK_ALLOW,
    PK_DENY,
    PK_TOKEN,
    PK_AUTH,
    PK_CONN_RATE,
    PK_MAX_PER_IP,
    PK_MAX_CONNS,
    PK_LINE_RATE,
    PK_COUNT
};
static const char *const role_names[ROLE_COUNT] = {"log", "query", "irc", "http"};
static const char *const kind_names[PK_COUNT] = {
    "allow", "deny", "token", "auth", "conn-rate", "max-conns-per-ip", "max-conns", "line-rate"};

static int set_policy(struct config *c, int role, int kind, const char *v)
{
    struct policy *p = &c->policy[role];
    char name[40], bad[80];
    snprintf(name, sizeof(name), "%s-%s", role_names[role], kind_names[kind]);
    switch (kind) {
    case PK_ALLOW:
    case PK_DENY:
        if (cidr_list_parse(v, kind == PK_ALLOW ? p->allow : p->deny,
                            kind == PK_ALLOW ? &p->nallow : &p->ndeny, POLICY_MAX_CIDRS, bad,
                            sizeof(bad)) < 0) {
            fprintf(stderr,
                    "logcasterd: --%s: '%s' is not an address range (e.g. 10.0.0.0/8, "
                    "192.168.1.7, ::1, fd00::/8)\n",
                    name, bad);
            return -1;
        }
        return 0;
    case PK_TOKEN:
        if (p->ntokens == POLICY_MAX_TOKENS || !*v || strlen(v) >= POLICY_TOKEN_MAX ||
            strpbrk(v, " \t\r\n")) {
            fprintf(stderr,
                    "logcasterd: --%s: at most %d secrets of 1 to %d bytes without "
                    "spaces\n",
                    name, POLICY_MAX_TOKENS, POLICY_TOKEN_MAX - 1);
            return -1;
        }
        snprintf(p->tokens[p->ntokens++], POLICY_TOKEN_MAX, "%s", v);
        return 0;
    case PK_AUTH:
        if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0) {
            fprintf(stderr, "logcasterd: --%s takes on or off, not '%s'\n", name, v);
            return -1;
        }
        p->auth = strcmp(v, "on") == 0;
        return 0;
    case PK_CONN_RATE:
    case PK_LINE_RATE: {
        char *end;
        errno = 0;
        double r = strtod(v, &end);
        if (errno || end == v || *end || r < 0 || r > 1e9 ||
            (kind == PK_LINE_RATE && role != ROLE_LOG)) {
            fprintf(stderr, "logcasterd: invalid --%s '%s' (a rate per second, 0 = no limit%s)\n",
                    name, v, kind == PK_LINE_RATE ? "; only --log-line-rate exists" : "");
            return -1;
        }
        *(kind == PK_CONN_RATE ? &p->conn_rate : &p->line_rate) = r;
        return 0;
    }
    case PK_MAX_PER_IP:
        return parse_int(name, v, 0, 10000000, &p->max_conns_per_ip);
    case PK_MAX_CONNS:
        return parse_int(name, v, 0, 10000000, &p->max_conns);
    }
    return -1;
}

/* The option table: the fixed options plus --ROLE-KIND for every role and kind. */
static struct option opts_all[sizeof(base_opts) / sizeof(base_opts[0]) + ROLE_COUNT * PK_COUNT];
static char opt_names[ROLE_COUNT * PK_COUNT][40];
static pthread_once_t opts_once = PTHREAD_ONCE_INIT;

static void build_opts(void)
{
    size_t n = 0;
    for (; base_opts[n].name; n++)
        opts_all[n] = base_opts[n];
    for (int r = 0; r < ROLE_COUNT; r++) {
        for (int k = 0; k < PK_COUNT; k++) {
            char *name = opt_names[r * PK_COUNT + k];
            snprintf(name, sizeof(opt_names[0]), "%s-%s", role_names[r], kind_names[k]);
            opts_all[n++] =
                (struct option){name, required_argument, NULL, OPT_POLICY + r * PK_COUNT + k};
        }
    }
    opts_all[n] = (struct option){0, 0, 0, 0};
}

static const struct option *all_opts(void)
{
    pthread_once(&opts_once, build_opts);
    return opts_all;
}

/* ------------------------------------------------------------------------------------------ */
/* The configuration file: INI (Debian's libinih). A key in [server] (or before any section)
 * is an option's long name; a key in [log], [query], [irc] or [http] is ROLE-key. */

struct ini_state {
    struct config *c;
    const char *file;
    FILE *f;
    int line;
    int errors;
};

/* Strings from the file must outlive it: kept here (reachable, so leak checkers agree). */
static char *kept[1024];
static size_t nkept;

static const char *keep(const char *v)
{
    char *d = strdup(v);
    if (d && nkept < sizeof(kept) / sizeof(kept[0]))
        kept[nkept++] = d;
    return d ? d : "";
}

static char *ini_read_line(char *str, int num, void *stream)
{
    struct ini_state *st = stream;
    char *r = fgets(str, num, st->f);
    if (r)
        st->line++;
    return r;
}

static int ini_entry(void *user, const char *section, const char *key, const char *value)
{
    struct ini_state *st = user;
    char name[96];
    bool role_section = false;
    for (int r = 0; r < ROLE_COUNT; r++)
        role_section |= strcmp(section, role_names[r]) == 0;
    if (role_section)
        snprintf(name, sizeof(name), "%s-%s", section, key);
    else if (!*section || strcmp(section, "server") == 0)
        snprintf(name, sizeof(name), "%s", key);
    else {
        fprintf(stderr,
                "logcasterd: %s:%d: unknown section [%s] (use [server], [log], "
                "[query], [irc] or [http])\n",
                st->file, st->line, section);
        st->errors++;
        return 1;
    }
    for (const struct option *o = all_opts(); o->name; o++) {
        if (strcmp(o->name, name) != 0)
            continue;
        if (o->val == OPT_CONFIG || o->val == OPT_CHECK_CONFIG || o->val == 'h' ||
            o->val == OPT_VERSION)
            break;
        int r;
        if (o->has_arg == no_argument) {
            bool on = !strcmp(value, "1") || !strcmp(value, "true") || !strcmp(value, "yes") ||
                      !strcmp(value, "on");
            bool off = !strcmp(value, "0") || !strcmp(value, "false") || !strcmp(value, "no") ||
                       !strcmp(value, "off");
            r = on ? apply(st->c, o->val, NULL) : off ? 0 : -1;
            if (!on && !off)
                fprintf(stderr, "logcasterd: %s takes yes or no, not '%s'\n", name, value);
        } else {
            r = apply(st->c, o->val, keep(value));
        }
        if (r != 0) {
            fprintf(stderr, "logcasterd: %s:%d: invalid value for %s (see above)\n", st->file,
                    st->line, key);
            st->errors++;
        }
        return 1;
    }
    fprintf(stderr, "logcasterd: %s:%d: unknown setting '%s'%s%s%s\n", st->file, st->line, key,
            *section ? " in [" : "", section, *section ? "]" : "");
    st->errors++;
    return 1;
}

int config_load_file(struct config *c, const char *file)
{
    struct ini_state st = {c, file, fopen(file, "r"), 0, 0};
    if (!st.f) {
        fprintf(stderr, "logcasterd: cannot read --config %s: %s\n", file, strerror(errno));
        return -1;
    }
    int r = ini_parse_stream(ini_read_line, &st, ini_entry, &st);
    fclose(st.f);
    if (r > 0) {
        fprintf(stderr, "logcasterd: %s:%d: not an INI line (key = value, or [section])\n", file,
                r);
        st.errors++;
    }
    return st.errors ? -1 : 0;
}

static void print_cidrs(FILE *out, const char *key, const struct cidr *l, int n)
{
    fprintf(out, "%s = ", key);
    for (int i = 0; i < n; i++) {
        char a[64];
        inet_ntop(l[i].family, l[i].addr, a, sizeof(a));
        fprintf(out, "%s%s/%d", i ? "," : "", a, l[i].bits);
    }
    fprintf(out, "%s\n", n ? "" : "(any)");
}

void config_print(const struct config *c, FILE *out)
{
    fprintf(out,
            "[server]\nbind = %s\nlog-port = %d\nquery-port = %d\nirc-port = %d\n"
            "http-port = %d\ndata-dir = %s\nthreads = %d\nfsync = %s\n"
            "memory-limit = %zu\nmax-connections = %d\nidle-timeout = %d\n",
            c->bind_addr, c->log_port, c->query_port, c->irc_port, c->http_port, c->data_dir,
            c->threads,
            c->fsync_policy == 0   ? "always"
            : c->fsync_policy == 1 ? "batch"
                                   : "never",
            c->memory_limit, c->max_connections, c->idle_timeout_s);
    for (int i = 0; i < c->nlisten; i++)
        fprintf(out, "listen = %s%s%s:%d=%s%s\n", strchr(c->listen[i].addr, ':') ? "[" : "",
                c->listen[i].addr, strchr(c->listen[i].addr, ':') ? "]" : "", c->listen[i].port,
                c->listen[i].role, c->listen[i].tls ? "+tls" : "");
    if (c->tls_cert)
        fprintf(out, "tls-cert = %s\ntls-key = %s\n", c->tls_cert, c->tls_key);
    for (int r = 0; r < ROLE_COUNT; r++) {
        const struct policy *p = &c->policy[r];
        fprintf(out, "\n[%s]\n", role_names[r]);
        print_cidrs(out, "allow", p->allow, p->nallow);
        if (p->ndeny)
            print_cidrs(out, "deny", p->deny, p->ndeny);
        fprintf(out,
                "auth = %s%s\ntokens = %d configured\nconn-rate = %g\n"
                "max-conns-per-ip = %d\nmax-conns = %d\n",
                p->auth ? "on" : "off",
                p->auth && !p->ntokens ? " (no token: this role listens on loopback only)" : "",
                p->ntokens, p->conn_rate, p->max_conns_per_ip, p->max_conns);
        if (r == ROLE_LOG)
            fprintf(out, "line-rate = %g\n", p->line_rate);
    }
}

/* Set one option (o from the option table) to arg. Returns 0, -1 after printing why not, or 1
 * when --help or --version was printed. */
static int apply(struct config *c, int o, const char *optarg)
{
    size_t sz;
    int r = 0;
    if (o >= OPT_POLICY && o < OPT_POLICY + ROLE_COUNT * PK_COUNT)
        return set_policy(c, (o - OPT_POLICY) / PK_COUNT, (o - OPT_POLICY) % PK_COUNT, optarg);
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
    case OPT_IRC_PASS: /* The older name of --irc-token. */
        c->irc_password = optarg;
        r = set_policy(c, ROLE_IRC, PK_TOKEN, optarg);
        break;
    case OPT_FSYNC:
        if (strcmp(optarg, "always") == 0)
            c->fsync_policy = 0;
        else if (strcmp(optarg, "batch") == 0)
            c->fsync_policy = 1;
        else if (strcmp(optarg, "never") == 0)
            c->fsync_policy = 2;
        else {
            fprintf(stderr, "logcasterd: --fsync takes always, batch or never, not '%s'\n", optarg);
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
    case OPT_ARCHIVE_LEVEL:
        r = parse_int("archive-level", optarg, 0, 19, &c->archive_level);
        break;
    case OPT_RET_SIZE:
    case OPT_RET_FREE:
        r = parse_size_opt(o == OPT_RET_SIZE ? "retention-size" : "retention-min-free", optarg, 0,
                           &sz);
        if (!r)
            *(o == OPT_RET_SIZE ? &c->retention_size : &c->retention_min_free) = sz;
        break;
    case OPT_RET_AGE:
        if (parse_age(optarg, &c->retention_age_ms) < 0) {
            fprintf(stderr, "logcasterd: invalid --retention-age '%s' (e.g. 7d, 12h, 0)\n", optarg);
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
    case OPT_CONFIG:
        c->config_file = optarg;
        break;
    case OPT_LINE_TIMEOUT:
        r = parse_int("line-timeout", optarg, 0, 86400, &c->line_timeout_s);
        break;
    case OPT_MULTILINE:
        c->multiline = true;
        break;
    case OPT_MULTILINE_PATTERN: {
        int code;
        PCRE2_SIZE at;
        pcre2_code *re =
            pcre2_compile((PCRE2_SPTR)optarg, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &at, NULL);
        if (!re) {
            PCRE2_UCHAR why[160];
            pcre2_get_error_message(code, why, sizeof(why));
            fprintf(stderr, "logcasterd: --multiline-pattern: %s at offset %zu\n", (char *)why,
                    (size_t)at);
            r = -1;
            break;
        }
        pcre2_code_free(re);
        c->multiline = true;
        c->multiline_pattern = optarg;
        break;
    }
    case OPT_MULTILINE_WINDOW:
        r = parse_int("multiline-window", optarg, 1, 60000, &c->multiline_window_ms);
        break;
    case OPT_TLS_CERT:
        c->tls_cert = optarg;
        break;
    case OPT_TLS_KEY:
        c->tls_key = optarg;
        break;
    case OPT_CHECK_CONFIG:
        c->check_config = true;
        break;
    default:
        return -1;
    }
    return r ? -1 : 0;
}

int config_parse(struct config *c, int argc, char **argv)
{
    const struct option *opts = all_opts();
    /* --config first, so that flags override the file whatever their order. */
    optind = 1;
    opterr = 0;
    for (;;) {
        int o = getopt_long(argc, argv, ":vqh", opts, NULL);
        if (o == -1)
            break;
        if (o == OPT_CONFIG)
            c->config_file = optarg;
    }
    if (c->config_file && config_load_file(c, c->config_file) < 0)
        return -1;
    optind = 1;
    bool flagged[ROLE_COUNT][PK_COUNT] = {{false}};
    for (;;) {
        int o = getopt_long(argc, argv, ":vqh", opts, NULL);
        if (o == -1)
            break;
        /* A list given by flags replaces the file's list rather than adding to it. */
        int pk = o == OPT_IRC_PASS ? ROLE_IRC * PK_COUNT + PK_TOKEN
                 : o >= OPT_POLICY && o < OPT_POLICY + ROLE_COUNT * PK_COUNT ? o - OPT_POLICY
                                                                             : -1;
        if (pk >= 0 &&
            (pk % PK_COUNT == PK_ALLOW || pk % PK_COUNT == PK_DENY || pk % PK_COUNT == PK_TOKEN) &&
            !flagged[pk / PK_COUNT][pk % PK_COUNT]) {
            struct policy *p = &c->policy[pk / PK_COUNT];
            if (pk % PK_COUNT == PK_ALLOW)
                p->nallow = 0;
            else if (pk % PK_COUNT == PK_DENY)
                p->ndeny = 0;
            else
                p->ntokens = 0;
            flagged[pk / PK_COUNT][pk % PK_COUNT] = true;
        }
        if (o == ':') {
            fprintf(stderr, "logcasterd: option '%s' needs a value (see --help)\n",
                    argv[optind - 1]);
            return -1;
        }
        if (o == '?') {
            fprintf(stderr, "logcasterd: unknown option '%s' (see --help)\n", argv[optind - 1]);
            return -1;
        }
        int r = apply(c, o, optarg);
        if (r)
            return r;
    }
    if (optind < argc) {
        fprintf(stderr, "logcasterd: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    if (!c->tls_cert != !c->tls_key) {
        fprintf(stderr, "logcasterd: --tls-cert and --tls-key go together\n");
        return -1;
    }
    for (int i = 0; i < c->nlisten; i++) {
        if (c->listen[i].tls && !c->tls_cert) {
            fprintf(stderr, "logcasterd: --listen ...+tls needs --tls-cert and --tls-key\n");
            return -1;
        }
    }
    return 0;
}
