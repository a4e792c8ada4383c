/* store_sqlite_chats.c - chats, members, read marks and message reads.
 *
 * A chat row carries last_seq and updated_at, kept by the group-commit
 * writer, so a chat's last message is one primary-key probe of messages at
 * (chat, last_seq) and no MAX() is ever computed.  The viewer's unread count
 * is a range count over (chat, seq > read mark), skipping the viewer's own
 * messages: its cost is the unread messages, not the history.
 *
 * list_chats is two statements whatever the page size: one reads the page
 * of chats with their last message and unread count (joins and a
 * correlated count), one reads the members of every chat of the page (the
 * chat keys passed as a JSON array to json_each).  The page itself is the
 * user's membership rows (members_by_user) sorted by (updated_at, id): a
 * user's chat count bounds that sort.  An index on chats.updated_at would not
 * serve a per-user list, and denormalising updated_at into every member row
 * would cost one write per member on every append, so we take the sort.
 * Both statements run in one read transaction, so members and chats come
 * from the same snapshot. */
#include "store_sqlite_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A chat row: 7 chat columns, the last message (the shared message columns
 * and its sender's id, all NULL for an empty chat), then the unread count. */
#define CHAT_COLS                                                                   \
    "c.k, c.id, c.type, c.name, c.last_seq, c.created_at, c.updated_at, "           \
    STORE_SQLITE_MSG_COLS("lm") ", su.id"
#define CHAT_JOINS                                                                  \
    " LEFT JOIN messages lm ON lm.chat = c.k AND lm.seq = c.last_seq"               \
    " LEFT JOIN users su ON su.k = lm.sender"
/* The viewer's unread count, with `v` the viewer's member row: messages
 * from others after the mark that are not tombstones. */
#define UNREAD                                                                      \
    "(SELECT count(*) FROM messages x WHERE x.chat = c.k AND x.seq > v.read_seq"    \
    " AND x.sender <> v.user AND x.deleted = 0)"
#define MSG_COLS STORE_SQLITE_MSG_COLS("m") ", u.id"

/* Fills `ch` (all but the members) from a CHAT_COLS row followed by the
 * unread count; *k gets the chat's key.  0 or CHAT_E_INTERNAL (then `ch` is
 * cleaned up). */
static int read_chat_row(sqlite3_stmt *q, struct chat *ch, int64_t *k)
{
    bool oom = false;
    memset(ch, 0, sizeof *ch);
    *k = sqlite3_column_int64(q, 0);
    store_sqlite__col_id(q, 1, ch->id);
    ch->type = sqlite3_column_int(q, 2);
    store_sqlite__col_dup(q, 3, &ch->name, &oom);
    ch->last_seq = sqlite3_column_int64(q, 4);
    ch->created_at = sqlite3_column_int64(q, 5);
    ch->updated_at = sqlite3_column_int64(q, 6);
    if (sqlite3_column_type(q, 7) != SQLITE_NULL) {
        ch->last_message = malloc(sizeof *ch->last_message);
        if (ch->last_message)
            store_sqlite__read_sent_message(q, 7, ch->id, ch->last_message, &oom);
        else
            oom = true;
    }
    ch->unread_count = sqlite3_column_int64(q, 8 + STORE_SQLITE_MSG_NCOLS);
    if (oom) {
        store_chat_cleanup(ch);
        return CHAT_E_INTERNAL;
    }
    return 0;
}

/* The keys of a page's chats, in list order, for load_members_many. */
struct page_keys {
    int64_t *k;
    size_t n, cap;
};

/* Fills the chat `item` of a list page from its row and keeps its key in
 * the page_keys `arg` (a store_sqlite__collect reader). */
static int read_listed_chat_cb(sqlite3_stmt *q, void *item, void *arg)
{
    struct page_keys *keys = arg;
    if (store_sqlite__grow((void **)&keys->k, &keys->cap, keys->n, sizeof *keys->k))
        return CHAT_E_INTERNAL;
    return read_chat_row(q, item, &keys->k[keys->n++]);
}

