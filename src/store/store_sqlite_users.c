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

/* Fills `u` from a row of USER_COLS.  0 or CHAT_E_INTERNAL (then `u` is
 * cleaned up). */
static int read_user(sqlite3_stmt *q, struct user *u)
{
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

/* 1 when the statement `id` with one text parameter finds a row, 0 when not,
 * or a negative port code. */
static int exists(struct store_sqlite_conn *c, enum store_sqlite_stmt_id id, const char *sql,
                  const char *arg, struct chat_err *err)
{
    int rc;
    sqlite3_stmt *q = store_sqlite__stmt(c, id, sql, &rc);
    if (!q)
        return store_sqlite__fail(c, rc, "prepare", err);
    store_sqlite__bind_text(q, 1, arg);
    rc = sqlite3_step(q);
    int out = rc == SQLITE_ROW    ? 1
              : rc == SQLITE_DONE ? 0
                                  : store_sqlite__fail(c, rc, "lookup", err);
    store_sqlite__done(q);
    return out;
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
    int out = exists(c, STORE_SQLITE_USER_EMAIL_EXISTS, "SELECT 1 FROM users WHERE email = ?1",
                     u->email, err);
    if (out == 1) {
        out = chat_err_set(err, CHAT_E_EMAIL_TAKEN, NULL, NULL);
        goto done;
    }
    if (out < 0)
        goto done;
    out = exists(c, STORE_SQLITE_USER_NAME_EXISTS, "SELECT 1 FROM users WHERE username_lower = ?1",
                 lower, err);
    if (out == 1) {
        out = chat_err_set(err, CHAT_E_USERNAME_TAKEN, NULL, NULL);
        goto done;
    }
    if (out < 0)
        goto done;
    int rc;
    sqlite3_stmt *q = store_sqlite__stmt(
        c, STORE_SQLITE_USER_INSERT,
        "INSERT INTO users (id, username, username_lower, email, display_name, bio, avatar_url,"
        " pwhash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        &rc);
    if (!q) {
        out = store_sqlite__fail(c, rc, "prepare", err);
        goto done;
    }
    store_sqlite__bind_id(q, 1, u->id);
    store_sqlite__bind_text(q, 2, u->username ? u->username : "");
    store_sqlite__bind_text(q, 3, lower);
    store_sqlite__bind_text(q, 4, u->email ? u->email : "");
    store_sqlite__bind_text(q, 5, u->display_name ? u->display_name : "");
    store_sqlite__bind_text(q, 6, u->bio ? u->bio : "");
    store_sqlite__bind_text(q, 7, u->avatar_url);
    store_sqlite__bind_text(q, 8, u->pwhash ? u->pwhash : "");
    sqlite3_bind_int64(q, 9, u->created_at);
    rc = sqlite3_step(q);
    out = rc == SQLITE_DONE ? 0 : store_sqlite__fail(c, rc, "insert user", err);
    store_sqlite__done(q);
done:
    store_sqlite__write_unlock(s);
    free(lower);
    return out;
}

/* Reads at most one user with a one-text-parameter query. */
static int get_one(struct store_sqlite *s, enum store_sqlite_stmt_id id, const char *sql,
                   const char *arg, struct user *out, struct chat_err *err)
{
    memset(out, 0, sizeof *out);
    struct store_sqlite_conn *c = store_sqlite__read_acquire(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    int rc, r;
    sqlite3_stmt *q = store_sqlite__stmt(c, id, sql, &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
        goto done;
    }
    store_sqlite__bind_text(q, 1, arg ? arg : "");
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        r = read_user(q, out) ? chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL) : 0;
    else if (rc == SQLITE_DONE)
        r = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such user");
    else
        r = store_sqlite__fail(c, rc, "get user", err);
    store_sqlite__done(q);
done:
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

/* Steps `q` to the end, appending each row to `out`. */
static int collect_users(struct store_sqlite_conn *c, sqlite3_stmt *q, struct user_list *out,
                         struct chat_err *err)
{
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (store_sqlite__grow((void **)&out->items, &cap, out->n, sizeof *out->items) ||
            read_user(q, &out->items[out->n])) {
            store_user_list_cleanup(out);
            return chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
        }
        out->n++;
    }
    if (rc != SQLITE_DONE) {
        store_user_list_cleanup(out);
        return store_sqlite__fail(c, rc, "list users", err);
    }
    return 0;
}

int store_sqlite__get_users(struct store *st, const char (*ids)[OID_SIZE], size_t n,
                            struct user_list *out, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
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
    int r, rc;
    struct store_sqlite_conn *c = store_sqlite__read_acquire(s, err);
    if (!c) {
        free(js);
        return CHAT_E_UNAVAILABLE;
    }
    sqlite3_stmt *q = store_sqlite__stmt(
        c, STORE_SQLITE_USERS_GET_MANY,
        "SELECT " USER_COLS " FROM users WHERE id IN (SELECT value FROM json_each(?1))", &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
    } else {
        store_sqlite__bind_text(q, 1, js);
        r = collect_users(c, q, out, err);
        store_sqlite__done(q);
    }
    store_sqlite__read_release(s, c);
    free(js);
    return r;
}

int store_sqlite__update_user(struct store *st, const struct user *u, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    int rc, r;
    sqlite3_stmt *q = store_sqlite__stmt(
        c, STORE_SQLITE_USER_UPDATE,
        "UPDATE users SET display_name = ?2, bio = ?3, avatar_url = ?4 WHERE id = ?1", &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
        goto done;
    }
    store_sqlite__bind_id(q, 1, u->id);
    store_sqlite__bind_text(q, 2, u->display_name ? u->display_name : "");
    store_sqlite__bind_text(q, 3, u->bio ? u->bio : "");
    store_sqlite__bind_text(q, 4, u->avatar_url);
    rc = sqlite3_step(q);
    if (rc != SQLITE_DONE)
        r = store_sqlite__fail(c, rc, "update user", err);
    else if (sqlite3_changes(c->db) == 0) /* counts matched rows, changed or not */
        r = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such user");
    else
        r = 0;
    store_sqlite__done(q);
done:
    store_sqlite__write_unlock(s);
    return r;
}

int store_sqlite__search_users(struct store *st, const char *prefix, const char *after, int limit,
                               struct user_list *out, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
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
    int r, rc;
    struct store_sqlite_conn *c = store_sqlite__read_acquire(s, err);
    if (!c) {
        free(upper);
        return CHAT_E_UNAVAILABLE;
    }
    sqlite3_stmt *q = store_sqlite__stmt(
        c, STORE_SQLITE_USERS_SEARCH,
        "SELECT " USER_COLS " FROM users WHERE username_lower >= ?1 AND username_lower < ?2"
        " AND username_lower > ?3 ORDER BY username_lower LIMIT ?4",
        &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
    } else {
        store_sqlite__bind_text(q, 1, prefix);
        sqlite3_bind_text(q, 2, upper, (int)(pn + 1), SQLITE_TRANSIENT);
        store_sqlite__bind_text(q, 3, after ? after : "");
        sqlite3_bind_int(q, 4, limit);
        r = collect_users(c, q, out, err);
        store_sqlite__done(q);
    }
    store_sqlite__read_release(s, c);
    free(upper);
    return r;
}

/* ---- sessions ---- */

int store_sqlite__create_session(struct store *st, const uint8_t hash[32], const char *user_id,
                                 int64_t expires_at, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    int rc, r;
    /* REPLACE: a 256-bit hash collides only with itself, i.e. a retry. */
    sqlite3_stmt *q = store_sqlite__stmt(
        c, STORE_SQLITE_SESSION_INSERT,
        "INSERT OR REPLACE INTO sessions (hash, user_id, expires_at) VALUES (?1, ?2, ?3)", &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
    } else {
        sqlite3_bind_blob(q, 1, hash, 32, SQLITE_TRANSIENT);
        store_sqlite__bind_text(q, 2, user_id ? user_id : "");
        sqlite3_bind_int64(q, 3, expires_at);
        rc = sqlite3_step(q);
        r = rc == SQLITE_DONE ? 0 : store_sqlite__fail(c, rc, "insert session", err);
        store_sqlite__done(q);
    }
    store_sqlite__write_unlock(s);
    return r;
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
    int rc, r;
    sqlite3_stmt *q = store_sqlite__stmt(
        c, STORE_SQLITE_SESSION_GET, "SELECT user_id, expires_at FROM sessions WHERE hash = ?1",
        &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
    } else {
        sqlite3_bind_blob(q, 1, hash, 32, SQLITE_TRANSIENT);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            store_sqlite__col_id(q, 0, user_id);
            *expires_at = sqlite3_column_int64(q, 1);
            r = 0;
        } else if (rc == SQLITE_DONE) {
            r = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such session");
        } else {
            r = store_sqlite__fail(c, rc, "get session", err);
        }
        store_sqlite__done(q);
    }
    store_sqlite__read_release(s, c);
    return r;
}

int store_sqlite__delete_session(struct store *st, const uint8_t hash[32], struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    int rc, r;
    sqlite3_stmt *q = store_sqlite__stmt(c, STORE_SQLITE_SESSION_DELETE,
                                         "DELETE FROM sessions WHERE hash = ?1", &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
    } else {
        sqlite3_bind_blob(q, 1, hash, 32, SQLITE_TRANSIENT);
        rc = sqlite3_step(q);
        r = rc == SQLITE_DONE ? 0 : store_sqlite__fail(c, rc, "delete session", err);
        store_sqlite__done(q);
    }
    store_sqlite__write_unlock(s);
    return r;
}
