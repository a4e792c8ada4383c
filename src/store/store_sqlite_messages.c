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
 * list_changes_after walks the messages_by_pos index (chat, pos): the
 * messages created or changed after a position, in position order, each
 * once and in its current state.  A message changed again while a client
 * pages moves to a later position, so paging by the last pos seen never
 * skips one. */
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
    /* A range of messages_by_pos (chat, pos): no sort. */
    return store_sqlite__list_message_rows((struct store_sqlite *)st, STORE_SQLITE_MSGS_CHANGED,
                                           "SELECT " MSG_COLS " FROM messages m"
                                           " JOIN users u ON u.k = m.sender"
                                           " WHERE m.chat = (SELECT k FROM chats WHERE id = ?1)"
                                           " AND m.pos > ?2 ORDER BY m.pos LIMIT ?3",
                                           "list changes", chat_id, after_pos, limit, out, err);
}