/* Appends the member whose id and read mark are the columns `col` and
 * col + 1 of the current row to `ch` (member_ids and read_seqs grow
 * together; *cap is their capacity).  0 or CHAT_E_INTERNAL. */
static int push_member(sqlite3_stmt *q, int col, struct chat *ch, size_t *cap)
{
    if (ch->n_members == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        char(*ids)[OID_SIZE] = realloc(ch->member_ids, ncap * sizeof *ids);
        if (!ids)
            return CHAT_E_INTERNAL;
        ch->member_ids = ids;
        int64_t *seqs = realloc(ch->read_seqs, ncap * sizeof *seqs);
        if (!seqs)
            return CHAT_E_INTERNAL;
        ch->read_seqs = seqs;
        *cap = ncap;
    }
    store_sqlite__col_id(q, col, ch->member_ids[ch->n_members]);
    ch->read_seqs[ch->n_members++] = sqlite3_column_int64(q, col + 1);
    return 0;
}

/* Loads one chat on a connection the caller holds.  With `viewer` the chat
 * must have the viewer as a member (else CHAT_E_NOT_FOUND) and carries its
 * unread count; without, the count is 0. */
static int load_chat(struct store_sqlite_conn *c, const char *id, const char *viewer,
                     struct chat *out, struct chat_err *err)
{
    int64_t k = 0;
    sqlite3_stmt *q;
    memset(out, 0, sizeof *out);
    int r = viewer ? store_sqlite__prepare(c, STORE_SQLITE_CHAT_GET_VIEWER,
                                           "SELECT " CHAT_COLS ", " UNREAD " FROM chats c"
                                           " JOIN members v ON v.chat = c.k"
                                           " AND v.user = (SELECT k FROM users WHERE id = ?2)"
                                           CHAT_JOINS " WHERE c.id = ?1",
                                           &q, err)
                   : store_sqlite__prepare(c, STORE_SQLITE_CHAT_GET_ANY,
                                           "SELECT " CHAT_COLS ", 0 FROM chats c" CHAT_JOINS
                                           " WHERE c.id = ?1",
                                           &q, err);
    if (r)
        return r;
    store_sqlite__bind_text(q, 1, id ? id : "");
    if (viewer)
        store_sqlite__bind_text(q, 2, viewer);
    r = store_sqlite__step_row(c, q, "get chat", "no such chat", err);
    if (!r && read_chat_row(q, out, &k))
        r = chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
    store_sqlite__done(q);
    if (r)
        return r;

    r = store_sqlite__prepare(c, STORE_SQLITE_CHAT_MEMBERS,
                              "SELECT u.id, m.read_seq FROM members m JOIN users u ON u.k = m.user"
                              " WHERE m.chat = ?1 ORDER BY m.pos",
                              &q, err);
    if (!r) {
        sqlite3_bind_int64(q, 1, k);
        size_t cap = 0;
        while ((r = store_sqlite__step(c, q, "chat members", err)) == 1)
            if (push_member(q, 0, out, &cap)) {
                r = chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
                break;
            }
        store_sqlite__done(q);
    }
    if (r)
        store_chat_cleanup(out);
    return r;
}

/* The integer key of row `id` found by `sql`: 0 with *k set,
 * CHAT_E_NOT_FOUND with `missing` as the message, or a port code. */
static int key_of(struct store_sqlite_conn *c, enum store_sqlite_stmt_id sid, const char *sql,
                  const char *id, const char *missing, int64_t *k, struct chat_err *err)
{
    int r = store_sqlite__lookup(c, sid, sql, id ? id : "", k, err);
    if (r == 0)
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, missing);
    return r < 0 ? r : 0;
}

