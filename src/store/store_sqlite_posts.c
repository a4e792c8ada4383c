/* store_sqlite_posts.c - posts, likes and comments in the SQLite adapter.
 *
 * The feed is read newest first by (created_at, id) through the
 * posts_by_time index, and an author's posts through posts_by_author; a page
 * key becomes the row-value condition (created_at, id) < (ts, id), which
 * SQLite turns into an index range, so paging costs the page and never
 * repeats or skips rows that share a timestamp.
 *
 * like_count and comment_count are counters on the post row, changed in the
 * same transaction as the like or comment row, under the write mutex: they
 * stay exact under any concurrency and reading a post costs no COUNT(*).
 * Likes are keyed (post, user), so a second like is a no-op. */
#include "store_sqlite_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POST_COLS                                                                     \
    "p.id, p.author_id, p.text, p.image_url, p.like_count, p.comment_count,"          \
    " EXISTS (SELECT 1 FROM likes l WHERE l.post = p.k AND l.user_id = ?1), p.created_at"

/* The first page's key: after every real (created_at, id), since ids are
 * ASCII and sort below 0x7F. */
#define FIRST_TS INT64_MAX
#define FIRST_ID "\x7f"

static int read_post(sqlite3_stmt *q, struct post *p)
{
    bool oom = false;
    memset(p, 0, sizeof *p);
    store_sqlite__col_id(q, 0, p->id);
    store_sqlite__col_id(q, 1, p->author_id);
    store_sqlite__col_dup_nn(q, 2, &p->text, &oom);
    store_sqlite__col_dup(q, 3, &p->image_url, &oom);
    p->like_count = sqlite3_column_int64(q, 4);
    p->comment_count = sqlite3_column_int64(q, 5);
    p->liked_by_me = sqlite3_column_int(q, 6) != 0;
    p->created_at = sqlite3_column_int64(q, 7);
    if (oom) {
        store_post_cleanup(p);
        return CHAT_E_INTERNAL;
    }
    return 0;
}

/* The post's integer key: 1 with *k set, 0 when absent, or a port code. */
static int post_key(struct store_sqlite_conn *c, const char *id, int64_t *k, struct chat_err *err)
{
    int rc;
    sqlite3_stmt *q = store_sqlite__stmt(c, STORE_SQLITE_POST_KEY,
                                         "SELECT k FROM posts WHERE id = ?1", &rc);
    if (!q)
        return store_sqlite__fail(c, rc, "prepare", err);
    store_sqlite__bind_text(q, 1, id ? id : "");
    rc = sqlite3_step(q);
    int r;
    if (rc == SQLITE_ROW) {
        *k = sqlite3_column_int64(q, 0);
        r = 1;
    } else {
        r = rc == SQLITE_DONE ? 0 : store_sqlite__fail(c, rc, "post key", err);
    }
    store_sqlite__done(q);
    return r;
}

/* Runs a cached write statement with one integer parameter to the end. */
static int run_k(struct store_sqlite_conn *c, enum store_sqlite_stmt_id id, const char *sql,
                 int64_t k, struct chat_err *err)
{
    int rc;
    sqlite3_stmt *q = store_sqlite__stmt(c, id, sql, &rc);
    if (!q)
        return store_sqlite__fail(c, rc, "prepare", err);
    sqlite3_bind_int64(q, 1, k);
    rc = sqlite3_step(q);
    int r = rc == SQLITE_DONE ? 0 : store_sqlite__fail(c, rc, "write", err);
    store_sqlite__done(q);
    return r;
}

int store_sqlite__create_post(struct store *st, const struct post *p, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    int rc, r;
    sqlite3_stmt *q = store_sqlite__stmt(
        c, STORE_SQLITE_POST_INSERT,
        "INSERT INTO posts (id, author_id, text, image_url, created_at)"
        " VALUES (?1, ?2, ?3, ?4, ?5)",
        &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
    } else {
        store_sqlite__bind_id(q, 1, p->id);
        store_sqlite__bind_id(q, 2, p->author_id);
        store_sqlite__bind_text(q, 3, p->text ? p->text : "");
        store_sqlite__bind_text(q, 4, p->image_url);
        sqlite3_bind_int64(q, 5, p->created_at);
        rc = sqlite3_step(q);
        r = rc == SQLITE_DONE ? 0 : store_sqlite__fail(c, rc, "insert post", err);
        store_sqlite__done(q);
    }
    store_sqlite__write_unlock(s);
    return r;
}

