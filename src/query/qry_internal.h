/* qry_internal.h - what the query module's files share: tokens, the AST, prepared needles.
 *
 * The lexer (lexer.c) cuts a query text into tokens that are slices of the text; the parser
 * (parse.c) turns them into a tree of qnodes with every value already decoded (lowercase-
 * insensitive needles prepared, level masks, absolute millisecond bounds, compiled regexes,
 * done by value.c); the matcher (match.c) walks the tree per entry, and skip.c per block,
 * without allocating. cisearch.c holds the substring search both the matcher and the stores use. */
#ifndef LC_QRY_INTERNAL_H
#define LC_QRY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/field.h"
#include "query/qry.h"

#define QRY_MAX_TEXT  4096 /* Longest accepted query text, in bytes. */
#define QRY_MAX_DEPTH 64   /* Deepest nesting of parentheses and negations. */
#define QRY_MAX_TERMS 256  /* Most leaf terms (words, fields, regexes) in one query. */

/* ---- Substring search (cisearch.c) ---- */

/* A needle prepared once for many searches: two of the bytes the vector loop tests first are
 * the rarest ones in typical log text, which keeps candidate verifications rare; the third is
 * the last, which tells "latency_ms=19" from the "latency_ms=" that starts it in every line. */
struct ci_needle {
    const char *s; /* The needle; borrowed, any case. */
    size_t len;
    size_t off1, off2, off3; /* Positions of the filter bytes (off1 < off2 unless len == 1; */
    uint8_t b1, b2, b3;      /* off3 = len - 1), with 0x20 OR-ed in, as the filter compares. */
};

/* Prepare needle s (borrowed; must outlive *n). */
void ci_needle_init(struct ci_needle *n, const char *s, size_t len);

/* Find n in hay; same contract as ci_memmem. */
const char *ci_needle_find(const struct ci_needle *n, const char *hay, size_t hay_len);

/* ---- Required literals (literal.c, match.c) ---- */

#define QRY_LITERAL_MAX 64 /* Longest literal kept: a prefix of a required one is required. */

/* The longest literal every subject that the PCRE2 pattern p[0..len) matches contains, into
 * out (QRY_LITERAL_MAX bytes); returns its length, 0 when there is none or the pattern holds
 * something the extraction does not read. Exact: a match without it is impossible. */
size_t regex_literal(const char *p, size_t len, char *out);

/* The needle every entry that node n matches holds in its message (ASCII case-insensitively),
 * or NULL when there is none: a scan searches whole blocks for it and examines only the
 * entries that hold it. Borrowed from the tree. */
struct qnode;
const struct ci_needle *qnode_required(const struct qnode *n);

/* Whether node n looks at an entry's message only (words that are no level's name, phrases,
 * regexes, key=value fields and comparisons, and their AND, OR and NOT): then an entry whose
 * other fields are unknown is matched exactly from its message. */
bool qnode_message_only(const struct qnode *n);

/* ---- Tokens (lexer.c) ---- */

enum tok_kind {
    TK_EOF,
    TK_LPAREN,
    TK_RPAREN,
    TK_AND,    /* The word AND, any case. */
    TK_OR,     /* The word OR, any case. */
    TK_NOT,    /* The word NOT, any case. */
    TK_MINUS,  /* A '-' glued to the start of the next term. */
    TK_WORD,   /* A bare word. */
    TK_PHRASE, /* A "quoted phrase"; text is raw (escapes not yet resolved). */
    TK_REGEX,  /* A /regex/ literal; text is the raw pattern between the slashes. */
    TK_FIELD,  /* A known field: name:value or name:"value". */
    TK_PAIR,   /* Any other name:value or name:"value": a key=value field of the message. */
    TK_PIPE,   /* A lone '|': the filter ends and the pipes (pipe.h) begin after it. */
};

enum qry_field {
    FLD_LEVEL,
    FLD_SOURCE,
    FLD_SINCE,
    FLD_UNTIL,
    FLD_FROM,
    FLD_TO,
    FLD_REGEX,
    FLD_LIMIT
};

