/* test_caches.c - core's in-process caches: the session cache
 * (core/session_cache.c), the author cache (core/author_cache.c) and the
 * feed page cache (core/feed_cache.c).
 *
 * What must hold: a logout or a profile edit through this core shows at
 * once, also against lookups already in flight (the per-slot epoch); a
 * change made behind the core's back (another instance) shows within the
 * TTL, or at once through auth_forget_token / posts_feed_changed; expiry
 * is still checked on a cached session; a cached feed page is always the
 * page posts_list would build at that moment. */
#include <stdatomic.h>
#include <unistd.h>

#include "core/core_internal.h"
#include "fixture.h"

/* Registers `name` and returns its token in `tok` (and session in `s`). */
static void user_with_token(struct fx *f, const char *name, char tok[64], struct session *s)
{
    struct chat_err err = {0};
    json_t *out = NULL;
    json_t *body = json_pack("{s:s, s:s+, s:s}", "username", name, "email", name, "@example.com",
                             "password", "password123");
    CHECK_EQ_INT(auth_register(f->core, body, &out, &err), 0);
    snprintf(tok, 64, "%s", fx_str(out, "token"));
    json_decref(out);
    json_decref(body);
    CHECK_EQ_INT(auth_check(f->core, tok, s, &err), 0);
}

static void test_session_logout_is_immediate(struct fx *f)
{
    struct chat_err err = {0};
    struct session s, s2;
    char tok[64];
    user_with_token(f, "sc_logout", tok, &s);
    CHECK_EQ_INT(auth_check(f->core, tok, &s2, &err), 0); /* now served from the cache */
    CHECK_EQ_STR(s2.user_id, s.user_id);
    CHECK_EQ_INT(auth_logout(f->core, &s, &err), 0);
    CHECK_ERR(auth_check(f->core, tok, &s2, &err), CHAT_E_UNAUTHORIZED, NULL);
}

static void test_session_other_instance(struct fx *f)
{
    struct chat_err err = {0};
    struct session s, s2;
    char tok[64];
    user_with_token(f, "sc_remote", tok, &s);
    /* Another instance's logout deletes the row behind this core's back:
     * the cached answer holds until forgotten or stale. */
    CHECK_EQ_INT(store_delete_session(f->st, s.token_hash, &err), 0);
    CHECK_EQ_INT(auth_check(f->core, tok, &s2, &err), 0);
    auth_forget_token(f->core, s.token_hash);
    CHECK_ERR(auth_check(f->core, tok, &s2, &err), CHAT_E_UNAUTHORIZED, NULL);

    user_with_token(f, "sc_remote2", tok, &s);
    CHECK_EQ_INT(store_delete_session(f->st, s.token_hash, &err), 0);
    CHECK_EQ_INT(auth_check(f->core, tok, &s2, &err), 0);
    usleep((CORE_SCACHE_TTL_MS + 150) * 1000);
    CHECK_ERR(auth_check(f->core, tok, &s2, &err), CHAT_E_UNAUTHORIZED, NULL);
}

static void test_session_expiry_when_cached(void)
{
    struct fx f;
    struct chat_err err = {0};
    struct session s, s2;
    char tok[64];
    fx_open_ttl(&f, 1);
    user_with_token(&f, "sc_expiry", tok, &s); /* cached by the check */
    usleep(1100 * 1000);
    CHECK_ERR(auth_check(f.core, tok, &s2, &err), CHAT_E_UNAUTHORIZED, NULL);
    char uid[OID_SIZE];
    int64_t exp;
    CHECK_EQ_INT(store_get_session(f.st, s.token_hash, uid, &exp, &err), CHAT_E_NOT_FOUND);
    fx_close(&f);
}

