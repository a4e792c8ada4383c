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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHAT_COLS                                                                   \
    "c.k, c.id, c.type, c.name, c.last_seq, c.created_at, c.updated_at,"            \
    " lm.seq, lm.id, su.id, lm.text, lm.attachment_url, lm.client_id, lm.created_at"
#define CHAT_JOINS                                                                  \
    " LEFT JOIN messages lm ON lm.chat = c.k AND lm.seq = c.last_seq"               \
    " LEFT JOIN users su ON su.k = lm.sender"
/* The viewer's unread count, with `v` the viewer's member row. */
#define UNREAD                                                                      \
    "(SELECT count(*) FROM messages x WHERE x.chat = c.k AND x.seq > v.read_seq"    \
    " AND x.sender <> v.user)"
#define MSG_COLS "m.seq, m.id, u.id, m.text, m.attachment_url, m.client_id, m.created_at"

/* First-page key for chats: after every real (updated_at, id). */
#define FIRST_TS INT64_MAX
#define FIRST_ID "\x7f"

/* Fills `m` from 7 columns at `col` (seq, id, sender id, text,
 * attachment_url, client_id, created_at). */
static void read_message(sqlite3_stmt *q, int col, const char *chat_id, struct message *m,
                         bool *oom)
{
    memset(m, 0, sizeof *m);
    m->seq = sqlite3_column_int64(q, col);
    store_sqlite__col_id(q, col + 1, m->id);
    snprintf(m->chat_id, sizeof m->chat_id, "%.*s", OID_LEN, chat_id);
    store_sqlite__col_id(q, col + 2, m->sender_id);
    store_sqlite__col_dup_nn(q, col + 3, &m->text, oom);
    store_sqlite__col_dup(q, col + 4, &m->attachment_url, oom);
    store_sqlite__col_dup(q, col + 5, &m->client_id, oom);
    m->created_at = sqlite3_column_int64(q, col + 6);
}

/* Fills `ch` (all but the members) from a CHAT_COLS row followed by the
 * unread count; *k gets the chat's key.  0 or CHAT_E_INTERNAL. */
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
            read_message(q, 7, ch->id, ch->last_message, &oom);
        else
            oom = true;
    }
    ch->unread_count = sqlite3_column_int64(q, 14);
    if (oom) {
        store_chat_cleanup(ch);
        return CHAT_E_INTERNAL;
    }
    return 0;
}

/* Appends a member id to `ch`; `cap` is its array's capacity. */
static int push_member(struct chat *ch, size_t *cap, sqlite3_stmt *q, int col)
{
    if (store_sqlite__grow((void **)&ch->member_ids, cap, ch->n_members, sizeof *ch->member_ids))
        return CHAT_E_INTERNAL;
    store_sqlite__col_id(q, col, ch->member_ids[ch->n_members++]);
    return 0;
}

/* Loads one chat on a connection the caller holds.  With `viewer` the chat
 * must have the viewer as a member (else CHAT_E_NOT_FOUND) and carries its
 * unread count; without, the count is 0. */
static int load_chat(struct store_sqlite_conn *c, const char *id, const char *viewer,
                     struct chat *out, struct chat_err *err)
{
    int rc, r;
    int64_t k = 0;
    memset(out, 0, sizeof *out);
    sqlite3_stmt *q =
        viewer ? store_sqlite__stmt(c, STORE_SQLITE_CHAT_GET_VIEWER,
                                    "SELECT " CHAT_COLS ", " UNREAD " FROM chats c"
                                    " JOIN members v ON v.chat = c.k"
                                    " AND v.user = (SELECT k FROM users WHERE id = ?2)" CHAT_JOINS
                                    " WHERE c.id = ?1",
                                    &rc)
               : store_sqlite__stmt(c, STORE_SQLITE_CHAT_GET_ANY,
                                    "SELECT " CHAT_COLS ", 0 FROM chats c" CHAT_JOINS
                                    " WHERE c.id = ?1",
                                    &rc);
    if (!q)
        return store_sqlite__fail(c, rc, "prepare", err);
    store_sqlite__bind_text(q, 1, id ? id : "");
    if (viewer)
        store_sqlite__bind_text(q, 2, viewer);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        r = read_chat_row(q, out, &k) ? chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL) : 0;
    else if (rc == SQLITE_DONE)
        r = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such chat");
    else
        r = store_sqlite__fail(c, rc, "get chat", err);
    store_sqlite__done(q);
    if (r)
        return r;

    q = store_sqlite__stmt(c, STORE_SQLITE_CHAT_MEMBERS,
                           "SELECT u.id FROM members m JOIN users u ON u.k = m.user"
                           " WHERE m.chat = ?1 ORDER BY m.pos",
                           &rc);
    if (!q) {
        store_chat_cleanup(out);
        return store_sqlite__fail(c, rc, "prepare", err);
    }
    sqlite3_bind_int64(q, 1, k);
    size_t cap = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        if (push_member(out, &cap, q, 0)) {
            rc = SQLITE_NOMEM;
            break;
        }
    if (rc == SQLITE_NOMEM)
        r = chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
    else if (rc != SQLITE_DONE)
        r = store_sqlite__fail(c, rc, "chat members", err);
    store_sqlite__done(q);
    if (r)
        store_chat_cleanup(out);
    return r;
}

