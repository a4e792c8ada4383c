/* reqlog.h - the per-request log line and what it may contain.
 *
 * Tokens never reach the log (CONTRACT.md section 1): the request target is
 * logged with the value of every secret-looking query parameter replaced.
 * Pure string work, unit-tested on its own. */
#ifndef CHATLI_HTTP_REQLOG_H
#define CHATLI_HTTP_REQLOG_H

#include <stddef.h>

/* Longest target logged; a longer one is cut (and ends in "..."). */
#define HTTP_LOG_TARGET_MAX 2048

/* Returns a new string (free()) holding the request target `target`
 * ("/ws?token=abc&x=1") with the value of each query parameter whose name,
 * percent-decoded and compared ignoring case, is "token", ends in "token"
 * (access_token, ...), or is "password", "secret" or "auth" replaced by
 * "[redacted]".  Bytes outside printable ASCII are written as %XX, so the
 * result is always valid UTF-8 for the JSON log line.  NULL only when out
 * of memory. */
char *http_redact_target(const char *target);

#endif
