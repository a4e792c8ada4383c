/* store_sqlite_account.c - account lifecycle in the SQLite adapter: revoking
 * every session of a user and deleting an account.
 *
 * Both are rare, so their statements are prepared for the call rather than
 * kept in each connection's statement cache.  They run on the write
 * connection under its lock; delete_user runs in one IMMEDIATE transaction,
 * so a crash leaves the account either whole or fully deleted.
 *
 * A revocation of every token of a user finds them through the index
 * sessions_by_user (migration 4). */
#include "store_sqlite_internal.h"

#include <stdlib.h>
#include <string.h>

/* Prepares `sql` for this call; 0 or a port code. */
static int prep(struct store_sqlite_conn *c, const char *sql, sqlite3_stmt **q, const char *what,
                struct chat_err *err)
{
    int rc = sqlite3_prepare_v2(c->db, sql, -1, q, NULL);
    if (rc != SQLITE_OK) {
        *q = NULL;
        return store_sqlite__fail(c, rc, what, err);
    }
    return 0;
}

int store_sqlite__delete_user_sessions(struct store *st, const char *user_id,
                                       const uint8_t keep[32], uint8_t (**hashes)[32], size_t *n,
                                       struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    *hashes = NULL;
    *n = 0;
    size_t cap = 0;
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    sqlite3_stmt *q = NULL;
    /* One statement: the rows it returns are exactly the rows it deleted. */
    int r = prep(c,
                 "DELETE FROM sessions WHERE user_id = ?1 AND (?2 IS NULL OR hash <> ?2)"
                 " RETURNING hash",
                 &q, "delete user sessions", err);
    if (!r) {
        store_sqlite__bind_text(q, 1, user_id ? user_id : "");
        if (keep)
            sqlite3_bind_blob(q, 2, keep, 32, SQLITE_TRANSIENT);
        while ((r = store_sqlite__step(c, q, "delete user sessions", err)) == 1) {
            if (sqlite3_column_bytes(q, 0) != 32)
                continue;
            if (store_sqlite__grow((void **)hashes, &cap, *n, sizeof **hashes)) {
                r = chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
                break;
            }
            memcpy((*hashes)[(*n)++], sqlite3_column_blob(q, 0), 32);
        }
    }
    sqlite3_finalize(q);
    store_sqlite__write_unlock(s);
    if (r) {
        free(*hashes);
        *hashes = NULL;
        *n = 0;
    }
    return r;
}

/* Runs one statement of the deletion, ?1 bound to the user's id and ?2 to
 * its key (when the statement has them), to its end.  0 or a port code
 * (the transaction then rolled back). */
static int run(struct store_sqlite_conn *c, const char *sql, const char *id, int64_t k,
               struct chat_err *err)
{
    sqlite3_stmt *q;
    int r = prep(c, sql, &q, "delete user", err);
    if (r)
        return r;
    int np = sqlite3_bind_parameter_count(q);
    if (np >= 1)
        store_sqlite__bind_text(q, 1, id);
    if (np >= 2)
        sqlite3_bind_int64(q, 2, k);
    r = store_sqlite__exec(c, q, "delete user", err);
    sqlite3_finalize(q);
    return r;
}

/* The ids of the groups user `k` belongs to, into *groups. */
static int user_groups(struct store_sqlite_conn *c, int64_t k, char (**groups)[OID_SIZE],
                       size_t *n, struct chat_err *err)
{
    sqlite3_stmt *q;
    size_t cap = 0;
    int r = prep(c,
                 "SELECT c.id FROM members m JOIN chats c ON c.k = m.chat"
                 " WHERE m.user = ?1 AND c.type = 1",
                 &q, "delete user", err);
    if (r)
        return r;
    sqlite3_bind_int64(q, 1, k);
    while ((r = store_sqlite__step(c, q, "delete user", err)) == 1) {
        if (store_sqlite__grow((void **)groups, &cap, *n, sizeof **groups)) {
            r = chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
            break;
        }
        store_sqlite__col_id(q, 0, (*groups)[(*n)++]);
    }
    sqlite3_finalize(q);
    return r;
}

/* The deletion's statements, in order: ?1 is the user's id, ?2 its key.
 * The user's own posts go first with their likes and comments, so the
 * count fixes below only touch other people's posts. */
static const char *const deletion[] = {
    "DELETE FROM likes WHERE post IN (SELECT k FROM posts WHERE author_id = ?1)",
    "DELETE FROM comments WHERE post IN (SELECT k FROM posts WHERE author_id = ?1)",
    "DELETE FROM posts WHERE author_id = ?1",
    "UPDATE posts SET like_count = max(like_count - 1, 0)"
    " WHERE k IN (SELECT post FROM likes WHERE user_id = ?1)",
    "DELETE FROM likes WHERE user_id = ?1",
    "UPDATE posts SET comment_count = max(comment_count - (SELECT count(*) FROM comments x"
    "  WHERE x.post = posts.k AND x.author_id = ?1), 0)"
    " WHERE k IN (SELECT post FROM comments WHERE author_id = ?1)",
    "DELETE FROM comments WHERE author_id = ?1",
    "DELETE FROM members WHERE user = ?2 AND chat IN (SELECT k FROM chats WHERE type = 1)",
    "DELETE FROM sessions WHERE user_id = ?1",
};

int store_sqlite__delete_user(struct store *st, const struct user *anon,
                              char (**groups)[OID_SIZE], size_t *n_groups, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    *groups = NULL;
    *n_groups = 0;
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    int64_t k = 0;
    int r = store_sqlite__begin(c, true, err);
    if (!r) {
        sqlite3_stmt *q;
        r = prep(c, "SELECT k FROM users WHERE id = ?1", &q, "delete user", err);
        if (!r) {
            store_sqlite__bind_text(q, 1, anon->id);
            r = store_sqlite__step_row(c, q, "delete user", "no such user", err);
            if (!r)
                k = sqlite3_column_int64(q, 0);
            sqlite3_finalize(q);
        }
    }
    if (!r)
        r = user_groups(c, k, groups, n_groups, err);
    for (size_t i = 0; !r && i < sizeof deletion / sizeof deletion[0]; i++)
        r = run(c, deletion[i], anon->id, k, err);
    if (!r) {
        /* Anonymize the row: the id stays for the messages and direct
         * chats that point at it; username_lower is what the unique index
         * keeps, so the old name and email are free from the commit on. */
        sqlite3_stmt *q;
        r = prep(c,
                 "UPDATE users SET username = ?2, username_lower = lower(?2), email = ?3,"
                 " display_name = ?4, bio = '', avatar_url = NULL, pwhash = ?5 WHERE id = ?1",
                 &q, "delete user", err);
        if (!r) {
            store_sqlite__bind_text(q, 1, anon->id);
            store_sqlite__bind_text(q, 2, anon->username);
            store_sqlite__bind_text(q, 3, anon->email);
            store_sqlite__bind_text(q, 4, anon->display_name);
            store_sqlite__bind_text(q, 5, anon->pwhash ? anon->pwhash : "");
            r = store_sqlite__exec(c, q, "delete user", err);
            sqlite3_finalize(q);
        }
    }
    if (!r)
        r = store_sqlite__commit(c, err);
    store_sqlite__write_unlock(s); /* rolls back what a failure left open */
    if (r) {
        free(*groups);
        *groups = NULL;
        *n_groups = 0;
    }
    return r;
}
