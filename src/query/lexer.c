/* lexer.c - cut a query text into tokens that are slices of the text.
 *
 * Delimiters are whitespace and parentheses; a '"' opens a phrase only at the start of a
 * token (inside a word it is an ordinary byte). A token that starts with '/' is a regex
 * literal only when its first unescaped closing '/' is followed by an optional 'i' and a
 * delimiter; otherwise it is a word, so paths such as /var/log/syslog stay searchable. A '-'
 * glued to the next term or '(' negates it; a lone '-' is a word. "name:" where name is a known
 * field makes a field token; any other name (a letter or '_', then letters, digits, '_', '.',
 * '-' or '@') followed by ':' and a value makes a pair token ("host:web1", "app:\"my app\"");
 * with an unterminated quote it is a word, as a quote inside a word always is. A pair value
 * that opens with '[' runs to its ']' even across spaces ("latency:[100, 200]"). A word that
 * is a lone '|' ends the filter: the pipes follow (pipe_parse.c); "|" quoted is a phrase.
 * Nothing is copied: escapes in phrases are resolved by the parser. */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "query/qry_internal.h"

static const struct {
    const char *name;
    enum qry_field field;
} fields[] = {
    {"level", FLD_LEVEL}, {"source", FLD_SOURCE}, {"since", FLD_SINCE}, {"until", FLD_UNTIL},
    {"from", FLD_FROM},   {"to", FLD_TO},         {"regex", FLD_REGEX}, {"limit", FLD_LIMIT},
};

const char *lex_field_name(enum qry_field f)
{
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (fields[i].field == f)
            return fields[i].name;
    return "?";
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_delim(char c)
{
    return is_space(c) || c == '(' || c == ')';
}

/* Find the closing quote of a quoted string whose opening quote is at s[open]; backslash
 * escapes the next byte. Returns the index of the closing quote or len when unterminated. */
static size_t close_quote(const char *s, size_t len, size_t open)
{
    size_t i = open + 1;
    while (i < len && s[i] != '"')
        i += (s[i] == '\\' && i + 1 < len) ? 2 : 1;
    return i < len ? i : len;
}

static int lex_quoted(struct lexer *lx, size_t open, const char **text, size_t *tlen, char *err)
{
    size_t close = close_quote(lx->s, lx->len, open);
    if (close == lx->len) {
        qry_errf(err, "unterminated quote at %zu", open);
        return -EINVAL;
    }
    *text = lx->s + open + 1;
    *tlen = close - open - 1;
    lx->pos = close + 1;
    return 0;
}

/* Try a /regex/ literal at lx->pos; returns false (consuming nothing) if it is not one. */
static bool lex_regex(struct lexer *lx, struct token *t)
{
    const char *s = lx->s;
    size_t i = lx->pos + 1;
    while (i < lx->len && s[i] != '/')
        i += (s[i] == '\\' && i + 1 < lx->len) ? 2 : 1;
    if (i >= lx->len)
        return false;
    size_t end = i + 1;
    bool caseless = end < lx->len && s[end] == 'i';
    if (caseless)
        end++;
    if (end < lx->len && !is_delim(s[end]))
        return false;
    t->kind = TK_REGEX;
    t->text = s + lx->pos + 1;
    t->len = i - lx->pos - 1;
    t->caseless = caseless;
    lx->pos = end;
    return true;
}

/* End of an unquoted value starting at i. A regex: value may hold balanced parentheses
 * ("regex:a(b|c)d"); a ')' without its '(' ends it, so "(regex:x)" still closes the group. */
static size_t value_end(const char *s, size_t len, size_t i, bool regex)
{
    int open = 0;
    for (; i < len && !is_space(s[i]); i++) {
        if (s[i] == '(') {
            if (!regex)
                break;
            open++;
        } else if (s[i] == ')') {
            if (!regex || open == 0)
                break;
            open--;
        } else if (regex && s[i] == '\\' && i + 1 < len && !is_space(s[i + 1])) {
            i++;
        }
    }
    return i;
}

/* Is s[start, name_end) followed by ':' a known field? */
static bool known_field(const char *s, size_t start, size_t name_end, enum qry_field *f)
{
    for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++) {
        size_t n = strlen(fields[k].name);
        if (n == name_end - start && strncasecmp(s + start, fields[k].name, n) == 0) {
            *f = fields[k].field;
            return true;
        }
    }
    return false;
}

