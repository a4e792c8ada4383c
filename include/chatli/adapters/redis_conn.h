/* redis_conn.h - what the two Redis adapters (bus_redis, cache_redis)
 * share: REDIS_URL parsed once, a connect that fails fast, and a
 * reconnect backoff.  Not a port: only adapters include it. */
#ifndef CHATLI_ADAPTERS_REDIS_CONN_H
#define CHATLI_ADAPTERS_REDIS_CONN_H

#include <stdint.h>

#include "chatli/err.h"

struct redisContext;

/* A parsed REDIS_URL: redis://[[user]:password@]host[:port][/db]. */
struct redis_endpoint {
    char *host;     /* new: freed by redis_endpoint_cleanup */
    int port;       /* 6379 when absent */
    char *user;     /* NULL, or the ACL user */
    char *password; /* NULL, or the AUTH password */
    int db;         /* SELECT index, 0 when absent */
};

/* Parses `url` with libcurl's URL API.  0, or CHAT_E_VALIDATION (a bad
 * URL, an unsupported scheme such as rediss:// - hiredis 0.14 has no TLS -
 * or a db that is not a number) with nothing to clean up.  The message
 * never repeats the password. */
int redis_endpoint_parse(const char *url, struct redis_endpoint *ep, struct chat_err *err);
void redis_endpoint_cleanup(struct redis_endpoint *ep);

/* Connects with a `connect_ms` bound, enables TCP keep-alive, sets a read
 * and write timeout of `io_ms` (0 = none, for a subscriber that waits), then
 * AUTH and SELECT as the endpoint says.  0 and *out new (redisFree), or
 * CHAT_E_UNAVAILABLE with the reason in err (and in the log). */
int redis_connect(const struct redis_endpoint *ep, int connect_ms, int io_ms,
                  struct redisContext **out, struct chat_err *err);

/* Reconnect pacing: after a failure the next attempt waits `delay_ms`,
 * which doubles from REDIS_BACKOFF_MIN_MS up to REDIS_BACKOFF_MAX_MS and
 * resets on success.  Callers that must not wait (REST, the publisher)
 * skip Redis entirely until the time has come: a dead Redis costs them a
 * clock read, not a connect timeout per request.  Not locked: guard it with
 * the lock of the connection it paces. */
#define REDIS_BACKOFF_MIN_MS 100
#define REDIS_BACKOFF_MAX_MS 2000
struct redis_backoff {
    int64_t next_ms;  /* monotonic ms before which no attempt is made */
    int64_t delay_ms; /* the wait after the next failure; 0 = after success */
};
int redis_backoff_ready(const struct redis_backoff *b, int64_t now_ms);
void redis_backoff_failed(struct redis_backoff *b, int64_t now_ms);
void redis_backoff_ok(struct redis_backoff *b);

#endif
