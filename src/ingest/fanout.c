/* fanout.c - committed batches to subscribers (see fanout.h).
 *
 * Path of a commit: fanout_append copies a submitted batch (only while someone subscribes) and
 * appends it to the pending list in id order -- the copy and store_append happen under one
 * lock, so the list is sorted by construction. The writer's commit hook (pipeline.c) takes the
 * commits whose ids are all decided, posts a reference to each reactor with subscribers, and
 * wakes it. The reactor queues a reference per subscriber and calls its notify. A commit is
 * freed when its last reference goes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "core/log.h"
#include "ingest/ingest_internal.h"

struct ingest_commit {
    _Atomic int refs;
    struct ingest_commit *next; /* On the pending list, then on the writer's decided list. */
    uint64_t first_id, last_id;
    size_t n;
    struct lc_entry *e; /* n entries; their strings live in text. */
    char text[];
};

static pthread_mutex_t pend_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ingest_commit *pend_head, *pend_tail;
static _Atomic int nsubs; /* Subscribers in the process: copies are made while any exist. */
static _Atomic int64_t wanted_since_ms; /* When nsubs last rose from 0 (wall clock). */
static bool external; /* A cluster member: live entries come from ingest_live_post. */

static void commit_unref(struct ingest_commit *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        free(c);
}

/* One allocation: the header, the entries, then every string. NULL when out of memory. */
static struct ingest_commit *commit_copy(const struct lc_entry *e, size_t n)
{
    size_t text = 0;
    for (size_t i = 0; i < n; i++)
        text += e[i].msg_len + e[i].source_len;
    size_t head = (sizeof(struct ingest_commit) + 7) & ~(size_t)7;
    struct ingest_commit *c = malloc(head + n * sizeof(*e) + text);
    if (!c)
        return NULL;
    atomic_init(&c->refs, 1);
    c->next = NULL;
    c->n = n;
    c->e = (struct lc_entry *)((char *)c + head);
    char *t = (char *)(c->e + n);
    for (size_t i = 0; i < n; i++) {
        c->e[i] = e[i];
        memcpy(t, e[i].msg, e[i].msg_len);
        c->e[i].msg = t;
        t += e[i].msg_len;
        memcpy(t, e[i].source, e[i].source_len);
        c->e[i].source = t;
        t += e[i].source_len;
    }
    return c;
}

int fanout_append(int (*append)(void *sink, struct lc_entry *e, size_t n), void *sink,
                  struct lc_entry *e, size_t n)
{
    if (external || atomic_load_explicit(&nsubs, memory_order_relaxed) == 0)
        return append(sink, e, n);
    struct ingest_commit *c = commit_copy(e, n);
    if (!c)
        log_warn("ingest: out of memory copying a batch for live subscribers; they miss it");
    pthread_mutex_lock(&pend_mu);
    int r = append(sink, e, n);
    if (r == 0 && c) {
        for (size_t i = 0; i < n; i++)
            c->e[i].id = e[i].id;
        c->first_id = e[0].id;
        c->last_id = e[n - 1].id;
        if (pend_tail)
            pend_tail->next = c;
        else
            pend_head = c;
        pend_tail = c;
        c = NULL;
    }
    pthread_mutex_unlock(&pend_mu);
    free(c); /* Not appended. */
    return r;
}

struct ingest_commit *fanout_decided(uint64_t hi)
{
    pthread_mutex_lock(&pend_mu);
    struct ingest_commit *list = pend_head, *last = NULL;
    for (struct ingest_commit *c = pend_head; c && c->last_id <= hi; c = c->next)
        last = c;
    if (!last) {
        pthread_mutex_unlock(&pend_mu);
        return NULL;
    }
    pend_head = last->next;
    if (!pend_head)
        pend_tail = NULL;
    last->next = NULL;
    pthread_mutex_unlock(&pend_mu);
    return list;
}

void fanout_post(struct reactor *r, struct ingest_commit *list)
{
    if (!atomic_load_explicit(&r->has_subs, memory_order_relaxed))
        return;
    for (struct ingest_commit *c = list; c; c = c->next) {
        struct commit_vec *in = &r->in_commits;
        if (in->n == INBOX_MAX) { /* A reactor that does not drain: its subscribers are told. */
            r->in_dropped += c->n;
            continue;
        }
        if (in->n == in->cap) {
            size_t cap = in->cap ? 2 * in->cap : 16;
            struct ingest_commit **grown = realloc(in->v, cap * sizeof(*grown));
            if (!grown) {
                log_warn("ingest: out of memory posting a commit; live subscribers miss it");
                r->in_dropped += c->n;
                continue;
            }
            in->v = grown;
            in->cap = cap;
        }
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
        in->v[in->n++] = c;
    }
}

void fanout_release(struct ingest_commit *list)
{
    while (list) {
        struct ingest_commit *next = list->next;
        commit_unref(list);
        list = next;
    }
}

struct commit_vec fanout_take_inbox(struct reactor *r)
{
    struct commit_vec v = r->in_commits;
    v.dropped = r->in_dropped;
    r->in_commits = (struct commit_vec){0};
    r->in_dropped = 0;
    return v;
}

