/* protocols.h - the protocol tables main wires to listeners. */
#ifndef LC_PROTOCOLS_H
#define LC_PROTOCOLS_H

#include "core/server.h"

struct store;

extern const struct proto proto_ingest; /* Log lines in (default port 9999). */
extern const struct proto proto_query;  /* Queries (default port 9998). */
extern const struct proto proto_irc;    /* IRC server with log channels (default port 6667). */
extern const struct proto proto_http;   /* HTTP API and web console (default port 8080). */

/* A UDP datagram for the ingest port: one log line or several (newline-separated); syslog
 * is recognised as on TCP. Nothing is answered. */
void ingest_datagram(struct server *srv, const char *p, size_t n, const char *peer,
                     size_t peer_len);

/* The store every protocol reads from (queries, STATS, the HTTP API, live tails' history).
 * Set once by main before the listeners start: src/core knows no store. */
void protocols_set_store(struct store *s);
struct store *protocols_store(void);

/* The listeners' proto_pick_fn: HTTP, IRC or the listener's own protocol (detect.h). */
const struct proto *proto_pick(const char *p, size_t n, bool eof, const struct proto *dflt);

#endif
