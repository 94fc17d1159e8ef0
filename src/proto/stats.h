/* stats.h - the server's statistics as one list of named values, printed by the query port's
 * STATS (key value lines), the HTTP API (JSON) and /metrics. */
#ifndef LC_STATS_H
#define LC_STATS_H

#include <stddef.h>
#include <stdint.h>

struct conn;

enum stat_kind { STAT_U64, STAT_I64, STAT_F64, STAT_STR };

struct stat_kv {
    const char *key;
    enum stat_kind kind;
    union {
        uint64_t u;
        int64_t i;
        double d;
        const char *s;
    };
};

#define STATS_MAX 64

/* Fill out[0..STATS_MAX) with the current statistics; returns how many. */
size_t stats_collect(struct conn *c, struct stat_kv *out);

#endif
