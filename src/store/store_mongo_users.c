/* store_mongo_users.c - users and sessions in the MongoDB adapter.
 *
 * Usernames are unique ignoring ASCII case through a `usernameLower` copy
 * under a unique index, which also serves login by username and the prefix
 * search (an anchored regex on it is an index range scan on MongoDB).
 * Emails arrive lower-cased from core and are unique as they are.  When an
 * insert hits a unique index, the adapter asks which one fired (email
 * first, as the port says) instead of parsing the server's message, whose
 * wording differs between MongoDB and FerretDB.
 *
 * A session's _id is the token's 32-byte hash itself: lookups by hash are
 * primary-key lookups and need no other index; a TTL index on expiresAt
 * lets MongoDB drop expired sessions (see store_mongo.c). */
#include "store_mongo_internal.h"

#include <stdlib.h>
#include <string.h>

#include "chatli/log.h"

static int parse_user(const bson_t *d, void *item)
{
    struct user *u = item;
    memset(u, 0, sizeof *u);
    store_mongo__get_oid_hex(d, "_id", u->id);
    u->created_at = store_mongo__get_i64(d, "createdAt");
    if (store_mongo__get_str_nn(d, "username", &u->username) ||
        store_mongo__get_str_nn(d, "email", &u->email) ||
        store_mongo__get_str_nn(d, "displayName", &u->display_name) ||
        store_mongo__get_str_nn(d, "bio", &u->bio) ||
        store_mongo__get_str(d, "avatarUrl", &u->avatar_url) ||
        store_mongo__get_str_nn(d, "pwhash", &u->pwhash)) {
        store_user_cleanup(u);
        return -1;
    }
    return 0;
}

/* ASCII lower-casing, as core and the SQLite adapter do for usernames. */
static char *ascii_lower(const char *s)
{
    char *r = strdup(s ? s : "");
    if (r)
        for (char *p = r; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    return r;
}

/* After a duplicate key on insert: which unique index fired?  1 when a user
 * with `value` in `field` exists, 0 when none, <0 on error. */
static int taken(mongoc_collection_t *col, const char *field, const char *value,
                 struct chat_err *err)
{
    bson_t q = BSON_INITIALIZER, found;
    BSON_APPEND_UTF8(&q, field, value);
    int r = store_mongo__find_one(col, &q, NULL, &found, "create_user", err);
    bson_destroy(&q);
    if (r == 1)
        bson_destroy(&found);
    return r;
}

/* The error for a duplicate key on inserting `u`: email first, as the port
 * says, then the username; neither means the _id, i.e. core reused an id. */
static int duplicate_user(mongoc_collection_t *col, const struct user *u, const char *lower,
                          struct chat_err *err)
{
    int r = taken(col, "email", u->email ? u->email : "", err);
    if (r == 1)
        return chat_err_set(err, CHAT_E_EMAIL_TAKEN, "email", "email already registered");
    if (r == 0)
        r = taken(col, "usernameLower", lower, err);
    if (r == 1)
        return chat_err_set(err, CHAT_E_USERNAME_TAKEN, "username", "username already taken");
    if (r < 0)
        return r;
    log_error("store mongodb create_user: user id %s is taken", u->id);
    return chat_err_set(err, CHAT_E_INTERNAL, NULL, "database error");
}

int store_mongo__create_user(struct store *st, const struct user *u, struct chat_err *err)
{
    struct store_mongo *s = (struct store_mongo *)st;
    bson_oid_t id;
    if (!store_mongo__oid(u->id, &id))
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "bad user id");
    char *lower = ascii_lower(u->username);
    if (!lower)
        return store_mongo__oom(err);
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_OID(&doc, "_id", &id);
    BSON_APPEND_UTF8(&doc, "username", u->username ? u->username : "");
    BSON_APPEND_UTF8(&doc, "usernameLower", lower);
    BSON_APPEND_UTF8(&doc, "email", u->email ? u->email : "");
    BSON_APPEND_UTF8(&doc, "displayName", u->display_name ? u->display_name : "");
    BSON_APPEND_UTF8(&doc, "bio", u->bio ? u->bio : "");
    store_mongo__append_str_or_null(&doc, "avatarUrl", u->avatar_url);
    BSON_APPEND_UTF8(&doc, "pwhash", u->pwhash ? u->pwhash : "");
    BSON_APPEND_DATE_TIME(&doc, "createdAt", u->created_at);

    struct store_mongo_scope sc;
    int rc = store_mongo__scope_open(s, "users", &sc, err);
    bson_error_t e;
    if (!rc && !mongoc_collection_insert_one(sc.coll, &doc, NULL, NULL, &e))
        rc = store_mongo__is_dup(&e) ? duplicate_user(sc.coll, u, lower, err)
                                     : store_mongo__fail(err, "create_user", &e);
    store_mongo__scope_close(s, &sc);
    bson_destroy(&doc);
    free(lower);
    return rc;
}

