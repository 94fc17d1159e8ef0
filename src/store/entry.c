/* entry.c - level names and their aliases. */
#include "store/entry.h"

#include <strings.h>

static const char *const level_names[LC_LEVEL_COUNT] = {"TRACE", "DEBUG", "INFO",
                                                        "WARN",  "ERROR", "FATAL"};

const char *lc_level_name(int level)
{
    if (level < 0 || level >= LC_LEVEL_COUNT)
        return "INFO";
    return level_names[level];
}

static const struct {
    const char *name;
    int level;
} level_aliases[] = {
    {"TRACE", LC_TRACE}, {"DEBUG", LC_DEBUG},      {"INFO", LC_INFO},    {"WARN", LC_WARN},
    {"ERROR", LC_ERROR}, {"FATAL", LC_FATAL},      {"WARNING", LC_WARN}, {"CRITICAL", LC_FATAL},
    {"CRIT", LC_FATAL},  {"ERR", LC_ERROR},        {"NOTICE", LC_INFO},  {"EMERG", LC_FATAL},
    {"ALERT", LC_FATAL}, {"INFORMATION", LC_INFO}, {"DBG", LC_DEBUG},
};

int lc_level_parse(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof(level_aliases) / sizeof(level_aliases[0]); i++) {
        const char *n = level_aliases[i].name;
        size_t nl = 0;
        while (n[nl])
            nl++;
        if (nl == len && strncasecmp(n, s, len) == 0)
            return level_aliases[i].level;
    }
    return -1;
}
