/* store_mongo.c - the MongoDB adapter of the store port: open, close, ping,
 * pool settings, indexes and the ops table.
 *
 * Design.  One mongoc_client_pool_t per store; every operation takes a
 * pooled client for its duration (store_mongo__scope_open/close in
 * store_mongo_conn.c), because a mongoc_client_t is single-threaded while
 * the pool is not.  The pool's wait is bounded by waitQueueTimeoutMS, and
 * server selection by serverSelectionTimeoutMS, so a missing database turns
 * into CHAT_E_UNAVAILABLE within seconds; the pool's monitor reconnects by
 * itself when the database returns.
 *
 * Mapping choices (docs/data-model.md has the full schema):
 * - Ids: `_id` and every reference (authorId, chatId, members, ...) are BSON
 *   ObjectIds made from core's 24-hex ids, so the data reads naturally in the
 *   mongo shell and is as compact as the Node service's was.  Times are BSON
 *   dates (milliseconds), which the TTL index on sessions also needs.
 * - Case-insensitive usernames: a `usernameLower` copy with a unique index;
 *   emails arrive lower-cased from core and are unique as they are
 *   (store_mongo_users.c).
 * - Direct chats carry `pairKey` = "d:<low id>:<high id>" under a unique
 *   index; groups carry "g:<own id>", so the key is always present (FerretDB
 *   ignores `sparse` and refuses partial indexes) (store_mongo_chats.c).
 * - Messages: a seq allocator `seqNext` per chat and the unique indexes
 *   {chatId, seq} and {chatId, senderId, clientKey} give order and dedupe
 *   without transactions; store_mongo_append.c (the group-commit writer)
 *   says how.
 * - Read marks live in the chat as `reads.<userId>` = seq; unread counts are
 *   counted from messages {chatId, seq > mark, senderId != viewer}.
 * - No $lookup (FerretDB lacks it, and it scales badly on a sharded
 *   cluster): likedByMe and unread counts are fetched with one $in / $or
 *   query per page and joined here.  No multi-document transactions: every
 *   multi-step write is ordered so that a crash leaves at worst a counter
 *   that is off (a seq gap, a like or comment count) and never a duplicate
 *   or a dangling visible reference.
 *
 * The files of the adapter and the way they call each other are listed in
 * store_mongo_internal.h, beside `struct store_mongo` and its notes on which
 * thread touches which field.  Threads: any thread may call any operation;
 * the writer thread is private to store_mongo_append.c. */
#include "chatli/adapters/store_mongo.h"

#include <stdlib.h>
#include <string.h>

#include "chatli/log.h"
#include "chatli/metrics.h"
#include "store_mongo_internal.h"

/* Pool defaults from the scaling guide, applied when the URI is silent. */
#define DEFAULT_MAX_POOL_SIZE 50
#define DEFAULT_SERVER_SELECTION_TIMEOUT_MS 5000
#define DEFAULT_SOCKET_TIMEOUT_MS 45000
/* How long an operation waits for a free pooled client before answering
 * CHAT_E_UNAVAILABLE: long enough to ride out a burst, short enough that the
 * HTTP client gets a 503 rather than its own timeout. */
#define DEFAULT_WAIT_QUEUE_TIMEOUT_MS 2000

/* ---- process-wide state -------------------------------------------------- */

/* mongoc_init() once per process; never mongoc_cleanup(), since a store may be
 * reopened (tests) and the driver's globals stay reachable until exit. */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
/* Pool capacity summed over the open stores (one in production).  Metrics
 * gauges cannot be unregistered, so they read process-wide counters (this
 * one and store_mongo__pool_in_use), not a store. */
static atomic_llong g_pool_size;

static double gauge_pool_in_use(void *arg)
{
    (void)arg;
    return (double)atomic_load(&store_mongo__pool_in_use);
}

static double gauge_pool_size(void *arg)
{
    (void)arg;
    return (double)atomic_load(&g_pool_size);
}

/* The driver's own warnings go to our JSON log; its info and debug chatter
 * is dropped. */
static void driver_log_cb(mongoc_log_level_t level, const char *domain, const char *message,
                          void *arg)
{
    (void)arg;
    /* Pools end their server sessions with endSessions at destroy; servers
     * without sessions (FerretDB) refuse it, which is harmless. */
    if (strstr(message, "endSessions"))
        return;
    if (level <= MONGOC_LOG_LEVEL_CRITICAL)
        log_error("mongoc %s: %s", domain, message);
    else if (level <= MONGOC_LOG_LEVEL_WARNING)
        log_warn("mongoc %s: %s", domain, message);
}

