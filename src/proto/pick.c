/* pick.c - a connection's protocol from its first bytes (detect.h), for every listener. */
#include "proto/detect.h"
#include "proto/protocols.h"

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
