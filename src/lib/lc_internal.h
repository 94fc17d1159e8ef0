/* lc_internal.h - what the files of liblogcaster share: the client, its senders, the entry
 * record, the url settings and the spill file. Nothing here is exported from the shared
 * library (-fvisibility=hidden); cross-file names start with lcl_. */
#ifndef LC_INTERNAL_H
#define LC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logcaster.h"

/* Wire format (src/proto/binary.h, restated: the library depends on nothing of the server). */
#define LCL_VERSION     1
#define LCL_HDR         8 /* version u8 | command u8 | length u16 | sequence u32, big-endian */
#define LCL_PING        0x03
#define LCL_AUTH        0x05
#define LCL_LOG_MS      0x06 /* level u8 | timestamp_ms u64 | message */
#define LCL_R_PONG      0x83
#define LCL_R_AUTHED    0x85
#define LCL_R_LOG_MS    0x86 /* id u64 */
#define LCL_R_ERROR     0xFF /* code u8 | reason */
#define LCL_PAYLOAD     65535
#define LCL_LOG_FIXED   9 /* level + timestamp before the message */
#define LCL_FRAME_MAX   (LCL_HDR + LCL_PAYLOAD)
#define LCL_E_MALFORMED 3
#define LCL_E_TOO_LONG  4
#define LCL_E_AUTH      5

enum lcl_on_full { LCL_DROP, LCL_BLOCK, LCL_SPILL };

/* Settings from the url (url.c). Strings are owned (free with lcl_cfg_free). */
struct lcl_cfg {
    char *host; /* Without brackets for IPv6. */
    char port[8];
    char *token; /* NULL: no AUTH frame. */
    char *spill; /* NULL: no spill file. */
    size_t queue;
    int on_full; /* enum lcl_on_full */
    int connections;
    int window;
    int connect_timeout_ms;
    int flush_timeout_ms;
};

/* Parse url into cfg (defaults filled in). Returns 0, or -EINVAL with a sentence in err. */
int lcl_cfg_parse(const char *url, struct lcl_cfg *cfg, char *err, size_t errlen);
void lcl_cfg_free(struct lcl_cfg *cfg);

/* One entry, ready to go: a complete LOG_MS frame whose sequence field is filled in when it
 * is sent. Records are owned by exactly one list at a time. */
struct lcl_rec {
    struct lcl_rec *next;
    uint64_t ticket; /* Order of lc_log() calls, from 1; flush waits by ticket. */
    uint32_t len;    /* Frame bytes. */
    unsigned char frame[];
};

static inline int lcl_rec_level(const struct lcl_rec *r)
{
    return r->frame[LCL_HDR];
}
static inline const unsigned char *lcl_rec_msg(const struct lcl_rec *r, size_t *len)
{
    *len = r->len - LCL_HDR - LCL_LOG_FIXED;
    return r->frame + LCL_HDR + LCL_LOG_FIXED;
}
int64_t lcl_rec_ts(const struct lcl_rec *r);

/* A record for a message of len bytes (already cut to LC_MAX_MESSAGE); msg may be NULL to
 * fill it in later. Returns NULL when out of memory. */
struct lcl_rec *lcl_rec_new(int level, int64_t ts_ms, const void *msg, size_t len);

/* A FIFO of records. */
struct lcl_list {
    struct lcl_rec *head, *tail;
    size_t n;
};

void lcl_list_push(struct lcl_list *l, struct lcl_rec *r);
struct lcl_rec *lcl_list_pop(struct lcl_list *l);
/* Move all of src to the front of dst. */
void lcl_list_prepend(struct lcl_list *dst, struct lcl_list *src);
void lcl_list_free(struct lcl_list *l);

/* The spill file (spill.c): a 16-byte header ("LCSPILL1", offset u64 LE of the first record not
 * yet taken back), then records: len u32 LE | crc32 u32 LE (of len and payload) | payload =
 * level u8 | ts_ms i64 LE | message. All calls but open are made under the client's lock. */
