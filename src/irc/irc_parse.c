/* irc_parse.c - the IRC line tokenizer: [@tags] [:prefix] COMMAND params... [:trailing].
 *
 * It keeps the exact behaviour of the tokenizer that used to live inline in irc.c's dispatch(),
 * quirks included (see irc_parse.h), so that moving it changed nothing a client can see. */
#include "irc/irc_parse.h"

#include <errno.h>
#include <string.h>

#include "core/log.h"

/* Cut the token at p where the next space is, and return the first byte after the run of
 * spaces that follows it; NULL when no space follows (the token runs to the end). */
static char *cut_word(char *p)
{
    p = strchr(p, ' ');
    if (!p)
        return NULL;
    *p++ = 0;
    while (*p == ' ')
        p++;
    return p;
}

int irc_parse_line(char *line, size_t len, struct irc_msg *out)
{
    lc_assert(line[len] == 0);
    memset(out, 0, sizeof(*out));
    char *p = line;
    if (*p == '@') { /* Tags need a command after them. */
        out->tags = p + 1;
        p = cut_word(p);
        if (!p)
            goto fail;
    }
    if (*p == ':') { /* So does a prefix. */
        out->prefix = p + 1;
        p = cut_word(p);
        if (!p)
            goto fail;
    }
    /* A leading space gives an empty command, so such a line is dropped, as before. */
    char *cmd = p;
    while (*p && *p != ' ')
        p++;
    if (*p)
        *p++ = 0;
    if (!*cmd)
        goto fail;
    out->command = cmd;
    while (*p && out->argc < IRC_MSG_MAXPARAMS) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        if (*p == ':') {
            out->argv[out->argc++] = p + 1;
            out->trailing = true;
            break;
        }
        out->argv[out->argc++] = p;
        while (*p && *p != ' ')
            p++;
        if (*p)
            *p++ = 0;
    }
    return 0;

fail:
    memset(out, 0, sizeof(*out));
    return -EINVAL;
}
