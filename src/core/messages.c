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
 * afterSeq.  Giving both is ambiguous and answered 422 on afterSeq. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatli/bus.h"
#include "core_internal.h"
#include "cursor.h"
#include "validate.h"
#include "views.h"
#include "chatli/store.h"
#include "chatli/clock.h"
#include "chatli/log.h"

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
    json_t *msg = views_message(m, x->sender);
    /* The text is needed for the event (a new message, when there is a
     * bus) and for a caller that wants text. */
    bool need_text = x->text_cb || (!existed && x->c->bus);
    char *text = msg && need_text ? json_dumps(msg, JSON_COMPACT) : NULL;
    size_t len = text ? strlen(text) : 0;
    if (!msg || (x->text_cb && !text)) {
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

static int send_async(struct core *c, const struct session *s, const char *chat_id, json_t *body,
                      bool require_client_id, uint64_t origin_conn, messages_send_cb cb,
                      messages_send_text_cb text_cb, void *arg, struct chat_err *err)
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
    rc = core__chat_members(c, chat_id, s->user_id, &x->members, &x->n_members, err);
    if (rc)
        goto fail;
    /* The callback may not call the store, so the sender's Author is
     * fetched now (it is the same user for a dedupe hit too: the dedupe key
     * includes the sender). */
    rc = core__author(c, s->user_id, &x->sender, err);
    if (rc)
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
    return send_async(c, s, chat_id, body, require_client_id, origin_conn, cb, NULL, arg, err);
}

int messages_send_async_text(struct core *c, const struct session *s, const char *chat_id,
                             json_t *body, bool require_client_id, uint64_t origin_conn,
                             messages_send_text_cb cb, void *arg, struct chat_err *err)
{
    return send_async(c, s, chat_id, body, require_client_id, origin_conn, NULL, cb, arg, err);
}

/* ---- the blocking form --------------------------------------------------- */

struct send_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int rc;
    json_t *message;
    bool created;
    struct chat_err err;
};

static void on_sent(void *arg, int rc, json_t *message, bool created, const struct chat_err *err)
{
    struct send_wait *w = arg;
    struct chat_err copy_err = {0};
    /* A private deep copy, not json_incref: the writer thread still holds
     * (and drops) references into `message`, and jansson's decref has no
     * acquire fence, so sharing one refcounted tree across threads is a
     * data race (ThreadSanitizer reports it). */
    json_t *copy = message ? json_deep_copy(message) : NULL;
    if (message && !copy && rc == 0) {
        rc = core__internal(&copy_err, "messages: out of memory copying a message");
        err = &copy_err;
    }
    pthread_mutex_lock(&w->lock);
    w->rc = rc;
    w->message = copy;
    w->created = created;
    if (err)
        w->err = *err;
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

int messages_send(struct core *c, const struct session *s, const char *chat_id, json_t *body,
                  json_t **out, bool *created, struct chat_err *err)
{
    struct send_wait w = {.done = false};
    *out = NULL;
    *created = false;
    if (pthread_mutex_init(&w.lock, NULL) != 0)
        return core__internal(err, "messages: cannot create a mutex");
    if (pthread_cond_init(&w.cond, NULL) != 0) {
        pthread_mutex_destroy(&w.lock);
        return core__internal(err, "messages: cannot create a condition variable");
    }
    int rc = messages_send_async(c, s, chat_id, body, false, 0, on_sent, &w, err);
    if (rc == 0) {
        pthread_mutex_lock(&w.lock);
        while (!w.done)
            pthread_cond_wait(&w.cond, &w.lock);
        pthread_mutex_unlock(&w.lock);
        rc = w.rc;
        if (rc == 0) {
            *out = w.message;
            *created = w.created;
        } else if (err) {
            *err = w.err;
        }
    }
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    return rc;
}

/* ---- listing ------------------------------------------------------------- */

int messages_list(struct core *c, const struct session *s, const char *chat_id,
                  const struct page_params *pp, json_t **out, struct chat_err *err)
{
    struct message_list list = {0};
    struct views_authors authors = {0};
    struct core_ids ids = {0};
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
        /* 18 digits always fit an int64. */
        if (!validate_decimal(pp->after_seq, 18, &after))
            return chat_err_set(err, CHAT_E_VALIDATION, "afterSeq",
                                "afterSeq must be a non-negative integer");
    } else if (pp->before && (rc = cursor_decode_seq(pp->before, &before, err))) {
        return rc;
    }
    rc = store_is_member(c->store, chat_id, s->user_id, err);
    if (rc == CHAT_E_NOT_FOUND)
        rc = not_found(err);
    if (rc)
        return rc;

    if (pp->after_seq)
        rc = store_list_messages_after(c->store, chat_id, after, limit + 1, &list, err);
    else
        rc = store_list_messages(c->store, chat_id, before, limit + 1, &list, err);
    if (rc)
        goto done;

    size_t shown = list.n > (size_t)limit ? (size_t)limit : list.n;
    for (size_t i = 0; i < shown && rc == 0; i++)
        if (core__ids_push(&ids, list.items[i].sender_id))
            rc = oom(err);
    if (rc == 0)
        rc = views_authors_load(c, (const char(*)[OID_SIZE])ids.v, ids.n, &authors, err);
    if (rc)
        goto done;
    json_t *items = json_array();
    for (size_t i = 0; items && i < shown; i++) {
        const struct message *m = &list.items[i];
        if (json_array_append_new(items,
                                  views_message(m, views_authors_find(&authors, m->sender_id)))) {
            json_decref(items);
            items = NULL;
        }
    }
    if (!items) {
        rc = oom(err);
        goto done;
    }
    char next[CURSOR_MAX];
    bool more = list.n > (size_t)limit;
    if (more && pp->after_seq)
        snprintf(next, sizeof next, "%lld", (long long)list.items[shown - 1].seq);
    else if (more)
        cursor_encode_seq(list.items[shown - 1].seq, next);
    *out = views_page(items, more ? next : NULL);
    if (!*out)
        rc = oom(err);

done:
    core__ids_cleanup(&ids);
    views_authors_cleanup(&authors);
    store_message_list_cleanup(&list);
    return rc;
}