static void global_init(void)
{
    mongoc_init();
    mongoc_log_set_handler(driver_log_cb, NULL);
    metrics_register_gauge("chatli_store_pool_in_use",
                           "MongoDB clients checked out of the pool right now.",
                           gauge_pool_in_use, NULL);
    metrics_register_gauge("chatli_store_pool_size",
                           "MongoDB client pool capacity (maxPoolSize).", gauge_pool_size, NULL);
}

/* ---- ping, close ------------------------------------------------------------ */

static int store_mongo_ping(struct store *st, struct chat_err *err)
{
    struct store_mongo *s = (struct store_mongo *)st;
    struct store_mongo_scope sc;
    int rc = store_mongo__scope_open(s, NULL, &sc, err);
    if (rc)
        return rc;
    bson_t cmd = BSON_INITIALIZER, reply;
    BSON_APPEND_INT32(&cmd, "ping", 1);
    bson_error_t e;
    bool ok = mongoc_client_command_simple(sc.client, "admin", &cmd, NULL, &reply, &e);
    bson_destroy(&cmd);
    bson_destroy(&reply);
    store_mongo__scope_close(s, &sc);
    if (!ok) {
        store_mongo__fail(err, "ping", &e);
        /* Whatever went wrong, the store cannot serve: /readyz says down. */
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "the database is unavailable");
    }
    return 0;
}

/* Frees what open built so far (the writer is not running). */
static void destroy(struct store_mongo *s)
{
    if (s->pool) {
        mongoc_client_pool_destroy(s->pool);
        atomic_fetch_sub(&g_pool_size, s->pool_max);
    }
    mongoc_uri_destroy(s->uri);
    mongoc_write_concern_destroy(s->wc);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    for (int i = 0; i < STORE_MONGO_LOCK_STRIPES; i++)
        pthread_mutex_destroy(&s->stripes[i]);
    free(s->db);
    free(s);
}

static void store_mongo_close(struct store *st)
{
    struct store_mongo *s = (struct store_mongo *)st;
    store_mongo__append_stop(s);
    destroy(s);
}

/* ---- indexes and topology --------------------------------------------------- */

/* One index: keys as a BSON document, plus options. */
struct index_spec {
    const char *coll;
    const char *name;
    const char *keys[3]; /* field names; a leading '-' means descending */
    bool unique;
    bool ttl;            /* expireAfterSeconds: 0; refusal tolerated (FerretDB) */
};

static const struct index_spec INDEXES[] = {
    {"users", "email_1", {"email"}, true, false},
    {"users", "usernameLower_1", {"usernameLower"}, true, false},
    {"sessions", "expiresAt_ttl", {"expiresAt"}, false, true},
    {"posts", "createdAt_-1", {"-createdAt"}, false, false},
    {"posts", "createdAt_-1__id_-1", {"-createdAt", "-_id"}, false, false},
    {"posts", "authorId_1_createdAt_-1__id_-1", {"authorId", "-createdAt", "-_id"}, false, false},
    {"likes", "postId_1_userId_1", {"postId", "userId"}, true, false},
    {"comments", "postId_1_createdAt_-1__id_-1", {"postId", "-createdAt", "-_id"}, false, false},
    {"chats", "pairKey_1", {"pairKey"}, true, false},
    {"chats", "members_1_updatedAt_-1__id_-1", {"members", "-updatedAt", "-_id"}, false, false},
    {"messages", "chatId_1_seq_1", {"chatId", "seq"}, true, false},
    {"messages", "chatId_1_senderId_1_clientKey_1", {"chatId", "senderId", "clientKey"}, true,
     false},
    {"messages", "chatId_1_createdAt_-1", {"chatId", "-createdAt"}, false, false},
    /* sync's catch-up in position order (issue 13). */
    {"messages", "chatId_1_pos_1", {"chatId", "pos"}, false, false},
};

