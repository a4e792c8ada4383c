/* messages.c - sending and listing chat messages.
 *
 * messages_send_async is the one implementation of POST .../messages and the
 * WS message.send frame.  Everything that needs the store happens on the
 * calling thread BEFORE the append is queued: validation, the member list
 * for fan-out (member cache, else store_get_chat) and the sender's Author.
 * The append then goes to the store's writer thread, which group-commits it
 * and calls back on that thread; the callback only builds JSON, publishes
 * message.new (a non-blocking bus hand-off) and calls the caller's cb, so
 * the writer never waits on anything of ours.
 *
 * A clientId duplicate (the store returns the first message with existed)
 * is not published again: its recipients already got it, and a retry must
 * not show up twice.  The sender's own connection is skipped (origin_conn):
 * it gets message.ack instead; its other devices do get message.new.
 *
 * Listing: `before` is an opaque cursor of the last seq shown (newest first);
 * `afterSeq` is the catch-up form (oldest first) whose nextCursor is the
 * plain decimal seq, as the contract says, so clients pass it back as
 * afterSeq.  Giving both is ambiguous and answered 422 on afterSeq.
 * messages_sync_page is the gateway's sync frame: it pages by position
 * (below), not by seq, and returns ready frames.
 *
 * Edits and deletions (issue 13): each chat has one position counter; a
 * new message takes the next position as its seq, an edit or a deletion
 * the next one as the message's pos (the store takes it in the change's
 * transaction).  messages_edit / messages_delete check membership (the
 * fan-out list), the message and its sender, have the store commit the
 * change, then publish message.updated / message.deleted with the
 * position as "seq" to every connection of every member (no origin is
 * skipped: REST has none).  sync sends every message with pos > the
 * client's position, in pos order, in its current state: as message.new
 * when it was created after that position, else as its change, so a
 * client that was away ends with exactly the stored history. */
#include <stdio.h>
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

/* afterSeq is read as at most 18 decimal digits, which always fit an
 * int64; the typed sync page refuses the same larger values. */
#define AFTER_SEQ_DIGITS 18
#define AFTER_SEQ_MAX 999999999999999999LL

static int not_found(struct chat_err *err)
{
    return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such chat");
}

static int oom(struct chat_err *err)
{
    return core__internal(err, "messages: out of memory");
}

/* Everything the writer-thread callback needs; owned by the callback.
 * Exactly one of cb and text_cb is set. */
struct send_ctx {
    struct core *c;
    messages_send_cb cb;
    messages_send_text_cb text_cb;
    void *arg;
    uint64_t origin_conn;
    char (*members)[OID_SIZE]; /* fan-out recipients */
    size_t n_members;
    json_t *sender;            /* the sender's Author */
};

static void send_ctx_free(struct send_ctx *x)
{
    free(x->members);
    json_decref(x->sender);
    free(x);
}

/* Calls the caller's completion, whichever form it asked for. */
static void complete(struct send_ctx *x, int rc, json_t *msg, const char *text, size_t len,
                     bool created, const struct chat_err *err)
{
    if (x->text_cb)
        x->text_cb(x->arg, rc, rc ? NULL : text, rc ? 0 : len, created, err);
    else
        x->cb(x->arg, rc, rc ? NULL : msg, created, err);
}

/* The message.new frame around an already serialized Message: jansson
 * wrote `msg_text`, and the frame is that text inside a fixed prefix and
 * suffix, so the Message is serialized once for the event and the REST
 * answer instead of twice (jansson costs ~85 instructions per output byte,
 * ~30k per message; this runs on the store's single writer thread).  The
 * frame is exactly what json_dumps of views_event("message.new", "message",
 * msg) gives.  New (free()), or NULL when out of memory. */
static char *message_new_frame(const char *msg_text, size_t len, size_t *out_len)
{
    static const char head[] = "{\"type\":\"message.new\",\"message\":";
    char *f = malloc(sizeof head - 1 + len + 2);
    if (!f)
        return NULL;
    memcpy(f, head, sizeof head - 1);
    memcpy(f + sizeof head - 1, msg_text, len);
    f[sizeof head - 1 + len] = '}';
    f[sizeof head + len] = '\0';
    *out_len = sizeof head + len;
    return f;
}