static int chat_key(struct store_sqlite_conn *c, const char *id, int64_t *k, struct chat_err *err)
{
    return key_of(c, STORE_SQLITE_CHAT_KEY, "SELECT k FROM chats WHERE id = ?1", id,
                  "no such chat", k, err);
}

static int user_key(struct store_sqlite_conn *c, const char *id, int64_t *k, struct chat_err *err)
{
    return key_of(c, STORE_SQLITE_USER_KEY, "SELECT k FROM users WHERE id = ?1", id,
                  "no such user", k, err);
}

/* Inserts (chat, user) at the end of the join order unless present.
 * *added tells which.  0 or a port code. */
static int insert_member(struct store_sqlite_conn *c, int64_t chat, int64_t user, bool *added,
                         struct chat_err *err)
{
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(
        c, STORE_SQLITE_MEMBER_INSERT,
        "INSERT OR IGNORE INTO members (chat, user, pos)"
        " VALUES (?1, ?2, (SELECT coalesce(max(pos), 0) + 1 FROM members WHERE chat = ?1))",
        &q, err);
    if (r)
        return r;
    sqlite3_bind_int64(q, 1, chat);
    sqlite3_bind_int64(q, 2, user);
    r = store_sqlite__exec(c, q, "insert member", err);
    if (!r)
        *added = sqlite3_changes(c->db) > 0;
    return r;
}

/* The direct chat of `pair`: 1 with its id in `found`, 0 when none, or a
 * port code. */
static int find_pair(struct store_sqlite_conn *c, const char *pair, char found[OID_SIZE],
                     struct chat_err *err)
{
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(c, STORE_SQLITE_CHAT_BY_PAIR,
                                  "SELECT id FROM chats WHERE pair = ?1", &q, err);
    if (r)
        return r;
    store_sqlite__bind_text(q, 1, pair);
    r = store_sqlite__step(c, q, "find direct chat", err);
    if (r == 1)
        store_sqlite__col_id(q, 0, found);
    store_sqlite__done(q);
    return r;
}

/* Inserts the chat row of `in` (with `pair` for a direct chat, else NULL)
 * and its members in order.  0 or a port code (CHAT_E_NOT_FOUND for a
 * member that is no user). */
static int insert_chat(struct store_sqlite_conn *c, const struct chat *in, const char *pair,
                       struct chat_err *err)
{
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(c, STORE_SQLITE_CHAT_INSERT,
                                  "INSERT INTO chats (id, type, name, pair, created_at, updated_at)"
                                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                                  &q, err);
    if (r)
        return r;
    store_sqlite__bind_id(q, 1, in->id);
    sqlite3_bind_int(q, 2, in->type);
    store_sqlite__bind_text(q, 3, in->name);
    store_sqlite__bind_text(q, 4, pair);
    sqlite3_bind_int64(q, 5, in->created_at);
    sqlite3_bind_int64(q, 6, in->updated_at ? in->updated_at : in->created_at);
    if ((r = store_sqlite__exec(c, q, "insert chat", err)))
        return r;
    int64_t ck = sqlite3_last_insert_rowid(c->db);
    for (size_t i = 0; i < in->n_members && !r; i++) {
        char mid[OID_SIZE];
        int64_t uk = 0;
        bool added;
        snprintf(mid, sizeof mid, "%.*s", OID_LEN, in->member_ids[i]);
        r = user_key(c, mid, &uk, err);
        if (!r)
            r = insert_member(c, ck, uk, &added, err);
    }
    return r;
}

