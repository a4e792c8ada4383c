/* store_mongo_chats.c - chats, members, contacts, read marks and message
 * reads in the MongoDB adapter.
 *
 * A chat document carries its members (ids in join order, under the
 * multikey index {members, updatedAt, _id} that lists a user's chats), its
 * seq allocator and a copy of its newest message (lastSeq, lastMessage,
 * updatedAt, kept by the writer in store_mongo_append.c), so a page of chats
 * needs no per-chat message query.  Direct chats carry `pairKey`
 * "d:<low id>:<high id>" under a unique index, groups "g:<own id>", so the
 * key is always present (FerretDB ignores `sparse` and refuses partial
 * indexes).
 *
 * Read marks live in the chat as `reads.<userId>` = seq and only move
 * forwards (the update matches only a lower or absent mark).  Unread counts
 * are counted from messages {chatId, seq > mark, senderId != viewer}: one
 * count for a single chat, one aggregate for a page of chats (no $lookup).
 *
 * Lookups by chat or message id filter on _id alone and check the rest
 * here: the same index lookup on MongoDB, and the only filter FerretDB
 * answers without scanning the collection.  Updates of a chat go through
 * store_mongo__update_doc, which holds the chat's document lock on
 * FerretDB. */
#include "store_mongo_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int no_chat(struct chat_err *err)
{
    return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such chat");
}

/* The viewer's read mark (0 when none). */
static int64_t read_mark(const bson_t *chat, const char *viewer_hex)
{
    bson_t reads;
    if (!viewer_hex || !store_mongo__get_doc(chat, "reads", &reads))
        return 0;
    return store_mongo__get_i64(&reads, viewer_hex);
}

/* Fills c->member_ids from the chat's members array.  -1 on OOM. */
static int parse_members(const bson_t *d, struct chat *c)
{
    bson_iter_t it, arr;
    if (!bson_iter_init_find(&it, d, "members") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &arr))
        return 0;
    size_t n = 0;
    bson_iter_t cnt = arr;
    while (bson_iter_next(&cnt))
        n += BSON_ITER_HOLDS_OID(&cnt);
    if (!n)
        return 0;
    c->member_ids = calloc(n, sizeof *c->member_ids);
    if (!c->member_ids)
        return -1;
    while (bson_iter_next(&arr))
        if (BSON_ITER_HOLDS_OID(&arr))
            bson_oid_to_string(bson_iter_oid(&arr), c->member_ids[c->n_members++]);
    return 0;
}

/* Fills c->read_seqs from the chat's `reads` (0 for a member without a
 * mark): every member's mark comes with the chat document, so a page of
 * chats needs no query for them.  -1 on OOM. */
static int parse_read_marks(const bson_t *d, struct chat *c)
{
    if (!c->n_members)
        return 0;
    c->read_seqs = calloc(c->n_members, sizeof *c->read_seqs);
    if (!c->read_seqs)
        return -1;
    bson_t reads;
    if (!store_mongo__get_doc(d, "reads", &reads))
        return 0;
    for (size_t i = 0; i < c->n_members; i++)
        c->read_seqs[i] = store_mongo__get_i64(&reads, c->member_ids[i]);
    return 0;
}

/* Fills everything but unread_count.  -1 on OOM. */
static int parse_chat(const bson_t *d, struct chat *c)
{
    memset(c, 0, sizeof *c);
    store_mongo__get_oid_hex(d, "_id", c->id);
    bson_iter_t it;
    c->type = CHAT_GROUP;
    if (bson_iter_init_find(&it, d, "type") && BSON_ITER_HOLDS_UTF8(&it) &&
        strcmp(bson_iter_utf8(&it, NULL), "direct") == 0)
        c->type = CHAT_DIRECT;
    c->last_seq = store_mongo__get_i64(d, "lastSeq");
    c->created_at = store_mongo__get_i64(d, "createdAt");
    c->updated_at = store_mongo__get_i64(d, "updatedAt");
    if (store_mongo__get_str(d, "name", &c->name) || parse_members(d, c) ||
        parse_read_marks(d, c))
        goto fail;
    bson_t last;
    if (store_mongo__get_doc(d, "lastMessage", &last)) {
        c->last_message = malloc(sizeof *c->last_message);
        if (!c->last_message || store_mongo__parse_message(&last, c->id, c->last_message)) {
            free(c->last_message);
            c->last_message = NULL;
            goto fail;
        }
    }
    return 0;
fail:
    store_chat_cleanup(c);
    return -1;
}

