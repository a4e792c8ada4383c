/* chats.c - direct and group chats, membership, read marks.
 *
 * A chat view embeds its members and its last message's sender as Authors,
 * loaded in one batch per chat or per page (core__authors_load).
 *
 * Events carry a Chat object serialized once for all its recipients, so its
 * viewer-specific field, unreadCount, cannot be right for each of them:
 * - chat.new on creation: everyone's unreadCount is truly 0 (no messages).
 * - chat.new to a user just added: built for that user (one extra
 *   get_chat), so it is exact.
 * - chat.updated (members added or left, a group renamed): unreadCount is
 *   0 in the event; clients should keep their own count (GET
 *   /api/chats/{id} is exact).
 * - chat.removed (no Chat object) to every connection of a member who left.
 *
 * Membership changes invalidate the member cache (core.c) before anything
 * is published, so the next message after a remove is never fanned out to
 * the removed member from this instance. */
#include <stdlib.h>
#include <string.h>

#include "chatli/bus.h"
#include "core_internal.h"
#include "cursor.h"
#include "page.h"
#include "validate.h"
#include "views.h"
#include "chatli/store.h"
#include "chatli/clock.h"
#include "chatli/log.h"

#define CHAT_MAX_MEMBERS 256

static int not_found(struct chat_err *err)
{
    return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such chat");
}

static int oom(struct chat_err *err)
{
    return core__internal(err, "chats: out of memory");
}

/* Appends the ids the view of chat `row` needs (members + last sender) to
 * `ids`: the page kind's `authors` (below) and chat_authors. */
static int chat_ids(const void *row, struct core_ids *ids)
{
    const struct chat *ch = row;
    for (size_t i = 0; i < ch->n_members; i++)
        if (core__ids_push(ids, ch->member_ids[i]))
            return CHAT_E_INTERNAL;
    if (ch->last_message && core__ids_push(ids, ch->last_message->sender_id))
        return CHAT_E_INTERNAL;
    return 0;
}

/* Loads the authors of one chat. */
static int chat_authors(struct core *c, const struct chat *ch, struct views_authors *authors,
                        struct chat_err *err)
{
    struct core_ids ids = {0};
    if (chat_ids(ch, &ids)) {
        core__ids_cleanup(&ids);
        return oom(err);
    }
    int rc = core__authors_load(c, (const char(*)[OID_SIZE])ids.v, ids.n, authors, err);
    core__ids_cleanup(&ids);
    return rc;
}

/* The Chat JSON of `ch` (new). */
static int chat_json(struct core *c, const struct chat *ch, json_t **out, struct chat_err *err)
{
    struct views_authors authors = {0};
    *out = NULL;
    int rc = chat_authors(c, ch, &authors, err);
    if (rc == 0 && !(*out = views_chat(ch, &authors)))
        rc = oom(err);
    views_authors_cleanup(&authors);
    return rc;
}

/* A shallow copy of `chat` with unreadCount 0, for events sent to several
 * members (see the file comment).  New, or NULL when out of memory. */
static json_t *broadcast_copy(json_t *chat)
{
    json_t *b = json_copy(chat);
    if (b && json_object_set_new(b, "unreadCount", json_integer(0)) != 0) {
        json_decref(b);
        b = NULL;
    }
    return b;
}

static bool has_id(const char (*ids)[OID_SIZE], size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return true;
    return false;
}

/* Reads body.memberIds into `ids` after the caller (ids[0]), collapsing
 * duplicates and the caller.  *n counts the caller. */
static int parse_members(json_t *body, const char *caller, char (*ids)[OID_SIZE], size_t *n,
                         struct chat_err *err)
{
    json_t *arr = json_object_get(body, "memberIds");
    size_t i;
    json_t *v;

