/* query.h - the query-port side of the client: a persistent connection and the query, count,
 * stats, ping and bench-query subcommands. */
#ifndef LCC_QUERY_H
#define LCC_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "client/output.h"
#include "client/util.h"

struct lcc_qconn;

/* Connect to the query port. Returns NULL with a sentence in err when the server cannot be
 * reached. o is borrowed for the life of the connection. */
struct lcc_qconn *lcc_qconn_open(const struct lcc_opts *o, char *err, size_t errlen);
void lcc_qconn_close(struct lcc_qconn *q); /* NULL is a no-op. */

/* Send "<cmd> <arg>\n" ("<cmd>\n" when arg is NULL or empty). Returns 0 or a negative errno;
 * -EINVAL if arg contains a line break, which would smuggle a second request. */
int lcc_qconn_send(struct lcc_qconn *q, const char *cmd, const char *arg);

/* Next reply line, borrowed until the next call. Returns 1, 0 if the server closed, or a
 * negative errno (-ETIMEDOUT after the --timeout without a byte). */
int lcc_qconn_line(struct lcc_qconn *q, char **line, size_t *len);

/* Run COUNT <expr>. Returns 0 with *n, 1 if the server answered ERROR (the line is copied to
 * err), or a negative errno with a sentence in err. */
int lcc_qconn_count(struct lcc_qconn *q, const char *expr, uint64_t *n, char *err, size_t errlen);

/* Run STATS and look for "<key> <value>" with a whole-number value. Returns 0 with *value,
 * 1 if the server does not report that key (or answered ERROR), or a negative errno with a
 * sentence in err. */
int lcc_qconn_stat(struct lcc_qconn *q, const char *key, uint64_t *value, char *err, size_t errlen);

/* The options of the commands that take an expression (query, count, tail, bench-query). */
struct lcc_qargs {
    bool raw;       /* --raw: print protocol lines verbatim (query: --output raw). */
    bool count;     /* --count (bench-query): run COUNT instead of SEARCH. */
    uint64_t runs;  /* --runs (bench-query). */
    bool need_expr; /* At least one positional argument (or a term option) is required. */
    bool no_expr;   /* No positional argument is allowed. */
    bool outputs;   /* Takes --output, --color and --utc. */
    bool terms;     /* Takes --since, --until (and --limit unless tail). */
    bool tail;      /* Takes -n. */
    struct lcc_output out;
    const char *since; /* --since: since:D for a duration, else from:T. */
    const char *until; /* --until: until:D for a duration, else to:T. */
    uint64_t limit;    /* --limit N: limit:N; 0 when not given. */
    uint64_t backfill; /* -n N (tail). */
    char *expr;        /* The joined positional arguments and the terms; malloc'd. */
};

/* Parse a subcommand's arguments (argv[0] is its name) into a, whose flags say which options
 * it takes; the output is resolved for stdout (a terminal, NO_COLOR). Returns 0, or the exit
 * code after printing why (the help exits 0 at once). */
int lcc_qargs_parse(struct lcc_opts *o, int argc, char **argv, const char *help,
                    struct lcc_qargs *a);

/* query's text, json and logfmt output: the entries of a.expr from the HTTP API, printed
 * oldest first (tail.c). Returns an exit code. */
int lcc_http_query(const struct lcc_opts *o, const struct lcc_qargs *a);

/* Subcommand entry points: argv[0] is the subcommand name; o already holds the global
 * options given before it. Each returns a process exit code (LCC_EXIT_*). */
int lcc_cmd_query(struct lcc_opts *o, int argc, char **argv);
int lcc_cmd_count(struct lcc_opts *o, int argc, char **argv);
int lcc_cmd_stats(struct lcc_opts *o, int argc, char **argv);
int lcc_cmd_cluster(struct lcc_opts *o, int argc, char **argv); /* cluster.c */
extern const char lcc_cluster_help[];
int lcc_cmd_ping(struct lcc_opts *o, int argc, char **argv);
int lcc_cmd_bench_query(struct lcc_opts *o, int argc, char **argv);
int lcc_cmd_tail(struct lcc_opts *o, int argc, char **argv);

extern const char lcc_query_help[], lcc_count_help[], lcc_stats_help[], lcc_ping_help[],
    lcc_bench_query_help[], lcc_tail_help[];

#endif