/* Messages from others after `mark` in chat `chat`, tombstones not counted. */
static int count_unread(struct store_mongo *s, const struct store_mongo_scope *sc,
                        const bson_oid_t *chat, const bson_oid_t *viewer, int64_t mark,
                        int64_t *n, const char *op, struct chat_err *err)
{
    bson_t q = BSON_INITIALIZER;
    BCON_APPEND(&q, "chatId", BCON_OID(chat), "seq", "{", "$gt", BCON_INT64(mark), "}",
                "senderId", "{", "$ne", BCON_OID(viewer), "}", "deleted", "{", "$ne",
                BCON_BOOL(true), "}");
    mongoc_collection_t *col = store_mongo__coll(s, sc, "messages");
    bson_error_t e;
    int64_t r = mongoc_collection_count_documents(col, &q, NULL, NULL, NULL, &e);
    mongoc_collection_destroy(col);
    bson_destroy(&q);
    if (r < 0)
        return store_mongo__fail(err, op, &e);
    *n = r;
    return 0;
}

/* get_chat in an open scope on "chats". */
static int get_chat_in(struct store_mongo *s, const struct store_mongo_scope *sc,
                       const bson_oid_t *id, const char *viewer, struct chat *out,
                       const char *op, struct chat_err *err)
{
    memset(out, 0, sizeof *out);
    bson_oid_t vid;
    if (viewer && !store_mongo__oid(viewer, &vid))
        return no_chat(err);
    bson_t doc;
    int rc = store_mongo__find_id(sc->coll, id, NULL, &doc, op, err);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return no_chat(err);
    rc = 0;
    if (viewer && !store_mongo__members_contain(&doc, &vid)) {
        rc = no_chat(err);
    } else if (parse_chat(&doc, out)) {
        rc = store_mongo__oom(err);
    } else if (viewer) {
        int64_t mark = read_mark(&doc, viewer);
        if (out->last_seq > mark)
            rc = count_unread(s, sc, id, &vid, mark, &out->unread_count, op, err);
        if (rc)
            store_chat_cleanup(out);
    }
    bson_destroy(&doc);
    return rc;
}

int store_mongo__get_chat(struct store *st, const char *id, const char *viewer_id,
                          struct chat *out, struct chat_err *err)
{
    struct store_mongo *s = (struct store_mongo *)st;
    memset(out, 0, sizeof *out);
    bson_oid_t cid;
    if (!store_mongo__oid(id, &cid))
        return no_chat(err);
    struct store_mongo_scope sc;
    int rc = store_mongo__scope_open(s, "chats", &sc, err);
    if (!rc)
        rc = get_chat_in(s, &sc, &cid, viewer_id, out, "get_chat", err);
    store_mongo__scope_close(s, &sc);
    return rc;
}

static int cmp_hex(const void *a, const void *b) { return strcmp(a, b); }

/* The new chat's document (`key` is its pairKey) and its id.  0, or an
 * error for an id that does not parse. */
