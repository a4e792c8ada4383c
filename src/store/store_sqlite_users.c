/* store_sqlite_users.c - users and sessions in the SQLite adapter.
 *
 * Usernames are unique ignoring ASCII case: the adapter stores
 * username_lower beside the username as typed, under a unique index, and
 * every lookup by name (login, uniqueness, prefix search) uses that column.
 * Prefix search is a range scan on it, [prefix, prefix + 0xFF), rather than
 * LIKE, whose '_' wildcard is a legal username character and whose
 * case-folding would bypass the index.  Emails arrive lower-cased from core
 * and are unique as stored.  Sessions are keyed by the 32-byte token hash;
 * the token itself never reaches the store. */
#include "store_sqlite_internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define USER_COLS "id, username, email, display_name, bio, avatar_url, pwhash, created_at"

/* Fills the user `item` from a row of USER_COLS (a store_sqlite__collect
 * reader; `arg` is unused).  0 or CHAT_E_INTERNAL (then `item` is cleaned
 * up). */
static int read_user_cb(sqlite3_stmt *q, void *item, void *arg)
{
    struct user *u = item;
    bool oom = false;
    memset(u, 0, sizeof *u);
    store_sqlite__col_id(q, 0, u->id);
    store_sqlite__col_dup_nn(q, 1, &u->username, &oom);
    store_sqlite__col_dup_nn(q, 2, &u->email, &oom);
    store_sqlite__col_dup_nn(q, 3, &u->display_name, &oom);
    store_sqlite__col_dup_nn(q, 4, &u->bio, &oom);
    store_sqlite__col_dup(q, 5, &u->avatar_url, &oom);
    store_sqlite__col_dup_nn(q, 6, &u->pwhash, &oom);
    u->created_at = sqlite3_column_int64(q, 7);
    if (oom) {
        store_user_cleanup(u);
        return CHAT_E_INTERNAL;
    }
    return 0;
}

/* ASCII lower-casing, as the contract's "unique ignoring case" means for
 * usernames of [A-Za-z0-9_]. */