/* Runs on the store's writer thread: no store calls, no blocking. */
static void on_appended(void *arg, int rc, const struct message *m, bool existed,
                        const struct chat_err *serr)
{
    struct send_ctx *x = arg;
    struct chat_err e = {0};

    if (rc) {
        if (!serr) {
            chat_err_set(&e, rc, NULL, NULL);
            serr = &e;
        }
        complete(x, rc, NULL, NULL, 0, false, serr);
        send_ctx_free(x);
        return;
    }
    /* The text is needed for the event (a new message, when there is a
     * bus) and for a caller that wants text; the object only for a caller
     * that wants the object (REST).  A text-only caller (the gateway) gets
     * the text built without the object (views_message_text). */
    bool need_text = x->text_cb || (!existed && x->c->bus);
    json_t *msg = NULL;
    char *text = NULL;
    size_t len = 0;
    if (x->text_cb) {
        text = views_message_text(m, x->sender, &len);
    } else {
        msg = views_message(m, x->sender);
        text = msg && need_text ? json_dumps(msg, JSON_COMPACT) : NULL;
        len = text ? strlen(text) : 0;
    }
    if (x->text_cb ? !text : !msg) {
        core__internal(&e, "messages: out of memory building a stored message");
        complete(x, CHAT_E_INTERNAL, NULL, NULL, 0, false, &e);
        json_decref(msg);
        free(text);
        send_ctx_free(x);
        return;
    }
    if (!existed && x->c->bus) {
        size_t flen = 0;
        char *frame = text ? message_new_frame(text, len, &flen) : NULL;
        if (frame)
            core__publish_text(x->c, BUS_TO_USERS, (const char(*)[OID_SIZE])x->members,
                               x->n_members, x->origin_conn, frame, flen);
        else
            log_error("messages: cannot serialize a message.new frame (out of memory)");
        free(frame);
    }
    complete(x, 0, msg, text, len, !existed, NULL);
    json_decref(msg);
    free(text);
    send_ctx_free(x);
}

/* The fan-out list and the sender's Author: through the caches and the
 * store, or, with `cached_only`, from the caches alone (*deferred set when
 * that is not enough; nothing else is done then). */
static int send_lookups(struct core *c, const struct session *s, const char *chat_id,
                        struct send_ctx *x, bool cached_only, bool *deferred,
                        struct chat_err *err)
{
    if (!cached_only) {
        int rc = core__chat_members(c, chat_id, s->user_id, &x->members, &x->n_members, err);
        /* The callback may not call the store, so the sender's Author is
         * fetched now (it is the same user for a dedupe hit too: the dedupe
         * key includes the sender). */
        return rc ? rc : core__author(c, s->user_id, &x->sender, err);
    }
    uint64_t epoch;
    if (core__chat_members_cached(c, chat_id, s->user_id, &x->members, &x->n_members))
        x->sender = core__author_cache_get(&c->priv->authors, s->user_id, &epoch);
    *deferred = x->sender == NULL;
    return 0;
}

static int send_async(struct core *c, const struct session *s, const char *chat_id, json_t *body,
                      bool require_client_id, uint64_t origin_conn, messages_send_cb cb,
                      messages_send_text_cb text_cb, void *arg, bool *deferred,
                      struct chat_err *err)
{
    char *text = NULL, *attachment = NULL, *client_id = NULL;
    struct send_ctx *x = NULL;
    int rc;

    if (!oid_valid(chat_id))
        return not_found(err);
    if (!json_is_object(body))
        return chat_err_set(err, CHAT_E_INVALID_JSON, NULL, "body must be a JSON object");
    rc = validate_url_field(body, "attachmentUrl", &attachment, err);
    if (rc)
        goto fail;
    rc = validate_string_field(body, "text",
                               VALIDATE_TRIM | (attachment ? 0 : VALIDATE_REQUIRED),
                               attachment ? 0 : 1, 4000, &text, err);
    if (rc)
        goto fail;
    if (!text && !(text = strdup(""))) {
        rc = oom(err);
        goto fail;
    }
    /* clientId is an opaque client key: compared byte for byte, not trimmed. */
    rc = validate_string_field(body, "clientId", require_client_id ? VALIDATE_REQUIRED : 0, 1, 64,
                               &client_id, err);
    if (rc)
        goto fail;