static int chat_doc(const struct chat *in, const char *key, bson_oid_t *id, bson_t *doc,
                    struct chat_err *err)
{
    if (!store_mongo__oid(in->id, id))
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "bad chat id");
    bson_oid_t *members = calloc(in->n_members ? in->n_members : 1, sizeof *members);
    if (!members)
        return store_mongo__oom(err);
    for (size_t i = 0; i < in->n_members; i++) {
        if (!store_mongo__oid(in->member_ids[i], &members[i])) {
            free(members);
            return chat_err_set(err, CHAT_E_INTERNAL, NULL, "bad member id");
        }
    }
    bson_t reads;
    BSON_APPEND_OID(doc, "_id", id);
    BSON_APPEND_UTF8(doc, "type", in->type == CHAT_DIRECT ? "direct" : "group");
    store_mongo__append_str_or_null(doc, "name", in->name);
    store_mongo__append_oid_array(doc, "members", members, in->n_members);
    BSON_APPEND_UTF8(doc, "pairKey", key);
    BSON_APPEND_INT64(doc, "seqNext", 0);
    BSON_APPEND_INT64(doc, "lastSeq", 0);
    BSON_APPEND_NULL(doc, "lastMessage");
    BSON_APPEND_DOCUMENT_BEGIN(doc, "reads", &reads);
    bson_append_document_end(doc, &reads);
    BSON_APPEND_DATE_TIME(doc, "createdAt", in->created_at);
    BSON_APPEND_DATE_TIME(doc, "updatedAt", in->updated_at ? in->updated_at : in->created_at);
    free(members);
    return 0;
}

/* After a duplicate key on inserting a direct chat: the pair has its chat
 * already; answer with it, as seen by `first` (the first member). */
static int existing_pair(struct store_mongo *s, const struct store_mongo_scope *sc,
                         const char *key, const char *first, struct chat *out, bool *existed,
                         struct chat_err *err)
{
    bson_t q = BSON_INITIALIZER, proj = BSON_INITIALIZER, found;
    BSON_APPEND_UTF8(&q, "pairKey", key);
    BSON_APPEND_INT32(&proj, "_id", 1);
    int rc = store_mongo__find_one(sc->coll, &q, &proj, &found, "create_chat", err);
    bson_destroy(&q);
    bson_destroy(&proj);
    if (rc == 0) {
        /* The duplicate was on _id, not on the pair: core reused an id. */
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "database error");
    }
    if (rc < 0)
        return rc;
    const bson_oid_t *other = store_mongo__get_oid(&found, "_id");
    if (other) {
        rc = get_chat_in(s, sc, other, first, out, "create_chat", err);
        *existed = rc == 0;
    } else {
        rc = chat_err_set(err, CHAT_E_INTERNAL, NULL, "database error");
    }
    bson_destroy(&found);
    return rc;
}

int store_mongo__create_chat(struct store *st, const struct chat *in, struct chat *out,
                             bool *existed, struct chat_err *err)
{
    struct store_mongo *s = (struct store_mongo *)st;
    memset(out, 0, sizeof *out);
    *existed = false;
    bool direct = in->type == CHAT_DIRECT;
    if (direct && in->n_members != 2)
        return chat_err_set(err, CHAT_E_BAD_REQUEST, NULL, "a direct chat has two members");
    char key[2 + 2 * OID_SIZE + 1];
    if (direct) {
        char pair[2][OID_SIZE];
        memcpy(pair[0], in->member_ids[0], OID_SIZE);
        memcpy(pair[1], in->member_ids[1], OID_SIZE);
        qsort(pair, 2, OID_SIZE, cmp_hex);
        snprintf(key, sizeof key, "d:%s:%s", pair[0], pair[1]);
    } else {
        snprintf(key, sizeof key, "g:%s", in->id);
    }
    bson_t doc = BSON_INITIALIZER;
    bson_oid_t id;
    int rc = chat_doc(in, key, &id, &doc, err);
    if (rc) {
        bson_destroy(&doc);
        return rc;
    }
    struct store_mongo_scope sc;
    rc = store_mongo__scope_open(s, "chats", &sc, err);
    bson_error_t e;
    if (!rc) {
        if (mongoc_collection_insert_one(sc.coll, &doc, NULL, NULL, &e))
            rc = get_chat_in(s, &sc, &id, NULL, out, "create_chat", err);
        else if (direct && store_mongo__is_dup(&e))
            rc = existing_pair(s, &sc, key, in->member_ids[0], out, existed, err);
        else
            rc = store_mongo__fail(err, "create_chat", &e);
    }
    store_mongo__scope_close(s, &sc);
    bson_destroy(&doc);
    return rc;
}

