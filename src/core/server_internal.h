/* server_internal.h - what the server's three parts share, and nothing outside src/core sees:
 *
 *   listener.c  binding TCP and UDP sockets, accepting, refusals, picking a protocol;
 *   conn.c      a connection's life and I/O: buffers, reads, writes, backpressure, closing;
 *   reactor.c   the reactor threads: loops, ticks, shutdown drain, hand-over between reactors,
 *               and server_start/stop.
 *
 * Every struct here belongs to one reactor thread at a time, except struct server (read-only
 * once started, counters atomic) and a reactor's inbox (under its mutex). */
#ifndef LC_SERVER_INTERNAL_H
#define LC_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "core/ev.h"
#include "core/server.h"
#include "core/transport.h"

#define MAX_LISTENERS 8

#define CNT_ADD(srv, field, n)                                                                     \
    atomic_fetch_add_explicit((_Atomic uint64_t *)&(srv)->counters.field, (n), memory_order_relaxed)
#define CNT_SUB(srv, field, n)                                                                     \
    atomic_fetch_sub_explicit((_Atomic uint64_t *)&(srv)->counters.field, (n), memory_order_relaxed)

struct listener {
    int fd;
    const struct listener_spec *spec;
    char addr[80];
    int udp_fd; /* The datagram socket on the same address and port, or -1. */
    struct ev_io udp_io;
    char *udp_buf; /* UDP_BATCH buffers of UDP_MAX + 1 bytes. */
};

/* A connection on its way to another reactor (a protocol that lives on the first one). */
struct handoff {
    struct stream stream; /* The socket, with its TLS session if it has one. */
    const struct proto *proto;
    int role;
    struct sockaddr_storage sa, local;
    char peer[64];
    struct buf in;
    bool read_eof;
    struct handoff *next;
};

struct reactor {
    struct server *srv;
    int index;
    pthread_t thread;
    struct ev_loop *loop;
    struct ev_io wake;       /* eventfd: shutdown requests. */
    struct ev_io inbox_wake; /* eventfd: connections were handed to this reactor. */
    pthread_mutex_t inbox_mu;
    struct handoff *inbox;
    bool accept_paused; /* Out of file descriptors: listeners unwatched for a moment. */
    int64_t accept_resume_at, last_emfile_log, last_refusal_log;
    struct ev_io lio[MAX_LISTENERS]; /* This loop's watch on each shared listener. */
    struct conn *conns;              /* Doubly linked list of live connections. */
    size_t nconns;
    bool draining; /* Shutdown began: no accepts, close when flushed. */
    int64_t drain_deadline;
};

struct server {
    const struct config *cfg;
    struct listener listeners[MAX_LISTENERS];
    size_t nlisteners;
    struct reactor *reactors;
    int nallocated; /* Reactors allocated (loops to free). */
    int nreactors;  /* Reactors whose threads run (to join). */
    struct server_counters counters;
    int64_t started_ms;
};

struct conn {
    struct ev_io io; /* First member: the loop hands us &conn->io. io.fd is stream.fd. */
    struct reactor *r;
    const struct proto *proto;
    void *state;
    struct stream stream; /* The socket and its transport (plain TCP or TLS). */
    struct buf in, out;
    char peer[64];
    size_t peer_len;
    struct sockaddr_storage sa, local; /* The peer, and the address it connected to. */
    int role;            /* The policy that admitted it (released when it is freed). */
    bool tls_checked;    /* The first byte was looked at for a TLS handshake. */
    bool tls_only;       /* The listener accepts TLS connections only. */
    int64_t last_active; /* mono_ms of the last byte read or written. */
    int64_t last_read;   /* mono_ms of the last byte read. */
    bool busy;           /* Protocol has pending work; input waits. */
    bool read_eof;       /* Peer finished sending (or we stopped reading for good). */
    bool eof_delivered;  /* proto->input saw eof=true. */
    bool close_after_flush;
    bool closed; /* Freed at the end of this turn. */
    bool resume_queued;
    bool held;             /* Owes replies: do not close yet. */
    bool flush_queued;     /* A flush at the end of this turn is scheduled. */
    bool opened;           /* proto->open succeeded: proto->close is due. */
    bool sniffing;         /* The protocol is not chosen yet (listener's pick). */
    bool sniff_forced;     /* Decide with what has arrived (the first line took too long). */
    int64_t partial_since; /* An incomplete line has waited since (0: none waits). */
    int64_t sniff_since;   /* When its first byte arrived. */
    proto_pick_fn pick;
    bool out_was_full;
    struct conn *prev, *next;
};

/* The reactor whose loop runs on this thread (set once by the thread itself). */
extern __thread struct reactor *this_reactor;

/* ---- conn.c ---- */

/* Run a new connection on stream s in reactor r (counted in conns_current by the caller),
 * which owns s from now on. pick: sniff the protocol from the first bytes first. in (may be
 * NULL): bytes already read, taken over. */
void conn_start(struct reactor *r, const struct stream *s, const char *peer,
                const struct sockaddr_storage *sa, const struct sockaddr_storage *local, int role,
                const struct proto *proto, proto_pick_fn pick, struct buf *in, bool read_eof,
                bool tls_only);
/* Start the protocol chosen for c (proto->open). Returns 0, or -1 with c destroyed. */
int conn_open(struct conn *c);
/* Read what the socket has now, delivering it to the protocol. Returns 0 or -errno. */
int conn_read(struct conn *c);
/* Deliver buffered input to the protocol while it takes it. */
void conn_process_input(struct conn *c);
/* Send what can be sent and watch the socket for what the connection waits for. */
void conn_after_work(struct conn *c);
/* Take c off its reactor; its struct is freed at the end of the turn. The stream stays open. */
void conn_unlink(struct conn *c);
/* Unlink and close the stream; the protocol frees its state at the end of the turn. */
void conn_destroy(struct conn *c);
/* Try n bytes once on c's stream without waiting, past whatever is queued (a refusal). */
void conn_last_words(struct conn *c, const char *p, size_t n);

/* ---- listener.c ---- */

/* Bind spec's TCP socket (and its UDP socket, if it takes datagrams) into l. Returns 0, or
 * -1 after printing a clear error. */
int listener_open(const struct config *cfg, const struct listener_spec *spec, struct listener *l);
void listener_close(struct listener *l);
/* The listeners' EPOLLIN on this reactor: accept what is queued. */
void listener_accept_cb(struct ev_loop *loop, struct ev_io *io, uint32_t events);
/* Datagrams on the first reactor. */
void listener_udp_cb(struct ev_loop *loop, struct ev_io *io, uint32_t events);
/* Choose c's protocol from its first bytes. True when it may process input now (false:
 * undecided yet, moved to another reactor, or closed). */
bool conn_pick(struct conn *c);

/* ---- reactor.c ---- */

/* Move c, whose protocol lives on the first reactor, there with what it sent. */
void reactor_handoff(struct conn *c);

#endif
