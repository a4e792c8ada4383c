/* log.h - one JSON object per line on stdout.
 *
 * Lines are built with jansson (so every string is escaped correctly) and
 * written with a single write(2), which keeps lines from different threads
 * whole.  Never log a token: callers redact before logging. */
#ifndef CHATLI_LOG_H
#define CHATLI_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Sets the minimum level written (default LOG_INFO).  Call before threads start. */
void log_set_level(int level);

/* Parses "debug", "info", "warn" or "error".  Returns the level or -1. */
int log_parse_level(const char *s);

/* True when a line at `level` would be written. */
int log_enabled(int level);

/* Writes {"ts":..., "level":..., "msg": <formatted>}. */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct json_t;
/* Writes `fields` (a JSON object, borrowed) with "ts" and "level" added. */
void log_json(int level, struct json_t *fields);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