int store_sqlite__get_post(struct store *st, const char *id, const char *viewer_id,
                           struct post *out, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    memset(out, 0, sizeof *out);
    struct store_sqlite_conn *c = store_sqlite__read_acquire(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    int rc, r;
    sqlite3_stmt *q = store_sqlite__stmt(c, STORE_SQLITE_POST_GET,
                                         "SELECT " POST_COLS " FROM posts p WHERE p.id = ?2", &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
    } else {
        store_sqlite__bind_text(q, 1, viewer_id);
        store_sqlite__bind_text(q, 2, id ? id : "");
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW)
            r = read_post(q, out) ? chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL) : 0;
        else if (rc == SQLITE_DONE)
            r = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such post");
        else
            r = store_sqlite__fail(c, rc, "get post", err);
        store_sqlite__done(q);
    }
    store_sqlite__read_release(s, c);
    return r;
}

int store_sqlite__list_posts(struct store *st, const char *author_id, const char *viewer_id,
                             const struct page_key *before, int limit, struct post_list *out,
                             struct chat_err *err)
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
    int rc, r = 0;
    sqlite3_stmt *q =
        author_id
            ? store_sqlite__stmt(c, STORE_SQLITE_POSTS_LIST_AUTHOR,
                                 "SELECT " POST_COLS " FROM posts p WHERE p.author_id = ?5"
                                 " AND (p.created_at, p.id) < (?2, ?3)"
                                 " ORDER BY p.created_at DESC, p.id DESC LIMIT ?4",
                                 &rc)
            : store_sqlite__stmt(c, STORE_SQLITE_POSTS_LIST,
                                 "SELECT " POST_COLS " FROM posts p"
                                 " WHERE (p.created_at, p.id) < (?2, ?3)"
                                 " ORDER BY p.created_at DESC, p.id DESC LIMIT ?4",
                                 &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
        goto done;
    }
    store_sqlite__bind_text(q, 1, viewer_id);
    sqlite3_bind_int64(q, 2, before ? before->ts : FIRST_TS);
    store_sqlite__bind_id(q, 3, before ? before->id : FIRST_ID);
    sqlite3_bind_int(q, 4, limit);
    if (author_id)
        store_sqlite__bind_text(q, 5, author_id);
    size_t cap = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (store_sqlite__grow((void **)&out->items, &cap, out->n, sizeof *out->items) ||
            read_post(q, &out->items[out->n])) {
            rc = SQLITE_NOMEM;
            break;
        }
        out->n++;
    }
    if (rc == SQLITE_NOMEM) {
        store_post_list_cleanup(out);
        r = chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
    } else if (rc != SQLITE_DONE) {
        store_post_list_cleanup(out);
        r = store_sqlite__fail(c, rc, "list posts", err);
    }
    store_sqlite__done(q);
done:
    store_sqlite__read_release(s, c);
    return r;
}

int store_sqlite__delete_post(struct store *st, const char *id, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    int64_t k = 0;
    int r = store_sqlite__begin(c, true, err);
    if (r)
        goto done;
    r = post_key(c, id, &k, err);
    if (r <= 0) {
        if (r == 0)
            r = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such post");
        goto done;
    }
    if ((r = run_k(c, STORE_SQLITE_LIKES_DELETE_POST, "DELETE FROM likes WHERE post = ?1", k,
                   err)) ||
        (r = run_k(c, STORE_SQLITE_COMMENTS_DELETE_POST, "DELETE FROM comments WHERE post = ?1",
                   k, err)) ||
        (r = run_k(c, STORE_SQLITE_POST_DELETE, "DELETE FROM posts WHERE k = ?1", k, err)))
        goto done;
    r = store_sqlite__commit(c, err);
done:
    store_sqlite__write_unlock(s); /* rolls back what did not commit */
    return r;
}

int store_sqlite__set_like(struct store *st, const char *post_id, const char *user_id, bool liked,
                           int64_t *like_count, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    *like_count = 0;
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    int64_t k = 0;
    int rc, r = store_sqlite__begin(c, true, err);
    if (r)
        goto done;
    r = post_key(c, post_id, &k, err);
    if (r <= 0) {
        if (r == 0)
            r = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such post");
        goto done;
    }
    sqlite3_stmt *q =
        liked ? store_sqlite__stmt(c, STORE_SQLITE_LIKE_INSERT,
                                   "INSERT OR IGNORE INTO likes (post, user_id) VALUES (?1, ?2)",
                                   &rc)
              : store_sqlite__stmt(c, STORE_SQLITE_LIKE_DELETE,
                                   "DELETE FROM likes WHERE post = ?1 AND user_id = ?2", &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
        goto done;
    }
    sqlite3_bind_int64(q, 1, k);
    store_sqlite__bind_text(q, 2, user_id ? user_id : "");
    rc = sqlite3_step(q);
    if (rc != SQLITE_DONE) {
        r = store_sqlite__fail(c, rc, "like", err);
        store_sqlite__done(q);
        goto done;
    }
    store_sqlite__done(q);
    /* Only a like that really appeared or went moves the counter, which
     * makes repeated PUT/DELETE idempotent. */
    int delta = sqlite3_changes(c->db) == 0 ? 0 : liked ? 1 : -1;
    q = store_sqlite__stmt(c, STORE_SQLITE_POST_LIKES_ADD,
                           "UPDATE posts SET like_count = like_count + ?2 WHERE k = ?1"
                           " RETURNING like_count",
                           &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
        goto done;
    }
    sqlite3_bind_int64(q, 1, k);
    sqlite3_bind_int(q, 2, delta);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        *like_count = sqlite3_column_int64(q, 0);
        rc = sqlite3_step(q);
    }
    store_sqlite__done(q);
    if (rc != SQLITE_DONE) {
        *like_count = 0;
        r = store_sqlite__fail(c, rc, "count like", err);
        goto done;
    }
    r = store_sqlite__commit(c, err);
    if (r)
        *like_count = 0;
