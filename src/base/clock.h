/* clock.h - wall-clock and monotonic time, shared by server, client and tools. */
#ifndef LC_BASE_CLOCK_H
#define LC_BASE_CLOCK_H

#include <stdint.h>

/* Milliseconds since the epoch (CLOCK_REALTIME): event and arrival times. */
int64_t now_ms(void);
/* CLOCK_MONOTONIC in milliseconds and nanoseconds: timeouts, rates, latencies. */
int64_t mono_ms(void);
int64_t mono_ns(void);

#endif