    if (!json_is_array(arr))
        return chat_err_set(err, CHAT_E_VALIDATION, "memberIds",
                            "memberIds must be an array of user ids");
    memcpy(ids[0], caller, OID_SIZE);
    *n = 1;
    json_array_foreach(arr, i, v) {
        /* The length check also refuses an id followed by U+0000 and more. */
        if (!json_is_string(v) || json_string_length(v) != OID_LEN ||
            !oid_valid(json_string_value(v)))
            return chat_err_set(err, CHAT_E_VALIDATION, "memberIds",
                                "memberIds must hold user ids");
        const char *id = json_string_value(v);
        if (has_id((const char(*)[OID_SIZE])ids, *n, id))
            continue;
        if (*n == CHAT_MAX_MEMBERS)
            return chat_err_set(err, CHAT_E_VALIDATION, "memberIds",
                                "a chat has at most %d members", CHAT_MAX_MEMBERS);
        memcpy(ids[(*n)++], id, OID_SIZE);
    }
    if (*n < 2)
        return chat_err_set(err, CHAT_E_VALIDATION, "memberIds",
                            "memberIds must name at least one other user");
    return 0;
}

/* True when Author `a` of user `id` is a deleted account's (docs/api.md,
 * "Account lifecycle"): its username is deleted_<its id>, a name no one can
 * register.  A deleted account is an unknown user to chat creation. */
static bool author_deleted(json_t *a, const char *id)
{
    const char *u = json_string_value(json_object_get(a, "username"));
    size_t np = strlen(DELETED_USERNAME_PREFIX);
    return u && strncmp(u, DELETED_USERNAME_PREFIX, np) == 0 && strcmp(u + np, id) == 0;
}

int chats_create(struct core *c, const struct session *s, json_t *body, json_t **out,
                 bool *created, struct chat_err *err)
{
    char(*ids)[OID_SIZE] = NULL;
    size_t n = 0;
    char *name = NULL;
    struct views_authors authors = {0};
    struct chat in = {0}, ch = {0};
    bool existed = false;
    int rc;

    *out = NULL;
    *created = false;
    if (!json_is_object(body))
        return chat_err_set(err, CHAT_E_INVALID_JSON, NULL, "body must be a JSON object");
    ids = malloc(CHAT_MAX_MEMBERS * sizeof *ids);
    if (!ids)
        return oom(err);
    rc = parse_members(body, s->user_id, ids, &n, err);
    if (rc)
        goto done;
    rc = validate_string_field(body, "name", VALIDATE_TRIM, 1, 64, &name, err);
    if (rc)
        goto done;

    /* One lookup checks every member exists and yields the Authors. */
    rc = core__authors_load(c, (const char(*)[OID_SIZE])ids, n, &authors, err);
    if (rc)
        goto done;
    for (size_t i = 1; i < n; i++) {
        if (!views_authors_find(&authors, ids[i]) ||
            author_deleted(views_authors_find(&authors, ids[i]), ids[i])) {
            rc = chat_err_set(err, CHAT_E_VALIDATION, "memberIds", "unknown user id %s", ids[i]);
            goto done;
        }
    }

    int64_t now = clock_now_ms();
    oid_new(in.id, now);
    in.type = (n == 2 && !name) ? CHAT_DIRECT : CHAT_GROUP;
    in.name = name;
    in.member_ids = ids; /* ids[0] is the caller: the store fills `ch` for them */
    in.n_members = n;
    in.created_at = in.updated_at = now;
    rc = store_create_chat(c->store, &in, &ch, &existed, err);
    if (rc)
        goto done;
    *out = views_chat(&ch, &authors);
    if (!*out) {
        rc = oom(err);
        goto done;
    }
    *created = !existed;
    if (!existed) {
        /* New chat, no messages: unreadCount 0 is right for every member. */
        json_t *ev = views_event("chat.new", "chat", *out);
        core__publish(c, BUS_TO_USERS, (const char(*)[OID_SIZE])ch.member_ids, ch.n_members, 0,
                      ev);
        json_decref(ev);
    }

done:
    views_authors_cleanup(&authors);
    store_chat_cleanup(&ch);
    free(name);
    free(ids);
    return rc;
}

/* A chats page (page.h): each chat embeds its members and its last
 * message's sender, and resumes after its (updated_at, id). */
static json_t *chat_view(const void *row, const struct views_authors *a)
{
    return views_chat(row, a);
}

