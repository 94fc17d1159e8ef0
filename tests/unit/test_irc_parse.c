/* test_irc_parse.c - the IRC line tokenizer against a table of lines: the RFC 1459/2812
 * grammar, IRCv3 message tags, and the edge cases the server has always handled its own way
 * (leading spaces, runs of spaces, empty trailing params, more than 15 params, NUL bytes).
 *
 * Every input is copied into a heap buffer of exactly its length plus the NUL the parser
 * requires, so ASan catches a read past the end. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "irc/irc_parse.h"

#define NOPE NULL /* Expected tags or prefix: absent. */

struct irc_case {
    const char *name;
    const char *in;
    size_t in_len; /* 0: strlen(in); set for inputs with NUL bytes. */
    int rc;
    const char *tags, *prefix, *command;
    int argc;
    const char *argv[IRC_MSG_MAXPARAMS];
    bool trailing;
};

/* One case per line reads better than what the formatter makes of this table. */
/* clang-format off */
static const struct irc_case cases[] = {
    /* RFC 1459/2812 messages. */
    {"bare_command", "QUIT", 0, 0, NOPE, NOPE, "QUIT", 0, {0}, false},
    {"one_middle", "NICK alice", 0, 0, NOPE, NOPE, "NICK", 1, {"alice"}, false},
    {"trailing_with_spaces", "PRIVMSG #chan :hello world", 0, 0, NOPE, NOPE, "PRIVMSG", 2,
     {"#chan", "hello world"}, true},
    {"user_registration", "USER guest 0 * :Ronnie Reagan", 0, 0, NOPE, NOPE, "USER", 4,
     {"guest", "0", "*", "Ronnie Reagan"}, true},
    {"prefix_full", ":nick!user@host PRIVMSG #chan :hi", 0, 0, NOPE, "nick!user@host", "PRIVMSG",
     2, {"#chan", "hi"}, true},
    {"prefix_server", ":irc.example.net PING x", 0, 0, NOPE, "irc.example.net", "PING", 1, {"x"},
     false},
    {"numeric_command", ":srv 001 alice :Welcome to IRC", 0, 0, NOPE, "srv", "001", 2,
     {"alice", "Welcome to IRC"}, true},
    {"case_kept", "privmsg #c x", 0, 0, NOPE, NOPE, "privmsg", 2, {"#c", "x"}, false},
    {"cap_ls", "CAP LS 302", 0, 0, NOPE, NOPE, "CAP", 2, {"LS", "302"}, false},
    {"cap_req_trailing", "CAP REQ :server-time message-tags", 0, 0, NOPE, NOPE, "CAP", 2,
     {"REQ", "server-time message-tags"}, true},
    {"colon_inside_middle", "MODE a:b +o:x", 0, 0, NOPE, NOPE, "MODE", 2, {"a:b", "+o:x"}, false},
    {"trailing_with_colons", "TOPIC #c ::-) :x", 0, 0, NOPE, NOPE, "TOPIC", 2, {"#c", ":-) :x"},
     true},
    {"trailing_without_spaces", "PING :token", 0, 0, NOPE, NOPE, "PING", 1, {"token"}, true},
    {"empty_trailing", "TOPIC #c :", 0, 0, NOPE, NOPE, "TOPIC", 2, {"#c", ""}, true},
    {"only_empty_trailing", "AWAY :", 0, 0, NOPE, NOPE, "AWAY", 1, {""}, true},
    {"trailing_keeps_spaces", "PRIVMSG x :  a  b  ", 0, 0, NOPE, NOPE, "PRIVMSG", 2,
     {"x", "  a  b  "}, true},
    {"utf8_bytes", "PRIVMSG #c :\xc3\xa9t\xc3\xa9", 0, 0, NOPE, NOPE, "PRIVMSG", 2,
     {"#c", "\xc3\xa9t\xc3\xa9"}, true},

    /* IRCv3 message tags: returned raw, after the '@'. */
    {"tags_and_prefix", "@a=b;c :nick!u@h PRIVMSG #chan :hello world", 0, 0, "a=b;c", "nick!u@h",
     "PRIVMSG", 2, {"#chan", "hello world"}, true},
    {"tags_no_prefix", "@time=2024-01-01T00:00:00.000Z PING x", 0, 0,
     "time=2024-01-01T00:00:00.000Z", NOPE, "PING", 1, {"x"}, false},
    {"tags_raw_escapes", "@+draft/reply=1;msgid=a\\sb\\:c TAGMSG #c", 0, 0,
     "+draft/reply=1;msgid=a\\sb\\:c", NOPE, "TAGMSG", 1, {"#c"}, false},
    {"tags_with_colon_value", "@k=:v PING", 0, 0, "k=:v", NOPE, "PING", 0, {0}, false},
    {"empty_tags", "@ PING x", 0, 0, "", NOPE, "PING", 1, {"x"}, false},
    {"empty_prefix", ": PING x", 0, 0, NOPE, "", "PING", 1, {"x"}, false},
    {"prefix_of_colon", ":: PING", 0, 0, NOPE, ":", "PING", 0, {0}, false},
    /* Tags and prefix are recognised once each, in that order; later ones are the command. */
    {"second_tags_is_command", "@t @u CMD", 0, 0, "t", NOPE, "@u", 1, {"CMD"}, false},
    {"second_prefix_is_command", ": :x Y", 0, 0, NOPE, "", ":x", 1, {"Y"}, false},
    {"prefix_then_tags_is_command", ":p @t X", 0, 0, NOPE, "p", "@t", 1, {"X"}, false},
    {"spaces_between_parts", "@t   :p   CMD   a   :b c", 0, 0, "t", "p", "CMD", 2, {"a", "b c"},
     true},

    /* Spaces: only the space byte separates, and a run of them counts as one. */
    {"trailing_spaces", "PING x   ", 0, 0, NOPE, NOPE, "PING", 1, {"x"}, false},
    {"command_then_spaces", "LIST   ", 0, 0, NOPE, NOPE, "LIST", 0, {0}, false},
    {"runs_of_spaces", "CMD  a   b  ", 0, 0, NOPE, NOPE, "CMD", 2, {"a", "b"}, false},
    {"tab_is_not_a_separator", "CMD\ta b\tc", 0, 0, NOPE, NOPE, "CMD\ta", 1, {"b\tc"}, false},
    {"cr_is_kept", "PING x\r", 0, 0, NOPE, NOPE, "PING", 1, {"x\r"}, false},

    /* Lines without a command. */
    {"empty_line", "", 0, -EINVAL, NOPE, NOPE, NULL, 0, {0}, false},
    {"only_spaces", "   ", 0, -EINVAL, NOPE, NOPE, NULL, 0, {0}, false},
    {"leading_space", " PING x", 0, -EINVAL, NOPE, NOPE, NULL, 0, {0}, false},
    {"leading_space_prefix", " :p PING", 0, -EINVAL, NOPE, NOPE, NULL, 0, {0}, false},
    {"only_tags", "@a=b", 0, -EINVAL, NOPE, NOPE, NULL, 0, {0}, false},
    {"only_tags_space", "@a=b   ", 0, -EINVAL, NOPE, NOPE, NULL, 0, {0}, false},
    {"only_at", "@", 0, -EINVAL, NOPE, NOPE, NULL, 0, {0}, false},
    {"only_prefix", ":nick!u@h", 0, -EINVAL, NOPE, NOPE, NULL, 0, {0}, false},
    {"only_prefix_space", ":nick ", 0, -EINVAL, NOPE, NOPE, NULL, 0, {0}, false},
    {"only_colon", ":", 0, -EINVAL, NOPE, NOPE, NULL, 0, {0}, false},
    {"tags_and_prefix_only", "@t :p", 0, -EINVAL, NOPE, NOPE, NULL, 0, {0}, false},
    {"tags_and_prefix_space", "@t :p ", 0, -EINVAL, NOPE, NOPE, NULL, 0, {0}, false},

    /* NUL bytes end the line. */
    {"nul_in_param", "PING a\0b c", 10, 0, NOPE, NOPE, "PING", 1, {"a"}, false},
    {"nul_in_trailing", "PRIVMSG x :ab\0cd", 16, 0, NOPE, NOPE, "PRIVMSG", 2, {"x", "ab"}, true},
    {"nul_first", "\0PING x", 7, -EINVAL, NOPE, NOPE, NULL, 0, {0}, false},
    {"nul_in_tags", "@a\0 PING", 8, -EINVAL, NOPE, NOPE, NULL, 0, {0}, false},
    {"nul_after_command", "NAMES\0 #c", 9, 0, NOPE, NOPE, "NAMES", 0, {0}, false},

    /* The parameter limit. */
    {"fifteen_middles", "CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15", 0, 0, NOPE, NOPE, "CMD", 15,
     {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15"}, false},
    {"sixteenth_dropped", "CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17", 0, 0, NOPE, NOPE,
     "CMD", 15,
     {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15"}, false},
    {"fourteen_and_trailing", "CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 :last one", 0, 0, NOPE,
     NOPE, "CMD", 15,
     {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "last one"},
     true},
    /* RFC 2812 makes the 15th param the rest of the line; we keep one word (as always). */
    {"fifteenth_is_one_word", "CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 a b c", 0, 0, NOPE, NOPE,
     "CMD", 15,
     {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "a"}, false},
    /* And a trailing param after 15 middles is dropped. */
    {"trailing_after_fifteen_dropped", "CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 :gone", 0, 0,
     NOPE, NOPE, "CMD", 15,
     {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15"}, false},
};
/* clang-format on */

/* A token must lie inside buf[0..len] and end at a NUL there. */
static bool inside(const char *tok, const char *buf, size_t len)
{
    return tok >= buf && tok <= buf + len && tok + strlen(tok) <= buf + len;
}

static void run_case(const struct irc_case *c)
{
    size_t len = c->in_len ? c->in_len : strlen(c->in);
    char *buf = malloc(len + 1);
    memcpy(buf, c->in, len);
    buf[len] = 0;
    struct irc_msg m;
    memset(&m, 0x5a, sizeof(m)); /* The parser must set every field. */
    int rc = irc_parse_line(buf, len, &m);
    CHECK_EQ_INT(rc, c->rc);
    if (c->tags)
        CHECK_EQ_STR(m.tags, c->tags);
    else
        CHECK(m.tags == NULL);
    if (c->prefix)
        CHECK_EQ_STR(m.prefix, c->prefix);
    else
        CHECK(m.prefix == NULL);
    if (c->command)
        CHECK_EQ_STR(m.command, c->command);
    else
        CHECK(m.command == NULL);
    CHECK_EQ_INT(m.argc, c->argc);
    CHECK_EQ_INT(m.trailing, c->trailing);
    for (int i = 0; i < c->argc && i < m.argc; i++)
        CHECK_EQ_STR(m.argv[i], c->argv[i]);
    if (rc == 0) {
        CHECK(!m.tags || inside(m.tags, buf, len));
        CHECK(!m.prefix || inside(m.prefix, buf, len));
        CHECK(inside(m.command, buf, len));
        for (int i = 0; i < m.argc && i < IRC_MSG_MAXPARAMS; i++)
            CHECK(inside(m.argv[i], buf, len));
    }
    free(buf);
}

/* Tokens are slices of the caller's buffer, cut by NULs written over the separators. */
TEST(splits_in_place)
{
    char buf[] = "@t :p CMD a  b :c d";
    struct irc_msg m;
    CHECK_EQ_INT(irc_parse_line(buf, strlen(buf), &m), 0);
    CHECK(m.tags == buf + 1);
    CHECK(m.prefix == buf + 4);
    CHECK(m.command == buf + 6);
    CHECK(m.argv[0] == buf + 10);
    CHECK(m.argv[1] == buf + 13);
    CHECK(m.argv[2] == buf + 16);
    static const char want[] = "@t\0:p\0CMD\0a\0 b\0:c d";
    CHECK(memcmp(buf, want, sizeof(want)) == 0);
}

/* The parser has no length limit of its own (irc.c caps lines at IRC_LINE_MAX). */
TEST(long_line)
{
    size_t n = 20000;
    char *buf = malloc(n + 1);
    memcpy(buf, "PRIVMSG #c :", 12);
    memset(buf + 12, 'x', n - 12);
    buf[n - 1] = 'y';
    buf[n] = 0;
    struct irc_msg m;
    CHECK_EQ_INT(irc_parse_line(buf, n, &m), 0);
    CHECK_EQ_INT(m.argc, 2);
    CHECK_EQ_INT(strlen(m.argv[1]), n - 12);
    CHECK(m.argv[1][n - 13] == 'y');
    /* Many params: only the first 15 are kept, however many follow. */
    for (size_t i = 0; i < n; i++)
        buf[i] = i % 2 ? ' ' : 'p';
    CHECK_EQ_INT(irc_parse_line(buf, n, &m), 0);
    CHECK_EQ_INT(m.argc, IRC_MSG_MAXPARAMS);
    CHECK_EQ_STR(m.argv[IRC_MSG_MAXPARAMS - 1], "p");
    CHECK(m.argv[IRC_MSG_MAXPARAMS - 1] == buf + 2 * IRC_MSG_MAXPARAMS);
    free(buf);
}

int main(void)
{
    /* Each table case counts as one test, as RUN would count it. */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        check_cur_failed = 0;
        run_case(&cases[i]);
        if (check_cur_failed) {
            check_failed++;
            fprintf(stderr, "FAIL %s\n", cases[i].name);
        } else {
            check_passed++;
        }
    }
    RUN(splits_in_place);
    RUN(long_line);
    return check_summary("irc_parse");
}
