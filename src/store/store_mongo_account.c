/* store_mongo_account.c - account lifecycle in the MongoDB adapter:
 * revoking every session of a user and deleting an account.
 *
 * There are no multi-document transactions (FerretDB), so the deletion is a
 * sequence of steps, each idempotent, ordered so that a crash part-way
 * leaves an account that can simply be deleted again: sessions first (the
 * account stops working), then the user's posts with their likes and
 * comments, then its likes and comments on other posts (each like or
 * comment document deleted before its post's count is lowered, so a crash
 * leaves at worst a count one too high, as set_like and create_comment
 * may), then its group memberships, and last the anonymized user row,
 * which frees the username and email.  Each step works through the
 * user's documents in batches of DEL_BATCH, so memory stays bounded. */
#include "store_mongo_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEL_BATCH 500

int store_mongo__delete_user_sessions(struct store *st, const char *user_id,
                                      const uint8_t keep[32], uint8_t (**hashes)[32], size_t *n,
                                      struct chat_err *err)
{
    struct store_mongo *s = (struct store_mongo *)st;
    *hashes = NULL;
    *n = 0;
    bson_oid_t uid;
    if (!store_mongo__oid(user_id, &uid))
        return 0; /* no such user, no sessions */
    struct store_mongo_scope sc;
    int rc = store_mongo__scope_open(s, "sessions", &sc, err);
    if (rc)
        return rc;
    /* Read the hashes, then delete exactly those: a session created in
     * between (a login right now) is neither deleted nor reported. */
    bson_t q = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    BSON_APPEND_OID(&q, "userId", &uid);
    BCON_APPEND(&opts, "projection", "{", "_id", BCON_INT32(1), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(sc.coll, &q, &opts, NULL);
    const bson_t *doc;
    size_t cap = 0;
    while (!rc && mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        bson_subtype_t sub;
        uint32_t len = 0;
        const uint8_t *bin = NULL;
        if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_BINARY(&it))
            continue;
        bson_iter_binary(&it, &sub, &len, &bin);
        if (len != 32 || (keep && memcmp(bin, keep, 32) == 0))
            continue;
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            uint8_t(*h)[32] = realloc(*hashes, ncap * sizeof *h);
            if (!h) {
                rc = store_mongo__oom(err);
                break;
            }
            *hashes = h;
            cap = ncap;
        }
        memcpy((*hashes)[(*n)++], bin, 32);
    }
    bson_error_t e;
    if (!rc && mongoc_cursor_error(cur, &e))
        rc = store_mongo__fail(err, "delete_user_sessions", &e);
    mongoc_cursor_destroy(cur);
    bson_destroy(&q);
    bson_destroy(&opts);
    /* Delete them in batches of $in. */
    for (size_t at = 0; !rc && at < *n; at += DEL_BATCH) {
        size_t m = *n - at < DEL_BATCH ? *n - at : DEL_BATCH;
        bson_t dq = BSON_INITIALIZER, in, arr;
        BSON_APPEND_DOCUMENT_BEGIN(&dq, "_id", &in);
        BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
        for (size_t i = 0; i < m; i++) {
            char key[16];
            const char *k;
            bson_uint32_to_string((uint32_t)i, &k, key, sizeof key);
            bson_append_binary(&arr, k, -1, BSON_SUBTYPE_BINARY, (*hashes)[at + i], 32);
        }
        bson_append_array_end(&in, &arr);
        bson_append_document_end(&dq, &in);
        if (!mongoc_collection_delete_many(sc.coll, &dq, NULL, NULL, &e))
            rc = store_mongo__fail(err, "delete_user_sessions", &e);
        bson_destroy(&dq);
    }
    store_mongo__scope_close(s, &sc);
    if (rc) {
        free(*hashes);
        *hashes = NULL;
        *n = 0;
    }
    return rc;
}

/* Up to DEL_BATCH `_id`s (and, with `also`, that ObjectId field) of the
 * documents of `col` matching `q`.  0 or a port code. */
static int ids_of(mongoc_collection_t *col, const bson_t *q, const char *also, bson_oid_t *ids,
                  bson_oid_t *others, size_t *n, struct chat_err *err)
{
    bson_t opts = BSON_INITIALIZER, proj;
    BSON_APPEND_INT64(&opts, "limit", DEL_BATCH);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
    BSON_APPEND_INT32(&proj, "_id", 1);
    if (also)
        BSON_APPEND_INT32(&proj, also, 1);
    bson_append_document_end(&opts, &proj);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(col, q, &opts, NULL);
    const bson_t *doc;
    *n = 0;
    while (*n < DEL_BATCH && mongoc_cursor_next(cur, &doc)) {
        const bson_oid_t *id = store_mongo__get_oid(doc, "_id");
        const bson_oid_t *other = also ? store_mongo__get_oid(doc, also) : NULL;
        if (!id || (also && !other))
            continue;
        bson_oid_copy(id, &ids[*n]);
        if (also)
            bson_oid_copy(other, &others[*n]);
        (*n)++;
    }
    bson_error_t e;
    int rc = mongoc_cursor_error(cur, &e) ? store_mongo__fail(err, "delete_user", &e) : 0;
    mongoc_cursor_destroy(cur);
    bson_destroy(&opts);
    return rc;
}