struct token {
    enum tok_kind kind;
    size_t pos;       /* Byte offset of the token in the query text. */
    const char *text; /* The word, phrase body, pattern or field value; borrowed. */
    size_t len;
    enum qry_field field; /* TK_FIELD only. */
    bool quoted;          /* TK_FIELD, TK_PAIR: the value was "quoted" (text is raw, inside the
                           * quotes). */
    const char *name;     /* TK_PAIR: the field name; text is its value. */
    size_t name_len;
    bool caseless; /* TK_REGEX: the literal ended in /i. */
};

struct lexer {
    const char *s;
    size_t len;
    size_t pos;
};

/* Read the next token. Returns 0, or -EINVAL with a sentence in err (QRY_ERR_MAX bytes). */
int lex_next(struct lexer *lx, struct token *t, char *err);

/* Field names for messages ("level", "since", ...). */
const char *lex_field_name(enum qry_field f);

/* ---- The tree (parse.c builds it, match.c and skip.c walk it) ---- */

#define TOKP_CLAUSES 16 /* Most token-filter clauses tested per keyword; the rest are left out. */
#define TOKP_HASHES  48 /* Most element hashes in them. */

/* What a keyword needs of a block's token filter (store/tokfilter.h), worked out once by
 * skip_prepare: every clause must hold, and a clause holds when, for one of its alts
 * alternatives, all its per hashes are in the filter. */
struct tok_plan {
    unsigned nclause, nhash;
    struct {
        uint16_t at; /* First hash: alternative a's are hash[at + a * per .. + per). */
        uint8_t alts, per;
    } clause[TOKP_CLAUSES];
    uint64_t hash[TOKP_HASHES];
};

enum qnode_kind {
    QN_TRUE, /* Matches everything: an empty query, or one holding only limit:N. */
    QN_AND,
    QN_OR,
    QN_NOT,
    QN_KEYWORD, /* Case-insensitive substring of the message, or (level word) the level. */
    QN_LEVEL,   /* Level in a mask. */
    QN_SOURCE,  /* Source starts with a prefix (ASCII case-insensitive). */
    QN_TIME,    /* ts_ms within an inclusive range. */
    QN_REGEX,   /* PCRE2 match on the message. */
    QN_CMP,     /* A key=value field of the message, as a number, within a range. */
};

struct qnode {
    enum qnode_kind kind;
    union {
        struct {
            struct qnode **kids; /* Owned; cheapest test first. */
            size_t n;
        } list;              /* QN_AND, QN_OR */
        struct qnode *child; /* QN_NOT; owned. */
        struct {
            char *text; /* Owned copy of the needle, NUL-terminated. */
            struct ci_needle needle;
            uint32_t level_mask; /* Levels the word names (0 for phrases and other words). */
            bool pair;   /* The needle is a whole "key=value" field: space or edge both sides. */
            bool prefix; /* pair: "key=val*": only the value's start must match. */
            struct tok_plan *tok; /* Owned; NULL when the token filter cannot rule a block out. */
        } kw;
        uint32_t level_mask; /* QN_LEVEL: bit (1u << level) per accepted level. */
        struct {
            char *prefix; /* Owned, NUL-terminated. */
            size_t len;
        } src;
        struct {
            int64_t from_ms, to_ms; /* Inclusive. */
        } time;
        struct qry_regex *re; /* QN_REGEX; owned. */
        struct {
            char *name; /* Owned: the name, then '=' and a NUL; matched exactly (case-
                           sensitive), name_len bytes. */
            size_t name_len;
            struct ci_needle needle; /* "name=", which every matching message holds (skip.c). */
            double lo, hi;           /* Bounds, as val_number gives them. */
            bool lo_open, hi_open;   /* Exclusive bound ('>' / '<'). */
        } cmp;
    };
};

struct qpipes;

struct qry {
    struct qnode *root;
    struct qpipes *pipes;   /* Owned; NULL without pipes. */
    uint64_t limit;         /* 0 = none. */
    int64_t from_ms, to_ms; /* Cached qry_time_bounds. */
    struct qry_source src;  /* How to compile it again elsewhere (qry_source). */
    char *text;             /* Owned copy of src.text. */
    bool partial_ok;        /* qry_set_partial_ok. */
};

/* ---- Block skipping (skip.c) ---- */

/* Prepare every keyword of the tree for the token filters (its kw.tok). 0 or -ENOMEM. */
int skip_prepare(struct qnode *root);

