/* auth.c - registration, login, bearer tokens.
 *
 * Passwords are Argon2id strings (crypto_pwhash_str), computed and verified
 * under the concurrency gate of core.c.  A login for an unknown user verifies
 * against the dummy hash, so both failure paths do one Argon2id verify and
 * answer the same CHAT_E_INVALID_CREDENTIALS.  A successful login whose
 * stored hash is weaker than the configured parameters rehashes it
 * (crypto_pwhash_str_needs_rehash; once per account and parameter change).
 *
 * A token is 32 random bytes shown to the client as base64url without
 * padding (43 characters).  The store keeps only BLAKE2b-256 of the raw
 * bytes: a leaked database does not yield usable tokens, and since the token
 * has 256 bits of entropy a fast unsalted hash is enough (no Argon2id on
 * every request).  Confirmed sessions are remembered for a moment in the
 * session cache (core/session_cache.c), which logout clears at once.
 * Expiry is checked here, not by the store, because not every backend can
 * expire rows (FerretDB has no TTL indexes); an expired session found on
 * use is deleted.  Logout deletes the session and publishes
 * a revocation on the bus so the gateway closes that token's WebSockets. */
#include <stdlib.h>
#include <string.h>

#include "chatli/bus.h"
#include "core_internal.h"
#include "validate.h"
#include "views.h"
#include "chatli/store.h"
#include "chatli/clock.h"
#include "chatli/log.h"

#define TOKEN_BYTES 32
#define TOKEN_B64_LEN 43 /* base64url, no padding, of 32 bytes */
#define TOKEN_B64_SIZE 44
#define VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING

static void token_hash(const uint8_t raw[TOKEN_BYTES], uint8_t hash[32])
{
    crypto_generichash(hash, 32, raw, TOKEN_BYTES, NULL, 0);
}

/* Creates a session for `user_id` and writes its token into `tok`. */
static int issue_token(struct core *c, const char *user_id, char tok[TOKEN_B64_SIZE],
                       struct chat_err *err)
{
    uint8_t raw[TOKEN_BYTES], hash[32];
    randombytes_buf(raw, sizeof raw);
    token_hash(raw, hash);
    sodium_bin2base64(tok, TOKEN_B64_SIZE, raw, sizeof raw, VARIANT);
    sodium_memzero(raw, sizeof raw);
    int64_t expires = clock_now_ms() + c->cfg.token_ttl_s * 1000;
    return store_create_session(c->store, hash, user_id, expires, err);
}

/* Creates a session for `u` and answers {"user": User+email, "token"}:
 * what a register and a login both end with. */
static int auth_reply(struct core *c, const struct user *u, json_t **out, struct chat_err *err)
{
    char tok[TOKEN_B64_SIZE];
    int rc = issue_token(c, u->id, tok, err);
    if (rc)
        return rc;
    json_t *user = views_user(u, true);
    json_t *o = user ? json_object() : NULL;
    if (!o || json_object_set_new(o, "user", user) != 0 ||
        json_object_set_new(o, "token", json_string(tok)) != 0) {
        if (!o)
            json_decref(user);
        json_decref(o);
        return core__internal(err, "auth: out of memory building the reply");
    }
    *out = o;
    return 0;
}

/* Wipes and frees a password the client sent (NULL is fine). */
static void free_password(char *pw)
{
    if (pw)
        sodium_memzero(pw, strlen(pw));
    free(pw);
}

static int hash_password(struct core *c, const char *pw, char out[crypto_pwhash_STRBYTES],
                         struct chat_err *err)
{
    core__pw_enter(c);
    int rc = crypto_pwhash_str(out, pw, strlen(pw), c->cfg.pwhash_opslimit,
                               c->cfg.pwhash_memlimit);
    core__pw_leave(c);
    if (rc != 0)
        return core__internal(err, "auth: crypto_pwhash_str failed (out of memory?)");
    return 0;
}

/* True when `pw` matches `hash`.  A malformed stored hash simply fails. */
static bool verify_password(struct core *c, const char *hash, const char *pw, size_t len)
{
    core__pw_enter(c);
    int rc = crypto_pwhash_str_verify(hash, pw, len);
    core__pw_leave(c);
    return rc == 0;
}

