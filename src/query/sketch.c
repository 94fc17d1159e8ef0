/* sketch.c - the quantile sketch (sketch.h): log buckets, merged by index.
 *
 * A side's buckets are one array covering [lo, lo + len); adding outside it reallocates the
 * array to cover the new index too, so the array spans the smallest and largest bucket seen
 * and its size is the log of the values' spread, a few hundred buckets for any real data. */
#include "query/sketch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SK_GAMMA 1.0202020202020202 /* 1.01 / 0.99 */

struct qsketch *qsk_new(struct qmem *m)
{
    return qmem_alloc(m, sizeof(struct qsketch));
}

/* Add count to bucket i of side s, growing its range to cover i. */
static bool side_add(struct qmem *m, struct qsk_side *s, int32_t i, uint64_t count)
{
    if (s->len == 0 || i < s->lo || i >= s->lo + (int32_t)s->len) {
        int32_t lo = s->len == 0 || i < s->lo ? i : s->lo;
        int32_t hi = s->len == 0 || i >= s->lo + (int32_t)s->len ? i : s->lo + (int32_t)s->len - 1;
        uint32_t len = (uint32_t)(hi - lo + 1);
        uint64_t *c = qmem_alloc(m, len * sizeof(*c));
        if (!c)
            return false;
        if (s->len)
            memcpy(c + (s->lo - lo), s->c, s->len * sizeof(*c));
        free(s->c);
        qmem_release(m, s->len * sizeof(*c));
        s->c = c, s->lo = lo, s->len = len;
    }
    s->c[i - s->lo] += count;
    return true;
}

bool qsk_add(struct qmem *m, struct qsketch *sk, double v)
{
    if (v == 0) {
        sk->zero++;
        return true;
    }
    double lg = ceil(log(fabs(v)) / log(SK_GAMMA));
    return side_add(m, v > 0 ? &sk->pos : &sk->neg, (int32_t)lg, 1);
}

/* Add s's non-zero buckets to d. The range grows once, to cover s's first and last non-zero
 * bucket, before the rest are added in place. */
static bool side_merge(struct qmem *m, struct qsk_side *d, const struct qsk_side *s)
{
    uint32_t first = 0, last = s->len;
    while (first < s->len && !s->c[first])
        first++;
    if (first == s->len)
        return true;
    while (!s->c[last - 1])
        last--;
    if (!side_add(m, d, s->lo + (int32_t)first, s->c[first]))
        return false;
    if (last - 1 > first && !side_add(m, d, s->lo + (int32_t)(last - 1), s->c[last - 1]))
        return false;
    for (uint32_t k = first + 1; k + 1 < last; k++)
        d->c[s->lo + (int32_t)k - d->lo] += s->c[k];
    return true;
}

bool qsk_merge(struct qmem *m, struct qsketch *d, const struct qsketch *s)
{
    d->zero += s->zero;
    return side_merge(m, &d->pos, &s->pos) && side_merge(m, &d->neg, &s->neg);
}

uint64_t *qsk_side_init(struct qmem *m, struct qsk_side *s, int32_t lo, uint32_t len)
{
    if (!(s->c = qmem_alloc(m, len * sizeof(*s->c))))
        return NULL;
    s->lo = lo, s->len = len;
    return s->c;
}

static double sk_value(int32_t i)
{
    return 2 * pow(SK_GAMMA, i) / (SK_GAMMA + 1);
}

double qsk_quantile(const struct qsketch *sk, double phi, uint64_t n, double min, double max)
{
    uint64_t r = (uint64_t)ceil(phi * (double)n), seen = 0;
    if (r <= 1)
        return min;
    if (r >= n)
        return max;
    double v = max;
    for (uint32_t k = sk->neg.len; k-- > 0;)
        if ((seen += sk->neg.c[k]) >= r) {
            v = -sk_value(sk->neg.lo + (int32_t)k);
            goto found;
        }
    if ((seen += sk->zero) >= r) {
        v = 0;
        goto found;
    }
    for (uint32_t k = 0; k < sk->pos.len; k++)
        if ((seen += sk->pos.c[k]) >= r) {
            v = sk_value(sk->pos.lo + (int32_t)k);
            goto found;
        }
found:
    return v < min ? min : v > max ? max : v;
}

void qsk_free(struct qmem *m, struct qsketch *sk)
{
    if (!sk)
        return;
    free(sk->pos.c);
    free(sk->neg.c);
    qmem_release(m, (sk->pos.len + sk->neg.len) * sizeof(uint64_t) + sizeof(*sk));
    free(sk);
}