static int get_user_by(struct store_mongo *s, const bson_t *filter, struct user *out,
                       const char *op, struct chat_err *err)
{
    memset(out, 0, sizeof *out);
    struct store_mongo_scope sc;
    bson_t doc;
    int r = store_mongo__scope_open(s, "users", &sc, err);
    if (!r)
        r = store_mongo__find_one(sc.coll, filter, NULL, &doc, op, err);
    store_mongo__scope_close(s, &sc);
    if (r < 0)
        return r;
    if (r == 0)
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such user");
    int rc = parse_user(&doc, out) ? store_mongo__oom(err) : 0;
    bson_destroy(&doc);
    return rc;
}

int store_mongo__get_user(struct store *st, const char *id, struct user *out,
                          struct chat_err *err)
{
    bson_oid_t oid;
    memset(out, 0, sizeof *out);
    if (!store_mongo__oid(id, &oid))
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such user");
    bson_t q = BSON_INITIALIZER;
    BSON_APPEND_OID(&q, "_id", &oid);
    int rc = get_user_by((struct store_mongo *)st, &q, out, "get_user", err);
    bson_destroy(&q);
    return rc;
}

int store_mongo__find_user_by_login(struct store *st, const char *login, struct user *out,
                                    struct chat_err *err)
{
    /* {$or: [{email: login}, {usernameLower: login}]}: both arms use their
     * own unique index. */
    const char *l = login ? login : "";
    bson_t q = BSON_INITIALIZER;
    BCON_APPEND(&q, "$or", "[", "{", "email", BCON_UTF8(l), "}", "{", "usernameLower",
                BCON_UTF8(l), "}", "]");
    int rc = get_user_by((struct store_mongo *)st, &q, out, "find_user_by_login", err);
    bson_destroy(&q);
    return rc;
}

/* The users matching `q` (at most `max`, `opts` for order and limit). */
static int find_users(struct store_mongo *s, const bson_t *q, const bson_t *opts, size_t max,
                      struct user_list *out, const char *op, struct chat_err *err)
{
    void *items;
    int rc = store_mongo__find_list(s, "users", q, opts, max, sizeof(struct user), parse_user,
                                    &items, &out->n, op, err);
    out->items = items;
    if (rc)
        store_user_list_cleanup(out);
    return rc;
}

int store_mongo__get_users(struct store *st, const char (*ids)[OID_SIZE], size_t n,
                           struct user_list *out, struct chat_err *err)
{
    memset(out, 0, sizeof *out);
    bson_oid_t *oids = n ? calloc(n, sizeof *oids) : NULL;
    if (n && !oids)
        return store_mongo__oom(err);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (store_mongo__oid(ids[i], &oids[k]))
            k++;
    if (k == 0) {
        free(oids);
        return 0;
    }
    bson_t q = BSON_INITIALIZER;
    store_mongo__append_oid_in(&q, "_id", oids, k);
    free(oids);
    int rc = find_users((struct store_mongo *)st, &q, NULL, k, out, "get_users", err);
    bson_destroy(&q);
    return rc;
}

/* Applies `up` (an update document, destroyed here) to user `id`:
 * CHAT_E_NOT_FOUND when no such user, `op` names the call in errors. */
static int update_user_doc(struct store_mongo *s, const char *id, bson_t *up, const char *op,
                           struct chat_err *err)
{
    bson_oid_t oid;
    if (!store_mongo__oid(id, &oid)) {
        bson_destroy(up);
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such user");
    }
    bson_t q = BSON_INITIALIZER, reply;
    BSON_APPEND_OID(&q, "_id", &oid);
    struct store_mongo_scope sc;
    int rc = store_mongo__scope_open(s, "users", &sc, err);
    if (!rc) {
        bson_error_t e;
        if (!mongoc_collection_update_one(sc.coll, &q, up, NULL, &reply, &e))
            rc = store_mongo__fail(err, op, &e);
        else if (store_mongo__get_i64(&reply, "matchedCount") == 0)
            rc = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such user");
        bson_destroy(&reply);
    }
    store_mongo__scope_close(s, &sc);
    bson_destroy(&q);
    bson_destroy(up);
    return rc;
}

int store_mongo__update_user(struct store *st, const struct user *u, struct chat_err *err)
{
    bson_t up = BSON_INITIALIZER, set;
    BSON_APPEND_DOCUMENT_BEGIN(&up, "$set", &set);
    BSON_APPEND_UTF8(&set, "displayName", u->display_name ? u->display_name : "");
    BSON_APPEND_UTF8(&set, "bio", u->bio ? u->bio : "");
    store_mongo__append_str_or_null(&set, "avatarUrl", u->avatar_url);
    bson_append_document_end(&up, &set);
    return update_user_doc((struct store_mongo *)st, u->id, &up, "update_user", err);
}

int store_mongo__update_user_pwhash(struct store *st, const char *id, const char *pwhash,
                                    struct chat_err *err)
{
    bson_t up = BSON_INITIALIZER, set;
    BSON_APPEND_DOCUMENT_BEGIN(&up, "$set", &set);
    BSON_APPEND_UTF8(&set, "pwhash", pwhash);
    bson_append_document_end(&up, &set);
    return update_user_doc((struct store_mongo *)st, id, &up, "update_user_pwhash", err);
}

