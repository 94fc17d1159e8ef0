/* listener.c - where connections come in: binding the TCP (and UDP) sockets, accepting with
 * the access policy's verdict, the protocol's own refusal, and picking a connection's
 * protocol from its first bytes (handing it to the first reactor when that protocol lives
 * there).
 *
 * Listening sockets are shared: each reactor's loop watches them with EPOLLEXCLUSIVE, so one
 * idle loop wakes per incoming connection and accepts it. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/policy.h"
#include "core/server_internal.h"

#define UDP_BATCH 16          /* Datagrams per recvmmsg. */
#define UDP_MAX   (64 * 1024) /* Largest datagram taken; longer ones are counted and dropped. */

/* ------------------------------------------------------------------------------------------ */
/* Binding. */

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
        snprintf(out, outlen, "%s:%d", host, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
        snprintf(out, outlen, "[%s]:%d", host, port);
    } else {
        snprintf(out, outlen, "unix");
    }
}

int listener_open(const struct config *cfg, const struct listener_spec *spec, struct listener *l)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", spec->port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    const char *bind_addr = spec->bind ? spec->bind : cfg->bind_addr;
    int gai = getaddrinfo(bind_addr, port, &hints, &res);
    if (gai != 0) {
        fprintf(stderr, "logcasterd: cannot use bind address %s: %s\n", bind_addr,
                gai_strerror(gai));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "logcasterd: socket: %s\n", strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (cfg->reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, cfg->backlog) < 0) {
        int e = errno;
        fprintf(stderr, "logcasterd: cannot listen on %s port %d for %s: %s\n", bind_addr,
                spec->port, spec->role_name, strerror(e));
        if (e == EADDRINUSE)
            fprintf(stderr,
                    "logcasterd: another process uses that port; pick another with "
                    "--%s-port or stop it\n",
                    spec->role_name);
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    l->fd = fd;
    l->spec = spec;
    l->udp_fd = -1;
    format_addr(&ss, l->addr, sizeof(l->addr));
    if (!spec->datagram)
        return 0;
    /* UDP on the very address and port TCP got (port 0 picked one). */
    int u = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int big = 4 << 20;
    if (u < 0 || bind(u, (struct sockaddr *)&ss, sl) < 0) {
        fprintf(stderr, "logcasterd: cannot listen for UDP on %s for %s: %s\n", l->addr,
                spec->role_name, strerror(errno));
        if (u >= 0)
            close(u);
        return -1;
    }
    setsockopt(u, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big)); /* Bursts wait here, not lost. */
    l->udp_buf = malloc((size_t)UDP_BATCH * (UDP_MAX + 1));
    if (!l->udp_buf) {
        close(u);
        return -1;
    }
    l->udp_fd = u;
    return 0;
}

void listener_close(struct listener *l)
{
    close(l->fd);
    if (l->udp_fd >= 0)
        close(l->udp_fd);
    free(l->udp_buf);
}

/* Datagrams on the first reactor: a batch at a time, at most a few batches per turn. */
void listener_udp_cb(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    (void)loop;
    (void)events;
    struct reactor *r = this_reactor;
    struct server *srv = r->srv;
    struct listener *l = NULL;
    for (size_t i = 0; i < srv->nlisteners; i++)
        if (&srv->listeners[i].udp_io == io)
            l = &srv->listeners[i];
    if (!l)
        return;
    for (int round = 0; round < 4; round++) {
        struct mmsghdr msgs[UDP_BATCH];
        struct iovec iov[UDP_BATCH];
        struct sockaddr_storage from[UDP_BATCH];
        memset(msgs, 0, sizeof(msgs));
        for (int i = 0; i < UDP_BATCH; i++) {
            iov[i].iov_base = l->udp_buf + (size_t)i * (UDP_MAX + 1);
            iov[i].iov_len = UDP_MAX + 1; /* One byte more: a longer datagram shows as such. */
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &from[i];
            msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
        }
        int n = recvmmsg(l->udp_fd, msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        for (int i = 0; i < n; i++) {
            size_t len = msgs[i].msg_len;
            const struct sockaddr *sa = (const struct sockaddr *)&from[i];
            if ((msgs[i].msg_hdr.msg_flags & MSG_TRUNC) || len > UDP_MAX ||
                !policy_allows((enum policy_role)l->spec->role, sa)) {
                CNT_ADD(srv, udp_refused, 1);
                continue;
            }
            char peer[64];
            format_addr(&from[i], peer, sizeof(peer));
            CNT_ADD(srv, udp_datagrams, 1);
            CNT_ADD(srv, bytes_in, len);
            CNT_ADD(srv, bytes_in_by_proto[l->spec->proto->slot], len);
            l->spec->datagram(srv, iov[i].iov_base, len, peer, strlen(peer));
        }
        if (n < UDP_BATCH)
            return;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Accepting. */

/* One explicit, cheap answer to a refused connection, in its protocol's own words (proto's
 * refuse hook), tried once on its stream without waiting; the caller closes it. Refusals are
 * logged at most once a second per reactor, so a flood cannot flood the log. */
static void refuse(struct reactor *r, const struct proto *proto, const char *where,
                   struct stream *s, const char *peer, enum policy_verdict v)
{
    char msg[512];
    int n = proto->refuse ? proto->refuse(msg, sizeof(msg), r->srv->cfg, peer, v) : 0;
    if (n > 0)
        (void)s->tp->write(s, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
    int64_t now = mono_ms();
    if (now - r->last_refusal_log >= 1000) {
        r->last_refusal_log = now;
        log_warn("refused %s on %s: %s", peer, where, policy_verdict_text(v));
    }
}

static void tune_socket(int fd, const struct config *cfg)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (cfg->keepalive_idle_s > 0) {
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &cfg->keepalive_idle_s, sizeof(int));
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &cfg->keepalive_interval_s, sizeof(int));
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cfg->keepalive_count, sizeof(int));
    }
    if (cfg->user_timeout_ms > 0) {
        unsigned int t = (unsigned int)cfg->user_timeout_ms;
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &t, sizeof(t));
    }
    if (cfg->rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &cfg->rcvbuf, sizeof(int));
    if (cfg->sndbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cfg->sndbuf, sizeof(int));
}

