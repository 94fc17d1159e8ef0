/* thread.c - names of the server's own threads. */
#define _GNU_SOURCE
#include "base/thread.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

void thread_name(const char *fmt, ...)
{
    char name[16] = "lc-"; /* The kernel keeps 15 bytes and a NUL. */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name + 3, sizeof(name) - 3, fmt, ap);
    va_end(ap);
    pthread_setname_np(pthread_self(), name);
}