/* Unread counts of a page of chats in one aggregate:
 * $match {$or: [{chatId, seq > mark}...], senderId != viewer, deleted != true},
 * $group by chatId with a count.  Chats with nothing after the viewer's
 * mark get no arm (and 0). */
static int fill_unread(struct store_mongo *s, const struct store_mongo_scope *sc,
                       struct chat *chats, const int64_t *marks, size_t n,
                       const bson_oid_t *viewer, struct chat_err *err)
{
    bson_t pipeline = BSON_INITIALIZER, stages, match, m, or;
    char kb[16];
    const char *k;
    uint32_t arms = 0;
    BSON_APPEND_ARRAY_BEGIN(&pipeline, "pipeline", &stages);
    BSON_APPEND_DOCUMENT_BEGIN(&stages, "0", &match);
    BSON_APPEND_DOCUMENT_BEGIN(&match, "$match", &m);
    BSON_APPEND_ARRAY_BEGIN(&m, "$or", &or);
    for (size_t i = 0; i < n; i++) {
        if (chats[i].last_seq <= marks[i])
            continue;
        bson_oid_t cid;
        bson_oid_init_from_string(&cid, chats[i].id);
        bson_uint32_to_string(arms++, &k, kb, sizeof kb);
        BCON_APPEND(&or, k, "{", "chatId", BCON_OID(&cid), "seq", "{", "$gt",
                    BCON_INT64(marks[i]), "}", "}");
    }
    bson_append_array_end(&m, &or);
    BCON_APPEND(&m, "senderId", "{", "$ne", BCON_OID(viewer), "}", "deleted", "{", "$ne",
                BCON_BOOL(true), "}");
    bson_append_document_end(&match, &m);
    bson_append_document_end(&stages, &match);
    BCON_APPEND(&stages, "1", "{", "$group", "{", "_id", BCON_UTF8("$chatId"), "n", "{", "$sum",
                BCON_INT32(1), "}", "}", "}");
    bson_append_array_end(&pipeline, &stages);
    int rc = 0;
    if (arms) {
        mongoc_collection_t *col = store_mongo__coll(s, sc, "messages");
        mongoc_cursor_t *cur =
            mongoc_collection_aggregate(col, MONGOC_QUERY_NONE, &pipeline, NULL, NULL);
        const bson_t *doc;
        while (mongoc_cursor_next(cur, &doc)) {
            char cid[OID_SIZE];
            store_mongo__get_oid_hex(doc, "_id", cid);
            for (size_t i = 0; i < n; i++)
                if (strcmp(chats[i].id, cid) == 0)
                    chats[i].unread_count = store_mongo__get_i64(doc, "n");
        }
        bson_error_t e;
        if (mongoc_cursor_error(cur, &e))
            rc = store_mongo__fail(err, "list_chats", &e);
        mongoc_cursor_destroy(cur);
        mongoc_collection_destroy(col);
    }
    bson_destroy(&pipeline);
    return rc;
}

/* Reads a page of chats (newest activity first) into out->items and each
 * one's read mark for `user_id` into marks[]. */