static int create_indexes(struct store_mongo *s, mongoc_client_t *c, struct chat_err *err)
{
    mongoc_database_t *db = mongoc_client_get_database(c, s->db);
    int rc = 0;
    for (size_t i = 0; !rc && i < sizeof INDEXES / sizeof INDEXES[0]; i++) {
        const struct index_spec *ix = &INDEXES[i];
        bson_t cmd = BSON_INITIALIZER, arr, spec, keys, reply;
        BSON_APPEND_UTF8(&cmd, "createIndexes", ix->coll);
        BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &arr);
        BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &spec);
        BSON_APPEND_DOCUMENT_BEGIN(&spec, "key", &keys);
        for (int k = 0; k < 3 && ix->keys[k]; k++) {
            const char *f = ix->keys[k];
            BSON_APPEND_INT32(&keys, f[0] == '-' ? f + 1 : f, f[0] == '-' ? -1 : 1);
        }
        bson_append_document_end(&spec, &keys);
        BSON_APPEND_UTF8(&spec, "name", ix->name);
        if (ix->unique)
            BSON_APPEND_BOOL(&spec, "unique", true);
        if (ix->ttl)
            BSON_APPEND_INT32(&spec, "expireAfterSeconds", 0);
        bson_append_document_end(&arr, &spec);
        bson_append_array_end(&cmd, &arr);
        bson_t opts = BSON_INITIALIZER;
        if (s->wc)
            mongoc_write_concern_append(s->wc, &opts);
        bson_error_t e;
        if (!mongoc_database_write_command_with_opts(db, &cmd, &opts, &reply, &e)) {
            if (ix->ttl && store_mongo__code_of(&e) != CHAT_E_UNAVAILABLE) {
                /* FerretDB refuses TTL indexes; core checks expiry anyway,
                 * so sessions merely stay on disk until deleted. */
                log_info("store mongodb: TTL index on sessions refused (%s); expired sessions "
                         "are rejected by core and stay until logout",
                         e.message);
            } else {
                rc = store_mongo__fail(err, "create_indexes", &e);
            }
        }
        bson_destroy(&reply);
        bson_destroy(&opts);
        bson_destroy(&cmd);
    }
    mongoc_database_destroy(db);
    return rc;
}

/* Runs hello (isMaster on servers older than 4.4.2) and decides the write
 * concern: majority on a replica set (setName) or behind mongos (msg
 * "isdbgrid"), unless the URI chose one. */
static int detect_topology(struct store_mongo *s, mongoc_client_t *c, struct chat_err *err)
{
    bson_t cmd = BSON_INITIALIZER, reply;
    bson_error_t e;
    BSON_APPEND_INT32(&cmd, "hello", 1);
    bool ok = mongoc_client_command_simple(c, "admin", &cmd, NULL, &reply, &e);
    bson_destroy(&cmd);
    if (!ok && store_mongo__code_of(&e) != CHAT_E_UNAVAILABLE) {
        bson_destroy(&reply);
        bson_init(&cmd);
        BSON_APPEND_INT32(&cmd, "isMaster", 1);
        ok = mongoc_client_command_simple(c, "admin", &cmd, NULL, &reply, &e);
        bson_destroy(&cmd);
    }
    if (!ok) {
        bson_destroy(&reply);
        return store_mongo__fail(err, "open", &e);
    }
    bson_iter_t it;
    bool rs = bson_iter_init_find(&it, &reply, "setName") && BSON_ITER_HOLDS_UTF8(&it);
    bool mongos = bson_iter_init_find(&it, &reply, "msg") && BSON_ITER_HOLDS_UTF8(&it) &&
                  strcmp(bson_iter_utf8(&it, NULL), "isdbgrid") == 0;
    bson_destroy(&reply);
    /* FerretDB answers buildInfo with its own version: it needs the
     * document locks (store_mongo_conn.c) and smaller batches. */
    bson_init(&cmd);
    BSON_APPEND_INT32(&cmd, "buildInfo", 1);
    if (!mongoc_client_command_simple(c, "admin", &cmd, NULL, &reply, &e)) {
        bson_destroy(&cmd);
        bson_destroy(&reply);
        return store_mongo__fail(err, "open", &e);
    }
    bson_destroy(&cmd);
    s->rmw_locks = bson_iter_init_find(&it, &reply, "ferretdbVersion");
    s->batch_max = s->rmw_locks ? STORE_MONGO_FERRETDB_BATCH_MAX : STORE_MONGO_BATCH_MAX;
    bson_destroy(&reply);
    const mongoc_write_concern_t *uri_wc = mongoc_uri_get_write_concern(s->uri);
    bool uri_chose = uri_wc && !mongoc_write_concern_is_default(uri_wc);
    if ((rs || mongos) && !uri_chose) {
        s->wc = mongoc_write_concern_new();
        mongoc_write_concern_set_wmajority(s->wc, 0);
    }
    log_info("store mongodb: connected to %s%s, database \"%s\", write concern %s",
             rs ? "a replica set" : mongos ? "a sharded cluster" : "a standalone server",
             s->rmw_locks ? " (FerretDB: per-document update locks on)" : "", s->db,
             s->wc ? "majority" : uri_chose ? "from the URI" : "default (w:1)");
    return 0;
}

static void default_int_option(mongoc_uri_t *uri, const char *key, int32_t value)
{
    if (!mongoc_uri_has_option(uri, key))
        mongoc_uri_set_option_as_int32(uri, key, value);
}

