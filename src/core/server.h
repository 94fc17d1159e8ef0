/* server.h - listeners, reactor threads and connections: the transport under every protocol.
 *
 * A protocol is a table of callbacks (struct proto); the server knows no protocol's wire
 * format, and asks the protocol even for the words with which a connection is refused or
 * timed out. Adding a listener with its own protocol is one entry in the listener list given
 * to server_start. Each reactor thread owns the connections it accepted; a connection's
 * callbacks always run on that thread. */
#ifndef LC_SERVER_H
#define LC_SERVER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/policy.h"

struct conn;
struct server;
struct ev_loop;

struct proto {
    const char *name;
    /* A connection was accepted; set up per-connection state. Returns 0 or -errno. */
    int (*open)(struct conn *c);
    /* Consume complete frames from p[0..n). Returns the bytes consumed (0 = need more).
     * eof: the peer finished sending, p holds its last bytes. Borrowed: p is valid only
     * during the call. Not called while the connection is busy or its output is full. */
    size_t (*input)(struct conn *c, const char *p, size_t n, bool eof);
    /* The connection's output drained below half its limit, or its deferred work is due:
     * continue pending work (a streaming query). May be NULL. */
    void (*resume)(struct conn *c);
    /* The connection is going away; free per-connection state. May be NULL. */
    void (*close)(struct conn *c);
    /* About four times a second, for protocol timers (IRC pings). May be NULL. */
    void (*tick)(struct conn *c, int64_t now_mono_ms);
    /* A connection to this protocol is refused by its access policy for v, at accept or once
     * detected as this protocol: write the protocol's own refusal, naming the reason
     * (policy_verdict_text), into out[0..cap). peer is "ip:port". Returns what snprintf
     * returns (the server sends at most cap - 1 bytes, once, without waiting, then closes);
     * <= 0 closes without a word. May be NULL (close without a word). */
    int (*refuse)(char *out, size_t cap, const struct config *cfg, const char *peer,
                  enum policy_verdict v);
    /* c is closed because a line did not complete within --line-timeout: its last words into
     * out[0..cap), as refuse. May be NULL (close without a word). */
    int (*timeout)(struct conn *c, char *out, size_t cap);
    /* All its connections live on the first reactor (shared state, no locks); a connection
     * detected as this protocol on another reactor moves there. */
    bool one_loop;
    int slot; /* Index in the per-protocol counters (PROTO_SLOTS). */
};

enum { SLOT_INGEST, SLOT_QUERY, SLOT_IRC, SLOT_HTTP, PROTO_SLOTS };

/* Bytes a connection's input buffer always holds before the protocol must consume some,
 * whatever --max-line is: the largest binary frame (binary.h), so it can wait to be whole. */
#define CONN_MIN_INPUT 65543

/* Picks a connection's protocol from its first bytes (see proto/detect.h): returns the
 * protocol, or NULL to wait for more bytes (never NULL when eof). dflt is the listener's. */
typedef const struct proto *(*proto_pick_fn)(const char *p, size_t n, bool eof,
                                             const struct proto *dflt);

struct listener_spec {
    const char *role_name;     /* Printed at start-up: "listening <role_name> <addr>". */
    const char *bind;          /* Address to bind; NULL = --bind. */
    int port;                  /* 0 = any free port; negative = skip this listener. */
    const struct proto *proto; /* The listener's own protocol (the default when sniffing). */
    proto_pick_fn pick;        /* NULL: every connection speaks proto. */
    int role;                  /* enum policy_role: whose access policy admits connections. */
    bool tls_only;             /* Refuse connections that do not start a TLS handshake. */
    /* Also take UDP datagrams on the same address and port (the ingest port), handed to
     * this function on the first reactor. NULL: TCP only. */
    void (*datagram)(struct server *srv, const char *p, size_t n, const char *peer,
                     size_t peer_len);
};

