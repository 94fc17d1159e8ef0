/* thread.h - names of the server's own threads. */
#ifndef LC_BASE_THREAD_H
#define LC_BASE_THREAD_H

/* Names the calling thread "lc-" and the formatted rest (cut to the kernel's 15 bytes), as
 * top -H, ps -L and perf show it. */
void thread_name(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
