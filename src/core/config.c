/* config.c - the machinery the option table (config_table.c) drives: defaults, the command
 * line (getopt_long), the INI file (Debian's libinih), --help and --check-config. It knows
 * option types, not options: reading, checking, storing and printing a value is one function
 * per type here, so every option of a type behaves and fails alike, and its error names it. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config_table.h"
#include "core/log.h"

#include <ini.h>

#define NAME_MAX_LEN 48     /* "query-max-conns-per-ip" and the like. */
#define OPT_VAL_BASE 0x1000 /* getopt values: OPT_VAL_BASE + index * ROLE_COUNT + role. */
#define HELP_COLUMN  27
#define HELP_WIDTH   90 /* Wide enough for a table of flags, narrow enough to read. */

/* ------------------------------------------------------------------------------------------ */
/* Values: sizes and ages, read and written the way a user writes them. */

/* "123", "64K", "1.5G", "1MiB" (binary units) to bytes. */
static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        return -EINVAL;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -EINVAL;
    static const char units[] = "KMG";
    char unit = (char)(*end & ~0x20);
    const char *u = unit ? strchr(units, unit) : NULL;
    if (u) {
        for (const char *k = units; k <= u; k++)
            v *= 1024.0;
        end++;
    }
    if (*end == 'B' || *end == 'b' || (*end == 'i' && end[1] == 'B' && end++))
        end++;
    if (*end || v > (double)SIZE_MAX / 2)
        return -EINVAL;
    *out = (uint64_t)v;
    return 0;
}

/* The largest unit that says v exactly, so that the print-out reads back as it was meant. */
static const char *fmt_size(uint64_t v, char *buf, size_t cap)
{
    static const char units[] = "GMK";
    for (int i = 0; v && i < 3; i++) {
        uint64_t unit = (uint64_t)1 << (10 * (3 - i));
        if (v % unit == 0) {
            snprintf(buf, cap, "%llu%c", (unsigned long long)(v / unit), units[i]);
            return buf;
        }
    }
    snprintf(buf, cap, "%llu", (unsigned long long)v);
    return buf;
}

static const struct {
    char unit;
    int64_t ms;
} age_units[] = {{'w', 7 * 86400000LL}, {'d', 86400000}, {'h', 3600000}, {'m', 60000}, {'s', 1000}};

/* "90" (seconds), "15m", "12h", "7d", "2w" to milliseconds (config_table.h). */
int config_parse_age(const char *s, int64_t *ms)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return -EINVAL;
    int64_t mult = 1000;
    if (end[0] == 'm' && end[1] == 's') { /* Milliseconds: a timeout may be short. */
        mult = 1;
        end += 2;
    }
    for (size_t i = 0; *end && mult != 1 && i < sizeof(age_units) / sizeof(age_units[0]); i++)
        if (*end == age_units[i].unit) {
            mult = age_units[i].ms;
            end++;
            break;
        }
    if (*end || v > INT64_MAX / mult)
        return -EINVAL;
    *ms = v * mult;
    return 0;
}

const char *config_fmt_age(int64_t ms, char *buf, size_t cap)
{
    for (size_t i = 0; ms && i < sizeof(age_units) / sizeof(age_units[0]); i++)
        if (ms % age_units[i].ms == 0) {
            snprintf(buf, cap, "%lld%c", (long long)(ms / age_units[i].ms), age_units[i].unit);
            return buf;
        }
    if (ms % 1000)
        snprintf(buf, cap, "%lldms", (long long)ms);
    else
        snprintf(buf, cap, "%lld", (long long)(ms / 1000));
    return buf;
}

/* Whole numbers live in fields of several widths (bool, int, size_t, uint64_t). */
static void put_int(void *f, size_t size, long long v)
{
    if (size == sizeof(bool))
        *(bool *)f = v != 0;
    else if (size == sizeof(int))
        *(int *)f = (int)v;
    else if (size == sizeof(int64_t))
        *(int64_t *)f = v;
    else
        lc_assert(!"an option field of an unknown width");
}

static long long get_int(const void *f, size_t size)
{
    return size == sizeof(bool)  ? *(const bool *)f
           : size == sizeof(int) ? *(const int *)f
                                 : (long long)*(const int64_t *)f;
}

