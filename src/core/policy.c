/* policy.c - admission, rate limits and authentication per listener role (see policy.h).
 *
 * One mutex guards the policies and a hash table of source addresses (per role): connection
 * token bucket, open connections, recent authentication failures. Accepting is rare next to
 * reading, so a lock per accept costs nothing measurable; the table forgets idle addresses
 * when it grows, so a flood of distinct sources cannot grow it without bound. */
#include "core/policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_FAILS_MAX  5 /* Failures within AUTH_WINDOW_MS that shut a source out... */
#define AUTH_WINDOW_MS  60000
#define AUTH_BAN_MS     60000 /* ...for this long. */
#define FORGET_AFTER_MS 120000
#define TABLE_MIN       1024
#define TABLE_MAX       (1 << 20) /* Slots; beyond, idle addresses are forgotten at once. */

struct addr_state {
    bool used;
    uint8_t role;
    uint8_t family;
    uint8_t addr[16];
    bool filled;   /* The bucket was filled on first use. */
    double tokens; /* Connections left in the bucket. */
    int64_t refill_ms, last_ms;
    int conns;
    int fails;
    int64_t fail_start_ms, banned_until_ms;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct policy pols[ROLE_COUNT];
static struct addr_state *table;
static size_t cap, used;
static int role_conns[ROLE_COUNT];
static _Atomic uint64_t refused[POLICY_VERDICTS], auth_ok, auth_failed;

/* ------------------------------------------------------------------------------------------ */
/* Addresses and ranges. */

static int sa_addr(const struct sockaddr *sa, uint8_t out[16])
{
    memset(out, 0, 16);
    if (sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return AF_INET;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) { /* ::ffff:1.2.3.4 is 1.2.3.4 for every rule. */
            memcpy(out, a->s6_addr + 12, 4);
            return AF_INET;
        }
        memcpy(out, a->s6_addr, 16);
        return AF_INET6;
    }
    return -1;
}

int cidr_parse(const char *s, struct cidr *out)
{
    char host[64];
    const char *slash = strchr(s, '/');
    size_t hl = slash ? (size_t)(slash - s) : strlen(s);
    if (hl == 0 || hl >= sizeof(host))
        return -1;
    memcpy(host, s, hl);
    host[hl] = 0;
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, host, out->addr) == 1) {
        out->family = AF_INET;
        out->bits = 32;
    } else if (inet_pton(AF_INET6, host, out->addr) == 1) {
        out->family = AF_INET6;
        out->bits = 128;
    } else {
        return -1;
    }
    if (slash) {
        char *end;
        long b = strtol(slash + 1, &end, 10);
        if (!slash[1] || *end || b < 0 || b > out->bits)
            return -1;
        out->bits = (int)b;
    }
    /* Keep only the network part, so "10.1.2.3/8" means 10.0.0.0/8. */
    for (int i = out->bits; i < 128; i++)
        out->addr[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
    return 0;
}

int cidr_list_parse(const char *s, struct cidr *out, int *n, int max, char *bad, size_t badcap)
{
    while (*s) {
        while (*s == ' ' || *s == ',' || *s == '\t')
            s++;
        if (!*s)
            break;
        size_t len = strcspn(s, ", \t");
        char item[80];
        snprintf(item, sizeof(item), "%.*s", (int)len, s);
        if (*n >= max || len >= sizeof(item) || cidr_parse(item, &out[*n]) < 0) {
            snprintf(bad, badcap, "%s", *n >= max ? "too many ranges" : item);
            return -1;
        }
        (*n)++;
        s += len;
    }
    return 0;
}

bool cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
    uint8_t a[16];
    if (sa_addr(sa, a) != c->family)
        return false;
    int full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(a, c->addr, (size_t)full) != 0)
        return false;
    return rest == 0 || ((a[full] ^ c->addr[full]) & (uint8_t)(0xFF00u >> rest)) == 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The address table. */

static size_t slot_of(uint8_t role, int family, const uint8_t addr[16])
{
    uint64_t h = 1469598103934665603ULL ^ role ^ ((uint64_t)family << 8);
    for (int i = 0; i < 16; i++)
        h = (h ^ addr[i]) * 1099511628211ULL;
    return (size_t)h & (cap - 1);
}

static struct addr_state *lookup(uint8_t role, int family, const uint8_t addr[16], bool create,
                                 int64_t now);

