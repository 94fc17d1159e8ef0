/* fuzz_pipes.c - libFuzzer target for the pipes: compile the input as a query; when it has
 * pipes, run them over a few fixed entries in one part and, separately, in two merged parts,
 * under a small memory limit; both runs must agree, every row must print, and everything must
 * be freed. A rejected query must leave *out NULL and one line of error text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query/pipe.h"
#include "query/qry.h"

#define NOW 1700000000000LL

static const struct {
    uint8_t level;
    int64_t ts_ms;
    const char *source, *msg;
} fixed[] = {
    {LC_ERROR, NOW - 5000, "127.0.0.1:5000", "disk full status=500 latency=1.5s"},
    {LC_INFO, NOW - 3600000, "10.1.2.3:9", "GET took 12ms latency_ms=12 size=1KiB"},
    {LC_WARN, NOW, "[::1]:7", "user=\"a \\\" b\" status=abc status=200"},
    {LC_DEBUG, 1704164645000LL, "h", "x=1 x=2 y= =z latency_ms=-3.25"},
    {LC_FATAL, 0, NULL, NULL},
    {LC_TRACE, -1500, "s", "size=10MB latency=90us n=007 n2=1_000"},
};
static struct lc_entry entries[sizeof(fixed) / sizeof(fixed[0])];
#define N_ENTRIES (sizeof(entries) / sizeof(entries[0]))

static struct qtable *run(const struct qry *q, int parts)
{
    const struct qpipes *p = qry_pipes(q);
    bool all = qpipes_needs_all(p);
    struct qagg *a[2];
    for (int k = 0; k < parts; k++) {
        a[k] = qagg_new(p, 64 * 1024);
        if (!a[k])
            __builtin_trap();
        bool more = true;
        for (size_t j = 0; j < N_ENTRIES && more; j++) {
            size_t i = all ? j : N_ENTRIES - 1 - j;
            if ((int)(i % (size_t)parts) == k && qry_match(q, &entries[i]))
                more = qagg_add(a[k], &entries[i]);
        }
    }
    if (parts == 2)
        qagg_merge(a[0], a[1]);
    char err[QRY_ERR_MAX];
    err[0] = '\0';
    struct qtable *t = qagg_finish(a[0], err);
    if (!t && (err[0] == '\0' || strchr(err, '\n')))
        __builtin_trap();
    return t;
}

static void check_same(const struct qtable *a, const struct qtable *b)
{
    if (!a || !b) {
        if (a || b)
            __builtin_trap(); /* One run failed (memory) and the other did not. */
        return;
    }
    if (a->ncols != b->ncols || a->nrows != b->nrows)
        __builtin_trap();
    for (size_t i = 0; i < a->nrows * a->ncols; i++)
        if (a->cells[i].len != b->cells[i].len || strcmp(a->cells[i].s, b->cells[i].s) != 0)
            __builtin_trap();
    char buf[64];
    for (size_t r = 0; r < a->nrows; r++) {
        size_t n = qtable_row_kv(a, r, buf, sizeof(buf));
        char *full = malloc(n + 1);
        if (!full || qtable_row_kv(a, r, full, n + 1) != n)
            __builtin_trap();
        free(full);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < N_ENTRIES; i++)
        entries[i] = (struct lc_entry){.id = i + 1,
                                       .ts_ms = fixed[i].ts_ms,
                                       .level = fixed[i].level,
                                       .source = fixed[i].source,
                                       .source_len = fixed[i].source ? strlen(fixed[i].source) : 0,
                                       .msg = fixed[i].msg,
                                       .msg_len = fixed[i].msg ? strlen(fixed[i].msg) : 0};
    struct qry *q = NULL;
    char err[QRY_ERR_MAX];
    err[0] = '\0';
    int rc = qry_compile((const char *)data, size, NOW, &q, err);
    if (rc != 0) {
        if (q || err[0] == '\0' || strchr(err, '\n') || strlen(err) >= QRY_ERR_MAX)
            __builtin_trap();
        return 0;
    }
    if (!q)
        __builtin_trap();
    for (size_t i = 0; i < N_ENTRIES; i++)
        (void)qry_match(q, &entries[i]);
    if (qry_has_pipes(q)) {
        struct qtable *a = run(q, 1), *b = run(q, 2);
        /* The memory limit may stop one split and not the other: compare only when both ran. */
        if (a && b)
            check_same(a, b);
        qtable_free(a);
        qtable_free(b);
    }
    qry_free(q);
    return 0;
}