static char *ascii_lower(const char *s)
{
    char *l = strdup(s ? s : "");
    if (l)
        for (char *p = l; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    return l;
}

/* CHAT_E_EMAIL_TAKEN or CHAT_E_USERNAME_TAKEN when a user already holds the
 * email or the lower-cased name, 0 when neither, or a port code. */
static int check_free(struct store_sqlite_conn *c, const struct user *u, const char *lower,
                      struct chat_err *err)
{
    int r = store_sqlite__lookup(c, STORE_SQLITE_USER_EMAIL_EXISTS,
                                 "SELECT 1 FROM users WHERE email = ?1", u->email, NULL, err);
    if (r == 1)
        return chat_err_set(err, CHAT_E_EMAIL_TAKEN, NULL, NULL);
    if (r < 0)
        return r;
    r = store_sqlite__lookup(c, STORE_SQLITE_USER_NAME_EXISTS,
                             "SELECT 1 FROM users WHERE username_lower = ?1", lower, NULL, err);
    if (r == 1)
        return chat_err_set(err, CHAT_E_USERNAME_TAKEN, NULL, NULL);
    return r;
}

int store_sqlite__create_user(struct store *st, const struct user *u, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    char *lower = ascii_lower(u->username);
    if (!lower)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
    /* The write mutex makes check-then-insert atomic: no other writer runs
     * between them (the unique indexes still back it up). */
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    sqlite3_stmt *q;
    int r = check_free(c, u, lower, err);
    if (!r)
        r = store_sqlite__prepare(
            c, STORE_SQLITE_USER_INSERT,
            "INSERT INTO users (id, username, username_lower, email, display_name, bio,"
            " avatar_url, pwhash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            &q, err);
    if (!r) {
        store_sqlite__bind_id(q, 1, u->id);
        store_sqlite__bind_text(q, 2, u->username ? u->username : "");
        store_sqlite__bind_text(q, 3, lower);
        store_sqlite__bind_text(q, 4, u->email ? u->email : "");
        store_sqlite__bind_text(q, 5, u->display_name ? u->display_name : "");
        store_sqlite__bind_text(q, 6, u->bio ? u->bio : "");
        store_sqlite__bind_text(q, 7, u->avatar_url);
        store_sqlite__bind_text(q, 8, u->pwhash ? u->pwhash : "");
        sqlite3_bind_int64(q, 9, u->created_at);
        r = store_sqlite__exec(c, q, "insert user", err);
    }
    store_sqlite__write_unlock(s);
    free(lower);
    return r;
}

/* Reads at most one user with a one-text-parameter query. */
static int get_one(struct store_sqlite *s, enum store_sqlite_stmt_id id, const char *sql,
                   const char *arg, struct user *out, struct chat_err *err)
{
    memset(out, 0, sizeof *out);
    struct store_sqlite_conn *c = store_sqlite__read_acquire(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(c, id, sql, &q, err);
    if (!r) {
        store_sqlite__bind_text(q, 1, arg ? arg : "");
        r = store_sqlite__step_row(c, q, "get user", "no such user", err);
        if (!r && read_user_cb(q, out, NULL))
            r = chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
        store_sqlite__done(q);
    }
    store_sqlite__read_release(s, c);
    return r;
}

int store_sqlite__get_user(struct store *st, const char *id, struct user *out,
                           struct chat_err *err)
{
    return get_one((struct store_sqlite *)st, STORE_SQLITE_USER_GET,
                   "SELECT " USER_COLS " FROM users WHERE id = ?1", id, out, err);
}

int store_sqlite__find_user_by_login(struct store *st, const char *login, struct user *out,
                                     struct chat_err *err)
{
    /* An email holds '@' and a username cannot, so at most one row
     * matches; the OR runs as two index lookups. */
    return get_one((struct store_sqlite *)st, STORE_SQLITE_USER_BY_LOGIN,
                   "SELECT " USER_COLS " FROM users WHERE email = ?1 OR username_lower = ?1"
                   " LIMIT 1",
                   login, out, err);
}

/* Runs the user-list query `id` with `text` bound to ?1 (and, for a search,
 * `upper`, `after` and `limit` to ?2..?4) into `out`: the one read path of
 * get_users and search_users. */
static int list_users(struct store_sqlite *s, enum store_sqlite_stmt_id id, const char *sql,
                      const char *text, const char *upper, const char *after, int limit,
                      struct user_list *out, struct chat_err *err)
{
    struct store_sqlite_conn *c = store_sqlite__read_acquire(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(c, id, sql, &q, err);
    if (!r) {
        store_sqlite__bind_text(q, 1, text);
        if (upper) {
            store_sqlite__bind_text(q, 2, upper);
            store_sqlite__bind_text(q, 3, after ? after : "");
            sqlite3_bind_int(q, 4, limit);
        }
        r = store_sqlite__collect(c, q, "list users", (void **)&out->items, &out->n,
                                  sizeof *out->items, read_user_cb, NULL, err);
        if (r)
            store_user_list_cleanup(out);
        store_sqlite__done(q);
    }
    store_sqlite__read_release(s, c);
    return r;
}

int store_sqlite__get_users(struct store *st, const char (*ids)[OID_SIZE], size_t n,
                            struct user_list *out, struct chat_err *err)
{
    out->items = NULL;
    out->n = 0;
    if (n == 0)
        return 0;
    /* One statement for the whole set: the ids travel as a JSON array and
     * json_each turns them into rows (no per-id round trip). */
    json_t *arr = json_array();
    if (!arr)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_stringn(ids[i], strnlen(ids[i], OID_LEN));
        if (v)
            json_array_append_new(arr, v); /* ids that are not UTF-8 match nothing anyway */
    }
    char *js = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (!js)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
    int r = list_users(
        (struct store_sqlite *)st, STORE_SQLITE_USERS_GET_MANY,
        "SELECT " USER_COLS " FROM users WHERE id IN (SELECT value FROM json_each(?1))", js,
        NULL, NULL, 0, out, err);
    free(js);
    return r;
}

int store_sqlite__update_user(struct store *st, const struct user *u, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(
        c, STORE_SQLITE_USER_UPDATE,
        "UPDATE users SET display_name = ?2, bio = ?3, avatar_url = ?4 WHERE id = ?1", &q, err);
    if (!r) {
        store_sqlite__bind_id(q, 1, u->id);
        store_sqlite__bind_text(q, 2, u->display_name ? u->display_name : "");
        store_sqlite__bind_text(q, 3, u->bio ? u->bio : "");
        store_sqlite__bind_text(q, 4, u->avatar_url);
        r = store_sqlite__exec(c, q, "update user", err);
    }
    if (!r && sqlite3_changes(c->db) == 0) /* counts matched rows, changed or not */
        r = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such user");
    store_sqlite__write_unlock(s);
    return r;
}

int store_sqlite__update_user_pwhash(struct store *st, const char *id, const char *pwhash,
                                     struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(c, STORE_SQLITE_USER_PWHASH,
                                  "UPDATE users SET pwhash = ?2 WHERE id = ?1", &q, err);
    if (!r) {
        store_sqlite__bind_id(q, 1, id);
        store_sqlite__bind_text(q, 2, pwhash);
        r = store_sqlite__exec(c, q, "update password hash", err);
    }
    if (!r && sqlite3_changes(c->db) == 0)
        r = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such user");
    store_sqlite__write_unlock(s);
    return r;
}

int store_sqlite__search_users(struct store *st, const char *prefix, const char *after, int limit,
                               struct user_list *out, struct chat_err *err)
{
    out->items = NULL;
    out->n = 0;
    limit = store_sqlite__limit(limit);
    if (limit == 0)
        return 0;
    if (!prefix)
        prefix = "";
    /* Upper bound: the prefix followed by 0xFF, a byte that never occurs in
     * UTF-8, so every string starting with the prefix sorts below it under
     * the BINARY (memcmp) collation. */
    size_t pn = strlen(prefix);
    char *upper = malloc(pn + 2);
    if (!upper)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
    memcpy(upper, prefix, pn);
    upper[pn] = (char)0xff;
    upper[pn + 1] = '\0';
    int r = list_users((struct store_sqlite *)st, STORE_SQLITE_USERS_SEARCH,
                       "SELECT " USER_COLS " FROM users WHERE username_lower >= ?1"
                       " AND username_lower < ?2 AND username_lower > ?3"
                       " AND pwhash <> ''" /* not a deleted account */
                       " ORDER BY username_lower LIMIT ?4",
                       prefix, upper, after, limit, out, err);
    free(upper);
    return r;
}

/* ---- sessions ---- */

/* Runs the session write `id`, whose ?1 is the token hash (and, for an
 * insert, ?2 and ?3 the user and expiry), under the write lock. */
static int write_session(struct store_sqlite *s, enum store_sqlite_stmt_id id, const char *sql,
                         const uint8_t hash[32], const char *user_id, int64_t expires_at,
                         const char *what, struct chat_err *err)
{
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(c, id, sql, &q, err);
    if (!r) {
        sqlite3_bind_blob(q, 1, hash, 32, SQLITE_TRANSIENT);
        if (user_id) {
            store_sqlite__bind_text(q, 2, user_id);
            sqlite3_bind_int64(q, 3, expires_at);
        }
        r = store_sqlite__exec(c, q, what, err);
    }
    store_sqlite__write_unlock(s);
    return r;
}

int store_sqlite__create_session(struct store *st, const uint8_t hash[32], const char *user_id,
                                 int64_t expires_at, struct chat_err *err)
{
    /* REPLACE: a 256-bit hash collides only with itself, i.e. a retry. */
    return write_session(
        (struct store_sqlite *)st, STORE_SQLITE_SESSION_INSERT,
        "INSERT OR REPLACE INTO sessions (hash, user_id, expires_at) VALUES (?1, ?2, ?3)", hash,
        user_id ? user_id : "", expires_at, "insert session", err);
}

int store_sqlite__get_session(struct store *st, const uint8_t hash[32], char user_id[OID_SIZE],
                              int64_t *expires_at, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    user_id[0] = '\0';
    *expires_at = 0;
    struct store_sqlite_conn *c = store_sqlite__read_acquire(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(c, STORE_SQLITE_SESSION_GET,
                                  "SELECT user_id, expires_at FROM sessions WHERE hash = ?1", &q,
                                  err);
    if (!r) {
        sqlite3_bind_blob(q, 1, hash, 32, SQLITE_TRANSIENT);
        r = store_sqlite__step_row(c, q, "get session", "no such session", err);
        if (!r) {
            store_sqlite__col_id(q, 0, user_id);
            *expires_at = sqlite3_column_int64(q, 1);
        }
        store_sqlite__done(q);
    }
    store_sqlite__read_release(s, c);
    return r;
}

int store_sqlite__delete_session(struct store *st, const uint8_t hash[32], struct chat_err *err)
{
    return write_session((struct store_sqlite *)st, STORE_SQLITE_SESSION_DELETE,
                         "DELETE FROM sessions WHERE hash = ?1", hash, NULL, 0, "delete session",
                         err);
}