static const struct store_ops MONGO_OPS = {
    .close = store_mongo_close,
    .ping = store_mongo_ping,
    .create_user = store_mongo__create_user,
    .get_user = store_mongo__get_user,
    .find_user_by_login = store_mongo__find_user_by_login,
    .get_users = store_mongo__get_users,
    .update_user = store_mongo__update_user,
    .update_user_pwhash = store_mongo__update_user_pwhash,
    .search_users = store_mongo__search_users,
    .create_session = store_mongo__create_session,
    .get_session = store_mongo__get_session,
    .delete_session = store_mongo__delete_session,
    .create_post = store_mongo__create_post,
    .get_post = store_mongo__get_post,
    .list_posts = store_mongo__list_posts,
    .update_post = store_mongo__update_post,
    .delete_post = store_mongo__delete_post,
    .set_like = store_mongo__set_like,
    .create_comment = store_mongo__create_comment,
    .list_comments = store_mongo__list_comments,
    .create_chat = store_mongo__create_chat,
    .get_chat = store_mongo__get_chat,
    .list_chats = store_mongo__list_chats,
    .is_member = store_mongo__is_member,
    .add_member = store_mongo__add_member,
    .rename_chat = store_mongo__rename_chat,
    .remove_member = store_mongo__remove_member,
    .list_contacts = store_mongo__list_contacts,
    .append_message = store_mongo__append_message,
    .list_messages = store_mongo__list_messages,
    .list_messages_after = store_mongo__list_messages_after,
    .set_read = store_mongo__set_read,
    .get_message = store_mongo__get_message,
    .change_message = store_mongo__change_message,
    .list_changes_after = store_mongo__list_changes_after,
};

int store_mongo_open(const char *uri_str, const char *db, struct store **out,
                     struct chat_err *err)
{
    *out = NULL;
    pthread_once(&g_once, global_init);
    struct store_mongo *s = calloc(1, sizeof *s);
    if (!s)
        return store_mongo__oom(err);
    s->base.ops = &MONGO_OPS;
    s->base.name = "mongodb";
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    for (int i = 0; i < STORE_MONGO_LOCK_STRIPES; i++)
        pthread_mutex_init(&s->stripes[i], NULL);
    bson_error_t e;
    s->uri = mongoc_uri_new_with_error(uri_str ? uri_str : "", &e);
    if (!s->uri) {
        /* The driver's text may quote the URI and its password: not logged. */
        log_error("store mongodb: MONGODB_URI does not parse");
        destroy(s);
        return chat_err_set(err, CHAT_E_BAD_REQUEST, NULL, "MONGODB_URI does not parse");
    }
    default_int_option(s->uri, MONGOC_URI_MAXPOOLSIZE, DEFAULT_MAX_POOL_SIZE);
    default_int_option(s->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                       DEFAULT_SERVER_SELECTION_TIMEOUT_MS);
    default_int_option(s->uri, MONGOC_URI_SOCKETTIMEOUTMS, DEFAULT_SOCKET_TIMEOUT_MS);
    default_int_option(s->uri, MONGOC_URI_WAITQUEUETIMEOUTMS, DEFAULT_WAIT_QUEUE_TIMEOUT_MS);
    if (!mongoc_uri_has_option(s->uri, MONGOC_URI_APPNAME))
        mongoc_uri_set_appname(s->uri, "chatli");
    s->pool_max = mongoc_uri_get_option_as_int32(s->uri, MONGOC_URI_MAXPOOLSIZE,
                                                 DEFAULT_MAX_POOL_SIZE);

    const char *name = db && *db ? db : mongoc_uri_get_database(s->uri);
    s->db = strdup(name && *name ? name : "chatli");
    if (!s->db) {
        destroy(s);
        return store_mongo__oom(err);
    }

    s->pool = mongoc_client_pool_new_with_error(s->uri, &e);
    if (!s->pool) {
        /* e.g. a mongodb+srv:// name that does not resolve. */
        log_error("store mongodb: cannot create the client pool: %s", e.message);
        destroy(s);
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "the database is unavailable");
    }
    mongoc_client_pool_set_error_api(s->pool, MONGOC_ERROR_API_VERSION_2);
    atomic_fetch_add(&g_pool_size, s->pool_max);

    struct store_mongo_scope sc;
    int rc = store_mongo__scope_open(s, NULL, &sc, err);
    if (!rc)
        rc = detect_topology(s, sc.client, err);
    if (!rc)
        rc = create_indexes(s, sc.client, err);
    store_mongo__scope_close(s, &sc);
    if (!rc)
        rc = store_mongo__backfill_pos(s, err);
    if (!rc)
        rc = store_mongo__append_start(s, err);
    if (rc) {
        destroy(s);
        return rc;
    }
    *out = &s->base;
    return 0;
}