/* Counters shared by every thread (relaxed atomics). */
struct server_counters {
    uint64_t conns_total;     /* Accepted since start. */
    uint64_t conns_current;   /* Open now. */
    uint64_t conns_refused;   /* Closed at accept because of --max-connections. */
    uint64_t conns_timed_out; /* Closed for idleness. */
    uint64_t lines_in;        /* Lines received on ingest connections. */
    uint64_t lines_rejected;  /* Framed lines answered with an error. */
    uint64_t lines_truncated; /* Plain lines cut at --max-line. */
    uint64_t bytes_in;        /* Bytes read from all connections. */
    uint64_t udp_datagrams;   /* UDP datagrams taken. */
    uint64_t udp_refused;     /* UDP datagrams dropped: oversize, or the sender not allowed. */
    uint64_t conns_by_proto[PROTO_SLOTS];    /* Open now, by protocol. */
    uint64_t bytes_in_by_proto[PROTO_SLOTS]; /* Read since start, by protocol. */
    uint64_t lines_by_proto[PROTO_SLOTS][8]; /* Entries stored, by protocol and level. */
};

/* Bind every listener (printing "listening ROLE ADDR" for each) and start the reactor
 * threads. Returns NULL after logging a clear error if a listener cannot be bound. */
struct server *server_start(const struct config *cfg, const struct listener_spec *specs,
                            size_t nspecs);
/* Stop accepting, finish what was received, flush replies (at most shutdown_timeout_s),
 * close everything and join the threads. */
void server_stop(struct server *s);
void server_free(struct server *s); /* NULL is a no-op. */

struct server_counters *server_counters(struct server *s);
const struct config *server_config(const struct server *s);
int64_t server_started_ms(const struct server *s);

/* ---- What a protocol may do with its connection. ---- */
struct server *conn_server(const struct conn *c);
const struct config *conn_config(const struct conn *c);
struct ev_loop *conn_loop(const struct conn *c);
void *conn_state(const struct conn *c);
void conn_set_state(struct conn *c, void *state);
/* "ip:port" of the peer, valid for the connection's life. */
const char *conn_peer(const struct conn *c, size_t *len);
/* True once the server is shutting down (finish what was received, take nothing new). */
bool conn_draining(const struct conn *c);
/* The peer's address (for access policies). */
const struct sockaddr *conn_sockaddr(const struct conn *c);
/* mono_ms of the connection's latest read: when the newest buffered input arrived. */
int64_t conn_last_read_ms(const struct conn *c);

/* Queue reply bytes. Never blocks: bytes are sent as the socket allows. Returns 0 or -ENOMEM
 * (then the connection is closed). */
int conn_write(struct conn *c, const void *p, size_t n);
int conn_printf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Send now what the socket takes (a broadcaster checking a slow reader). Returns 0, or -EPIPE
 * if the connection failed (it is closed then). */
int conn_flush_now(struct conn *c);
/* True when unsent bytes reached --out-limit: stop producing and wait for resume. */
bool conn_out_full(const struct conn *c);
/* Unsent bytes queued on the connection. */
size_t conn_out_pending(const struct conn *c);
/* While busy, input is not delivered (so replies keep request order); resume is called when
 * the output has room. Clearing busy delivers the buffered input again. */
void conn_set_busy(struct conn *c, bool busy);
/* Ask for resume at the end of this loop turn (a slice of long work). */
void conn_schedule_resume(struct conn *c);
/* While held, the connection stays open after its peer finished, even with nothing to send:
 * replies it still owes (waiting for durability) will be written. */
void conn_hold(struct conn *c, bool held);
/* Close now, dropping unsent bytes (a peer that cannot keep up). last_words, if not NULL, is
 * tried once without waiting, ahead of the dropped bytes. */
void conn_abort(struct conn *c, const char *last_words);
/* Close once every queued byte is sent. */
void conn_close_after_flush(struct conn *c);

#endif
