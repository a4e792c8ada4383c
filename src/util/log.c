/* log.c - JSON line logger. */
#include "chatli/log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chatli/clock.h"

static int min_level = LOG_INFO;
static const char *names[] = {"debug", "info", "warn", "error"};

void log_set_level(int level) { min_level = level; }

int log_parse_level(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

int log_enabled(int level) { return level >= min_level; }

void log_json(int level, json_t *fields)
{
    if (level < min_level)
        return;
    char ts[CLOCK_ISO_LEN];
    json_t *line = json_object();
    json_object_set_new(line, "ts", json_string(clock_format_iso(clock_now_ms(), ts)));
    json_object_set_new(line, "level", json_string(names[level < 0 || level > 3 ? 1 : level]));
    if (fields)
        json_object_update(line, fields);
    char *s = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(line);
    if (!s)
        return;
    size_t n = strlen(s);
    s[n] = '\n'; /* json_dumps leaves room only for the NUL: reuse it */
    ssize_t w = write(STDOUT_FILENO, s, n + 1);
    (void)w; /* nothing sensible to do when stdout is gone */
    free(s);
}

void log_msg(int level, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    json_t *f = json_object();
    json_object_set_new(f, "msg", json_string(buf));
    log_json(level, f);
    json_decref(f);
}
