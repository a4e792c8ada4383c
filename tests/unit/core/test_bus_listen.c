/* test_bus_listen.c - core/bus_listen.c and the invalidations core
 * publishes for other instances (core/common.c, author_cache.c, members.c,
 * feed_cache.c).
 *
 * Another instance is simulated the way it looks from here: it changes the
 * store behind this core's back, then its event arrives through the
 * listener core_bus_listener() gives main.  What must hold: a revocation
 * drops the cached session, an Author invalidation the cached Author (and
 * the feed pages embedding it), a member invalidation the cached member
 * list, a feed invalidation every cached feed page, and a bus gap all of
 * them (sessions, Authors, member lists, feed pages) - each at once, well
 * before the caches' TTL.  And the other direction: a post, a
 * profile edit and a membership change publish the matching BUS_INVALIDATE
 * events (captured by a small recording bus, since bus_local has no other
 * instance and drops them). */
#include "core/core_internal.h"
#include "fixture.h"

static struct bus_listener listener(struct fx *f)
{
    struct bus_listener l;
    core_bus_listener(f->core, &l);
    return l;
}

static void remote_event(struct fx *f, const struct bus_event *ev)
{
    struct bus_listener l = listener(f);
    l.on_event(l.arg, ev);
}

static void test_revocation_drops_session(struct fx *f)
{
    struct chat_err err = {0};
    struct session s, s2;
    char tok[64];
    json_t *out = NULL;
    json_t *body = fx_json("{\"username\":\"bl_rev\",\"email\":\"bl_rev@example.com\","
                           "\"password\":\"password123\"}");
    CHECK_EQ_INT(auth_register(f->core, body, &out, &err), 0);
    snprintf(tok, sizeof tok, "%s", fx_str(out, "token"));
    json_decref(out);
    json_decref(body);
    CHECK_EQ_INT(auth_check(f->core, tok, &s, &err), 0); /* cached now */
    /* Another instance's logout: the row goes, then its event arrives. */
    CHECK_EQ_INT(store_delete_session(f->st, s.token_hash, &err), 0);
    CHECK_EQ_INT(auth_check(f->core, tok, &s2, &err), 0);
    const char users[1][OID_SIZE] = {{0}};
    struct bus_event ev = {.scope = BUS_TO_USERS, .user_ids = users, .n_users = 0,
                           .revoked_token = s.token_hash, .origin = "0123456789abcdef"};
    remote_event(f, &ev);
    CHECK_ERR(auth_check(f->core, tok, &s2, &err), CHAT_E_UNAUTHORIZED, NULL);
}

static const char *first_author(struct fx *f, const struct session *s)
{
    static char name[64];
    struct page_params pp = {0};
    json_t *page = NULL;
    struct chat_err err = {0};
    name[0] = '\0';
    CHECK_EQ_INT(posts_list(f->core, s, NULL, &pp, &page, &err), 0);
    json_t *item = json_array_get(json_object_get(page, "items"), 0);
    snprintf(name, sizeof name, "%s", fx_str(json_object_get(item, "author"), "displayName"));
    json_decref(page);
    return name;
}

static void test_author_invalidation(struct fx *f)
{
    struct chat_err err = {0};
    struct session a;
    json_t *out = NULL;
    fx_user(f, "bl_author", &a);
    json_t *body = fx_json("{\"text\":\"hello\"}");
    CHECK_EQ_INT(posts_create(f->core, &a, body, &out, &err), 0);
    json_decref(out);
    json_decref(body);
    CHECK_EQ_STR(first_author(f, &a), "bl_author"); /* the Author is cached */
    /* Another instance edits the profile. */
    struct user u = {0};
    CHECK_EQ_INT(store_get_user(f->st, a.user_id, &u, &err), 0);
    free(u.display_name);
    u.display_name = strdup("Elsewhere");
    CHECK_EQ_INT(store_update_user(f->st, &u, &err), 0);
    store_user_cleanup(&u);
    CHECK_EQ_STR(first_author(f, &a), "bl_author"); /* still cached */
    struct bus_event ev = {.kind = BUS_INVALIDATE, .inval = BUS_INV_AUTHOR,
                           .inval_key = a.user_id, .origin = "0123456789abcdef"};
    remote_event(f, &ev);
    CHECK_EQ_STR(first_author(f, &a), "Elsewhere");
}

static size_t members(struct fx *f, const char *chat_id, const char *member)
{
    char(*ids)[OID_SIZE] = NULL;
    size_t n = 0;
    struct chat_err err = {0};
    CHECK_EQ_INT(core__chat_members(f->core, chat_id, member, &ids, &n, &err), 0);
    free(ids);
    return n;
}