/* delete_many of `col` where `field` is one of ids[0..n). */
static int delete_in(mongoc_collection_t *col, const char *field, const bson_oid_t *ids, size_t n,
                     struct chat_err *err)
{
    bson_t q = BSON_INITIALIZER;
    store_mongo__append_oid_in(&q, field, ids, n);
    bson_error_t e;
    int rc = mongoc_collection_delete_many(col, &q, NULL, NULL, &e)
                 ? 0
                 : store_mongo__fail(err, "delete_user", &e);
    bson_destroy(&q);
    return rc;
}

/* The user's posts, with their likes and comments (the post first, as
 * delete_post does). */
static int delete_own_posts(struct store_mongo *s, const struct store_mongo_scope *sc,
                            const bson_oid_t *uid, bson_oid_t *ids, struct chat_err *err)
{
    mongoc_collection_t *posts = store_mongo__coll(s, sc, "posts");
    mongoc_collection_t *likes = store_mongo__coll(s, sc, "likes");
    mongoc_collection_t *comments = store_mongo__coll(s, sc, "comments");
    bson_t q = BSON_INITIALIZER;
    BSON_APPEND_OID(&q, "authorId", uid);
    int rc = 0;
    size_t n;
    do {
        rc = ids_of(posts, &q, NULL, ids, NULL, &n, err);
        if (!rc && n)
            rc = delete_in(posts, "_id", ids, n, err);
        if (!rc && n)
            rc = delete_in(likes, "postId", ids, n, err);
        if (!rc && n)
            rc = delete_in(comments, "postId", ids, n, err);
    } while (!rc && n == DEL_BATCH);
    bson_destroy(&q);
    mongoc_collection_destroy(posts);
    mongoc_collection_destroy(likes);
    mongoc_collection_destroy(comments);
    return rc;
}

/* The user's likes (cname "likes", field "userId") or comments
 * ("comments", "authorId") on other posts: each document goes, then its
 * post's `counter` drops by one (a post deleted meanwhile is skipped). */
static int delete_own_children(struct store_mongo *s, const struct store_mongo_scope *sc,
                               const bson_oid_t *uid, const char *cname, const char *field,
                               const char *counter, bson_oid_t *ids, bson_oid_t *post_ids,
                               struct chat_err *err)
{
    mongoc_collection_t *col = store_mongo__coll(s, sc, cname);
    mongoc_collection_t *posts = store_mongo__coll(s, sc, "posts");
    bson_t q = BSON_INITIALIZER;
    BSON_APPEND_OID(&q, field, uid);
    int rc = 0;
    size_t n;
    do {
        rc = ids_of(col, &q, "postId", ids, post_ids, &n, err);
        for (size_t i = 0; !rc && i < n; i++) {
            bson_t dq = BSON_INITIALIZER, reply;
            BSON_APPEND_OID(&dq, "_id", &ids[i]);
            bson_error_t e;
            if (!mongoc_collection_delete_one(col, &dq, NULL, &reply, &e)) {
                rc = store_mongo__fail(err, "delete_user", &e);
            } else if (store_mongo__get_i64(&reply, "deletedCount") > 0) {
                bson_t pq = BSON_INITIALIZER, up = BSON_INITIALIZER;
                BSON_APPEND_OID(&pq, "_id", &post_ids[i]);
                BCON_APPEND(&up, "$inc", "{", counter, BCON_INT64(-1), "}");
                rc = store_mongo__update_doc(s, posts, &post_ids[i], &pq, &up, NULL, NULL,
                                             "delete_user", err);
                bson_destroy(&pq);
                bson_destroy(&up);
            }
            bson_destroy(&reply);
            bson_destroy(&dq);
        }
    } while (!rc && n == DEL_BATCH);
    bson_destroy(&q);
    mongoc_collection_destroy(col);
    mongoc_collection_destroy(posts);
    return rc;
}

/* Removes the user from every group (members and read mark, as
 * remove_member does) and reports those groups' ids. */
