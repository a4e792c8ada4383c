/* routes_auth.c - POST /api/auth/register, /login, /logout, /password,
 * /logout-all.
 *
 * Each handler is one core call; the pipeline in server.c has already
 * routed, authenticated (logout), rate limited (per client IP, always, for
 * /api/auth/ routes) and parsed the body.
 *
 * Login adds a second limit, per account name: LOGIN_FAIL_MAX failed
 * logins per LOGIN_FAIL_WINDOW_S.  Failures are counted through the cache
 * port under "lf:<h>" (so with Redis every instance shares the count);
 * the failure that reaches the limit blocks the name in this process until
 * the window ends (ratelimit.h), and while blocked every login to it is
 * answered 429 before any Argon2id work, a correct password included (or
 * the limit would tell a guesser when the guess was right).  A failure
 * past the limit, on an instance that had not seen the block yet, is 429
 * too and blocks there.  <h> is BLAKE2b-128 of the login as typed,
 * trimmed and ASCII lower-cased (the form core looks up), so a client
 * cannot grow the keys past a fixed size; the email and the username of
 * one account are two names with a budget each.
 *
 * Password change and account deletion (routes_users.c) check the caller's
 * password too: their failures count per user under "pf:<h>", with the same
 * limit and block (routes__password_checked).
 */
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "chatli/cache.h"
#include "chatli/clock.h"
#include "chatli/config.h"
#include "chatli/log.h"
#include "chatli/metrics.h"
#include "http_internal.h"
#include "ratelimit.h"

int routes_auth_register(struct http_req *rq, json_t *body, json_t **out, int *status,
                         struct chat_err *err)
{
    *status = 201;
    return auth_register(rq->srv->core, body, out, err);
}

/* The 16-byte hash of the body's login name; false when the body has no
 * string "email" (core answers that one). */
static bool account_hash(json_t *body, unsigned char h[16])
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
    crypto_generichash_final(&st, h, 16);
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
                        "too many failed password checks for this account: retry later");
}

/* After a failure (rc CHAT_E_INVALID_CREDENTIALS) for account hash `acct`:
 * counts it under "<prefix>:<h>" and blocks the account once the count
 * reaches LOGIN_FAIL_MAX.  Returns rc, or the 429 of a failure past the
 * limit. */
static int count_failure(struct http_req *rq, const char *prefix, const unsigned char acct[16],
                         int rc, struct chat_err *err)
{
    const struct config *cfg = rq->srv->cfg;
    char key[40], hex[33];
    sodium_bin2hex(hex, sizeof hex, acct, 16);
    snprintf(key, sizeof key, "%s:%s", prefix, hex);
    int64_t count, reset_ms;
    if (!hit(rq, key, cfg->login_fail_window_s * 1000, &count, &reset_ms) ||
        count < cfg->login_fail_max)
        return rc;
    int64_t now = clock_mono_ms();
    http_login_block(acct, now + (reset_ms > 0 ? reset_ms : 1), now);
    if (count > cfg->login_fail_max)
        return blocked(rq, reset_ms, err);
    return rc; /* the last allowed failure: the next attempt is refused */
}

int routes_auth_login(struct http_req *rq, json_t *body, json_t **out, int *status,
                      struct chat_err *err)
{
    *status = 200;
    const struct config *cfg = rq->srv->cfg;
    unsigned char acct[16];
    bool limited = cfg->login_fail_max > 0 && account_hash(body, acct);
    int64_t now = clock_mono_ms();
    int64_t left = limited ? http_login_blocked_ms(acct, now) : 0;
    if (left > 0)
        return blocked(rq, left, err);
    int rc = auth_login(rq->srv->core, body, out, err);
    if (rc != CHAT_E_INVALID_CREDENTIALS || !limited)
        return rc;
    return count_failure(rq, "lf", acct, rc, err);
}

int routes_auth_logout(struct http_req *rq, json_t *body, json_t **out, int *status,
                       struct chat_err *err)
{
    *status = 204;
    *out = NULL;
    return auth_logout(rq->srv->core, &rq->session, err);
}

/* The routes that check the caller's password (password change, account
 * deletion) share login's per-account failure limit, with a budget of
 * their own per user ("pf:<h>", <h> = BLAKE2b-128 of "pw:" and the user
 * id), so a stolen token cannot guess the password faster than login
 * allows; while blocked even the right password gets 429. */
int routes__password_checked(struct http_req *rq, json_t *body,
                             int (*fn)(struct core *, const struct session *, json_t *,
                                       struct chat_err *),
                             struct chat_err *err)
{
    const struct config *cfg = rq->srv->cfg;
    unsigned char acct[16];
    bool limited = cfg->login_fail_max > 0;
    if (limited) {
        crypto_generichash_state st;
        crypto_generichash_init(&st, NULL, 0, 16);
        crypto_generichash_update(&st, (const unsigned char *)"pw:", 3);
        crypto_generichash_update(&st, (const unsigned char *)rq->session.user_id,
                                  strlen(rq->session.user_id));
        crypto_generichash_final(&st, acct, 16);
    }
    int64_t left = limited ? http_login_blocked_ms(acct, clock_mono_ms()) : 0;
    if (left > 0)
        return blocked(rq, left, err);
    int rc = fn(rq->srv->core, &rq->session, body, err);
    if (rc != CHAT_E_INVALID_CREDENTIALS || !limited)
        return rc;
    return count_failure(rq, "pf", acct, rc, err);
}

int routes_auth_password(struct http_req *rq, json_t *body, json_t **out, int *status,
                         struct chat_err *err)
{
    *status = 204;
    *out = NULL;
    return routes__password_checked(rq, body, auth_change_password, err);
}

int routes_auth_logout_all(struct http_req *rq, json_t *body, json_t **out, int *status,
                           struct chat_err *err)
{
    *status = 204;
    *out = NULL;
    return auth_logout_all(rq->srv->core, &rq->session, err);
}
