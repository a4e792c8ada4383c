/* test_session_shared.c - auth_check's shared session level (REDIS_URL),
 * with a fake shared cache that keeps the port's contract (cache.h
 * "sessions") in memory, and several cores on one store standing for
 * instances:
 *
 * - a session one core confirmed with the store is shared, and another core
 *   then accepts the token from the shared cache alone (the store row is
 *   deleted behind the caches' back to prove it);
 * - logout revokes it in the shared cache: a core that never saw the token
 *   refuses it, and a late put cannot bring it back;
 * - an expired shared entry is not trusted;
 * - shared cache down: the store answers, nothing is shared;
 * - a cache without session ops (cache_mem) is simply skipped. */
#include <string.h>

#include "chatli/adapters/cache_mem.h"
#include "chatli/cache.h"
#include "chatli/clock.h"
#include "fixture.h"

#define FAKE_MAX 16

struct fake_entry {
    uint8_t hash[32];
    bool revoked;
    char user[OID_SIZE];
    int64_t expires;
};

struct fake {
    struct cache base; /* first */
    bool down;
    struct fake_entry e[FAKE_MAX];
    int n;
    int gets, hits, puts, revokes;
};

static struct fake_entry *find(struct fake *f, const uint8_t hash[32])
{
    for (int i = 0; i < f->n; i++)
        if (memcmp(f->e[i].hash, hash, 32) == 0)
            return &f->e[i];
    return NULL;
}

static void fake_close(struct cache *c) { (void)c; }

static int fake_hit(struct cache *c, const char *key, int64_t window_ms, int64_t *count,
                    int64_t *reset_ms, struct chat_err *err)
{
    *count = 1;
    *reset_ms = window_ms;
    return 0;
}

static int fake_get(struct cache *c, const uint8_t hash[32], char user_id[OID_SIZE],
                    int64_t *expires_at, struct chat_err *err)
{
    struct fake *f = (struct fake *)c;
    if (f->down)
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "down");
    f->gets++;
    struct fake_entry *e = find(f, hash);
    if (!e || e->revoked)
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "miss");
    f->hits++;
    memcpy(user_id, e->user, OID_SIZE);
    *expires_at = e->expires;
    return 0;
}

static int fake_put(struct cache *c, const uint8_t hash[32], const char *user_id,
                    int64_t expires_at, int64_t ttl_ms, struct chat_err *err)
{
    struct fake *f = (struct fake *)c;
    if (f->down)
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "down");
    CHECK(ttl_ms > 0 && ttl_ms <= 60000);
    f->puts++;
    if (find(f, hash)) /* NX: never over a mark (nor over the same session) */
        return 0;
    if (f->n == FAKE_MAX)
        return 0;
    struct fake_entry *e = &f->e[f->n++];
    memcpy(e->hash, hash, 32);
    e->revoked = false;
    snprintf(e->user, sizeof e->user, "%s", user_id);
    e->expires = expires_at;
    return 0;
}

static int fake_revoke(struct cache *c, const uint8_t hash[32], int64_t ttl_ms,
                       struct chat_err *err)
{
    struct fake *f = (struct fake *)c;
    if (f->down)
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "down");
    f->revokes++;
    struct fake_entry *e = find(f, hash);
    if (!e && f->n < FAKE_MAX) {
        e = &f->e[f->n++];
        memcpy(e->hash, hash, 32);
    }
    if (e)
        e->revoked = true;
    return 0;
}

static const struct cache_ops fake_ops = {
    .close = fake_close,
    .hit = fake_hit,
    .session_get = fake_get,
    .session_put = fake_put,
    .session_revoke = fake_revoke,
};

/* Another "instance": a core on the fixture's store and bus. */
static struct core *instance(struct fx *f, struct cache *shared)
{
    struct chat_err err = {0};
    struct core_config cfg = {
        .token_ttl_s = 3600,
        .pwhash_opslimit = crypto_pwhash_OPSLIMIT_MIN,
        .pwhash_memlimit = crypto_pwhash_MEMLIMIT_MIN,
        .pwhash_concurrency = 2,
        .shared = shared,
    };
    struct core *c = NULL;
    CHECK_EQ_INT(core_new(&cfg, f->st, f->bus, &c, &err), 0);
    if (!c)
        exit(2);
    return c;
}

static char *new_token(struct core *c, const char *name)
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"username\":\"%s\",\"email\":\"%s@example.com\",\"password\":\"password123\"}",
             name, name);
    json_t *in = fx_json(body), *out = NULL;
    struct chat_err err = {0};
    CHECK_EQ_INT(auth_register(c, in, &out, &err), 0);
    json_decref(in);
    char *tok = strdup(json_string_value(json_object_get(out, "token")));
    json_decref(out);
    return tok;
}