    x = calloc(1, sizeof *x);
    if (!x) {
        rc = oom(err);
        goto fail;
    }
    x->c = c;
    x->cb = cb;
    x->text_cb = text_cb;
    x->arg = arg;
    x->origin_conn = origin_conn;
    rc = send_lookups(c, s, chat_id, x, deferred != NULL, deferred, err);
    if (rc || (deferred && *deferred))
        goto fail;

    struct message m = {0};
    int64_t now = clock_now_ms();
    oid_new(m.id, now);
    memcpy(m.chat_id, chat_id, OID_SIZE);
    memcpy(m.sender_id, s->user_id, OID_SIZE);
    m.text = text;
    m.attachment_url = attachment;
    m.client_id = client_id;
    m.created_at = now;
    rc = store_append_message(c->store, &m, on_appended, x);
    if (rc) {
        chat_err_set(err, rc, NULL, rc == CHAT_E_UNAVAILABLE ? "the store is shutting down" : NULL);
        goto fail;
    }
    /* From here on the callback owns x (and may already have freed it). */
    rc = 0;
    x = NULL;
    goto done;

fail:
    if (x)
        send_ctx_free(x);
done:
    free(text);
    free(attachment);
    free(client_id);
    return rc;
}

int messages_send_async(struct core *c, const struct session *s, const char *chat_id,
                        json_t *body, bool require_client_id, uint64_t origin_conn,
                        messages_send_cb cb, void *arg, struct chat_err *err)
{
    return send_async(c, s, chat_id, body, require_client_id, origin_conn, cb, NULL, arg, NULL,
                      err);
}

int messages_send_try(struct core *c, const struct session *s, const char *chat_id, json_t *body,
                      bool require_client_id, uint64_t origin_conn, messages_send_text_cb cb,
                      void *arg, bool *deferred, struct chat_err *err)
{
    *deferred = false;
    return send_async(c, s, chat_id, body, require_client_id, origin_conn, NULL, cb, arg,
                      deferred, err);
}

int messages_send_async_text(struct core *c, const struct session *s, const char *chat_id,
                             json_t *body, bool require_client_id, uint64_t origin_conn,
                             messages_send_text_cb cb, void *arg, struct chat_err *err)
{
    return send_async(c, s, chat_id, body, require_client_id, origin_conn, NULL, cb, arg, NULL,
                      err);
}

void messages_set_completion_hooks(struct core *c, void (*begin)(void), void (*end)(void))
{
    store_set_completion_hooks(c->store, begin, end);
}

/* ---- listing ------------------------------------------------------------- */

/* A messages page (page.h): each message embeds its sender.  Newest-first
 * pages resume with an opaque cursor of the last seq shown; the afterSeq
 * form with that seq in plain decimal, as the contract says. */
static int message_authors(const void *row, struct core_ids *ids)
{
    return core__ids_push(ids, ((const struct message *)row)->sender_id);
}

static json_t *message_view(const void *row, const struct views_authors *a)
{
    const struct message *m = row;
    return views_message(m, views_authors_find(a, m->sender_id));
}

static void before_cursor(const void *row, char next[CURSOR_MAX])
{
    cursor_encode_seq(((const struct message *)row)->seq, next);
}

static void after_cursor(const void *row, char next[CURSOR_MAX])
{
    snprintf(next, CURSOR_MAX, "%lld", (long long)((const struct message *)row)->seq);
}

static const struct core_page_kind before_kind = {
    .size = sizeof(struct message),
    .authors = message_authors,
    .view = message_view,
    .cursor = before_cursor,
};

static const struct core_page_kind after_kind = {
    .size = sizeof(struct message),
    .authors = message_authors,
    .view = message_view,
    .cursor = after_cursor,
};

/* 0 when the caller belongs to chat `chat_id`, else "no such chat". */
static int check_member(struct core *c, const struct session *s, const char *chat_id,
                        struct chat_err *err)
{
    int rc = store_is_member(c->store, chat_id, s->user_id, err);
    return rc == CHAT_E_NOT_FOUND ? not_found(err) : rc;
}

static int bad_after_seq(struct chat_err *err)
{
    return chat_err_set(err, CHAT_E_VALIDATION, "afterSeq",
                        "afterSeq must be a non-negative integer");
}

