/* test_users.c - core/users.c: me, profile updates and their validation,
 * public user views, prefix search with opaque-cursor paging, and contacts
 * (the users sharing a chat with the caller, capped at USERS_CONTACTS_MAX). */
#include "fixture.h"

static void test_me_and_get(struct fx *f)
{
    struct chat_err err = {0};
    struct session a, b;
    json_t *out = NULL;
    fx_user(f, "Hanna", &a);
    fx_user(f, "ivan", &b);

    CHECK_EQ_INT(users_me(f->core, &a, &out, &err), 0);
    CHECK_EQ_STR(fx_str(out, "id"), a.user_id);
    CHECK_EQ_STR(fx_str(out, "email"), "hanna@example.com");
    CHECK_EQ_STR(fx_str(out, "username"), "Hanna");
    json_decref(out);

    /* The public view has no email, even of oneself. */
    CHECK_EQ_INT(users_get(f->core, &a, b.user_id, &out, &err), 0);
    CHECK_EQ_STR(fx_str(out, "username"), "ivan");
    CHECK(json_object_get(out, "email") == NULL);
    CHECK_EQ_INT(json_object_size(out), 6);
    json_decref(out);
    CHECK_EQ_INT(users_get(f->core, &a, a.user_id, &out, &err), 0);
    CHECK(json_object_get(out, "email") == NULL);
    json_decref(out);

    CHECK_ERR(users_get(f->core, &a, "nope", &out, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(users_get(f->core, &a, "6929B0DA0123456789ABCDEF", &out, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(users_get(f->core, &a, NULL, &out, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(users_get(f->core, &a, "6929b0da0123456789abcdef", &out, &err), CHAT_E_NOT_FOUND, NULL);
}

static void test_update(struct fx *f)
{
    struct chat_err err = {0};
    struct session s;
    json_t *out = NULL, *body;
    fx_user(f, "jack", &s);

    body = fx_json("{\"displayName\":\"  Jack J. \",\"bio\":\"  hello\\n \",\"avatarUrl\":\" https://cdn.example.com/j.png \"}");
    CHECK_EQ_INT(users_update_me(f->core, &s, body, &out, &err), 0);
    CHECK_EQ_STR(fx_str(out, "displayName"), "Jack J.");
    CHECK_EQ_STR(fx_str(out, "bio"), "hello");
    CHECK_EQ_STR(fx_str(out, "avatarUrl"), "https://cdn.example.com/j.png");
    CHECK_EQ_STR(fx_str(out, "email"), "jack@example.com");
    json_decref(out);
    json_decref(body);
    /* Persisted. */
    CHECK_EQ_INT(users_me(f->core, &s, &out, &err), 0);
    CHECK_EQ_STR(fx_str(out, "displayName"), "Jack J.");
    CHECK_EQ_STR(fx_str(out, "bio"), "hello");
    json_decref(out);

    /* Only the fields present change; null clears avatar and bio. */
    body = fx_json("{\"avatarUrl\":null}");
    CHECK_EQ_INT(users_update_me(f->core, &s, body, &out, &err), 0);
    CHECK(json_is_null(json_object_get(out, "avatarUrl")));
    CHECK_EQ_STR(fx_str(out, "displayName"), "Jack J.");
    CHECK_EQ_STR(fx_str(out, "bio"), "hello");
    json_decref(out);
    json_decref(body);
    body = fx_json("{\"bio\":null}");
    CHECK_EQ_INT(users_update_me(f->core, &s, body, &out, &err), 0);
    CHECK_EQ_STR(fx_str(out, "bio"), "");
    json_decref(out);
    json_decref(body);
    body = fx_json("{\"bio\":\"   \"}");
    CHECK_EQ_INT(users_update_me(f->core, &s, body, &out, &err), 0);
    CHECK_EQ_STR(fx_str(out, "bio"), "");
    json_decref(out);
    json_decref(body);
    body = fx_json("{}");
    CHECK_EQ_INT(users_update_me(f->core, &s, body, &out, &err), 0);
    CHECK_EQ_STR(fx_str(out, "displayName"), "Jack J.");
    json_decref(out);
    json_decref(body);

    /* bio: 500 code points fine, 501 not. */
    char bio[2 * 501 + 1] = "";
    for (int i = 0; i < 500; i++)
        strcat(bio, "\xC3\xA9");
    body = json_pack("{s:s}", "bio", bio);
    CHECK_EQ_INT(users_update_me(f->core, &s, body, &out, &err), 0);
    json_decref(out);
    json_decref(body);
    strcat(bio, "x");
    body = json_pack("{s:s}", "bio", bio);
    CHECK_ERR(users_update_me(f->core, &s, body, &out, &err), CHAT_E_VALIDATION, "bio");
    json_decref(body);

    struct {
        const char *json;
        int code;
        const char *field;
    } cases[] = {
        {"[]", CHAT_E_INVALID_JSON, NULL},
        {"{\"displayName\":null}", CHAT_E_VALIDATION, "displayName"},
        {"{\"displayName\":\"\"}", CHAT_E_VALIDATION, "displayName"},
        {"{\"displayName\":\" \\u3000 \"}", CHAT_E_VALIDATION, "displayName"},
        {"{\"displayName\":1}", CHAT_E_VALIDATION, "displayName"},
        {"{\"bio\":false}", CHAT_E_VALIDATION, "bio"},
        {"{\"avatarUrl\":\"ftp://x.com/a\"}", CHAT_E_VALIDATION, "avatarUrl"},
        {"{\"avatarUrl\":\"not a url\"}", CHAT_E_VALIDATION, "avatarUrl"},
        {"{\"avatarUrl\":{}}", CHAT_E_VALIDATION, "avatarUrl"},
        {"{\"avatarUrl\":\"javascript:alert(1)\"}", CHAT_E_VALIDATION, "avatarUrl"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        body = fx_json(cases[i].json);
        out = (json_t *)1;
        CHECK_ERR(users_update_me(f->core, &s, body, &out, &err), cases[i].code, cases[i].field);
        CHECK(out == NULL);
        json_decref(body);
    }
    /* A failed update changed nothing. */
    CHECK_EQ_INT(users_me(f->core, &s, &out, &err), 0);
    CHECK_EQ_STR(fx_str(out, "displayName"), "Jack J.");
    json_decref(out);

    /* 2048-byte URL fine, 2049 not. */
    char url[2100] = "https://e.com/";
    memset(url + 14, 'a', 2048 - 14);
    url[2048] = '\0';
    body = json_pack("{s:s}", "avatarUrl", url);
    CHECK_EQ_INT(users_update_me(f->core, &s, body, &out, &err), 0);
    json_decref(out);
    json_decref(body);
    strcat(url, "a");
    body = json_pack("{s:s}", "avatarUrl", url);
    CHECK_ERR(users_update_me(f->core, &s, body, &out, &err), CHAT_E_VALIDATION, "avatarUrl");
    json_decref(body);
}

static void test_search(struct fx *f)
{
    struct chat_err err = {0};
    struct session s, tmp;
    json_t *out = NULL;
    fx_user(f, "searcher", &s);
    /* zed_00 .. zed_24, registered out of order and in mixed case. */
    char name[16];
    for (int i = 24; i >= 0; i--) {
        snprintf(name, sizeof name, i % 2 ? "Zed_%02d" : "zed_%02d", i);
        fx_user(f, name, &tmp);
    }
    fx_user(f, "zebra", &tmp);

    struct page_params pp = {.limit = "10"};
    CHECK_EQ_INT(users_search(f->core, &s, "ZED_", &pp, &out, &err), 0);
    json_t *items = json_object_get(out, "items");
    CHECK_EQ_INT(json_array_size(items), 10);
    CHECK_EQ_STR(fx_str(json_array_get(items, 0), "username"), "zed_00");
    CHECK_EQ_STR(fx_str(json_array_get(items, 1), "username"), "Zed_01");
    CHECK(json_object_get(json_array_get(items, 0), "email") == NULL);
    const char *next = fx_str(out, "nextCursor");
    CHECK(next != NULL);

    /* Page through: 25 results, no repeats, no gaps, no empty last page. */
    int seen = 10, pages = 1;
    char cur[128];
    while (next) {
        snprintf(cur, sizeof cur, "%s", next);
        json_decref(out);
        pp.before = cur;
        CHECK_EQ_INT(users_search(f->core, &s, "zed", &pp, &out, &err), 0);
        items = json_object_get(out, "items");
        CHECK(json_array_size(items) > 0);
        snprintf(name, sizeof name, "zed_%02d", seen);
        const char *first = fx_str(json_array_get(items, 0), "username");
        CHECK(first && strcasecmp(first, name) == 0);
        seen += (int)json_array_size(items);
        pages++;
        next = fx_str(out, "nextCursor");
    }
    CHECK_EQ_INT(seen, 25);
    CHECK_EQ_INT(pages, 3);
    json_decref(out);

    /* Exactly a full page with nothing after: no cursor. */
    pp.before = NULL;
    pp.limit = "25";
    CHECK_EQ_INT(users_search(f->core, &s, "zed_", &pp, &out, &err), 0);
    CHECK_EQ_INT(json_array_size(json_object_get(out, "items")), 25);
    CHECK(json_is_null(json_object_get(out, "nextCursor")));
    json_decref(out);

    /* No match, and characters no username has. */
    pp.limit = NULL;
    CHECK_EQ_INT(users_search(f->core, &s, "zz", &pp, &out, &err), 0);
    CHECK_EQ_INT(json_array_size(json_object_get(out, "items")), 0);
    CHECK(json_is_null(json_object_get(out, "nextCursor")));
    json_decref(out);
    const char *odd[] = {"%", "z%", "_%", "z e", "\xC3\xA9", "'; --"};
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
        CHECK_EQ_INT(users_search(f->core, &s, odd[i], &pp, &out, &err), 0);
        CHECK_EQ_INT(json_array_size(json_object_get(out, "items")), 0);
        json_decref(out);
    }
    /* '_' is a literal, not a wildcard. */
    CHECK_EQ_INT(users_search(f->core, &s, "ze_", &pp, &out, &err), 0);
    CHECK_EQ_INT(json_array_size(json_object_get(out, "items")), 0);
    json_decref(out);

    /* q bounds. */
    CHECK_ERR(users_search(f->core, &s, NULL, &pp, &out, &err), CHAT_E_VALIDATION, "q");
    CHECK_ERR(users_search(f->core, &s, "", &pp, &out, &err), CHAT_E_VALIDATION, "q");
    CHECK_ERR(users_search(f->core, &s, "abcdefghijklmnopqrstuvwxyz0123456", &pp, &out, &err),
              CHAT_E_VALIDATION, "q");
    CHECK_EQ_INT(users_search(f->core, &s, "abcdefghijklmnopqrstuvwxyz012345", &pp, &out, &err), 0);
    json_decref(out);
    /* Limit and cursor errors. */
    pp.limit = "0";
    CHECK_ERR(users_search(f->core, &s, "zed", &pp, &out, &err), CHAT_E_VALIDATION, "limit");
    pp.limit = "101";
    CHECK_ERR(users_search(f->core, &s, "zed", &pp, &out, &err), CHAT_E_VALIDATION, "limit");
    pp.limit = NULL;
    pp.before = "garbage";
    CHECK_ERR(users_search(f->core, &s, "zed", &pp, &out, &err), CHAT_E_VALIDATION, "before");
}

static bool has(const char (*ids)[OID_SIZE], size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return true;
    return false;
}

static void test_contacts(struct fx *f)
{
    struct chat_err err = {0};
    struct session a, b, c, d, e;
    json_t *out = NULL, *body;
    bool created;
    char (*ids)[OID_SIZE] = NULL;
    size_t n = 0;
    fx_user(f, "kai", &a);
    fx_user(f, "lea", &b);
    fx_user(f, "max", &c);
    fx_user(f, "nia", &d);
    fx_user(f, "oto", &e);

    /* Nobody yet: no contacts, no array. */
    CHECK_EQ_INT(users_contacts(f->core, &a, &ids, &n, &err), 0);
    CHECK_EQ_INT(n, 0);
    CHECK(ids == NULL);

    /* lea in two chats with kai counts once; kai is not his own contact. */
    body = json_pack("{s:[s]}", "memberIds", b.user_id);
    CHECK_EQ_INT(chats_create(f->core, &a, body, &out, &created, &err), 0);
    json_decref(out);
    json_decref(body);
    body = json_pack("{s:[s,s,s], s:s}", "memberIds", b.user_id, c.user_id, d.user_id, "name",
                     "team");
    CHECK_EQ_INT(chats_create(f->core, &a, body, &out, &created, &err), 0);
    json_decref(out);
    json_decref(body);
    CHECK_EQ_INT(users_contacts(f->core, &a, &ids, &n, &err), 0);
    CHECK_EQ_INT(n, 3);
    CHECK(has((const char(*)[OID_SIZE])ids, n, b.user_id));
    CHECK(has((const char(*)[OID_SIZE])ids, n, c.user_id));
    CHECK(has((const char(*)[OID_SIZE])ids, n, d.user_id));
    CHECK(!has((const char(*)[OID_SIZE])ids, n, a.user_id));
    free(ids);
    CHECK_EQ_INT(users_contacts(f->core, &c, &ids, &n, &err), 0);
    CHECK_EQ_INT(n, 3); /* kai, lea, nia through the group */
    free(ids);
    CHECK_EQ_INT(users_contacts(f->core, &e, &ids, &n, &err), 0);
    CHECK_EQ_INT(n, 0);
}

/* More contacts than the cap: the first USERS_CONTACTS_MAX, no error.  The
 * users and the chat are written to the store directly: registering ten
 * thousand users through Argon2id is not what this tests. */
static void test_contacts_cap(struct fx *f)
{
    struct chat_err err = {0};
    struct session s;
    fx_user(f, "popular", &s);
    size_t n_members = USERS_CONTACTS_MAX + 2; /* the caller and one too many */
    char(*members)[OID_SIZE] = malloc(n_members * sizeof *members);
    memcpy(members[0], s.user_id, OID_SIZE);
    int failed = 0;
    for (size_t i = 1; i < n_members; i++) {
        char name[32];
        snprintf(name, sizeof name, "fan%zu", i);
        struct user u = {.username = name, .email = name, .display_name = name, .bio = "",
                         .pwhash = "x", .created_at = 1795862362123};
        oid_new(u.id, u.created_at);
        failed += store_create_user(f->st, &u, &err) != 0;
        memcpy(members[i], u.id, OID_SIZE);
    }
    CHECK_EQ_INT(failed, 0);
    struct chat in = {.type = CHAT_GROUP, .member_ids = members, .n_members = n_members,
                      .created_at = 1795862362123, .updated_at = 1795862362123};
    struct chat ch = {0};
    bool existed = false;
    oid_new(in.id, in.created_at);
    CHECK_EQ_INT(store_create_chat(f->st, &in, &ch, &existed, &err), 0);
    store_chat_cleanup(&ch);
    free(members);

    char (*ids)[OID_SIZE] = NULL;
    size_t n = 0;
    CHECK_EQ_INT(users_contacts(f->core, &s, &ids, &n, &err), 0);
    CHECK_EQ_INT(n, USERS_CONTACTS_MAX);
    CHECK(!has((const char(*)[OID_SIZE])ids, n, s.user_id));
    free(ids);
}

int main(void)
{
    struct fx f;
    fx_open(&f);
    test_me_and_get(&f);
    test_update(&f);
    test_search(&f);
    test_contacts(&f);
    test_contacts_cap(&f);
    fx_close(&f);
    return check_done();
}
