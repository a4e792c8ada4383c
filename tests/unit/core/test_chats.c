/* test_chats.c - core/chats.c: direct chats (unique per pair), groups and
 * their size rules, member add/remove rights, the chat.new / chat.updated
 * events and their recipients, chat list order and paging, and read marks
 * with unread counts and the read event. */
#include <stdarg.h>
#include <unistd.h>

#include "fixture.h"

static struct session u[6]; /* mia, noah, olga, paul, quinn, rosa */

/* Sends `text` from `s` to `chat` and returns the message id in `id`. */
static void send_text(struct fx *f, struct session *s, const char *chat, const char *text,
                      char id[OID_SIZE])
{
    struct chat_err err = {0};
    json_t *out = NULL;
    bool created = false;
    json_t *body = json_pack("{s:s}", "text", text);
    CHECK_EQ_INT(messages_send(f->core, s, chat, body, &out, &created, &err), 0);
    CHECK(created);
    if (id)
        snprintf(id, OID_SIZE, "%s", out ? fx_str(out, "id") : "");
    json_decref(out);
    json_decref(body);
}

static json_t *members_body(int n, ...)
{
    va_list ap;
    json_t *arr = json_array();
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_string(va_arg(ap, const char *)));
    va_end(ap);
    return json_pack("{s:o}", "memberIds", arr);
}

static void test_direct(struct fx *f, char direct_id[OID_SIZE])
{
    struct chat_err err = {0};
    json_t *out = NULL, *body;
    bool created = false;

    fx_clear_events(f);
    body = members_body(1, u[1].user_id);
    CHECK_EQ_INT(chats_create(f->core, &u[0], body, &out, &created, &err), 0);
    CHECK(created);
    snprintf(direct_id, OID_SIZE, "%s", fx_str(out, "id"));
    CHECK_EQ_STR(fx_str(out, "type"), "direct");
    CHECK(json_is_null(json_object_get(out, "name")));
    json_t *members = json_object_get(out, "members");
    CHECK_EQ_INT(json_array_size(members), 2);
    CHECK_EQ_STR(fx_str(json_array_get(members, 0), "id"), u[0].user_id);
    CHECK_EQ_STR(fx_str(json_array_get(members, 1), "id"), u[1].user_id);
    CHECK_EQ_STR(fx_str(json_array_get(members, 1), "username"), "noah");
    CHECK(json_is_null(json_object_get(out, "lastMessage")));
    CHECK_EQ_INT(fx_int(out, "unreadCount"), 0);
    CHECK_EQ_INT(fx_int(out, "lastSeq"), 0);
    CHECK(fx_str(out, "createdAt") && fx_str(out, "updatedAt"));
    /* readMarks: every member, 0 before any read. */
    json_t *marks = json_object_get(out, "readMarks");
    CHECK_EQ_INT(json_object_size(marks), 2);
    CHECK_EQ_INT(fx_int(marks, u[0].user_id), 0);
    CHECK_EQ_INT(fx_int(marks, u[1].user_id), 0);
    CHECK(json_is_integer(json_object_get(marks, u[1].user_id)));
    CHECK_EQ_INT(json_object_size(out), 10);

    /* chat.new to both members (the creator's connections too). */
    CHECK_EQ_INT(fx_count_events(f, "chat.new"), 1);
    struct fx_event *ev = fx_find_event(f, "chat.new", 0);
    if (ev) {
        CHECK_EQ_INT(ev->scope, BUS_TO_USERS);
        CHECK_EQ_INT(ev->n_users, 2);
        CHECK(fx_event_has_user(ev, u[0].user_id) && fx_event_has_user(ev, u[1].user_id));
        CHECK(json_equal(json_object_get(ev->frame, "chat"), out));
    }
    json_decref(out);
    json_decref(body);

    /* Again, from either side, with duplicates and the caller listed: the
     * same chat, not created, no event. */
    fx_clear_events(f);
    body = members_body(3, u[1].user_id, u[0].user_id, u[1].user_id);
    CHECK_EQ_INT(chats_create(f->core, &u[0], body, &out, &created, &err), 0);
    CHECK(!created);
    CHECK_EQ_STR(fx_str(out, "id"), direct_id);
    json_decref(out);
    json_decref(body);
    body = members_body(1, u[0].user_id);
    CHECK_EQ_INT(chats_create(f->core, &u[1], body, &out, &created, &err), 0);
    CHECK(!created);
    CHECK_EQ_STR(fx_str(out, "id"), direct_id);
    CHECK_EQ_INT(json_array_size(json_object_get(out, "members")), 2);
    json_decref(out);
    json_decref(body);
    CHECK_EQ_INT(f->n_events, 0);

    /* A name makes it a group of two. */
    body = members_body(1, u[1].user_id);
    json_object_set_new(body, "name", json_string("  pair  "));
    CHECK_EQ_INT(chats_create(f->core, &u[0], body, &out, &created, &err), 0);
    CHECK(created);
    CHECK_EQ_STR(fx_str(out, "type"), "group");
    CHECK_EQ_STR(fx_str(out, "name"), "pair");
    CHECK(strcmp(fx_str(out, "id"), direct_id) != 0);
    json_decref(out);
    json_decref(body);
}