/* The epoch: an answer read before a forget is never installed after it. */
static void test_session_epoch(void)
{
    struct slotcache table, *sc = &table;
    CHECK_EQ_INT(core__session_cache_init(sc), 0);
    uint8_t h[32];
    randombytes_buf(h, sizeof h);
    char uid[OID_SIZE];
    int64_t exp = 0;
    uint64_t e1, e2;
    CHECK(!core__session_cache_get(sc, h, uid, &exp, &e1));
    core__session_cache_forget(sc, h); /* a logout while the store was read */
    core__session_cache_put(sc, h, "0123456789abcdef01234567", 42, e1);
    CHECK(!core__session_cache_get(sc, h, uid, &exp, &e2));
    core__session_cache_put(sc, h, "0123456789abcdef01234567", 42, e2);
    CHECK(core__session_cache_get(sc, h, uid, &exp, &e2));
    CHECK_EQ_STR(uid, "0123456789abcdef01234567");
    CHECK_EQ_INT(exp, 42);
    slotcache_cleanup(sc);
}

/* Checks racing a logout: a check that starts after auth_logout returned
 * must be refused, whatever the other threads' checks cached meanwhile. */
struct race {
    struct core *core;
    const char *tok;
    atomic_bool logged_out;
    atomic_bool stop;
    atomic_int late_accepts;
};

static void *race_checker(void *arg)
{
    struct race *r = arg;
    while (!atomic_load(&r->stop)) {
        bool after = atomic_load(&r->logged_out);
        struct session s;
        struct chat_err err = {0};
        int rc = auth_check(r->core, r->tok, &s, &err);
        if (after && rc == 0)
            atomic_fetch_add(&r->late_accepts, 1);
    }
    return NULL;
}

static void test_session_logout_race(struct fx *f)
{
    struct session s;
    char tok[64];
    struct chat_err err = {0};
    for (int round = 0; round < 20; round++) {
        char name[32];
        snprintf(name, sizeof name, "sc_race%d", round);
        user_with_token(f, name, tok, &s);
        struct race r = {.core = f->core, .tok = tok};
        pthread_t th[4];
        for (int i = 0; i < 4; i++)
            pthread_create(&th[i], NULL, race_checker, &r);
        usleep(2000);
        CHECK_EQ_INT(auth_logout(f->core, &s, &err), 0);
        atomic_store(&r.logged_out, true);
        usleep(5000);
        atomic_store(&r.stop, true);
        for (int i = 0; i < 4; i++)
            pthread_join(th[i], NULL);
        CHECK_EQ_INT(atomic_load(&r.late_accepts), 0);
    }
}

/* The Author embedded in a post of `s`'s first feed page. */
static const char *first_author_name(struct fx *f, const struct session *s, json_t **page)
{
    struct chat_err err = {0};
    struct page_params pp = {0};
    *page = NULL;
    if (posts_list(f->core, s, NULL, &pp, page, &err) != 0)
        return NULL;
    json_t *item = json_array_get(json_object_get(*page, "items"), 0);
    return fx_str(json_object_get(item, "author"), "displayName");
}

static void test_author_edit_is_immediate(struct fx *f)
{
    struct chat_err err = {0};
    struct session a;
    json_t *out = NULL, *page = NULL;
    fx_user(f, "ac_edit", &a);
    json_t *body = fx_json("{\"text\":\"hello\"}");
    CHECK_EQ_INT(posts_create(f->core, &a, body, &out, &err), 0);
    CHECK_EQ_STR(fx_str(json_object_get(out, "author"), "displayName"), "ac_edit");
    json_decref(out);
    json_decref(body);
    CHECK_EQ_STR(first_author_name(f, &a, &page), "ac_edit"); /* cached now */
    json_decref(page);

    body = fx_json("{\"displayName\":\"Renamed\",\"avatarUrl\":\"https://cdn.example.com/r.png\"}");
    CHECK_EQ_INT(users_update_me(f->core, &a, body, &out, &err), 0);
    json_decref(out);
    json_decref(body);
    CHECK_EQ_STR(first_author_name(f, &a, &page), "Renamed");
    json_t *item = json_array_get(json_object_get(page, "items"), 0);
    CHECK_EQ_STR(fx_str(json_object_get(item, "author"), "avatarUrl"),
                 "https://cdn.example.com/r.png");
    json_decref(page);

    /* A message send embeds the new name too. */
    struct session b;
    fx_user(f, "ac_edit_b", &b);
    body = json_pack("{s:[s]}", "memberIds", b.user_id);
    bool created = false;
    CHECK_EQ_INT(chats_create(f->core, &a, body, &out, &created, &err), 0);
    json_decref(body);
    char chat_id[OID_SIZE];
    snprintf(chat_id, sizeof chat_id, "%s", fx_str(out, "id"));
    json_decref(out);
    body = fx_json("{\"text\":\"hi\"}");
    CHECK_EQ_INT(messages_send(f->core, &a, chat_id, body, &out, &created, &err), 0);
    CHECK_EQ_STR(fx_str(json_object_get(out, "sender"), "displayName"), "Renamed");
    json_decref(out);
    json_decref(body);
}

