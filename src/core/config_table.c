/* config_table.c - every option of logcasterd, once: flag and INI key, type, field, default,
 * range and help text (see config_table.h for the columns). The flags, the configuration
 * file, the defaults, --help and --check-config all come from this table; to add an option,
 * add a row here (and a line to man/logcasterd.8, which tests/integration/test_options.py
 * compares with --help). A few options need their own reader or printer; those are below,
 * before the table, and the rules that tie options together come after it. */
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "core/config_table.h"
#include "core/log.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

const char *const config_role_names[ROLE_COUNT] = {"log", "query", "irc", "http"};

/* ------------------------------------------------------------------------------------------ */
/* Options with their own reader or printer. */

/* ADDR:PORT=ROLE, with [v6addr]:PORT for IPv6, and +tls after the role. */
static int set_listen(struct config *c, const struct opt *o, int role, const char *arg)
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

static void print_listen(const struct config *c, const struct opt *o, int role, FILE *out)
{
    for (int i = 0; i < c->nlisten; i++) {
        const struct listen_extra *l = &c->listen[i];
        bool v6 = strchr(l->addr, ':') != NULL;
        fprintf(out, "%s = %s%s%s:%d=%s%s\n", o->name, v6 ? "[" : "", l->addr, v6 ? "]" : "",
                l->port, l->role, l->tls ? "+tls" : "");
    }
    if (!c->nlisten)
        fprintf(out, "%s = (none)\n", o->name);
}

/* The name prefixes every IRC message, so it must be one word IRC can carry. */
static int set_irc_name(struct config *c, const struct opt *o, int role, const char *v)
{
    if (!*v || strlen(v) > 63 || strpbrk(v, " :!@,\r\n")) {
        fprintf(stderr,
                "logcasterd: invalid --%s '%s' (1 to 63 characters, without spaces or any of "
                ":!@,)\n",
                o->name, v);
        return -1;
    }
    c->irc_server_name = v;
    return 0;
}

/* Compiled here once so that a bad pattern is a start-up error, not a surprise per line. */
static int set_multiline_pattern(struct config *c, const struct opt *o, int role, const char *v)
{
    int code;
    PCRE2_SIZE at;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)v, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &at, NULL);
    if (!re) {
        PCRE2_UCHAR why[160];
        pcre2_get_error_message(code, why, sizeof(why));
        fprintf(stderr, "logcasterd: --%s: %s at offset %zu\n", o->name, (char *)why, (size_t)at);
        return -1;
    }
    pcre2_code_free(re);
    c->multiline = true; /* A pattern implies --multiline. */
    c->multiline_pattern = v;
    return 0;
}

/* NAME:PASSWORD, both parts non-empty: a typo is a start-up error, not a silent lock-out. */
static int set_irc_oper(struct config *c, const struct opt *o, int role, const char *v)
{
    const char *colon = strchr(v, ':');
    if (!colon || colon == v || !colon[1] || strchr(v, ' ')) {
        fprintf(stderr, "logcasterd: --%s: expected NAME:PASSWORD, got '%s'\n", o->name, v);
        return -1;
    }
    c->irc_oper = v;
    return 0;
}

/* The password is a secret: --check-config shows the name only, as it does for tokens. */
static void print_irc_oper(const struct config *c, const struct opt *o, int role, FILE *out)
{
    if (!c->irc_oper)
        fprintf(out, "%s = (none)\n", o->name);
    else
        fprintf(out, "%s = %.*s (password not shown)\n", o->name,
                (int)(strchr(c->irc_oper, ':') - c->irc_oper), c->irc_oper);
}

/* The default node name: the host name, which is unique and stable on most networks. */
static void init_node_name(struct config *c)
{
    static char host[256];
    if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
        snprintf(host, sizeof(host), "node");
    host[64] = 0;
    for (char *p = host; *p; p++) /* "web1.example.com" -> "web1-example-com" */
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", *p))
            *p = '-';
    c->node_name = host;
}

/* Names go into NATS subjects and keys: letters, digits, '-' and '_' only. */
static int check_name(const struct opt *o, const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > 64 ||
        strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                  "0123456789-_") != n) {
        fprintf(stderr,
                "logcasterd: --%s: '%s' is not a name (1 to 64 letters, digits, '-' or '_')\n",
                o->name, v);
        return -1;
    }
    return 0;
}