/* A key lookup with one text parameter: 1 with *k set, 0 when absent, or a
 * negative port code. */
static int key_of(struct store_sqlite_conn *c, enum store_sqlite_stmt_id id, const char *sql,
                  const char *arg, int64_t *k, struct chat_err *err)
{
    int rc, r;
    sqlite3_stmt *q = store_sqlite__stmt(c, id, sql, &rc);
    if (!q)
        return store_sqlite__fail(c, rc, "prepare", err);
    store_sqlite__bind_text(q, 1, arg ? arg : "");
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        *k = sqlite3_column_int64(q, 0);
        r = 1;
    } else {
        r = rc == SQLITE_DONE ? 0 : store_sqlite__fail(c, rc, "key lookup", err);
    }
    store_sqlite__done(q);
    return r;
}

static int chat_key(struct store_sqlite_conn *c, const char *id, int64_t *k, struct chat_err *err)
{
    return key_of(c, STORE_SQLITE_CHAT_KEY, "SELECT k FROM chats WHERE id = ?1", id, k, err);
}

static int user_key(struct store_sqlite_conn *c, const char *id, int64_t *k, struct chat_err *err)
{
    return key_of(c, STORE_SQLITE_USER_KEY, "SELECT k FROM users WHERE id = ?1", id, k, err);
}

/* Inserts (chat, user) at the end of the join order unless present.
 * *added tells which.  0 or a port code. */
static int insert_member(struct store_sqlite_conn *c, int64_t chat, int64_t user, bool *added,
                         struct chat_err *err)
{
    int rc;
    sqlite3_stmt *q = store_sqlite__stmt(
        c, STORE_SQLITE_MEMBER_INSERT,
        "INSERT OR IGNORE INTO members (chat, user, pos)"
        " VALUES (?1, ?2, (SELECT coalesce(max(pos), 0) + 1 FROM members WHERE chat = ?1))",
        &rc);
    if (!q)
        return store_sqlite__fail(c, rc, "prepare", err);
    sqlite3_bind_int64(q, 1, chat);
    sqlite3_bind_int64(q, 2, user);
    rc = sqlite3_step(q);
    store_sqlite__done(q);
    if (rc != SQLITE_DONE)
        return store_sqlite__fail(c, rc, "insert member", err);
    *added = sqlite3_changes(c->db) > 0;
    return 0;
}

