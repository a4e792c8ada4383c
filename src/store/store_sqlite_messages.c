/* store_sqlite_messages.c - message edits, deletions and catch-up in
 * position order (issue 13).
 *
 * Every chat has one position counter, chats.event_seq: the group-commit
 * writer gives a new message the next position as its seq (and as its pos),
 * and change_message gives an edit or a deletion the next position, stored
 * as the message's pos (its seq stays).  Both take the position inside the
 * write transaction that commits the change, under the one write
 * connection, so positions are unique and commit in order.
 *
 * list_changes_after returns the messages created or changed after a
 * position, in position order, each once and in its current state.  A
 * message changed again while a client pages moves to a later position, so
 * paging by the last pos seen never skips one.  It merges two ordered reads
 * (migration 5): messages never changed have pos = seq and come from the
 * primary key (chat, seq), and changed ones (pos > seq) from
 * messages_by_pos, a partial index holding only them, so an append never
 * writes to that index.  Positions are unique within a chat, so the merge
 * has no ties. */
#include "store_sqlite_internal.h"

#include <stdlib.h>
#include <string.h>

/* A message row as MSG_COLS gives it, then its sender's id. */
#define MSG_COLS STORE_SQLITE_MSG_COLS("m") ", u.id"

/* Reads message `message_id` of chat `chat_id` on `c` into `out`.
 * 0, CHAT_E_NOT_FOUND, or a port code. */
static int load_message(struct store_sqlite_conn *c, const char *chat_id, const char *message_id,
                        struct message *out, struct chat_err *err)
{
    sqlite3_stmt *q;
    memset(out, 0, sizeof *out);
    int r = store_sqlite__prepare(c, STORE_SQLITE_MSG_GET,
                                  "SELECT " MSG_COLS " FROM messages m"
                                  " JOIN users u ON u.k = m.sender WHERE m.id = ?2"
                                  " AND m.chat = (SELECT k FROM chats WHERE id = ?1)",
                                  &q, err);
    if (r)
        return r;
    store_sqlite__bind_text(q, 1, chat_id);
    store_sqlite__bind_text(q, 2, message_id);
    r = store_sqlite__step_row(c, q, "get message", "no such message in this chat", err);
    if (!r && store_sqlite__read_message_cb(q, out, (void *)chat_id))
        r = chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
    store_sqlite__done(q);
    return r;
}

