/* store_mongo_posts.c - posts, likes and comments in the MongoDB adapter.
 *
 * The like and comment counters live on the post and move with $inc (under
 * the post's document lock on FerretDB, see store_mongo_conn.c).  A like is
 * its own document under a unique (postId, userId) index, so a repeated PUT
 * cannot count twice.  There are no multi-document transactions: every
 * multi-step write here is ordered so that a crash between its steps leaves
 * at worst a count that is off by one, never a visible post whose children
 * disagree with it (each operation says its order).  likedByMe is one
 * likes {postId: {$in: page}, userId} query per page, joined here (no
 * $lookup: FerretDB lacks it, and it scales badly on a sharded cluster). */
#include "store_mongo_internal.h"

#include <stdlib.h>
#include <string.h>

static int parse_post(const bson_t *d, void *item)
{
    struct post *p = item;
    memset(p, 0, sizeof *p);
    store_mongo__get_oid_hex(d, "_id", p->id);
    store_mongo__get_oid_hex(d, "authorId", p->author_id);
    p->like_count = store_mongo__get_i64(d, "likeCount");
    p->comment_count = store_mongo__get_i64(d, "commentCount");
    p->created_at = store_mongo__get_i64(d, "createdAt");
    p->edited_at = store_mongo__get_i64(d, "editedAt"); /* absent or null: 0 */
    if (store_mongo__get_str_nn(d, "text", &p->text) ||
        store_mongo__get_str(d, "imageUrl", &p->image_url)) {
        store_post_cleanup(p);
        return -1;
    }
    return 0;
}

static int parse_comment(const bson_t *d, void *item)
{
    struct comment *c = item;
    memset(c, 0, sizeof *c);
    store_mongo__get_oid_hex(d, "_id", c->id);
    store_mongo__get_oid_hex(d, "postId", c->post_id);
    store_mongo__get_oid_hex(d, "authorId", c->author_id);
    c->created_at = store_mongo__get_i64(d, "createdAt");
    if (store_mongo__get_str_nn(d, "text", &c->text)) {
        store_comment_cleanup(c);
        return -1;
    }
    return 0;
}

static int no_post(struct chat_err *err)
{
    return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such post");
}

int store_mongo__create_post(struct store *st, const struct post *p, struct chat_err *err)
{
    bson_oid_t id, author;
    if (!store_mongo__oid(p->id, &id) || !store_mongo__oid(p->author_id, &author))
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "bad post id");
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_OID(&doc, "_id", &id);
    BSON_APPEND_OID(&doc, "authorId", &author);
    BSON_APPEND_UTF8(&doc, "text", p->text ? p->text : "");
    store_mongo__append_str_or_null(&doc, "imageUrl", p->image_url);
    BSON_APPEND_INT64(&doc, "likeCount", p->like_count);
    BSON_APPEND_INT64(&doc, "commentCount", p->comment_count);
    BSON_APPEND_DATE_TIME(&doc, "createdAt", p->created_at);
    int rc = store_mongo__insert_one((struct store_mongo *)st, "posts", &doc, "create_post", err);
    bson_destroy(&doc);
    return rc;
}

/* Sets liked_by_me on each post of `posts` that `viewer` likes, with one
 * query on likes {postId: {$in: ...}, userId: viewer}. */
static int mark_liked(struct store_mongo *s, const struct store_mongo_scope *sc,
                      struct post *posts, size_t n, const char *viewer, const char *op,
                      struct chat_err *err)
{
    bson_oid_t uid;
    if (n == 0 || !store_mongo__oid(viewer, &uid))
        return 0;
    bson_oid_t *ids = calloc(n, sizeof *ids);
    if (!ids)
        return store_mongo__oom(err);
    for (size_t i = 0; i < n; i++)
        bson_oid_init_from_string(&ids[i], posts[i].id);
    bson_t q = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    store_mongo__append_oid_in(&q, "postId", ids, n);
    BSON_APPEND_OID(&q, "userId", &uid);
    free(ids);
    BCON_APPEND(&opts, "projection", "{", "postId", BCON_INT32(1), "}");
    mongoc_collection_t *col = store_mongo__coll(s, sc, "likes");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(col, &q, &opts, NULL);
    const bson_t *doc;
    while (mongoc_cursor_next(cur, &doc)) {
        char pid[OID_SIZE];
        store_mongo__get_oid_hex(doc, "postId", pid);
        for (size_t i = 0; i < n; i++)
            if (strcmp(posts[i].id, pid) == 0)
                posts[i].liked_by_me = true;
    }
    bson_error_t e;
    int rc = mongoc_cursor_error(cur, &e) ? store_mongo__fail(err, op, &e) : 0;
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(col);
    bson_destroy(&q);
    bson_destroy(&opts);
    return rc;
}