int store_sqlite__create_chat(struct store *st, const struct chat *in, struct chat *out,
                              bool *existed, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    memset(out, 0, sizeof *out);
    *existed = false;
    if (in->n_members == 0 || !in->member_ids)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "a chat needs members");
    const char *first = in->member_ids[0];
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
    char first_id[OID_SIZE];
    snprintf(first_id, sizeof first_id, "%.*s", OID_LEN, first);

    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    int rc, r = store_sqlite__begin(c, true, err);
    if (r)
        goto done;
    if (direct) {
        sqlite3_stmt *q = store_sqlite__stmt(c, STORE_SQLITE_CHAT_BY_PAIR,
                                             "SELECT id FROM chats WHERE pair = ?1", &rc);
        if (!q) {
            r = store_sqlite__fail(c, rc, "prepare", err);
            goto done;
        }
        store_sqlite__bind_text(q, 1, pair);
        rc = sqlite3_step(q);
        char found[OID_SIZE] = "";
        if (rc == SQLITE_ROW)
            store_sqlite__col_id(q, 0, found);
        else if (rc != SQLITE_DONE)
            r = store_sqlite__fail(c, rc, "find direct chat", err);
        store_sqlite__done(q);
        if (r)
            goto done;
        if (rc == SQLITE_ROW) {
            *existed = true;
            r = load_chat(c, found, first_id, out, err);
            goto done; /* nothing written: the rollback in unlock is harmless */
        }
    }

    sqlite3_stmt *q = store_sqlite__stmt(
        c, STORE_SQLITE_CHAT_INSERT,
        "INSERT INTO chats (id, type, name, pair, created_at, updated_at)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
        goto done;
    }
    store_sqlite__bind_id(q, 1, in->id);
    sqlite3_bind_int(q, 2, in->type);
    store_sqlite__bind_text(q, 3, in->name);
    store_sqlite__bind_text(q, 4, direct ? pair : NULL);
    sqlite3_bind_int64(q, 5, in->created_at);
    sqlite3_bind_int64(q, 6, in->updated_at ? in->updated_at : in->created_at);
    rc = sqlite3_step(q);
    store_sqlite__done(q);
    if (rc != SQLITE_DONE) {
        r = store_sqlite__fail(c, rc, "insert chat", err);
        goto done;
    }
    int64_t ck = sqlite3_last_insert_rowid(c->db);
    for (size_t i = 0; i < in->n_members; i++) {
        char mid[OID_SIZE];
        int64_t uk = 0;
        bool added;
        snprintf(mid, sizeof mid, "%.*s", OID_LEN, in->member_ids[i]);
        r = user_key(c, mid, &uk, err);
        if (r == 0)
            r = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such user");
        if (r < 0)
            goto done;
        if ((r = insert_member(c, ck, uk, &added, err)))
            goto done;
    }
    char cid[OID_SIZE];
    snprintf(cid, sizeof cid, "%.*s", OID_LEN, in->id);
    if ((r = load_chat(c, cid, first_id, out, err)))
        goto done;
    if ((r = store_sqlite__commit(c, err)))
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

/* Reads the members of every chat in `out` (whose keys are `keys`) with one
 * statement and attaches them in join order. */
static int load_members_many(struct store_sqlite_conn *c, struct chat_list *out,
                             const int64_t *keys, struct chat_err *err)
{
    if (out->n == 0)
        return 0;
    size_t jn = out->n * 21 + 3;
    char *js = malloc(jn);
    size_t *caps = calloc(out->n, sizeof *caps);
    if (!js || !caps) {
        free(js);
        free(caps);
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
    }
    size_t off = 0;
    js[off++] = '[';
    for (size_t i = 0; i < out->n; i++)
        off += (size_t)snprintf(js + off, jn - off, "%s%lld", i ? "," : "", (long long)keys[i]);
    js[off++] = ']';
    js[off] = '\0';

    int rc, r = 0;
    sqlite3_stmt *q = store_sqlite__stmt(
        c, STORE_SQLITE_CHATS_MEMBERS_MANY,
        "SELECT m.chat, u.id FROM members m JOIN users u ON u.k = m.user"
        " WHERE m.chat IN (SELECT value FROM json_each(?1)) ORDER BY m.chat, m.pos",
        &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
        goto done;
    }
    store_sqlite__bind_text(q, 1, js);
    size_t at = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t k = sqlite3_column_int64(q, 0);
        /* Rows come grouped by chat: search only when the chat changes. */
        if (keys[at] != k)
            for (at = 0; at < out->n && keys[at] != k; at++)
                ;
        if (at == out->n) { /* cannot happen: the IN list is exactly `keys` */
            at = 0;
            continue;
        }
        if (push_member(&out->items[at], &caps[at], q, 1)) {
            rc = SQLITE_NOMEM;
            break;
        }
    }
    if (rc == SQLITE_NOMEM)
        r = chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
    else if (rc != SQLITE_DONE)
        r = store_sqlite__fail(c, rc, "chat members", err);
    store_sqlite__done(q);