/* "^" + `prefix` with every ASCII punctuation character escaped, so the
 * regular expression matches the prefix literally.  New string or NULL. */
static char *regex_prefix(const char *prefix)
{
    size_t n = strlen(prefix);
    char *r = malloc(2 * n + 2), *p = r;
    if (!r)
        return NULL;
    *p++ = '^';
    for (const unsigned char *q = (const unsigned char *)prefix; *q; q++) {
        /* '_' is a word character, special in no dialect (PCRE on MongoDB,
         * RE2 on FerretDB); other ASCII punctuation is escaped, which both
         * read as the literal character. */
        bool plain = (*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'z') ||
                     (*q >= 'A' && *q <= 'Z') || *q == '_';
        if (*q < 0x80 && !plain)
            *p++ = '\\';
        *p++ = (char)*q;
    }
    *p = '\0';
    return r;
}

int store_mongo__search_users(struct store *st, const char *prefix, const char *after, int limit,
                              struct user_list *out, struct chat_err *err)
{
    memset(out, 0, sizeof *out);
    if (limit <= 0)
        return 0;
    /* An anchored, case-sensitive regex on the lower-cased copy: MongoDB
     * turns it into an index range scan on usernameLower_1. */
    char *re = regex_prefix(prefix ? prefix : "");
    if (!re)
        return store_mongo__oom(err);
    bson_t q = BSON_INITIALIZER, cond, opts = BSON_INITIALIZER;
    BSON_APPEND_DOCUMENT_BEGIN(&q, "usernameLower", &cond);
    BSON_APPEND_REGEX(&cond, "$regex", re, "");
    if (after)
        BSON_APPEND_UTF8(&cond, "$gt", after);
    bson_append_document_end(&q, &cond);
    /* A deleted account (an empty pwhash, store.h delete_user) is never
     * found. */
    BCON_APPEND(&q, "pwhash", "{", "$ne", BCON_UTF8(""), "}");
    free(re);
    int64_t max = store_mongo__limit(limit);
    BCON_APPEND(&opts, "sort", "{", "usernameLower", BCON_INT32(1), "}", "limit",
                BCON_INT64(max));
    int rc = find_users((struct store_mongo *)st, &q, &opts, (size_t)max, out, "search_users",
                        err);
    bson_destroy(&q);
    bson_destroy(&opts);
    return rc;
}

/* ---- sessions ------------------------------------------------------------------- */

int store_mongo__create_session(struct store *st, const uint8_t hash[32], const char *user_id,
                                int64_t expires_at, struct chat_err *err)
{
    bson_oid_t uid;
    if (!store_mongo__oid(user_id, &uid))
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "bad user id");
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_BINARY(&doc, "_id", BSON_SUBTYPE_BINARY, hash, 32);
    BSON_APPEND_OID(&doc, "userId", &uid);
    BSON_APPEND_DATE_TIME(&doc, "expiresAt", expires_at);
    int rc = store_mongo__insert_one((struct store_mongo *)st, "sessions", &doc, "create_session",
                                     err);
    bson_destroy(&doc);
    return rc;
}

int store_mongo__get_session(struct store *st, const uint8_t hash[32], char user_id[OID_SIZE],
                             int64_t *expires_at, struct chat_err *err)
{
    struct store_mongo *s = (struct store_mongo *)st;
    user_id[0] = '\0';
    *expires_at = 0;
    bson_t q = BSON_INITIALIZER, doc;
    BSON_APPEND_BINARY(&q, "_id", BSON_SUBTYPE_BINARY, hash, 32);
    struct store_mongo_scope sc;
    int rc = store_mongo__scope_open(s, "sessions", &sc, err);
    if (!rc)
        rc = store_mongo__find_one(sc.coll, &q, NULL, &doc, "get_session", err);
    store_mongo__scope_close(s, &sc);
    bson_destroy(&q);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such session");
    store_mongo__get_oid_hex(&doc, "userId", user_id);
    *expires_at = store_mongo__get_i64(&doc, "expiresAt");
    bson_destroy(&doc);
    return 0;
}

int store_mongo__delete_session(struct store *st, const uint8_t hash[32], struct chat_err *err)
{
    struct store_mongo *s = (struct store_mongo *)st;
    bson_t q = BSON_INITIALIZER;
    BSON_APPEND_BINARY(&q, "_id", BSON_SUBTYPE_BINARY, hash, 32);
    struct store_mongo_scope sc;
    int rc = store_mongo__scope_open(s, "sessions", &sc, err);
    bson_error_t e;
    if (!rc && !mongoc_collection_delete_one(sc.coll, &q, NULL, NULL, &e))
        rc = store_mongo__fail(err, "delete_session", &e);
    store_mongo__scope_close(s, &sc);
    bson_destroy(&q);
    return rc;
}
