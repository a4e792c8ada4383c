/* routes_auth.c - POST /api/auth/register, /login, /logout.
 *
 * Each handler is one core call; the pipeline in server.c has already
 * routed, authenticated (logout), rate limited (per client IP, always, for
 * /api/auth/ routes) and parsed the body.
 *
 * Login adds a second limit, per account name: LOGIN_FAIL_MAX failed
 * logins per LOGIN_FAIL_WINDOW_S, counted through the cache port (so with
 * Redis every instance shares it).  The port only counts hits, it cannot
 * read a counter without bumping it, so two keys are used:
 *   lf:<h>  failed logins in the window (hit only on a failure);
 *   lb:<h>  "blocked" marker, hit with the rest of lf's window by every
 *           failure that reaches the limit.
 * Every login first hits lb:<h> with a 1 ms window: a count of 1 means the
 * key was absent (and it is gone a millisecond later), a higher count means
 * the account name is blocked, answered 429 before any Argon2id work, and a
 * correct password is refused too (or the limit would tell a guesser when
 * the guess was right).  <h> is BLAKE2b-128 of the login as typed,
 * trimmed and ASCII lower-cased (the form core looks up), so a client
 * cannot grow the keys past a fixed size. */
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "chatli/cache.h"
#include "chatli/config.h"
#include "chatli/log.h"
#include "chatli/metrics.h"
#include "http_internal.h"

int routes_auth_register(struct http_req *rq, json_t *body, json_t **out, int *status,
                         struct chat_err *err)
{
    *status = 201;
    return auth_register(rq->srv->core, body, out, err);
}

/* Writes "<prefix><hex of the hashed login>" into `key`; false when the
 * body has no string "email" (core answers that one). */
static bool account_key(json_t *body, const char *prefix, char key[40])
{
    const char *v = json_string_value(json_object_get(body, "email"));
    if (!v)
        return false;
    size_t n = strlen(v);
    while (n > 0 && isspace((unsigned char)*v))
        v++, n--;
    while (n > 0 && isspace((unsigned char)v[n - 1]))
        n--;
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 16);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)tolower((unsigned char)v[i]);
        crypto_generichash_update(&st, &c, 1);
    }
    unsigned char h[16];
    crypto_generichash_final(&st, h, sizeof h);
    char hex[33];
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    snprintf(key, 40, "%s%s", prefix, hex);
    return true;
}

/* Counts one hit; returns false (fail open) when the cache fails. */
static bool hit(struct http_req *rq, const char *key, int64_t window_ms, int64_t *count,
                int64_t *reset_ms)
{
    struct chat_err e = {0};
    if (cache_hit(rq->srv->cache, key, window_ms, count, reset_ms, &e) == 0)
        return true;
    log_warn("login limit: cache %s failed: %s", rq->srv->cache->name, e.msg);
    metrics_error("rate_limit_cache");
    return false;
}

static int blocked(struct http_req *rq, int64_t reset_ms, struct chat_err *err)
{
    rq->retry_after_s = reset_ms > 0 ? (reset_ms + 999) / 1000 : 1;
    return chat_err_set(err, CHAT_E_RATE_LIMITED, NULL,
                        "too many failed logins for this account: retry later");
}

int routes_auth_login(struct http_req *rq, json_t *body, json_t **out, int *status,
                      struct chat_err *err)
{
    *status = 200;
    const struct config *cfg = rq->srv->cfg;
    char fkey[40], bkey[40];
    int64_t count, reset_ms;
    bool limited = cfg->login_fail_max > 0 && account_key(body, "lf:", fkey) &&
                   account_key(body, "lb:", bkey);
    if (limited && hit(rq, bkey, 1, &count, &reset_ms) && count > 1)
        return blocked(rq, reset_ms, err);
    int rc = auth_login(rq->srv->core, body, out, err);
    if (rc != CHAT_E_INVALID_CREDENTIALS || !limited)
        return rc;
    if (!hit(rq, fkey, cfg->login_fail_window_s * 1000, &count, &reset_ms) ||
        count < cfg->login_fail_max)
        return rc;
    int64_t bcount, breset;
    hit(rq, bkey, reset_ms > 0 ? reset_ms : 1, &bcount, &breset);
    if (count > cfg->login_fail_max)
        return blocked(rq, reset_ms, err);
    return rc; /* the last allowed failure: the next attempt is refused */
}

int routes_auth_logout(struct http_req *rq, json_t *body, json_t **out, int *status,
                       struct chat_err *err)
{
    *status = 204;
    *out = NULL;
    return auth_logout(rq->srv->core, &rq->session, err);
}
