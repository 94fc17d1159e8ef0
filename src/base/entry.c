/* entry.c - level names and their aliases. */
#include "base/entry.h"

#include <string.h>

static const char *const level_names[LC_LEVEL_COUNT] = {"TRACE", "DEBUG", "INFO",
                                                        "WARN",  "ERROR", "FATAL"};

const char *lc_level_name(int level)
{
    if (level < 0 || level >= LC_LEVEL_COUNT)
        return "INFO";
    return level_names[level];
}

static const struct {
    const char *name; /* Upper case. */
    unsigned char len;
    unsigned char level;
} level_aliases[] = {
    {"TRACE", 5, LC_TRACE},  {"DEBUG", 5, LC_DEBUG},       {"INFO", 4, LC_INFO},
    {"WARN", 4, LC_WARN},    {"ERROR", 5, LC_ERROR},       {"FATAL", 5, LC_FATAL},
    {"WARNING", 7, LC_WARN}, {"CRITICAL", 8, LC_FATAL},    {"CRIT", 4, LC_FATAL},
    {"ERR", 3, LC_ERROR},    {"NOTICE", 6, LC_INFO},       {"EMERG", 5, LC_FATAL},
    {"ALERT", 5, LC_FATAL},  {"INFORMATION", 11, LC_INFO}, {"DBG", 3, LC_DEBUG},
};

/* Called for candidate words on the ingest hot path: fold to upper case once, then compare
 * only names of the same length. */
int lc_level_parse(const char *s, size_t len)
{
    char up[12];
    if (len < 3 || len > sizeof(up))
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        up[i] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
    }
    for (size_t i = 0; i < sizeof(level_aliases) / sizeof(level_aliases[0]); i++)
        if (level_aliases[i].len == len && memcmp(level_aliases[i].name, up, len) == 0)
            return level_aliases[i].level;
    return -1;
}