static int parse_bool(const char *v)
{
    static const char *const yes[] = {"1", "true", "yes", "on"}, *const no[] = {"0", "false", "no",
                                                                                "off"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(v, yes[i]) || !strcmp(v, no[i]))
            return !strcmp(v, yes[i]);
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Finding options and their fields. */

static bool has_role(const struct opt *o, int role)
{
    if (!(o->flags & OPTF_ROLE))
        return role == 0;
    return !(o->flags & OPTF_LOG_ONLY) || role == ROLE_LOG;
}

/* The flag's name without its dashes: "log-conn-rate" for a role's option. */
static const char *flag_name(const struct opt *o, int role, char *buf)
{
    if (!(o->flags & OPTF_ROLE))
        return o->name;
    snprintf(buf, NAME_MAX_LEN, "%s-%s", config_role_names[role], o->name);
    return buf;
}

static void *config_field(struct config *c, const struct opt *o, int role)
{
    char *base = o->flags & OPTF_ROLE ? (char *)&c->policy[role] : (char *)c;
    return base + o->off;
}

static const void *field_of(const struct config *c, const struct opt *o, int role)
{
    return config_field((struct config *)c, o, role);
}

const struct opt *config_find(const char *name)
{
    for (size_t i = 0; i < config_nopts; i++)
        if (!strcmp(config_opts[i].name, name))
            return &config_opts[i];
    return NULL;
}

/* A flag name, role included ("irc-token"), to its option and role. */
static const struct opt *find_flag(const char *flag, int *role)
{
    char buf[NAME_MAX_LEN];
    for (size_t i = 0; i < config_nopts; i++)
        for (int r = 0; r < ROLE_COUNT; r++)
            if (has_role(&config_opts[i], r) && !strcmp(flag_name(&config_opts[i], r, buf), flag)) {
                *role = r;
                return &config_opts[i];
            }
    return NULL;
}

bool config_given(const struct config *c, const struct opt *o, int role)
{
    return c->given[o - config_opts] & (1u << role);
}

/* ------------------------------------------------------------------------------------------ */
/* Setting one value: each type's reader. Returns 0, 1 (stop: --help was printed), or -1 after
 * printing one line that names the flag. v is NULL for a flag without a value. */

static int set_cidrs(struct config *c, const struct opt *o, int role, const char *name,
                     const char *v)
{
    char bad[80];
    int *n = (int *)((char *)&c->policy[role] + o->count_off);
    if (cidr_list_parse(v, config_field(c, o, role), n, POLICY_MAX_CIDRS, bad, sizeof(bad)) < 0) {
        fprintf(stderr,
                "logcasterd: --%s: '%s' is not an address range (e.g. 10.0.0.0/8, 192.168.1.7, "
                "::1, fd00::/8)\n",
                name, bad);
        return -1;
    }
    return 0;
}

static int set_token(struct config *c, int role, const char *name, const char *v)
{
    struct policy *p = &c->policy[role];
    if (p->ntokens == POLICY_MAX_TOKENS || !*v || strlen(v) >= POLICY_TOKEN_MAX ||
        strpbrk(v, " \t\r\n")) {
        fprintf(stderr, "logcasterd: --%s: at most %d secrets of 1 to %d bytes without spaces\n",
                name, POLICY_MAX_TOKENS, POLICY_TOKEN_MAX - 1);
        return -1;
    }
    snprintf(p->tokens[p->ntokens++], POLICY_TOKEN_MAX, "%s", v);
    return 0;
}

static int set_value(struct config *c, const struct opt *o, int role, const char *v)
{
    char buf[NAME_MAX_LEN], *end;
    const char *name = flag_name(o, role, buf);
    void *f = config_field(c, o, role);
    if (o->set)
        return o->set(c, o, role, v);
    switch (o->type) {
    case OPT_BOOL: {
        int b = v ? parse_bool(v) : 1;
        if (b < 0) {
            fprintf(stderr, "logcasterd: --%s takes yes or no, not '%s'\n", name, v);
            return -1;
        }
        *(bool *)f = b;
        return 0;
    }
    case OPT_INT: {
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (errno || end == v || *end || n < o->lo || n > o->hi) {
            fprintf(stderr, "logcasterd: invalid value '%s' for --%s (expected %lld..%lld)\n", v,
                    name, o->lo, o->hi);
            return -1;
        }
        put_int(f, o->size, n);
        return 0;
    }
    case OPT_SIZE: {
        uint64_t n;
        if (parse_size(v, &n) < 0 || n < (uint64_t)o->lo || (o->hi && n > (uint64_t)o->hi)) {
            char lo[32], hi[32], most[48] = "";
            if (o->hi)
                snprintf(most, sizeof(most), ", at most %s",
                         fmt_size((uint64_t)o->hi, hi, sizeof(hi)));
            fprintf(stderr,
                    "logcasterd: invalid size '%s' for --%s (e.g. 65536, 64K, 1G; at least %s%s)\n",
                    v, name, fmt_size((uint64_t)o->lo, lo, sizeof(lo)), most);
            return -1;
        }
        put_int(f, o->size, (long long)n);
        return 0;
    }
    case OPT_AGE:
        if (config_parse_age(v, f) < 0) {
            fprintf(stderr, "logcasterd: invalid --%s '%s' (e.g. 7d, 12h, 90s, 0)\n", name, v);
            return -1;
        }
        return 0;
    case OPT_RATE: {
        errno = 0;
        double r = strtod(v, &end);
        if (errno || end == v || *end || r < 0 || r > 1e9) {
            fprintf(stderr, "logcasterd: invalid --%s '%s' (a rate per second, 0 = no limit)\n",
                    name, v);
            return -1;
        }
        *(double *)f = r;
        return 0;
    }
    case OPT_STRING:
        *(const char **)f = v;
        return 0;
    case OPT_ENUM: {
        char list[128] = "";
        for (const struct opt_choice *ch = o->choices; ch->name; ch++) {
            if (!strcmp(ch->name, v)) {
                put_int(f, o->size, ch->value);
                return 0;
            }
            size_t len = strlen(list);
            snprintf(list + len, sizeof(list) - len, "%s%s",
                     !len         ? ""
                     : ch[1].name ? ", "
                                  : " or ",
                     ch->name);
        }
        fprintf(stderr, "logcasterd: --%s takes %s, not '%s'\n", name, list, v);
        return -1;
    }
    case OPT_CIDRS:
        return set_cidrs(c, o, role, name, v);
    case OPT_TOKENS:
        return set_token(c, role, name, v);
    case OPT_ALIAS:
    case OPT_CUSTOM:
        break;
    }
    lc_assert(!"an option without a reader");
    return -1;
}

/* An alias stands for its target in everything: reading, the list it replaces, "given". */
static const struct opt *resolve(const struct opt *o, int *role)
{
    if (o->type != OPT_ALIAS)
        return o;
    const struct opt *t = find_flag(o->alias_of, role);
    lc_assert(t != NULL);
    return t;
}

static int apply(struct config *c, const struct opt *o, int role, const char *v)
{
    o = resolve(o, &role);
    int r = set_value(c, o, role, v);
    if (r == 0)
        c->given[o - config_opts] |= (uint8_t)(1u << role);
    return r;
}

/* The list an option appends to (its count), or NULL when it is not a list. */
static int *list_count(struct config *c, const struct opt *o, int role)
{
    o = resolve(o, &role);
    if (o->type == OPT_CIDRS)
        return (int *)((char *)&c->policy[role] + o->count_off);
    if (o->type == OPT_TOKENS)
        return &c->policy[role].ntokens;
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Defaults. */

static const char *default_of(const struct opt *o, int role)
{
    return o->def[role] ? o->def[role] : o->def[0];
}

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < config_nopts; i++) {
        const struct opt *o = &config_opts[i];
        if (o->init)
            o->init(c);
        for (int r = 0; r < ROLE_COUNT; r++) {
            if (!has_role(o, r) || !default_of(o, r))
                continue;
            int rc = set_value(c, o, r, default_of(o, r));
            lc_assert(rc == 0); /* A default the option's own reader refuses is a typo. */
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* The configuration file: INI. A key in [server] (or before any section) is an option's long
 * name; a key in [log], [query], [irc] or [http] is that role's option without the role. */

struct ini_state {
    struct config *c;
    const char *file;
    FILE *f;
    int line;
    int errors;
};

/* Strings from the file must outlive it: kept here (reachable, so leak checkers agree). */
static char *kept[1024];
static size_t nkept;

static const char *keep(const char *v)
{
    char *d = strdup(v);
    if (d && nkept < sizeof(kept) / sizeof(kept[0]))
        kept[nkept++] = d;
    return d ? d : "";
}

static char *ini_read_line(char *str, int num, void *stream)
{
    struct ini_state *st = stream;
    char *r = fgets(str, num, st->f);
    if (r)
        st->line++;
    return r;
}

static const struct opt *ini_key(const char *section, const char *key, int *role)
{
    for (int r = 0; r < ROLE_COUNT; r++) {
        if (strcmp(section, config_role_names[r]) != 0)
            continue;
        *role = r;
        for (size_t i = 0; i < config_nopts; i++)
            if (has_role(&config_opts[i], r) && (config_opts[i].flags & OPTF_ROLE) &&
                !strcmp(config_opts[i].name, key))
                return &config_opts[i];
        return NULL;
    }
    *role = 0;
    for (size_t i = 0; i < config_nopts; i++)
        if (!(config_opts[i].flags & (OPTF_ROLE | OPTF_CLI_ONLY)) &&
            !strcmp(config_opts[i].name, key))
            return &config_opts[i];
    return NULL;
}

static int ini_entry(void *user, const char *section, const char *key, const char *value)
{
    struct ini_state *st = user;
    bool known = !*section || !strcmp(section, "server");
    for (int r = 0; r < ROLE_COUNT; r++)
        known |= !strcmp(section, config_role_names[r]);
    if (!known) {
        fprintf(stderr,
                "logcasterd: %s:%d: unknown section [%s] (use [server], [log], [query], [irc] or "
                "[http])\n",
                st->file, st->line, section);
        st->errors++;
        return 1;
    }
    int role;
    const struct opt *o = ini_key(section, key, &role);
    if (!o) {
        fprintf(stderr, "logcasterd: %s:%d: unknown setting '%s'%s%s%s\n", st->file, st->line, key,
                *section ? " in [" : "", section, *section ? "]" : "");
        st->errors++;
        return 1;
    }
    int r;
    if (!o->arg && o->type != OPT_BOOL) { /* A flag without a value: yes runs it, no does not. */
        int b = parse_bool(value);
        if (b < 0)
            fprintf(stderr, "logcasterd: --%s takes yes or no, not '%s'\n", o->name, value);
        r = b < 0 ? -1 : b ? apply(st->c, o, role, NULL) : 0;
    } else {
        r = apply(st->c, o, role, keep(value));
    }
    if (r != 0) {
        fprintf(stderr, "logcasterd: %s:%d: invalid value for %s (see above)\n", st->file, st->line,
                key);
        st->errors++;
    }
    return 1;
}

static int load_file(struct config *c, const char *file)
{
    struct ini_state st = {c, file, fopen(file, "r"), 0, 0};
    if (!st.f) {
        fprintf(stderr, "logcasterd: cannot read --config %s: %s\n", file, strerror(errno));
        return -1;
    }
    int r = ini_parse_stream(ini_read_line, &st, ini_entry, &st);
    fclose(st.f);
    if (r > 0) {
        fprintf(stderr, "logcasterd: %s:%d: not an INI line (key = value, or [section])\n", file,
                r);
        st.errors++;
    }
    return st.errors ? -1 : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The command line. */

static struct option gopts[CONFIG_MAX_OPTS * ROLE_COUNT + 1];
static char gnames[CONFIG_MAX_OPTS * ROLE_COUNT][NAME_MAX_LEN];
static char gshort[2 * CONFIG_MAX_OPTS + 2];
static pthread_once_t gopts_once = PTHREAD_ONCE_INIT;

static void build_gopts(void)
{
    size_t n = 0, ns = 0;
    gshort[ns++] = ':'; /* Report a missing value as ':' rather than '?'. */
    for (size_t i = 0; i < config_nopts; i++) {
        const struct opt *o = &config_opts[i];
        for (int r = 0; r < ROLE_COUNT; r++) {
            if (!has_role(o, r))
                continue;
            gopts[n] = (struct option){flag_name(o, r, gnames[n]),
                                       o->arg ? required_argument : no_argument, NULL,
                                       OPT_VAL_BASE + (int)i * ROLE_COUNT + r};
            n++;
        }
        if (o->short_name) {
            gshort[ns++] = o->short_name;
            if (o->arg)
                gshort[ns++] = ':';
        }
    }
    gopts[n] = (struct option){0, 0, 0, 0};
    gshort[ns] = 0;
}

/* The option and role a getopt_long result stands for; NULL for ':' and '?'. */
static const struct opt *from_getopt(int val, int *role)
{
    *role = 0;
    if (val >= OPT_VAL_BASE) {
        *role = (val - OPT_VAL_BASE) % ROLE_COUNT;
        return &config_opts[(val - OPT_VAL_BASE) / ROLE_COUNT];
    }
    for (size_t i = 0; val > 0 && i < config_nopts; i++)
        if (config_opts[i].short_name == val)
            return &config_opts[i];
    return NULL;
}

int config_parse(struct config *c, int argc, char **argv)
{
    pthread_once(&gopts_once, build_gopts);
    /* --config first, so that flags override the file whatever their order. */
    optind = 1;
    opterr = 0;
    int o, role;
    while ((o = getopt_long(argc, argv, gshort, gopts, NULL)) != -1) {
        const struct opt *opt = from_getopt(o, &role);
        if (opt && (opt->flags & OPTF_FIRST) && apply(c, opt, role, optarg) != 0)
            return -1;
    }
    if (c->config_file && load_file(c, c->config_file) < 0)
        return -1;
    /* A list given by flags replaces the file's list rather than adding to it. */
    int *replaced[64];
    size_t nreplaced = 0;
    optind = 1;
    while ((o = getopt_long(argc, argv, gshort, gopts, NULL)) != -1) {
        if (o == ':') {
            fprintf(stderr, "logcasterd: option '%s' needs a value (see --help)\n",
                    argv[optind - 1]);
            return -1;
        }
        const struct opt *opt = from_getopt(o, &role);
        if (!opt) {
            fprintf(stderr, "logcasterd: unknown option '%s' (see --help)\n", argv[optind - 1]);
            return -1;
        }
        if (opt->flags & OPTF_FIRST)
            continue;
        int *count = list_count(c, opt, role);
        bool seen = false;
        for (size_t i = 0; count && i < nreplaced; i++)
            seen |= replaced[i] == count;
        if (count && !seen && nreplaced < sizeof(replaced) / sizeof(replaced[0])) {
            *count = 0;
            replaced[nreplaced++] = count;
        }
        int r = apply(c, opt, role, optarg);
        if (r != 0)
            return r;
    }
    if (optind < argc) {
        fprintf(stderr, "logcasterd: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    return config_table_check(c);
}

/* ------------------------------------------------------------------------------------------ */
/* --help. */

/* "(default 64M)", or "(defaults: log 100, query 100, irc 20, http 200)" when roles differ;
 * empty when the help text says it already or there is nothing to say. */
static void default_note(const struct opt *o, char *buf, size_t cap)
{
    buf[0] = 0;
    if (strstr(o->help, "default:"))
        return;
    if (o->def_text) {
        snprintf(buf, cap, "(default: %s)", o->def_text);
        return;
    }
    bool same = true;
    for (int r = 1; r < ROLE_COUNT; r++)
        same &= !has_role(o, r) || !strcmp(default_of(o, r) ? default_of(o, r) : "",
                                           default_of(o, 0) ? default_of(o, 0) : "");
    if (same) {
        if (default_of(o, 0))
            snprintf(buf, cap, "(default %s)", default_of(o, 0));
        return;
    }
    size_t n = (size_t)snprintf(buf, cap, "(defaults:");
    for (int r = 0; r < ROLE_COUNT && n < cap; r++)
        n += (size_t)snprintf(buf + n, cap - n, "%s %s %s", r ? "," : "", config_role_names[r],
                              default_of(o, r));
    if (n < cap)
        snprintf(buf + n, cap - n, ")");
}

/* Words of text from column `at` to HELP_WIDTH, continued at HELP_COLUMN. */
static void wrap(FILE *out, int at, const char *text)
{
    int col = at;
    for (bool first = true; *text; first = false) {
        size_t w = strcspn(text, " ");
        if (!first && col + 1 + (int)w > HELP_WIDTH) {
            fprintf(out, "\n%*s", HELP_COLUMN, "");
            col = HELP_COLUMN;
        } else if (!first) {
            fputc(' ', out);
            col++;
        }
        fprintf(out, "%.*s", (int)w, text);
        col += (int)w;
        text += w;
        while (*text == ' ')
            text++;
    }
    fputc('\n', out);
}

void config_usage(FILE *out)
{
    fputs(config_usage_head, out);
    for (size_t i = 0; i < config_nopts; i++) {
        const struct opt *o = &config_opts[i];
        if (o->group)
            fprintf(out, "\n%s\n", o->group);
        char flag[96], note[128], text[1024];
        int n = o->short_name ? snprintf(flag, sizeof(flag), "  -%c, --", o->short_name)
                              : snprintf(flag, sizeof(flag), "  --");
        if (!(o->flags & OPTF_ROLE))
            n += snprintf(flag + n, sizeof(flag) - (size_t)n, "%s", o->name);
        else
            n += snprintf(flag + n, sizeof(flag) - (size_t)n, "%s-%s",
                          o->flags & OPTF_LOG_ONLY ? "log" : "ROLE", o->name);
        if (o->arg)
            snprintf(flag + n, sizeof(flag) - (size_t)n, " %s", o->arg);
        default_note(o, note, sizeof(note));
        snprintf(text, sizeof(text), "%s%s%s", o->help, *note ? " " : "", note);
        int w = (int)strlen(flag);
        if (w + 2 > HELP_COLUMN) {
            fprintf(out, "%s  ", flag);
            wrap(out, w + 2, text);
        } else {
            fprintf(out, "%-*s", HELP_COLUMN, flag);
            wrap(out, HELP_COLUMN, text);
        }
    }
    fprintf(out, "\n%s", config_usage_tail);
}

/* ------------------------------------------------------------------------------------------ */
/* --check-config: every setting, as a file would set it. */

static void print_cidrs(FILE *out, const char *key, const struct cidr *l, int n, const char *none)
{
    fprintf(out, "%s = ", key);
    for (int i = 0; i < n; i++) {
        char a[64];
        inet_ntop(l[i].family, l[i].addr, a, sizeof(a));
        fprintf(out, "%s%s/%d", i ? "," : "", a, l[i].bits);
    }
    fprintf(out, "%s\n", n ? "" : none ? none : "(none)");
}

static void print_opt(const struct config *c, const struct opt *o, int role, FILE *out)
{
    const void *f = field_of(c, o, role);
    char buf[64];
    if (o->print) {
        o->print(c, o, role, out);
        return;
    }
    switch (o->type) {
    case OPT_BOOL:
        fprintf(out, "%s = %s\n", o->name, *(const bool *)f ? "yes" : "no");
        return;
    case OPT_INT:
        fprintf(out, "%s = %lld\n", o->name, get_int(f, o->size));
        return;
    case OPT_SIZE:
        fprintf(out, "%s = %s\n", o->name,
                fmt_size((uint64_t)get_int(f, o->size), buf, sizeof(buf)));
        return;
    case OPT_AGE:
        fprintf(out, "%s = %s\n", o->name, config_fmt_age(*(const int64_t *)f, buf, sizeof(buf)));
        return;
    case OPT_RATE:
        fprintf(out, "%s = %g\n", o->name, *(const double *)f);
        return;
    case OPT_STRING: {
        const char *s = *(const char *const *)f;
        fprintf(out, "%s = %s\n", o->name, s ? s : o->empty ? o->empty : "(none)");
        return;
    }
    case OPT_ENUM:
        for (const struct opt_choice *ch = o->choices; ch->name; ch++)
            if (ch->value == get_int(f, o->size)) {
                fprintf(out, "%s = %s\n", o->name, ch->name);
                return;
            }
        fprintf(out, "%s = %lld\n", o->name, get_int(f, o->size));
        return;
    case OPT_CIDRS:
        print_cidrs(out, o->name, f, *(const int *)((const char *)&c->policy[role] + o->count_off),
                    o->empty);
        return;
    case OPT_TOKENS:
        fprintf(out, "%s = %d configured (not shown)\n", o->name, c->policy[role].ntokens);
        return;
    case OPT_ALIAS: {
        int r;
        const struct opt *t = find_flag(o->alias_of, &r);
        fprintf(out, "%s = (see %s in [%s])\n", o->name, t->name, config_role_names[r]);
        return;
    }
    case OPT_CUSTOM:
        break;
    }
    lc_assert(!"an option without a printer");
}

void config_print(const struct config *c, FILE *out)
{
    for (int section = -1; section < ROLE_COUNT; section++) {
        fprintf(out, "%s[%s]\n", section < 0 ? "" : "\n",
                section < 0 ? "server" : config_role_names[section]);
        for (size_t i = 0; i < config_nopts; i++) {
            const struct opt *o = &config_opts[i];
            if (o->flags & OPTF_CLI_ONLY)
                continue;
            if (section < 0 ? !(o->flags & OPTF_ROLE)
                            : (o->flags & OPTF_ROLE) && has_role(o, section))
                print_opt(c, o, section < 0 ? 0 : section, out);
        }
    }
}