static int read_chat_page(mongoc_collection_t *chats, const bson_t *q, const bson_t *opts,
                          size_t max, const char *user_id, struct chat_list *out, int64_t *marks,
                          struct chat_err *err)
{
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(chats, q, opts, NULL);
    const bson_t *doc;
    int rc = 0;
    while (out->n < max && mongoc_cursor_next(cur, &doc)) {
        if (parse_chat(doc, &out->items[out->n])) {
            rc = store_mongo__oom(err);
            break;
        }
        marks[out->n] = read_mark(doc, user_id);
        out->n++;
    }
    bson_error_t e;
    if (!rc && mongoc_cursor_error(cur, &e))
        rc = store_mongo__fail(err, "list_chats", &e);
    mongoc_cursor_destroy(cur);
    return rc;
}

int store_mongo__list_chats(struct store *st, const char *user_id, const struct page_key *before,
                            int limit, struct chat_list *out, struct chat_err *err)
{
    struct store_mongo *s = (struct store_mongo *)st;
    memset(out, 0, sizeof *out);
    bson_oid_t uid;
    if (limit <= 0 || !store_mongo__oid(user_id, &uid))
        return 0;
    size_t max = (size_t)store_mongo__limit(limit);
    bson_t q = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    int rc = 0;
    int64_t *marks = NULL;
    BSON_APPEND_OID(&q, "members", &uid);
    rc = store_mongo__page(&q, &opts, "updatedAt", before, (int64_t)max, err);
    if (rc)
        goto out;
    out->items = calloc(max, sizeof *out->items);
    marks = calloc(max, sizeof *marks);
    if (!out->items || !marks) {
        rc = store_mongo__oom(err);
        goto out;
    }
    struct store_mongo_scope sc;
    rc = store_mongo__scope_open(s, "chats", &sc, err);
    if (!rc)
        rc = read_chat_page(sc.coll, &q, &opts, max, user_id, out, marks, err);
    if (!rc)
        rc = fill_unread(s, &sc, out->items, marks, out->n, &uid, err);
    store_mongo__scope_close(s, &sc);
out:
    if (rc)
        store_chat_list_cleanup(out);
    else if (out->n == 0) {
        free(out->items);
        out->items = NULL;
    }
    free(marks);
    bson_destroy(&q);
    bson_destroy(&opts);
    return rc;
}

int store_mongo__is_member(struct store *st, const char *chat_id, const char *user_id,
                           struct chat_err *err)
{
    struct store_mongo *s = (struct store_mongo *)st;
    bson_oid_t cid, uid;
    if (!store_mongo__oid(chat_id, &cid) || !store_mongo__oid(user_id, &uid))
        return no_chat(err);
    struct store_mongo_scope sc;
    bson_t doc;
    int rc = store_mongo__scope_open(s, "chats", &sc, err);
    if (!rc)
        rc = store_mongo__find_id(sc.coll, &cid, (const char *const[]){"members", NULL}, &doc,
                                  "is_member", err);
    store_mongo__scope_close(s, &sc);
    if (rc == 1) {
        bool member = store_mongo__members_contain(&doc, &uid);
        bson_destroy(&doc);
        if (member)
            return 0;
    }
    return rc < 0 ? rc : no_chat(err);
}

/* Candidate contact ids: `cap` slots, sorted and made unique whenever they
 * fill up, so memory stays bounded by `max` however many chats (and members
 * in common) the user has. */
struct contacts {
    bson_oid_t *ids;
    size_t n, cap, max;
    bool truncated;
};

static int cmp_oid(const void *a, const void *b) { return bson_oid_compare(a, b); }

static void contacts_compact(struct contacts *c)
{
    qsort(c->ids, c->n, sizeof *c->ids, cmp_oid);
    size_t u = 0;
    for (size_t i = 0; i < c->n; i++)
        if (u == 0 || !bson_oid_equal(&c->ids[u - 1], &c->ids[i]))
            bson_oid_copy(&c->ids[i], &c->ids[u++]);
    c->n = u;
    if (c->n > c->max) {
        c->n = c->max;
        c->truncated = true;
    }
}

/* Adds the members of chat `doc` other than `self`.  False once more than
 * `max` distinct contacts are known (the list is cut). */
