/* clock.h - wall-clock and monotonic time, and the contract's timestamp form. */
#ifndef CHATLI_CLOCK_H
#define CHATLI_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t clock_now_ms(void);

/* Nanoseconds of CLOCK_MONOTONIC, for durations only. */
int64_t clock_mono_ns(void);

/* Milliseconds of CLOCK_MONOTONIC: deadlines, TTLs, rate windows.  A
 * wall-clock step never moves them. */
int64_t clock_mono_ms(void);

#define CLOCK_ISO_LEN 25 /* "2026-11-28T10:39:22.123Z" + NUL */

/* Writes `ms` as ISO 8601 UTC with milliseconds into `out`
 * (at least CLOCK_ISO_LEN bytes).  Returns `out`. */
char *clock_format_iso(int64_t ms, char out[CLOCK_ISO_LEN]);

#endif