/* Queue c for s, dropping the oldest commits beyond the bound. */
static void sub_push(struct ingest_sub *s, struct ingest_commit *c)
{
    while (s->len && s->queued + c->n > s->max_entries) {
        struct ingest_commit *old = s->q[s->head];
        s->dropped += old->n - s->at;
        s->queued -= old->n - s->at;
        s->at = 0;
        s->head = (s->head + 1) % s->cap;
        s->len--;
        commit_unref(old);
    }
    if (s->len == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        struct ingest_commit **grown = malloc(cap * sizeof(*grown));
        if (!grown) {
            s->dropped += c->n;
            return;
        }
        for (size_t i = 0; i < s->len; i++)
            grown[i] = s->q[(s->head + i) % s->cap];
        free(s->q);
        s->q = grown;
        s->cap = cap;
        s->head = 0;
    }
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    s->q[(s->head + s->len++) % s->cap] = c;
    s->queued += c->n;
}

void fanout_deliver(struct reactor *r, struct commit_vec arrived)
{
    for (size_t i = 0; i < arrived.n; i++) {
        for (struct ingest_sub *s = r->subs; s; s = s->next)
            sub_push(s, arrived.v[i]);
        commit_unref(arrived.v[i]);
    }
    free(arrived.v);
    if (arrived.dropped)
        for (struct ingest_sub *s = r->subs; s; s = s->next)
            s->dropped += arrived.dropped;
    if (arrived.n == 0 && arrived.dropped == 0)
        return;
    /* A notify may unsubscribe (itself only): take the next one first. */
    for (struct ingest_sub *s = r->subs, *next; s; s = next) {
        next = s->next;
        if (s->len || s->dropped)
            s->notify(s);
    }
}

static void sub_remove(struct reactor *r, struct ingest_sub *s)
{
    for (struct ingest_sub **at = &r->subs; *at; at = &(*at)->next)
        if (*at == s) {
            *at = s->next;
            break;
        }
    if (!r->subs)
        atomic_store(&r->has_subs, false);
    atomic_fetch_sub(&nsubs, 1);
    for (size_t i = 0; i < s->len; i++)
        commit_unref(s->q[(s->head + i) % s->cap]);
    free(s->q);
    s->q = NULL;
    s->len = s->cap = 0;
    s->active = false;
}

void fanout_reactor_free(struct reactor *r)
{
    for (size_t i = 0; i < r->in_commits.n; i++)
        commit_unref(r->in_commits.v[i]);
    free(r->in_commits.v);
    while (r->subs) /* Subscribers outlive their thread only at shutdown. */
        sub_remove(r, r->subs);
}

int ingest_subscribe(struct ev_loop *loop, struct ingest_sub *s)
{
    struct reactor *r = reactor_attach(loop);
    if (!r)
        return -ENOMEM;
    s->q = NULL;
    s->head = s->len = s->cap = s->at = s->queued = 0;
    s->dropped = 0;
    s->next = r->subs;
    r->subs = s;
    s->active = true;
    if (atomic_fetch_add(&nsubs, 1) == 0)
        atomic_store(&wanted_since_ms, now_ms());
    pthread_mutex_lock(&r->mu); /* So the next commit hook sees it. */
    atomic_store(&r->has_subs, true);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

void ingest_unsubscribe(struct ingest_sub *s)
{
    if (s->active)
        sub_remove(tls_reactor, s);
}

uint64_t ingest_sub_next_id(const struct ingest_sub *s)
{
    return s->len ? s->q[s->head]->first_id + s->at : 0;
}

/* Whether id's write failed, as this thread knows from the commits pushed to it. */
static bool id_failed(const struct reactor *r, uint64_t lo, uint64_t hi)
{
    for (size_t i = 0; i < r->nfailed; i++)
        if (lo <= r->failed[i].hi && r->failed[i].lo <= hi)
            return true;
    return false;
}

size_t ingest_sub_take(struct ingest_sub *s, size_t max,
                       bool (*visit)(void *arg, const struct lc_entry *e), void *arg,
                       uint64_t *dropped)
{
    const struct reactor *r = tls_reactor;
    *dropped = s->dropped;
    s->dropped = 0;
    size_t taken = 0;
    bool go = true;
    while (go && taken < max && s->len) {
        struct ingest_commit *c = s->q[s->head];
        /* Failures are rare: look entry by entry only in a commit that touches one. */
        bool check = r->nfailed && id_failed(r, c->first_id, c->last_id);
        while (go && taken < max && s->at < c->n) {
            const struct lc_entry *e = &c->e[s->at++];
            s->queued--;
            taken++;
            if (!check || !id_failed(r, e->id, e->id))
                go = visit(arg, e);
        }
        if (s->at == c->n) {
            s->at = 0;
            s->head = (s->head + 1) % s->cap;
            s->len--;
            commit_unref(c);
        }
    }
    return taken;
}

void ingest_live_external(void)
{
    external = true;
}

bool ingest_ids_ordered(void)
{
    return !external;
}

bool ingest_live_wanted(void)
{
    return atomic_load_explicit(&nsubs, memory_order_relaxed) > 0;
}

int64_t ingest_live_wanted_since_ms(void)
{
    return atomic_load(&wanted_since_ms);
}

void ingest_live_post(const struct lc_entry *e, size_t n)
{
    if (n == 0 || !ingest_live_wanted())
        return;
    struct ingest_commit *c = commit_copy(e, n);
    if (!c) {
        log_warn("ingest: out of memory copying entries for live subscribers; they miss them");
        return;
    }
    c->first_id = e[0].id;
    c->last_id = e[n - 1].id;
    reactors_post(c);
    commit_unref(c);
}
