/* query_parse.h - parse one query-port command line into what to run and how to answer.
 * Pure: no I/O, borrows its input. */
#ifndef LC_QUERY_PARSE_H
#define LC_QUERY_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "query/qry.h"

enum qcmd_kind {
    QCMD_NONE, /* Blank line: nothing to answer. */
    QCMD_RUN,  /* Run q, answer in style. */
    QCMD_STATS,
    QCMD_HELP,
    QCMD_PING,
    QCMD_QUIT,
    QCMD_ERROR, /* Answer err in style. */
};

enum qstyle {
    QSTYLE_COLON, /* QUERY:<kw>  -> RESULT:<n> / LOG:<ts>:<LEVEL>:<msg> / END; ERROR:<why> */
    QSTYLE_PIPE,  /* QUERY|, SEARCH -> RESULT|<n> / <id>|<LEVEL>|<ts>|<msg> / END; ERROR|<why> */
    QSTYLE_KV,    /* QUERY k=v   -> FOUND: <n> / [<time>] <msg>; ERROR: <why> */
    QSTYLE_COUNT, /* COUNT       -> COUNT|<n>; ERROR: <why> */
};

struct qcmd {
    enum qcmd_kind kind;
    enum qstyle style;
    struct qry *q;                 /* QCMD_RUN: owned by the caller afterwards. */
    char err[4 * QRY_ERR_MAX + 1]; /* QCMD_ERROR: one sentence, printable, no newline. */
};

/* Parse line[0..n) (without its newline). now_ms anchors relative times. */
void qcmd_parse(const char *line, size_t n, int64_t now_ms, struct qcmd *out);

#endif