/* After a successful login: when the stored hash was made with weaker
 * Argon2id parameters than PWHASH_OPSLIMIT / PWHASH_MEMLIMIT now ask (or
 * another algorithm), store a new hash of the password just verified, so
 * raising the parameters upgrades every account at its next login.  A
 * failure is logged and the login goes on: the old hash still works. */
static void maybe_rehash(struct core *c, const struct user *u, const char *pw)
{
    if (crypto_pwhash_str_needs_rehash(u->pwhash, c->cfg.pwhash_opslimit,
                                       c->cfg.pwhash_memlimit) == 0)
        return;
    char fresh[crypto_pwhash_STRBYTES];
    struct chat_err e = {0};
    if (hash_password(c, pw, fresh, &e) != 0 ||
        store_update_user_pwhash(c->store, u->id, fresh, &e) != 0) {
        log_warn("auth: rehashing user %s's password failed: %s", u->id, e.msg);
        return;
    }
    log_info("auth: rehashed user %s's password with the configured parameters", u->id);
}

int auth_register(struct core *c, json_t *body, json_t **out, struct chat_err *err)
{
    char *username = NULL, *email = NULL, *password = NULL, *display = NULL;
    struct user u = {0};
    char pwhash[crypto_pwhash_STRBYTES];
    int rc;

    *out = NULL;
    if (!json_is_object(body))
        return chat_err_set(err, CHAT_E_INVALID_JSON, NULL, "body must be a JSON object");

    /* Fields are checked in the contract's order; the first failure wins. */
    rc = validate_string_field(body, "username", VALIDATE_REQUIRED | VALIDATE_TRIM, 3, 32,
                               &username, err);
    if (rc)
        goto done;
    if (!validate_username(username)) {
        rc = chat_err_set(err, CHAT_E_VALIDATION, "username",
                          "username must be 3 to 32 letters, digits or underscores");
        goto done;
    }
    rc = validate_string_field(body, "email", VALIDATE_REQUIRED | VALIDATE_TRIM, 1,
                               VALIDATE_EMAIL_MAX, &email, err);
    if (rc)
        goto done;
    validate_ascii_lower(email);
    if (!validate_email(email)) {
        rc = chat_err_set(err, CHAT_E_VALIDATION, "email", "email must look like local@domain.tld");
        goto done;
    }
    rc = validate_string_field(body, "password", VALIDATE_REQUIRED, 8, 128, &password, err);
    if (rc)
        goto done;
    rc = validate_string_field(body, "displayName", VALIDATE_TRIM, 1, 64, &display, err);
    if (rc)
        goto done;

    rc = hash_password(c, password, pwhash, err);
    if (rc)
        goto done;

    int64_t now = clock_now_ms();
    oid_new(u.id, now);
    u.username = username;
    u.email = email;
    u.display_name = display ? display : username;
    u.bio = "";
    u.avatar_url = NULL;
    u.pwhash = pwhash;
    u.created_at = now;
    rc = store_create_user(c->store, &u, err);
    if (rc)
        goto done;
    rc = auth_reply(c, &u, out, err);

done:
    free_password(password);
    free(username);
    free(email);
    free(display);
    return rc;
}

int auth_login(struct core *c, json_t *body, json_t **out, struct chat_err *err)
{
    char *login = NULL, *password = NULL;
    struct user u = {0};
    int rc;

    *out = NULL;
    if (!json_is_object(body))
        return chat_err_set(err, CHAT_E_INVALID_JSON, NULL, "body must be a JSON object");
    rc = validate_string_field(body, "email", VALIDATE_REQUIRED | VALIDATE_TRIM, 0, SIZE_MAX,
                               &login, err);
    if (rc)
        goto done;
    rc = validate_string_field(body, "password", VALIDATE_REQUIRED, 0, SIZE_MAX, &password, err);
    if (rc)
        goto done;
    validate_ascii_lower(login);

    /* Anything that cannot be an email or a username cannot match: skip the
     * store but not the verify, so the answer takes the same time. */
    bool plausible = login[0] != '\0' && strlen(login) <= VALIDATE_EMAIL_MAX;
    bool found = false;
    if (plausible) {
        rc = store_find_user_by_login(c->store, login, &u, err);
        if (rc == 0)
            found = true;
        else if (rc != CHAT_E_NOT_FOUND)
            goto done;
    }
    bool ok = verify_password(c, found && u.pwhash ? u.pwhash : c->priv->dummy_hash, password,
                              strlen(password));
    if (!found || !ok) {
        rc = chat_err_set(err, CHAT_E_INVALID_CREDENTIALS, NULL,
                          "wrong email/username or password");
        goto done;
    }
    maybe_rehash(c, &u, password);
    rc = auth_reply(c, &u, out, err);

done:
    free_password(password);
    free(login);
    store_user_cleanup(&u);
    return rc;
}