int store_sqlite__create_chat(struct store *st, const struct chat *in, struct chat *out,
                              bool *existed, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    memset(out, 0, sizeof *out);
    *existed = false;
    if (in->n_members == 0 || !in->member_ids)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "a chat needs members");
    /* The pair key orders the two ids, so (a, b) and (b, a) meet. */
    char pair[2 * OID_SIZE];
    bool direct = in->type == CHAT_DIRECT && in->n_members == 2;
    if (direct) {
        const char *a = in->member_ids[0], *b = in->member_ids[1];
        if (strncmp(a, b, OID_LEN) > 0) {
            const char *t = a;
            a = b;
            b = t;
        }
        snprintf(pair, sizeof pair, "%.*s:%.*s", OID_LEN, a, OID_LEN, b);
    }
    char first_id[OID_SIZE], cid[OID_SIZE];
    snprintf(first_id, sizeof first_id, "%.*s", OID_LEN, in->member_ids[0]);
    snprintf(cid, sizeof cid, "%.*s", OID_LEN, in->id);

    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    int r = store_sqlite__begin(c, true, err);
    if (!r && direct) {
        char found[OID_SIZE] = "";
        r = find_pair(c, pair, found, err);
        if (r == 1) {
            /* Nothing written: the rollback in unlock is harmless. */
            *existed = true;
            r = load_chat(c, found, first_id, out, err);
            goto done;
        }
    }
    if (!r)
        r = insert_chat(c, in, direct ? pair : NULL, err);
    if (!r)
        r = load_chat(c, cid, first_id, out, err);
    if (!r && (r = store_sqlite__commit(c, err)))
        store_chat_cleanup(out);
done:
    store_sqlite__write_unlock(s);
    return r;
}

