/* log.h - the server's own diagnostics, one line each on stderr with time and severity, or with
 * an sd-daemon(3) <N> priority prefix when stderr is the systemd journal. */
#ifndef LC_LOG_H
#define LC_LOG_H

#include <stdint.h>

enum { LOGV_ERROR, LOGV_WARN, LOGV_INFO, LOGV_DEBUG };

extern int log_verbosity; /* Messages above this level are dropped; default LOGV_INFO. */

/* Choose the format, once, before other threads start and before anything is written to
 * stderr: when $JOURNAL_STREAM names stderr (systemd connected it to the journal), lines get a
 * <N> priority prefix and no time, and the stderr stream itself is replaced by one that puts
 * <3> (error) before each line written to it by other code. Otherwise nothing changes. */
void log_init(void);

void log_msg(int severity, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOGV_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOGV_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOGV_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOGV_DEBUG, __VA_ARGS__)

/* The clocks every log line and timeout uses (shared with the client: base/clock.h). */
#include "base/clock.h"

/* An assertion that is never compiled out: invariants hold in release builds too. */
#define lc_assert(cond)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            lc_assert_fail(#cond, __FILE__, __LINE__);                                             \
    } while (0)
void lc_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#endif