done:
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
    int64_t *keys = malloc((size_t)limit * sizeof *keys);
    if (!keys)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
    struct store_sqlite_conn *c = store_sqlite__read_acquire(s, err);
    if (!c) {
        free(keys);
        return CHAT_E_UNAVAILABLE;
    }
    int rc, r = store_sqlite__begin(c, false, err);
    if (r)
        goto done;
    sqlite3_stmt *q = store_sqlite__stmt(
        c, STORE_SQLITE_CHATS_LIST,
        "SELECT " CHAT_COLS ", " UNREAD " FROM members v JOIN chats c ON c.k = v.chat" CHAT_JOINS
        " WHERE v.user = (SELECT k FROM users WHERE id = ?1)"
        " AND (c.updated_at, c.id) < (?2, ?3)"
        " ORDER BY c.updated_at DESC, c.id DESC LIMIT ?4",
        &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
        goto done;
    }
    store_sqlite__bind_text(q, 1, user_id ? user_id : "");
    sqlite3_bind_int64(q, 2, before ? before->ts : FIRST_TS);
    store_sqlite__bind_id(q, 3, before ? before->id : FIRST_ID);
    sqlite3_bind_int(q, 4, limit);
    size_t cap = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (out->n >= (size_t)limit) /* LIMIT makes this unreachable; keeps `keys` safe */
            break;
        if (store_sqlite__grow((void **)&out->items, &cap, out->n, sizeof *out->items) ||
            read_chat_row(q, &out->items[out->n], &keys[out->n])) {
            rc = SQLITE_NOMEM;
            break;
        }
        out->n++;
    }
    if (rc == SQLITE_NOMEM)
        r = chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
    else if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        r = store_sqlite__fail(c, rc, "list chats", err);
    store_sqlite__done(q);
    if (!r)
        r = load_members_many(c, out, keys, err);
    if (r)
        store_chat_list_cleanup(out);
done:
    store_sqlite__read_release(s, c);
    free(keys);
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
    int rc, r = 0;
    size_t n = 0;
    sqlite3_stmt *q = store_sqlite__stmt(
        c, STORE_SQLITE_CONTACTS,
        "SELECT DISTINCT u.id FROM members me"
        " JOIN members other ON other.chat = me.chat AND other.user <> me.user"
        " JOIN users u ON u.k = other.user"
        " WHERE me.user = (SELECT k FROM users WHERE id = ?1) LIMIT ?2",
        &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
    } else {
        store_sqlite__bind_text(q, 1, user_id ? user_id : "");
        sqlite3_bind_int64(q, 2, (sqlite3_int64)max + 1);
        while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
            if (n == max) {
                *truncated = true;
                continue;
            }
            const char *id = (const char *)sqlite3_column_text(q, 0);
            if (id && strlen(id) == OID_SIZE - 1)
                memcpy(ids[n++], id, OID_SIZE);
        }
        if (rc != SQLITE_DONE)
            r = store_sqlite__fail(c, rc, "list contacts", err);
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
    int rc, r;
    sqlite3_stmt *q = store_sqlite__stmt(
        c, STORE_SQLITE_IS_MEMBER,
        "SELECT 1 FROM members WHERE chat = (SELECT k FROM chats WHERE id = ?1)"
        " AND user = (SELECT k FROM users WHERE id = ?2)",
        &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
    } else {
        store_sqlite__bind_text(q, 1, chat_id ? chat_id : "");
        store_sqlite__bind_text(q, 2, user_id ? user_id : "");
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW)
            r = 0;
        else if (rc == SQLITE_DONE)
            r = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "not a member");
        else
            r = store_sqlite__fail(c, rc, "is member", err);
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
    if (r == 0)
        r = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such chat");
    if (r < 0)
        goto done;
    r = user_key(c, user_id, &uk, err);
    if (r == 0)
        r = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such user");
    if (r < 0)
        goto done;
    r = insert_member(c, ck, uk, added, err);
done:
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
    int rc, r = chat_key(c, chat_id, &ck, err);
    if (r == 0)
        r = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such chat");
    if (r < 0)
        goto done;
    /* The read mark is the member row's read_seq: it goes with the row. */
    sqlite3_stmt *q = store_sqlite__stmt(
        c, STORE_SQLITE_MEMBER_DELETE,
        "DELETE FROM members WHERE chat = ?1 AND user = (SELECT k FROM users WHERE id = ?2)",
        &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
        goto done;
    }
    sqlite3_bind_int64(q, 1, ck);
    store_sqlite__bind_text(q, 2, user_id ? user_id : "");
    rc = sqlite3_step(q);
    store_sqlite__done(q);
    if (rc != SQLITE_DONE) {
        r = store_sqlite__fail(c, rc, "remove member", err);
        goto done;
    }
    *removed = sqlite3_changes(c->db) > 0;
    r = 0;
done:
    store_sqlite__write_unlock(s);
    return r;
}

/* Steps a message-list statement into `out`. */
static int collect_messages(struct store_sqlite_conn *c, sqlite3_stmt *q, const char *chat_id,
                            struct message_list *out, struct chat_err *err)
{
    size_t cap = 0;
    int rc;
    bool oom = false;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (store_sqlite__grow((void **)&out->items, &cap, out->n, sizeof *out->items)) {
            oom = true;
            break;
        }
        read_message(q, 0, chat_id, &out->items[out->n++], &oom);
        if (oom)
            break;
    }
    if (oom) {
        store_message_list_cleanup(out);
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
    }
    if (rc != SQLITE_DONE) {
        store_message_list_cleanup(out);
        return store_sqlite__fail(c, rc, "list messages", err);
    }
    return 0;
}