int store_mongo__get_post(struct store *st, const char *id, const char *viewer_id,
                          struct post *out, struct chat_err *err)
{
    struct store_mongo *s = (struct store_mongo *)st;
    memset(out, 0, sizeof *out);
    bson_oid_t oid;
    if (!store_mongo__oid(id, &oid))
        return no_post(err);
    struct store_mongo_scope sc;
    bson_t doc;
    int rc = store_mongo__scope_open(s, "posts", &sc, err);
    if (!rc)
        rc = store_mongo__find_id(sc.coll, &oid, NULL, &doc, "get_post", err);
    if (rc == 0) {
        rc = no_post(err);
    } else if (rc == 1) {
        rc = parse_post(&doc, out) ? store_mongo__oom(err) : 0;
        bson_destroy(&doc);
        if (!rc && viewer_id)
            rc = mark_liked(s, &sc, out, 1, viewer_id, "get_post", err);
        if (rc)
            store_post_cleanup(out);
    }
    store_mongo__scope_close(s, &sc);
    return rc;
}

int store_mongo__list_posts(struct store *st, const char *author_id, const char *viewer_id,
                            const struct page_key *before, int limit, struct post_list *out,
                            struct chat_err *err)
{
    struct store_mongo *s = (struct store_mongo *)st;
    memset(out, 0, sizeof *out);
    if (limit <= 0)
        return 0;
    bson_t q = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    int rc = 0;
    if (author_id) {
        bson_oid_t a;
        if (!store_mongo__oid(author_id, &a))
            goto out; /* no such author: an empty page */
        BSON_APPEND_OID(&q, "authorId", &a);
    }
    int64_t max = store_mongo__limit(limit);
    struct store_mongo_scope sc;
    rc = store_mongo__page(&q, &opts, "createdAt", before, max, err);
    if (rc)
        goto out;
    rc = store_mongo__scope_open(s, "posts", &sc, err);
    if (!rc) {
        void *items;
        rc = store_mongo__find_all(sc.coll, &q, &opts, (size_t)max, sizeof(struct post),
                                   parse_post, &items, &out->n, "list_posts", err);
        out->items = items;
    }
    if (!rc && viewer_id)
        rc = mark_liked(s, &sc, out->items, out->n, viewer_id, "list_posts", err);
    store_mongo__scope_close(s, &sc);
    if (rc)
        store_post_list_cleanup(out);
out:
    bson_destroy(&q);
    bson_destroy(&opts);
    return rc;
}

/* Deletes every like or comment (`cname`) of post `post`. */
static int delete_by_post(struct store_mongo *s, const struct store_mongo_scope *sc,
                          const char *cname, const bson_oid_t *post, struct chat_err *err)
{
    bson_t q = BSON_INITIALIZER;
    BSON_APPEND_OID(&q, "postId", post);
    mongoc_collection_t *col = store_mongo__coll(s, sc, cname);
    bson_error_t e;
    int rc = mongoc_collection_delete_many(col, &q, NULL, NULL, &e)
                 ? 0
                 : store_mongo__fail(err, "delete_post", &e);
    mongoc_collection_destroy(col);
    bson_destroy(&q);
    return rc;
}

/* One $set of the post document: text, imageUrl and editedAt change
 * together or not at all. */
