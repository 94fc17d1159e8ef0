/* client.c - liblogcaster's public calls: opening and closing a client, the bounded queue that
 * lc_log() fills and the senders empty, lc_flush(), the counters and the last error.
 *
 * One mutex guards the queue, the ticket counter and the spill file. lc_log() holds it only
 * to link a ready record in (or to append it to the spill file), so a logging thread never
 * waits for the network. A record's ticket numbers lc_log() calls in order; lc_flush()
 * waits until no entry with a ticket up to its own is still outstanding anywhere: in the
 * queue, in the spill file, or with a sender (each sender publishes its oldest ticket). */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lc_internal.h"

#define STACK_MSG      1024
#define SPILL_TAKE_MAX 4096 /* Records taken back from the spill file per lcl_take(). */

/* Records and lists ----------------------------------------------------------------------- */

static void put64be(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

struct lcl_rec *lcl_rec_new(int level, int64_t ts_ms, const void *msg, size_t len)
{
    size_t flen = LCL_HDR + LCL_LOG_FIXED + len;
    struct lcl_rec *r = malloc(sizeof *r + flen + 1); /* +1: room for vsnprintf's NUL */
    if (!r)
        return NULL;
    r->next = NULL;
    r->ticket = 0;
    r->len = (uint32_t)flen;
    unsigned char *f = r->frame;
    f[0] = LCL_VERSION;
    f[1] = LCL_LOG_MS;
    f[2] = (unsigned char)((flen - LCL_HDR) >> 8);
    f[3] = (unsigned char)(flen - LCL_HDR);
    memset(f + 4, 0, 4); /* The sequence number, set when sent. */
    f[LCL_HDR] = (unsigned char)level;
    put64be(f + LCL_HDR + 1, (uint64_t)ts_ms);
    if (msg && len)
        memcpy(f + LCL_HDR + LCL_LOG_FIXED, msg, len);
    return r;
}

int64_t lcl_rec_ts(const struct lcl_rec *r)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | r->frame[LCL_HDR + 1 + i];
    return (int64_t)v;
}

void lcl_list_push(struct lcl_list *l, struct lcl_rec *r)
{
    r->next = NULL;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
    l->n++;
}

struct lcl_rec *lcl_list_pop(struct lcl_list *l)
{
    struct lcl_rec *r = l->head;
    if (r) {
        l->head = r->next;
        if (!l->head)
            l->tail = NULL;
        l->n--;
        r->next = NULL;
    }
    return r;
}

void lcl_list_prepend(struct lcl_list *dst, struct lcl_list *src)
{
    if (!src->head)
        return;
    src->tail->next = dst->head;
    if (!dst->tail)
        dst->tail = src->tail;
    dst->head = src->head;
    dst->n += src->n;
    *src = (struct lcl_list){0};
}

void lcl_list_free(struct lcl_list *l)
{
    struct lcl_rec *r;
    while ((r = lcl_list_pop(l)))
        free(r);
}

int64_t lcl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Errors ---------------------------------------------------------------------------------- */

void lcl_set_error(struct lc_client *lc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&lc->err_mu);
    vsnprintf(lc->err, sizeof lc->err, fmt, ap);
    pthread_mutex_unlock(&lc->err_mu);
    va_end(ap);
}

const char *lc_last_error(lc_client *lc)
{
    static __thread char copy[sizeof lc->err];
    pthread_mutex_lock(&lc->err_mu);
    memcpy(copy, lc->err, sizeof copy);
    pthread_mutex_unlock(&lc->err_mu);
    return copy;
}