struct lcl_spill {
    int fd;
    char *path;
    uint64_t read_off; /* First record not yet taken back. */
    uint64_t end_off;  /* Append position (the file size). */
    uint64_t count;    /* Records in [read_off, end_off). */
};

/* Open (creating) and check path, holding an exclusive lock on it. A torn or corrupt tail is cut
 * off, with a note in err. Returns 0 or a negative errno (-EBUSY: locked by another client). */
int lcl_spill_open(struct lcl_spill *sp, const char *path, char *err, size_t errlen);
/* Append one entry. Returns 0 or a negative errno (the file is left as before). */
int lcl_spill_append(struct lcl_spill *sp, const struct lcl_rec *r);
/* Take back up to max records, in order, appended to out with tickets from *ticket on. Returns
 * how many, or a negative errno. */
long lcl_spill_take(struct lcl_spill *sp, size_t max, struct lcl_list *out, uint64_t *ticket);
/* Close the file; first, if n > 0, rewrite it with recs[0..n) before the records still in it. */
int lcl_spill_close(struct lcl_spill *sp, struct lcl_rec **recs, size_t n);
uint32_t lcl_crc32(uint32_t crc, const void *p, size_t n);

/* One sender thread with its connection (sender.c). */
struct lcl_sender {
    struct lc_client *lc;
    int index;
    pthread_t thread;
    bool started;
    int wakefd;               /* eventfd: new entries, or stop. */
    bool idle;                /* Under lc->mu: found the queue empty; wake me. */
    _Atomic uint64_t oldest;  /* Ticket of its oldest entry, UINT64_MAX when it has none. */
    int fd;                   /* -1 while disconnected. */
    uint32_t seq;             /* Sequence number of the last frame sent on fd. */
    struct lcl_list unsent;   /* Taken from the queue (or to resend), not yet in wbuf. */
    struct lcl_list inflight; /* In wbuf or sent, waiting for the server's reply. */
    unsigned char *wbuf, *rbuf;
    size_t wlen, woff, rlen;
    int backoff_ms;
    bool failed;     /* A connection failed since the last one that worked. */
    unsigned rng;    /* Jitter. */
    char where[300]; /* "host:port" for messages. */
};

struct lc_client {
    struct lcl_cfg cfg;
    pthread_mutex_t mu;
    pthread_cond_t room_cv;  /* on_full=block: room in the queue. */
    pthread_cond_t flush_cv; /* Progress for lc_flush(). */
    struct lcl_list pending; /* Under mu: logged, not yet taken by a sender. */
    uint64_t next_ticket;    /* Under mu. */
    struct lcl_spill spill;  /* Under mu; fd -1 when there is none. */
    uint64_t spill_ticket;   /* Under mu: ticket of the spill file's first record. */
    _Atomic size_t held;     /* Records in memory: pending, unsent and in flight. */
    _Atomic int room_waiters, flush_waiters;
    _Atomic bool stop;
    _Atomic bool interrupted; /* lc_interrupt(): blocked lc_log calls give up. */
    _Atomic uint64_t n_logged, n_acked, n_dropped, n_spilled, n_resent, n_rejected, n_reconnects,
        n_spill_queued, n_truncated;
    pthread_mutex_t err_mu;
    char err[512]; /* Under err_mu. */
    int nsenders;
    struct lcl_sender *senders;
};

void lcl_set_error(struct lc_client *lc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Sender side (sender.c). */
int lcl_sender_init(struct lc_client *lc, struct lcl_sender *s, int index);
void *lcl_sender_main(void *arg);
void lcl_sender_wake(struct lcl_sender *s);
void lcl_sender_free(struct lcl_sender *s);

/* Under lc->mu: move up to max records from the queue (and the spill file) to s->unsent. */
void lcl_take(struct lc_client *lc, struct lcl_sender *s, size_t max);
/* After the server answered: wake lc_flush() and on_full=block waiters that wait. */
void lcl_progress(struct lc_client *lc);

int64_t lcl_now_ms(void);

#endif
