/* follow.h - `logcaster send --follow FILE` (follow.c). */
#ifndef LCC_FOLLOW_H
#define LCC_FOLLOW_H

#include <stdbool.h>

#include "client/util.h"

struct lcc_follow_opts {
    const char *path;
    int level;       /* 0..5 (TRACE..FATAL), or -1: detect from each line's text. */
    bool from_start; /* Send what the file holds already, not only what is appended. */
};

/* Follow the file until SIGINT or SIGTERM, then flush and print the summary. Returns an
 * LCC_EXIT_* status. */
int lcc_follow(const struct lcc_opts *o, const struct lcc_follow_opts *fo);

#endif
