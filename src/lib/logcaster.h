/* logcaster.h - liblogcaster, the C client library of LogCaster.
 *
 * A program logs with lc_log(); the call formats the line, takes its timestamp and puts it in a
 * bounded in-process queue, and returns at once. Sender threads, each with one TCP connection
 * to the server's log port, send the queue as binary LOG_MS frames (src/proto/binary.h),
 * pipelined, and keep every entry until the server acknowledges it as durable. A connection
 * that fails is re-established with backoff and the unacknowledged entries are sent again
 * first: delivery is at least once, and a duplicate can only be an entry that was in flight
 * (at most window= entries per connection) when a connection failed.
 *
 *     lc_client *lc = lc_open("logcaster://127.0.0.1:9999?queue=100000");
 *     lc_log(lc, LC_LOG_ERROR, "disk %s is full", dev);
 *     lc_flush(lc, 2000);       // 0 once everything logged so far is stored
 *     lc_close(lc);
 *
 * Every function may be called from any thread, except lc_close(), which must be the last
 * call on a client. Errors are negative errno values. The library is not fork-safe: a child
 * process must open its own client. */
#ifndef LOGCASTER_H
#define LOGCASTER_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define LC_API          __attribute__((visibility("default")))
#define LC_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define LC_API
#define LC_PRINTF(f, a)
#endif

/* Levels, as the server numbers them. */
#define LC_LOG_TRACE 0
#define LC_LOG_DEBUG 1
#define LC_LOG_INFO  2
#define LC_LOG_WARN  3
#define LC_LOG_ERROR 4
#define LC_LOG_FATAL 5

/* The longest message one entry carries (a frame's 65535 payload bytes less the level and the
 * timestamp). A longer message is cut to this many bytes, at a UTF-8 character boundary, and
 * counted in lc_counters.truncated; the rest is not sent. */
#define LC_MAX_MESSAGE 65526

typedef struct lc_client lc_client;

/* Counters since lc_open(). Snapshots of atomics: each is exact, but they are read one after
 * another, not all at one instant. */
struct lc_counters {
    uint64_t logged;       /* Entries the program passed to lc_log*() (dropped ones included). */
    uint64_t acked;        /* Entries the server acknowledged as durable. */
    uint64_t dropped;      /* Entries discarded: queue full in on_full=drop mode, or spill
                              file unwritable. */
    uint64_t spilled;      /* Entries written to the spill file (on_full=spill). */
    uint64_t resent;       /* Frames sent again after a connection failed. */
    uint64_t rejected;     /* Entries the server refused (malformed, too long): never resent. */
    uint64_t reconnects;   /* Connections made after a previous one failed or was refused. */
    uint64_t queued;       /* Entries held in memory now: waiting, or sent and not acked. */
    uint64_t spill_queued; /* Entries in the spill file now, not yet taken back. */
    uint64_t truncated;    /* Messages cut to LC_MAX_MESSAGE bytes. */
    uint64_t reserved[6];  /* Zero; room to grow without changing the struct's size. */
};

/* Open a client. url (NULL: $LOGCASTER_URL, else "logcaster://127.0.0.1:9999"):
 *
 *   logcaster://HOST[:PORT][?key=value&...]     HOST may be a name, IPv4, or [IPv6]
 *
 *   port                default 9999
 *   token=T             sent in an AUTH frame first; default $LOGCASTER_TOKEN, else none
 *   queue=N             entries held in memory (waiting or unacknowledged), default 65536
 *   on_full=drop|block|spill   what lc_log() does when the queue is full: drop the entry
 *                       (default), wait for room, or append it to the spill file (default
 *                       when spill= is given)
 *   spill=/path/file    the spill file; entries left in it by an earlier process are sent
 *   connections=N       sender threads, each with its own connection (1..64, default 1)
 *   window=N            most unacknowledged entries per connection (default 8192)
 *   connect_timeout_ms  connect plus handshake (default 5000)
 *   flush_timeout_ms    how long lc_close() waits for the server (default 5000)
 *
 * Values are percent-decoded; unknown keys are errors. Returns immediately (connecting happens
 * in the background; see lc_last_error()), or NULL with errno: EINVAL for a bad url, EBUSY
 * when another client holds the spill file, or the error of opening the spill file. */
LC_API lc_client *lc_open(const char *url);

/* Log one printf-formatted line at level (LC_LOG_TRACE..LC_LOG_FATAL), timestamped now (ms).
 * Never blocks on the network; with on_full=block it waits for room in the queue. Returns 0
 * when the entry is queued or spilled, -EAGAIN when it was dropped (queue full), -EINVAL for
 * a bad level or format or an empty message (the server refuses those), -ENOMEM, or -EINTR
 * after lc_interrupt() when it would have waited for room (the entry is not logged). */
LC_API int lc_log(lc_client *lc, int level, const char *fmt, ...) LC_PRINTF(3, 4);
LC_API int lc_logv(lc_client *lc, int level, const char *fmt, va_list ap) LC_PRINTF(3, 0);

/* Log len bytes of msg (any bytes; the server escapes control characters) with the event time
 * ts_ms (milliseconds since the epoch; 0 means now). Returns as lc_log(). */
LC_API int lc_log_raw(lc_client *lc, int level, int64_t ts_ms, const char *msg, size_t len);

/* Wait until every entry logged before this call has been acknowledged by the server as
 * durable (or refused by it; see lc_counters.rejected). Entries logged meanwhile by other
 * threads are not waited for. timeout_ms < 0 waits forever. Returns 0 or -ETIMEDOUT. */
LC_API int lc_flush(lc_client *lc, int timeout_ms);

/* Flush with flush_timeout_ms, stop the senders, free everything; returns what the flush
 * returned. With a spill file, entries that were not acknowledged in time are saved to it
 * (before the ones already there), for the next process that opens it. Without one they are
 * lost (the return value says so). lc_close(NULL) returns 0. */
LC_API int lc_close(lc_client *lc);

/* From any thread (not from a signal handler): from now on, an lc_log*() waiting for room
 * with on_full=block returns -EINTR instead of waiting, without logging the entry or counting
 * it as dropped. For a program that is stopping while the server is away. Sticky. */
LC_API void lc_interrupt(lc_client *lc);

/* Fill *out with the client's counters. */
LC_API void lc_counters(lc_client *lc, struct lc_counters *out);

/* A sentence about the latest connection problem ("" when none yet), e.g. "127.0.0.1:9999:
 * authentication failed (server: ...)". The text is copied to a buffer of the calling thread,
 * valid until that thread's next call. */
LC_API const char *lc_last_error(lc_client *lc);

/* The name of a level ("TRACE".."FATAL"), or "?" . */
LC_API const char *lc_level_str(int level);

#ifdef __cplusplus
}
#endif

#endif