static void chat_cursor(const void *row, char next[CURSOR_MAX])
{
    const struct chat *ch = row;
    struct page_key k = {.ts = ch->updated_at};
    memcpy(k.id, ch->id, OID_SIZE);
    cursor_encode_key(CURSOR_CHATS, &k, next);
}

static const struct core_page_kind chat_kind = {
    .size = sizeof(struct chat),
    .authors = chat_ids,
    .view = chat_view,
    .cursor = chat_cursor,
};

int chats_list(struct core *c, const struct session *s, const struct page_params *pp,
               json_t **out, struct chat_err *err)
{
    struct page_key before;
    struct chat_list list = {0};
    int limit;

    *out = NULL;
    int rc = validate_limit(pp->limit, &limit, err);
    if (rc)
        return rc;
    if (pp->before && (rc = cursor_decode_key(CURSOR_CHATS, pp->before, &before, err)))
        return rc;
    rc = store_list_chats(c->store, s->user_id, pp->before ? &before : NULL, limit + 1, &list,
                          err);
    if (rc == 0)
        rc = core__page_build(c, &chat_kind, list.items, list.n, limit, out, err);
    store_chat_list_cleanup(&list);
    return rc;
}

int chats_get(struct core *c, const struct session *s, const char *id, json_t **out,
              struct chat_err *err)
{
    struct chat ch = {0};
    *out = NULL;
    if (!oid_valid(id))
        return not_found(err);
    int rc = store_get_chat(c->store, id, s->user_id, &ch, err);
    if (rc == 0)
        rc = chat_json(c, &ch, out, err);
    store_chat_cleanup(&ch);
    return rc;
}

int chats_add_member(struct core *c, const struct session *s, const char *id, json_t *body,
                     json_t **out, struct chat_err *err)
{
    char *user_id = NULL;
    struct chat ch = {0}, theirs = {0};
    struct views_authors authors = {0};
    bool added = false;
    int rc;

    *out = NULL;
    if (!oid_valid(id))
        return not_found(err);
    if (!json_is_object(body))
        return chat_err_set(err, CHAT_E_INVALID_JSON, NULL, "body must be a JSON object");
    rc = validate_string_field(body, "userId", VALIDATE_REQUIRED, 0, SIZE_MAX, &user_id, err);
    if (rc)
        return rc;
    if (!oid_valid(user_id)) {
        rc = chat_err_set(err, CHAT_E_VALIDATION, "userId", "userId must be a user id");
        goto done;
    }

    rc = store_get_chat(c->store, id, s->user_id, &ch, err);
    if (rc)
        goto done;
    if (ch.type != CHAT_GROUP) {
        rc = chat_err_set(err, CHAT_E_BAD_REQUEST, NULL, "members can only be added to groups");
        goto done;
    }
    if (has_id((const char(*)[OID_SIZE])ch.member_ids, ch.n_members, user_id)) {
        rc = chat_json(c, &ch, out, err); /* adding a member again is a no-op */
        goto done;
    }
    /* Checked before the insert, so two concurrent adds can overshoot by
     * one; the limit is a sanity bound on fan-out, not an invariant. */
    if (ch.n_members >= CHAT_MAX_MEMBERS) {
        rc = chat_err_set(err, CHAT_E_VALIDATION, "userId", "the group already has %d members",
                          CHAT_MAX_MEMBERS);
        goto done;
    }
    {
        struct user u = {0};
        rc = store_get_user(c->store, user_id, &u, err);
        if (rc == 0 && CORE_USER_DELETED(&u)) /* a deleted account is no user */
            rc = CHAT_E_NOT_FOUND;
        store_user_cleanup(&u);
        if (rc == CHAT_E_NOT_FOUND)
            rc = chat_err_set(err, CHAT_E_VALIDATION, "userId", "no such user");
        if (rc)
            goto done;
    }

    rc = store_add_member(c->store, id, user_id, &added, err);
    if (rc)
        goto done;
    core__chat_members_invalidate(c, id);

    store_chat_cleanup(&ch);
    rc = store_get_chat(c->store, id, s->user_id, &ch, err);
    if (rc == 0)
        rc = chat_authors(c, &ch, &authors, err);
    if (rc == 0 && !(*out = views_chat(&ch, &authors)))
        rc = oom(err);
    if (rc || !added)
        goto done;

    /* chat.new for the newcomer, with its own unreadCount. */
    struct chat_err e2 = {0};
    if (store_get_chat(c->store, id, user_id, &theirs, &e2) == 0) {
        json_t *view = views_chat(&theirs, &authors);
        json_t *ev = views_event("chat.new", "chat", view);
        char one[1][OID_SIZE];
        memcpy(one[0], user_id, OID_SIZE);
        core__publish(c, BUS_TO_USERS, (const char(*)[OID_SIZE])one, 1, 0, ev);
        json_decref(ev);
        json_decref(view);
    } else {
        log_warn("chats: added member but cannot read the chat back: %s", e2.msg);
    }

    /* chat.updated for everyone else. */
    struct core_ids others = {0};
    for (size_t i = 0; i < ch.n_members; i++)
        if (strcmp(ch.member_ids[i], user_id) != 0 && core__ids_push(&others, ch.member_ids[i]))
            log_error("chats: out of memory listing members for chat.updated");
    json_t *bc = broadcast_copy(*out);
    json_t *ev = views_event("chat.updated", "chat", bc);
    core__publish(c, BUS_TO_USERS, (const char(*)[OID_SIZE])others.v, others.n, 0, ev);
    json_decref(ev);
    json_decref(bc);
    core__ids_cleanup(&others);

done:
    if (rc) {
        json_decref(*out);
        *out = NULL;
    }
    views_authors_cleanup(&authors);
    store_chat_cleanup(&theirs);
    store_chat_cleanup(&ch);
    free(user_id);
    return rc;
}

