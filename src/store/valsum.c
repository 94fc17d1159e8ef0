/* valsum.c - building and reading a block's value summary (valsum.h).
 *
 * It runs on the token filter thread, over every message of a block once: fields are found
 * as the query language finds them (base/field.h), names matched by a short linear search
 * (a block has few distinct names, and a field with many values stops being counted at its
 * seventeenth). */
#define _GNU_SOURCE
#include "store/valsum.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/field.h"
#include "store/frame.h"

struct vs_value {
    uint8_t len;
    char v[VS_VALUE_MAX];
    uint32_t counts[LC_LEVEL_COUNT];
};

struct vs_field {
    uint8_t kind, nlen, nvalues;
    bool many;
    char name[VS_NAME_MAX];
    uint32_t seen; /* 1 + the entry that last held it: only a message's first counts. */
    struct vs_value values[VS_VALUES];
};

struct vs_build {
    struct vs_field fields[1 + VS_FIELDS]; /* The source first. */
    unsigned nfields;
    bool partial;
};

/* Count value v[0..len) of field f for an entry of level l. */
static void count_value(struct vs_field *f, const char *v, size_t len, unsigned l)
{
    if (f->many)
        return;
    if (len > VS_VALUE_MAX) {
        f->many = true;
        return;
    }
    for (unsigned i = 0; i < f->nvalues; i++) {
        struct vs_value *x = &f->values[i];
        if (x->len == len && memcmp(x->v, v, len) == 0) {
            x->counts[l]++;
            return;
        }
    }
    if (f->nvalues == VS_VALUES) {
        f->many = true;
        return;
    }
    struct vs_value *x = &f->values[f->nvalues++];
    x->len = (uint8_t)len;
    memcpy(x->v, v, len);
    x->counts[l] = 1;
}

/* The field called name, added when new; NULL when it cannot be listed. */
static struct vs_field *field_of(struct vs_build *b, const char *name, size_t nlen)
{
    for (unsigned i = 1; i < b->nfields; i++) {
        struct vs_field *f = &b->fields[i];
        if (f->nlen == nlen && memcmp(f->name, name, nlen) == 0)
            return f;
    }
    if (nlen > VS_NAME_MAX || b->nfields == 1 + VS_FIELDS) {
        b->partial = true;
        return NULL;
    }
    struct vs_field *f = &b->fields[b->nfields++];
    f->kind = VS_MSG;
    f->nlen = (uint8_t)nlen;
    memcpy(f->name, name, nlen);
    return f;
}

/* The fields of message m[0..n) of entry i, of level l. */
static void add_message(struct vs_build *b, const char *m, size_t n, uint32_t i, unsigned l)
{
    char tmp[2 * VS_VALUE_MAX];
    struct qfield q;
    size_t pos = 0;
    while (qfield_next(m, n, &pos, &q)) {
        struct vs_field *f = field_of(b, q.name, q.name_len);
        if (!f || f->seen == i + 1)
            continue; /* Not listed, or a later field of the same name in this message. */
        f->seen = i + 1;
        if (f->many)
            continue;
        if (q.value_len > sizeof(tmp)) { /* Resolving escapes at most halves it. */
            f->many = true;
            continue;
        }
        size_t len = qfield_copy(&q, tmp);
        if (len)
            count_value(f, tmp, len, l);
    }
}

static size_t encoded_len(const struct vs_build *b)
{
    size_t n = 2;
    for (unsigned i = 0; i < b->nfields; i++) {
        const struct vs_field *f = &b->fields[i];
        n += 3 + f->nlen;
        for (unsigned k = 0; !f->many && k < f->nvalues; k++)
            n += 1 + f->values[k].len + 4 * LC_LEVEL_COUNT;
    }
    return n;
}