static void test_shared_level(struct fx *fx)
{
    struct fake fk = {.base = {.ops = &fake_ops, .name = "fake", .remote = true}};
    struct cache *sh = &fk.base;
    CHECK(cache_shares_sessions(sh));
    struct core *a = instance(fx, sh), *b = instance(fx, sh), *c = instance(fx, sh);
    struct chat_err err = {0};
    struct session s = {0}, sb = {0};

    /* A confirms the token with the store and shares it. */
    char *tok = new_token(a, "shared_a");
    CHECK_EQ_INT(auth_check(a, tok, &s, &err), 0);
    CHECK_EQ_INT(fk.puts, 1);
    CHECK_EQ_INT(fk.n, 1);
    CHECK_EQ_STR(fk.e[0].user, s.user_id);
    CHECK(fk.e[0].expires == s.expires_ms);
    /* A's next check is its own cache's: no shared lookup. */
    int gets = fk.gets;
    CHECK_EQ_INT(auth_check(a, tok, &s, &err), 0);
    CHECK_EQ_INT(fk.gets, gets);

    /* B finds it in the shared cache, not in the store: the row is gone. */
    CHECK_EQ_INT(store_delete_session(fx->st, s.token_hash, &err), 0);
    CHECK_EQ_INT(auth_check(b, tok, &sb, &err), 0);
    CHECK_EQ_STR(sb.user_id, s.user_id);
    CHECK(sb.expires_ms == s.expires_ms);
    CHECK_EQ_INT(fk.hits, 1);

    /* Logout on A: revoked in the shared cache; C (which never saw the
     * token) refuses it, and a late put (a check that read the store
     * before the logout) cannot bring it back. */
    char *tok2 = new_token(a, "shared_b");
    struct session s2 = {0};
    CHECK_EQ_INT(auth_check(a, tok2, &s2, &err), 0);
    CHECK_EQ_INT(auth_logout(a, &s2, &err), 0);
    CHECK(fk.revokes >= 1);
    CHECK(find(&fk, s2.token_hash) && find(&fk, s2.token_hash)->revoked);
    struct session sc = {0};
    CHECK_ERR(auth_check(c, tok2, &sc, &err), CHAT_E_UNAUTHORIZED, NULL);
    CHECK_EQ_INT(cache_session_put(sh, s2.token_hash, s2.user_id, s2.expires_ms, 1000, &err), 0);
    CHECK_ERR(auth_check(c, tok2, &sc, &err), CHAT_E_UNAUTHORIZED, NULL);

    /* An expired shared entry is not trusted: C asks the store, which
     * no longer has the first token either. */
    struct fake_entry *e = find(&fk, s.token_hash);
    CHECK(e != NULL);
    if (e)
        e->expires = clock_now_ms() - 1;
    CHECK_ERR(auth_check(c, tok, &sc, &err), CHAT_E_UNAUTHORIZED, NULL);

    /* Down: the store answers and nothing is shared. */
    fk.down = true;
    char *tok3 = new_token(a, "shared_c");
    int puts = fk.puts;
    CHECK_EQ_INT(auth_check(c, tok3, &sc, &err), 0);
    CHECK_EQ_INT(fk.puts, puts);
    struct session s3 = sc;
    CHECK_EQ_INT(auth_logout(c, &s3, &err), 0); /* revoke fails: logged, logout still ends it */
    CHECK_ERR(auth_check(b, tok3, &sb, &err), CHAT_E_UNAUTHORIZED, NULL);
    fk.down = false;

    free(tok);
    free(tok2);
    free(tok3);
    core_free(a);
    core_free(b);
    core_free(c);
}

static void test_cache_without_sessions(struct fx *fx)
{
    struct cache *m = NULL;
    struct chat_err err = {0};
    CHECK_EQ_INT(cache_mem_new(&m, &err), 0);
    struct core *a = instance(fx, m);
    char *tok = new_token(a, "memonly");
    struct session s = {0};
    CHECK_EQ_INT(auth_check(a, tok, &s, &err), 0);
    CHECK_EQ_INT(auth_logout(a, &s, &err), 0);
    CHECK_ERR(auth_check(a, tok, &s, &err), CHAT_E_UNAUTHORIZED, NULL);
    free(tok);
    core_free(a);
    cache_close(m);
}

int main(void)
{
    struct fx f;
    fx_open(&f);
    test_shared_level(&f);
    test_cache_without_sessions(&f);
    fx_close(&f);
    return check_done();
}
