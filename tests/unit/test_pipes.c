/* test_pipes.c - field comparisons with units and the pipes (pipe.h), each answer checked
 * against a brute-force evaluation over a generated set of entries whose fields the generator
 * knows; runs split into 1, 2 and 3 parts must give the same table; every bad query's
 * sentence. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "query/pipe.h"
#include "query/pipe_internal.h"
#include "query/qry.h"
#include "query/qry_internal.h"
#include "store/valsum.h"

#define NOW  1700000000000LL
#define NENT 3000

struct truth {
    int host;      /* -1 absent */
    int status;    /* -1 absent, -2 not a number */
    int lat_ms;    /* -1 absent */
    double lat_ns; /* NAN absent */
    double size;   /* NAN absent */
    const char *user;
};

static struct lc_entry ents[NENT];
static struct truth tru[NENT];
static char msgs[NENT][200];
static char srcs[NENT][24];

static uint64_t rng = 88172645463325252ULL;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static void gen(void)
{
    static const char *users[] = {"alice", "bob smith", "carol", "d\\\"q"};
    static const int statuses[] = {200, 201, 404, 500, 503};
    int64_t ts = NOW - 6 * 3600 * 1000LL;
    for (int i = 0; i < NENT; i++) {
        struct truth *t = &tru[i];
        char *m = msgs[i];
        size_t n = (size_t)sprintf(m, "GET /api/%u took", rnd(50));
        t->host = rnd(10) ? (int)rnd(5) : -1;
        if (t->host >= 0)
            n += (size_t)sprintf(m + n, " host=web%d", t->host);
        unsigned s = rnd(20);
        t->status = s == 0 ? -2 : s == 1 ? -1 : statuses[rnd(5)];
        if (t->status == -2)
            n += (size_t)sprintf(m + n, " status=abc");
        else if (t->status >= 0)
            n += (size_t)sprintf(m + n, " status=%d", t->status);
        t->lat_ms = rnd(5) ? (int)rnd(3000) : -1;
        if (t->lat_ms >= 0)
            n += (size_t)sprintf(m + n, " latency_ms=%d", t->lat_ms);
        t->lat_ns = NAN;
        switch (rnd(5)) {
        case 0: {
            unsigned v = rnd(2000);
            n += (size_t)sprintf(m + n, " latency=%ums", v), t->lat_ns = v * 1e6;
            break;
        }
        case 1: {
            unsigned a = rnd(5), b = rnd(10);
            n += (size_t)sprintf(m + n, " latency=%u.%us", a, b), t->lat_ns = a * 1e9 + b * 1e8;
            break;
        }
        case 2: {
            unsigned v = rnd(900) + 1;
            n += (size_t)sprintf(m + n, " latency=%uus", v), t->lat_ns = v * 1e3;
            break;
        }
        case 3:
            n += (size_t)sprintf(m + n, " latency=1m30s"), t->lat_ns = 90e9;
            break;
        default:
            break;
        }
        t->size = NAN;
        switch (rnd(4)) {
        case 0: {
            unsigned v = rnd(100);
            n += (size_t)sprintf(m + n, " size=%uKB", v), t->size = v * 1000.0;
            break;
        }
        case 1: {
            unsigned v = rnd(100);
            n += (size_t)sprintf(m + n, " size=%uKiB", v), t->size = v * 1024.0;
            break;
        }
        case 2: {
            unsigned v = rnd(200000);
            n += (size_t)sprintf(m + n, " size=%u", v), t->size = v;
            break;
        }
        default:
            break;
        }
        t->user = rnd(3) ? users[rnd(4)] : NULL;
        if (t->user && strchr(t->user, ' '))
            n += (size_t)sprintf(m + n, " user=\"%s\"", t->user);
        else if (t->user && strchr(t->user, '"'))
            n += (size_t)sprintf(m + n, " user=\"d\\\\\\\"q\""), t->user = "d\\\"q";
        else if (t->user)
            n += (size_t)sprintf(m + n, " user=%s", t->user);
        if (rnd(20) == 0) { /* The first one counts. */
            n += (size_t)sprintf(m + n, " status=999 latency_ms=1");
            t->status = t->status == -1 ? 999 : t->status;
            t->lat_ms = t->lat_ms == -1 ? 1 : t->lat_ms;
        }
        ts += rnd(20000);
        sprintf(srcs[i], "10.0.0.%u:5000", rnd(3));
        ents[i] = (struct lc_entry){.id = (uint64_t)i + 1,
                                    .ts_ms = ts,
                                    .recv_ms = ts,
                                    .level = (uint8_t)rnd(6),
                                    .source = srcs[i],
                                    .source_len = strlen(srcs[i]),
                                    .msg = m,
                                    .msg_len = n};
    }
}

