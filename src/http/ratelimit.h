/* ratelimit.h - REST rate limiting (CONTRACT.md section 1).
 *
 * A fixed window of RATE_LIMIT_WINDOW_MS per key, counted by the cache port
 * (cache_hit), so with Redis every instance shares one count.  The key is
 * the user id when the request carries a valid token, else the client IP;
 * the IP comes from X-Forwarded-For's first entry only when TRUST_PROXY=1
 * (otherwise any client could pick its own key). */
#ifndef CHATLI_HTTP_RATELIMIT_H
#define CHATLI_HTTP_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cache;
struct chat_err;

#define HTTP_IP_MAX 64 /* room for any textual IPv6 address and a NUL */

/* Writes the first entry of an X-Forwarded-For value into `out` in the
 * canonical text form (inet_ntop) when it is an IPv4 or IPv6 address,
 * optionally with a port ("1.2.3.4:80", "[::1]:80").  Returns false (and
 * leaves `out` unspecified) for a missing, empty or malformed entry. */
bool http_xff_client(const char *xff, char *out, size_t out_len);

/* The peer address as text; an IPv4-mapped IPv6 address becomes plain
 * IPv4.  "unknown" when `sa` is NULL or of another family. */
void http_peer_ip(const struct sockaddr *sa, char *out, size_t out_len);

/* The client IP to rate-limit by: the X-Forwarded-For client when `trust`
 * and it parses, else the peer. */
void http_client_ip(const char *xff, bool trust, const struct sockaddr *peer, char *out,
                    size_t out_len);

struct ratelimit_result {
    int64_t limit;
    int64_t remaining; /* never negative */
    int64_t reset_s;   /* seconds until the window resets, at least 1 */
    bool exceeded;     /* this request is past the limit: answer 429 */
};

/* Counts one request for `key` ("u:<id>" or "ip:<addr>").  Returns 0 with
 * *res filled, or the cache's error (then the request is not limited). */
int http_ratelimit_hit(struct cache *cache, const char *key, int64_t max, int64_t window_ms,
                       struct ratelimit_result *res, struct chat_err *err);

/* Failed logins per account (CONTRACT.md section 1, v1.2).  The failures
 * are counted through the cache port (shared by every instance with Redis);
 * an account whose count reached LOGIN_FAIL_MAX is remembered here, in
 * this process, until its window ends, so that its next attempts are
 * refused before the password is checked, a right one included.  Another
 * instance learns of the block at the first failure it sees.  `account` is
 * a 16-byte hash of the login name.  Thread-safe. */
/* Milliseconds the account stays blocked, 0 when it is not. */
int64_t http_login_blocked_ms(const unsigned char account[16], int64_t now_ms);
/* Blocks the account until `until_ms` (CLOCK_MONOTONIC ms). */
void http_login_block(const unsigned char account[16], int64_t until_ms, int64_t now_ms);

#endif
