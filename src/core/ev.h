/* ev.h - one event loop per reactor thread: fd readiness, deferred work, a periodic tick.
 *
 * Level-triggered epoll. Callbacks run on the loop's thread only. Deferred callbacks run once
 * at the end of the current turn (the loop does not sleep while any are queued); they are how
 * long jobs (a query over millions of entries) give other connections a turn, and how objects
 * are freed after every handler that might still hold them has returned. */
#ifndef LC_EV_H
#define LC_EV_H

#include <stdbool.h>
#include <stdint.h>

struct ev_loop;
struct ev_io;

#define EV_READ      0x1u
#define EV_WRITE     0x4u
#define EV_ERROR     0x8u  /* Reported only: hang-up or socket error. */
#define EV_EXCLUSIVE 0x10u /* With EV_READ on a shared listener: wake one loop, not all. */
#define EV_HUP       0x20u /* Without EV_READ: the peer's close (either side) or reset, as EV_READ. */
#define EV_KEEP      0x40u /* No readiness wanted, but stay registered: a reset still reports. */

typedef void (*ev_io_cb)(struct ev_loop *loop, struct ev_io *io, uint32_t events);
typedef void (*ev_fn)(struct ev_loop *loop, void *arg);

struct ev_io {
    int fd;
    uint32_t events; /* Currently registered EV_READ|EV_WRITE; 0 = not registered. */
    ev_io_cb cb;
};

struct ev_loop *ev_new(void);
void ev_free(struct ev_loop *loop); /* NULL is a no-op. */

/* Register, change or (events == 0) remove interest in io->fd. Returns 0 or -errno. */
int ev_io_set(struct ev_loop *loop, struct ev_io *io, uint32_t events);

/* Queue fn(arg) to run at the end of this turn. Returns 0 or -ENOMEM. */
int ev_defer(struct ev_loop *loop, ev_fn fn, void *arg);

/* Queue fn(arg) to run on the loop's thread, from any thread: the loop wakes (an eventfd) and
 * runs it in its next turn. This is how other threads (the query pool) hand results back to a
 * connection's reactor. Returns 0 or -ENOMEM. Posts still queued when the loop is freed run in
 * ev_run_deferred (call it after the loop stopped), so their owners can release what they
 * carry. */
int ev_post(struct ev_loop *loop, ev_fn fn, void *arg);

/* Run everything deferred or posted so far (used once a loop has stopped, to finish frees). */
void ev_run_deferred(struct ev_loop *loop);

/* Call fn(arg) about every period_ms milliseconds (one tick per loop). */
void ev_set_tick(struct ev_loop *loop, int period_ms, ev_fn fn, void *arg);

/* Run until ev_stop. Returns 0, or -errno if epoll itself failed. */
int ev_run(struct ev_loop *loop);
void ev_stop(struct ev_loop *loop); /* Call on the loop's own thread. */

#endif
