/* test_members.c - core/members.c: the chat member cache and the typing
 * frame built on it.
 *
 * What must hold: typing reaches the chat's other members only, as the
 * exact frame {"type":"typing","chatId","userId"} ("type" first, which is
 * how the gateway tells it is ephemeral); a chat the caller is not in is
 * "no such chat", even when the cache still lists the caller from before;
 * a member who joined behind this core's back (another instance) can type
 * at once, because a cached list is never trusted to say who is NOT a
 * member; and a membership change through this core shows at once. */
#include "fixture.h"

static struct session u[4]; /* vera, walt, xena, yuri (never in a chat) */

static void make_chat(struct fx *f, const char *name, int n, const struct session *with,
                      char id[OID_SIZE])
{
    struct chat_err err = {0};
    json_t *out = NULL;
    bool created = false;
    json_t *ids = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(ids, json_string(with[i].user_id));
    json_t *body = json_pack("{s:o, s:s}", "memberIds", ids, "name", name);
    CHECK_EQ_INT(chats_create(f->core, &u[0], body, &out, &created, &err), 0);
    snprintf(id, OID_SIZE, "%s", out ? fx_str(out, "id") : "");
    json_decref(out);
    json_decref(body);
}

/* The one typing event recorded since the last clear, or NULL. */
static struct fx_event *typing_event(struct fx *f)
{
    CHECK_EQ_INT(fx_count_events(f, "typing"), 1);
    return fx_find_event(f, "typing", 0);
}

static void test_typing(struct fx *f)
{
    struct chat_err err = {0};
    char chat[OID_SIZE];
    make_chat(f, "trio", 2, &u[1], chat);

    fx_clear_events(f);
    CHECK_EQ_INT(chats_typing(f->core, &u[0], chat, &err), 0);
    struct fx_event *ev = typing_event(f);
    if (ev) {
        CHECK_EQ_INT(ev->scope, BUS_TO_USERS);
        CHECK_EQ_INT(ev->skip_conn, 0);
        CHECK_EQ_INT(ev->n_users, 2);
        CHECK(fx_event_has_user(ev, u[1].user_id) && fx_event_has_user(ev, u[2].user_id));
        CHECK(!fx_event_has_user(ev, u[0].user_id));
        /* The recorder keeps the key order of the bytes it was given. */
        char want[128];
        snprintf(want, sizeof want, "{\"type\":\"typing\",\"chatId\":\"%s\",\"userId\":\"%s\"}",
                 chat, u[0].user_id);
        char *got = json_dumps(ev->frame, JSON_COMPACT);
        CHECK_EQ_STR(got, want);
        free(got);
    }

    /* Not a member, no such chat, not an id: all the same answer. */
    fx_clear_events(f);
    CHECK_ERR(chats_typing(f->core, &u[3], chat, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(chats_typing(f->core, &u[0], "6929b0da0123456789abcdef", &err), CHAT_E_NOT_FOUND,
              NULL);
    CHECK_ERR(chats_typing(f->core, &u[0], "../x", &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_EQ_INT(fx_count_events(f, "typing"), 0);

    /* Leaving through this core shows at once: the leaver gets no more
     * typing, and cannot type there any more, though the list was cached. */
    CHECK_EQ_INT(chats_remove_member(f->core, &u[2], chat, u[2].user_id, &err), 0);
    fx_clear_events(f);
    CHECK_EQ_INT(chats_typing(f->core, &u[0], chat, &err), 0);
    ev = typing_event(f);
    if (ev) {
        CHECK_EQ_INT(ev->n_users, 1);
        CHECK(fx_event_has_user(ev, u[1].user_id));
    }
    CHECK_ERR(chats_typing(f->core, &u[2], chat, &err), CHAT_E_NOT_FOUND, NULL);

    /* Alone in a chat: nobody to tell, and no error. */
    CHECK_EQ_INT(chats_remove_member(f->core, &u[1], chat, u[1].user_id, &err), 0);
    fx_clear_events(f);
    CHECK_EQ_INT(chats_typing(f->core, &u[0], chat, &err), 0);
    CHECK_EQ_INT(fx_count_events(f, "typing"), 0);
}

/* A join through another instance (the store written directly) is not in
 * this core's cached list, yet the newcomer may type at once: a list that
 * lacks the caller is checked against the store. */
static void test_join_elsewhere(struct fx *f)
{
    struct chat_err err = {0};
    char chat[OID_SIZE];
    make_chat(f, "duo", 1, &u[1], chat);
    fx_clear_events(f);
    CHECK_EQ_INT(chats_typing(f->core, &u[1], chat, &err), 0); /* caches [vera, walt] */
    bool added = false;
    CHECK_EQ_INT(store_add_member(f->st, chat, u[3].user_id, &added, &err), 0);
    CHECK(added);
    fx_clear_events(f);
    CHECK_EQ_INT(chats_typing(f->core, &u[3], chat, &err), 0);
    struct fx_event *ev = typing_event(f);
    if (ev) {
        CHECK_EQ_INT(ev->n_users, 2);
        CHECK(fx_event_has_user(ev, u[0].user_id) && fx_event_has_user(ev, u[1].user_id));
    }
    /* ...which also refreshed the cache for everyone else. */
    fx_clear_events(f);
    CHECK_EQ_INT(chats_typing(f->core, &u[0], chat, &err), 0);
    ev = typing_event(f);
    if (ev)
        CHECK(fx_event_has_user(ev, u[3].user_id));
}

int main(void)
{
    struct fx f;
    fx_open(&f);
    fx_user(&f, "vera", &u[0]);
    fx_user(&f, "walt", &u[1]);
    fx_user(&f, "xena", &u[2]);
    fx_user(&f, "yuri", &u[3]);
    test_typing(&f);
    test_join_elsewhere(&f);
    fx_close(&f);
    return check_done();
}
