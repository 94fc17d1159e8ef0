/* field.h - the key=value fields of a message, as the query language reads them (key:value,
 * comparisons, pipes) and as the store's value summaries count them (store/valsum.c): both
 * must read them the same way. */
#ifndef LC_FIELD_H
#define LC_FIELD_H

#include <stdbool.h>
#include <stddef.h>

/* One key=value field of a message. A quoted value (key="a b") is given raw, between the
 * quotes, with its \" and \\ escapes unresolved (escaped is then true). */
struct qfield {
    const char *name, *value;
    size_t name_len, value_len;
    bool escaped; /* The value holds a backslash escape: resolve before use. */
};

/* The next field of msg at or after *pos (0 to start); advances *pos. Fields are the
 * space-separated words of the form name=value, name as the lexer's pair names. */
bool qfield_next(const char *msg, size_t len, size_t *pos, struct qfield *f);

/* The first field called name (exact bytes) in msg. */
bool qfield_find(const char *msg, size_t len, const char *name, size_t name_len, struct qfield *f);

/* Copy a field value into out (room for value_len bytes), resolving escapes; returns the
 * length written. */
size_t qfield_copy(const struct qfield *f, char *out);

#endif
