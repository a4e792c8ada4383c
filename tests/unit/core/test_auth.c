/* test_auth.c - core/auth.c on the real SQLite adapter: registration rules,
 * duplicates, login by email or username, tokens (format, expiry,
 * revocation, malformed input) and the pwhash concurrency gate. */
#include <unistd.h>

#include "core/core_internal.h"
#include "fixture.h"

static json_t *reg_body(const char *username, const char *email, const char *password)
{
    return json_pack("{s:s, s:s, s:s}", "username", username, "email", email, "password", password);
}

static void test_register_ok(struct fx *f)
{
    struct chat_err err = {0};
    json_t *out = NULL;
    json_t *body = fx_json("{\"username\":\"  Alice_1 \",\"email\":\" Alice@Example.COM \","
                           "\"password\":\"correct horse\",\"extra\":[1,2]}");
    CHECK_EQ_INT(auth_register(f->core, body, &out, &err), 0);
    json_t *user = json_object_get(out, "user");
    CHECK(oid_valid(fx_str(user, "id")));
    CHECK_EQ_STR(fx_str(user, "username"), "Alice_1");
    CHECK_EQ_STR(fx_str(user, "email"), "alice@example.com");
    CHECK_EQ_STR(fx_str(user, "displayName"), "Alice_1"); /* defaults to username */
    CHECK_EQ_STR(fx_str(user, "bio"), "");
    CHECK(json_is_null(json_object_get(user, "avatarUrl")));
    CHECK(fx_str(user, "createdAt") && strlen(fx_str(user, "createdAt")) == 24);
    CHECK(json_object_get(user, "password") == NULL);
    CHECK(json_object_get(user, "pwhash") == NULL);
    CHECK_EQ_INT(json_object_size(user), 7);
    const char *token = fx_str(out, "token");
    CHECK(token && strlen(token) == 43);
    struct session s;
    CHECK_EQ_INT(auth_check(f->core, token, &s, &err), 0);
    CHECK_EQ_STR(s.user_id, fx_str(user, "id"));
    json_decref(out);
    json_decref(body);

    /* displayName given: trimmed, multi-byte counted in code points. */
    body = fx_json("{\"username\":\"bob\",\"email\":\"bob@example.com\",\"password\":\"12345678\","
                   "\"displayName\":\"  B\\u00f6b \\u2603  \"}");
    CHECK_EQ_INT(auth_register(f->core, body, &out, &err), 0);
    CHECK_EQ_STR(fx_str(json_object_get(out, "user"), "displayName"), "B\xC3\xB6" "b \xE2\x98\x83");
    json_decref(out);
    json_decref(body);
}

