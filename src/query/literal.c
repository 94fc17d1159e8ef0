/* literal.c - the literal text every match of a PCRE2 pattern must contain.
 *
 * A scan looks for that text with the vector substring search (cisearch.c) over a whole block
 * and runs PCRE2 only on the entries holding it, which is what makes /latency_ms=19[0-9]{2}/
 * cost about as much as the word latency_ms=19. The extraction must be exact in one direction
 * only: every subject the pattern matches contains the literal (ASCII case aside: the search
 * folds case, so the literal of a case-sensitive pattern filters a little less than it could).
 * So this reads the pattern's top level only, takes the longest run of plain characters that
 * no quantifier makes optional, and gives up (no literal) on anything it does not fully
 * understand: a top-level alternation, option settings and verbs ("(?i)", "(*UTF)"), \Q..\E,
 * escapes with arguments. Giving up costs speed, never a match. */
#include <string.h>

#include "query/qry_internal.h"

/* Escapes of one letter that stand for a class or an assertion and take no argument: they
 * end a run and the literal can go on after them. Any other escaped letter or digit (\x41,
 * \p{L}, \1, \g{-1}, \N{U+41}, \Q) may consume the characters after it: extraction stops. */
static const char plain_escapes[] = "dDwWsShHvVRXbBAzZGK";

static bool is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

/* The end of the character class starting at p[i] == '['; len when it does not end. */
static size_t class_end(const char *p, size_t len, size_t i)
{
    size_t j = i + 1;
    if (j < len && p[j] == '^')
        j++;
    if (j < len && p[j] == ']')
        j++; /* A ']' first in the class is a member. */
    while (j < len) {
        if (p[j] == '\\') {
            if (j + 1 < len && (p[j + 1] == 'Q' || p[j + 1] == 'E'))
                return len; /* Quoting inside a class: not read. */
            j += 2;
        } else if (p[j] == '[' && j + 1 < len &&
                   (p[j + 1] == ':' || p[j + 1] == '.' || p[j + 1] == '=')) {
            /* A POSIX class such as [:digit:], which holds a ']' of its own. */
            const char *e = NULL;
            for (size_t k = j + 2; k + 1 < len && !e; k++)
                if (p[k] == p[j + 1] && p[k + 1] == ']')
                    e = p + k;
            if (!e)
                return len;
            j = (size_t)(e - p) + 2;
        } else if (p[j] == ']') {
            return j;
        } else {
            j++;
        }
    }
    return len;
}

struct run {
    char cur[QRY_LITERAL_MAX];
    size_t n, best_n;
    char *best;
};

static void run_end(struct run *r)
{
    if (r->n > r->best_n) {
        memcpy(r->best, r->cur, r->n);
        r->best_n = r->n;
    }
    r->n = 0;
}

size_t regex_literal(const char *p, size_t len, char *out)
{
    struct run r = {.best = out};
    int depth = 0;
    bool collecting = true; /* False once a construct's extent is unclear: runs end there. */
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)p[i];
        bool literal = false, atom = true; /* atom: a quantifier may follow. */
        if (c == '\\') {
            if (i + 1 >= len)
                return 0;
            unsigned char d = (unsigned char)p[i + 1];
            i += 2;
            if (!is_alnum(d)) {
                literal = true, c = d; /* \. \/ \- \\ ... the character itself. */
            } else if (d == 'Q' || d == 'E') {
                return 0; /* Quoting changes what the rest means. */
            } else if (!memchr(plain_escapes, d, sizeof(plain_escapes) - 1)) {
                collecting = false;
            }
        } else if (c == '[') {
            size_t e = class_end(p, len, i);
            if (e >= len)
                return 0;
            i = e + 1;
        } else if (c == '(') {
            if (i + 1 < len && (p[i + 1] == '?' || p[i + 1] == '*')) {
                if (p[i + 1] == '*' || i + 2 >= len || p[i + 2] != ':')
                    return 0; /* Options, lookarounds, names, verbs, comments: not read. */
                i += 2;
            }
            i++;
            depth++;
            atom = false;
        } else if (c == ')') {
            if (--depth < 0)
                return 0;
            i++;
        } else if (c == '|') {
            if (depth == 0)
                return 0; /* Either side may match alone. */
            i++;
            atom = false;
        } else if (c == '^' || c == '$') {
            i++;
            atom = false;
        } else if (c == '{') {
            collecting = false; /* A quantifier or a literal brace: not worth telling apart. */
            i++;
            atom = false;
        } else if (c == '.' || c == '?' || c == '*' || c == '+') {
            i++; /* Any character, or a quantifier with nothing before it to repeat. */
        } else {
            literal = true;
            i++;
        }
        bool appended = false;
        if (literal && depth == 0 && collecting) {
            if (r.n < sizeof(r.cur)) {
                r.cur[r.n++] = (char)c;
                appended = true;
            }
        } else if (!literal || depth > 0 || !collecting) {
            run_end(&r);
        }
        if (!atom || i >= len)
            continue;
        /* A quantifier applies to the atom just read: ?, * and {..} make it optional. */
        char q = p[i];
        if (q == '?' || q == '*' || q == '{') {
            if (appended)
                r.n--;
            run_end(&r);
            if (q == '{') {
                collecting = false;
                i++;
                continue;
            }
        } else if (q == '+') {
            run_end(&r); /* Required once; what follows it need not be adjacent to it. */
        } else {
            continue;
        }
        i++;
        if (i < len && (p[i] == '?' || p[i] == '+'))
            i++; /* Lazy or possessive. */
    }
    if (depth != 0)
        return 0;
    run_end(&r);
    return r.best_n;
}