int valsum_build(const struct valsum_input *in, uint8_t **out, uint32_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    struct vs_build *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->fields[0].kind = VS_SOURCE;
    b->nfields = 1;
    size_t off = 0, src = 0;
    for (uint32_t i = 0; i < in->count && off <= in->msgs_len; i++) {
        unsigned l = in->levels[i] < LC_LEVEL_COUNT ? in->levels[i] : LC_INFO;
        if (in->src_lens[i])
            count_value(&b->fields[0], in->srcs + src, in->src_lens[i], l);
        src += in->src_lens[i];
        size_t n = msgs_len_at(in->msgs, in->msgs_len, in->msg_lens, i, off);
        add_message(b, in->msgs + off, n, i, l);
        off += n + (in->msg_lens == NULL);
    }
    size_t len = encoded_len(b);
    uint8_t *p = malloc(len);
    if (!p) {
        free(b);
        return -ENOMEM;
    }
    uint8_t *w = p;
    *w++ = b->partial ? VS_PARTIAL : 0;
    *w++ = (uint8_t)b->nfields;
    for (unsigned i = 0; i < b->nfields; i++) {
        const struct vs_field *f = &b->fields[i];
        *w++ = f->kind;
        *w++ = f->nlen;
        memcpy(w, f->name, f->nlen);
        w += f->nlen;
        *w++ = f->many ? VS_MANY : f->nvalues;
        for (unsigned k = 0; !f->many && k < f->nvalues; k++) {
            const struct vs_value *x = &f->values[k];
            *w++ = x->len;
            memcpy(w, x->v, x->len);
            w += x->len;
            for (int l = 0; l < LC_LEVEL_COUNT; l++, w += 4) {
                uint32_t c = x->counts[l];
                w[0] = (uint8_t)c, w[1] = (uint8_t)(c >> 8), w[2] = (uint8_t)(c >> 16);
                w[3] = (uint8_t)(c >> 24);
            }
        }
    }
    free(b);
    *out = p;
    *out_len = (uint32_t)len;
    return 0;
}

bool valsum_check(const uint8_t *p, size_t len)
{
    if (len < 2 || p[0] > VS_PARTIAL || p[1] > 1 + VS_FIELDS)
        return false;
    size_t i = 2;
    for (unsigned f = 0; f < p[1]; f++) {
        if (len - i < 2 || p[i] > VS_SOURCE || p[i + 1] > VS_NAME_MAX)
            return false;
        i += 2;
        if (len - i < (size_t)p[i - 1] + 1)
            return false;
        i += p[i - 1];
        unsigned nv = p[i++];
        if (nv == VS_MANY)
            continue;
        if (nv > VS_VALUES)
            return false;
        for (unsigned k = 0; k < nv; k++) {
            if (len - i < 1 || p[i] > VS_VALUE_MAX || len - i - 1 < p[i] + 4u * LC_LEVEL_COUNT)
                return false;
            i += 1 + p[i] + 4 * LC_LEVEL_COUNT;
        }
    }
    return i == len;
}

enum valsum_found valsum_find(const uint8_t *p, size_t len, bool source, const char *name,
                              size_t nlen, const uint8_t **at, unsigned *nvalues)
{
    (void)len; /* Well-formed: its own lengths bound the walk. */
    size_t i = 2;
    for (unsigned f = 0; f < p[1]; f++) {
        unsigned kind = p[i], fl = p[i + 1];
        const uint8_t *fname = p + i + 2;
        i += 2 + fl;
        unsigned nv = p[i++];
        bool match = source ? kind == VS_SOURCE
                            : kind == VS_MSG && fl == nlen && memcmp(fname, name, nlen) == 0;
        if (match) {
            if (nv == VS_MANY)
                return VS_UNKNOWN;
            *at = p + i;
            *nvalues = nv;
            return VS_LISTED;
        }
        for (unsigned k = 0; nv != VS_MANY && k < nv; k++)
            i += 1 + p[i] + 4 * LC_LEVEL_COUNT;
    }
    return !source && (p[0] & VS_PARTIAL) ? VS_UNKNOWN : VS_ABSENT;
}

void valsum_value(const uint8_t **at, const char **v, size_t *vlen, uint32_t counts[LC_LEVEL_COUNT])
{
    const uint8_t *p = *at;
    *vlen = p[0];
    *v = (const char *)p + 1;
    p += 1 + p[0];
    for (int l = 0; l < LC_LEVEL_COUNT; l++, p += 4)
        counts[l] =
            (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    *at = p;
}
