/* irc.h - the IRC server (default port 6667: chat, log channels and LogBot), as main.c wires it:
 * set up before the listeners start, freed after they stop. The protocol object itself is
 * proto_irc (proto/protocols.h); the server's own files share irc_internal.h. */
#ifndef LC_IRC_H
#define LC_IRC_H

struct config;
struct store;

/* Called once by main before the listener starts: the log channels are created and the live
 * stream starts after the entries already stored. store and cfg are borrowed for the life of
 * the server. */
void irc_init(struct store *store, const struct config *cfg);

/* Free every channel, at shutdown once the reactors have stopped. */
void irc_free(void);

#endif