static bool contacts_add(struct contacts *c, const bson_t *doc, const bson_oid_t *self)
{
    bson_iter_t it, arr;
    if (!bson_iter_init_find(&it, doc, "members") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &arr))
        return true;
    while (bson_iter_next(&arr)) {
        if (!BSON_ITER_HOLDS_OID(&arr) || bson_oid_equal(bson_iter_oid(&arr), self))
            continue;
        if (c->n == c->cap) {
            /* cap > max + 1: after compacting there is room again, or the
             * list is cut. */
            contacts_compact(c);
            if (c->truncated)
                return false;
        }
        bson_oid_copy(bson_iter_oid(&arr), &c->ids[c->n++]);
    }
    return true;
}

/* The user's chats by the members index, as list_chats reads them, and
 * only their members; the ids are joined and made distinct here. */
int store_mongo__list_contacts(struct store *st, const char *user_id, size_t max,
                               char (**out)[OID_SIZE], size_t *n_out, bool *truncated,
                               struct chat_err *err)
{
    struct store_mongo *s = (struct store_mongo *)st;
    *out = NULL;
    *n_out = 0;
    *truncated = false;
    bson_oid_t uid;
    if (max == 0 || !store_mongo__oid(user_id, &uid))
        return 0;
    /* An absurd `max` gets no buffer (out of memory), not a wrapped size. */
    struct contacts c = {.cap = max < SIZE_MAX / 4 ? 2 * (max + 1) : 0, .max = max};
    c.ids = c.cap ? calloc(c.cap, sizeof *c.ids) : NULL;
    if (!c.ids)
        return store_mongo__oom(err);
    bson_t q = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    BSON_APPEND_OID(&q, "members", &uid);
    BCON_APPEND(&opts, "projection", "{", "members", BCON_INT32(1), "}");
    struct store_mongo_scope sc;
    int rc = store_mongo__scope_open(s, "chats", &sc, err);
    if (!rc) {
        mongoc_cursor_t *cur = mongoc_collection_find_with_opts(sc.coll, &q, &opts, NULL);
        const bson_t *doc;
        while (mongoc_cursor_next(cur, &doc) && contacts_add(&c, doc, &uid))
            ;
        bson_error_t e;
        if (mongoc_cursor_error(cur, &e))
            rc = store_mongo__fail(err, "list_contacts", &e);
        mongoc_cursor_destroy(cur);
    }
    store_mongo__scope_close(s, &sc);
    bson_destroy(&q);
    bson_destroy(&opts);
    if (!rc)
        contacts_compact(&c);
    if (!rc && c.n && !(*out = malloc(c.n * sizeof **out)))
        rc = store_mongo__oom(err);
    if (!rc) {
        for (size_t i = 0; i < c.n; i++)
            bson_oid_to_string(&c.ids[i], (*out)[i]);
        *n_out = c.n;
        *truncated = c.truncated;
    }
    free(c.ids);
    return rc;
}

/* One update of chat `id` (the filter `q` names it) in its own scope;
 * *matched and *modified from the reply. */
static int update_chat(struct store_mongo *s, const bson_oid_t *id, const bson_t *q,
                       const bson_t *up, int64_t *matched, int64_t *modified, const char *op,
                       struct chat_err *err)
{
    struct store_mongo_scope sc;
    int rc = store_mongo__scope_open(s, "chats", &sc, err);
    if (!rc)
        rc = store_mongo__update_doc(s, sc.coll, id, q, up, matched, modified, op, err);
    store_mongo__scope_close(s, &sc);
    return rc;
}

