/* bench_irc.h - the `logcaster bench-irc` IRC delivery benchmark. */
#ifndef LCC_BENCH_IRC_H
#define LCC_BENCH_IRC_H

#include "client/util.h"

/* Entry point; argv[0] is "bench-irc". Returns a process exit code (LCC_EXIT_*). */
int lcc_cmd_bench_irc(struct lcc_opts *o, int argc, char **argv);

extern const char lcc_bench_irc_help[];

#endif
