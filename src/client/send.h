/* send.h - the `logcaster send` subcommand: ship lines to the ingest port. */
#ifndef LCC_SEND_H
#define LCC_SEND_H

#include "client/util.h"

/* Entry point; argv[0] is "send". Returns a process exit code (LCC_EXIT_*). */
int lcc_cmd_send(struct lcc_opts *o, int argc, char **argv);

extern const char lcc_send_help[];

#endif