static int set_node_name(struct config *c, const struct opt *o, int role, const char *v)
{
    if (check_name(o, v) < 0)
        return -1;
    c->node_name = v;
    return 0;
}

static int set_cluster_name(struct config *c, const struct opt *o, int role, const char *v)
{
    if (check_name(o, v) < 0)
        return -1;
    c->cluster_name = v;
    return 0;
}

static void print_secret(const struct config *c, const struct opt *o, int role, FILE *out)
{
    fprintf(out, "%s = %s\n", o->name, c->cluster_password ? "(not shown)" : "(none)");
}

/* BACK[,AHEAD]: one value is a window both ways; logs replayed from files are old, a clock
 * far ahead is rare, so the default (30d,1h) differs by direction. */
static int set_time_window(struct config *c, const struct opt *o, int role, const char *v)
{
    char back[32];
    const char *comma = strchr(v, ',');
    size_t bl = comma ? (size_t)(comma - v) : strlen(v);
    int64_t b = -1, a = -1;
    if (bl > 0 && bl < sizeof(back)) {
        memcpy(back, v, bl);
        back[bl] = 0;
        if (config_parse_age(back, &b) < 0 || config_parse_age(comma ? comma + 1 : back, &a) < 0)
            b = -1;
    }
    if (b < 0) {
        fprintf(stderr, "logcasterd: invalid --%s '%s' (BACK[,AHEAD], e.g. 30d,1h or 2h)\n",
                o->name, v);
        return -1;
    }
    c->time_back_ms = b;
    c->time_ahead_ms = a;
    return 0;
}

static void print_time_window(const struct config *c, const struct opt *o, int role, FILE *out)
{
    char b[32], a[32];
    fprintf(out, "%s = %s,%s\n", o->name, config_fmt_age(c->time_back_ms, b, sizeof(b)),
            config_fmt_age(c->time_ahead_ms, a, sizeof(a)));
}

static void init_threads(struct config *c)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    c->threads = cpus > 0 ? (int)cpus : 1;
    c->query_threads = c->threads;
}

/* A quarter of the memory the server may use: the machine's, or its cgroup's limit when that
 * is lower (a container); at least 128 MiB. */
static void init_memory(struct config *c)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t ram = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    static const char *const limits[] = {"/sys/fs/cgroup/memory.max",
                                         "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        FILE *f = fopen(limits[i], "re");
        unsigned long long v;
        if (f && fscanf(f, "%llu", &v) == 1 && v > 0 && (ram == 0 || v < ram))
            ram = v; /* "max" (no limit) does not scan. */
        if (f)
            fclose(f);
    }
    uint64_t quarter = ram / 4 / (1u << 20) * (1u << 20); /* Whole MiB: it prints so. */
    uint64_t least = 128u << 20;
    c->memory_limit = (size_t)(quarter > least ? quarter : least);
}

static void init_verbosity(struct config *c)
{
    c->verbosity = LOGV_INFO;
}

/* -v and -q (in the file "verbose = yes"; "no" leaves the level alone, as no -v does). */
static int set_verbose(struct config *c, const struct opt *o, int role, const char *v)
{
    if (o->short_name == 'q')
        c->verbosity = LOGV_ERROR;
    else if (c->verbosity < LOGV_DEBUG)
        c->verbosity++;
    return 0;
}

static void print_verbose(const struct config *c, const struct opt *o, int role, FILE *out)
{
    if (o->short_name == 'q')
        fprintf(out, "%s = %s\n", o->name, c->verbosity == LOGV_ERROR ? "yes" : "no");
    else
        fprintf(out, "%s = %s\n", o->name, c->verbosity > LOGV_INFO ? "yes" : "no");
}

static int set_help(struct config *c, const struct opt *o, int role, const char *v)
{
    config_usage(stdout);
    return 1;
}

static int set_version(struct config *c, const struct opt *o, int role, const char *v)
{
    printf("logcasterd %s\n", LC_VERSION);
    return 1;
}

/* auth = on says what it means when the role has no secret to check. */
static void print_auth(const struct config *c, const struct opt *o, int role, FILE *out)
{
    const struct policy *p = &c->policy[role];
    fprintf(out, "%s = %s%s\n", o->name, p->auth ? "on" : "off",
            p->auth && !p->ntokens ? " (no token: this role listens on loopback only)" : "");
}

/* ------------------------------------------------------------------------------------------ */
/* The table. */