static struct qry *compile(const char *text)
{
    struct qry *q = NULL;
    char err[QRY_ERR_MAX] = "";
    if (qry_compile(text, strlen(text), NOW, &q, err) != 0) {
        fprintf(stderr, "  '%s' failed: %s\n", text, err);
        check_cur_failed = 1;
    }
    return q;
}

/* ---- Numbers ---- */

TEST(numbers)
{
    static const struct {
        const char *s;
        double v;
    } ok[] = {
        {"0", 0},
        {"1500", 1500},
        {"-2.5", -2.5},
        {"1_000", 1000},
        {"0.25", 0.25},
        {"250ms", 250e6},
        {"1.5s", 1.5e9},
        {"3us", 3e3},
        {"3\xc2\xb5s", 3e3},
        {"7ns", 7},
        {"2m", 120e9},
        {"1h30m", 5400e9},
        {"1d", 86400e9},
        {"1w", 604800e9},
        {"1y", 365 * 86400e9},
        {"-1s", -1e9},
        {"10B", 10},
        {"1KB", 1e3},
        {"1kb", 1e3},
        {"1K", 1e3},
        {"2MB", 2e6},
        {"3GB", 3e9},
        {"1TB", 1e12},
        {"1KiB", 1024},
        {"1kib", 1024},
        {"1Ki", 1024},
        {"2MiB", 2097152},
        {"1GiB", 1073741824.0},
        {"1TiB", 1099511627776.0},
        {"1.5KB", 1500},
        {"1mb", 1e6},
        {"1KiB24", 1048},
    };
    static const char *bad[] = {"",   "-",  "007",  "1.",   ".5",       "1e5", "abc", "1k",
                                "1_", "_1", "1..2", "0x10", "1.5KB5.5", "5 s", "1sx"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        double v = -12345;
        bool r = val_number(ok[i].s, strlen(ok[i].s), &v, NULL);
        if (!r || v != ok[i].v) {
            fprintf(stderr, "  '%s' -> %d %g, expected %g\n", ok[i].s, r, v, ok[i].v);
            check_cur_failed = 1;
        }
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        double v;
        if (val_number(bad[i], strlen(bad[i]), &v, NULL)) {
            fprintf(stderr, "  '%s' read as a number\n", bad[i]);
            check_cur_failed = 1;
        }
    }
}

/* ---- Comparisons ---- */

