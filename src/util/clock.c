/* clock.c - time helpers.  gmtime_r is reentrant, so any thread may call these. */
#include "chatli/clock.h"

#include <stdio.h>
#include <time.h>

int64_t clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes `v` as exactly `n` decimal digits (v < 10^n). */
static char *digits(char *p, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + n;
}

char *clock_format_iso(int64_t ms, char out[CLOCK_ISO_LEN])
{
    /* Floor division keeps pre-1970 values (never produced here) sane. */
    int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    int milli = (int)(ms - secs * 1000);
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    long year = (long)tm.tm_year + 1900;
    if (year < 0 || year > 9999) {
        /* Not a time we produce; strftime copes with any width. */
        size_t n = strftime(out, CLOCK_ISO_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(out + n, CLOCK_ISO_LEN - n, ".%03uZ", (unsigned)milli % 1000u);
        return out;
    }
    /* The digits by hand: every timestamp of a feed page goes through here,
     * and strftime + snprintf cost ~7% of a page's CPU. */
    char *p = digits(out, (unsigned)year, 4);
    *p++ = '-';
    p = digits(p, (unsigned)tm.tm_mon + 1, 2);
    *p++ = '-';
    p = digits(p, (unsigned)tm.tm_mday, 2);
    *p++ = 'T';
    p = digits(p, (unsigned)tm.tm_hour, 2);
    *p++ = ':';
    p = digits(p, (unsigned)tm.tm_min, 2);
    *p++ = ':';
    p = digits(p, (unsigned)tm.tm_sec, 2);
    *p++ = '.';
    p = digits(p, (unsigned)milli % 1000u, 3);
    *p++ = 'Z';
    *p = '\0';
    return out;
}