static void test_create_errors(struct fx *f)
{
    struct chat_err err = {0};
    json_t *out = NULL, *body;
    bool created = true;
    const char *ghost = "6929b0da0123456789abcdef";

    struct {
        json_t *body;
        int code;
        const char *field;
    } cases[] = {
        {fx_json("[]"), CHAT_E_INVALID_JSON, NULL},
        {fx_json("{}"), CHAT_E_VALIDATION, "memberIds"},
        {fx_json("{\"memberIds\":null}"), CHAT_E_VALIDATION, "memberIds"},
        {fx_json("{\"memberIds\":\"abc\"}"), CHAT_E_VALIDATION, "memberIds"},
        {fx_json("{\"memberIds\":[]}"), CHAT_E_VALIDATION, "memberIds"},
        {fx_json("{\"memberIds\":[1]}"), CHAT_E_VALIDATION, "memberIds"},
        {fx_json("{\"memberIds\":[\"nope\"]}"), CHAT_E_VALIDATION, "memberIds"},
        {fx_json("{\"memberIds\":[\"6929B0DA0123456789ABCDEF\"]}"), CHAT_E_VALIDATION, "memberIds"},
        {members_body(1, ghost), CHAT_E_VALIDATION, "memberIds"},
        {members_body(2, u[1].user_id, ghost), CHAT_E_VALIDATION, "memberIds"},
        /* Only the caller: not a chat. */
        {members_body(1, u[0].user_id), CHAT_E_VALIDATION, "memberIds"},
        {members_body(2, u[0].user_id, u[0].user_id), CHAT_E_VALIDATION, "memberIds"},
        {json_pack("{s:[s], s:s}", "memberIds", u[0].user_id, "name", "solo"), CHAT_E_VALIDATION, "memberIds"},
        {json_pack("{s:[s,s], s:s}", "memberIds", u[1].user_id, u[2].user_id, "name", "  "), CHAT_E_VALIDATION, "name"},
        {json_pack("{s:[s,s], s:i}", "memberIds", u[1].user_id, u[2].user_id, "name", 3), CHAT_E_VALIDATION, "name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        out = (json_t *)1;
        CHECK_ERR(chats_create(f->core, &u[0], cases[i].body, &out, &created, &err), cases[i].code,
                  cases[i].field);
        CHECK(out == NULL);
        CHECK(!created);
        json_decref(cases[i].body);
    }

    /* name: 64 code points ok, 65 not. */
    char name[4 * 66] = "";
    for (int i = 0; i < 64; i++)
        strcat(name, "\xF0\x9F\x98\x80");
    body = json_pack("{s:[s,s], s:s}", "memberIds", u[1].user_id, u[2].user_id, "name", name);
    CHECK_EQ_INT(chats_create(f->core, &u[0], body, &out, &created, &err), 0);
    json_decref(out);
    json_decref(body);
    strcat(name, "x");
    body = json_pack("{s:[s,s], s:s}", "memberIds", u[1].user_id, u[2].user_id, "name", name);
    CHECK_ERR(chats_create(f->core, &u[0], body, &out, &created, &err), CHAT_E_VALIDATION, "name");
    json_decref(body);

    /* 257 distinct members in all is too many (checked before any lookup). */
    json_t *arr = json_array();
    char id[OID_SIZE];
    for (int i = 0; i < 256; i++) {
        snprintf(id, sizeof id, "6929b0da0000000000%06x", i);
        json_array_append_new(arr, json_string(id));
    }
    body = json_pack("{s:o}", "memberIds", arr);
    CHECK_ERR(chats_create(f->core, &u[0], body, &out, &created, &err), CHAT_E_VALIDATION,
              "memberIds");
    json_decref(body);
}

static void test_group(struct fx *f, char group_id[OID_SIZE], const char *direct_id)
{
    struct chat_err err = {0};
    json_t *out = NULL, *body;
    bool created = false;

    fx_clear_events(f);
    body = members_body(3, u[1].user_id, u[2].user_id, u[1].user_id);
    CHECK_EQ_INT(chats_create(f->core, &u[0], body, &out, &created, &err), 0);
    CHECK(created);
    snprintf(group_id, OID_SIZE, "%s", fx_str(out, "id"));
    CHECK_EQ_STR(fx_str(out, "type"), "group");
    CHECK(json_is_null(json_object_get(out, "name")));
    CHECK_EQ_INT(json_array_size(json_object_get(out, "members")), 3);
    struct fx_event *ev = fx_find_event(f, "chat.new", 0);
    CHECK(ev && ev->n_users == 3);
    json_decref(out);
    json_decref(body);

    /* Add: any member may; the newcomer gets chat.new, the others chat.updated. */
    fx_clear_events(f);
    body = json_pack("{s:s}", "userId", u[3].user_id);
    CHECK_EQ_INT(chats_add_member(f->core, &u[1], group_id, body, &out, &err), 0);
    CHECK_EQ_INT(json_array_size(json_object_get(out, "members")), 4);
    CHECK_EQ_STR(fx_str(json_array_get(json_object_get(out, "members"), 3), "id"), u[3].user_id);
    json_decref(out);
    CHECK_EQ_INT(fx_count_events(f, "chat.new"), 1);
    CHECK_EQ_INT(fx_count_events(f, "chat.updated"), 1);
    ev = fx_find_event(f, "chat.new", 0);
    if (ev) {
        CHECK_EQ_INT(ev->n_users, 1);
        CHECK(fx_event_has_user(ev, u[3].user_id));
        CHECK_EQ_INT(json_array_size(json_object_get(json_object_get(ev->frame, "chat"), "members")), 4);
    }
    ev = fx_find_event(f, "chat.updated", 0);
    if (ev) {
        CHECK_EQ_INT(ev->n_users, 3);
        CHECK(!fx_event_has_user(ev, u[3].user_id));
        CHECK(fx_event_has_user(ev, u[0].user_id) && fx_event_has_user(ev, u[1].user_id) &&
              fx_event_has_user(ev, u[2].user_id));
        CHECK_EQ_INT(fx_int(json_object_get(ev->frame, "chat"), "unreadCount"), 0);
    }
    /* Adding again is a no-op with no events. */
    fx_clear_events(f);
    CHECK_EQ_INT(chats_add_member(f->core, &u[0], group_id, body, &out, &err), 0);
    CHECK_EQ_INT(json_array_size(json_object_get(out, "members")), 4);
    json_decref(out);
    CHECK_EQ_INT(f->n_events, 0);
    json_decref(body);

    /* The newcomer sees it now. */
    CHECK_EQ_INT(chats_get(f->core, &u[3], group_id, &out, &err), 0);
    json_decref(out);

    /* Add errors. */
    body = json_pack("{s:s}", "userId", u[4].user_id);
    CHECK_ERR(chats_add_member(f->core, &u[4], group_id, body, &out, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(chats_add_member(f->core, &u[0], direct_id, body, &out, &err), CHAT_E_BAD_REQUEST, NULL);
    CHECK_ERR(chats_add_member(f->core, &u[0], "bad", body, &out, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(chats_add_member(f->core, &u[0], "6929b0da0123456789abcdef", body, &out, &err),
              CHAT_E_NOT_FOUND, NULL);
    json_decref(body);
    body = json_pack("{s:s}", "userId", "6929b0da0123456789abcdef");
    CHECK_ERR(chats_add_member(f->core, &u[0], group_id, body, &out, &err), CHAT_E_VALIDATION, "userId");
    json_decref(body);
    body = fx_json("{\"userId\":\"xyz\"}");
    CHECK_ERR(chats_add_member(f->core, &u[0], group_id, body, &out, &err), CHAT_E_VALIDATION, "userId");
    json_decref(body);
    body = fx_json("{\"userId\":7}");
    CHECK_ERR(chats_add_member(f->core, &u[0], group_id, body, &out, &err), CHAT_E_VALIDATION, "userId");
    json_decref(body);
    body = fx_json("{}");
    CHECK_ERR(chats_add_member(f->core, &u[0], group_id, body, &out, &err), CHAT_E_VALIDATION, "userId");
    json_decref(body);
    body = fx_json("[]");
    CHECK_ERR(chats_add_member(f->core, &u[0], group_id, body, &out, &err), CHAT_E_INVALID_JSON, NULL);
    json_decref(body);

    /* Remove: only yourself, groups only. */
    fx_clear_events(f);
    CHECK_ERR(chats_remove_member(f->core, &u[0], group_id, u[1].user_id, &err), CHAT_E_FORBIDDEN, NULL);
    CHECK_ERR(chats_remove_member(f->core, &u[0], direct_id, u[0].user_id, &err), CHAT_E_BAD_REQUEST, NULL);
    CHECK_ERR(chats_remove_member(f->core, &u[4], group_id, u[4].user_id, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(chats_remove_member(f->core, &u[0], "nope", u[0].user_id, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(chats_remove_member(f->core, &u[0], group_id, "nope", &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_EQ_INT(f->n_events, 0);
    CHECK_EQ_INT(chats_remove_member(f->core, &u[2], group_id, u[2].user_id, &err), 0);
    CHECK_EQ_INT(fx_count_events(f, "chat.updated"), 1);
    ev = fx_find_event(f, "chat.updated", 0);
    if (ev) {
        CHECK_EQ_INT(ev->n_users, 3);
        CHECK(!fx_event_has_user(ev, u[2].user_id));
        CHECK_EQ_INT(json_array_size(json_object_get(json_object_get(ev->frame, "chat"), "members")), 3);
    }
    /* Gone for them, still there for the others. */
    CHECK_ERR(chats_get(f->core, &u[2], group_id, &out, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_EQ_INT(chats_get(f->core, &u[0], group_id, &out, &err), 0);
    CHECK_EQ_INT(json_array_size(json_object_get(out, "members")), 3);
    json_decref(out);
    /* A removed member cannot send; the member cache was invalidated. */
    json_t *msg = fx_json("{\"text\":\"still here?\"}");
    bool mc = false;
    CHECK_ERR(messages_send(f->core, &u[2], group_id, msg, &out, &mc, &err), CHAT_E_NOT_FOUND, NULL);
    /* ... and a re-added one can, at once. */
    body = json_pack("{s:s}", "userId", u[2].user_id);
    CHECK_EQ_INT(chats_add_member(f->core, &u[0], group_id, body, &out, &err), 0);
    json_decref(out);
    json_decref(body);
    CHECK_EQ_INT(messages_send(f->core, &u[2], group_id, msg, &out, &mc, &err), 0);
    json_decref(out);
    json_decref(msg);
}

static void test_get_list(struct fx *f, const char *direct_id, const char *group_id)
{
    struct chat_err err = {0};
    json_t *out = NULL;

    CHECK_ERR(chats_get(f->core, &u[4], direct_id, &out, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(chats_get(f->core, &u[0], "x", &out, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(chats_get(f->core, &u[0], "6929b0da0123456789abcdef", &out, &err), CHAT_E_NOT_FOUND, NULL);

    /* Activity order: a message moves the direct chat to the front.  (The
     * pause keeps its time strictly after the group's last message: equal
     * times order by id, and the group's id is the larger.) */
    char mid[OID_SIZE];
    usleep(5000);
    send_text(f, &u[1], direct_id, "hi mia", mid);
    struct page_params pp = {0};
    CHECK_EQ_INT(chats_list(f->core, &u[0], &pp, &out, &err), 0);
    json_t *items = json_object_get(out, "items");
    CHECK(json_array_size(items) >= 2);
    json_t *first = json_array_get(items, 0);
    CHECK_EQ_STR(fx_str(first, "id"), direct_id);
    json_t *last = json_object_get(first, "lastMessage");
    CHECK_EQ_STR(fx_str(last, "id"), mid);
    CHECK_EQ_STR(fx_str(last, "text"), "hi mia");
    CHECK_EQ_STR(fx_str(json_object_get(last, "sender"), "id"), u[1].user_id);
    CHECK_EQ_INT(fx_int(first, "lastSeq"), fx_int(last, "seq"));
    CHECK_EQ_INT(fx_int(first, "unreadCount"), 1);
    CHECK_EQ_STR(fx_str(first, "updatedAt"), fx_str(last, "createdAt"));
    json_decref(out);

    /* rosa in 25 chats; page through them 10 at a time. */
    char ids[25][OID_SIZE];
    for (int i = 0; i < 25; i++) {
        json_t *body = json_pack("{s:[s,s], s:s}", "memberIds", u[5].user_id, u[i % 4].user_id,
                                 "name", "many");
        bool created;
        CHECK_EQ_INT(chats_create(f->core, &u[4], body, &out, &created, &err), 0);
        snprintf(ids[i], OID_SIZE, "%s", fx_str(out, "id"));
        json_decref(out);
        json_decref(body);
    }
    pp.limit = "10";
    int seen = 0, pages = 0;
    char cur[128];
    for (;;) {
        CHECK_EQ_INT(chats_list(f->core, &u[5], &pp, &out, &err), 0);
        items = json_object_get(out, "items");
        for (size_t i = 0; i < json_array_size(items) && seen < 25; i++, seen++)
            CHECK_EQ_STR(fx_str(json_array_get(items, i), "id"), ids[24 - seen]);
        pages++;
        const char *next = fx_str(out, "nextCursor");
        if (!next || pages > 5) {
            json_decref(out);
            break;
        }
        snprintf(cur, sizeof cur, "%s", next);
        pp.before = cur;
        json_decref(out);
    }
    CHECK_EQ_INT(seen, 25);
    CHECK_EQ_INT(pages, 3);

    pp.before = "Zm9v";
    CHECK_ERR(chats_list(f->core, &u[5], &pp, &out, &err), CHAT_E_VALIDATION, "before");
    pp.before = NULL;
    pp.limit = "-3";
    CHECK_ERR(chats_list(f->core, &u[5], &pp, &out, &err), CHAT_E_VALIDATION, "limit");
}

static void test_read(struct fx *f, const char *group_id, const char *direct_id)
{
    struct chat_err err = {0};
    json_t *out = NULL, *body;
    char m1[OID_SIZE], m2[OID_SIZE], m3[OID_SIZE], mine[OID_SIZE], other[OID_SIZE];

    /* The group has mia, noah, paul, olga now.  Mark everything read first. */
    send_text(f, &u[0], group_id, "one", m1);
    body = json_pack("{s:s}", "messageId", m1);
    CHECK_EQ_INT(chats_read(f->core, &u[1], group_id, body, 0, &err), 0);
    json_decref(body);
    CHECK_EQ_INT(chats_get(f->core, &u[1], group_id, &out, &err), 0);
    CHECK_EQ_INT(fx_int(out, "unreadCount"), 0);
    json_decref(out);

    send_text(f, &u[0], group_id, "two", m2);
    send_text(f, &u[1], group_id, "mine", mine); /* own messages never count */
    send_text(f, &u[3], group_id, "three", m3);
    CHECK_EQ_INT(chats_get(f->core, &u[1], group_id, &out, &err), 0);
    CHECK_EQ_INT(fx_int(out, "unreadCount"), 2);
    json_decref(out);

    /* Moving the mark publishes read to every member, skipping origin. */
    fx_clear_events(f);
    body = json_pack("{s:s}", "messageId", m2);
    CHECK_EQ_INT(chats_read(f->core, &u[1], group_id, body, 77, &err), 0);
    json_decref(body);
    CHECK_EQ_INT(fx_count_events(f, "read"), 1);
    struct fx_event *ev = fx_find_event(f, "read", 0);
    if (ev) {
        CHECK_EQ_INT(ev->skip_conn, 77);
        CHECK_EQ_INT(ev->n_users, 4);
        CHECK(fx_event_has_user(ev, u[1].user_id));
        CHECK_EQ_STR(fx_str(ev->frame, "chatId"), group_id);
        CHECK_EQ_STR(fx_str(ev->frame, "userId"), u[1].user_id);
        CHECK_EQ_STR(fx_str(ev->frame, "messageId"), m2);
        CHECK_EQ_INT(json_object_size(ev->frame), 5);
    }
    CHECK_EQ_INT(chats_get(f->core, &u[1], group_id, &out, &err), 0);
    CHECK_EQ_INT(fx_int(out, "unreadCount"), 1);
    /* The read frame's seq is m2's, and readMarks shows it for u[1] (the
     * others' marks are their own). */
    {
        json_t *marks = json_object_get(out, "readMarks");
        CHECK_EQ_INT(json_object_size(marks), 4);
        int64_t m2_seq = ev ? fx_int(ev->frame, "seq") : -1;
        CHECK(m2_seq > 0);
        CHECK_EQ_INT(fx_int(marks, u[1].user_id), m2_seq);
        CHECK_EQ_INT(fx_int(marks, u[3].user_id), 0);
        CHECK_EQ_INT(fx_int(out, "lastSeq") > m2_seq, 1);
    }
    json_decref(out);

    /* Backwards and repeated marks do not move: no event. */
    fx_clear_events(f);
    body = json_pack("{s:s}", "messageId", m1);
    CHECK_EQ_INT(chats_read(f->core, &u[1], group_id, body, 0, &err), 0);
    json_decref(body);
    body = json_pack("{s:s}", "messageId", m2);
    CHECK_EQ_INT(chats_read(f->core, &u[1], group_id, body, 0, &err), 0);
    json_decref(body);
    CHECK_EQ_INT(fx_count_events(f, "read"), 0);
    CHECK_EQ_INT(chats_get(f->core, &u[1], group_id, &out, &err), 0);
    CHECK_EQ_INT(fx_int(out, "unreadCount"), 1);
    json_decref(out);
    body = json_pack("{s:s}", "messageId", m3);
    CHECK_EQ_INT(chats_read(f->core, &u[1], group_id, body, 0, &err), 0);
    json_decref(body);
    CHECK_EQ_INT(chats_get(f->core, &u[1], group_id, &out, &err), 0);
    CHECK_EQ_INT(fx_int(out, "unreadCount"), 0);
    json_decref(out);

    /* Errors: a message of another chat, malformed ids, non-members. */
    send_text(f, &u[0], direct_id, "elsewhere", other);
    body = json_pack("{s:s}", "messageId", other);
    CHECK_ERR(chats_read(f->core, &u[1], group_id, body, 0, &err), CHAT_E_VALIDATION, "messageId");
    CHECK_ERR(chats_read(f->core, &u[4], direct_id, body, 0, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(chats_read(f->core, &u[1], "bad", body, 0, &err), CHAT_E_NOT_FOUND, NULL);
    json_decref(body);
    body = json_pack("{s:s}", "messageId", "6929b0da0123456789abcdef");
    CHECK_ERR(chats_read(f->core, &u[1], group_id, body, 0, &err), CHAT_E_VALIDATION, "messageId");
    json_decref(body);
    body = fx_json("{\"messageId\":\"short\"}");
    CHECK_ERR(chats_read(f->core, &u[1], group_id, body, 0, &err), CHAT_E_VALIDATION, "messageId");
    json_decref(body);
    body = fx_json("{\"messageId\":1}");
    CHECK_ERR(chats_read(f->core, &u[1], group_id, body, 0, &err), CHAT_E_VALIDATION, "messageId");
    json_decref(body);
    body = fx_json("{}");
    CHECK_ERR(chats_read(f->core, &u[1], group_id, body, 0, &err), CHAT_E_VALIDATION, "messageId");
    json_decref(body);
    body = fx_json("7");
    CHECK_ERR(chats_read(f->core, &u[1], group_id, body, 0, &err), CHAT_E_INVALID_JSON, NULL);
    json_decref(body);
}

int main(void)
{
    struct fx f;
    const char *names[6] = {"mia", "noah", "olga", "paul", "quinn", "rosa"};
    char direct_id[OID_SIZE], group_id[OID_SIZE];
    fx_open(&f);
    for (int i = 0; i < 6; i++)
        fx_user(&f, names[i], &u[i]);
    test_direct(&f, direct_id);
    test_create_errors(&f);
    test_group(&f, group_id, direct_id);
    test_get_list(&f, direct_id, group_id);
    test_read(&f, group_id, direct_id);
    fx_close(&f);
    return check_done();
}