/* Double the table, dropping addresses that have nothing to remember. */
static int grow(int64_t now)
{
    struct addr_state *old = table;
    size_t oldcap = cap;
    size_t ncap = !cap ? TABLE_MIN : cap >= TABLE_MAX ? cap : cap * 2;
    struct addr_state *n = calloc(ncap, sizeof(*n));
    if (!n)
        return -1;
    table = n;
    cap = ncap;
    used = 0;
    for (size_t i = 0; i < oldcap; i++) {
        struct addr_state *e = &old[i];
        /* Past TABLE_MAX slots (a flood from many addresses), forget every address without
         * an open connection or a lock-out, however recent. */
        bool idle = e->conns == 0 && e->banned_until_ms <= now;
        if (!e->used || (idle && (oldcap >= TABLE_MAX || now - e->last_ms > FORGET_AFTER_MS)))
            continue;
        struct addr_state *d = lookup(e->role, e->family, e->addr, true, now);
        if (d)
            *d = *e;
    }
    free(old);
    return 0;
}

static struct addr_state *lookup(uint8_t role, int family, const uint8_t addr[16], bool create,
                                 int64_t now)
{
    if (create && (used + 1) * 2 > cap && grow(now) < 0)
        return NULL;
    if (!cap)
        return NULL;
    for (size_t i = slot_of(role, family, addr);; i = (i + 1) & (cap - 1)) {
        struct addr_state *e = &table[i];
        if (!e->used) {
            if (!create)
                return NULL;
            memset(e, 0, sizeof(*e));
            e->used = true;
            e->role = role;
            e->family = (uint8_t)family;
            memcpy(e->addr, addr, 16);
            e->refill_ms = e->last_ms = now;
            used++;
            return e;
        }
        if (e->role == role && e->family == family && memcmp(e->addr, addr, 16) == 0)
            return e;
    }
}

static struct addr_state *entry_for(enum policy_role role, const struct sockaddr *sa, bool create,
                                    int64_t now)
{
    uint8_t a[16];
    int family = sa_addr(sa, a);
    if (family < 0)
        return NULL;
    return lookup((uint8_t)role, family, a, create, now);
}

/* ------------------------------------------------------------------------------------------ */

void policy_set(const struct policy pol[ROLE_COUNT])
{
    pthread_mutex_lock(&mu);
    memcpy(pols, pol, sizeof(pols));
    pthread_mutex_unlock(&mu);
}

const char *policy_verdict_text(enum policy_verdict v)
{
    switch (v) {
    case POLICY_OK:
        return "ok";
    case POLICY_DENIED:
        return "address not allowed";
    case POLICY_RATE:
        return "too many connections per second from your address";
    case POLICY_PER_IP:
        return "too many connections from your address";
    case POLICY_TOTAL:
        return "too many connections";
    case POLICY_AUTH_BANNED:
        return "too many failed authentications; try again later";
    case POLICY_LOCAL_ONLY:
        return "this service takes local connections only (no access token is configured)";
    case POLICY_VERDICTS:
        break;
    }
    return "refused";
}

static bool is_loopback(const struct sockaddr *sa)
{
    uint8_t a[16];
    static const uint8_t v6_loopback[16] = {[15] = 1};
    int family = sa_addr(sa, a);
    static const uint8_t v4_loopback[4] = {127, 0, 0, 1};
    return (family == AF_INET && memcmp(a, v4_loopback, 4) == 0) ||
           (family == AF_INET6 && memcmp(a, v6_loopback, 16) == 0);
}

static bool in_list(const struct cidr *list, int n, const struct sockaddr *sa)
{
    for (int i = 0; i < n; i++)
        if (cidr_match(&list[i], sa))
            return true;
    return false;
}