int store_mongo__add_member(struct store *st, const char *chat_id, const char *user_id,
                            bool *added, struct chat_err *err)
{
    *added = false;
    bson_oid_t cid, uid;
    if (!store_mongo__oid(chat_id, &cid))
        return no_chat(err);
    if (!store_mongo__oid(user_id, &uid))
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "bad user id");
    /* $addToSet appends, so members stay in join order. */
    bson_t q = BSON_INITIALIZER, up = BSON_INITIALIZER;
    BSON_APPEND_OID(&q, "_id", &cid);
    BCON_APPEND(&up, "$addToSet", "{", "members", BCON_OID(&uid), "}");
    int64_t matched = 0, modified = 0;
    int rc = update_chat((struct store_mongo *)st, &cid, &q, &up, &matched, &modified,
                         "add_member", err);
    bson_destroy(&q);
    bson_destroy(&up);
    if (rc)
        return rc;
    if (matched == 0)
        return no_chat(err);
    *added = modified > 0;
    return 0;
}

/* 0 when chat `cid` exists, CHAT_E_NOT_FOUND when not, or an error. */
static int chat_exists(struct store_mongo *s, const bson_oid_t *cid, const char *op,
                       struct chat_err *err)
{
    struct store_mongo_scope sc;
    bson_t doc;
    int r = store_mongo__scope_open(s, "chats", &sc, err);
    if (!r)
        r = store_mongo__find_id(sc.coll, cid, (const char *const[]){"_id", NULL}, &doc, op, err);
    store_mongo__scope_close(s, &sc);
    if (r == 1) {
        bson_destroy(&doc);
        return 0;
    }
    return r < 0 ? r : no_chat(err);
}

int store_mongo__rename_chat(struct store *st, const char *chat_id, const char *name,
                             struct chat_err *err)
{
    bson_oid_t cid;
    if (!store_mongo__oid(chat_id, &cid))
        return no_chat(err);
    bson_t q = BSON_INITIALIZER, up = BSON_INITIALIZER;
    BCON_APPEND(&q, "_id", BCON_OID(&cid), "type", BCON_UTF8("group"));
    BCON_APPEND(&up, "$set", "{", "name", BCON_UTF8(name ? name : ""), "}");
    int64_t matched = 0;
    int rc = update_chat((struct store_mongo *)st, &cid, &q, &up, &matched, NULL, "rename_chat",
                         err);
    bson_destroy(&q);
    bson_destroy(&up);
    return rc || matched > 0 ? rc : no_chat(err);
}

int store_mongo__remove_member(struct store *st, const char *chat_id, const char *user_id,
                               bool *removed, struct chat_err *err)
{
    struct store_mongo *s = (struct store_mongo *)st;
    *removed = false;
    bson_oid_t cid, uid;
    if (!store_mongo__oid(chat_id, &cid))
        return no_chat(err);
    if (!store_mongo__oid(user_id, &uid))
        return 0;
    char mark[6 + OID_SIZE];
    snprintf(mark, sizeof mark, "reads.%s", user_id);
    bson_t q = BSON_INITIALIZER, up = BSON_INITIALIZER;
    BCON_APPEND(&q, "_id", BCON_OID(&cid), "members", BCON_OID(&uid));
    BCON_APPEND(&up, "$pull", "{", "members", BCON_OID(&uid), "}", "$unset", "{", mark,
                BCON_UTF8(""), "}");
    int64_t matched = 0, modified = 0;
    int rc = update_chat(s, &cid, &q, &up, &matched, &modified, "remove_member", err);
    bson_destroy(&q);
    bson_destroy(&up);
    if (rc)
        return rc;
    *removed = matched > 0;
    /* Not a member, or no such chat: only the latter is an error. */
    return *removed ? 0 : chat_exists(s, &cid, "remove_member", err);
}

/* A page of chat `chat_id`'s messages: seq < `seq` newest first (none
 * before the first page when seq is 0), or seq > `seq` oldest first
 * (`after`). */
