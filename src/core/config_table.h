/* config_table.h - the shape of the option table, shared by the table (config_table.c) and the
 * machinery that reads it (config.c). Internal to those two files: other modules see struct
 * config only. */
#ifndef LC_CONFIG_TABLE_H
#define LC_CONFIG_TABLE_H

#include <stddef.h>
#include <stdio.h>

#include "core/config.h"

/* How an option's value is read, stored and printed. */
enum opt_type {
    OPT_BOOL,   /* bool: a flag without a value; yes/no, on/off, true/false, 1/0 in the file. */
    OPT_INT,    /* int, long or bool field: a whole number within [lo, hi]. */
    OPT_SIZE,   /* Bytes, "64K", "1.5G" (binary units), within [lo, hi] (hi 0: no limit). */
    OPT_AGE,    /* int64_t milliseconds from "90" (seconds), "15m", "12h", "7d", "2w". */
    OPT_RATE,   /* double per second, 0 to 1e9 (0: no limit). */
    OPT_STRING, /* const char *, NULL when unset. */
    OPT_ENUM,   /* One of choices[]: its value is stored as OPT_INT stores. */
    OPT_CIDRS,  /* struct cidr[] with its count at count_off: a comma-separated list, appended. */
    OPT_TOKENS, /* The role's secrets (struct policy's tokens and ntokens), appended. */
    OPT_ALIAS,  /* Another name for the option alias_of (a full flag name, role included). */
    OPT_CUSTOM, /* Read by set() and printed by print(): nothing generic fits. */
};

enum {
    OPTF_ROLE = 1 << 0,     /* One per role: --ROLE-name, key name in [ROLE]; field in policy. */
    OPTF_LOG_ONLY = 1 << 1, /* With OPTF_ROLE: only the log role has it (--log-line-rate). */
    OPTF_CLI_ONLY = 1 << 2, /* Not a setting: no INI key, not printed (--help, --config). */
    OPTF_FIRST = 1 << 3,    /* Read before the configuration file (--config). */
};

struct opt_choice {
    const char *name;
    int value;
};

struct opt {
    const char *name; /* Long flag; INI key in [server], or in [ROLE] for OPTF_ROLE. */
    char short_name;  /* -v; 0: none. */
    enum opt_type type;
    unsigned flags;              /* OPTF_*. */
    size_t off, size;            /* The field: in struct config, or struct policy (OPTF_ROLE). */
    size_t count_off;            /* OPT_CIDRS: its count's offset beside the field. */
    const char *arg;             /* The value in --help ("N", "SIZE"); NULL: takes no value. */
    const char *def[ROLE_COUNT]; /* The default as a user writes it (def[role] for OPTF_ROLE;
                                  * def[0] when that is NULL); NULL: zero, unset or empty. */
    const char *def_text;        /* The default in --help when def cannot say it. */
    long long lo, hi;            /* OPT_INT, OPT_SIZE. */
    const struct opt_choice *choices; /* OPT_ENUM, ended by a NULL name. */
    const char *alias_of;             /* OPT_ALIAS. */
    const char *empty;                /* OPT_CIDRS, OPT_STRING: what an empty value means. */
    /* OPT_CUSTOM, or a check in place of the generic OPT_STRING store: returns 0, 1 to stop
     * (--help printed), or -1 after printing one line that names the option. v is NULL for
     * a flag without a value. */
    int (*set)(struct config *c, const struct opt *o, int role, const char *v);
    /* OPT_CUSTOM, or a value in place of the generic one: prints "key = value" lines. */
    void (*print)(const struct config *c, const struct opt *o, int role, FILE *out);
    void (*init)(struct config *c); /* A default that must be computed (threads: the cores). */
    const char *group;              /* Starts a group of --help under this heading. */
    const char *help;               /* One sentence or two for --help; wrapped there. */
};

extern const struct opt config_opts[];
extern const size_t config_nopts;
extern const char config_usage_head[], config_usage_tail[];
extern const char *const config_role_names[ROLE_COUNT];

/* Rules across options, after the file and every flag are read. Returns 0 or -1 after
 * printing why. */
int config_table_check(struct config *c);

/* The machinery (config.c), for the table's own setters and rules. */
const struct opt *config_find(const char *name);
bool config_given(const struct config *c, const struct opt *o, int role);
void config_usage(FILE *out); /* --help. */
/* An OPT_AGE value ("90" seconds, "15m", "12h", "7d", "2w") to milliseconds: 0 or -EINVAL. */
int config_parse_age(const char *s, int64_t *ms);
/* Milliseconds as the largest whole unit ("7d", "90s"), written to buf; returns buf. */
const char *config_fmt_age(int64_t ms, char *buf, size_t cap);

#endif
