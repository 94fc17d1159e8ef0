/* irc_parse.h - split one received IRC line into its parts: optional IRCv3 message tags,
 * optional prefix, command and parameters (RFC 1459 2.3.1, RFC 2812 2.3.1, IRCv3 message-tags).
 * Pure: no I/O and no allocation; it splits the caller's buffer in place, so the IRC server and
 * the fuzzer drive the same code.
 *
 * Grammar as accepted (only the space byte separates; tabs and other bytes are ordinary):
 *   line    = [ "@" tags SP *SP ] [ ":" prefix SP *SP ] command *( SP *SP param ) *SP
 *   param   = middle / ":" trailing   (a trailing param ends the list)
 * Deliberately lenient, as the server has always been: the command is any run of non-space
 * bytes (not checked against letters or three digits), tag values are not unescaped, an empty
 * tags or prefix part is accepted, and runs of spaces count as one. Parameters after the 15th
 * are dropped, including a trailing one; the 15th is a single word unless it starts with ':'. */
#ifndef LC_IRC_PARSE_H
#define LC_IRC_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#define IRC_MSG_MAXPARAMS 15 /* RFC 2812: at most 15 parameters. */

/* Every pointer points into the line given to irc_parse_line and is NUL-terminated there. */
struct irc_msg {
    char *tags;    /* After '@' up to the first space, raw (not unescaped); NULL: none. */
    char *prefix;  /* After ':' up to the next space; NULL: none. */
    char *command; /* Never empty; case as sent. */
    char *argv[IRC_MSG_MAXPARAMS]; /* Middle params, then the trailing one if any. */
    int argc;                      /* 0..IRC_MSG_MAXPARAMS. */
    bool trailing; /* argv[argc - 1] came after " :" (it may be empty or hold spaces). */
};

/* Split line[0..len) (without CR LF) in place, writing NULs over the separators. line[len]
 * must be NUL (asserted), so line needs len + 1 bytes. A NUL inside the line ends it there.
 * There is no length limit here: the caller caps over-long lines.
 * Returns 0 and fills out, or -EINVAL when the line has no command: it is empty or all
 * spaces, starts with a space, or is only tags and/or a prefix. Then out holds NULLs and no
 * params, and the line may still have been changed. The line is borrowed: out's pointers are
 * valid while it is. */
int irc_parse_line(char *line, size_t len, struct irc_msg *out);

#endif