enum policy_verdict policy_admit(enum policy_role role, const struct sockaddr *sa,
                                 const struct sockaddr *local, int64_t now)
{
    enum policy_verdict v = POLICY_OK;
    pthread_mutex_lock(&mu);
    const struct policy *p = &pols[role];
    if ((p->nallow && !in_list(p->allow, p->nallow, sa)) || in_list(p->deny, p->ndeny, sa)) {
        v = POLICY_DENIED;
        goto out;
    }
    if (p->auth && p->ntokens == 0 && !is_loopback(local)) {
        v = POLICY_LOCAL_ONLY;
        goto out;
    }
    if (p->max_conns && role_conns[role] >= p->max_conns) {
        v = POLICY_TOTAL;
        goto out;
    }
    struct addr_state *e = entry_for(role, sa, true, now);
    if (e) {
        e->last_ms = now;
        if (e->banned_until_ms > now) {
            v = POLICY_AUTH_BANNED;
            goto out;
        }
        if (p->max_conns_per_ip && e->conns >= p->max_conns_per_ip) {
            v = POLICY_PER_IP;
            goto out;
        }
        if (p->conn_rate > 0) {
            /* A token bucket: a source may open conn_burst connections at once (a NAT, or
             * every client reconnecting after a restart), then conn_rate a second. */
            double burst = p->conn_burst > 0 ? p->conn_burst : p->conn_rate;
            if (burst < 1)
                burst = 1;
            if (!e->filled) {
                e->tokens = burst;
                e->filled = true;
            }
            /* Reactors read their clocks before taking the lock, so now may be a little older
             * than the last refill: that refills nothing (and must not empty the bucket below
             * zero, which once read as "never filled" and refilled it whole under a flood). */
            if (now > e->refill_ms) {
                e->tokens += (double)(now - e->refill_ms) * p->conn_rate / 1000.0;
                e->refill_ms = now;
            }
            if (e->tokens > burst)
                e->tokens = burst;
            if (e->tokens < 1) {
                v = POLICY_RATE;
                goto out;
            }
            e->tokens -= 1;
        }
        e->conns++;
    }
    role_conns[role]++;
out:
    pthread_mutex_unlock(&mu);
    if (v != POLICY_OK)
        atomic_fetch_add_explicit(&refused[v], 1, memory_order_relaxed);
    return v;
}

bool policy_allows(enum policy_role role, const struct sockaddr *sa)
{
    pthread_mutex_lock(&mu);
    const struct policy *p = &pols[role];
    bool ok = (!p->nallow || in_list(p->allow, p->nallow, sa)) && !in_list(p->deny, p->ndeny, sa);
    pthread_mutex_unlock(&mu);
    return ok;
}

void policy_release(enum policy_role role, const struct sockaddr *sa)
{
    pthread_mutex_lock(&mu);
    if (role_conns[role] > 0)
        role_conns[role]--;
    struct addr_state *e = entry_for(role, sa, false, 0);
    if (e && e->conns > 0)
        e->conns--;
    pthread_mutex_unlock(&mu);
}

bool policy_auth_required(enum policy_role role)
{
    pthread_mutex_lock(&mu);
    bool r = pols[role].auth && pols[role].ntokens > 0;
    pthread_mutex_unlock(&mu);
    return r;
}

/* Compare without an early exit, so the time taken says nothing about where they differ. */
static bool same_secret(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned diff = alen != blen;
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)a[i] ^ (unsigned char)b[i];
    return diff == 0;
}

bool policy_check_token(enum policy_role role, const struct sockaddr *sa, const char *token,
                        size_t len, int64_t now)
{
    pthread_mutex_lock(&mu);
    const struct policy *p = &pols[role];
    bool ok = !(p->auth && p->ntokens > 0);
    for (int i = 0; i < p->ntokens; i++)
        ok |= same_secret(token, len, p->tokens[i], strlen(p->tokens[i]));
    if (!ok) {
        struct addr_state *e = entry_for(role, sa, true, now);
        if (e) {
            if (now - e->fail_start_ms > AUTH_WINDOW_MS) {
                e->fail_start_ms = now;
                e->fails = 0;
            }
            if (++e->fails >= AUTH_FAILS_MAX)
                e->banned_until_ms = now + AUTH_BAN_MS;
        }
    }
    pthread_mutex_unlock(&mu);
    atomic_fetch_add_explicit(ok ? &auth_ok : &auth_failed, 1, memory_order_relaxed);
    return ok;
}

double policy_line_rate(enum policy_role role)
{
    pthread_mutex_lock(&mu);
    double r = pols[role].line_rate;
    pthread_mutex_unlock(&mu);
    return r;
}

void policy_get_counters(struct policy_counters *out)
{
    for (int i = 0; i < POLICY_VERDICTS; i++)
        out->refused[i] = atomic_load_explicit(&refused[i], memory_order_relaxed);
    out->auth_ok = atomic_load_explicit(&auth_ok, memory_order_relaxed);
    out->auth_failed = atomic_load_explicit(&auth_failed, memory_order_relaxed);
}

void policy_free(void)
{
    pthread_mutex_lock(&mu);
    free(table);
    table = NULL;
    cap = used = 0;
    pthread_mutex_unlock(&mu);
}
