/* util.h - pure helpers of the logcaster client: option parsing, number parsing, reply
 * recognition, line framing and percentiles.
 *
 * Nothing here does I/O or keeps state between calls, so tests/unit/test_client_util.c can
 * compile util.c on its own and check every function against fixed inputs. */
#ifndef LCC_UTIL_H
#define LCC_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What every subcommand shares: where the server is and how long to wait for it. */
struct lcc_opts {
    const char *host;   /* Name or address; borrowed from argv. */
    int log_port;       /* Ingest port, 9999 by default. */
    int query_port;     /* Query port, 9998 by default. */
    int timeout_ms;     /* Connect timeout and longest wait for any single reply. */
    const char *token;  /* Sent as "AUTH <token>" first on every connection, or NULL. */
    int http_port;      /* HTTP port (live tail, formatted query output), 8080 by default. */
    bool tls;           /* --tls: query and HTTP connections are TLS, verified. */
    const char *tls_ca; /* --tls-ca FILE: trust this PEM instead of the system's CAs. */
};

enum {
    LCC_EXIT_OK = 0,          /* Everything was delivered or answered. */
    LCC_EXIT_FAIL = 1,        /* The server refused something or a check failed. */
    LCC_EXIT_UNREACHABLE = 2, /* The server could not be reached or the connection died. */
    LCC_EXIT_USAGE = 64,      /* Bad command line (sysexits EX_USAGE). */
};

/* A cursor over argv for the small option parser every subcommand uses. Options are
 * "--name value", "--name=value" or a bare flag; "--" ends options; "-" alone is a
 * positional argument (stdin). */
struct lcc_argp {
    int argc;
    char **argv;       /* Borrowed. */
    int i;             /* Index of the current argument. */
    const char *arg;   /* The current argument. */
    bool only_pos;     /* Seen "--": everything after it is positional. */
    const char *error; /* Static message of the first parse error, or NULL. */
    const char *bad;   /* The argument the error is about. */
};

/* Start parsing at argv[first]. */
void lcc_argp_init(struct lcc_argp *p, int argc, char **argv, int first);

/* Move to the next argument; returns false at the end. Consumes "--" itself. */
bool lcc_argp_next(struct lcc_argp *p);

/* True if the current argument looks like an option (and "--" has not been seen). */
bool lcc_argp_is_opt(const struct lcc_argp *p);

/* True if the current argument is the flag `name` (e.g. "--plain" or "-h"). */
bool lcc_argp_flag(struct lcc_argp *p, const char *name);

/* True if the current argument is option `name`; *val gets its value, taken from "=value" or
 * from the next argument (consumed). A missing value sets p->error and *val = NULL. */
bool lcc_argp_value(struct lcc_argp *p, const char *name, const char **val);

/* Recognise --host (NAME, NAME:PORT or [V6]:PORT, where PORT is the query port), --log-port,
 * --query-port, --http-port, --timeout, --token, --tls and --tls-ca and store them in o.
 * Returns true if the current argument was one of them (check p->error for a bad value).
 * A --host with a port keeps a pointer into a static copy: the last one given wins. */
bool lcc_argp_global(struct lcc_argp *p, struct lcc_opts *o);

/* Split "host:port", "[v6]:port", "host" or a bare IPv6 address into a host (copied into
 * out, cap bytes) and *port (left alone when there is none). Returns 0 or -EINVAL. */
int lcc_split_host(const char *s, char *out, size_t cap, int *port);

/* True if s is a relative duration of the query language: digits with ms/s/m/h/d/w units,
 * combinable ("15m", "1h30m"). */
bool lcc_is_duration(const char *s);

/* True if expr has a pipe '|' outside "quotes" and /regexes/: a piped query (stats, top)
 * whose answer is rows, not entries. */
bool lcc_has_pipe(const char *expr);

/* Parse a whole decimal string into [min, max]. Returns 0 or -EINVAL / -ERANGE. */
int lcc_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Parse seconds, fractions allowed ("0.5", "30"), into [0, max_s]. Returns 0 or -EINVAL. */
int lcc_parse_seconds(const char *s, double max_s, double *out);

/* Parse a TCP port 1..65535 (0 is refused: the client needs a real port). */
int lcc_parse_port(const char *s, int *out);

/* Classify one ingest reply line (without its '\n'): 1 for "OK|<id>" (id stored in *id if
 * not NULL), 0 for "ERROR..." (the whole line is the reason), -1 for anything else. */
int lcc_reply_kind(const char *line, size_t len, uint64_t *id);

/* If line is "<tag><n>" (tag such as "RESULT|" or "COUNT|") store n and return 0, else
 * -EPROTO. */
int lcc_parse_tagged_count(const char *line, size_t len, const char *tag, uint64_t *n);

/* Bytes lcc_frame_line will write for a message of len bytes with this level. */
size_t lcc_frame_size(const char *level, size_t len);

/* Write "LOG|<level>|-|<msg>\n" into dst (room for lcc_frame_size bytes, no NUL written) and
 * return the number of bytes written. A "\r" left at the end of msg is dropped by the caller. */
size_t lcc_frame_line(char *dst, const char *level, const char *msg, size_t len);

/* A level given on the command line is sent inside a '|' frame, so it must be one token of
 * letters (or "-"). Returns true if level is acceptable. */
bool lcc_level_ok(const char *level);

/* Nearest-rank percentile (p in 0..100) of n values sorted ascending; 0 when n == 0. */
double lcc_percentile(const double *sorted, size_t n, double p);

/* Join argv[0..n) with single spaces into a malloc'd string (caller frees); NULL on ENOMEM.
 * n == 0 gives "". */
char *lcc_join_args(int n, char **args);

#endif
