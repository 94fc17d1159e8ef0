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
    case DETECT_BINARY: /* Not spoken yet: the listener's own protocol answers. */
    case DETECT_DEFAULT:
        break;
    }
    return dflt;
}