int store_mongo__update_post(struct store *st, const struct post *p, struct chat_err *err)
{
    struct store_mongo *s = (struct store_mongo *)st;
    bson_oid_t oid;
    if (!store_mongo__oid(p->id, &oid))
        return no_post(err);
    bson_t q = BSON_INITIALIZER, up = BSON_INITIALIZER, set;
    BSON_APPEND_OID(&q, "_id", &oid);
    BSON_APPEND_DOCUMENT_BEGIN(&up, "$set", &set);
    BSON_APPEND_UTF8(&set, "text", p->text ? p->text : "");
    store_mongo__append_str_or_null(&set, "imageUrl", p->image_url);
    BSON_APPEND_DATE_TIME(&set, "editedAt", p->edited_at);
    bson_append_document_end(&up, &set);
    struct store_mongo_scope sc;
    int64_t matched = 0;
    int rc = store_mongo__scope_open(s, "posts", &sc, err);
    if (!rc) {
        rc = store_mongo__update_doc(s, sc.coll, &oid, &q, &up, &matched, NULL, "update_post",
                                     err);
        store_mongo__scope_close(s, &sc);
    }
    if (!rc && matched == 0)
        rc = no_post(err);
    bson_destroy(&q);
    bson_destroy(&up);
    return rc;
}

/* The post goes first, so a crash part-way leaves unreachable likes and
 * comments (no read path reaches them without the post), never a visible
 * post whose counts disagree with its children. */
int store_mongo__delete_post(struct store *st, const char *id, struct chat_err *err)
{
    struct store_mongo *s = (struct store_mongo *)st;
    bson_oid_t oid;
    if (!store_mongo__oid(id, &oid))
        return no_post(err);
    bson_t q = BSON_INITIALIZER, reply;
    BSON_APPEND_OID(&q, "_id", &oid);
    struct store_mongo_scope sc;
    int rc = store_mongo__scope_open(s, "posts", &sc, err);
    if (!rc) {
        bson_error_t e;
        if (!mongoc_collection_delete_one(sc.coll, &q, NULL, &reply, &e))
            rc = store_mongo__fail(err, "delete_post", &e);
        else if (store_mongo__get_i64(&reply, "deletedCount") == 0)
            rc = no_post(err);
        bson_destroy(&reply);
    }
    if (!rc)
        rc = delete_by_post(s, &sc, "likes", &oid, err);
    if (!rc)
        rc = delete_by_post(s, &sc, "comments", &oid, err);
    store_mongo__scope_close(s, &sc);
    bson_destroy(&q);
    return rc;
}

/* $inc a counter of post `id` (in `posts`) by `by`; *value = the new count
 * when `value` is not NULL.  0, CHAT_E_NOT_FOUND (no such post) or an
 * error. */
static int inc_post_counter(struct store_mongo *s, mongoc_collection_t *posts,
                            const bson_oid_t *id, const char *field, int by, int64_t *value,
                            const char *op, struct chat_err *err)
{
    bson_t q = BSON_INITIALIZER, up = BSON_INITIALIZER, v;
    BSON_APPEND_OID(&q, "_id", id);
    BCON_APPEND(&up, "$inc", "{", field, BCON_INT64(by), "}");
    int r = store_mongo__modify_doc(s, posts, id, &q, &up, &v, op, err);
    bson_destroy(&q);
    bson_destroy(&up);
    if (r < 0)
        return r;
    if (r == 0)
        return no_post(err);
    if (value)
        *value = store_mongo__get_i64(&v, field);
    bson_destroy(&v);
    return 0;
}

/* Inserts (liked) or deletes the like document `like`; *changed tells
 * whether it really was inserted or deleted. */
static int put_like(mongoc_collection_t *likes, const bson_t *like, bool liked, bool *changed,
                    struct chat_err *err)
{
    bson_error_t e;
    *changed = false;
    if (liked) {
        if (mongoc_collection_insert_one(likes, like, NULL, NULL, &e))
            *changed = true;
        else if (!store_mongo__is_dup(&e))
            return store_mongo__fail(err, "set_like", &e);
        return 0;
    }
    bson_t reply;
    int rc = 0;
    if (!mongoc_collection_delete_one(likes, like, NULL, &reply, &e))
        rc = store_mongo__fail(err, "set_like", &e);
    else
        *changed = store_mongo__get_i64(&reply, "deletedCount") > 0;
    bson_destroy(&reply);
    return rc;
}

/* likeCount moves only when the like document was really inserted or
 * deleted, so a repeated PUT or DELETE changes nothing. */