int messages_list(struct core *c, const struct session *s, const char *chat_id,
                  const struct page_params *pp, json_t **out, struct chat_err *err)
{
    struct message_list list = {0};
    int64_t before = 0, after = 0;
    int limit;

    *out = NULL;
    if (!oid_valid(chat_id))
        return not_found(err);
    int rc = validate_limit(pp->limit, &limit, err);
    if (rc)
        return rc;
    if (pp->after_seq) {
        if (pp->before)
            return chat_err_set(err, CHAT_E_VALIDATION, "afterSeq",
                                "afterSeq and before cannot be combined");
        if (!validate_decimal(pp->after_seq, AFTER_SEQ_DIGITS, &after))
            return bad_after_seq(err);
    } else if (pp->before && (rc = cursor_decode_seq(pp->before, &before, err))) {
        return rc;
    }
    rc = check_member(c, s, chat_id, err);
    if (rc)
        return rc;

    if (pp->after_seq)
        rc = store_list_messages_after(c->store, chat_id, after, limit + 1, &list, err);
    else
        rc = store_list_messages(c->store, chat_id, before, limit + 1, &list, err);
    if (rc == 0)
        rc = core__page_build(c, pp->after_seq ? &after_kind : &before_kind, list.items, list.n,
                              limit, out, err);
    store_message_list_cleanup(&list);
    return rc;
}

/* The frame that brings a client at position `after` up to date with
 * message `m` (whose view is `msg`): a message created after `after` comes
 * whole as message.new, an older one's change as message.updated or
 * message.deleted.  Each carries the message's position (pos) as "seq", so
 * the client knows where it stands.  New, or NULL when out of memory. */
static json_t *catch_up_frame(const struct message *m, json_t *msg, int64_t after)
{
    if (m->seq > after)
        return json_pack("{s:s, s:I, s:O}", "type", "message.new", "seq", (json_int_t)m->pos,
                         "message", msg);
    if (m->deleted)
        return json_pack("{s:s, s:s, s:s, s:I}", "type", "message.deleted", "chatId", m->chat_id,
                         "messageId", m->id, "seq", (json_int_t)m->pos);
    return json_pack("{s:s, s:I, s:O}", "type", "message.updated", "seq", (json_int_t)m->pos,
                     "message", msg);
}

int messages_sync_page(struct core *c, const struct session *s, const char *chat_id,
                       int64_t after_seq, int limit, struct messages_sync_page *out,
                       struct chat_err *err)
{
    struct message_list list = {0};

    out->messages = NULL;
    out->frames = NULL;
    out->last_seq = after_seq;
    out->more = false;
    if (!oid_valid(chat_id))
        return not_found(err);
    if (limit < 1 || limit > 100)
        return chat_err_set(err, CHAT_E_VALIDATION, "limit",
                            "limit must be an integer from 1 to 100");
    /* The bound of messages_list's afterSeq, so both refuse the same seqs. */
    if (after_seq < 0 || after_seq > AFTER_SEQ_MAX)
        return bad_after_seq(err);
    int rc = check_member(c, s, chat_id, err);
    /* Positions, not seqs: every message created or changed after
     * after_seq, each once, in its current state. */
    if (rc == 0)
        rc = store_list_changes_after(c->store, chat_id, after_seq, limit + 1, &list, err);
    size_t shown = list.n > (size_t)limit ? (size_t)limit : list.n;
    if (rc == 0)
        rc = core__page_items(c, &after_kind, list.items, shown, &out->messages, err);
    if (rc == 0 && !(out->frames = json_array()))
        rc = oom(err);
    for (size_t i = 0; rc == 0 && i < shown; i++) {
        json_t *f = catch_up_frame(&list.items[i], json_array_get(out->messages, i), after_seq);
        if (!f || json_array_append_new(out->frames, f) != 0)
            rc = oom(err);
    }
    if (rc == 0 && shown > 0) {
        out->last_seq = list.items[shown - 1].pos;
        out->more = list.n > (size_t)limit;
    }
    store_message_list_cleanup(&list);
    return rc;
}

void messages_sync_page_cleanup(struct messages_sync_page *p)
{
    json_decref(p->messages);
    json_decref(p->frames);
    p->messages = NULL;
    p->frames = NULL;
}

/* ---- edits and deletions (issue 13) --------------------------------------- */

/* What an edit or a deletion checks before changing anything: the caller
 * is a member (the fan-out list comes back in *members), the message is in
 * the chat, and the caller sent it.  `m` gets the message. */