static void accept_one(struct reactor *r, struct listener *l, int fd,
                       const struct sockaddr_storage *ss)
{
    struct server *srv = r->srv;
    uint64_t cur = CNT_ADD(srv, conns_current, 1);
    if (cur >= (uint64_t)srv->cfg->max_connections || r->draining) {
        CNT_SUB(srv, conns_current, 1);
        CNT_ADD(srv, conns_refused, 1);
        close(fd);
        return;
    }
    char peer[64];
    format_addr(ss, peer, sizeof(peer));
    struct sockaddr_storage local = {0};
    socklen_t ll = sizeof(local);
    getsockname(fd, (struct sockaddr *)&local, &ll);
    enum policy_verdict v =
        policy_admit((enum policy_role)l->spec->role, (const struct sockaddr *)ss,
                     (const struct sockaddr *)&local, mono_ms());
    struct stream s = stream_tcp(fd); /* TLS, if any, starts with the first read. */
    if (v != POLICY_OK) {
        CNT_SUB(srv, conns_current, 1);
        CNT_ADD(srv, conns_refused, 1);
        refuse(r, l->spec->proto, l->spec->role_name, &s, peer, v);
        stream_close(&s);
        return;
    }
    CNT_ADD(srv, conns_total, 1);
    tune_socket(fd, srv->cfg);
    log_debug("%s connection from %s", l->spec->role_name, peer);
    conn_start(r, &s, peer, ss, &local, l->spec->role, l->spec->proto, l->spec->pick, NULL, false,
               l->spec->tls_only);
}

void listener_accept_cb(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    (void)loop;
    (void)events;
    /* The watch's position in this reactor's array names the listener. */
    struct reactor *r = this_reactor;
    struct listener *l = &r->srv->listeners[io - r->lio];
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE) {
                /* The connection stays queued in the kernel: stop watching the listeners for
                 * a moment instead of spinning on it, and say so once a second at most. */
                int64_t now = mono_ms();
                if (now - r->last_emfile_log >= 1000) {
                    r->last_emfile_log = now;
                    log_warn("accept on %s: %s (raise the open-file limit); pausing accepts",
                             l->addr, strerror(errno));
                }
                r->accept_paused = true;
                r->accept_resume_at = now + 100;
                for (size_t k = 0; k < r->srv->nlisteners; k++)
                    ev_io_set(r->loop, &r->lio[k], 0);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_warn("accept on %s: %s", l->addr, strerror(errno));
            return;
        }
        accept_one(r, l, fd, &ss);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Picking the protocol. */

/* A connection on a listener with a pick function: which protocol its first bytes speak. */
bool conn_pick(struct conn *c)
{
    if (!c->sniff_since && buf_len(&c->in))
        c->sniff_since = mono_ms();
    const struct proto *p =
        c->pick(buf_head(&c->in), buf_len(&c->in), c->read_eof || c->sniff_forced, c->proto);
    if (!p)
        return false;
    c->sniffing = false;
    c->proto = p;
    /* Another protocol than the listener's: that protocol's access policy decides too (its
     * allow list, its lock-outs, local-only without a secret), so no port is a side door. */
    _Static_assert((int)SLOT_INGEST == (int)ROLE_LOG && (int)SLOT_QUERY == (int)ROLE_QUERY &&
                       (int)SLOT_IRC == (int)ROLE_IRC && (int)SLOT_HTTP == (int)ROLE_HTTP,
                   "protocol slots name policy roles");
    if (c->role >= 0 && p->slot != c->role) {
        const struct sockaddr *sa = (const struct sockaddr *)&c->sa;
        enum policy_verdict v = policy_admit((enum policy_role)p->slot, sa,
                                             (const struct sockaddr *)&c->local, mono_ms());
        if (v != POLICY_OK) {
            CNT_ADD(c->r->srv, conns_refused, 1);
            /* On its stream: a TLS client is answered inside its session. */
            refuse(c->r, p, p->name, &c->stream, c->peer, v);
            conn_destroy(c);
            return false;
        }
        policy_release((enum policy_role)c->role, sa);
        c->role = p->slot;
    }
    if (p->one_loop && c->r->index != 0) {
        reactor_handoff(c);
        return false;
    }
    return conn_open(c) == 0 && !c->closed;
}
