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
    " EXISTS (SELECT 1 FROM likes l WHERE l.post = p.k AND l.user_id = ?1), p.created_at,"  \
    " p.edited_at"

/* Fills the post `item` from a row of POST_COLS (a store_sqlite__collect
 * reader; `arg` is unused).  0 or CHAT_E_INTERNAL (then `item` is cleaned
 * up). */
static int read_post_cb(sqlite3_stmt *q, void *item, void *arg)
{
    struct post *p = item;
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
    p->edited_at = sqlite3_column_int64(q, 8); /* NULL reads as 0 */
    if (oom) {
        store_post_cleanup(p);
        return CHAT_E_INTERNAL;
    }
    return 0;
}

/* Fills the comment `item` from a row of (id, author_id, text, created_at)
 * of the post `arg` (a store_sqlite__collect reader).  0 or
 * CHAT_E_INTERNAL (then `item` is cleaned up). */
static int read_comment_cb(sqlite3_stmt *q, void *item, void *arg)
{
    struct comment *cm = item;
    bool oom = false;
    store_sqlite__col_id(q, 0, cm->id);
    snprintf(cm->post_id, sizeof cm->post_id, "%s", (const char *)arg);
    store_sqlite__col_id(q, 1, cm->author_id);
    store_sqlite__col_dup_nn(q, 2, &cm->text, &oom);
    cm->created_at = sqlite3_column_int64(q, 3);
    if (oom) {
        store_comment_cleanup(cm);
        return CHAT_E_INTERNAL;
    }
    return 0;
}

/* Opens the write transaction of a change to post `id` and finds the
 * post's integer key: 0 with *k set, CHAT_E_NOT_FOUND, or a port code. */
static int begin_on_post(struct store_sqlite_conn *c, const char *id, int64_t *k,
                         struct chat_err *err)
{
    int r = store_sqlite__begin(c, true, err);
    if (!r)
        r = store_sqlite__lookup(c, STORE_SQLITE_POST_KEY, "SELECT k FROM posts WHERE id = ?1",
                                 id ? id : "", k, err);
    if (r == 0)
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such post");
    return r < 0 ? r : 0;
}

/* Runs a cached write statement with one integer parameter to the end. */
static int run_k(struct store_sqlite_conn *c, enum store_sqlite_stmt_id id, const char *sql,
                 int64_t k, struct chat_err *err)
{
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(c, id, sql, &q, err);
    if (r)
        return r;
    sqlite3_bind_int64(q, 1, k);
    return store_sqlite__exec(c, q, "write", err);
}

