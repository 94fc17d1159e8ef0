/* bench.h - the `logcaster bench` ingest load generator. */
#ifndef LCC_BENCH_H
#define LCC_BENCH_H

#include "client/util.h"

/* Entry point; argv[0] is "bench". Returns a process exit code (LCC_EXIT_*). */
int lcc_cmd_bench(struct lcc_opts *o, int argc, char **argv);

extern const char lcc_bench_help[];

#endif