static void test_register_invalid(struct fx *f)
{
    struct chat_err err = {0};
    json_t *out = (json_t *)1;
    struct {
        const char *json;
        int code;
        const char *field;
    } cases[] = {
        {"[]", CHAT_E_INVALID_JSON, NULL},
        {"\"x\"", CHAT_E_INVALID_JSON, NULL},
        {"null", CHAT_E_INVALID_JSON, NULL},
        {"{}", CHAT_E_VALIDATION, "username"},
        {"{\"username\":5,\"email\":\"a@b.co\",\"password\":\"12345678\"}", CHAT_E_VALIDATION, "username"},
        {"{\"username\":\"ab\",\"email\":\"a@b.co\",\"password\":\"12345678\"}", CHAT_E_VALIDATION, "username"},
        {"{\"username\":\"abcdefghijklmnopqrstuvwxyz0123456\",\"email\":\"a@b.co\",\"password\":\"12345678\"}", CHAT_E_VALIDATION, "username"},
        {"{\"username\":\"a-b-c\",\"email\":\"a@b.co\",\"password\":\"12345678\"}", CHAT_E_VALIDATION, "username"},
        {"{\"username\":\"\\u00e9\\u00e9\\u00e9\",\"email\":\"a@b.co\",\"password\":\"12345678\"}", CHAT_E_VALIDATION, "username"},
        {"{\"username\":\"carol\",\"password\":\"12345678\"}", CHAT_E_VALIDATION, "email"},
        {"{\"username\":\"carol\",\"email\":\"carol\",\"password\":\"12345678\"}", CHAT_E_VALIDATION, "email"},
        {"{\"username\":\"carol\",\"email\":\"carol@localhost\",\"password\":\"12345678\"}", CHAT_E_VALIDATION, "email"},
        {"{\"username\":\"carol\",\"email\":[\"a@b.co\"],\"password\":\"12345678\"}", CHAT_E_VALIDATION, "email"},
        {"{\"username\":\"carol\",\"email\":\"c@b.co\"}", CHAT_E_VALIDATION, "password"},
        {"{\"username\":\"carol\",\"email\":\"c@b.co\",\"password\":\"1234567\"}", CHAT_E_VALIDATION, "password"},
        {"{\"username\":\"carol\",\"email\":\"c@b.co\",\"password\":12345678}", CHAT_E_VALIDATION, "password"},
        {"{\"username\":\"carol\",\"email\":\"c@b.co\",\"password\":\"12345678\",\"displayName\":\"   \"}", CHAT_E_VALIDATION, "displayName"},
        {"{\"username\":\"carol\",\"email\":\"c@b.co\",\"password\":\"12345678\",\"displayName\":7}", CHAT_E_VALIDATION, "displayName"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *body = fx_json(cases[i].json);
        CHECK_ERR(auth_register(f->core, body, &out, &err), cases[i].code, cases[i].field);
        CHECK(out == NULL);
        json_decref(body);
    }

    /* Password bounds in code points: 8 x 'é' (16 bytes) is fine; 128 ok; 129 not. */
    char pw[3 * 130 + 1];
    json_t *body = reg_body("pw_utf8", "pw_utf8@b.co", "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9");
    CHECK_ERR(auth_register(f->core, body, &out, &err), CHAT_E_VALIDATION, "password"); /* 7 */
    json_decref(body);
    memset(pw, 'x', 128);
    pw[128] = '\0';
    body = reg_body("pw_128", "pw128@b.co", pw);
    CHECK_EQ_INT(auth_register(f->core, body, &out, &err), 0);
    json_decref(out);
    json_decref(body);
    pw[128] = 'x';
    pw[129] = '\0';
    body = reg_body("pw_129", "pw129@b.co", pw);
    CHECK_ERR(auth_register(f->core, body, &out, &err), CHAT_E_VALIDATION, "password");
    json_decref(body);

    /* displayName: 64 code points (multi-byte) ok, 65 not. */
    char dn[4 * 66 + 1] = "";
    for (int i = 0; i < 64; i++)
        strcat(dn, "\xE2\x82\xAC");
    body = json_pack("{s:s,s:s,s:s,s:s}", "username", "dn64", "email", "dn64@b.co", "password",
                     "12345678", "displayName", dn);
    CHECK_EQ_INT(auth_register(f->core, body, &out, &err), 0);
    json_decref(out);
    json_decref(body);
    strcat(dn, "\xE2\x82\xAC");
    body = json_pack("{s:s,s:s,s:s,s:s}", "username", "dn65", "email", "dn65@b.co", "password",
                     "12345678", "displayName", dn);
    CHECK_ERR(auth_register(f->core, body, &out, &err), CHAT_E_VALIDATION, "displayName");
    json_decref(body);
}

static void test_register_duplicates(struct fx *f)
{
    struct chat_err err = {0};
    json_t *out = NULL;
    json_t *body = reg_body("dave", "dave@example.com", "password123");
    CHECK_EQ_INT(auth_register(f->core, body, &out, &err), 0);
    json_decref(out);
    json_decref(body);

    body = reg_body("dave2", "DAVE@example.com", "password123");
    CHECK_ERR(auth_register(f->core, body, &out, &err), CHAT_E_EMAIL_TAKEN, NULL);
    json_decref(body);
    body = reg_body("DaVe", "other@example.com", "password123");
    CHECK_ERR(auth_register(f->core, body, &out, &err), CHAT_E_USERNAME_TAKEN, NULL);
    json_decref(body);
    /* Both taken: email is reported first. */
    body = reg_body("DAVE", "dave@example.com", "password123");
    CHECK_ERR(auth_register(f->core, body, &out, &err), CHAT_E_EMAIL_TAKEN, NULL);
    json_decref(body);
}

static void test_login(struct fx *f)
{
    struct chat_err err = {0};
    json_t *out = NULL;
    json_t *body = reg_body("Erin", "erin@example.com", "s3cret-pass");
    CHECK_EQ_INT(auth_register(f->core, body, &out, &err), 0);
    const char *id = fx_str(json_object_get(out, "user"), "id");
    char erin[OID_SIZE];
    snprintf(erin, sizeof erin, "%s", id);
    json_decref(out);
    json_decref(body);

    const char *logins[] = {"erin@example.com", "ERIN@Example.com", "erin", "ERIN", " erin "};
    for (size_t i = 0; i < sizeof logins / sizeof *logins; i++) {
        body = json_pack("{s:s, s:s}", "email", logins[i], "password", "s3cret-pass");
        out = NULL;
        CHECK_EQ_INT(auth_login(f->core, body, &out, &err), 0);
        json_t *user = json_object_get(out, "user");
        CHECK_EQ_STR(fx_str(user, "id"), erin);
        CHECK_EQ_STR(fx_str(user, "email"), "erin@example.com");
        struct session s;
        CHECK_EQ_INT(auth_check(f->core, fx_str(out, "token"), &s, &err), 0);
        CHECK_EQ_STR(s.user_id, erin);
        json_decref(out);
        json_decref(body);
    }

    /* Wrong password and unknown user look the same. */
    const char *bad[][2] = {
        {"erin@example.com", "wrong-pass"},
        {"erin", "S3CRET-PASS"},
        {"nobody@example.com", "s3cret-pass"},
        {"nobody", "whatever1"},
        {"", "s3cret-pass"},
        {"erin", ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        body = json_pack("{s:s, s:s}", "email", bad[i][0], "password", bad[i][1]);
        out = (json_t *)1;
        CHECK_ERR(auth_login(f->core, body, &out, &err), CHAT_E_INVALID_CREDENTIALS, NULL);
        CHECK(out == NULL);
        json_decref(body);
    }

    /* Shape errors. */
    body = fx_json("[1]");
    CHECK_ERR(auth_login(f->core, body, &out, &err), CHAT_E_INVALID_JSON, NULL);
    json_decref(body);
    body = fx_json("{\"password\":\"x\"}");
    CHECK_ERR(auth_login(f->core, body, &out, &err), CHAT_E_VALIDATION, "email");
    json_decref(body);
    body = fx_json("{\"email\":\"erin\"}");
    CHECK_ERR(auth_login(f->core, body, &out, &err), CHAT_E_VALIDATION, "password");
    json_decref(body);
    body = fx_json("{\"email\":\"erin\",\"password\":true}");
    CHECK_ERR(auth_login(f->core, body, &out, &err), CHAT_E_VALIDATION, "password");
    json_decref(body);
}

static void test_tokens(struct fx *f)
{
    struct chat_err err = {0};
    struct session s, s2;
    fx_user(f, "frank", &s);

    /* Malformed tokens never reach the store. */
    const char *bad[] = {
        NULL,
        "",
        "abc",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",    /* 42 */
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  /* 44 */
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",   /* padding */
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+",   /* std alphabet */
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB",   /* trailing bits */
        "AAAAAAAAAAAAAAAAAAAAA AAAAAAAAAAAAAAAAAAAAA",
        "Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_ERR(auth_check(f->core, bad[i], &s2, &err), CHAT_E_UNAUTHORIZED, NULL);
    /* Well-formed but unknown. */
    CHECK_ERR(auth_check(f->core, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &s2, &err),
              CHAT_E_UNAUTHORIZED, NULL);

    /* Logout revokes that token only. */
    json_t *out = NULL;
    json_t *body = json_pack("{s:s, s:s}", "email", "frank", "password", "password123");
    CHECK_EQ_INT(auth_login(f->core, body, &out, &err), 0);
    char tok2[64];
    snprintf(tok2, sizeof tok2, "%s", fx_str(out, "token"));
    json_decref(out);
    json_decref(body);
    CHECK_EQ_INT(auth_check(f->core, tok2, &s2, &err), 0);
    CHECK(memcmp(s.token_hash, s2.token_hash, 32) != 0);
    fx_clear_events(f);
    CHECK_EQ_INT(auth_logout(f->core, &s2, &err), 0);
    /* A revocation went out for that user and token (WebSockets close). */
    CHECK_EQ_INT(f->n_events, 1);
    if (f->n_events == 1) {
        struct fx_event *ev = &f->events[0];
        CHECK(ev->revocation);
        CHECK(ev->frame == NULL);
        CHECK_EQ_INT(ev->scope, BUS_TO_USERS);
        CHECK_EQ_INT(ev->n_users, 1);
        CHECK(fx_event_has_user(ev, s.user_id));
        CHECK(memcmp(ev->token_hash, s2.token_hash, 32) == 0);
    }
    CHECK_ERR(auth_check(f->core, tok2, &s2, &err), CHAT_E_UNAUTHORIZED, NULL);
    CHECK_EQ_INT(auth_logout(f->core, &s2, &err), 0); /* twice is fine */
    /* The first session still works. */
    struct json_t *me = NULL;
    CHECK_EQ_INT(users_me(f->core, &s, &me, &err), 0);
    json_decref(me);
}

static void test_expiry(void)
{
    struct fx f;
    struct chat_err err = {0};
    struct session s;
    fx_open_ttl(&f, 1);
    json_t *out = NULL;
    json_t *body = reg_body("gina", "gina@example.com", "password123");
    CHECK_EQ_INT(auth_register(f.core, body, &out, &err), 0);
    char tok[64];
    snprintf(tok, sizeof tok, "%s", fx_str(out, "token"));
    json_decref(out);
    json_decref(body);
    CHECK_EQ_INT(auth_check(f.core, tok, &s, &err), 0);
    usleep(1100 * 1000);
    CHECK_ERR(auth_check(f.core, tok, &s, &err), CHAT_E_UNAUTHORIZED, NULL);
    /* The expired session was deleted from the store. */
    char uid[OID_SIZE];
    int64_t exp;
    CHECK_EQ_INT(store_get_session(f.st, s.token_hash, uid, &exp, &err), CHAT_E_NOT_FOUND);
    fx_close(&f);
}

/* Hashing concurrency: with pw_max 2, never more than 2 run at once. */
struct gate_arg {
    struct core *c;
    int *max_seen;
    int *active;
    pthread_mutex_t *lock;
};

static void *gate_thread(void *p)
{
    struct gate_arg *a = p;
    for (int i = 0; i < 50; i++) {
        core__pw_enter(a->c);
        pthread_mutex_lock(a->lock);
        int now = ++*a->active;
        if (now > *a->max_seen)
            *a->max_seen = now;
        pthread_mutex_unlock(a->lock);
        usleep(200);
        pthread_mutex_lock(a->lock);
        --*a->active;
        pthread_mutex_unlock(a->lock);
        core__pw_leave(a->c);
    }
    return NULL;
}

static void test_gate(struct fx *f)
{
    pthread_t th[6];
    int max_seen = 0, active = 0;
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    struct gate_arg a = {f->core, &max_seen, &active, &lock};
    for (int i = 0; i < 6; i++)
        pthread_create(&th[i], NULL, gate_thread, &a);
    for (int i = 0; i < 6; i++)
        pthread_join(th[i], NULL);
    CHECK(max_seen >= 1 && max_seen <= 2);
    CHECK_EQ_INT(active, 0);
}

/* ---- account lifecycle (issue 13) ---- */

/* Logs `name` in again; the new token into `tok`, its session into *s. */
static void login_again(struct fx *f, const char *name, const char *password, char tok[64],
                        struct session *s)
{
    struct chat_err err = {0};
    json_t *out = NULL;
    json_t *body = json_pack("{s:s, s:s}", "email", name, "password", password);
    CHECK_EQ_INT(auth_login(f->core, body, &out, &err), 0);
    snprintf(tok, 64, "%s", out ? fx_str(out, "token") : "");
    json_decref(out);
    json_decref(body);
    CHECK_EQ_INT(auth_check(f->core, tok, s, &err), 0); /* now in the session cache */
}

/* The revocation events seen, and whether one names `hash`. */
static bool revoked(struct fx *f, const uint8_t hash[32])
{
    for (size_t i = 0; i < f->n_events; i++)
        if (f->events[i].revocation && memcmp(f->events[i].token_hash, hash, 32) == 0)
            return true;
    return false;
}

static size_t n_revocations(struct fx *f)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n_events; i++)
        n += f->events[i].revocation;
    return n;
}

static void test_password_change_and_logout_all(struct fx *f)
{
    struct chat_err err = {0};
    struct session s1, s2, s3, probe;
    char t2[64], t3[64];
    fx_user(f, "gina", &s1);
    login_again(f, "gina", "password123", t2, &s2);
    login_again(f, "gina", "password123", t3, &s3);

    /* Validation first, then the current password. */
    const char *bad[][2] = {
        {"[]", NULL},
        {"{\"newPassword\":\"abcdefgh\"}", "currentPassword"},
        {"{\"currentPassword\":\"password123\"}", "newPassword"},
        {"{\"currentPassword\":\"password123\",\"newPassword\":\"1234567\"}", "newPassword"},
        {"{\"currentPassword\":1,\"newPassword\":\"abcdefgh\"}", "currentPassword"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *body = fx_json(bad[i][0]);
        CHECK_ERR(auth_change_password(f->core, &s1, body, &err),
                  bad[i][1] ? CHAT_E_VALIDATION : CHAT_E_INVALID_JSON, bad[i][1]);
        json_decref(body);
    }
    fx_clear_events(f);
    json_t *body = fx_json("{\"currentPassword\":\"password12\",\"newPassword\":\"new pass 1\"}");
    CHECK_ERR(auth_change_password(f->core, &s1, body, &err), CHAT_E_INVALID_CREDENTIALS, NULL);
    json_decref(body);
    CHECK_EQ_INT(f->n_events, 0);
    CHECK_EQ_INT(auth_check(f->core, t2, &probe, &err), 0);

    /* The change: the two other tokens are revoked (events and at once
     * here, though the session cache had them), the caller's stays. */
    body = fx_json("{\"currentPassword\":\"password123\",\"newPassword\":\"new pass 1\"}");
    CHECK_EQ_INT(auth_change_password(f->core, &s1, body, &err), 0);
    json_decref(body);
    CHECK_EQ_INT(n_revocations(f), 2);
    CHECK(revoked(f, s2.token_hash) && revoked(f, s3.token_hash));
    CHECK(!revoked(f, s1.token_hash));
    for (size_t i = 0; i < f->n_events; i++)
        CHECK(fx_event_has_user(&f->events[i], s1.user_id));
    CHECK_ERR(auth_check(f->core, t2, &probe, &err), CHAT_E_UNAUTHORIZED, NULL);
    CHECK_ERR(auth_check(f->core, t3, &probe, &err), CHAT_E_UNAUTHORIZED, NULL);
    json_t *me = NULL;
    CHECK_EQ_INT(users_me(f->core, &s1, &me, &err), 0);
    json_decref(me);
    /* The new password logs in, the old one no longer. */
    json_t *out = NULL;
    body = json_pack("{s:s, s:s}", "email", "gina", "password", "password123");
    CHECK_ERR(auth_login(f->core, body, &out, &err), CHAT_E_INVALID_CREDENTIALS, NULL);
    json_decref(body);
    login_again(f, "gina", "new pass 1", t2, &s2);

    /* Logout everywhere: both sessions, the caller's included. */
    fx_clear_events(f);
    CHECK_EQ_INT(auth_logout_all(f->core, &s1, &err), 0);
    CHECK_EQ_INT(n_revocations(f), 2);
    CHECK(revoked(f, s1.token_hash) && revoked(f, s2.token_hash));
    CHECK_ERR(auth_check(f->core, t2, &probe, &err), CHAT_E_UNAUTHORIZED, NULL);
    fx_clear_events(f);
    CHECK_EQ_INT(auth_logout_all(f->core, &s1, &err), 0); /* none left: fine */
    CHECK_EQ_INT(f->n_events, 0);
}

static void test_delete_account(struct fx *f)
{
    struct chat_err err = {0};
    struct session h, i, j;
    fx_user(f, "hank", &h);
    fx_user(f, "iris", &i);
    fx_user(f, "jack", &j);
    json_t *out = NULL;
    bool created;
    json_t *body = json_pack("{s:[s,s], s:s}", "memberIds", i.user_id, j.user_id, "name", "g");
    CHECK_EQ_INT(chats_create(f->core, &h, body, &out, &created, &err), 0);
    char group[OID_SIZE];
    snprintf(group, sizeof group, "%s", out ? fx_str(out, "id") : "");
    json_decref(out);
    json_decref(body);
    body = json_pack("{s:s}", "text", "hank's");
    CHECK_EQ_INT(posts_create(f->core, &h, body, &out, &err), 0);
    char post[OID_SIZE];
    snprintf(post, sizeof post, "%s", out ? fx_str(out, "id") : "");
    json_decref(out);
    json_decref(body);

    body = fx_json("{\"password\":\"wrong one\"}");
    CHECK_ERR(auth_delete_account(f->core, &h, body, &err), CHAT_E_INVALID_CREDENTIALS, NULL);
    json_decref(body);
    body = fx_json("{}");
    CHECK_ERR(auth_delete_account(f->core, &h, body, &err), CHAT_E_VALIDATION, "password");
    json_decref(body);
    CHECK_EQ_INT(users_get(f->core, &i, h.user_id, &out, &err), 0);
    json_decref(out);

    fx_clear_events(f);
    body = fx_json("{\"password\":\"password123\"}");
    CHECK_EQ_INT(auth_delete_account(f->core, &h, body, &err), 0);
    json_decref(body);
    /* Its token revoked, chat.removed to it, chat.updated to the others. */
    CHECK(revoked(f, h.token_hash));
    struct fx_event *ev = fx_find_event(f, "chat.removed", 0);
    CHECK(ev && ev->n_users == 1 && fx_event_has_user(ev, h.user_id));
    ev = fx_find_event(f, "chat.updated", 0);
    CHECK(ev && ev->n_users == 2 && fx_event_has_user(ev, i.user_id) &&
          !fx_event_has_user(ev, h.user_id));
    CHECK_ERR(users_get(f->core, &i, h.user_id, &out, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(posts_get(f->core, &i, post, &out, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_EQ_INT(chats_get(f->core, &i, group, &out, &err), 0);
    CHECK_EQ_INT(json_array_size(json_object_get(out, "members")), 2);
    json_decref(out);
    /* The name is free; the deleted_ prefix is not. */
    struct session h2;
    fx_user(f, "HANK", &h2);
    CHECK(strcmp(h2.user_id, h.user_id) != 0);
    body = json_pack("{s:s+, s:s, s:s}", "username", "deleted_", h.user_id, "email",
                     "x@example.com", "password", "password123");
    CHECK_ERR(auth_register(f->core, body, &out, &err), CHAT_E_VALIDATION, "username");
    json_decref(body);
    /* A deleted account is no user to add to a group. */
    body = json_pack("{s:s}", "userId", h.user_id);
    CHECK_ERR(chats_add_member(f->core, &i, group, body, &out, &err), CHAT_E_VALIDATION,
              "userId");
    json_decref(body);
}

int main(void)
{
    struct fx f;
    fx_open(&f);
    test_register_ok(&f);
    test_register_invalid(&f);
    test_register_duplicates(&f);
    test_login(&f);
    test_tokens(&f);
    test_gate(&f);
    test_password_change_and_logout_all(&f);
    test_delete_account(&f);
    fx_close(&f);
    test_expiry();
    return check_done();
}
