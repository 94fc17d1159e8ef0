/* udp.c - UDP datagrams on the log port: one message or several, never answered.
 *
 * A syslog datagram is one message, newlines and all (RFC 5426); any other datagram holds one
 * line or several separated by newlines (a trailing newline or not). Each message goes the one
 * way every carrier's messages go (batch.h, pipeline.h). */
#include <stdatomic.h>

#include "core/log.h"
#include "ingest/batch.h"
#include "ingest/pipeline.h"
#include "proto/line.h"
#include "proto/protocols.h"
#include "proto/syslog.h"

static void count(uint64_t *field, uint64_t n)
{
    atomic_fetch_add_explicit((_Atomic uint64_t *)field, n, memory_order_relaxed);
}

/* Whether the datagram is one syslog message: a valid PRI and header up to --max-line. */
static bool whole_syslog(const char *p, size_t n, size_t max_line, int64_t now)
{
    if (n <= 3 || p[0] != '<')
        return false;
    struct syslog_msg sm;
    while (n && (p[n - 1] == '\n' || p[n - 1] == '\r'))
        n--;
    return syslog_parse(p, n < max_line ? n : max_line, now, &sm) == 0;
}

void ingest_datagram(struct server *srv, const char *p, size_t n, const char *peer, size_t peer_len)
{
    size_t max_line = server_config(srv)->max_line;
    struct server_counters *cnt = server_counters(srv);
    struct ingest_batch *b = ingest_batch_get(max_line);
    if (!b) {
        count(&cnt->lines_rejected, 1);
        return;
    }
    int64_t now = now_ms();
    bool whole = whole_syslog(p, n, max_line, now);
    struct ingest_ticket t;
    while (n > 0) {
        size_t len, take = whole ? 0 : line_next(p, n, &len);
        if (!take)
            take = len = n;
        while (whole && len && (p[len - 1] == '\n' || p[len - 1] == '\r'))
            len--;
        bool cut = len > max_line;
        if (ingest_batch_full(b))
            ingest_submit(b, cnt, SLOT_INGEST, &t);
        struct ingest_msg m;
        int r = ingest_parse_msg(b, p, cut ? max_line : len, now, cut ? INGEST_TRUNCATED : 0, &m);
        count(&cnt->lines_in, 1);
        if (cut)
            count(&cnt->lines_truncated, 1);
        if (r < 0 || (r == 0 && !ingest_batch_add(b, &m, peer, peer_len, now)))
            count(&cnt->lines_rejected, 1);
        p += take;
        n -= take;
    }
    ingest_submit(b, cnt, SLOT_INGEST, &t);
}
