/* fuzz_linetime.c - arbitrary bytes as the start of a log line: the time parser reads nothing
 * past the input, takes no more than it was given, says the same for the same bytes whatever
 * follows a time it found, and returns only times inside the years it handles (a BSD time
 * within a few years of the arrival). Builds with linetime.c alone. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/linetime.h"

#define fz_assert(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MS_PER_DAY 86400000LL
#define DAY_SLACK  (2 * MS_PER_DAY)       /* A zone offset moves a time less than a day. */
#define TS_MIN     (-62167219200000LL)    /* 0000-01-01T00:00:00Z */
#define TS_MAX     253402300799999LL      /* 9999-12-31T23:59:59.999Z */
#define BSD_SPAN   (5 * 366 * MS_PER_DAY) /* Four years either side, and a little. */

static void check(const char *p, size_t n, int64_t recv)
{
    int64_t ts = 12345;
    size_t r = linetime_parse(p, n, recv, &ts);
    fz_assert(r <= n);
    if (r == 0) {
        fz_assert(ts == 12345); /* Untouched. */
        return;
    }
    fz_assert(ts >= TS_MIN - DAY_SLACK && ts <= TS_MAX + DAY_SLACK);
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    fz_assert(i < r);
    /* A BSD time (a month's letter, no '[') lies near the arrival. */
    if (((p[i] | 0x20) >= 'a' && (p[i] | 0x20) <= 'z') && p[r - 1] != ']')
        fz_assert(ts > recv - BSD_SPAN && ts < recv + BSD_SPAN);
    /* The time alone (cut where it ends) is the same time, taking the same bytes, unless
     * what followed it was part of it ("+0000" after a space is taken only when it ends
     * there too, and the same holds for the cut copy). */
    char *cut = malloc(r);
    memcpy(cut, p, r);
    int64_t ts2 = 0;
    size_t r2 = linetime_parse(cut, r, recv, &ts2);
    fz_assert(r2 == r && ts2 == ts);
    free(cut);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so ASan sees any read past the end. */
    char *p = malloc(size ? size : 1);
    memcpy(p, data, size);
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211ULL;
    /* A fixed arrival, and one anywhere in (and a little beyond) the years 0-9999. */
    check(p, size, 1764158400000LL);
    uint64_t span = (uint64_t)(TS_MAX - TS_MIN) + 4 * (uint64_t)MS_PER_DAY;
    check(p, size, TS_MIN - 2 * MS_PER_DAY + (int64_t)(h % span));
    check(p, size, (int64_t)h);
    free(p);
    return 0;
}
