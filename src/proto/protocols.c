/* protocols.c - what the protocols share: a connection's protocol from its first bytes
 * (detect.h), for every listener, and the store they read from. */
#include "proto/protocols.h"
#include "proto/detect.h"

static struct store *store; /* Set once by main, before any listener starts. */

void protocols_set_store(struct store *s)
{
    store = s;
}

struct store *protocols_store(void)
{
    return store;
}

const struct proto *proto_pick(const char *p, size_t n, bool eof, const struct proto *dflt)
{
    switch (detect_protocol(p, n, eof)) {
    case DETECT_MORE:
        return NULL;
    case DETECT_HTTP:
        return &proto_http;
    case DETECT_IRC:
        return &proto_irc;
    case DETECT_BINARY: /* Spoken by the log and query protocols; elsewhere it logs. */
        return dflt == &proto_query ? dflt : &proto_ingest;
    case DETECT_DEFAULT:
        break;
    }
    return dflt;
}
