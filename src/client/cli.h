/* cli.h - what the subcommand files share with main.c: messages to the user and the options
 * every subcommand accepts. */
#ifndef LCC_CLI_H
#define LCC_CLI_H

#include "client/util.h"

/* Print "logcaster: <message>\n" to stderr. */
void lcc_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Report a command-line mistake in subcommand cmd (NULL for the global part), point at
 * --help and return LCC_EXIT_USAGE. arg, if not NULL, is quoted after the message. */
int lcc_usage(const char *cmd, const char *msg, const char *arg);

/* Handle an option every subcommand takes: the global connection options and -h/--help
 * (which prints help to stdout and exits 0). Returns 1 if the current argument was consumed,
 * 0 if not, or -1 after reporting a bad value (the caller returns LCC_EXIT_USAGE). */
int lcc_common_opt(struct lcc_argp *p, struct lcc_opts *o, const char *cmd, const char *help);

/* For the end of a subcommand's option loop: report the current argument as unknown, with a
 * hint about "--" when it could be a query term such as -debug. Returns LCC_EXIT_USAGE. */
int lcc_unknown_opt(const struct lcc_argp *p, const char *cmd);

#endif