static bool in(double x, double lo, bool lo_open, double hi, bool hi_open)
{
    return (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
}

static void cmp_case(const char *text, int field, double lo, bool lo_open, double hi, bool hi_open)
{
    struct qry *q = compile(text);
    if (!q)
        return;
    size_t hits = 0;
    for (int i = 0; i < NENT; i++) {
        const struct truth *t = &tru[i];
        double x = field == 0   ? (t->lat_ms >= 0 ? t->lat_ms : NAN)
                   : field == 1 ? t->lat_ns
                   : field == 2 ? t->size
                                : (t->status >= 0 ? t->status : NAN);
        bool want = !isnan(x) && in(x, lo, lo_open, hi, hi_open);
        hits += want;
        if (qry_match(q, &ents[i]) != want) {
            fprintf(stderr, "  '%s' on '%s': expected %d\n", text, ents[i].msg, want);
            check_cur_failed = 1;
            break;
        }
    }
    CHECK(hits > 0);
    qry_free(q);
}

TEST(comparisons)
{
    cmp_case("latency_ms:>1500", 0, 1500, true, INFINITY, false);
    cmp_case("latency_ms:>=1500", 0, 1500, false, INFINITY, false);
    cmp_case("latency_ms:<10", 0, -INFINITY, false, 10, true);
    cmp_case("latency_ms:<=10", 0, -INFINITY, false, 10, false);
    cmp_case("latency_ms:[100,200]", 0, 100, false, 200, false);
    cmp_case("latency_ms:[100, 200]", 0, 100, false, 200, false);
    cmp_case("latency:>1.5s", 1, 1.5e9, true, INFINITY, false);
    cmp_case("latency:<=250ms", 1, -INFINITY, false, 250e6, false);
    cmp_case("latency:[100us,1s]", 1, 1e5, false, 1e9, false);
    cmp_case("latency:>=1m", 1, 60e9, false, INFINITY, false);
    cmp_case("size:>=10KiB", 2, 10240, false, INFINITY, false);
    cmp_case("size:<1MB", 2, -INFINITY, false, 1e6, true);
    cmp_case("size:[1KB,2kb]", 2, 1000, false, 2000, false);
    cmp_case("status:>=500", 3, 500, false, INFINITY, false);
    cmp_case("status:<300", 3, -INFINITY, false, 300, true);

    /* With the other filters and the boolean operators. */
    struct qry *q = compile("(status:>=500 OR latency_ms:>2900) -level:ERROR NOT host:web1");
    for (int i = 0; q && i < NENT; i++) {
        const struct truth *t = &tru[i];
        bool want =
            (t->status >= 500 || t->lat_ms > 2900) && ents[i].level != LC_ERROR && t->host != 1;
        CHECK(qry_match(q, &ents[i]) == want);
    }
    qry_free(q);
    /* Not a number, missing, quoted: no match; tags:[a,b] stays an equality. */
    struct lc_entry e = ents[0];
    e.msg = "a=abc b=\"12\" c=007 d=5", e.msg_len = strlen(e.msg);
    static const struct {
        const char *q;
        bool want;
    } misc[] = {{"a:>1", false},   {"b:>1", true},       {"c:>1", false}, {"d:>4", true},
                {"d:[5,5]", true}, {"x:>1", false},      {"-x:>1", true}, {"d:>5", false},
                {"d:<5.5", true},  {"tags:[a,b]", false}};
    for (size_t i = 0; i < sizeof(misc) / sizeof(misc[0]); i++) {
        struct qry *m = compile(misc[i].q);
        if (m && qry_match(m, &e) != misc[i].want) {
            fprintf(stderr, "  '%s': expected %d\n", misc[i].q, misc[i].want);
            check_cur_failed = 1;
        }
        qry_free(m);
    }
    e.msg = "tags=[a,b] n=1", e.msg_len = strlen(e.msg);
    struct qry *m = compile("tags:[a,b]");
    CHECK(m && qry_match(m, &e));
    qry_free(m);
    m = compile("*");
    CHECK(m && qry_matches_all(m) && !qry_has_pipes(m));
    qry_free(m);
    m = compile("\"*\"");
    CHECK(m && !qry_matches_all(m));
    qry_free(m);
}

/* ---- Pipes ---- */

/* Run the query over the entries in `parts` parts (interleaved by id), in the order the
 * caller would scan (newest first when the pipes allow stopping early), merge, finish. */
static struct qtable *run(const char *text, int parts, size_t mem, char *err)
{
    struct qry *q = compile(text);
    if (!q)
        return NULL;
    const struct qpipes *p = qry_pipes(q);
    CHECK(p != NULL);
    bool all = qpipes_needs_all(p);
    struct qagg *a[3];
    for (int k = 0; k < parts; k++) {
        a[k] = qagg_new(p, mem);
        bool more = true;
        for (int j = 0; j < NENT && more; j++) {
            int i = all ? j : NENT - 1 - j;
            if (i % parts == k && qry_match(q, &ents[i]))
                more = qagg_add(a[k], &ents[i]);
        }
    }
    for (int k = 1; k < parts; k++)
        qagg_merge(a[0], a[k]);
    struct qtable *t = qagg_finish(a[0], err);
    qry_free(q);
    return t;
}

static const char *cell(const struct qtable *t, size_t r, const char *col)
{
    for (size_t c = 0; c < t->ncols; c++)
        if (strcmp(t->cols[c], col) == 0)
            return t->cells[r * t->ncols + c].s;
    return NULL;
}

static bool same(const struct qtable *a, const struct qtable *b)
{
    if (!a || !b || a->ncols != b->ncols || a->nrows != b->nrows)
        return false;
    for (size_t c = 0; c < a->ncols; c++)
        if (strcmp(a->cols[c], b->cols[c]) != 0)
            return false;
    for (size_t i = 0; i < a->nrows * a->ncols; i++)
        if (strcmp(a->cells[i].s, b->cells[i].s) != 0 || a->cells[i].num != b->cells[i].num)
            return false;
    return true;
}

/* The table of the query, checked to be the same in 1, 2 and 3 parts. */
static struct qtable *table(const char *text)
{
    char err[QRY_ERR_MAX] = "";
    struct qtable *t = run(text, 1, 0, err);
    if (!t) {
        fprintf(stderr, "  '%s': %s\n", text, err);
        check_cur_failed = 1;
        return NULL;
    }
    for (int parts = 2; parts <= 3; parts++) {
        struct qtable *u = run(text, parts, 0, err);
        if (!same(t, u)) {
            fprintf(stderr, "  '%s': %d parts differ from one\n", text, parts);
            check_cur_failed = 1;
        }
        qtable_free(u);
    }
    return t;
}

static double num(const char *s)
{
    return s && *s ? strtod(s, NULL) : NAN;
}

TEST(stats_by_host)
{
    struct qtable *t = table("status:>=500 | stats by (host) count() as n, sum(latency_ms), "
                             "min(latency_ms), max(latency_ms), avg(latency_ms), "
                             "count_uniq(user), count(latency_ms)");
    if (!t)
        return;
    CHECK_EQ_STR(t->cols[0], "host");
    CHECK_EQ_STR(t->cols[1], "n");
    CHECK_EQ_STR(t->cols[2], "sum(latency_ms)");
    CHECK_EQ_STR(t->cols[6], "count_uniq(user)");
    CHECK_EQ_INT(t->nrows, 6); /* web0..web4 and "" (no host), sorted by key. */
    for (size_t r = 0; r < t->nrows; r++) {
        const char *h = cell(t, r, "host");
        int host = *h ? h[3] - '0' : -1;
        CHECK(host == (r < 5 ? (int)r : -1));
        double n = 0, sum = 0, mn = INFINITY, mx = -INFINITY, cnt = 0;
        const char *seen[8];
        size_t nseen = 0;
        for (int i = 0; i < NENT; i++) {
            if (tru[i].host != host || tru[i].status < 500)
                continue;
            n++;
            if (tru[i].lat_ms >= 0) {
                sum += tru[i].lat_ms, cnt++;
                mn = fmin(mn, tru[i].lat_ms), mx = fmax(mx, tru[i].lat_ms);
            }
            bool dup = !tru[i].user;
            for (size_t k = 0; k < nseen && !dup; k++)
                dup = strcmp(seen[k], tru[i].user) == 0;
            if (!dup)
                seen[nseen++] = tru[i].user;
        }
        CHECK(num(cell(t, r, "n")) == n);
        CHECK(num(cell(t, r, "sum(latency_ms)")) == sum);
        CHECK(num(cell(t, r, "min(latency_ms)")) == mn);
        CHECK(num(cell(t, r, "max(latency_ms)")) == mx);
        CHECK(fabs(num(cell(t, r, "avg(latency_ms)")) - sum / cnt) < 1e-9 * sum);
        CHECK(num(cell(t, r, "count_uniq(user)")) == nseen);
        CHECK(num(cell(t, r, "count(latency_ms)")) == cnt);
        CHECK(t->cells[r * t->ncols + 1].num && !t->cells[r * t->ncols].num);
    }
    CHECK_EQ_STR(cell(t, 5, "host"), ""); /* Empty (missing) sorts last. */
    qtable_free(t);

    t = table("nosuchword | stats count(), sum(x), min(x)");
    CHECK(t && t->nrows == 1 && strcmp(cell(t, 0, "count()"), "0") == 0 &&
          strcmp(cell(t, 0, "sum(x)"), "0") == 0 && strcmp(cell(t, 0, "min(x)"), "") == 0);
    qtable_free(t);
    t = table("nosuchword | stats by (host) count()");
    CHECK(t && t->nrows == 0 && t->ncols == 2);
    qtable_free(t);
}

static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

TEST(quantiles)
{
    static const double phis[] = {0, 0.1, 0.5, 0.9, 0.99, 1};
    static double v[NENT];
    for (int f = 0; f < 2; f++) {
        size_t n = 0;
        for (int i = 0; i < NENT; i++) {
            double x = f == 0 ? (tru[i].lat_ms >= 0 ? tru[i].lat_ms : NAN) : tru[i].lat_ns;
            if (!isnan(x))
                v[n++] = x;
        }
        qsort(v, n, sizeof(v[0]), dcmp);
        for (size_t k = 0; k < sizeof(phis) / sizeof(phis[0]); k++) {
            char text[96];
            snprintf(text, sizeof(text), "* | stats quantile(%g, %s) as q", phis[k],
                     f == 0 ? "latency_ms" : "latency");
            struct qtable *t = table(text);
            if (!t)
                continue;
            size_t rank = (size_t)ceil(phis[k] * (double)n);
            double want = v[rank ? rank - 1 : 0], got = num(cell(t, 0, "q"));
            if (!(fabs(got - want) <= 0.0100001 * fabs(want))) {
                fprintf(stderr, "  %s: %g, exact %g\n", text, got, want);
                check_cur_failed = 1;
            }
            qtable_free(t);
        }
    }
}

TEST(time_buckets_and_top)
{
    struct qtable *t = table("* | stats by (_time:1h, level) count() as n");
    if (t) {
        uint64_t total = 0;
        for (size_t r = 0; r < t->nrows; r++)
            total += (uint64_t)num(cell(t, r, "n"));
        CHECK_EQ_INT(total, NENT);
        /* The first bucket: the hour of the first entry. */
        int64_t h = ents[0].ts_ms - ents[0].ts_ms % 3600000;
        char want[40];
        qfmt_time(h, false, want);
        CHECK_EQ_STR(cell(t, 0, "_time"), want);
        CHECK(strlen(want) == 20 && want[19] == 'Z');
        qtable_free(t);
    }
    t = table("* | stats by (_time:1m) count()");
    if (t) {
        size_t buckets = 0;
        int64_t last = INT64_MIN;
        for (int i = 0; i < NENT; i++) {
            int64_t b = ents[i].ts_ms - ents[i].ts_ms % 60000;
            buckets += b != last, last = b;
        }
        CHECK_EQ_INT(t->nrows, buckets);
        qtable_free(t);
    }
    t = table("* | top 3 by (host)");
    if (t) {
        int cnt[6] = {0};
        for (int i = 0; i < NENT; i++)
            cnt[tru[i].host + 1]++;
        CHECK_EQ_INT(t->nrows, 3);
        CHECK_EQ_STR(t->cols[1], "hits");
        double prev = INFINITY;
        for (size_t r = 0; r < t->nrows; r++) {
            const char *h = cell(t, r, "host");
            double hits = num(cell(t, r, "hits"));
            CHECK(hits == cnt[*h ? h[3] - '0' + 1 : 0] && hits <= prev);
            int better = 0;
            for (int k = 0; k < 6; k++)
                better += cnt[k] > hits;
            CHECK((size_t)better <= r);
            prev = hits;
        }
        qtable_free(t);
    }
    t = table("* | top by (level, host) | limit 50");
    CHECK(t && t->nrows <= 36 && t->ncols == 3);
    qtable_free(t);
}

TEST(entry_pipes)
{
    /* limit alone: the newest 7, oldest first, the four built-in columns. */
    struct qtable *t = table("level:ERROR | limit 7");
    if (t) {
        int want[7], n = 0;
        for (int i = NENT - 1; i >= 0 && n < 7; i--)
            if (ents[i].level == LC_ERROR)
                want[n++] = i;
        CHECK_EQ_INT(t->nrows, 7);
        CHECK(t->ncols == 4 && strcmp(t->cols[0], "_time") == 0 && strcmp(t->cols[3], "_msg") == 0);
        for (int r = 0; r < 7 && t->nrows == 7; r++)
            CHECK_EQ_STR(cell(t, (size_t)r, "_msg"), ents[want[6 - r]].msg);
        CHECK_EQ_STR(cell(t, 0, "level"), "ERROR");
        qtable_free(t);
    }
    /* sort desc, limit, fields: against a brute-force top 5 (ties: oldest first). */
    t = table("host:web2 | sort by (latency_ms desc) | limit 5 | fields _time, latency_ms, x");
    if (t) {
        CHECK_EQ_INT(t->nrows, 5);
        CHECK(t->ncols == 3 && strcmp(cell(t, 0, "x"), "") == 0);
        int prev = 1 << 30;
        for (size_t r = 0; r < t->nrows; r++) {
            int v = atoi(cell(t, r, "latency_ms"));
            CHECK(v <= prev);
            prev = v;
        }
        int best = -1;
        for (int i = 0; i < NENT; i++)
            if (tru[i].host == 2 && tru[i].lat_ms > best)
                best = tru[i].lat_ms;
        CHECK_EQ_INT(atoi(cell(t, 0, "latency_ms")), best);
        qtable_free(t);
    }
    /* Numbers sort by value (units too), before other values; stable over a second sort. */
    t = table("* | sort by (latency) | fields latency");
    if (t) {
        double prev = -INFINITY;
        bool text = false;
        for (size_t r = 0; r < t->nrows; r++) {
            double x;
            const char *s = cell(t, r, "latency");
            if (val_number(s, strlen(s), &x, NULL)) {
                CHECK(!text && x >= prev);
                prev = x;
            } else {
                text = true;
            }
        }
        CHECK_EQ_INT(t->nrows, NENT);
        qtable_free(t);
    }
    t = table("* | sort by (status) desc | limit 3 | fields status, user");
    CHECK(t && t->nrows == 3 && strcmp(cell(t, 0, "status"), "abc") == 0);
    qtable_free(t);
    t = table("user:alice | fields user, level | sort by (level) | head 4");
    CHECK(t && t->nrows == 4 && strcmp(cell(t, 0, "user"), "alice") == 0);
    qtable_free(t);
    t = table("* | limit 0");
    CHECK(t && t->nrows == 0);
    qtable_free(t);
}

TEST(field_names)
{
    struct qtable *t = table("* | field_names");
    if (!t)
        return;
    static const char *names[] = {"_msg",  "_time", "host",   "latency", "latency_ms",
                                  "level", "size",  "source", "status",  "user"};
    CHECK_EQ_INT(t->nrows, 10);
    for (size_t r = 0; r < t->nrows && r < 10; r++) {
        CHECK_EQ_STR(cell(t, r, "name"), names[r]);
        int want = 0;
        for (int i = 0; i < NENT; i++) {
            const struct truth *x = &tru[i];
            bool dup_tail = strstr(ents[i].msg, "status=999") != NULL;
            switch (r) {
            case 2:
                want += x->host >= 0;
                break;
            case 3:
                want += !isnan(x->lat_ns);
                break;
            case 4:
                want += x->lat_ms >= 0 || dup_tail;
                break;
            case 6:
                want += !isnan(x->size);
                break;
            case 8:
                want += x->status != -1 || dup_tail;
                break;
            case 9:
                want += x->user != NULL;
                break;
            default:
                want++;
            }
        }
        CHECK_EQ_INT(num(cell(t, r, "hits")), want);
    }
    qtable_free(t);
}

TEST(memory_limit)
{
    char err[QRY_ERR_MAX] = "";
    struct qtable *t = run("* | stats by (_msg) count_uniq(_msg), count_uniq(_time), "
                           "quantile(0.5, latency)",
                           2, 1 << 20, err);
    CHECK(t == NULL);
    CHECK_EQ_STR(err, "query needs more than 1 MiB (--query-memory)");
    t = run("* | stats by (_msg) count()", 1, 64 << 20, err);
    CHECK(t && t->nrows == NENT);
    qtable_free(t);
    t = run("* | stats by (_msg) count_uniq(_time)", 3, 100000, err);
    CHECK(t == NULL);
    CHECK_EQ_STR(err, "query needs more than 100000 bytes (--query-memory)");
    /* A limit keeps a part small whatever the number of entries. */
    t = run("* | sort by (size) | limit 3", 3, 1 << 20, err);
    CHECK(t && t->nrows == 3);
    qtable_free(t);
}

TEST(row_kv)
{
    struct qtable *t = table("user:\"bob smith\" | limit 1 | fields user, level, nothing");
    if (!t)
        return;
    char out[256];
    size_t n = qtable_row_kv(t, 0, out, sizeof(out));
    out[n < sizeof(out) ? n : sizeof(out) - 1] = '\0';
    CHECK(strncmp(out, "user=\"bob smith\" level=", 23) == 0);
    CHECK(n > 10 && strcmp(out + n - 10, "nothing=\"\"") == 0);
    CHECK_EQ_INT(qtable_row_kv(t, 0, out, 5), n); /* Full length even when cut. */
    qtable_free(t);
    t = table("user:d* | limit 1 | fields user");
    if (t) {
        n = qtable_row_kv(t, 0, out, sizeof(out));
        out[n] = '\0';
        CHECK_EQ_STR(out, "user=\"d\\\\\\\"q\"");
        qtable_free(t);
    }
}

TEST(bad_queries)
{
    static const struct {
        const char *q, *err;
    } cases[] = {
        {"error | stat count()", "unknown pipe \"stat\" at 8"},
        {"* | stats count(", "expected \")\" at 16"},
        {"* | stats count(a | limit 1", "expected \")\" at 18"},
        {"* | stats count(a b)", "expected \",\" or \")\" at 18"},
        {"* | stats by (host count()", "expected \",\" or \")\" at 19"},
        {"* | stats quantile(2, x)", "quantile needs phi in [0,1] at 19"},
        {"* | stats quantile(x)", "quantile needs phi in [0,1] at 19"},
        {"* | stats quantile(0.5)", "quantile needs phi and a field at 22"},
        {"* | stats sum()", "sum needs a field at 14"},
        {"* | stats sum(a, b)", "sum takes one field at 17"},
        {"* | stats cnt()", "unknown function \"cnt\" at 10"},
        {"* | stats", "expected a function such as count() at 9"},
        {"* | stats count(), count()", "duplicate column \"count()\" at 19"},
        {"* | stats by (_time:abc) count()", "bad time bucket 'abc' (a duration of whole ms, "
                                             "e.g. 5m) at 20"},
        {"* | stats count() | sort by (x)", "unknown column \"x\" at 29"},
        {"* | limit 5 | stats count()", "stats must be the first pipe at 14"},
        {"* | top 5 host", "top needs by (fields) at 10"},
        {"* | limit x", "bad number 'x' at 10"},
        {"* | sort (x)", "expected \"by\" at 9"},
        {"* | fields a | sort by (b)", "unknown column \"b\" at 24"},
        {"* |", "expected a pipe at 3, found the end"},
        {"* | | limit 1", "expected a pipe at 4, found \"|\""},
        {"* | limit 1 2", "expected \"|\" or the end at 12, found a word"},
        {"* | fields \"a", "unterminated quote at 11"},
        {"| stats count()", ""}, /* An empty filter: every entry. */
        {"( | stats count()", "expected a term before \"|\" at 2"},
        {"(a | b)", "unbalanced parenthesis at 0"},
        {"a AND | stats count()", "AND needs a term on both sides"},
        {"a OR | stats count()", "OR needs a term on both sides"},
        {"limit:5 | stats count()", "limit: cannot be combined with pipes (use \"| limit N\") "
                                    "at 8"},
        {"latency:>abc", "bad number 'abc' at 9"},
        {"latency:<=1.5", ""}, /* Valid: a plain number. */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct qry *q = NULL;
        char err[QRY_ERR_MAX] = "";
        int rc = qry_compile(cases[i].q, strlen(cases[i].q), NOW, &q, err);
        if (cases[i].err[0] == '\0') {
            CHECK(rc == 0 && q);
        } else if (rc != -EINVAL || q || strcmp(err, cases[i].err) != 0) {
            fprintf(stderr, "  '%s': rc %d, '%s', expected '%s'\n", cases[i].q, rc, err,
                    cases[i].err);
            check_cur_failed = 1;
        }
        qry_free(q);
    }
    /* A literal bar is a phrase. */
    struct qry *q = compile("\"|\" a|b");
    struct lc_entry e = ents[0];
    e.msg = "x | a|b", e.msg_len = 7;
    CHECK(q && !qry_has_pipes(q) && qry_match(q, &e));
    qry_free(q);
}

/* The value summary of entries ents[b0 .. b0 + n), as the store builds it. */
static void block_values(int b0, int n, uint8_t **vals, uint32_t *vlen)
{
    static char text[100 * 200], sources[100 * 24];
    static uint32_t lens[100];
    static uint8_t levels[100], slens[100];
    size_t tl = 0, sl = 0;
    for (int i = 0; i < n; i++) {
        const struct lc_entry *e = &ents[b0 + i];
        memcpy(text + tl, e->msg, e->msg_len);
        tl += e->msg_len;
        lens[i] = (uint32_t)e->msg_len;
        memcpy(sources + sl, e->source, e->source_len);
        sl += e->source_len;
        slens[i] = (uint8_t)e->source_len;
        levels[i] = e->level;
    }
    struct valsum_input in = {.count = (uint32_t)n,
                              .levels = levels,
                              .src_lens = slens,
                              .srcs = sources,
                              .msgs = text,
                              .msgs_len = tl,
                              .msg_lens = (const char *)lens};
    CHECK(valsum_build(&in, vals, vlen) == 0);
}

/* A part fed whole "blocks" of 100 entries by their summaries (level counts, and the value
 * summary when values is true) when it takes them gives the same table as a part fed every
 * entry; a part that refuses a block gets its entries. */
static void summary_case(const char *text, bool values, bool expect_taken)
{
    struct qry *q = compile(text);
    CHECK(q != NULL);
    if (!q)
        return;
    const struct qpipes *p = qry_pipes(q);
    struct qagg *by_entry = qagg_new(p, 0), *by_block = qagg_new(p, 0);
    bool taken_any = false;
    for (int b0 = 0; b0 < NENT; b0 += 100) {
        struct qagg_block blk = {.min_ts = INT64_MAX, .max_ts = INT64_MIN};
        uint32_t level_counts[LC_LEVEL_COUNT] = {0};
        int n = b0 + 100 <= NENT ? 100 : NENT - b0;
        bool some = false; /* Some level's entries partly match: no summary can tell. */
        uint64_t matched[LC_LEVEL_COUNT] = {0};
        for (int i = b0; i < b0 + n; i++) {
            level_counts[ents[i].level]++;
            if (qry_match(q, &ents[i])) {
                qagg_add(by_entry, &ents[i]);
                matched[ents[i].level]++;
            }
            blk.min_ts = ents[i].ts_ms < blk.min_ts ? ents[i].ts_ms : blk.min_ts;
            blk.max_ts = ents[i].ts_ms > blk.max_ts ? ents[i].ts_ms : blk.max_ts;
        }
        for (int l = 0; l < LC_LEVEL_COUNT; l++) {
            blk.counts[l] = matched[l];
            some |= matched[l] && matched[l] != level_counts[l];
        }
        uint8_t *vals = NULL;
        if (values && !some) {
            block_values(b0, n, &vals, &blk.values_len);
            blk.values = vals;
            blk.level_counts = level_counts;
        }
        /* As the store's caller: a block whose levels match partly is never offered. */
        bool taken = !some && qagg_add_summary(by_block, &blk);
        free(vals);
        if (taken) {
            taken_any = true;
            continue;
        }
        for (int i = b0; i < b0 + n; i++)
            if (qry_match(q, &ents[i]))
                qagg_add(by_block, &ents[i]);
    }
    if (taken_any != expect_taken)
        fprintf(stderr, "  '%s': blocks taken %d, expected %d\n", text, taken_any, expect_taken);
    CHECK(taken_any == expect_taken);
    char err[QRY_ERR_MAX];
    struct qtable *a = qagg_finish(by_entry, err), *b = qagg_finish(by_block, err);
    if (!same(a, b)) {
        fprintf(stderr, "  '%s': blocks by summary differ from entries\n", text);
        check_cur_failed = 1;
    }
    qtable_free(a);
    qtable_free(b);
    qry_free(q);
}

TEST(summaries)
{
    summary_case("* | stats by (level) count() as n", false, true);
    summary_case("level:>=WARN | stats count(), count(*) as all", false, true);
    summary_case("* | top 3 by (level)", false, true);
    summary_case("* | stats by (_time:1000d, level) count()", false, true);
    summary_case("* | stats by (level) count() as n | sort by (n desc) | limit 2", false, true);
    /* Summaries cannot answer these: the part must read entries. */
    summary_case("* | stats by (host) count()", false, false);
    summary_case("* | stats by (level) count(), sum(latency_ms)", true, false);
    summary_case("* | stats by (level) count(host)", true, false);
    summary_case("* | field_names", true, false);
    summary_case("* | limit 3", true, false);
}

/* With value summaries: a field with few values in a block (host, status, the quoted and
 * escaped user, the source) is counted from them, alone or beside level and time buckets,
 * under a level filter too; two fields, a field of many values (latency_ms) or a filter the
 * summary cannot decide still read the entries. */
TEST(value_summaries)
{
    summary_case("* | stats by (host) count()", true, true);
    summary_case("* | stats by (status, level) count() as n", true, true);
    summary_case("* | stats by (user) count()", true, true);
    summary_case("* | stats by (source) count()", true, true);
    summary_case("level:ERROR | stats by (host) count() as n, count()", true, true);
    summary_case("* | stats by (_time:1000d, host) count()", true, true);
    summary_case("* | top 2 by (status)", true, true);
    summary_case("* | stats by (nosuch) count()", true, true);
    summary_case("* | stats by (host, status) count()", true, false);
    summary_case("* | stats by (latency_ms) count()", true, false);
    summary_case("* | stats by (_msg) count()", true, false);
    summary_case("host:web1 | stats by (status) count()", true, false);
    summary_case("* | stats by (status) count(), min(latency_ms)", true, false);
    /* A caller offering a block whose level matches only partly gets it refused. */
    struct qry *q = compile("* | stats by (host) count()");
    struct qagg *a = q ? qagg_new(qry_pipes(q), 0) : NULL;
    uint32_t level_counts[LC_LEVEL_COUNT] = {0};
    struct qagg_block blk = {.level_counts = level_counts, .min_ts = NOW, .max_ts = NOW};
    for (int i = 0; i < 100; i++)
        level_counts[ents[i].level]++;
    uint8_t *vals = NULL;
    block_values(0, 100, &vals, &blk.values_len);
    blk.values = vals;
    blk.counts[ents[0].level] = level_counts[ents[0].level] - 1;
    CHECK(a && !qagg_add_summary(a, &blk));
    blk.counts[ents[0].level]++;
    CHECK(a && qagg_add_summary(a, &blk));
    free(vals);
    char err[QRY_ERR_MAX];
    qtable_free(a ? qagg_finish(a, err) : NULL);
    qry_free(q);
}

int main(void)
{
    gen();
    RUN(numbers);
    RUN(comparisons);
    RUN(stats_by_host);
    RUN(quantiles);
    RUN(time_buckets_and_top);
    RUN(entry_pipes);
    RUN(field_names);
    RUN(memory_limit);
    RUN(row_kv);
    RUN(bad_queries);
    RUN(summaries);
    RUN(value_summaries);
    return check_summary("test_pipes");
}
