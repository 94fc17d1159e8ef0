/* main.c - the `logcaster` command-line client: global options and subcommand dispatch.
 *
 * The client stands alone: it needs only libc, not the server library, so it builds and
 * runs while the server is still being written. Each subcommand lives in its own file
 * (send.c, query.c, bench.c) and is found in the table below; the global options may come
 * before the subcommand or among its own options. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/bench.h"
#include "client/bench_irc.h"
#include "client/cli.h"
#include "client/query.h"
#include "client/send.h"

static const struct command {
    const char *name;
    int (*run)(struct lcc_opts *o, int argc, char **argv);
    const char *help;
    const char *summary;
} commands[] = {
    {"send", lcc_cmd_send, lcc_send_help, "send lines from files or stdin (acknowledged)"},
    {"query", lcc_cmd_query, lcc_query_help, "search entries and print them"},
    {"tail", lcc_cmd_tail, lcc_tail_help, "follow new matching entries as they arrive"},
    {"count", lcc_cmd_count, lcc_count_help, "print how many entries match"},
    {"stats", lcc_cmd_stats, lcc_stats_help, "print server statistics"},
    {"cluster", lcc_cmd_cluster, lcc_cluster_help, "show a cluster node's view of the cluster"},
    {"ping", lcc_cmd_ping, lcc_ping_help, "check that the query port answers"},
    {"bench", lcc_cmd_bench, lcc_bench_help, "ingest load generator"},
    {"bench-query", lcc_cmd_bench_query, lcc_bench_query_help, "query latency benchmark"},
    {"bench-irc", lcc_cmd_bench_irc, lcc_bench_irc_help, "IRC log delivery benchmark"},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char global_help[] =
    "Global options (before or after the command):\n"
    "  --host H[:P]     server name or address, with the query port after ':' ([::1]:9998 for\n"
    "                   IPv6) (default 127.0.0.1; or $LOGCASTER_HOST)\n"
    "  --log-port N     ingest port (default 9999)\n"
    "  --query-port N   query port (default 9998)\n"
    "  --http-port N    HTTP port, for tail and query's text/json/logfmt output (default 8080)\n"
    "  --timeout SEC    connect timeout and longest wait for a reply (default 5)\n"
    "  --token T        authenticate: AUTH T on the query port, Authorization: Bearer T on\n"
    "                   HTTP (servers that require it; or $LOGCASTER_TOKEN)\n"
    "  --tls            query and HTTP connections over TLS, the certificate verified\n"
    "  --tls-ca FILE    trust the CA certificates in FILE (PEM); implies --tls\n"
    "  -h, --help       help; 'logcaster COMMAND --help' for a command\n";

static void print_main_help(FILE *f)
{
    fprintf(f, "usage: logcaster [global options] COMMAND [options] [args]\n\n"
               "Command-line client for the LogCaster log server.\n\nCommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-13s  %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n%s", global_help);
    fprintf(f, "\nExamples:\n"
               "  tail -F app.log | logcaster send --level INFO\n"
               "  logcaster query 'level:>=WARN since:15m timeout'\n"
               "  logcaster tail -n 20 'level:>=WARN host:web*'\n"
               "  logcaster count level:ERROR\n"
               "  logcaster bench --connections 4 --lines 2000000\n"
               "\nExit status: 0 success, 1 the server refused something or a check failed,\n"
               "2 the server could not be reached, 64 bad command line.\n");
}

void lcc_warn(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout); /* keep stdout and stderr in order on a terminal */
    fputs("logcaster: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int lcc_usage(const char *cmd, const char *msg, const char *arg)
{
    if (arg)
        fprintf(stderr, "logcaster%s%s: %s: '%s'\n", cmd ? " " : "", cmd ? cmd : "", msg, arg);
    else
        fprintf(stderr, "logcaster%s%s: %s\n", cmd ? " " : "", cmd ? cmd : "", msg);
    fprintf(stderr, "Try 'logcaster %s%s--help'.\n", cmd ? cmd : "", cmd ? " " : "");
    return LCC_EXIT_USAGE;
}

int lcc_common_opt(struct lcc_argp *p, struct lcc_opts *o, const char *cmd, const char *help)
{
    if (lcc_argp_flag(p, "-h") || lcc_argp_flag(p, "--help")) {
        fputs(help, stdout);
        fprintf(stdout, "\n%s", global_help);
        exit(LCC_EXIT_OK);
    }
    if (!lcc_argp_global(p, o))
        return 0;
    if (p->error) {
        lcc_usage(cmd, p->error, p->bad);
        return -1;
    }
    return 1;
}

int lcc_unknown_opt(const struct lcc_argp *p, const char *cmd)
{
    lcc_usage(cmd, "unknown option", p->arg);
    if (cmd &&
        (strcmp(cmd, "query") == 0 || strcmp(cmd, "count") == 0 || strcmp(cmd, "bench-query") == 0))
        fprintf(stderr, "(To search for a term that starts with '-', put '--' before the "
                        "expression.)\n");
    return LCC_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    struct lcc_opts o = {.host = "127.0.0.1",
                         .log_port = 9999,
                         .query_port = 9998,
                         .timeout_ms = 5000,
                         .http_port = 8080,
                         .token = getenv("LOGCASTER_TOKEN")};
    struct lcc_argp p;
    const char *env_host = getenv("LOGCASTER_HOST");

    if (o.token && !*o.token)
        o.token = NULL;
    if (env_host && *env_host) {
        static char host[256];
        if (lcc_split_host(env_host, host, sizeof(host), &o.query_port) < 0)
            return lcc_usage(NULL, "bad LOGCASTER_HOST (NAME, NAME:PORT or [IPV6]:PORT)", env_host);
        o.host = host;
    }

    /* SIGPIPE keeps its default: `logcaster query x | head` should end quietly when head
     * does. Socket writes use MSG_NOSIGNAL, so a dead server is an error code, not a
     * signal. */
    lcc_argp_init(&p, argc, argv, 1);
    while (lcc_argp_next(&p)) {
        if (!lcc_argp_is_opt(&p)) {
            if (strcmp(p.arg, "help") == 0) {
                if (p.i + 1 < argc)
                    for (size_t i = 0; i < NCOMMANDS; i++)
                        if (strcmp(argv[p.i + 1], commands[i].name) == 0) {
                            fputs(commands[i].help, stdout);
                            fprintf(stdout, "\n%s", global_help);
                            return LCC_EXIT_OK;
                        }
                print_main_help(stdout);
                return LCC_EXIT_OK;
            }
            for (size_t i = 0; i < NCOMMANDS; i++)
                if (strcmp(p.arg, commands[i].name) == 0)
                    return commands[i].run(&o, argc - p.i, argv + p.i);
            return lcc_usage(NULL, "unknown command", p.arg);
        }
        if (lcc_argp_flag(&p, "-h") || lcc_argp_flag(&p, "--help")) {
            print_main_help(stdout);
            return LCC_EXIT_OK;
        }
        if (lcc_argp_global(&p, &o)) {
            if (p.error)
                return lcc_usage(NULL, p.error, p.bad);
            continue;
        }
        return lcc_usage(NULL, "unknown option", p.arg);
    }
    print_main_help(stderr);
    return LCC_EXIT_USAGE;
}