static void test_author_epoch(void)
{
    struct slotcache table, *ac = &table;
    CHECK_EQ_INT(core__author_cache_init(ac, false), 0);
    struct user u = {.id = "0123456789abcdef01234567", .username = "old", .display_name = "Old"};
    uint64_t e1, e2;
    CHECK(core__author_cache_get(ac, u.id, &e1) == NULL);
    core__author_cache_forget(ac, u.id); /* an edit while the store was read */
    core__author_cache_put(ac, &u, e1);
    CHECK(core__author_cache_get(ac, u.id, &e2) == NULL);
    core__author_cache_put(ac, &u, e2);
    json_t *a = core__author_cache_get(ac, u.id, &e2);
    CHECK_EQ_STR(fx_str(a, "displayName"), "Old");
    CHECK(json_is_null(json_object_get(a, "avatarUrl")));
    CHECK_EQ_INT(json_object_size(a), 4);
    json_decref(a);
    core__author_cache_forget(ac, u.id);
    CHECK(core__author_cache_get(ac, u.id, &e2) == NULL);
    slotcache_cleanup(ac);
}

/* posts_list_text must always equal what posts_list would build now. */
static void check_feed_fresh(struct fx *f, const struct session *s, const char *limit,
                             const char *what)
{
    struct chat_err err = {0};
    struct page_params pp = {.limit = limit};
    json_t *page = NULL;
    char *text = NULL;
    size_t len = 0;
    CHECK_EQ_INT(posts_list_text(f->core, s, NULL, &pp, &text, &len, &err), 0);
    CHECK_EQ_INT(posts_list(f->core, s, NULL, &pp, &page, &err), 0);
    char *want = json_dumps(page, JSON_COMPACT);
    bool same = text && want && strlen(want) == len && strcmp(text, want) == 0;
    if (!same)
        fprintf(stderr, "%s: cached feed differs:\n got %s\nwant %s\n", what, text ? text : "(null)",
                want ? want : "(null)");
    CHECK(same);
    free(want);
    free(text);
    json_decref(page);
}

/* The i-th item of `s`'s feed page (text parsed back), or NULL. */
static json_t *feed_item(struct fx *f, const struct session *s, size_t i, json_t **page)
{
    struct chat_err err = {0};
    struct page_params pp = {0};
    char *text = NULL;
    size_t len = 0;
    *page = NULL;
    if (posts_list_text(f->core, s, NULL, &pp, &text, &len, &err) != 0)
        return NULL;
    *page = json_loadb(text, len, 0, NULL);
    free(text);
    return json_array_get(json_object_get(*page, "items"), i);
}