static int list_messages(struct store_sqlite *s, const char *chat_id, int64_t bound, bool after,
                         int limit, struct message_list *out, struct chat_err *err)
{
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
    int rc, r;
    /* Both walk the (chat, seq) primary key in one direction: no sort. */
    sqlite3_stmt *q =
        after ? store_sqlite__stmt(c, STORE_SQLITE_MSGS_AFTER,
                                   "SELECT " MSG_COLS " FROM messages m"
                                   " JOIN users u ON u.k = m.sender"
                                   " WHERE m.chat = (SELECT k FROM chats WHERE id = ?1)"
                                   " AND m.seq > ?2 ORDER BY m.seq LIMIT ?3",
                                   &rc)
              : store_sqlite__stmt(c, STORE_SQLITE_MSGS_BEFORE,
                                   "SELECT " MSG_COLS " FROM messages m"
                                   " JOIN users u ON u.k = m.sender"
                                   " WHERE m.chat = (SELECT k FROM chats WHERE id = ?1)"
                                   " AND m.seq < ?2 ORDER BY m.seq DESC LIMIT ?3",
                                   &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
    } else {
        store_sqlite__bind_text(q, 1, chat_id);
        sqlite3_bind_int64(q, 2, bound);
        sqlite3_bind_int(q, 3, limit);
        r = collect_messages(c, q, chat_id, out, err);
        store_sqlite__done(q);
    }
    store_sqlite__read_release(s, c);
    return r;
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

int store_sqlite__set_read(struct store *st, const char *chat_id, const char *user_id,
                           const char *message_id, bool *moved, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    *moved = false;
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    int rc, r = 0;
    int64_t ck = 0, seq = 0;
    /* messages_by_id finds the message; the chat condition then checks it
     * belongs to this chat. */
    sqlite3_stmt *q = store_sqlite__stmt(
        c, STORE_SQLITE_MSG_SEQ_BY_ID,
        "SELECT m.chat, m.seq FROM messages m WHERE m.id = ?2"
        " AND m.chat = (SELECT k FROM chats WHERE id = ?1)",
        &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
        goto done;
    }
    store_sqlite__bind_text(q, 1, chat_id ? chat_id : "");
    store_sqlite__bind_text(q, 2, message_id ? message_id : "");
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        ck = sqlite3_column_int64(q, 0);
        seq = sqlite3_column_int64(q, 1);
    } else if (rc == SQLITE_DONE) {
        r = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such message in this chat");
    } else {
        r = store_sqlite__fail(c, rc, "find message", err);
    }
    store_sqlite__done(q);
    if (r)
        goto done;

    /* The mark stores the message's seq and only ever grows. */
    q = store_sqlite__stmt(c, STORE_SQLITE_READ_MARK_SET,
                           "UPDATE members SET read_seq = ?3 WHERE chat = ?1"
                           " AND user = (SELECT k FROM users WHERE id = ?2) AND read_seq < ?3",
                           &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
        goto done;
    }
    sqlite3_bind_int64(q, 1, ck);
    store_sqlite__bind_text(q, 2, user_id ? user_id : "");
    sqlite3_bind_int64(q, 3, seq);
    rc = sqlite3_step(q);
    store_sqlite__done(q);
    if (rc != SQLITE_DONE) {
        r = store_sqlite__fail(c, rc, "set read mark", err);
        goto done;
    }
    *moved = sqlite3_changes(c->db) > 0;
    if (*moved)
        goto done;
    /* Not moved: an older mark, or no member row at all.  A non-member has
     * no mark to move, which is CHAT_E_NOT_FOUND like every other
     * non-member access. */
    q = store_sqlite__stmt(c, STORE_SQLITE_MEMBER_OF,
                           "SELECT 1 FROM members WHERE chat = ?1"
                           " AND user = (SELECT k FROM users WHERE id = ?2)",
                           &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
        goto done;
    }
    sqlite3_bind_int64(q, 1, ck);
    store_sqlite__bind_text(q, 2, user_id ? user_id : "");
    rc = sqlite3_step(q);
    if (rc == SQLITE_DONE)
        r = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "not a member");
    else if (rc != SQLITE_ROW)
        r = store_sqlite__fail(c, rc, "member check", err);
    store_sqlite__done(q);
done:
    store_sqlite__write_unlock(s);
    return r;
}