#define CFG(f) .off = offsetof(struct config, f), .size = sizeof(((struct config *)0)->f)
#define POLF(f, fl)                                                                                \
    .flags = OPTF_ROLE | (fl), .off = offsetof(struct policy, f),                                  \
    .size = sizeof(((struct policy *)0)->f)
#define POL(f)      POLF(f, 0)
#define RANGE(a, b) .lo = (a), .hi = (b)
#define KIB         1024LL
#define MIB         (1024LL * 1024)

static const struct opt_choice fsync_choices[] = {
    {"always", 0}, {"batch", 1}, {"never", 2}, {NULL, 0}};
/* The values are store/frame.h's FRAME_LZ4 and FRAME_ZSTD. */
static const struct opt_choice codec_choices[] = {{"lz4", 2}, {"zstd", 1}, {NULL, 0}};
static const struct opt_choice auth_choices[] = {{"on", 1}, {"off", 0}, {NULL, 0}};

const struct opt config_opts[] = {
    /* Listeners. */
    {"bind", .type = OPT_STRING, CFG(bind_addr), .arg = "ADDR", .def = {"0.0.0.0"},
     .group = "Listeners (port 0 picks a free port; a negative port disables the listener):",
     .help = "address to listen on; IPv6 like ::1 works"},
    {"log-port", .type = OPT_INT, CFG(log_port), .arg = "N", .def = {"9999"}, RANGE(-1, 65535),
     .help = "log ingest port, TCP and UDP"},
    {"query-port", .type = OPT_INT, CFG(query_port), .arg = "N", .def = {"9998"}, RANGE(-1, 65535),
     .help = "query port"},
    {"irc-port", .type = OPT_INT, CFG(irc_port), .arg = "N", .def = {"6667"}, RANGE(-1, 65535),
     .help = "IRC server port"},
    {"http-port", .type = OPT_INT, CFG(http_port), .arg = "N", .def = {"8080"}, RANGE(-1, 65535),
     .help = "HTTP API and web console port"},
    {"listen", .type = OPT_CUSTOM, .arg = "ADDR:PORT=ROLE", .set = set_listen,
     .print = print_listen,
     .help = "an extra listener; ROLE is auto, log, query, irc or http (repeatable, up to 4; "
             "[::1]:7000=auto for IPv6). Every listener detects HTTP, IRC and the binary "
             "protocol from the first bytes; other input gets the ROLE (auto: log lines). "
             "ROLE+tls accepts TLS only, e.g. 0.0.0.0:6697=irc+tls"},
    {"tls-cert", .type = OPT_STRING, CFG(tls_cert), .arg = "FILE", .empty = "(none)",
     .help = "PEM certificate chain: with --tls-key, every listener also speaks TLS 1.2/1.3 "
             "(recognised by the handshake)"},
    {"tls-key", .type = OPT_STRING, CFG(tls_key), .arg = "FILE", .empty = "(none)",
     .help = "PEM private key of --tls-cert"},
    {"http-max-body", .type = OPT_SIZE, CFG(http_max_body), .arg = "SIZE", .def = {"64M"},
     RANGE(1 * KIB, 0), .help = "largest HTTP request body"},
    {"http-max-header", .type = OPT_SIZE, CFG(http_max_header), .arg = "SIZE", .def = {"16K"},
     RANGE(1 * KIB, 1 * MIB), .help = "largest HTTP request line plus headers"},
    {"http-request-timeout", .type = OPT_INT, CFG(http_request_timeout_s), .arg = "SEC",
     .def = {"10"}, RANGE(1, 3600), .help = "a request must arrive whole within this"},
    {"irc-server-name", .type = OPT_STRING, CFG(irc_server_name), .arg = "NAME",
     .def = {"logcaster.local"}, .set = set_irc_name, .help = "the IRC server's name"},
    {"irc-password", .type = OPT_ALIAS, .arg = "PASS", .alias_of = "irc-token",
     .help = "IRC clients must send PASS first (the older name of --irc-token; default: none)"},
    {"irc-stream-rate", .type = OPT_INT, CFG(irc_stream_rate), .arg = "N", .def = {"200"},
     RANGE(1, 1000000),
     .help = "log lines per second per IRC log channel; beyond, LogBot counts suppressed lines"},
    {"irc-replay", .type = OPT_INT, CFG(irc_replay), .arg = "N", .def = {"10"}, RANGE(0, 1000),
     .help = "entries replayed on joining a log channel"},
    {"irc-log-channels", .type = OPT_ENUM, CFG(irc_log_channels), .arg = "on|off",
     .choices = auth_choices, .def = {"on"},
     .help = "the #logs-* channels and LogBot; off gives a plain IRC server (conformance runs)"},
    {"irc-oper", .type = OPT_STRING, CFG(irc_oper), .arg = "NAME:PASSWORD", .set = set_irc_oper,
     .print = print_irc_oper,
     .help = "an IRC operator: OPER NAME PASSWORD gives +o, for KILL and WALLOPS (default: none)"},

    /* Access, one policy per role. */
    {"allow", .type = OPT_CIDRS, POL(allow), .count_off = offsetof(struct policy, nallow),
     .arg = "CIDRS", .empty = "(any)",
     .group = "Access (ROLE is log, query, irc or http; each applies to that role's listeners):",
     .help = "only these sources may connect (comma-separated, e.g. 10.0.0.0/8,::1; "
             "default: any)"},
    {"deny", .type = OPT_CIDRS, POL(deny), .count_off = offsetof(struct policy, ndeny),
     .arg = "CIDRS", .empty = "(none)", .help = "these sources may not connect"},
    {"token", .type = OPT_TOKENS, POL(tokens), .arg = "SECRET",
     .help = "a secret clients authenticate with (repeatable, up to 4): AUTH <secret> on the "
             "log and query ports, PASS on IRC, Authorization: Bearer <secret> on HTTP"},
    {"auth", .type = OPT_ENUM, POL(auth), .arg = "on|off", .choices = auth_choices,
     .def = {"off", "on", "on", "on"}, .print = print_auth,
     .help = "require authentication; on without a token means: listen on loopback only"},
    {"conn-rate", .type = OPT_RATE, POL(conn_rate), .arg = "N", .def = {"100", "100", "20", "200"},
     .help = "new connections per second per source address, 0 = no limit"},
    {"conn-burst", .type = OPT_INT, POL(conn_burst), .arg = "N", .def = {"2000", "0", "0", "0"},
     RANGE(0, 10000000),
     .help = "new connections a source address may open at once, before --ROLE-conn-rate "
             "applies (the size of its token bucket); 0 = the rate, as for a --ROLE-conn-rate "
             "given without --ROLE-conn-burst"},
    {"max-conns-per-ip", .type = OPT_INT, POL(max_conns_per_ip), .arg = "N", .def = {"0"},
     RANGE(0, 10000000), .help = "concurrent connections per source address, 0 = no limit"},
    {"max-conns", .type = OPT_INT, POL(max_conns), .arg = "N", .def = {"0"}, RANGE(0, 10000000),
     .help = "concurrent connections on the role, 0 = no limit"},
    {"line-rate", .type = OPT_RATE, POLF(line_rate, OPTF_LOG_ONLY), .arg = "N", .def = {"0"},
     .help = "lines per second per ingest connection, 0 = no limit; a faster sender is slowed "
             "down, nothing is dropped"},

    /* The configuration file. */
    {"config", .type = OPT_STRING, CFG(config_file), .flags = OPTF_CLI_ONLY | OPTF_FIRST,
     .arg = "FILE", .group = "Configuration:",
     .help = "read settings from an INI file first (keys are these options' names; [log], "
             "[query], [irc], [http] sections for access); flags override it"},
    {"check-config", .type = OPT_BOOL, CFG(check_config), .flags = OPTF_CLI_ONLY,
     .help = "validate the configuration, print every setting, and exit"},

    /* Storage. */
    {"data-dir", .type = OPT_STRING, CFG(data_dir), .arg = "DIR", .def = {"./data"},
     .group = "Storage:", .help = "data directory, created if missing"},
    {"memory-limit", .type = OPT_SIZE, CFG(memory_limit), .arg = "SIZE", .init = init_memory,
     .def_text = "a quarter of RAM, at least 128M", RANGE(4 * MIB, 0),
     .help = "memory for recent and recently read log data (the block cache; K, M, G "
             "suffixes)"},
    {"fsync", .type = OPT_ENUM, CFG(fsync_policy), .arg = "POLICY", .choices = fsync_choices,
     .def = {"batch"},
     .help = "always: acknowledge after the fsync that covers the line; batch: acknowledge once "
             "written, fsync every --fsync-interval; never: acknowledge once written, leave "
             "syncing to the OS"},
    {"fsync-interval", .type = OPT_INT, CFG(fsync_interval_ms), .arg = "MS", .def = {"50"},
     RANGE(1, 60000), .help = "longest wait for the fsync of --fsync=batch"},
    {"segment-size", .type = OPT_SIZE, CFG(segment_size), .arg = "SIZE", .def = {"64M"},
     RANGE(1 * MIB, 0), .help = "seal a segment file at this size"},
    {"codec", .type = OPT_ENUM, CFG(codec), .arg = "CODEC", .choices = codec_choices,
     .def = {"lz4"},
     .help = "compression of stored blocks: lz4 (scans decompress about 3 times as fast) or "
             "zstd (about a third smaller)"},
    {"compression-level", .type = OPT_INT, CFG(compression_level), .arg = "N", .def = {"1"},
     RANGE(0, 19), .help = "level for new blocks (lz4: 1-2 fast, 3-12 LZ4HC), 0 = none"},
    {"archive-level", .type = OPT_INT, CFG(archive_level), .arg = "N", .def = {"16"}, RANGE(0, 19),
     .help = "re-compress sealed segments at this level (lz4: 12 at most), 0 = no"},
    {"retention-size", .type = OPT_SIZE, CFG(retention_size), .arg = "SIZE", .def = {"0"},
     RANGE(0, 0), .help = "delete the oldest segments beyond this total, 0 = no limit"},
    {"retention-age", .type = OPT_AGE, CFG(retention_age_ms), .arg = "AGE", .def = {"0"},
     .help = "delete segments older than this (e.g. 7d, 12h), 0 = forever"},
    {"retention-min-free", .type = OPT_SIZE, CFG(retention_min_free), .arg = "SIZE",
     .def = {"256M"}, RANGE(0, 0),
     .help = "keep this much disk free: delete the oldest segments, then refuse writes"},
    {"max-line", .type = OPT_SIZE, CFG(max_line), .arg = "SIZE", .def = {"64K"},
     RANGE(64, 64 * MIB),
     .help = "longest line accepted; longer plain lines are stored truncated and flagged, "
             "longer framed lines refused"},
    {"multiline", .type = OPT_BOOL, CFG(multiline),
     .help = "join continuation lines (starting with a space or tab) of plain text to the entry "
             "before them, per connection: stack traces become one entry (default: off)"},
    {"multiline-pattern", .type = OPT_STRING, CFG(multiline_pattern), .arg = "REGEX",
     .empty = "(none)", .set = set_multiline_pattern,
     .help = "PCRE2 pattern for more continuation lines, e.g. '^(Caused by:|\\s)'; implies "
             "--multiline"},
    {"multiline-window", .type = OPT_INT, CFG(multiline_window_ms), .arg = "MS", .def = {"500"},
     RANGE(1, 60000),
     .help = "a continuation joins only if it arrives within this after the line before it"},

    {"time-from-line", .type = OPT_ENUM, CFG(time_from_line), .arg = "on|off",
     .choices = auth_choices, .def = {"on"},
     .help = "a message without a time of its own (plain text, LOG| with '-', syslog or JSON "
             "without one) takes the timestamp its text starts with (ISO 8601, BSD syslog, "
             "common log format, epoch seconds or milliseconds; no zone: UTC); off: the "
             "arrival time. The text is stored unchanged"},
    {"time-window", .type = OPT_CUSTOM, .arg = "BACK[,AHEAD]", .def = {"30d,1h"},
     .set = set_time_window, .print = print_time_window,
     .help = "a time read from the text counts only within BACK before and AHEAD after the "
             "arrival (one value: both ways); else the arrival time"},

    /* Connections. */
    {"query-threads", .type = OPT_INT, CFG(query_threads), .arg = "N", .init = init_threads,
     .def_text = "cores", RANGE(1, 256), .group = "Queries:",
     .help = "threads that run queries (every front end's), so no connection waits for a scan"},
    {"query-concurrency", .type = OPT_INT, CFG(query_concurrency), .arg = "N", .def = {"16"},
     RANGE(1, 4096), .help = "queries running at once; later ones wait in line"},
    {"query-timeout", .type = OPT_AGE, CFG(query_timeout_ms), .arg = "AGE", .def = {"30s"},
     .help = "a query still running after this ends with an error (500ms, 30s, 5m; 0: never)"},
    {"query-memory", .type = OPT_SIZE, CFG(query_memory), .arg = "SIZE", .def = {"256M"},
     RANGE(1 * MIB, 0),
     .help = "memory one query's pipes (stats, sort, ...) may use; past it the query ends with "
             "an error"},
    {"threads", .type = OPT_INT, CFG(threads), .arg = "N", .init = init_threads,
     .def_text = "cores", RANGE(1, 256),
     .group = "Connections:", .help = "reactor threads, each with its own epoll loop"},
    {"max-connections", .type = OPT_INT, CFG(max_connections), .arg = "N", .def = {"10000"},
     RANGE(1, 1000000),
     .help = "open connections across all ports; more are accepted and closed at once"},
    {"idle-timeout", .type = OPT_INT, CFG(idle_timeout_s), .arg = "SEC", .def = {"300"},
     RANGE(0, 86400 * 365), .help = "close connections idle this long, 0 = never"},
    {"line-timeout", .type = OPT_INT, CFG(line_timeout_s), .arg = "SEC", .def = {"60"},
     RANGE(0, 86400),
     .help = "close a connection whose started line (or command) is not complete within this, "
             "0 = never (slowloris)"},
    {"out-limit", .type = OPT_SIZE, CFG(out_limit), .arg = "SIZE", .def = {"1M"}, RANGE(4 * KIB, 0),
     .help = "unsent reply bytes per connection before its reading pauses"},
    {"backlog", .type = OPT_INT, CFG(backlog), .arg = "N", .def = {"1024"}, RANGE(1, 65535),
     .help = "listen backlog"},
    {"reuseport", .type = OPT_BOOL, CFG(reuseport),
     .help = "set SO_REUSEPORT so several servers can share the ports"},
    {"keepalive-idle", .type = OPT_INT, CFG(keepalive_idle_s), .arg = "SEC", .def = {"60"},
     RANGE(0, 32767), .help = "TCP keepalive idle time, 0 disables keepalive"},
    {"keepalive-interval", .type = OPT_INT, CFG(keepalive_interval_s), .arg = "SEC", .def = {"10"},
     RANGE(1, 32767), .help = "TCP keepalive probe interval"},
    {"keepalive-count", .type = OPT_INT, CFG(keepalive_count), .arg = "N", .def = {"6"},
     RANGE(1, 127), .help = "TCP keepalive probes before the peer is dead"},
    {"user-timeout", .type = OPT_INT, CFG(user_timeout_ms), .arg = "MS", .def = {"30000"},
     RANGE(0, INT_MAX), .help = "TCP_USER_TIMEOUT for unacknowledged data, 0 = kernel default"},
    {"rcvbuf", .type = OPT_SIZE, CFG(rcvbuf), .arg = "SIZE", .def = {"0"}, RANGE(0, INT_MAX / 2),
     .help = "SO_RCVBUF for connections, 0 = kernel autotuning"},
    {"sndbuf", .type = OPT_SIZE, CFG(sndbuf), .arg = "SIZE", .def = {"0"}, RANGE(0, INT_MAX / 2),
     .help = "SO_SNDBUF for connections, 0 = kernel autotuning"},
    {"shutdown-timeout", .type = OPT_INT, CFG(shutdown_timeout_s), .arg = "SEC", .def = {"5"},
     RANGE(0, 3600), .help = "longest flush on SIGINT/SIGTERM"},

    /* Cluster. */
    {"cluster", .type = OPT_STRING, CFG(cluster_urls), .arg = "URLS", .empty = "(none)",
     .group = "Cluster:",
     .help = "join a cluster: the NATS JetStream servers, comma-separated "
             "(nats://h1:4222,nats://h2:4222); without it this is a single node"},
    {"node-name", .type = OPT_STRING, CFG(node_name), .arg = "NAME", .init = init_node_name,
     .def_text = "the host name", .set = set_node_name,
     .help = "this node's name in the cluster: unique, and the same after a restart"},
    {"cluster-name", .type = OPT_STRING, CFG(cluster_name), .arg = "NAME", .def = {"logcaster"},
     .set = set_cluster_name,
     .help = "prefix of the cluster's streams, buckets and subjects, so several clusters can "
             "share one NATS"},
    {"cluster-partitions", .type = OPT_INT, CFG(cluster_partitions), .arg = "N", .def = {"8"},
     RANGE(1, 255),
     .help = "partitions the data is split into, one JetStream stream each; fixed when the "
             "cluster is first created"},
    {"cluster-replicas", .type = OPT_INT, CFG(cluster_replicas), .arg = "N", .def = {"3"},
     RANGE(1, 5),
     .help = "JetStream copies of every stream (a line is acknowledged once a "
             "majority of them has it)"},
    {"cluster-copies", .type = OPT_INT, CFG(cluster_copies), .arg = "N", .def = {"2"}, RANGE(1, 16),
     .help = "nodes that keep each partition queryable in their own store"},
    {"cluster-ack-timeout", .type = OPT_AGE, CFG(cluster_ack_timeout_ms), .arg = "AGE",
     .def = {"10s"},
     .help = "a batch JetStream has not confirmed within this is answered with an error"},
    {"cluster-missing-wait", .type = OPT_AGE, CFG(cluster_missing_wait_ms), .arg = "AGE",
     .def = {"5m"},
     .help = "how long a new, empty copy waits for another copy to give it what its stream "
             "let go before it begins without that (0: for ever)"},
    {"cluster-creds", .type = OPT_STRING, CFG(cluster_creds), .arg = "FILE", .empty = "(none)",
     .help = "NATS credentials file (user JWT and NKey seed)"},
    {"cluster-user", .type = OPT_STRING, CFG(cluster_user), .arg = "USER", .empty = "(none)",
     .help = "NATS user name (with --cluster-password)"},
    {"cluster-password", .type = OPT_STRING, CFG(cluster_password), .arg = "PASSWORD",
     .empty = "(none)", .print = print_secret, .help = "NATS password"},
    {"cluster-tls-ca", .type = OPT_STRING, CFG(cluster_tls_ca), .arg = "FILE", .empty = "(none)",
     .help = "CA certificates (PEM) NATS servers are verified with; implies TLS"},
    {"cluster-tls-cert", .type = OPT_STRING, CFG(cluster_tls_cert), .arg = "FILE",
     .empty = "(none)", .help = "client certificate (PEM) for NATS, with --cluster-tls-key"},
    {"cluster-tls-key", .type = OPT_STRING, CFG(cluster_tls_key), .arg = "FILE", .empty = "(none)",
     .help = "the client certificate's private key (PEM)"},

    /* Other. */
    {"verbose", 'v', .type = OPT_CUSTOM, .set = set_verbose, .print = print_verbose,
     .init = init_verbosity, .group = "Other:", .help = "more diagnostics on stderr (repeatable)"},
    {"quiet", 'q', .type = OPT_CUSTOM, .set = set_verbose, .print = print_verbose,
     .help = "only errors on stderr"},
    {"help", 'h', .type = OPT_CUSTOM, .flags = OPTF_CLI_ONLY, .set = set_help,
     .help = "show this help"},
    {"version", .type = OPT_CUSTOM, .flags = OPTF_CLI_ONLY, .set = set_version,
     .help = "show the version"},
};
const size_t config_nopts = sizeof(config_opts) / sizeof(config_opts[0]);
_Static_assert(sizeof(config_opts) / sizeof(config_opts[0]) <= CONFIG_MAX_OPTS,
               "raise CONFIG_MAX_OPTS (config.h): struct config keeps a byte per option");

const char config_usage_head[] = "Usage: logcasterd [OPTION]...\n"
                                 "Collect log lines over TCP and answer queries about them.\n";
const char config_usage_tail[] = "At start-up one line per listener is printed on stdout, e.g.\n"
                                 "  listening log 127.0.0.1:9999\n";

/* ------------------------------------------------------------------------------------------ */
/* Rules across options. */

int config_table_check(struct config *c)
{
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
    if (!c->cluster_tls_cert != !c->cluster_tls_key) {
        fprintf(stderr, "logcasterd: --cluster-tls-cert and --cluster-tls-key go together\n");
        return -1;
    }
    if (!c->cluster_user != !c->cluster_password) {
        fprintf(stderr, "logcasterd: --cluster-user and --cluster-password go together\n");
        return -1;
    }
    /* The log role's default burst belongs to its default rate: a rate someone chose keeps
     * the meaning it always had (a burst of the rate) unless they chose a burst too, so no
     * configured policy loosens with this default. */
    const struct opt *rate = config_find("conn-rate"), *burst = config_find("conn-burst");
    for (int r = 0; r < ROLE_COUNT; r++)
        if (config_given(c, rate, r) && !config_given(c, burst, r))
            c->policy[r].conn_burst = 0;
    return 0;
}