static void test_feed_cache_follows_writes(void)
{
    struct fx f;
    struct chat_err err = {0};
    struct session a, b;
    json_t *out = NULL, *page = NULL, *body;
    fx_open(&f);
    fx_user(&f, "fc_a", &a);
    fx_user(&f, "fc_b", &b);
    check_feed_fresh(&f, &a, NULL, "empty");
    check_feed_fresh(&f, &a, NULL, "empty, cached");

    body = fx_json("{\"text\":\"first\"}");
    CHECK_EQ_INT(posts_create(f.core, &a, body, &out, &err), 0);
    char post_id[OID_SIZE];
    snprintf(post_id, sizeof post_id, "%s", fx_str(out, "id"));
    json_decref(out);
    json_decref(body);
    check_feed_fresh(&f, &a, NULL, "after create");
    check_feed_fresh(&f, &b, NULL, "after create, other viewer");
    check_feed_fresh(&f, &a, "1", "limit 1");

    /* A like shows at once, as likedByMe only to the liker. */
    CHECK_EQ_INT(posts_like(f.core, &b, post_id, true, &out, &err), 0);
    json_decref(out);
    json_t *it = feed_item(&f, &b, 0, &page);
    CHECK_EQ_INT(json_integer_value(json_object_get(it, "likeCount")), 1);
    CHECK(json_is_true(json_object_get(it, "likedByMe")));
    json_decref(page);
    it = feed_item(&f, &a, 0, &page);
    CHECK_EQ_INT(json_integer_value(json_object_get(it, "likeCount")), 1);
    CHECK(json_is_false(json_object_get(it, "likedByMe")));
    json_decref(page);
    CHECK_EQ_INT(posts_like(f.core, &b, post_id, false, &out, &err), 0);
    json_decref(out);
    check_feed_fresh(&f, &b, NULL, "after unlike");

    body = fx_json("{\"text\":\"a comment\"}");
    CHECK_EQ_INT(comments_create(f.core, &b, post_id, body, &out, &err), 0);
    json_decref(out);
    json_decref(body);
    it = feed_item(&f, &a, 0, &page);
    CHECK_EQ_INT(json_integer_value(json_object_get(it, "commentCount")), 1);
    json_decref(page);

    body = fx_json("{\"displayName\":\"Author A\"}");
    CHECK_EQ_INT(users_update_me(f.core, &a, body, &out, &err), 0);
    json_decref(out);
    json_decref(body);
    it = feed_item(&f, &b, 0, &page);
    CHECK_EQ_STR(fx_str(json_object_get(it, "author"), "displayName"), "Author A");
    json_decref(page);

    CHECK_EQ_INT(posts_delete(f.core, &a, post_id, &err), 0);
    it = feed_item(&f, &b, 0, &page);
    CHECK(it == NULL);
    json_decref(page);
    check_feed_fresh(&f, &a, NULL, "after delete");

    /* Bad parameters are refused whatever is cached. */
    struct page_params bad = {.limit = "0"};
    char *text = NULL;
    size_t len = 0;
    CHECK_ERR(posts_list_text(f.core, &a, NULL, &bad, &text, &len, &err), CHAT_E_VALIDATION,
              "limit");
    CHECK(text == NULL);
    bad.limit = NULL;
    bad.before = "not-a-cursor";
    CHECK_ERR(posts_list_text(f.core, &a, NULL, &bad, &text, &len, &err), CHAT_E_VALIDATION,
              "before");
    CHECK_ERR(posts_list_text(f.core, &a, "nope", &(struct page_params){0}, &text, &len, &err),
              CHAT_E_VALIDATION, "author");

    /* Another instance's post (written behind this core's back) shows
     * within the TTL, or at once through posts_feed_changed. */
    check_feed_fresh(&f, &a, NULL, "before remote write");
    struct post p = {.text = "remote", .created_at = 1795862362123};
    oid_new(p.id, p.created_at);
    memcpy(p.author_id, b.user_id, OID_SIZE);
    CHECK_EQ_INT(store_create_post(f.st, &p, &err), 0);
    it = feed_item(&f, &a, 0, &page);
    /* Normally still the cached, empty page; a scheduler pause past the
     * TTL would legitimately show the post already. */
    CHECK(it == NULL || strcmp(fx_str(it, "text"), "remote") == 0);
    json_decref(page);
    posts_feed_changed(f.core);
    it = feed_item(&f, &a, 0, &page);
    CHECK_EQ_STR(fx_str(it, "text"), "remote");
    json_decref(page);
    fx_close(&f);
}

int main(void)
{
    struct fx f;
    fx_open(&f);
    test_session_logout_is_immediate(&f);
    test_session_other_instance(&f);
    test_session_logout_race(&f);
    test_author_edit_is_immediate(&f);
    fx_close(&f);
    test_session_expiry_when_cached();
    test_session_epoch();
    test_author_epoch();
    test_feed_cache_follows_writes();
    return check_done();
}