/* ---- The tree (nodes.c): nodes, their order, leaves, for the parser and the builders ---- */

struct qnode *qnode_new(enum qnode_kind kind);
void qnode_free(struct qnode *n);

/* Wrap a root into a query, computing the cached bounds; frees root and returns NULL when out
 * of memory. */
struct qry *qry_wrap(struct qnode *root, uint64_t limit);

/* Append kid to an AND/OR list, taking ownership; a kid of the same kind is merged. Returns 0
 * or -ENOMEM (kid freed). */
int qnode_list_add(struct qnode *list, struct qnode *kid);
void qnode_list_sort(struct qnode *list); /* Children cheapest first, stable. */
/* Combine two owned nodes under QN_AND or QN_OR; NULL when out of memory (both freed). */
struct qnode *qnode_combine(enum qnode_kind kind, struct qnode *a, struct qnode *b);

/* Leaves. Each returns an owned node, or NULL when out of memory unless it says otherwise. */
struct qnode *qnode_keyword(char *text, size_t len, bool level_word); /* Takes text. */
struct qnode *qnode_pair_term(const struct token *t);                 /* name:value */
/* name:>N, :>=N, :<N, :<=N, :[A,B]: 1 when the value is no comparison (an equality pair
 * after all), 0 with *out, or -EINVAL / -ENOMEM with err set. */
int qnode_cmp_term(const struct token *t, struct qnode **out, char *err);
struct qnode *qnode_time(int64_t from_ms, int64_t to_ms); /* Inclusive. */
/* A compiled regex; NULL with *rc -EINVAL (err set) or -ENOMEM. */
struct qnode *qnode_regex(const char *pat, size_t len, bool caseless, char *err, int *rc);

/* Resolve \" and \\ in a quoted body: an owned, NUL-terminated string, or NULL. */
char *qry_unescape(const char *s, size_t len, size_t *out_len);
char *qry_memdup0(const char *s, size_t len); /* Owned copy, NUL-terminated. */
int64_t qry_sat_sub(int64_t a, int64_t b);    /* a - b, saturated. */

/* ---- Value decoding (value.c): each returns 0 or -EINVAL/-ENOMEM with err set ---- */

/* "ERROR", "warning", ">=WARN", "<INFO", "ERROR,FATAL" -> mask of levels. */
int val_level_mask(const char *s, size_t len, uint32_t *mask, char *err);

/* "15m", "90" (seconds), "1h30m", "500ms" -> milliseconds. */
int val_duration(const char *s, size_t len, int64_t *ms, const char *field, char *err);

/* "1700000000", "1700000000.25", "2024-01-02", "2024-01-02T03:04:05Z" -> ms since the epoch.
 * end_of_day: a date without a time means its last millisecond rather than its first. */
int val_time(const char *s, size_t len, bool end_of_day, int64_t *ms, const char *field, char *err);

/* Parse a non-negative decimal count for limit:. */
int val_limit(const char *s, size_t len, uint64_t *out, char *err);

enum qnum_kind { QNUM_PLAIN, QNUM_DURATION, QNUM_SIZE };

/* A number as VictoriaLogs reads one (README "Field comparisons"): plain (1500, -2.5, 1_000),
 * a duration in nanoseconds (250ms, 1h30m) or a size in bytes (1.5KB, 10MiB). Returns false
 * when s is none of these. kind may be NULL. */
bool val_number(const char *s, size_t len, double *out, enum qnum_kind *kind);

/* Compile a PCRE2 pattern (borrowed) into an owned matcher in *out. */
int regex_compile(const char *pat, size_t len, bool caseless, struct qry_regex **out, char *err);
bool regex_match(const struct qry_regex *re, const char *s, size_t len);
/* The needle every match of re contains (regex_literal), or NULL. Borrowed from re. */
const struct ci_needle *regex_needle(const struct qry_regex *re);
void regex_free(struct qry_regex *re);

/* ---- Fields of a message (match.c) ---- */

/* Write a one-line error; %s arguments that quote user text go through err_quote first. */
void qry_errf(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Copy user text into buf (size cap) for quoting in an error: at most ~40 bytes, bytes outside
 * printable ASCII replaced by '?', so the message stays one line. Returns buf. */
const char *err_quote(char *buf, size_t cap, const char *s, size_t len);

#endif
