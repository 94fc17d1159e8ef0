/* value.c - decode field values once at compile time: levels, durations, times, limits,
 * regexes; and the one-line error messages the query module writes.
 *
 * Regexes are PCRE2 in byte mode (no UTF), JIT-compiled when the platform allows, with a
 * match limit so a pathological pattern costs a bounded amount per entry. A compiled pattern
 * is shared by every thread running the query; the match data (the only mutable state) is one
 * small block per thread, created on a thread's first regex match and freed when it exits. */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <errno.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/qry_internal.h"

#define REGEX_MATCH_LIMIT 100000 /* Backtracking steps per entry before "no match". */
#define REGEX_DEPTH_LIMIT 5000   /* Interpreter backtracking depth (JIT ignores it). */

void qry_errf(char *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, QRY_ERR_MAX, fmt, ap);
    va_end(ap);
    for (char *p = err; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

const char *err_quote(char *buf, size_t cap, const char *s, size_t len)
{
    size_t max = cap - 4 < 40 ? cap - 4 : 40, n = 0;
    for (; n < len && n < max; n++)
        buf[n] = (s[n] >= 0x20 && s[n] < 0x7f) ? s[n] : '?';
    if (n < len)
        buf[n++] = '.', buf[n++] = '.', buf[n++] = '.';
    buf[n] = '\0';
    return buf;
}

/* ---- Levels ---- */

int val_level_mask(const char *s, size_t len, uint32_t *mask, char *err)
{
    uint32_t m = 0;
    size_t i = 0;
    do {
        size_t end = i;
        while (end < len && s[end] != ',')
            end++;
        const char *item = s + i;
        size_t n = end - i;
        int cmp = 0; /* -2 <, -1 <=, 0 =, 1 >=, 2 > */
        if (n >= 2 && item[1] == '=' && (item[0] == '>' || item[0] == '<')) {
            cmp = item[0] == '>' ? 1 : -1;
            item += 2, n -= 2;
        } else if (n >= 1 && (item[0] == '>' || item[0] == '<' || item[0] == '=')) {
            cmp = item[0] == '>' ? 2 : item[0] == '<' ? -2 : 0;
            item++, n--;
        }
        int lv = lc_level_parse(item, n);
        if (lv < 0) {
            char q[48];
            qry_errf(err, "unknown level '%s'", err_quote(q, sizeof(q), item, n));
            return -EINVAL;
        }
        for (int l = 0; l < LC_LEVEL_COUNT; l++) {
            bool in = cmp == 0    ? l == lv
                      : cmp == 1  ? l >= lv
                      : cmp == 2  ? l > lv
                      : cmp == -1 ? l <= lv
                                  : l < lv;
            if (in)
                m |= 1u << l;
        }
        i = end + 1;
    } while (i <= len);
    *mask = m;
    return 0;
}

/* ---- Numbers, durations, times ---- */

/* Parse decimal digits at s[*i]; returns false on overflow or when there are none. */
static bool digits(const char *s, size_t len, size_t *i, uint64_t *v)
{
    size_t start = *i;
    uint64_t x = 0;
    for (; *i < len && s[*i] >= '0' && s[*i] <= '9'; (*i)++) {
        if (x > (UINT64_MAX - 9) / 10)
            return false;
        x = x * 10 + (uint64_t)(s[*i] - '0');
    }
    *v = x;
    return *i > start;
}

int val_duration(const char *s, size_t len, int64_t *ms, const char *field, char *err)
{
    int64_t total = 0;
    size_t i = 0;
    if (len == 0)
        goto fail;
    while (i < len) {
        uint64_t v;
        if (!digits(s, len, &i, &v) || v > INT64_MAX)
            goto fail;
        int64_t unit = 1000; /* A bare number is seconds. */
        if (i + 1 < len && (s[i] | 0x20) == 'm' && (s[i + 1] | 0x20) == 's')
            unit = 1, i += 2;
        else if (i < len) {
            switch (s[i] | 0x20) {
            case 's':
                unit = 1000;
                break;
            case 'm':
                unit = 60 * 1000;
                break;
            case 'h':
                unit = 3600 * 1000;
                break;
            case 'd':
                unit = 86400 * 1000;
                break;
            case 'w':
                unit = 7 * 86400 * 1000;
                break;
            default:
                goto fail;
            }
            i++;
        }
        int64_t part;
        if (__builtin_mul_overflow((int64_t)v, unit, &part) ||
            __builtin_add_overflow(total, part, &total))
            goto fail;
    }
    *ms = total;
    return 0;
fail:;
    char q[48];
    qry_errf(err, "bad duration '%s' in %s:", err_quote(q, sizeof(q), s, len), field);
    return -EINVAL;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* Exactly n digits at s[*i]. */
static bool fixed(const char *s, size_t len, size_t *i, size_t n, unsigned *v)
{
    unsigned x = 0;
    for (size_t k = 0; k < n; k++, (*i)++) {
        if (*i >= len || s[*i] < '0' || s[*i] > '9')
            return false;
        x = x * 10 + (unsigned)(s[*i] - '0');
    }
    *v = x;
    return true;
}

static bool parse_iso(const char *s, size_t len, bool end_of_day, int64_t *ms)
{
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    size_t i = 0;
    unsigned y, mo, d, h = 0, mi = 0, sec = 0, frac = 0;
    if (!fixed(s, len, &i, 4, &y) || i >= len || s[i++] != '-' || !fixed(s, len, &i, 2, &mo) ||
        i >= len || s[i++] != '-' || !fixed(s, len, &i, 2, &d))
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
        return false;
    int64_t day_ms = days_from_civil(y, mo, d) * 86400000;
    if (i == len) {
        *ms = end_of_day ? day_ms + 86399999 : day_ms;
        return true;
    }
    if (s[i] != 'T' && s[i] != 't' && s[i] != ' ')
        return false;
    i++;
    if (!fixed(s, len, &i, 2, &h) || i >= len || s[i++] != ':' || !fixed(s, len, &i, 2, &mi))
        return false;
    if (i < len && s[i] == ':') {
        i++;
        if (!fixed(s, len, &i, 2, &sec))
            return false;
        if (i < len && (s[i] == '.' || s[i] == ',')) {
            size_t start = ++i;
            for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
                if (i - start < 3)
                    frac = frac * 10 + (unsigned)(s[i] - '0');
            if (i == start)
                return false;
            for (size_t k = i - start; k < 3; k++)
                frac *= 10;
        }
    }
    if (h > 23 || mi > 59 || sec > 60)
        return false;
    int64_t offset_ms = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        int sign = s[i++] == '-' ? -1 : 1;
        unsigned oh, om = 0;
        if (!fixed(s, len, &i, 2, &oh))
            return false;
        if (i < len && s[i] == ':')
            i++;
        if (i < len && !fixed(s, len, &i, 2, &om))
            return false;
        if (oh > 23 || om > 59)
            return false;
        offset_ms = sign * (int64_t)(oh * 3600 + om * 60) * 1000;
    }
    if (i != len)
        return false;
    *ms = day_ms + (int64_t)(h * 3600 + mi * 60 + sec) * 1000 + frac - offset_ms;
    return true;
}

/* Unix seconds with an optional fraction. */
static bool parse_unix(const char *s, size_t len, int64_t *ms)
{
    size_t i = 0;
    uint64_t sec;
    if (!digits(s, len, &i, &sec) || sec > INT64_MAX / 1000 - 1)
        return false;
    int64_t frac = 0;
    if (i < len && s[i] == '.') {
        size_t start = ++i;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            if (i - start < 3)
                frac = frac * 10 + (s[i] - '0');
        if (i == start)
            return false;
        for (size_t k = i - start; k < 3; k++)
            frac *= 10;
    }
    if (i != len)
        return false;
    *ms = (int64_t)sec * 1000 + frac;
    return true;
}

int val_time(const char *s, size_t len, bool end_of_day, int64_t *ms, const char *field, char *err)
{
    if (len > 0 && (parse_unix(s, len, ms) || parse_iso(s, len, end_of_day, ms)))
        return 0;
    char q[48];
    qry_errf(err, "bad time '%s' in %s:", err_quote(q, sizeof(q), s, len), field);
    return -EINVAL;
}

int qry_parse_time(const char *s, size_t len, int64_t *ms, char *err)
{
    return val_time(s, len, false, ms, "time", err);
}

int qry_parse_duration(const char *s, size_t len, int64_t *ms, char *err)
{
    return val_duration(s, len, ms, "step", err);
}

int val_limit(const char *s, size_t len, uint64_t *out, char *err)
{
    size_t i = 0;
    if (digits(s, len, &i, out) && i == len)
        return 0;
    char q[48];
    qry_errf(err, "bad limit '%s' in limit:", err_quote(q, sizeof(q), s, len));
    return -EINVAL;
}

/* ---- Numbers with units (field comparisons and pipes) ----
 *
 * VictoriaLogs' rules: a plain number is [-]digits[.digits], '_' allowed between digits, no
 * exponent and no leading zero ("007" is text). A duration is one or more number+unit parts
 * (1h30m, 1.5s) in nanoseconds: ns, us or µs, ms, s, m, h, d, w, y (365 days). A size is one or
 * more number+suffix parts in bytes: B; K, KB (1000); M, MB; G, GB; T, TB; Ki, KiB (1024); Mi,
 * MiB; Gi, GiB; Ti, TiB; the last part may be a bare integer (1KiB24). Lower-case kb, kib, b
 * etc. are accepted too (never a lone lower-case k, m, g or t: "1m" is a minute). */

/* A number at s[*i] (a run of digits, '_' and '.'); false when the run is not a number. */
static bool num_prefix(const char *s, size_t len, size_t *i, double *v, bool *integral)
{
    char buf[72];
    size_t n = 0, start = *i, dot = SIZE_MAX;
    for (; *i < len && ((s[*i] >= '0' && s[*i] <= '9') || s[*i] == '_' || s[*i] == '.'); (*i)++) {
        if (s[*i] == '_')
            continue;
        if (s[*i] == '.') {
            if (dot != SIZE_MAX)
                return false;
            dot = n;
        }
        if (n + 1 >= sizeof(buf))
            return false;
        buf[n++] = s[*i];
    }
    if (n == 0 || s[start] == '_' || s[*i - 1] == '_' || dot == 0 || dot == n - 1)
        return false;
    size_t int_len = dot == SIZE_MAX ? n : dot;
    if (int_len > 1 && buf[0] == '0')
        return false;
    buf[n] = '\0';
    *v = strtod(buf, NULL);
    *integral = dot == SIZE_MAX;
    return true;
}

struct unit {
    const char *name;
    double mult;
};

static const struct unit dur_units[] = {
    {"\xc2\xb5s", 1e3}, {"us", 1e3},   {"ns", 1},      {"ms", 1e6},        {"s", 1e9},
    {"m", 60e9},        {"h", 3600e9}, {"d", 86400e9}, {"w", 7 * 86400e9}, {"y", 365 * 86400e9},
};

static const struct unit size_units[] = {
    {"KiB", 1024.0},
    {"MiB", 1048576.0},
    {"GiB", 1073741824.0},
    {"TiB", 1099511627776.0},
    {"kib", 1024.0},
    {"mib", 1048576.0},
    {"gib", 1073741824.0},
    {"tib", 1099511627776.0},
    {"Ki", 1024.0},
    {"Mi", 1048576.0},
    {"Gi", 1073741824.0},
    {"Ti", 1099511627776.0},
    {"KB", 1e3},
    {"MB", 1e6},
    {"GB", 1e9},
    {"TB", 1e12},
    {"kb", 1e3},
    {"mb", 1e6},
    {"gb", 1e9},
    {"tb", 1e12},
    {"B", 1},
    {"b", 1},
    {"K", 1e3},
    {"M", 1e6},
    {"G", 1e9},
    {"T", 1e12},
};

/* The longest unit of the table at s[i] (tables list longer names first). */
static const struct unit *unit_at(const struct unit *u, size_t nu, const char *s, size_t len,
                                  size_t i)
{
    for (size_t k = 0; k < nu; k++) {
        size_t n = strlen(u[k].name);
        if (n <= len - i && memcmp(s + i, u[k].name, n) == 0)
            return &u[k];
    }
    return NULL;
}

/* Parts of number+unit; a bare last part only when bare_last (sizes). */
static bool num_units(const char *s, size_t len, const struct unit *u, size_t nu, bool bare_last,
                      double *out)
{
    double total = 0;
    size_t i = 0;
    while (i < len) {
        double v;
        bool integral;
        if (!num_prefix(s, len, &i, &v, &integral))
            return false;
        if (i == len) {
            if (!bare_last || !integral)
                return false;
            total += v;
            break;
        }
        const struct unit *un = unit_at(u, nu, s, len, i);
        if (!un)
            return false;
        total += v * un->mult;
        i += strlen(un->name);
    }
    *out = total;
    return true;
}

bool val_number(const char *s, size_t len, double *out, enum qnum_kind *kind)
{
    bool neg = len > 0 && s[0] == '-';
    if (neg)
        s++, len--;
    if (len == 0)
        return false;
    double v;
    bool integral;
    size_t i = 0;
    enum qnum_kind k;
    if (num_prefix(s, len, &i, &v, &integral) && i == len)
        k = QNUM_PLAIN;
    else if (num_units(s, len, dur_units, sizeof(dur_units) / sizeof(dur_units[0]), false, &v))
        k = QNUM_DURATION;
    else if (num_units(s, len, size_units, sizeof(size_units) / sizeof(size_units[0]), true, &v))
        k = QNUM_SIZE;
    else
        return false;
    *out = neg ? -v : v;
    if (kind)
        *kind = k;
    return true;
}

/* ---- Regexes ---- */

struct qry_regex {
    pcre2_code *code;
    pcre2_match_context *mctx; /* Read-only while matching, so shared by threads. */
    bool jit;                  /* JIT compilation succeeded: use pcre2_jit_match. */
    struct ci_needle needle;   /* What every match contains (regex_literal); len 0: none. */
    char lit[QRY_LITERAL_MAX]; /* The needle's bytes. */
};

static pthread_key_t md_key;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static __thread pcre2_match_data *md_cache; /* This thread's match data, or NULL. */

static void md_destroy(void *p)
{
    pcre2_match_data_free(p);
}

static void md_key_init(void)
{
    if (pthread_key_create(&md_key, md_destroy) != 0)
        abort(); /* Only when the process has run out of keys: nothing sensible to do. */
}

/* One pair of offsets suffices for every pattern: a match with more groups than fit still
 * reports success (return code 0), and only success matters here. */
static pcre2_match_data *thread_match_data(void)
{
    if (md_cache)
        return md_cache;
    pthread_once(&md_once, md_key_init);
    md_cache = pcre2_match_data_create(1, NULL);
    if (md_cache)
        pthread_setspecific(md_key, md_cache);
    return md_cache;
}

int regex_compile(const char *pat, size_t len, bool caseless, struct qry_regex **out, char *err)
{
    struct qry_regex *re = calloc(1, sizeof(*re));
    *out = NULL;
    if (!re)
        goto nomem;
    int code;
    PCRE2_SIZE off;
    re->code = pcre2_compile((PCRE2_SPTR)(pat ? pat : ""), len, caseless ? PCRE2_CASELESS : 0,
                             &code, &off, NULL);
    if (!re->code) {
        PCRE2_UCHAR msg[120];
        if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "error %d", code);
        qry_errf(err, "invalid regex: %s at offset %zu", (const char *)msg, (size_t)off);
        free(re);
        return -EINVAL;
    }
    re->jit = pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE) == 0;
    re->mctx = pcre2_match_context_create(NULL);
    if (!re->mctx)
        goto nomem;
    ci_needle_init(&re->needle, re->lit, regex_literal(pat, len, re->lit));
    pcre2_set_match_limit(re->mctx, REGEX_MATCH_LIMIT);
    pcre2_set_depth_limit(re->mctx, REGEX_DEPTH_LIMIT);
    *out = re;
    return 0;
nomem:
    regex_free(re);
    qry_errf(err, "out of memory");
    return -ENOMEM;
}

bool regex_match(const struct qry_regex *re, const char *s, size_t len)
{
    /* The vector search rules most subjects out for a fraction of a PCRE2 call. */
    if (re->needle.len && !ci_needle_find(&re->needle, s, len))
        return false;
    pcre2_match_data *md = thread_match_data();
    if (!md)
        return false;
    PCRE2_SPTR subject = (PCRE2_SPTR)(s ? s : "");
    int rc = re->jit ? pcre2_jit_match(re->code, subject, len, 0, 0, md, re->mctx)
                     : pcre2_match(re->code, subject, len, 0, 0, md, re->mctx);
    return rc >= 0; /* Errors, including hitting the match limit, count as no match. */
}

const struct ci_needle *regex_needle(const struct qry_regex *re)
{
    return re->needle.len ? &re->needle : NULL;
}

void regex_free(struct qry_regex *re)
{
    if (!re)
        return;
    pcre2_match_context_free(re->mctx);
    pcre2_code_free(re->code);
    free(re);
}