int lex_next(struct lexer *lx, struct token *t, char *err)
{
    const char *s = lx->s;
    while (lx->pos < lx->len && is_space(s[lx->pos]))
        lx->pos++;
    *t = (struct token){.kind = TK_EOF, .pos = lx->pos};
    if (lx->pos >= lx->len)
        return 0;
    size_t start = lx->pos;
    char c = s[start];
    if (c == '(' || c == ')') {
        t->kind = c == '(' ? TK_LPAREN : TK_RPAREN;
        lx->pos++;
        return 0;
    }
    if (c == '"') {
        t->kind = TK_PHRASE;
        return lex_quoted(lx, start, &t->text, &t->len, err);
    }
    if (c == '-' && start + 1 < lx->len && !is_space(s[start + 1]) && s[start + 1] != ')') {
        t->kind = TK_MINUS;
        lx->pos++;
        return 0;
    }
    if (c == '/' && lex_regex(lx, t))
        return 0;

    size_t name_end = start;
    while (name_end < lx->len &&
           (((s[name_end] | 0x20) >= 'a' && (s[name_end] | 0x20) <= 'z') || s[name_end] == '_'))
        name_end++;
    enum qry_field f;
    if (name_end > start && name_end < lx->len && s[name_end] == ':' &&
        known_field(s, start, name_end, &f)) {
        t->kind = TK_FIELD;
        t->field = f;
        size_t v = name_end + 1;
        if (v < lx->len && s[v] == '"') {
            t->quoted = true;
            return lex_quoted(lx, v, &t->text, &t->len, err);
        }
        size_t end = value_end(s, lx->len, v, f == FLD_REGEX);
        t->text = s + v;
        t->len = end - v;
        lx->pos = end;
        return 0;
    }

    /* name:value for any other name: a key=value field of the message. */
    if (name_end > start) {
        size_t k = name_end;
        while (k < lx->len &&
               (((s[k] | 0x20) >= 'a' && (s[k] | 0x20) <= 'z') || (s[k] >= '0' && s[k] <= '9') ||
                s[k] == '_' || s[k] == '.' || s[k] == '-' || s[k] == '@'))
            k++;
        if (k + 1 < lx->len && s[k] == ':' && !is_delim(s[k + 1])) {
            t->kind = TK_PAIR;
            t->name = s + start;
            t->name_len = k - start;
            if (s[k + 1] == '"' && close_quote(s, lx->len, k + 1) < lx->len) {
                t->quoted = true;
                return lex_quoted(lx, k + 1, &t->text, &t->len, err);
            }
            size_t end = value_end(s, lx->len, k + 1, false);
            if (s[k + 1] == '[') {
                size_t b = k + 2;
                while (b < lx->len && s[b] != ']' && s[b] != '(' && s[b] != ')' && s[b] != '"')
                    b++;
                if (b < lx->len && s[b] == ']' && (b + 1 == lx->len || is_delim(s[b + 1])))
                    end = b + 1;
            }
            if (end > k + 1) {
                t->text = s + k + 1;
                t->len = end - k - 1;
                lx->pos = end;
                return 0;
            }
            t->kind = TK_WORD; /* "name:(" : a word after all. */
        }
    }

    size_t end = start;
    while (end < lx->len && !is_delim(s[end]))
        end++;
    t->text = s + start;
    t->len = end - start;
    lx->pos = end;
    t->kind = TK_WORD;
    if (t->len == 3 && strncasecmp(t->text, "AND", 3) == 0)
        t->kind = TK_AND;
    else if (t->len == 2 && strncasecmp(t->text, "OR", 2) == 0)
        t->kind = TK_OR;
    else if (t->len == 3 && strncasecmp(t->text, "NOT", 3) == 0)
        t->kind = TK_NOT;
    else if (t->len == 1 && t->text[0] == '|')
        t->kind = TK_PIPE;
    return 0;
}