static int list_messages_dir(struct store_mongo *s, const char *chat_id, int64_t seq, bool after,
                             int limit, struct message_list *out, const char *op,
                             struct chat_err *err)
{
    const char *cmp = after ? "$gt" : seq > 0 ? "$lt" : NULL;
    return store_mongo__list_message_docs(s, chat_id, "seq", cmp, seq, after ? 1 : -1, limit, out,
                                          op, err);
}

int store_mongo__list_messages(struct store *st, const char *chat_id, int64_t before_seq,
                               int limit, struct message_list *out, struct chat_err *err)
{
    return list_messages_dir((struct store_mongo *)st, chat_id, before_seq, false, limit, out,
                             "list_messages", err);
}

int store_mongo__list_messages_after(struct store *st, const char *chat_id, int64_t after_seq,
                                     int limit, struct message_list *out, struct chat_err *err)
{
    return list_messages_dir((struct store_mongo *)st, chat_id, after_seq, true, limit, out,
                             "list_messages_after", err);
}

/* *seq = the seq of message `mid` when it is in chat `cid`; CHAT_E_NOT_FOUND
 * otherwise.  By _id alone, the chat checked here. */
static int message_seq(struct store_mongo *s, const bson_oid_t *cid, const bson_oid_t *mid,
                       int64_t *seq, struct chat_err *err)
{
    struct store_mongo_scope sc;
    bson_t msg;
    int rc = store_mongo__scope_open(s, "messages", &sc, err);
    if (!rc)
        rc = store_mongo__find_id(sc.coll, mid, (const char *const[]){"seq", "chatId", NULL},
                                  &msg, "set_read", err);
    store_mongo__scope_close(s, &sc);
    if (rc < 0)
        return rc;
    bool in_chat = false;
    if (rc == 1) {
        const bson_oid_t *chat = store_mongo__get_oid(&msg, "chatId");
        in_chat = chat && bson_oid_equal(chat, cid);
        *seq = store_mongo__get_i64(&msg, "seq");
        bson_destroy(&msg);
    }
    return in_chat ? 0 : chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such message");
}

/* The mark only moves forwards: the update matches only while the stored
 * mark is absent or lower, so two racing marks settle on the higher one. */
int store_mongo__set_read(struct store *st, const char *chat_id, const char *user_id,
                          const char *message_id, bool *moved, struct chat_err *err)
{
    int64_t seq;
    return store_mongo__set_read_seq(st, chat_id, user_id, message_id, moved, &seq, err);
}

int store_mongo__set_read_seq(struct store *st, const char *chat_id, const char *user_id,
                              const char *message_id, bool *moved, int64_t *seq_out,
                              struct chat_err *err)
{
    struct store_mongo *s = (struct store_mongo *)st;
    *moved = false;
    *seq_out = 0;
    bson_oid_t cid, uid, mid;
    if (!store_mongo__oid(chat_id, &cid) || !store_mongo__oid(message_id, &mid))
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such message");
    if (!store_mongo__oid(user_id, &uid))
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "bad user id");
    int64_t seq = 0;
    int rc = message_seq(s, &cid, &mid, &seq, err);
    if (rc)
        return rc;
    char mark[6 + OID_SIZE];
    snprintf(mark, sizeof mark, "reads.%s", user_id);
    bson_t q = BSON_INITIALIZER, up = BSON_INITIALIZER;
    BCON_APPEND(&q, "_id", BCON_OID(&cid), "members", BCON_OID(&uid), "$or", "[", "{", mark, "{",
                "$exists", BCON_BOOL(false), "}", "}", "{", mark, "{", "$lt", BCON_INT64(seq), "}",
                "}", "]");
    BCON_APPEND(&up, "$set", "{", mark, BCON_INT64(seq), "}");
    int64_t matched = 0, modified = 0;
    rc = update_chat(s, &cid, &q, &up, &matched, &modified, "set_read", err);
    bson_destroy(&q);
    bson_destroy(&up);
    if (!rc) {
        *moved = modified > 0;
        *seq_out = seq;
    }
    return rc;
}