static int change_checks(struct core *c, const struct session *s, const char *chat_id,
                         const char *message_id, const char *verb, struct message *m,
                         char (**members)[OID_SIZE], size_t *n_members, struct chat_err *err)
{
    *members = NULL;
    *n_members = 0;
    if (!oid_valid(chat_id) || !oid_valid(message_id))
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such message");
    int rc = core__chat_members(c, chat_id, s->user_id, members, n_members, err);
    if (rc == CHAT_E_NOT_FOUND)
        rc = not_found(err);
    if (rc == 0 && (rc = store_get_message(c->store, chat_id, message_id, m, err)) ==
                       CHAT_E_NOT_FOUND)
        rc = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such message");
    if (rc == 0 && strcmp(m->sender_id, s->user_id) != 0)
        rc = chat_err_set(err, CHAT_E_FORBIDDEN, NULL, "only the sender may %s a message", verb);
    if (rc) {
        store_message_cleanup(m);
        free(*members);
        *members = NULL;
    }
    return rc;
}

int messages_edit(struct core *c, const struct session *s, const char *chat_id,
                  const char *message_id, json_t *body, json_t **out, struct chat_err *err)
{
    struct message m = {0}, stored = {0};
    char (*members)[OID_SIZE] = NULL;
    size_t n_members = 0;
    char *text = NULL;
    json_t *sender = NULL, *msg = NULL;
    bool changed = false;

    *out = NULL;
    int rc = change_checks(c, s, chat_id, message_id, "edit", &m, &members, &n_members, err);
    if (rc == 0 && m.deleted)
        rc = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "the message was deleted");
    if (rc == 0 && !json_is_object(body))
        rc = chat_err_set(err, CHAT_E_INVALID_JSON, NULL, "body must be a JSON object");
    /* The rules of a send: 1..4000 after trimming, or "" when the message
     * has an attachment (which an edit keeps). */
    if (rc == 0)
        rc = validate_string_field(body, "text", VALIDATE_TRIM | VALIDATE_REQUIRED,
                                   m.attachment_url ? 0 : 1, 4000, &text, err);
    if (rc == 0)
        rc = store_change_message(c->store, chat_id, message_id, text, clock_now_ms(), &stored,
                                  &changed, err);
    if (rc == 0)
        rc = core__author(c, stored.sender_id, &sender, err);
    if (rc == 0 && !(msg = views_message(&stored, sender)))
        rc = oom(err);
    if (rc == 0 && c->bus) {
        json_t *frame = json_pack("{s:s, s:I, s:O}", "type", "message.updated", "seq",
                                  (json_int_t)stored.pos, "message", msg);
        if (frame)
            core__publish(c, BUS_TO_USERS, (const char(*)[OID_SIZE])members, n_members, 0, frame);
        else
            log_error("messages: cannot build a message.updated frame (out of memory)");
        json_decref(frame);
    }
    if (rc == 0) {
        *out = msg;
        msg = NULL;
    }
    json_decref(msg);
    json_decref(sender);
    free(text);
    free(members);
    store_message_cleanup(&m);
    store_message_cleanup(&stored);
    return rc;
}

int messages_delete(struct core *c, const struct session *s, const char *chat_id,
                    const char *message_id, struct chat_err *err)
{
    struct message m = {0}, stored = {0};
    char (*members)[OID_SIZE] = NULL;
    size_t n_members = 0;
    bool changed = false;

    int rc = change_checks(c, s, chat_id, message_id, "delete", &m, &members, &n_members, err);
    /* Deleting a tombstone again is a no-op (DELETE is idempotent). */
    if (rc == 0 && !m.deleted)
        rc = store_change_message(c->store, chat_id, message_id, NULL, clock_now_ms(), &stored,
                                  &changed, err);
    if (rc == 0 && changed && c->bus) {
        json_t *frame = json_pack("{s:s, s:s, s:s, s:I}", "type", "message.deleted", "chatId",
                                  chat_id, "messageId", message_id, "seq",
                                  (json_int_t)stored.pos);
        if (frame)
            core__publish(c, BUS_TO_USERS, (const char(*)[OID_SIZE])members, n_members, 0, frame);
        else
            log_error("messages: cannot build a message.deleted frame (out of memory)");
        json_decref(frame);
    }
    free(members);
    store_message_cleanup(&m);
    store_message_cleanup(&stored);
    return rc;
}
