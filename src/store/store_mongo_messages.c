/* store_mongo_messages.c - message edits, deletions and catch-up in
 * position order (issue 13).
 *
 * Every chat has one position counter, its `seqNext` allocator: the writer
 * gives a new message the next position as its seq (and as its `pos`), and
 * an edit or a deletion takes the next one with {$inc: {seqNext: 1}},
 * stored as the message's `pos` (its seq stays).  The message is then
 * updated only while its stored pos is lower than the one taken, so when
 * two changes of one message race, the later position is the state that
 * stays: a change that finds a later one already stored takes a new
 * position and tries again (a deletion always lands; an edit of a message
 * deleted meanwhile is refused).  A position taken by a change that then
 * fails is a gap, which positions allow like seqs.
 *
 * The chat's embedded lastMessage follows the same rule ("lastMessage.pos"
 * lower than ours), so it never goes back to an older state.
 *
 * Documents from before edits have no pos, editedAt or deleted: absent
 * editedAt and deleted read as not edited and not deleted, and the open
 * gives every such message pos = seq (store_mongo__backfill_pos), so the
 * {chatId, pos} index serves the catch-up. */
#include "store_mongo_internal.h"

#include <stdlib.h>
#include <string.h>

#include "chatli/log.h"

/* Tries of take-a-position + conditional update before giving up: each
 * miss means a later change of the same message landed in between. */
#define CHANGE_ATTEMPTS 8
/* Messages backfilled per round at open. */
#define BACKFILL_BATCH 1000

static int no_message(struct chat_err *err)
{
    return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such message in this chat");
}

/* Reads message `mid` into `out` when it is in chat `cid`: 0,
 * CHAT_E_NOT_FOUND, or a port code. */
static int read_message(struct store_mongo *s, mongoc_collection_t *coll, const bson_oid_t *cid,
                        const bson_oid_t *mid, struct message *out, const char *op,
                        struct chat_err *err)
{
    bson_t doc;
    memset(out, 0, sizeof *out);
    (void)s;
    int rc = store_mongo__find_id(coll, mid, NULL, &doc, op, err);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return no_message(err);
    const bson_oid_t *chat = store_mongo__get_oid(&doc, "chatId");
    if (!chat || !bson_oid_equal(chat, cid))
        rc = no_message(err);
    else if (store_mongo__parse_message(&doc, NULL, out))
        rc = store_mongo__oom(err);
    else
        rc = 0;
    bson_destroy(&doc);
    return rc;
}

/* Parses the ids of message `message_id` of chat `chat_id` into *cid and
 * *mid, then opens a scope on "messages".  0, CHAT_E_NOT_FOUND when an id
 * does not parse (*sc then empty), or a port code; close *sc either way. */
static int open_message(struct store_mongo *s, const char *chat_id, const char *message_id,
                        bson_oid_t *cid, bson_oid_t *mid, struct store_mongo_scope *sc,
                        struct chat_err *err)
{
    memset(sc, 0, sizeof *sc);
    if (!store_mongo__oid(chat_id, cid) || !store_mongo__oid(message_id, mid))
        return no_message(err);
    return store_mongo__scope_open(s, "messages", sc, err);
}

int store_mongo__get_message(struct store *st, const char *chat_id, const char *message_id,
                             struct message *out, struct chat_err *err)
{
    struct store_mongo *s = (struct store_mongo *)st;
    memset(out, 0, sizeof *out);
    bson_oid_t cid, mid;
    struct store_mongo_scope sc;
    int rc = open_message(s, chat_id, message_id, &cid, &mid, &sc, err);
    if (!rc)
        rc = read_message(s, sc.coll, &cid, &mid, out, "get_message", err);
    store_mongo__scope_close(s, &sc);
    return rc;
}

/* Takes chat `cid`'s next position: 1 (with *pos), 0 when the chat is
 * gone, <0 on error. */
static int take_pos(struct store_mongo *s, mongoc_collection_t *chats, const bson_oid_t *cid,
                    int64_t *pos, struct chat_err *err)
{
    bson_t q = BSON_INITIALIZER, up = BSON_INITIALIZER, doc;
    BSON_APPEND_OID(&q, "_id", cid);
    BCON_APPEND(&up, "$inc", "{", "seqNext", BCON_INT64(1), "}");
    int r = store_mongo__modify_doc(s, chats, cid, &q, &up, &doc, "change_message", err);
    if (r == 1) {
        *pos = store_mongo__get_i64(&doc, "seqNext");
        bson_destroy(&doc);
    }
    bson_destroy(&q);
    bson_destroy(&up);
    return r;
}