/* A group chat `name` of `a` and `b`, created through core; its id in chat_id. */
static void make_group(struct fx *f, const struct session *a, const struct session *b,
                       const char *name, char chat_id[OID_SIZE])
{
    struct chat_err err = {0};
    json_t *out = NULL;
    json_t *body = json_pack("{s:[s], s:s}", "memberIds", b->user_id, "name", name);
    bool created = false;
    CHECK_EQ_INT(chats_create(f->core, a, body, &out, &created, &err), 0);
    json_decref(body);
    snprintf(chat_id, OID_SIZE, "%s", fx_str(out, "id"));
    json_decref(out);
}

static void test_member_invalidation(struct fx *f)
{
    struct chat_err err = {0};
    struct session a, b, c;
    fx_user(f, "bl_m_a", &a);
    fx_user(f, "bl_m_b", &b);
    fx_user(f, "bl_m_c", &c);
    char chat_id[OID_SIZE];
    make_group(f, &a, &b, "group", chat_id);
    CHECK_EQ_INT(members(f, chat_id, a.user_id), 2); /* cached */
    bool added = false;
    CHECK_EQ_INT(store_add_member(f->st, chat_id, c.user_id, &added, &err), 0); /* elsewhere */
    CHECK(added);
    CHECK_EQ_INT(members(f, chat_id, a.user_id), 2);
    struct bus_event ev = {.kind = BUS_INVALIDATE, .inval = BUS_INV_MEMBERS,
                           .inval_key = chat_id, .origin = "0123456789abcdef"};
    remote_event(f, &ev);
    CHECK_EQ_INT(members(f, chat_id, a.user_id), 3);
}

/* A gap (events may have been lost) forgets every cached session, Author
 * and member list, not only the feed: three changes made "elsewhere" whose
 * events never arrive are all seen after it. */
static void test_gap_forgets_all(struct fx *f)
{
    struct chat_err err = {0};
    struct session a, b, c, s2;
    json_t *out = NULL;
    fx_user(f, "bl_g_a", &a);
    fx_user(f, "bl_g_b", &b);
    fx_user(f, "bl_g_c", &c);
    char chat_id[OID_SIZE];
    make_group(f, &a, &b, "gap group", chat_id);
    json_t *body = fx_json("{\"text\":\"gap post\"}");
    CHECK_EQ_INT(posts_create(f->core, &a, body, &out, &err), 0);
    json_decref(out);
    json_decref(body);
    char tok[64];
    body = fx_json("{\"username\":\"bl_g_tok\",\"email\":\"bl_g_tok@example.com\","
                   "\"password\":\"password123\"}");
    CHECK_EQ_INT(auth_register(f->core, body, &out, &err), 0);
    snprintf(tok, sizeof tok, "%s", fx_str(out, "token"));
    json_decref(out);
    json_decref(body);

    /* Cache all three. */
    CHECK_EQ_INT(members(f, chat_id, a.user_id), 2);
    CHECK_EQ_STR(first_author(f, &a), "bl_g_a");
    CHECK_EQ_INT(auth_check(f->core, tok, &s2, &err), 0);
    /* Elsewhere: a member joins, a's profile changes, the token is revoked;
     * none of their events arrive. */
    bool added = false;
    CHECK_EQ_INT(store_add_member(f->st, chat_id, c.user_id, &added, &err), 0);
    struct user u = {0};
    CHECK_EQ_INT(store_get_user(f->st, a.user_id, &u, &err), 0);
    free(u.display_name);
    u.display_name = strdup("GapName");
    CHECK_EQ_INT(store_update_user(f->st, &u, &err), 0);
    store_user_cleanup(&u);
    CHECK_EQ_INT(store_delete_session(f->st, s2.token_hash, &err), 0);
    CHECK_EQ_INT(members(f, chat_id, a.user_id), 2); /* still cached */
    CHECK_EQ_INT(auth_check(f->core, tok, &s2, &err), 0);

    struct bus_listener l = listener(f);
    l.on_gap(l.arg);
    CHECK_EQ_INT(members(f, chat_id, a.user_id), 3);
    CHECK_EQ_STR(first_author(f, &a), "GapName");
    CHECK_ERR(auth_check(f->core, tok, &s2, &err), CHAT_E_UNAUTHORIZED, NULL);
}

/* The first page's text, from posts_list_text (the cached path). */
static char *feed_text(struct fx *f, const struct session *s)
{
    struct page_params pp = {0};
    char *text = NULL;
    size_t len = 0;
    struct chat_err err = {0};
    CHECK_EQ_INT(posts_list_text(f->core, s, NULL, &pp, &text, &len, &err), 0);
    return text;
}