int store_sqlite__create_post(struct store *st, const struct post *p, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(c, STORE_SQLITE_POST_INSERT,
                                  "INSERT INTO posts (id, author_id, text, image_url, created_at)"
                                  " VALUES (?1, ?2, ?3, ?4, ?5)",
                                  &q, err);
    if (!r) {
        store_sqlite__bind_id(q, 1, p->id);
        store_sqlite__bind_id(q, 2, p->author_id);
        store_sqlite__bind_text(q, 3, p->text ? p->text : "");
        store_sqlite__bind_text(q, 4, p->image_url);
        sqlite3_bind_int64(q, 5, p->created_at);
        r = store_sqlite__exec(c, q, "insert post", err);
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
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(c, STORE_SQLITE_POST_GET,
                                  "SELECT " POST_COLS " FROM posts p WHERE p.id = ?2", &q, err);
    if (!r) {
        store_sqlite__bind_text(q, 1, viewer_id);
        store_sqlite__bind_text(q, 2, id ? id : "");
        r = store_sqlite__step_row(c, q, "get post", "no such post", err);
        if (!r && read_post_cb(q, out, NULL))
            r = chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
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
    sqlite3_stmt *q;
    int r = author_id ? store_sqlite__prepare(c, STORE_SQLITE_POSTS_LIST_AUTHOR,
                                              "SELECT " POST_COLS " FROM posts p"
                                              " WHERE p.author_id = ?5"
                                              " AND (p.created_at, p.id) < (?2, ?3)"
                                              " ORDER BY p.created_at DESC, p.id DESC LIMIT ?4",
                                              &q, err)
                      : store_sqlite__prepare(c, STORE_SQLITE_POSTS_LIST,
                                              "SELECT " POST_COLS " FROM posts p"
                                              " WHERE (p.created_at, p.id) < (?2, ?3)"
                                              " ORDER BY p.created_at DESC, p.id DESC LIMIT ?4",
                                              &q, err);
    if (!r) {
        store_sqlite__bind_text(q, 1, viewer_id);
        store_sqlite__bind_page(q, 2, before, limit);
        if (author_id)
            store_sqlite__bind_text(q, 5, author_id);
        r = store_sqlite__collect(c, q, "list posts", (void **)&out->items, &out->n,
                                  sizeof *out->items, read_post_cb, NULL, err);
        if (r)
            store_post_list_cleanup(out);
        store_sqlite__done(q);
    }
    store_sqlite__read_release(s, c);
    return r;
}

int store_sqlite__update_post(struct store *st, const struct post *p, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(c, STORE_SQLITE_POST_UPDATE,
                                  "UPDATE posts SET text = ?2, image_url = ?3, edited_at = ?4"
                                  " WHERE id = ?1",
                                  &q, err);
    if (!r) {
        store_sqlite__bind_id(q, 1, p->id);
        store_sqlite__bind_text(q, 2, p->text ? p->text : "");
        store_sqlite__bind_text(q, 3, p->image_url);
        sqlite3_bind_int64(q, 4, p->edited_at);
        r = store_sqlite__exec(c, q, "update post", err);
    }
    if (!r && sqlite3_changes(c->db) == 0)
        r = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such post");
    store_sqlite__write_unlock(s);
    return r;
}

int store_sqlite__delete_post(struct store *st, const char *id, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    int64_t k = 0;
    int r = begin_on_post(c, id, &k, err);
    if (!r)
        r = run_k(c, STORE_SQLITE_LIKES_DELETE_POST, "DELETE FROM likes WHERE post = ?1", k, err);
    if (!r)
        r = run_k(c, STORE_SQLITE_COMMENTS_DELETE_POST, "DELETE FROM comments WHERE post = ?1", k,
                  err);
    if (!r)
        r = run_k(c, STORE_SQLITE_POST_DELETE, "DELETE FROM posts WHERE k = ?1", k, err);
    if (!r)
        r = store_sqlite__commit(c, err);
    store_sqlite__write_unlock(s); /* rolls back what did not commit */
    return r;
}

/* Moves the post's like counter by `delta` and reads the new count into
 * *count.  0 or a port code. */
static int add_likes(struct store_sqlite_conn *c, int64_t k, int delta, int64_t *count,
                     struct chat_err *err)
{
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(c, STORE_SQLITE_POST_LIKES_ADD,
                                  "UPDATE posts SET like_count = like_count + ?2 WHERE k = ?1"
                                  " RETURNING like_count",
                                  &q, err);
    if (r)
        return r;
    sqlite3_bind_int64(q, 1, k);
    sqlite3_bind_int(q, 2, delta);
    r = store_sqlite__step(c, q, "count like", err);
    if (r != 1) {
        store_sqlite__done(q);
        return r;
    }
    *count = sqlite3_column_int64(q, 0);
    return store_sqlite__exec(c, q, "count like", err); /* the UPDATE ends after its row */
}

int store_sqlite__set_like(struct store *st, const char *post_id, const char *user_id, bool liked,
                           int64_t *like_count, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    *like_count = 0;
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    int64_t k = 0;
    sqlite3_stmt *q;
    int r = begin_on_post(c, post_id, &k, err);
    if (!r)
        r = liked ? store_sqlite__prepare(
                        c, STORE_SQLITE_LIKE_INSERT,
                        "INSERT OR IGNORE INTO likes (post, user_id) VALUES (?1, ?2)", &q, err)
                  : store_sqlite__prepare(c, STORE_SQLITE_LIKE_DELETE,
                                          "DELETE FROM likes WHERE post = ?1 AND user_id = ?2",
                                          &q, err);
    if (!r) {
        sqlite3_bind_int64(q, 1, k);
        store_sqlite__bind_text(q, 2, user_id ? user_id : "");
        r = store_sqlite__exec(c, q, "like", err);
    }
    /* Only a like that really appeared or went moves the counter, which
     * makes repeated PUT/DELETE idempotent. */
    if (!r)
        r = add_likes(c, k, sqlite3_changes(c->db) == 0 ? 0 : liked ? 1 : -1, like_count, err);
    if (!r)
        r = store_sqlite__commit(c, err);
    if (r)
        *like_count = 0;
    store_sqlite__write_unlock(s);
    return r;
}

int store_sqlite__create_comment(struct store *st, const struct comment *cm, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    int64_t k = 0;
    char post_id[OID_SIZE]; /* the record's buffer may lack its NUL */
    snprintf(post_id, sizeof post_id, "%.*s", OID_LEN, cm->post_id);
    sqlite3_stmt *q;
    int r = begin_on_post(c, post_id, &k, err);
    if (!r)
        r = store_sqlite__prepare(c, STORE_SQLITE_COMMENT_INSERT,
                                  "INSERT INTO comments (id, post, author_id, text, created_at)"
                                  " VALUES (?1, ?2, ?3, ?4, ?5)",
                                  &q, err);
    if (!r) {
        store_sqlite__bind_id(q, 1, cm->id);
        sqlite3_bind_int64(q, 2, k);
        store_sqlite__bind_id(q, 3, cm->author_id);
        store_sqlite__bind_text(q, 4, cm->text ? cm->text : "");
        sqlite3_bind_int64(q, 5, cm->created_at);
        r = store_sqlite__exec(c, q, "insert comment", err);
    }
    if (!r)
        r = run_k(c, STORE_SQLITE_POST_COMMENTS_INC,
                  "UPDATE posts SET comment_count = comment_count + 1 WHERE k = ?1", k, err);
    if (!r)
        r = store_sqlite__commit(c, err);
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
    if (!post_id)
        post_id = "";
    struct store_sqlite_conn *c = store_sqlite__read_acquire(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(
        c, STORE_SQLITE_COMMENTS_LIST,
        "SELECT c.id, c.author_id, c.text, c.created_at FROM comments c"
        " WHERE c.post = (SELECT k FROM posts WHERE id = ?1) AND (c.created_at, c.id) < (?2, ?3)"
        " ORDER BY c.created_at DESC, c.id DESC LIMIT ?4",
        &q, err);
    if (!r) {
        store_sqlite__bind_text(q, 1, post_id);
        store_sqlite__bind_page(q, 2, before, limit);
        r = store_sqlite__collect(c, q, "list comments", (void **)&out->items, &out->n,
                                  sizeof *out->items, read_comment_cb, (void *)post_id, err);
        if (r)
            store_comment_list_cleanup(out);
        store_sqlite__done(q);
    }
    store_sqlite__read_release(s, c);
    return r;
}