/* The filter "`prefix`pos is absent or lower than `pos`" ($or). */
static void append_older(bson_t *q, const char *field, int64_t pos)
{
    BCON_APPEND(q, "$or", "[", "{", field, "{", "$lt", BCON_INT64(pos), "}", "}", "{", field, "{",
                "$exists", BCON_BOOL(false), "}", "}", "]");
}

/* The $set of a change, each field under `prefix` ("" or "lastMessage."). */
static void append_change(bson_t *up, const char *prefix, const char *text, int64_t at,
                          int64_t pos)
{
    char k[64];
    bson_t set;
    BSON_APPEND_DOCUMENT_BEGIN(up, "$set", &set);
#define KEY(name) (snprintf(k, sizeof k, "%s%s", prefix, name), k)
    BSON_APPEND_INT64(&set, KEY("pos"), pos);
    BSON_APPEND_UTF8(&set, KEY("text"), text ? text : "");
    if (text) {
        BSON_APPEND_DATE_TIME(&set, KEY("editedAt"), at);
    } else {
        BSON_APPEND_NULL(&set, KEY("attachmentUrl"));
        BSON_APPEND_BOOL(&set, KEY("deleted"), true);
    }
#undef KEY
    bson_append_document_end(up, &set);
}

/* Writes the change at position `pos` onto message `mid` unless a later
 * change (or, for an edit, a deletion) is stored already.  *matched tells
 * whether it was written.  0 or a port code. */
static int write_change(struct store_mongo *s, mongoc_collection_t *coll, const bson_oid_t *mid,
                        const char *text, int64_t at, int64_t pos, bool *matched,
                        struct chat_err *err)
{
    bson_t q = BSON_INITIALIZER, up = BSON_INITIALIZER;
    BSON_APPEND_OID(&q, "_id", mid);
    BCON_APPEND(&q, "deleted", "{", "$ne", BCON_BOOL(true), "}");
    append_older(&q, "pos", pos);
    append_change(&up, "", text, at, pos);
    int64_t n = 0;
    int rc = store_mongo__update_doc(s, coll, mid, &q, &up, &n, NULL, "change_message", err);
    *matched = n > 0;
    bson_destroy(&q);
    bson_destroy(&up);
    return rc;
}

/* Moves the chat's embedded lastMessage along when it is this message and
 * holds an older state.  Failures are logged: the message itself is
 * committed, and the next message replaces lastMessage anyway. */
static void follow_last_message(struct store_mongo *s, mongoc_collection_t *chats,
                                const bson_oid_t *cid, const bson_oid_t *mid, const char *text,
                                int64_t at, int64_t pos)
{
    bson_t q = BSON_INITIALIZER, up = BSON_INITIALIZER;
    struct chat_err e = {0};
    BSON_APPEND_OID(&q, "_id", cid);
    BSON_APPEND_OID(&q, "lastMessage._id", mid);
    append_older(&q, "lastMessage.pos", pos);
    append_change(&up, "lastMessage.", text, at, pos);
    if (store_mongo__update_doc(s, chats, cid, &q, &up, NULL, NULL, "change_message", &e))
        log_warn("store mongodb change_message: the chat's lastMessage was not updated");
    bson_destroy(&q);
    bson_destroy(&up);
}

/* The change itself, on an open scope: see the header comment. */
static int change_in(struct store_mongo *s, const struct store_mongo_scope *sc,
                     mongoc_collection_t *chats, const bson_oid_t *cid, const bson_oid_t *mid,
                     const char *text, int64_t at, struct message *out, bool *changed,
                     struct chat_err *err)
{
    int rc = read_message(s, sc->coll, cid, mid, out, "change_message", err);
    for (int attempt = 0; !rc; attempt++) {
        if (out->deleted)
            return text ? chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "the message was deleted") : 0;
        if (attempt == CHANGE_ATTEMPTS)
            return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL,
                                "the message is changing; try again");
        int64_t pos = 0;
        int r = take_pos(s, chats, cid, &pos, err);
        if (r <= 0)
            return r < 0 ? r : no_message(err);
        bool matched = false;
        rc = write_change(s, sc->coll, mid, text, at, pos, &matched, err);
        if (rc)
            return rc;
        if (matched) {
            follow_last_message(s, chats, cid, mid, text, at, pos);
            char *nt = strdup(text ? text : "");
            if (!nt)
                return store_mongo__oom(err);
            free(out->text);
            out->text = nt;
            out->pos = pos;
            if (text) {
                out->edited_at = at;
            } else {
                free(out->attachment_url);
                out->attachment_url = NULL;
                out->deleted = true;
            }
            *changed = true;
            return 0;
        }
        /* A later change landed first: look again. */
        store_message_cleanup(out);
        rc = read_message(s, sc->coll, cid, mid, out, "change_message", err);
    }
    return rc;
}