/* chat.updated with `view` (its unreadCount set to 0) to every member of `ch`. */
static void publish_updated(struct core *c, const struct chat *ch, json_t *view)
{
    json_t *bc = broadcast_copy(view);
    json_t *ev = bc ? views_event("chat.updated", "chat", bc) : NULL;
    if (ev)
        core__publish(c, BUS_TO_USERS, (const char(*)[OID_SIZE])ch->member_ids, ch->n_members, 0,
                      ev);
    else
        log_error("chats: out of memory building chat.updated");
    json_decref(ev);
    json_decref(bc);
}

int chats_rename(struct core *c, const struct session *s, const char *id, json_t *body,
                 json_t **out, struct chat_err *err)
{
    struct chat ch = {0};
    char *name = NULL;

    *out = NULL;
    if (!oid_valid(id))
        return not_found(err);
    if (!json_is_object(body))
        return chat_err_set(err, CHAT_E_INVALID_JSON, NULL, "body must be a JSON object");
    int rc = store_get_chat(c->store, id, s->user_id, &ch, err);
    if (rc == 0 && ch.type != CHAT_GROUP)
        rc = chat_err_set(err, CHAT_E_BAD_REQUEST, NULL, "only groups can be renamed");
    store_chat_cleanup(&ch);
    if (rc == 0)
        rc = validate_string_field(body, "name", VALIDATE_REQUIRED | VALIDATE_TRIM, 1, 64, &name,
                                   err);
    if (rc == 0)
        rc = store_rename_chat(c->store, id, name, err);
    if (rc == 0)
        rc = store_get_chat(c->store, id, s->user_id, &ch, err);
    if (rc == 0)
        rc = chat_json(c, &ch, out, err);
    if (rc == 0)
        publish_updated(c, &ch, *out);
    store_chat_cleanup(&ch);
    free(name);
    return rc;
}

/* chat.removed to every connection of `user_id`, who left chat `chat_id`. */
static void publish_removed(struct core *c, const char *chat_id, const char *user_id)
{
    char one[1][OID_SIZE];
    memcpy(one[0], user_id, OID_SIZE);
    json_t *ev = json_pack("{s:s, s:s}", "type", "chat.removed", "chatId", chat_id);
    if (ev)
        core__publish(c, BUS_TO_USERS, (const char(*)[OID_SIZE])one, 1, 0, ev);
    else
        log_error("chats: out of memory building chat.removed");
    json_decref(ev);
}

/* After `user_id` left chat `id` (committed): chat.removed to every
 * connection of theirs, chat.updated to the members who stay.  A failure
 * to announce it is logged, not returned (members see it on their next
 * GET). */