int store_mongo__set_like(struct store *st, const char *post_id, const char *user_id, bool liked,
                          int64_t *like_count, struct chat_err *err)
{
    struct store_mongo *s = (struct store_mongo *)st;
    bson_oid_t pid, uid;
    *like_count = 0;
    if (!store_mongo__oid(post_id, &pid))
        return no_post(err);
    if (!store_mongo__oid(user_id, &uid))
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "bad user id");
    struct store_mongo_scope sc;
    bson_t post;
    int rc = store_mongo__scope_open(s, "posts", &sc, err);
    if (!rc)
        rc = store_mongo__find_id(sc.coll, &pid, (const char *const[]){"likeCount", NULL}, &post,
                                  "set_like", err);
    if (rc == 0)
        rc = no_post(err);
    if (rc < 0)
        goto out;
    int64_t current = store_mongo__get_i64(&post, "likeCount");
    bson_destroy(&post);

    bson_t like = BSON_INITIALIZER;
    BSON_APPEND_OID(&like, "postId", &pid);
    BSON_APPEND_OID(&like, "userId", &uid);
    mongoc_collection_t *likes = store_mongo__coll(s, &sc, "likes");
    bool changed;
    rc = put_like(likes, &like, liked, &changed, err);
    if (!rc && changed) {
        rc = inc_post_counter(s, sc.coll, &pid, "likeCount", liked ? 1 : -1, &current,
                              "set_like", err);
        if (rc == CHAT_E_NOT_FOUND && liked) {
            /* The post was deleted meanwhile: take the like back out. */
            mongoc_collection_delete_one(likes, &like, NULL, NULL, NULL);
        }
    }
    mongoc_collection_destroy(likes);
    bson_destroy(&like);
    if (!rc)
        *like_count = current;
out:
    store_mongo__scope_close(s, &sc);
    return rc;
}

/* The post's count goes up first (which also proves the post exists), then
 * the comment is inserted; if the insert fails the count is taken back. */
int store_mongo__create_comment(struct store *st, const struct comment *cm, struct chat_err *err)
{
    struct store_mongo *s = (struct store_mongo *)st;
    bson_oid_t id, pid, author;
    if (!store_mongo__oid(cm->post_id, &pid))
        return no_post(err);
    if (!store_mongo__oid(cm->id, &id) || !store_mongo__oid(cm->author_id, &author))
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "bad comment id");
    struct store_mongo_scope sc;
    int rc = store_mongo__scope_open(s, "posts", &sc, err);
    if (!rc)
        rc = inc_post_counter(s, sc.coll, &pid, "commentCount", 1, NULL, "create_comment", err);
    if (!rc) {
        bson_t doc = BSON_INITIALIZER;
        BSON_APPEND_OID(&doc, "_id", &id);
        BSON_APPEND_OID(&doc, "postId", &pid);
        BSON_APPEND_OID(&doc, "authorId", &author);
        BSON_APPEND_UTF8(&doc, "text", cm->text ? cm->text : "");
        BSON_APPEND_DATE_TIME(&doc, "createdAt", cm->created_at);
        mongoc_collection_t *col = store_mongo__coll(s, &sc, "comments");
        bson_error_t e;
        if (!mongoc_collection_insert_one(col, &doc, NULL, NULL, &e)) {
            rc = store_mongo__fail(err, "create_comment", &e);
            inc_post_counter(s, sc.coll, &pid, "commentCount", -1, NULL, "create_comment", NULL);
        }
        mongoc_collection_destroy(col);
        bson_destroy(&doc);
    }
    store_mongo__scope_close(s, &sc);
    return rc;
}

int store_mongo__list_comments(struct store *st, const char *post_id,
                               const struct page_key *before, int limit, struct comment_list *out,
                               struct chat_err *err)
{
    memset(out, 0, sizeof *out);
    bson_oid_t pid;
    if (limit <= 0 || !store_mongo__oid(post_id, &pid))
        return 0;
    bson_t q = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    BSON_APPEND_OID(&q, "postId", &pid);
    int64_t max = store_mongo__limit(limit);
    void *items = NULL;
    int rc = store_mongo__page(&q, &opts, "createdAt", before, max, err);
    if (!rc)
        rc = store_mongo__find_list((struct store_mongo *)st, "comments", &q, &opts, (size_t)max,
                                    sizeof(struct comment), parse_comment, &items, &out->n,
                                    "list_comments", err);
    out->items = items;
    if (rc)
        store_comment_list_cleanup(out);
    bson_destroy(&q);
    bson_destroy(&opts);
    return rc;
}