const char *lc_level_str(int level)
{
    static const char *const names[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"};
    return level >= 0 && level <= LC_LOG_FATAL ? names[level] : "?";
}

/* Open and close -------------------------------------------------------------------------- */

static void client_free(lc_client *lc)
{
    for (int i = 0; i < lc->nsenders; i++)
        lcl_sender_free(&lc->senders[i]);
    free(lc->senders);
    lcl_list_free(&lc->pending);
    pthread_mutex_destroy(&lc->mu);
    pthread_mutex_destroy(&lc->err_mu);
    pthread_cond_destroy(&lc->room_cv);
    pthread_cond_destroy(&lc->flush_cv);
    lcl_cfg_free(&lc->cfg);
    free(lc);
}

/* Stop and join every started sender. */
static void stop_senders(lc_client *lc)
{
    atomic_store(&lc->stop, true);
    for (int i = 0; i < lc->nsenders; i++)
        if (lc->senders[i].started)
            lcl_sender_wake(&lc->senders[i]);
    for (int i = 0; i < lc->nsenders; i++) {
        if (lc->senders[i].started)
            pthread_join(lc->senders[i].thread, NULL);
        lc->senders[i].started = false;
    }
}

lc_client *lc_open(const char *url)
{
    char err[512] = "";
    if (!url) {
        url = getenv("LOGCASTER_URL");
        if (!url || !*url)
            url = "logcaster://127.0.0.1:9999";
    }
    lc_client *lc = calloc(1, sizeof *lc);
    if (!lc) {
        errno = ENOMEM;
        return NULL;
    }
    int rc = lcl_cfg_parse(url, &lc->cfg, err, sizeof err);
    if (rc < 0) {
        free(lc);
        errno = -rc;
        return NULL;
    }
    pthread_mutex_init(&lc->mu, NULL);
    pthread_mutex_init(&lc->err_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&lc->room_cv, &ca);
    pthread_cond_init(&lc->flush_cv, &ca);
    pthread_condattr_destroy(&ca);
    lc->next_ticket = 1;
    lc->spill.fd = -1;
    if (lc->cfg.spill) {
        if ((rc = lcl_spill_open(&lc->spill, lc->cfg.spill, err, sizeof err)) < 0)
            goto fail;
        /* Entries an earlier process left: they come first, with the first tickets. */
        lc->spill_ticket = 1;
        lc->next_ticket = 1 + lc->spill.count;
        atomic_store(&lc->n_spill_queued, lc->spill.count);
        if (err[0])
            lcl_set_error(lc, "%s", err);
    }
    lc->senders = calloc((size_t)lc->cfg.connections, sizeof *lc->senders);
    if (!lc->senders) {
        rc = -ENOMEM;
        goto fail;
    }
    for (int i = 0; i < lc->cfg.connections; i++) {
        lc->nsenders = i + 1; /* Freed by client_free() even if its init fails half-way. */
        if ((rc = lcl_sender_init(lc, &lc->senders[i], i)) < 0)
            goto fail;
    }
    /* Sender threads start with every signal blocked: signals are the program's business. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int i = 0; i < lc->nsenders && rc == 0; i++) {
        rc = -pthread_create(&lc->senders[i].thread, NULL, lcl_sender_main, &lc->senders[i]);
        lc->senders[i].started = rc == 0;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0)
        goto fail;
    return lc;
fail:
    stop_senders(lc);
    lcl_spill_close(&lc->spill, NULL, 0);
    client_free(lc);
    errno = -rc;
    return NULL;
}

/* Collect every record still in memory, in ticket order, for the spill file. */
static int cmp_ticket(const void *a, const void *b)
{
    uint64_t x = (*(struct lcl_rec *const *)a)->ticket, y = (*(struct lcl_rec *const *)b)->ticket;
    return x < y ? -1 : x > y;
}

static void save_to_spill(lc_client *lc)
{
    size_t n = lc->pending.n;
    for (int i = 0; i < lc->nsenders; i++)
        n += lc->senders[i].unsent.n + lc->senders[i].inflight.n;
    struct lcl_rec **all = n ? malloc(n * sizeof *all) : NULL;
    size_t k = 0;
    if (all) {
        struct lcl_list *lists[2 * 64 + 1];
        int nl = 0;
        lists[nl++] = &lc->pending;
        for (int i = 0; i < lc->nsenders; i++) {
            lists[nl++] = &lc->senders[i].inflight;
            lists[nl++] = &lc->senders[i].unsent;
        }
        for (int i = 0; i < nl; i++)
            for (struct lcl_rec *r = lists[i]->head; r; r = r->next)
                all[k++] = r;
        qsort(all, k, sizeof *all, cmp_ticket);
    }
    int rc = lcl_spill_close(&lc->spill, all, k);
    if (rc < 0)
        fprintf(stderr, "liblogcaster: could not save %zu entries to %s: %s\n", k, lc->cfg.spill,
                strerror(-rc));
    free(all);
}

int lc_close(lc_client *lc)
{
    if (!lc)
        return 0;
    int rc = lc_flush(lc, lc->cfg.flush_timeout_ms);
    stop_senders(lc);
    if (lc->spill.fd >= 0)
        save_to_spill(lc);
    client_free(lc);
    return rc;
}

/* Logging --------------------------------------------------------------------------------- */

/* Queue r (or spill it, or drop it). Takes ownership of r. */
static int enqueue(lc_client *lc, struct lcl_rec *r)
{
    struct lcl_sender *wake = NULL;
    int rc = 0;
    bool added = false;
    pthread_mutex_lock(&lc->mu);
    if (lc->spill.count > 0 || atomic_load(&lc->held) >= lc->cfg.queue) {
        if (lc->cfg.on_full == LCL_DROP) {
            rc = -EAGAIN;
            goto out;
        }
        if (lc->cfg.on_full == LCL_SPILL) {
            rc = lcl_spill_append(&lc->spill, r);
            if (rc == 0) {
                added = true;
                if (lc->spill.count == 1)
                    lc->spill_ticket = lc->next_ticket;
                lc->next_ticket++;
                atomic_fetch_add(&lc->n_spilled, 1);
                atomic_fetch_add(&lc->n_spill_queued, 1);
            } else {
                lcl_set_error(lc, "spill file %s: %s; entry dropped", lc->cfg.spill, strerror(-rc));
                rc = -EAGAIN;
            }
            goto out; /* A sender takes it back when there is room. */
        }
        atomic_fetch_add(&lc->room_waiters, 1);
        while (atomic_load(&lc->held) >= lc->cfg.queue && !atomic_load(&lc->stop) &&
               !atomic_load(&lc->interrupted))
            pthread_cond_wait(&lc->room_cv, &lc->mu);
        atomic_fetch_sub(&lc->room_waiters, 1);
        if (atomic_load(&lc->held) >= lc->cfg.queue && atomic_load(&lc->interrupted)) {
            rc = -EINTR; /* Not taken, not counted as dropped: the caller is stopping. */
            goto out;
        }
    }
    r->ticket = lc->next_ticket++;
    lcl_list_push(&lc->pending, r);
    atomic_fetch_add(&lc->held, 1);
    r = NULL;
    added = true;
out:
    for (int i = 0; added && i < lc->nsenders; i++) {
        if (lc->senders[i].idle) {
            lc->senders[i].idle = false;
            wake = &lc->senders[i];
            break;
        }
    }
    pthread_mutex_unlock(&lc->mu);
    if (wake)
        lcl_sender_wake(wake);
    if (r) {
        free(r);
        if (rc == -EAGAIN)
            atomic_fetch_add(&lc->n_dropped, 1);
        else if (rc == -EINTR)
            atomic_fetch_sub(&lc->n_logged, 1); /* Given back to the caller, not logged. */
    }
    return rc;
}

/* How many bytes of msg[0..len) to keep: at most LC_MAX_MESSAGE, ending on a character. */
static size_t cut_len(lc_client *lc, const char *msg, size_t len)
{
    if (len <= LC_MAX_MESSAGE)
        return len;
    atomic_fetch_add(&lc->n_truncated, 1);
    size_t cut = LC_MAX_MESSAGE;
    while (cut > LC_MAX_MESSAGE - 3 && ((unsigned char)msg[cut] & 0xC0) == 0x80)
        cut--;
    return cut;
}

int lc_log_raw(lc_client *lc, int level, int64_t ts_ms, const char *msg, size_t len)
{
    if (!lc || level < LC_LOG_TRACE || level > LC_LOG_FATAL || ts_ms < 0 || !msg || !len)
        return -EINVAL; /* The server refuses empty messages: say so at once. */
    atomic_fetch_add(&lc->n_logged, 1);
    struct lcl_rec *r =
        lcl_rec_new(level, ts_ms ? ts_ms : lcl_now_ms(), msg, cut_len(lc, msg, len));
    if (!r) {
        atomic_fetch_add(&lc->n_dropped, 1);
        return -ENOMEM;
    }
    return enqueue(lc, r);
}

int lc_logv(lc_client *lc, int level, const char *fmt, va_list ap)
{
    if (!lc || !fmt || level < LC_LOG_TRACE || level > LC_LOG_FATAL)
        return -EINVAL;
    int64_t now = lcl_now_ms();
    char buf[STACK_MSG];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    if (n <= 0) { /* A format error, or an empty message (the server refuses those). */
        va_end(ap2);
        return -EINVAL;
    }
    atomic_fetch_add(&lc->n_logged, 1);
    struct lcl_rec *r;
    if ((size_t)n < sizeof buf) {
        r = lcl_rec_new(level, now, buf, (size_t)n);
    } else {
        /* Format the whole message, then cut it at a character boundary. */
        char *big = malloc((size_t)n + 1);
        r = NULL;
        if (big) {
            vsnprintf(big, (size_t)n + 1, fmt, ap2);
            r = lcl_rec_new(level, now, big, cut_len(lc, big, (size_t)n));
            free(big);
        }
    }
    va_end(ap2);
    if (!r) {
        atomic_fetch_add(&lc->n_dropped, 1);
        return -ENOMEM;
    }
    return enqueue(lc, r);
}

int lc_log(lc_client *lc, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = lc_logv(lc, level, fmt, ap);
    va_end(ap);
    return rc;
}

/* The senders' side of the queue ---------------------------------------------------------- */

void lcl_take(struct lc_client *lc, struct lcl_sender *s, size_t max)
{
    if (lc->spill.count > 0 && atomic_load(&lc->held) < lc->cfg.queue) {
        size_t room = lc->cfg.queue - atomic_load(&lc->held);
        struct lcl_list back = {0};
        long n = lcl_spill_take(&lc->spill, room < SPILL_TAKE_MAX ? room : SPILL_TAKE_MAX, &back,
                                &lc->spill_ticket);
        if (n < 0) {
            lcl_set_error(lc, "spill file %s: %s (the rest of it is lost)", lc->cfg.spill,
                          strerror((int)-n));
            atomic_store(&lc->n_spill_queued, lc->spill.count);
        } else if (n > 0) {
            atomic_fetch_add(&lc->held, back.n);
            atomic_fetch_sub(&lc->n_spill_queued, back.n);
            /* After what is already queued: those were logged before anything spilled. */
            if (lc->pending.tail) {
                lc->pending.tail->next = back.head;
                lc->pending.tail = back.tail;
                lc->pending.n += back.n;
            } else {
                lc->pending = back;
            }
        }
    }
    for (size_t i = 0; i < max && lc->pending.head; i++)
        lcl_list_push(&s->unsent, lcl_list_pop(&lc->pending));
    s->idle = lc->pending.head == NULL && lc->spill.count == 0;
    struct lcl_rec *oldest = s->inflight.head ? s->inflight.head : s->unsent.head;
    atomic_store(&s->oldest, oldest ? oldest->ticket : UINT64_MAX);
    /* More than this sender takes: let an idle one help. */
    if (lc->pending.head) {
        for (int i = 0; i < lc->nsenders; i++) {
            if (lc->senders[i].idle && &lc->senders[i] != s) {
                lc->senders[i].idle = false;
                lcl_sender_wake(&lc->senders[i]);
                break;
            }
        }
    }
}

void lcl_progress(struct lc_client *lc)
{
    if (atomic_load(&lc->flush_waiters) == 0 && atomic_load(&lc->room_waiters) == 0)
        return;
    pthread_mutex_lock(&lc->mu);
    pthread_cond_broadcast(&lc->flush_cv);
    pthread_cond_broadcast(&lc->room_cv);
    pthread_mutex_unlock(&lc->mu);
}

/* Flush and counters ---------------------------------------------------------------------- */

/* Under lc->mu: the smallest ticket not yet finished, UINT64_MAX when none. */
static uint64_t oldest_outstanding(lc_client *lc)
{
    uint64_t t = lc->pending.head ? lc->pending.head->ticket : UINT64_MAX;
    if (lc->spill.count > 0 && lc->spill_ticket < t)
        t = lc->spill_ticket;
    for (int i = 0; i < lc->nsenders; i++) {
        uint64_t o = atomic_load(&lc->senders[i].oldest);
        if (o < t)
            t = o;
    }
    return t;
}

int lc_flush(lc_client *lc, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (timeout_ms >= 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000;
        }
    }
    int rc = 0;
    pthread_mutex_lock(&lc->mu);
    uint64_t target = lc->next_ticket - 1;
    atomic_fetch_add(&lc->flush_waiters, 1);
    while (oldest_outstanding(lc) <= target) {
        /* Wake at least every 50 ms: a sender's ack may race with our check. */
        struct timespec now, until;
        clock_gettime(CLOCK_MONOTONIC, &now);
        until = now;
        until.tv_nsec += 50 * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        if (timeout_ms >= 0) {
            if (now.tv_sec > deadline.tv_sec ||
                (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec)) {
                rc = -ETIMEDOUT;
                break;
            }
            if (until.tv_sec > deadline.tv_sec ||
                (until.tv_sec == deadline.tv_sec && until.tv_nsec > deadline.tv_nsec))
                until = deadline;
        }
        pthread_cond_timedwait(&lc->flush_cv, &lc->mu, &until);
    }
    atomic_fetch_sub(&lc->flush_waiters, 1);
    pthread_mutex_unlock(&lc->mu);
    return rc;
}

void lc_interrupt(lc_client *lc)
{
    atomic_store(&lc->interrupted, true);
    pthread_mutex_lock(&lc->mu);
    pthread_cond_broadcast(&lc->room_cv);
    pthread_mutex_unlock(&lc->mu);
}

void lc_counters(lc_client *lc, struct lc_counters *out)
{
    memset(out, 0, sizeof *out);
    out->logged = atomic_load(&lc->n_logged);
    out->acked = atomic_load(&lc->n_acked);
    out->dropped = atomic_load(&lc->n_dropped);
    out->spilled = atomic_load(&lc->n_spilled);
    out->resent = atomic_load(&lc->n_resent);
    out->rejected = atomic_load(&lc->n_rejected);
    out->reconnects = atomic_load(&lc->n_reconnects);
    out->queued = atomic_load(&lc->held);
    out->spill_queued = atomic_load(&lc->n_spill_queued);
    out->truncated = atomic_load(&lc->n_truncated);
}
