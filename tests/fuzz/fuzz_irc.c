/* fuzz_irc.c - arbitrary bytes as one IRC line through the IRC line tokenizer. Checks the
 * invariants the command handlers rely on, compares the result with the tokenizer that used to
 * live inline in irc.c's dispatch() (kept below as the reference), and checks that the parts,
 * written out again in canonical form, parse to the same parts. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "irc/irc_parse.h"

/* The tokenizer of dispatch() before it moved to irc_parse.c, unchanged but for returning what
 * it found instead of running the command. Returns false where dispatch() returned early. */
static bool reference_tokenize(char *line, char **cmd_out, char **argv, int *argc_out)
{
    char *p = line;
    if (*p == '@') {
        p = strchr(p, ' ');
        if (!p)
            return false;
        while (*p == ' ')
            p++;
    }
    if (*p == ':') {
        p = strchr(p, ' ');
        if (!p)
            return false;
        while (*p == ' ')
            p++;
    }
    char *cmd = p;
    while (*p && *p != ' ')
        p++;
    if (*p)
        *p++ = 0;
    if (!*cmd)
        return false;
    int argc = 0;
    while (*p && argc < IRC_MSG_MAXPARAMS) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        if (*p == ':') {
            argv[argc++] = p + 1;
            break;
        }
        argv[argc++] = p;
        while (*p && *p != ' ')
            p++;
        if (*p)
            *p++ = 0;
    }
    *cmd_out = cmd;
    *argc_out = argc;
    return true;
}

/* A token lies inside buf[0..size], ends at a NUL there, and has a space only if allowed. */
static void check_token(const char *tok, const char *buf, size_t size, bool may_have_space)
{
    lc_assert(tok >= buf && tok <= buf + size);
    size_t n = strnlen(tok, (size_t)(buf + size - tok));
    lc_assert(tok + n <= buf + size && tok[n] == 0);
    lc_assert(may_have_space || memchr(tok, ' ', n) == NULL);
}

static char *put(char *o, const char *s)
{
    size_t n = strlen(s);
    memcpy(o, s, n);
    return o + n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1), *ref = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = 0;
    memcpy(ref, buf, size + 1);
    struct irc_msg m;
    int rc = irc_parse_line(buf, size, &m);

    char *ref_cmd = NULL, *ref_argv[IRC_MSG_MAXPARAMS];
    int ref_argc = 0;
    bool ref_ok = reference_tokenize(ref, &ref_cmd, ref_argv, &ref_argc);
    lc_assert(ref_ok == (rc == 0));
    if (rc != 0) {
        lc_assert(rc == -EINVAL);
        lc_assert(!m.tags && !m.prefix && !m.command && m.argc == 0 && !m.trailing);
        goto out;
    }

    /* The invariants. */
    lc_assert(m.argc >= 0 && m.argc <= IRC_MSG_MAXPARAMS);
    lc_assert(m.command && m.command[0]);
    check_token(m.command, buf, size, false);
    const char *last = m.command; /* Parts come in order and do not overlap. */
    if (m.tags) {
        lc_assert(m.tags == buf + 1 && data[0] == '@');
        check_token(m.tags, buf, size, false);
        lc_assert(m.tags + strlen(m.tags) < m.command);
    }
    if (m.prefix) {
        lc_assert(m.prefix[-1] == ':' && (m.tags ? m.prefix > m.tags : m.prefix == buf + 1));
        check_token(m.prefix, buf, size, false);
        lc_assert(m.prefix + strlen(m.prefix) < m.command);
    }
    lc_assert(!m.trailing || m.argc > 0);
    for (int i = 0; i < m.argc; i++) {
        bool is_trailing = m.trailing && i == m.argc - 1;
        check_token(m.argv[i], buf, size, is_trailing);
        lc_assert(m.argv[i] > last + strlen(last));
        if (is_trailing) {
            lc_assert(m.argv[i][-1] == ':');
        } else {
            lc_assert(m.argv[i][0] && m.argv[i][0] != ':');
        }
        last = m.argv[i];
    }

    /* The same tokens, at the same places, as dispatch() found before. */
    lc_assert(m.command - buf == ref_cmd - ref);
    lc_assert(m.argc == ref_argc);
    for (int i = 0; i < m.argc; i++)
        lc_assert(m.argv[i] - buf == ref_argv[i] - ref);
    /* And the same bytes from the command on (tags and prefix are cut only by the new one). */
    size_t from = (size_t)(m.command - buf);
    lc_assert(memcmp(buf + from, ref + from, size + 1 - from) == 0);

    /* Written out canonically (single spaces, ':' only before a trailing param), the line
     * parses to the same parts. It cannot be longer than the input. */
    char *again = malloc(size + 1), *o = again;
    if (m.tags) {
        *o++ = '@';
        o = put(o, m.tags);
        *o++ = ' ';
    }
    if (m.prefix) {
        *o++ = ':';
        o = put(o, m.prefix);
        *o++ = ' ';
    }
    o = put(o, m.command);
    for (int i = 0; i < m.argc; i++) {
        *o++ = ' ';
        if (m.trailing && i == m.argc - 1)
            *o++ = ':';
        o = put(o, m.argv[i]);
    }
    size_t alen = (size_t)(o - again);
    lc_assert(alen <= size);
    *o = 0;
    struct irc_msg m2;
    lc_assert(irc_parse_line(again, alen, &m2) == 0);
    lc_assert((m.tags == NULL) == (m2.tags == NULL) && (!m.tags || !strcmp(m.tags, m2.tags)));
    lc_assert((m.prefix == NULL) == (m2.prefix == NULL) &&
              (!m.prefix || !strcmp(m.prefix, m2.prefix)));
    lc_assert(strcmp(m.command, m2.command) == 0);
    lc_assert(m.argc == m2.argc && m.trailing == m2.trailing);
    for (int i = 0; i < m.argc; i++)
        lc_assert(strcmp(m.argv[i], m2.argv[i]) == 0);
    free(again);

out:
    free(buf);
    free(ref);
    return 0;
}