void auth_forget_token(struct core *c, const uint8_t token_hash[32])
{
    core__session_cache_forget(&c->priv->sessions, token_hash);
}

int auth_logout(struct core *c, const struct session *s, struct chat_err *err)
{
    /* Forget before and after the delete: a check that read the row before
     * the delete must not cache it (the first forget's epoch bump covers a
     * check already in flight, the second one any that started since). */
    core__session_revoke(c, s->token_hash); /* here and in the shared cache */
    int rc = store_delete_session(c->store, s->token_hash, err);
    auth_forget_token(c, s->token_hash); /* the shared mark already stops puts */
    if (rc)
        return rc;
    /* The store no longer knows the token, so no new request or WebSocket
     * gets in with it; the revocation closes the sockets already open with
     * it (4401), on every instance the bus reaches. */
    char user[1][OID_SIZE];
    memcpy(user[0], s->user_id, OID_SIZE);
    struct bus_event ev = {
        .scope = BUS_TO_USERS,
        .user_ids = (const char(*)[OID_SIZE])user,
        .n_users = 1,
        .revoked_token = s->token_hash,
    };
    struct chat_err e = {0};
    if (bus_publish(c->bus, &ev, &e) != 0)
        log_warn("auth: revocation not published: %s", e.msg);
    return 0;
}

int auth_check(struct core *c, const char *token, struct session *out, struct chat_err *err)
{
    uint8_t raw[TOKEN_BYTES];
    size_t n = 0;
    int64_t expires = 0;

    memset(out, 0, sizeof *out);
    /* Strict decode: exactly 43 characters of the URL-safe alphabet with
     * zero trailing bits, i.e. only strings issue_token can produce. */
    if (!token || strnlen(token, TOKEN_B64_SIZE) != TOKEN_B64_LEN ||
        !validate_base64url(token, TOKEN_B64_LEN) ||
        sodium_base642bin(raw, sizeof raw, token, TOKEN_B64_LEN, NULL, &n, NULL, VARIANT) != 0 ||
        n != TOKEN_BYTES)
        return chat_err_set(err, CHAT_E_UNAUTHORIZED, NULL, "missing or malformed token");
    token_hash(raw, out->token_hash);
    sodium_memzero(raw, sizeof raw);

    /* A cached session is checked for expiry like a stored one; an expired
     * one falls through to the store path, which deletes it. */
    uint64_t epoch;
    if (core__session_cache_get(&c->priv->sessions, out->token_hash, out->user_id, &expires,
                                &epoch) &&
        clock_now_ms() < expires) {
        out->expires_ms = expires;
        return 0;
    }
    /* Then the shared cache (REDIS_URL), before the store. */
    if (core__session_shared_get(c, out->token_hash, out->user_id, &expires) &&
        clock_now_ms() < expires) {
        core__session_cache_put(&c->priv->sessions, out->token_hash, out->user_id, expires, epoch);
        out->expires_ms = expires;
        return 0;
    }
    int rc = store_get_session(c->store, out->token_hash, out->user_id, &expires, err);
    if (rc == 0 && clock_now_ms() < expires) {
        core__session_cache_put(&c->priv->sessions, out->token_hash, out->user_id, expires, epoch);
        core__session_shared_put(c, out->token_hash, out->user_id, expires);
    }
    if (rc == CHAT_E_NOT_FOUND)
        rc = chat_err_set(err, CHAT_E_UNAUTHORIZED, NULL, "invalid or revoked token");
    else if (rc == 0 && clock_now_ms() >= expires) {
        struct chat_err ignored;
        /* Best effort: a failed delete only leaves a row that keeps failing
         * this same check. */
        store_delete_session(c->store, out->token_hash, &ignored);
        rc = chat_err_set(err, CHAT_E_UNAUTHORIZED, NULL, "token expired");
    }
    if (rc)
        memset(out, 0, sizeof *out);
    else
        out->expires_ms = expires;
    return rc;
}