done:
    store_sqlite__write_unlock(s);
    return r;
}

int store_sqlite__create_comment(struct store *st, const struct comment *cm, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    int64_t k = 0;
    int rc, r = store_sqlite__begin(c, true, err);
    if (r)
        goto done;
    char post_id[OID_SIZE]; /* the record's buffer may lack its NUL */
    snprintf(post_id, sizeof post_id, "%.*s", OID_LEN, cm->post_id);
    r = post_key(c, post_id, &k, err);
    if (r <= 0) {
        if (r == 0)
            r = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such post");
        goto done;
    }
    sqlite3_stmt *q = store_sqlite__stmt(
        c, STORE_SQLITE_COMMENT_INSERT,
        "INSERT INTO comments (id, post, author_id, text, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
        goto done;
    }
    store_sqlite__bind_id(q, 1, cm->id);
    sqlite3_bind_int64(q, 2, k);
    store_sqlite__bind_id(q, 3, cm->author_id);
    store_sqlite__bind_text(q, 4, cm->text ? cm->text : "");
    sqlite3_bind_int64(q, 5, cm->created_at);
    rc = sqlite3_step(q);
    store_sqlite__done(q);
    if (rc != SQLITE_DONE) {
        r = store_sqlite__fail(c, rc, "insert comment", err);
        goto done;
    }
    if ((r = run_k(c, STORE_SQLITE_POST_COMMENTS_INC,
                   "UPDATE posts SET comment_count = comment_count + 1 WHERE k = ?1", k, err)))
        goto done;
    r = store_sqlite__commit(c, err);
done:
    store_sqlite__write_unlock(s);
    return r;
}

int store_sqlite__list_comments(struct store *st, const char *post_id,
                                const struct page_key *before, int limit,
                                struct comment_list *out, struct chat_err *err)
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
    int rc, r = 0;
    sqlite3_stmt *q = store_sqlite__stmt(
        c, STORE_SQLITE_COMMENTS_LIST,
        "SELECT c.id, c.author_id, c.text, c.created_at FROM comments c"
        " WHERE c.post = (SELECT k FROM posts WHERE id = ?1) AND (c.created_at, c.id) < (?2, ?3)"
        " ORDER BY c.created_at DESC, c.id DESC LIMIT ?4",
        &rc);
    if (!q) {
        r = store_sqlite__fail(c, rc, "prepare", err);
        goto done;
    }
    store_sqlite__bind_text(q, 1, post_id ? post_id : "");
    sqlite3_bind_int64(q, 2, before ? before->ts : FIRST_TS);
    store_sqlite__bind_id(q, 3, before ? before->id : FIRST_ID);
    sqlite3_bind_int(q, 4, limit);
    size_t cap = 0;
    bool oom = false;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (store_sqlite__grow((void **)&out->items, &cap, out->n, sizeof *out->items)) {
            oom = true;
            break;
        }
        struct comment *cm = &out->items[out->n++];
        store_sqlite__col_id(q, 0, cm->id);
        snprintf(cm->post_id, sizeof cm->post_id, "%s", post_id);
        store_sqlite__col_id(q, 1, cm->author_id);
        store_sqlite__col_dup_nn(q, 2, &cm->text, &oom);
        cm->created_at = sqlite3_column_int64(q, 3);
        if (oom)
            break;
    }
    if (oom) {
        store_comment_list_cleanup(out);
        r = chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
    } else if (rc != SQLITE_DONE) {
        store_comment_list_cleanup(out);
        r = store_sqlite__fail(c, rc, "list comments", err);
    }
    store_sqlite__done(q);
done:
    store_sqlite__read_release(s, c);
    return r;
}