static int leave_groups(struct store_mongo *s, const struct store_mongo_scope *sc,
                        const bson_oid_t *uid, const char *user_hex, char (**groups)[OID_SIZE],
                        size_t *n_groups, bson_oid_t *ids, struct chat_err *err)
{
    mongoc_collection_t *chats = store_mongo__coll(s, sc, "chats");
    bson_t q = BSON_INITIALIZER;
    BCON_APPEND(&q, "members", BCON_OID(uid), "type", BCON_UTF8("group"));
    char mark[6 + OID_SIZE];
    snprintf(mark, sizeof mark, "reads.%s", user_hex);
    int rc = 0;
    size_t n, cap = 0;
    do {
        rc = ids_of(chats, &q, NULL, ids, NULL, &n, err);
        for (size_t i = 0; !rc && i < n; i++) {
            bson_t cq = BSON_INITIALIZER, up = BSON_INITIALIZER;
            BCON_APPEND(&cq, "_id", BCON_OID(&ids[i]), "members", BCON_OID(uid));
            BCON_APPEND(&up, "$pull", "{", "members", BCON_OID(uid), "}", "$unset", "{", mark,
                        BCON_UTF8(""), "}");
            int64_t matched = 0;
            rc = store_mongo__update_doc(s, chats, &ids[i], &cq, &up, &matched, NULL,
                                         "delete_user", err);
            bson_destroy(&cq);
            bson_destroy(&up);
            if (rc || !matched)
                continue;
            if (*n_groups == cap) {
                size_t ncap = cap ? cap * 2 : 8;
                char(*g)[OID_SIZE] = realloc(*groups, ncap * sizeof *g);
                if (!g) {
                    rc = store_mongo__oom(err);
                    break;
                }
                *groups = g;
                cap = ncap;
            }
            bson_oid_to_string(&ids[i], (*groups)[(*n_groups)++]);
        }
    } while (!rc && n == DEL_BATCH);
    bson_destroy(&q);
    mongoc_collection_destroy(chats);
    return rc;
}

/* The last step: the row keeps its id and createdAt, the rest is
 * replaced, which frees the old username and email. */
static int anonymize(struct store_mongo *s, const struct store_mongo_scope *sc,
                     const bson_oid_t *uid, const struct user *anon, struct chat_err *err)
{
    char *lower = strdup(anon->username ? anon->username : "");
    if (!lower)
        return store_mongo__oom(err);
    for (char *p = lower; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    mongoc_collection_t *users = store_mongo__coll(s, sc, "users");
    bson_t q = BSON_INITIALIZER, up = BSON_INITIALIZER, set, reply;
    BSON_APPEND_OID(&q, "_id", uid);
    BSON_APPEND_DOCUMENT_BEGIN(&up, "$set", &set);
    BSON_APPEND_UTF8(&set, "username", anon->username ? anon->username : "");
    BSON_APPEND_UTF8(&set, "usernameLower", lower);
    BSON_APPEND_UTF8(&set, "email", anon->email ? anon->email : "");
    BSON_APPEND_UTF8(&set, "displayName", anon->display_name ? anon->display_name : "");
    BSON_APPEND_UTF8(&set, "bio", "");
    BSON_APPEND_NULL(&set, "avatarUrl");
    BSON_APPEND_UTF8(&set, "pwhash", anon->pwhash ? anon->pwhash : "");
    bson_append_document_end(&up, &set);
    bson_error_t e;
    int rc = 0;
    if (!mongoc_collection_update_one(users, &q, &up, NULL, &reply, &e))
        rc = store_mongo__fail(err, "delete_user", &e);
    else if (store_mongo__get_i64(&reply, "matchedCount") == 0)
        rc = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such user");
    bson_destroy(&reply);
    bson_destroy(&q);
    bson_destroy(&up);
    mongoc_collection_destroy(users);
    free(lower);
    return rc;
}

int store_mongo__delete_user(struct store *st, const struct user *anon,
                             char (**groups)[OID_SIZE], size_t *n_groups, struct chat_err *err)
{
    struct store_mongo *s = (struct store_mongo *)st;
    *groups = NULL;
    *n_groups = 0;
    bson_oid_t uid;
    if (!store_mongo__oid(anon->id, &uid))
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such user");
    bson_oid_t *ids = malloc(2 * DEL_BATCH * sizeof *ids);
    if (!ids)
        return store_mongo__oom(err);
    struct store_mongo_scope sc;
    int rc = store_mongo__scope_open(s, "users", &sc, err);
    if (!rc) {
        bson_t doc;
        int f = store_mongo__find_id(sc.coll, &uid, (const char *const[]){"_id", NULL}, &doc,
                                     "delete_user", err);
        if (f == 1)
            bson_destroy(&doc);
        rc = f < 0 ? f : f == 0 ? chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such user") : 0;
    }
    if (!rc) {
        mongoc_collection_t *sessions = store_mongo__coll(s, &sc, "sessions");
        rc = delete_in(sessions, "userId", &uid, 1, err);
        mongoc_collection_destroy(sessions);
    }
    if (!rc)
        rc = delete_own_posts(s, &sc, &uid, ids, err);
    if (!rc)
        rc = delete_own_children(s, &sc, &uid, "likes", "userId", "likeCount", ids,
                                 ids + DEL_BATCH, err);
    if (!rc)
        rc = delete_own_children(s, &sc, &uid, "comments", "authorId", "commentCount", ids,
                                 ids + DEL_BATCH, err);
    if (!rc)
        rc = leave_groups(s, &sc, &uid, anon->id, groups, n_groups, ids, err);
    if (!rc)
        rc = anonymize(s, &sc, &uid, anon, err);
    store_mongo__scope_close(s, &sc);
    free(ids);
    if (rc) {
        free(*groups);
        *groups = NULL;
        *n_groups = 0;
    }
    return rc;
}