static void announce_left(struct core *c, const char *id, const char *user_id)
{
    struct chat ch = {0};
    publish_removed(c, id, user_id);
    struct chat_err e2 = {0};
    json_t *view = NULL;
    if (store_get_chat(c->store, id, NULL, &ch, &e2) != 0 || chat_json(c, &ch, &view, &e2) != 0) {
        if (e2.code != CHAT_E_NOT_FOUND)
            log_warn("chats: cannot announce a member leaving: %s", e2.msg);
    } else {
        /* Read with no viewer, so unreadCount is already 0. */
        json_t *ev = views_event("chat.updated", "chat", view);
        core__publish(c, BUS_TO_USERS, (const char(*)[OID_SIZE])ch.member_ids, ch.n_members, 0,
                      ev);
        json_decref(ev);
    }
    json_decref(view);
    store_chat_cleanup(&ch);
}

int chats_remove_member(struct core *c, const struct session *s, const char *id,
                        const char *user_id, struct chat_err *err)
{
    struct chat ch = {0};
    bool removed = false;

    if (!oid_valid(id) || !oid_valid(user_id))
        return not_found(err);
    int rc = store_get_chat(c->store, id, s->user_id, &ch, err);
    if (rc == 0 && ch.type != CHAT_GROUP)
        rc = chat_err_set(err, CHAT_E_BAD_REQUEST, NULL, "members can only leave groups");
    else if (rc == 0 && strcmp(user_id, s->user_id) != 0)
        rc = chat_err_set(err, CHAT_E_FORBIDDEN, NULL, "a member may only remove itself");
    store_chat_cleanup(&ch);
    if (rc)
        return rc;

    rc = store_remove_member(c->store, id, user_id, &removed, err);
    if (rc)
        return rc;
    core__chat_members_invalidate(c, id);
    if (removed)
        announce_left(c, id, user_id);
    return 0;
}

void core__chats_member_gone(struct core *c, const char *chat_id, const char *user_id)
{
    core__chat_members_invalidate(c, chat_id);
    announce_left(c, chat_id, user_id);
}

int chats_read(struct core *c, const struct session *s, const char *chat_id, json_t *body,
               uint64_t origin_conn, struct chat_err *err)
{
    char *message_id = NULL;
    char(*members)[OID_SIZE] = NULL;
    size_t n = 0;
    bool moved = false;
    int64_t seq = 0;

    if (!oid_valid(chat_id))
        return not_found(err);
    if (!json_is_object(body))
        return chat_err_set(err, CHAT_E_INVALID_JSON, NULL, "body must be a JSON object");
    int rc = validate_string_field(body, "messageId", VALIDATE_REQUIRED, 0, SIZE_MAX, &message_id,
                                   err);
    if (rc)
        return rc;
    if (!oid_valid(message_id)) {
        rc = chat_err_set(err, CHAT_E_VALIDATION, "messageId", "messageId must be a message id");
        goto done;
    }
    rc = core__chat_members(c, chat_id, s->user_id, &members, &n, err);
    if (rc)
        goto done;
    rc = store_set_read_seq(c->store, chat_id, s->user_id, message_id, &moved, &seq, err);
    if (rc == CHAT_E_NOT_FOUND)
        rc = chat_err_set(err, CHAT_E_VALIDATION, "messageId", "no such message in this chat");
    if (rc || !moved)
        goto done;

    json_t *ev = json_object();
    if (ev && json_object_set_new(ev, "type", json_string("read")) == 0 &&
        json_object_set_new(ev, "chatId", json_string(chat_id)) == 0 &&
        json_object_set_new(ev, "userId", json_string(s->user_id)) == 0 &&
        json_object_set_new(ev, "messageId", json_string(message_id)) == 0 &&
        json_object_set_new(ev, "seq", json_integer(seq)) == 0)
        core__publish(c, BUS_TO_USERS, (const char(*)[OID_SIZE])members, n, origin_conn, ev);
    else
        log_error("chats: out of memory building a read event");
    json_decref(ev);

done:
    free(members);
    free(message_id);
    return rc;
}