int store_sqlite__get_chat(struct store *st, const char *id, const char *viewer_id,
                           struct chat *out, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    memset(out, 0, sizeof *out);
    struct store_sqlite_conn *c = store_sqlite__read_acquire(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    int r = store_sqlite__begin(c, false, err);
    if (!r)
        r = load_chat(c, id, viewer_id, out, err);
    store_sqlite__read_release(s, c); /* ends the read transaction */
    return r;
}

/* `keys` as a JSON array, for json_each (new string, NULL when out of
 * memory). */
static char *keys_json(const int64_t *keys, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        if (json_array_append_new(arr, json_integer(keys[i]))) {
            json_decref(arr);
            arr = NULL;
        }
    char *js = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    return js;
}

/* Reads the members of every chat in `out` (whose keys are `keys`) with one
 * statement and attaches them in join order. */
static int load_members_many(struct store_sqlite_conn *c, struct chat_list *out,
                             const int64_t *keys, struct chat_err *err)
{
    if (out->n == 0)
        return 0;
    char *js = keys_json(keys, out->n);
    size_t *caps = calloc(out->n, sizeof *caps); /* each chat's member_ids capacity */
    sqlite3_stmt *q;
    int r = js && caps ? 0 : chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
    if (!r)
        r = store_sqlite__prepare(c, STORE_SQLITE_CHATS_MEMBERS_MANY,
                                  "SELECT m.chat, u.id, m.read_seq FROM members m"
                                  " JOIN users u ON u.k = m.user"
                                  " WHERE m.chat IN (SELECT value FROM json_each(?1))"
                                  " ORDER BY m.chat, m.pos",
                                  &q, err);
    if (!r) {
        store_sqlite__bind_text(q, 1, js);
        size_t at = 0;
        while ((r = store_sqlite__step(c, q, "chat members", err)) == 1) {
            int64_t k = sqlite3_column_int64(q, 0);
            /* Rows come grouped by chat: search only when the chat changes. */
            if (keys[at] != k)
                for (at = 0; at < out->n && keys[at] != k; at++)
                    ;
            if (at == out->n) { /* cannot happen: the IN list is exactly `keys` */
                at = 0;
                continue;
            }
            if (push_member(q, 1, &out->items[at], &caps[at])) {
                r = chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
                break;
            }
        }
        store_sqlite__done(q);
    }
    free(js);
    free(caps);
    return r;
}

int store_sqlite__list_chats(struct store *st, const char *user_id, const struct page_key *before,
                             int limit, struct chat_list *out, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    out->items = NULL;
    out->n = 0;
    limit = store_sqlite__limit(limit);
    if (limit == 0)
        return 0;
    struct store_sqlite_conn *c = store_sqlite__read_acquire(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    struct page_keys keys = {0};
    sqlite3_stmt *q;
    int r = store_sqlite__begin(c, false, err);
    if (!r)
        r = store_sqlite__prepare(
            c, STORE_SQLITE_CHATS_LIST,
            "SELECT " CHAT_COLS ", " UNREAD " FROM members v JOIN chats c ON c.k = v.chat"
            CHAT_JOINS " WHERE v.user = (SELECT k FROM users WHERE id = ?1)"
            " AND (c.updated_at, c.id) < (?2, ?3)"
            " ORDER BY c.updated_at DESC, c.id DESC LIMIT ?4",
            &q, err);
    if (!r) {
        store_sqlite__bind_text(q, 1, user_id ? user_id : "");
        store_sqlite__bind_page(q, 2, before, limit);
        r = store_sqlite__collect(c, q, "list chats", (void **)&out->items, &out->n,
                                  sizeof *out->items, read_listed_chat_cb, &keys, err);
        store_sqlite__done(q);
    }
    if (!r)
        r = load_members_many(c, out, keys.k, err);
    if (r)
        store_chat_list_cleanup(out);
    store_sqlite__read_release(s, c); /* ends the read transaction */
    free(keys.k);
    return r;
}

/* members_by_user finds the user's chats, the primary key (chat, user) their
 * members; DISTINCT folds a contact met in several chats.  One row more than
 * `max` is read to tell a cut list from a full one. */
int store_sqlite__list_contacts(struct store *st, const char *user_id, size_t max,
                                char (**out)[OID_SIZE], size_t *n_out, bool *truncated,
                                struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    *out = NULL;
    *n_out = 0;
    *truncated = false;
    if (max == 0)
        return 0;
    char(*ids)[OID_SIZE] = malloc(max * sizeof *ids);
    if (!ids)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
    struct store_sqlite_conn *c = store_sqlite__read_acquire(s, err);
    if (!c) {
        free(ids);
        return CHAT_E_UNAVAILABLE;
    }
    size_t n = 0;
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(c, STORE_SQLITE_CONTACTS,
                                  "SELECT DISTINCT u.id FROM members me"
                                  " JOIN members other ON other.chat = me.chat"
                                  " AND other.user <> me.user"
                                  " JOIN users u ON u.k = other.user"
                                  " WHERE me.user = (SELECT k FROM users WHERE id = ?1) LIMIT ?2",
                                  &q, err);
    if (!r) {
        store_sqlite__bind_text(q, 1, user_id ? user_id : "");
        sqlite3_bind_int64(q, 2, (sqlite3_int64)max + 1);
        while ((r = store_sqlite__step(c, q, "list contacts", err)) == 1) {
            if (n == max) {
                *truncated = true;
                continue;
            }
            const char *id = (const char *)sqlite3_column_text(q, 0);
            if (id && strlen(id) == OID_SIZE - 1)
                memcpy(ids[n++], id, OID_SIZE);
        }
        store_sqlite__done(q);
    }
    store_sqlite__read_release(s, c);
    if (r < 0 || n == 0) {
        free(ids);
        return r;
    }
    *out = ids;
    *n_out = n;
    return 0;
}

int store_sqlite__is_member(struct store *st, const char *chat_id, const char *user_id,
                            struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    struct store_sqlite_conn *c = store_sqlite__read_acquire(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(
        c, STORE_SQLITE_IS_MEMBER,
        "SELECT 1 FROM members WHERE chat = (SELECT k FROM chats WHERE id = ?1)"
        " AND user = (SELECT k FROM users WHERE id = ?2)",
        &q, err);
    if (!r) {
        store_sqlite__bind_text(q, 1, chat_id ? chat_id : "");
        store_sqlite__bind_text(q, 2, user_id ? user_id : "");
        r = store_sqlite__step_row(c, q, "is member", "not a member", err);
        store_sqlite__done(q);
    }
    store_sqlite__read_release(s, c);
    return r;
}

int store_sqlite__add_member(struct store *st, const char *chat_id, const char *user_id,
                             bool *added, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    *added = false;
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    int64_t ck = 0, uk = 0;
    int r = chat_key(c, chat_id, &ck, err);
    if (!r)
        r = user_key(c, user_id, &uk, err);
    if (!r)
        r = insert_member(c, ck, uk, added, err);
    store_sqlite__write_unlock(s);
    return r;
}

int store_sqlite__rename_chat(struct store *st, const char *chat_id, const char *name,
                              struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(c, STORE_SQLITE_CHAT_RENAME,
                                  "UPDATE chats SET name = ?2 WHERE id = ?1 AND type = ?3", &q,
                                  err);
    if (!r) {
        store_sqlite__bind_text(q, 1, chat_id ? chat_id : "");
        store_sqlite__bind_text(q, 2, name);
        sqlite3_bind_int(q, 3, CHAT_GROUP);
        r = store_sqlite__exec(c, q, "rename chat", err);
    }
    if (!r && sqlite3_changes(c->db) == 0)
        r = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such group");
    store_sqlite__write_unlock(s);
    return r;
}

int store_sqlite__remove_member(struct store *st, const char *chat_id, const char *user_id,
                                bool *removed, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    *removed = false;
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    int64_t ck = 0;
    sqlite3_stmt *q;
    int r = chat_key(c, chat_id, &ck, err);
    /* The read mark is the member row's read_seq: it goes with the row. */
    if (!r)
        r = store_sqlite__prepare(c, STORE_SQLITE_MEMBER_DELETE,
                                  "DELETE FROM members WHERE chat = ?1"
                                  " AND user = (SELECT k FROM users WHERE id = ?2)",
                                  &q, err);
    if (!r) {
        sqlite3_bind_int64(q, 1, ck);
        store_sqlite__bind_text(q, 2, user_id ? user_id : "");
        r = store_sqlite__exec(c, q, "remove member", err);
    }
    if (!r)
        *removed = sqlite3_changes(c->db) > 0;
    store_sqlite__write_unlock(s);
    return r;
}

static int list_messages(struct store_sqlite *s, const char *chat_id, int64_t bound, bool after,
                         int limit, struct message_list *out, struct chat_err *err)
{
    /* Both walk the (chat, seq) primary key in one direction: no sort. */
    return after ? store_sqlite__list_message_rows(
                       s, STORE_SQLITE_MSGS_AFTER,
                       "SELECT " MSG_COLS " FROM messages m"
                       " JOIN users u ON u.k = m.sender"
                       " WHERE m.chat = (SELECT k FROM chats WHERE id = ?1)"
                       " AND m.seq > ?2 ORDER BY m.seq LIMIT ?3",
                       "list messages", chat_id, bound, limit, out, err)
                 : store_sqlite__list_message_rows(
                       s, STORE_SQLITE_MSGS_BEFORE,
                       "SELECT " MSG_COLS " FROM messages m"
                       " JOIN users u ON u.k = m.sender"
                       " WHERE m.chat = (SELECT k FROM chats WHERE id = ?1)"
                       " AND m.seq < ?2 ORDER BY m.seq DESC LIMIT ?3",
                       "list messages", chat_id, bound, limit, out, err);
}

int store_sqlite__list_messages(struct store *st, const char *chat_id, int64_t before_seq,
                                int limit, struct message_list *out, struct chat_err *err)
{
    return list_messages((struct store_sqlite *)st, chat_id,
                         before_seq == 0 ? INT64_MAX : before_seq, false, limit, out, err);
}

int store_sqlite__list_messages_after(struct store *st, const char *chat_id, int64_t after_seq,
                                      int limit, struct message_list *out, struct chat_err *err)
{
    return list_messages((struct store_sqlite *)st, chat_id, after_seq, true, limit, out, err);
}

/* The chat key and seq of message `message_id` of chat `chat_id`: 0,
 * CHAT_E_NOT_FOUND (no such message in this chat), or a port code. */
static int find_message(struct store_sqlite_conn *c, const char *chat_id, const char *message_id,
                        int64_t *ck, int64_t *seq, struct chat_err *err)
{
    sqlite3_stmt *q;
    /* messages_by_id finds the message; the chat condition then checks it
     * belongs to this chat. */
    int r = store_sqlite__prepare(c, STORE_SQLITE_MSG_SEQ_BY_ID,
                                  "SELECT m.chat, m.seq FROM messages m WHERE m.id = ?2"
                                  " AND m.chat = (SELECT k FROM chats WHERE id = ?1)",
                                  &q, err);
    if (r)
        return r;
    store_sqlite__bind_text(q, 1, chat_id ? chat_id : "");
    store_sqlite__bind_text(q, 2, message_id ? message_id : "");
    r = store_sqlite__step_row(c, q, "find message", "no such message in this chat", err);
    if (!r) {
        *ck = sqlite3_column_int64(q, 0);
        *seq = sqlite3_column_int64(q, 1);
    }
    store_sqlite__done(q);
    return r;
}

/* 0 when `user_id` has a member row in the chat of key `ck`,
 * CHAT_E_NOT_FOUND ("not a member") when not, or a port code. */
static int check_member(struct store_sqlite_conn *c, int64_t ck, const char *user_id,
                        struct chat_err *err)
{
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(c, STORE_SQLITE_MEMBER_OF,
                                  "SELECT 1 FROM members WHERE chat = ?1"
                                  " AND user = (SELECT k FROM users WHERE id = ?2)",
                                  &q, err);
    if (r)
        return r;
    sqlite3_bind_int64(q, 1, ck);
    store_sqlite__bind_text(q, 2, user_id);
    r = store_sqlite__step_row(c, q, "member check", "not a member", err);
    store_sqlite__done(q);
    return r;
}

int store_sqlite__set_read(struct store *st, const char *chat_id, const char *user_id,
                           const char *message_id, bool *moved, struct chat_err *err)
{
    int64_t seq;
    return store_sqlite__set_read_seq(st, chat_id, user_id, message_id, moved, &seq, err);
}

int store_sqlite__set_read_seq(struct store *st, const char *chat_id, const char *user_id,
                               const char *message_id, bool *moved, int64_t *seq_out,
                               struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    *moved = false;
    *seq_out = 0;
    if (!user_id)
        user_id = "";
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    int64_t ck = 0, seq = 0;
    sqlite3_stmt *q;
    int r = find_message(c, chat_id, message_id, &ck, &seq, err);
    /* The mark stores the message's seq and only ever grows. */
    if (!r)
        r = store_sqlite__prepare(c, STORE_SQLITE_READ_MARK_SET,
                                  "UPDATE members SET read_seq = ?3 WHERE chat = ?1"
                                  " AND user = (SELECT k FROM users WHERE id = ?2)"
                                  " AND read_seq < ?3",
                                  &q, err);
    if (!r) {
        sqlite3_bind_int64(q, 1, ck);
        store_sqlite__bind_text(q, 2, user_id);
        sqlite3_bind_int64(q, 3, seq);
        r = store_sqlite__exec(c, q, "set read mark", err);
    }
    if (!r)
        *moved = sqlite3_changes(c->db) > 0;
    /* Not moved: an older mark, or no member row at all.  A non-member has
     * no mark to move, which is CHAT_E_NOT_FOUND like every other
     * non-member access. */
    if (!r && !*moved)
        r = check_member(c, ck, user_id, err);
    if (!r)
        *seq_out = seq;
    store_sqlite__write_unlock(s);
    return r;
}
