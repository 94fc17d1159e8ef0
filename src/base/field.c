/* field.c - the key=value fields of a message (field.h). */
#include "base/field.h"

#include <string.h>

static bool name_char(char c, bool first)
{
    return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '_' ||
           (!first && ((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '@'));
}

/* Fields are found by walking the words, so "a=\"x b=1\" b=2" has b=2: text inside a quoted
 * value is never a field. A word that is no field is skipped to the next space. */
bool qfield_next(const char *msg, size_t len, size_t *pos, struct qfield *f)
{
    size_t i = *pos;
    while (i < len) {
        while (i < len && msg[i] == ' ')
            i++;
        size_t start = i;
        while (i < len && name_char(msg[i], i == start))
            i++;
        if (i > start && i < len && msg[i] == '=') {
            f->name = msg + start;
            f->name_len = i - start;
            size_t v = ++i;
            f->escaped = false;
            if (v < len && msg[v] == '"') {
                size_t k = v + 1;
                while (k < len && msg[k] != '"') {
                    if (msg[k] == '\\' && k + 1 < len)
                        f->escaped = true, k++;
                    k++;
                }
                if (k < len && (k + 1 == len || msg[k + 1] == ' ')) {
                    f->value = msg + v + 1;
                    f->value_len = k - v - 1;
                    *pos = k + 1;
                    return true;
                }
                f->escaped = false; /* Unterminated: a bare value, quote and all. */
            }
            while (i < len && msg[i] != ' ')
                i++;
            f->value = msg + v;
            f->value_len = i - v;
            *pos = i;
            return true;
        }
        while (i < len && msg[i] != ' ')
            i++;
    }
    *pos = len;
    return false;
}

bool qfield_find(const char *msg, size_t len, const char *name, size_t name_len, struct qfield *f)
{
    size_t pos = 0;
    while (qfield_next(msg, len, &pos, f))
        if (f->name_len == name_len && memcmp(f->name, name, name_len) == 0)
            return true;
    return false;
}

size_t qfield_copy(const struct qfield *f, char *out)
{
    if (!f->escaped) {
        if (f->value_len)
            memcpy(out, f->value, f->value_len);
        return f->value_len;
    }
    size_t n = 0;
    for (size_t i = 0; i < f->value_len; i++) {
        if (f->value[i] == '\\' && i + 1 < f->value_len &&
            (f->value[i + 1] == '"' || f->value[i + 1] == '\\'))
            i++;
        out[n++] = f->value[i];
    }
    return n;
}