int store_sqlite__get_message(struct store *st, const char *chat_id, const char *message_id,
                              struct message *out, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    memset(out, 0, sizeof *out);
    if (!chat_id || !message_id)
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such message in this chat");
    struct store_sqlite_conn *c = store_sqlite__read_acquire(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    int r = load_message(c, chat_id, message_id, out, err);
    store_sqlite__read_release(s, c);
    return r;
}

/* Takes chat `chat_id`'s next position inside the caller's transaction. */
static int take_pos(struct store_sqlite_conn *c, const char *chat_id, int64_t *pos,
                    struct chat_err *err)
{
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(c, STORE_SQLITE_MSG_TAKE_POS,
                                  "UPDATE chats SET event_seq = event_seq + 1 WHERE id = ?1"
                                  " RETURNING event_seq",
                                  &q, err);
    if (r)
        return r;
    store_sqlite__bind_text(q, 1, chat_id);
    r = store_sqlite__step_row(c, q, "take position", "no such chat", err);
    if (!r) {
        *pos = sqlite3_column_int64(q, 0);
        /* Step to the end so the UPDATE completes before the reset. */
        int d = sqlite3_step(q);
        if (d != SQLITE_DONE)
            r = store_sqlite__fail(c, d, "take position", err);
    }
    store_sqlite__done(q);
    return r;
}

/* Writes the change to the message row at position `pos`. */
static int write_change(struct store_sqlite_conn *c, const char *chat_id, const char *message_id,
                        const char *text, int64_t at, int64_t pos, struct chat_err *err)
{
    sqlite3_stmt *q;
    int r = text ? store_sqlite__prepare(c, STORE_SQLITE_MSG_EDIT,
                                         "UPDATE messages SET text = ?3, edited_at = ?4, pos = ?5"
                                         " WHERE id = ?2"
                                         " AND chat = (SELECT k FROM chats WHERE id = ?1)",
                                         &q, err)
                 : store_sqlite__prepare(c, STORE_SQLITE_MSG_DELETE,
                                         "UPDATE messages SET text = '', attachment_url = NULL,"
                                         " deleted = 1, pos = ?5 WHERE id = ?2"
                                         " AND chat = (SELECT k FROM chats WHERE id = ?1)",
                                         &q, err);
    if (r)
        return r;
    store_sqlite__bind_text(q, 1, chat_id);
    store_sqlite__bind_text(q, 2, message_id);
    if (text) {
        store_sqlite__bind_text(q, 3, text);
        sqlite3_bind_int64(q, 4, at);
    }
    sqlite3_bind_int64(q, 5, pos);
    return store_sqlite__exec(c, q, text ? "edit message" : "delete message", err);
}

int store_sqlite__change_message(struct store *st, const char *chat_id, const char *message_id,
                                 const char *text, int64_t at, struct message *out,
                                 bool *changed, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    memset(out, 0, sizeof *out);
    *changed = false;
    if (!chat_id || !message_id)
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such message in this chat");
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    int64_t pos = 0;
    int r = store_sqlite__begin(c, true, err);
    if (!r)
        r = load_message(c, chat_id, message_id, out, err);
    if (!r && out->deleted) {
        /* A tombstone stays as it is: deleting it again changes nothing,
         * and there is nothing left to edit. */
        if (text) {
            store_message_cleanup(out);
            r = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "the message was deleted");
        }
        store_sqlite__write_unlock(s); /* rolls back the read-only transaction */
        return r;
    }
    if (!r)
        r = take_pos(c, chat_id, &pos, err);
    if (!r)
        r = write_change(c, chat_id, message_id, text, at, pos, err);
    if (!r)
        r = store_sqlite__commit(c, err);
    store_sqlite__write_unlock(s);
    if (r) {
        store_message_cleanup(out);
        return r;
    }
    /* The stored row now differs from `out` only by the change. */
    char *nt = strdup(text ? text : "");
    if (!nt) {
        store_message_cleanup(out);
        /* Committed, but the caller cannot be shown it. */
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
    }
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

int store_sqlite__list_changes_after(struct store *st, const char *chat_id, int64_t after_pos,
                                     int limit, struct message_list *out, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    out->items = NULL;
    out->n = 0;
    limit = store_sqlite__limit(limit);
    if (limit == 0)
        return 0;
    if (!chat_id)
        chat_id = "";
    struct store_sqlite_conn *c = store_sqlite__read_acquire(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    sqlite3_stmt *fresh = NULL, *changed = NULL;
    /* One read transaction, so both halves read one snapshot: otherwise an
     * append and an edit committed between them could hand out a later
     * position while skipping an earlier one. */
    int r = store_sqlite__begin(c, false, err);
    if (!r)
        r = store_sqlite__prepare(c, STORE_SQLITE_MSGS_NEW_AFTER, STORE_SQLITE_SQL_NEW_AFTER,
                                  &fresh, err);
    if (!r)
        r = store_sqlite__prepare(c, STORE_SQLITE_MSGS_CHANGED, STORE_SQLITE_SQL_CHANGED_AFTER,
                                  &changed, err);
    int rf = 0, rc = 0; /* 1 while that half has a row to give */
    if (!r) {
        /* Each half is LIMITed too: the merge takes at most `limit` rows
         * from either. */
        sqlite3_stmt *qs[2] = {fresh, changed};
        for (int i = 0; i < 2; i++) {
            store_sqlite__bind_text(qs[i], 1, chat_id);
            sqlite3_bind_int64(qs[i], 2, after_pos);
            sqlite3_bind_int(qs[i], 3, limit);
        }
        rf = store_sqlite__step(c, fresh, "list changes", err);
        rc = rf < 0 ? 0 : store_sqlite__step(c, changed, "list changes", err);
        r = rf < 0 ? rf : rc < 0 ? rc : 0;
    }
    size_t cap = 0;
    while (!r && (rf == 1 || rc == 1) && out->n < (size_t)limit) {
        /* Column 6 of STORE_SQLITE_MSG_COLS is pos. */
        bool take_fresh = rf == 1 && (rc != 1 || sqlite3_column_int64(fresh, 6) <
                                                     sqlite3_column_int64(changed, 6));
        sqlite3_stmt *q = take_fresh ? fresh : changed;
        if (store_sqlite__grow((void **)&out->items, &cap, out->n, sizeof *out->items) ||
            store_sqlite__read_message_cb(q, &out->items[out->n], (void *)chat_id)) {
            r = chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
            break;
        }
        out->n++;
        int *more = take_fresh ? &rf : &rc;
        *more = store_sqlite__step(c, q, "list changes", err);
        if (*more < 0)
            r = *more;
    }
    if (r)
        store_message_list_cleanup(out);
    store_sqlite__done(fresh);
    store_sqlite__done(changed);
    store_sqlite__read_release(s, c); /* ends the read transaction */
    return r;
}