static void test_feed_invalidation_and_gap(struct fx *f)
{
    struct chat_err err = {0};
    struct session a;
    json_t *out = NULL;
    fx_user(f, "bl_feed", &a);
    /* A second core on the same store plays the other instance. */
    struct core *other = NULL;
    struct core_config cfg = {.token_ttl_s = 3600, .pwhash_opslimit = 1,
                              .pwhash_memlimit = 8192, .pwhash_concurrency = 1};
    CHECK_EQ_INT(core_new(&cfg, f->st, NULL, &other, &err), 0);
    for (int round = 0; round < 2; round++) {
        char *before = feed_text(f, &a);
        json_t *body = json_pack("{s:s}", "text", round ? "after gap" : "after inval");
        CHECK_EQ_INT(posts_create(other, &a, body, &out, &err), 0);
        json_decref(out);
        json_decref(body);
        char *cached = feed_text(f, &a);
        CHECK_EQ_STR(cached, before); /* this core has not been told */
        struct bus_listener l = listener(f);
        if (round == 0) {
            struct bus_event ev = {.kind = BUS_INVALIDATE, .inval = BUS_INV_FEED,
                                   .origin = "0123456789abcdef"};
            l.on_event(l.arg, &ev);
        } else {
            l.on_gap(l.arg);
        }
        char *fresh = feed_text(f, &a);
        CHECK(strstr(fresh, round ? "after gap" : "after inval") != NULL);
        free(before);
        free(cached);
        free(fresh);
    }
    core_free(other);
}

/* ---- what core publishes ---- */

struct rec_bus {
    struct bus base;
    int feed, author, members;
    char author_key[OID_SIZE], members_key[OID_SIZE];
};

static void rec_close(struct bus *b) { (void)b; }
static void rec_subscribe(struct bus *b, bus_deliver_cb cb, void *arg)
{
    (void)b;
    (void)cb;
    (void)arg;
}

static int rec_publish(struct bus *b, const struct bus_event *ev, struct chat_err *err)
{
    struct rec_bus *r = (struct rec_bus *)b;
    if (ev->kind != BUS_INVALIDATE)
        return 0;
    if (ev->inval == BUS_INV_FEED)
        r->feed++;
    if (ev->inval == BUS_INV_AUTHOR) {
        r->author++;
        snprintf(r->author_key, sizeof r->author_key, "%s", ev->inval_key);
    }
    if (ev->inval == BUS_INV_MEMBERS) {
        r->members++;
        snprintf(r->members_key, sizeof r->members_key, "%s", ev->inval_key);
    }
    return 0;
}

static const struct bus_ops rec_ops = {
    .close = rec_close, .publish = rec_publish, .subscribe = rec_subscribe,
};

static void test_core_publishes_invalidations(struct fx *f)
{
    struct chat_err err = {0};
    struct rec_bus rb = {.base = {.ops = &rec_ops, .name = "rec"}};
    struct core *c = NULL;
    struct core_config cfg = {.token_ttl_s = 3600, .pwhash_opslimit = 1,
                              .pwhash_memlimit = 8192, .pwhash_concurrency = 1};
    CHECK_EQ_INT(core_new(&cfg, f->st, &rb.base, &c, &err), 0);
    struct session a, b;
    fx_user(f, "bl_pub_a", &a);
    fx_user(f, "bl_pub_b", &b);
    json_t *out = NULL, *body = fx_json("{\"text\":\"p\"}");
    CHECK_EQ_INT(posts_create(c, &a, body, &out, &err), 0);
    json_decref(out);
    json_decref(body);
    CHECK_EQ_INT(rb.feed, 1);
    body = fx_json("{\"displayName\":\"New Name\"}");
    CHECK_EQ_INT(users_update_me(c, &a, body, &out, &err), 0);
    json_decref(out);
    json_decref(body);
    CHECK_EQ_INT(rb.author, 1);
    CHECK_EQ_STR(rb.author_key, a.user_id);
    CHECK_EQ_INT(rb.feed, 2); /* pages embed the Author */
    body = json_pack("{s:[s], s:s}", "memberIds", b.user_id, "name", "g");
    bool created = false;
    CHECK_EQ_INT(chats_create(c, &a, body, &out, &created, &err), 0);
    json_decref(body);
    char chat_id[OID_SIZE];
    snprintf(chat_id, sizeof chat_id, "%s", fx_str(out, "id"));
    json_decref(out);
    int before = rb.members;
    struct session d;
    fx_user(f, "bl_pub_d", &d);
    body = json_pack("{s:s}", "userId", d.user_id);
    CHECK_EQ_INT(chats_add_member(c, &a, chat_id, body, &out, &err), 0);
    json_decref(body);
    json_decref(out);
    CHECK_EQ_INT(rb.members, before + 1);
    CHECK_EQ_STR(rb.members_key, chat_id);
    core_free(c);
}

int main(void)
{
    struct fx f;
    fx_open(&f);
    test_revocation_drops_session(&f);
    test_author_invalidation(&f);
    test_member_invalidation(&f);
    test_feed_invalidation_and_gap(&f);
    test_gap_forgets_all(&f);
    test_core_publishes_invalidations(&f);
    fx_close(&f);
    return check_done();
}