int store_mongo__change_message(struct store *st, const char *chat_id, const char *message_id,
                                const char *text, int64_t at, struct message *out, bool *changed,
                                struct chat_err *err)
{
    struct store_mongo *s = (struct store_mongo *)st;
    memset(out, 0, sizeof *out);
    *changed = false;
    bson_oid_t cid, mid;
    struct store_mongo_scope sc;
    int rc = open_message(s, chat_id, message_id, &cid, &mid, &sc, err);
    if (!rc) {
        mongoc_collection_t *chats = store_mongo__coll(s, &sc, "chats");
        rc = change_in(s, &sc, chats, &cid, &mid, text, at, out, changed, err);
        mongoc_collection_destroy(chats);
    }
    store_mongo__scope_close(s, &sc);
    if (rc)
        store_message_cleanup(out);
    return rc;
}

int store_mongo__list_changes_after(struct store *st, const char *chat_id, int64_t after_pos,
                                    int limit, struct message_list *out, struct chat_err *err)
{
    return store_mongo__list_message_docs((struct store_mongo *)st, chat_id, "pos", "$gt",
                                          after_pos, 1, limit, out, "list_changes_after", err);
}

/* One round of the backfill: up to BACKFILL_BATCH messages without pos get
 * pos = seq.  *n_done says how many were found.  0 or a port code. */
static int backfill_round(struct store_mongo *s, const struct store_mongo_scope *sc,
                          size_t *n_done, struct chat_err *err)
{
    bson_t q = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    BCON_APPEND(&q, "pos", "{", "$exists", BCON_BOOL(false), "}");
    BCON_APPEND(&opts, "projection", "{", "seq", BCON_INT32(1), "}", "limit",
                BCON_INT64(BACKFILL_BATCH));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(sc->coll, &q, &opts, NULL);
    mongoc_bulk_operation_t *bulk = NULL;
    const bson_t *doc;
    bson_error_t e;
    int rc = 0;
    *n_done = 0;
    while (!rc && mongoc_cursor_next(cur, &doc)) {
        const bson_oid_t *id = store_mongo__get_oid(doc, "_id");
        if (!id)
            continue;
        if (!bulk) {
            bson_t bopts = BSON_INITIALIZER;
            BSON_APPEND_BOOL(&bopts, "ordered", false);
            if (s->wc)
                mongoc_write_concern_append(s->wc, &bopts);
            bulk = mongoc_collection_create_bulk_operation_with_opts(sc->coll, &bopts);
            bson_destroy(&bopts);
        }
        bson_t uq = BSON_INITIALIZER, up = BSON_INITIALIZER;
        BSON_APPEND_OID(&uq, "_id", id);
        BCON_APPEND(&uq, "pos", "{", "$exists", BCON_BOOL(false), "}");
        BCON_APPEND(&up, "$set", "{", "pos", BCON_INT64(store_mongo__get_i64(doc, "seq")), "}");
        if (!mongoc_bulk_operation_update_one_with_opts(bulk, &uq, &up, NULL, &e))
            rc = store_mongo__fail(err, "backfill_pos", &e);
        bson_destroy(&uq);
        bson_destroy(&up);
        (*n_done)++;
    }
    if (!rc && mongoc_cursor_error(cur, &e))
        rc = store_mongo__fail(err, "backfill_pos", &e);
    mongoc_cursor_destroy(cur);
    if (!rc && bulk) {
        bson_t reply;
        if (!mongoc_bulk_operation_execute(bulk, &reply, &e))
            rc = store_mongo__fail(err, "backfill_pos", &e);
        /* Nothing matched (another instance backfilled them meanwhile, or
         * the server ignored the updates): stop rather than loop. */
        else if (store_mongo__get_i64(&reply, "nMatched") == 0)
            *n_done = 0;
        bson_destroy(&reply);
    }
    mongoc_bulk_operation_destroy(bulk);
    bson_destroy(&q);
    bson_destroy(&opts);
    return rc;
}

int store_mongo__backfill_pos(struct store_mongo *s, struct chat_err *err)
{
    struct store_mongo_scope sc;
    int rc = store_mongo__scope_open(s, "messages", &sc, err);
    size_t n = 0, total = 0;
    do {
        if (!rc)
            rc = backfill_round(s, &sc, &n, err);
        total += n;
    } while (!rc && n > 0);
    store_mongo__scope_close(s, &sc);
    if (!rc && total > 0)
        log_info("store mongodb: %zu messages from before edits got their position", total);
    return rc;
}
