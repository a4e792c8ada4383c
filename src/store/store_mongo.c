/* store_mongo.c - the MongoDB adapter of the store port.
 *
 * Design.  One mongoc_client_pool_t per store; every operation pops a client,
 * runs its commands and pushes the client back, because a mongoc_client_t is
 * single-threaded while the pool is not.  The pool's wait is bounded by
 * waitQueueTimeoutMS, and server selection by serverSelectionTimeoutMS, so a
 * missing database turns into CHAT_E_UNAVAILABLE within seconds; the pool's
 * monitor reconnects by itself when the database returns.
 *
 * Mapping choices (docs/data-model.md has the full schema):
 * - Ids: `_id` and every reference (authorId, chatId, members, ...) are BSON
 *   ObjectIds made from core's 24-hex ids, so the data reads naturally in the
 *   mongo shell and is as compact as the Node service's was.  Times are BSON
 *   dates (milliseconds), which the TTL index on sessions also needs.
 * - Case-insensitive usernames: a `usernameLower` copy with a unique index;
 *   emails arrive lower-cased from core and are unique as they are.
 * - Direct chats carry `pairKey` = "d:<low id>:<high id>" under a unique
 *   index; groups carry "g:<own id>", so the key is always present (FerretDB
 *   ignores `sparse` and refuses partial indexes).
 * - Message dedupe: the unique index {chatId, senderId, clientKey}, where
 *   clientKey is "c:<clientId>", or "i:<message id>" when the client gave
 *   none (the prefixes keep a client id that happens to look like an id from
 *   colliding with a message without one).
 * - Message order: each chat keeps an allocator `seqNext`.  The writer takes
 *   k numbers with one findAndModify {$inc: k}, then inserts; a crash between
 *   the two leaves a gap, never a duplicate, and {chatId, seq} is unique.
 *   `lastSeq`, `lastMessage` and `updatedAt` are written after the insert
 *   and only forwards (`lastSeq: {$lt: seq}`), so they always name a
 *   committed message even with several instances writing.
 * - Read marks live in the chat as `reads.<userId>` = seq; unread counts are
 *   counted from messages {chatId, seq > mark, senderId != viewer}.
 * - No $lookup (FerretDB lacks it, and it scales badly on a sharded
 *   cluster): likedByMe and unread counts are fetched with one $in / $or
 *   query per page and joined here.  No multi-document transactions: every
 *   multi-step write is ordered so that a crash leaves at worst a counter
 *   that is off (a seq gap, a like or comment count) and never a duplicate
 *   or a dangling visible reference.
 *
 * Group commit.  append_message copies the message into a queue and returns.
 * One writer thread takes up to WRITER_BATCH_MAX queued messages at a time
 * and commits them together: one dedupe query for the whole batch, one
 * findAndModify per chat for its seq numbers, one insert_many, one unordered
 * bulk update of the chats, then the callbacks, in queue order, after the
 * server acknowledged the writes (w:majority on replica sets).
 *
 * Threads: any thread may call any operation; the writer thread is private
 * to this file.  `struct mongo_store` notes which fields are shared. */
#include "chatli/adapters/store_mongo.h"

#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "chatli/log.h"
#include "chatli/metrics.h"

/* Pool defaults from the scaling guide, applied when the URI is silent. */
#define DEFAULT_MAX_POOL_SIZE 50
#define DEFAULT_SERVER_SELECTION_TIMEOUT_MS 5000
#define DEFAULT_SOCKET_TIMEOUT_MS 45000
/* How long an operation waits for a free pooled client before answering
 * CHAT_E_UNAVAILABLE: long enough to ride out a burst, short enough that the
 * HTTP client gets a 503 rather than its own timeout. */
#define DEFAULT_WAIT_QUEUE_TIMEOUT_MS 2000

/* Messages committed together at most.  insert_many splits larger batches
 * itself, but a bounded batch bounds the callback latency of its last one. */
#define WRITER_BATCH_MAX 512
/* FerretDB 1.24 stops an ordered insert at an error only within its own
 * batches of 100 documents (see settle_unattempted()): commit at most that
 * many at once there, so that a chat's messages still commit in seq order
 * when a round is cut short. */
#define FERRETDB_BATCH_MAX 100
/* Queued appends at most; past it append_message answers UNAVAILABLE at
 * once (the database cannot keep up, and memory must stay bounded). */
#define WRITER_QUEUE_MAX 65536
/* Items a list operation returns at most, whatever `limit` says. */
#define LIST_MAX 1000

#define DUP_KEY 11000

/* ---- process-wide state -------------------------------------------------- */

/* mongoc_init() once per process; never mongoc_cleanup(), since a store may be
 * reopened (tests) and the driver's globals stay reachable until exit. */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
/* Pool gauges: summed over the open stores (one in production).  Metrics
 * gauges cannot be unregistered, so they read these counters, not a store. */
static atomic_llong g_pool_in_use;
static atomic_llong g_pool_size;

static double gauge_pool_in_use(void *arg)
{
    (void)arg;
    return (double)atomic_load(&g_pool_in_use);
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

/* ---- the store ----------------------------------------------------------- */

/* One queued append.  Owned by the queue until the writer takes it, then by
 * the writer alone until its callback has run. */
struct pending {
    struct pending *next;
    struct message m;     /* the caller's message, copied; seq set at commit */
    store_append_cb cb;
    void *arg;
    int64_t t0;           /* clock_mono_ns() at enqueue, for the metric */
    uint64_t order;       /* enqueue order, which seq follows within a chat */
    /* Writer-only state. */
    bson_oid_t id, chat, sender;
    char key[80];         /* clientKey: "c:" + client id or "i:" + id */
    int rc;
    struct chat_err err;
    bool existed;         /* `found` holds the first message */
    struct message found;
    struct pending *dup_of; /* an earlier entry of this batch with the same key */
    bool inserted;
    bool need_lookup;     /* insert hit a duplicate key: find the winner */
};

#define LOCK_STRIPES 64

/* Shared by every thread that calls the port, and the writer.
 * - pool, db, wc, pool_max, rmw_locks: set in open, immutable until close.
 * - stripes[] serialise updates of one chat or post document within this
 *   process, only when rmw_locks is set (see doc_lock()).
 * - mu guards head, tail, queued and closing; cv wakes the writer.
 * - The writer thread alone runs the batches. */
struct mongo_store {
    struct store base;
    mongoc_client_pool_t *pool;
    mongoc_uri_t *uri;
    char *db;
    mongoc_write_concern_t *wc; /* NULL: the URI's (or the default) */
    int32_t pool_max;
    bool rmw_locks;             /* the server updates by read-then-replace */
    pthread_mutex_t stripes[LOCK_STRIPES];

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct pending *head, *tail;
    size_t queued;
    uint64_t enqueued; /* appends accepted so far: the next `order` */
    bool closing;
    pthread_t writer;
    struct pending **batch; /* writer only: WRITER_BATCH_MAX slots */
    size_t batch_max;       /* messages per commit: WRITER_BATCH_MAX, or
                               FERRETDB_BATCH_MAX on FerretDB */
};

/* ---- errors ---------------------------------------------------------------- */

/* Server codes that mean "not reachable or not primary right now": the
 * operation may succeed later, so the client sees 503, not 500. */
static bool transient_server_code(uint32_t code)
{
    switch (code) {
    case 6:     /* HostUnreachable */
    case 7:     /* HostNotFound */
    case 18:    /* AuthenticationFailed: the database refuses us */
    case 50:    /* MaxTimeMSExpired */
    case 63:    /* StaleShardVersion */
    case 64:    /* WriteConcernFailed */
    case 89:    /* NetworkTimeout */
    case 91:    /* ShutdownInProgress */
    case 133:   /* FailedToSatisfyReadPreference */
    case 150:   /* StaleEpoch */
    case 189:   /* PrimarySteppedDown */
    case 262:   /* ExceededTimeLimit */
    case 9001:  /* SocketException */
    case 10107: /* NotWritablePrimary */
    case 11600: /* InterruptedAtShutdown */
    case 11602: /* InterruptedDueToReplStateChange */
    case 13388: /* StaleConfig */
    case 13435: /* NotPrimaryNoSecondaryOk */
    case 13436: /* NotPrimaryOrSecondary */
        return true;
    default:
        return false;
    }
}

static int code_of(const bson_error_t *e)
{
    switch (e->domain) {
    case MONGOC_ERROR_STREAM:
    case MONGOC_ERROR_SERVER_SELECTION:
    case MONGOC_ERROR_WRITE_CONCERN:
    case MONGOC_ERROR_PROTOCOL:
        return CHAT_E_UNAVAILABLE;
    case MONGOC_ERROR_CLIENT:
        return e->code == MONGOC_ERROR_CLIENT_AUTHENTICATE ? CHAT_E_UNAVAILABLE : CHAT_E_INTERNAL;
    case MONGOC_ERROR_SERVER:
    case MONGOC_ERROR_QUERY:
    case MONGOC_ERROR_COLLECTION:
    case MONGOC_ERROR_COMMAND:
        return transient_server_code(e->code) ? CHAT_E_UNAVAILABLE : CHAT_E_INTERNAL;
    default:
        return CHAT_E_INTERNAL;
    }
}

/* Logs the driver's text and fills `err` with a client-safe one. */
static int fail(struct chat_err *err, const char *op, const bson_error_t *e)
{
    int code = code_of(e);
    log_warn("store mongodb %s: %s (domain %u, code %u)", op, e->message, e->domain, e->code);
    metrics_error(code == CHAT_E_UNAVAILABLE ? "unavailable" : "internal");
    return chat_err_set(err, code, NULL, "%s",
                        code == CHAT_E_UNAVAILABLE ? "the database is unavailable"
                                                   : "database error");
}

static int oom(struct chat_err *err)
{
    return chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
}

static bool is_dup(const bson_error_t *e)
{
    return (e->domain == MONGOC_ERROR_SERVER || e->domain == MONGOC_ERROR_COLLECTION ||
            e->domain == MONGOC_ERROR_COMMAND || e->domain == MONGOC_ERROR_QUERY) &&
           e->code == DUP_KEY;
}

/* ---- clients --------------------------------------------------------------- */

static struct mongo_store *S(struct store *st) { return (struct mongo_store *)st; }

/* Pops a pooled client.  NULL with `err` set when the pool stays exhausted
 * for waitQueueTimeoutMS. */
static mongoc_client_t *pop(struct mongo_store *s, struct chat_err *err)
{
    mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
    if (!c) {
        log_warn("store mongodb: no pooled client within waitQueueTimeoutMS");
        metrics_error("unavailable");
        chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "the database is busy");
        return NULL;
    }
    atomic_fetch_add(&g_pool_in_use, 1);
    return c;
}

static void push(struct mongo_store *s, mongoc_client_t *c)
{
    if (!c)
        return;
    atomic_fetch_sub(&g_pool_in_use, 1);
    mongoc_client_pool_push(s->pool, c);
}

/* A collection handle with the store's write concern.  Never NULL (the
 * driver aborts on allocation failure). */
static mongoc_collection_t *coll(struct mongo_store *s, mongoc_client_t *c, const char *name)
{
    mongoc_collection_t *col = mongoc_client_get_collection(c, s->db, name);
    if (s->wc)
        mongoc_collection_set_write_concern(col, s->wc);
    return col;
}

/* Document locks.  MongoDB applies each update to one document atomically,
 * and the adapter relies on it ($inc counters, $addToSet members, guarded
 * `$lt` moves).  FerretDB 1.24 does not: it reads the document, applies the
 * update in memory and writes the whole document back, so two concurrent
 * updates of one chat or post can lose one of them (even updates of
 * different fields: a member added while the writer bumps seqNext).  On such
 * a server (detected at open) every update of a chat or post document takes
 * a per-document stripe lock, which makes one process exact; several
 * processes on one FerretDB are not (docs/data-model.md).  On MongoDB the
 * locks are never taken.  Lock order: pop a client first, then lock; hold
 * stripes only around the update itself; the writer may hold several, taken
 * in ascending stripe order. */
static unsigned stripe_of(const bson_oid_t *id)
{
    uint32_t h = 2166136261u; /* FNV-1a over the 12 bytes */
    for (int i = 0; i < 12; i++)
        h = (h ^ id->bytes[i]) * 16777619u;
    return h % LOCK_STRIPES;
}

static void doc_lock(struct mongo_store *s, const bson_oid_t *id)
{
    if (s->rmw_locks)
        pthread_mutex_lock(&s->stripes[stripe_of(id)]);
}

static void doc_unlock(struct mongo_store *s, const bson_oid_t *id)
{
    if (s->rmw_locks)
        pthread_mutex_unlock(&s->stripes[stripe_of(id)]);
}

/* ---- BSON helpers ------------------------------------------------------------ */

static bool to_oid(const char *hex, bson_oid_t *o)
{
    if (!hex || !oid_valid(hex))
        return false;
    bson_oid_init_from_string(o, hex);
    return true;
}

static void oid_hex(const bson_oid_t *o, char out[OID_SIZE]) { bson_oid_to_string(o, out); }

static void append_str_or_null(bson_t *b, const char *key, const char *v)
{
    if (v)
        BSON_APPEND_UTF8(b, key, v);
    else
        BSON_APPEND_NULL(b, key);
}

/* Appends {field: {$lt: ...}} style page conditions:
 * $or: [{ts: {$lt: key.ts}}, {ts: key.ts, _id: {$lt: key.id}}]. */
static bool append_page(bson_t *filter, const char *ts_field, const struct page_key *k)
{
    bson_oid_t id;
    if (!to_oid(k->id, &id))
        return false;
    bson_t or, a, b, lt;
    char kb[16];
    const char *key;
    BSON_APPEND_ARRAY_BEGIN(filter, "$or", &or);
    bson_uint32_to_string(0, &key, kb, sizeof kb);
    bson_append_document_begin(&or, key, -1, &a);
    BSON_APPEND_DOCUMENT_BEGIN(&a, ts_field, &lt);
    BSON_APPEND_DATE_TIME(&lt, "$lt", k->ts);
    bson_append_document_end(&a, &lt);
    bson_append_document_end(&or, &a);
    bson_uint32_to_string(1, &key, kb, sizeof kb);
    bson_append_document_begin(&or, key, -1, &b);
    BSON_APPEND_DATE_TIME(&b, ts_field, k->ts);
    BSON_APPEND_DOCUMENT_BEGIN(&b, "_id", &lt);
    BSON_APPEND_OID(&lt, "$lt", &id);
    bson_append_document_end(&b, &lt);
    bson_append_document_end(&or, &b);
    bson_append_array_end(filter, &or);
    return true;
}

/* Field readers: absent or mistyped fields read as empty, since documents
 * are written only by this file. */
static bool get_iter(const bson_t *d, const char *key, bson_iter_t *it)
{
    return bson_iter_init_find(it, d, key);
}

/* *out = new copy of a string field, NULL when absent or null.  -1 on OOM. */
static int get_str(const bson_t *d, const char *key, char **out)
{
    bson_iter_t it;
    *out = NULL;
    if (!get_iter(d, key, &it) || !BSON_ITER_HOLDS_UTF8(&it))
        return 0;
    uint32_t len;
    const char *v = bson_iter_utf8(&it, &len);
    *out = strndup(v, len);
    return *out ? 0 : -1;
}

/* Like get_str but never NULL: "" when absent. */
static int get_str_nn(const bson_t *d, const char *key, char **out)
{
    if (get_str(d, key, out))
        return -1;
    if (!*out)
        *out = strdup("");
    return *out ? 0 : -1;
}

static int64_t get_i64(const bson_t *d, const char *key)
{
    bson_iter_t it;
    if (!get_iter(d, key, &it))
        return 0;
    if (BSON_ITER_HOLDS_DATE_TIME(&it))
        return bson_iter_date_time(&it);
    if (BSON_ITER_HOLDS_NUMBER(&it))
        return bson_iter_as_int64(&it);
    return 0;
}

static void get_oid_hex(const bson_t *d, const char *key, char out[OID_SIZE])
{
    bson_iter_t it;
    out[0] = '\0';
    if (get_iter(d, key, &it) && BSON_ITER_HOLDS_OID(&it))
        oid_hex(bson_iter_oid(&it), out);
}

/* A sub-document as a static bson_t (borrowed from `d`). */
static bool get_doc(const bson_t *d, const char *key, bson_t *out)
{
    bson_iter_t it;
    if (!get_iter(d, key, &it) || !BSON_ITER_HOLDS_DOCUMENT(&it))
        return false;
    uint32_t len;
    const uint8_t *data;
    bson_iter_document(&it, &len, &data);
    return bson_init_static(out, data, len);
}

/* Appends an array of ObjectIds. */
static void append_oid_array(bson_t *b, const char *key, const bson_oid_t *ids, size_t n)
{
    bson_t arr;
    char kb[16];
    const char *k;
    BSON_APPEND_ARRAY_BEGIN(b, key, &arr);
    for (size_t i = 0; i < n; i++) {
        bson_uint32_to_string((uint32_t)i, &k, kb, sizeof kb);
        bson_append_oid(&arr, k, -1, &ids[i]);
    }
    bson_append_array_end(b, &arr);
}

static int64_t clamp_limit(int limit) { return limit > LIST_MAX ? LIST_MAX : limit; }

/* ---- record parsing ---------------------------------------------------------- */

static int parse_user(const bson_t *d, struct user *u)
{
    memset(u, 0, sizeof *u);
    get_oid_hex(d, "_id", u->id);
    u->created_at = get_i64(d, "createdAt");
    if (get_str_nn(d, "username", &u->username) || get_str_nn(d, "email", &u->email) ||
        get_str_nn(d, "displayName", &u->display_name) || get_str_nn(d, "bio", &u->bio) ||
        get_str(d, "avatarUrl", &u->avatar_url) || get_str_nn(d, "pwhash", &u->pwhash)) {
        store_user_cleanup(u);
        return -1;
    }
    return 0;
}

static int parse_post(const bson_t *d, struct post *p)
{
    memset(p, 0, sizeof *p);
    get_oid_hex(d, "_id", p->id);
    get_oid_hex(d, "authorId", p->author_id);
    p->like_count = get_i64(d, "likeCount");
    p->comment_count = get_i64(d, "commentCount");
    p->created_at = get_i64(d, "createdAt");
    if (get_str_nn(d, "text", &p->text) || get_str(d, "imageUrl", &p->image_url)) {
        store_post_cleanup(p);
        return -1;
    }
    return 0;
}

static int parse_comment(const bson_t *d, struct comment *c)
{
    memset(c, 0, sizeof *c);
    get_oid_hex(d, "_id", c->id);
    get_oid_hex(d, "postId", c->post_id);
    get_oid_hex(d, "authorId", c->author_id);
    c->created_at = get_i64(d, "createdAt");
    if (get_str_nn(d, "text", &c->text)) {
        store_comment_cleanup(c);
        return -1;
    }
    return 0;
}

/* A message document, or a chat's lastMessage (which has no chatId: pass
 * the chat's id as `chat_hex`). */
static int parse_message(const bson_t *d, const char *chat_hex, struct message *m)
{
    memset(m, 0, sizeof *m);
    get_oid_hex(d, "_id", m->id);
    if (chat_hex)
        memcpy(m->chat_id, chat_hex, OID_SIZE);
    else
        get_oid_hex(d, "chatId", m->chat_id);
    get_oid_hex(d, "senderId", m->sender_id);
    m->seq = get_i64(d, "seq");
    m->created_at = get_i64(d, "createdAt");
    if (get_str_nn(d, "text", &m->text) || get_str(d, "attachmentUrl", &m->attachment_url) ||
        get_str(d, "clientId", &m->client_id)) {
        store_message_cleanup(m);
        return -1;
    }
    return 0;
}

static bool members_contain(const bson_t *chat, const bson_oid_t *who)
{
    bson_iter_t it, arr;
    if (!get_iter(chat, "members", &it) || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &arr))
        return false;
    while (bson_iter_next(&arr))
        if (BSON_ITER_HOLDS_OID(&arr) && bson_oid_equal(bson_iter_oid(&arr), who))
            return true;
    return false;
}

/* The viewer's read mark (0 when none). */
static int64_t read_mark(const bson_t *chat, const char *viewer_hex)
{
    bson_t reads;
    if (!viewer_hex || !get_doc(chat, "reads", &reads))
        return 0;
    return get_i64(&reads, viewer_hex);
}

/* Fills everything but unread_count. */
static int parse_chat(const bson_t *d, struct chat *c)
{
    memset(c, 0, sizeof *c);
    get_oid_hex(d, "_id", c->id);
    bson_iter_t it, arr;
    c->type = CHAT_GROUP;
    if (get_iter(d, "type", &it) && BSON_ITER_HOLDS_UTF8(&it) &&
        strcmp(bson_iter_utf8(&it, NULL), "direct") == 0)
        c->type = CHAT_DIRECT;
    c->last_seq = get_i64(d, "lastSeq");
    c->created_at = get_i64(d, "createdAt");
    c->updated_at = get_i64(d, "updatedAt");
    if (get_str(d, "name", &c->name))
        goto fail;
    if (get_iter(d, "members", &it) && BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &arr)) {
        size_t n = 0;
        bson_iter_t cnt = arr;
        while (bson_iter_next(&cnt))
            n += BSON_ITER_HOLDS_OID(&cnt);
        if (n) {
            c->member_ids = calloc(n, sizeof *c->member_ids);
            if (!c->member_ids)
                goto fail;
            while (bson_iter_next(&arr))
                if (BSON_ITER_HOLDS_OID(&arr))
                    oid_hex(bson_iter_oid(&arr), c->member_ids[c->n_members++]);
        }
    }
    bson_t last;
    if (get_doc(d, "lastMessage", &last)) {
        c->last_message = malloc(sizeof *c->last_message);
        if (!c->last_message || parse_message(&last, c->id, c->last_message)) {
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

/* ---- generic find -------------------------------------------------------------- */

typedef int (*parse_fn)(const bson_t *doc, void *item);

/* Runs a find and parses each document into a new array of `size`-byte
 * items.  On failure *items holds the *n items parsed so far (the caller's
 * list cleanup releases them). */
static int find_all(struct mongo_store *s, mongoc_client_t *c, const char *cname,
                    const bson_t *filter, const bson_t *opts, size_t max, size_t size,
                    parse_fn parse, void **items, size_t *n, const char *op,
                    struct chat_err *err)
{
    *items = NULL;
    *n = 0;
    if (max == 0)
        return 0;
    char *arr = calloc(max, size);
    if (!arr)
        return oom(err);
    *items = arr;
    mongoc_collection_t *col = coll(s, c, cname);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(col, filter, opts, NULL);
    const bson_t *doc;
    int rc = 0;
    while (*n < max && mongoc_cursor_next(cur, &doc)) {
        if (parse(doc, arr + *n * size)) {
            rc = oom(err);
            break;
        }
        (*n)++;
    }
    bson_error_t e;
    if (!rc && mongoc_cursor_error(cur, &e))
        rc = fail(err, op, &e);
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(col);
    if (*n == 0) {
        free(arr);
        *items = NULL;
    }
    return rc;
}

/* Finds one document; 1 when found (copied into *out, to be destroyed),
 * 0 when none, <0 on error. */
static int find_one(struct mongo_store *s, mongoc_client_t *c, const char *cname,
                    const bson_t *filter, const bson_t *projection, bson_t *out, const char *op,
                    struct chat_err *err)
{
    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_INT64(&opts, "limit", 1);
    if (projection)
        BSON_APPEND_DOCUMENT(&opts, "projection", projection);
    mongoc_collection_t *col = coll(s, c, cname);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(col, filter, &opts, NULL);
    const bson_t *doc;
    int rc = 0;
    if (mongoc_cursor_next(cur, &doc)) {
        bson_copy_to(doc, out);
        rc = 1;
    } else {
        bson_error_t e;
        if (mongoc_cursor_error(cur, &e))
            rc = fail(err, op, &e);
    }
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(col);
    bson_destroy(&opts);
    return rc;
}

/* Reads an integer count out of a write reply ("matchedCount", ...). */
static int64_t reply_count(const bson_t *reply, const char *key) { return get_i64(reply, key); }

/* ---- ping ----------------------------------------------------------------------- */

static int store_mongo_ping(struct store *st, struct chat_err *err)
{
    struct mongo_store *s = S(st);
    mongoc_client_t *c = pop(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    bson_t cmd = BSON_INITIALIZER, reply;
    BSON_APPEND_INT32(&cmd, "ping", 1);
    bson_error_t e;
    bool ok = mongoc_client_command_simple(c, "admin", &cmd, NULL, &reply, &e);
    bson_destroy(&cmd);
    bson_destroy(&reply);
    push(s, c);
    if (!ok) {
        fail(err, "ping", &e);
        /* Whatever went wrong, the store cannot serve: /readyz says down. */
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "the database is unavailable");
    }
    return 0;
}

/* ---- users ---------------------------------------------------------------------- */

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

static int store_mongo_create_user(struct store *st, const struct user *u, struct chat_err *err)
{
    struct mongo_store *s = S(st);
    bson_oid_t id;
    if (!to_oid(u->id, &id))
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "bad user id");
    char *lower = ascii_lower(u->username);
    if (!lower)
        return oom(err);
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_OID(&doc, "_id", &id);
    BSON_APPEND_UTF8(&doc, "username", u->username ? u->username : "");
    BSON_APPEND_UTF8(&doc, "usernameLower", lower);
    BSON_APPEND_UTF8(&doc, "email", u->email ? u->email : "");
    BSON_APPEND_UTF8(&doc, "displayName", u->display_name ? u->display_name : "");
    BSON_APPEND_UTF8(&doc, "bio", u->bio ? u->bio : "");
    append_str_or_null(&doc, "avatarUrl", u->avatar_url);
    BSON_APPEND_UTF8(&doc, "pwhash", u->pwhash ? u->pwhash : "");
    BSON_APPEND_DATE_TIME(&doc, "createdAt", u->created_at);

    int rc = 0;
    mongoc_client_t *c = pop(s, err);
    if (!c) {
        rc = CHAT_E_UNAVAILABLE;
        goto out;
    }
    mongoc_collection_t *col = coll(s, c, "users");
    bson_error_t e;
    if (!mongoc_collection_insert_one(col, &doc, NULL, NULL, &e)) {
        if (!is_dup(&e)) {
            rc = fail(err, "create_user", &e);
        } else {
            /* Which unique index fired?  Ask, email first as the port says. */
            bson_t q = BSON_INITIALIZER, found;
            BSON_APPEND_UTF8(&q, "email", u->email ? u->email : "");
            int r = find_one(s, c, "users", &q, NULL, &found, "create_user", err);
            bson_destroy(&q);
            if (r == 1) {
                bson_destroy(&found);
                rc = chat_err_set(err, CHAT_E_EMAIL_TAKEN, "email", "email already registered");
            } else if (r == 0) {
                bson_init(&q);
                BSON_APPEND_UTF8(&q, "usernameLower", lower);
                r = find_one(s, c, "users", &q, NULL, &found, "create_user", err);
                bson_destroy(&q);
                if (r == 1) {
                    bson_destroy(&found);
                    rc = chat_err_set(err, CHAT_E_USERNAME_TAKEN, "username",
                                      "username already taken");
                } else if (r == 0) {
                    /* The duplicate was the _id: core reused an id. */
                    log_error("store mongodb create_user: user id %s is taken", u->id);
                    rc = chat_err_set(err, CHAT_E_INTERNAL, NULL, "database error");
                }
            }
            if (r < 0)
                rc = r;
        }
    }
    mongoc_collection_destroy(col);
    push(s, c);
out:
    bson_destroy(&doc);
    free(lower);
    return rc;
}

static int get_user_by(struct mongo_store *s, const bson_t *filter, struct user *out,
                       const char *op, struct chat_err *err)
{
    memset(out, 0, sizeof *out);
    mongoc_client_t *c = pop(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    bson_t doc;
    int r = find_one(s, c, "users", filter, NULL, &doc, op, err);
    push(s, c);
    if (r < 0)
        return r;
    if (r == 0)
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such user");
    int rc = parse_user(&doc, out) ? oom(err) : 0;
    bson_destroy(&doc);
    return rc;
}

static int store_mongo_get_user(struct store *st, const char *id, struct user *out,
                                struct chat_err *err)
{
    bson_oid_t oid;
    memset(out, 0, sizeof *out);
    if (!to_oid(id, &oid))
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such user");
    bson_t q = BSON_INITIALIZER;
    BSON_APPEND_OID(&q, "_id", &oid);
    int rc = get_user_by(S(st), &q, out, "get_user", err);
    bson_destroy(&q);
    return rc;
}

static int store_mongo_find_user_by_login(struct store *st, const char *login, struct user *out,
                                          struct chat_err *err)
{
    /* {$or: [{email: login}, {usernameLower: login}]}: both arms use their
     * own unique index. */
    bson_t q = BSON_INITIALIZER, or, a;
    BSON_APPEND_ARRAY_BEGIN(&q, "$or", &or);
    BSON_APPEND_DOCUMENT_BEGIN(&or, "0", &a);
    BSON_APPEND_UTF8(&a, "email", login ? login : "");
    bson_append_document_end(&or, &a);
    BSON_APPEND_DOCUMENT_BEGIN(&or, "1", &a);
    BSON_APPEND_UTF8(&a, "usernameLower", login ? login : "");
    bson_append_document_end(&or, &a);
    bson_append_array_end(&q, &or);
    int rc = get_user_by(S(st), &q, out, "find_user_by_login", err);
    bson_destroy(&q);
    return rc;
}

static int parse_user_cb(const bson_t *d, void *item) { return parse_user(d, item); }

static int store_mongo_get_users(struct store *st, const char (*ids)[OID_SIZE], size_t n,
                                 struct user_list *out, struct chat_err *err)
{
    struct mongo_store *s = S(st);
    memset(out, 0, sizeof *out);
    bson_oid_t *oids = n ? calloc(n, sizeof *oids) : NULL;
    if (n && !oids)
        return oom(err);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (to_oid(ids[i], &oids[k]))
            k++;
    if (k == 0) {
        free(oids);
        return 0;
    }
    bson_t q = BSON_INITIALIZER, in;
    BSON_APPEND_DOCUMENT_BEGIN(&q, "_id", &in);
    append_oid_array(&in, "$in", oids, k);
    bson_append_document_end(&q, &in);
    free(oids);
    int rc = CHAT_E_UNAVAILABLE;
    mongoc_client_t *c = pop(s, err);
    if (c) {
        void *items;
        rc = find_all(s, c, "users", &q, NULL, k, sizeof(struct user), parse_user_cb, &items,
                      &out->n, "get_users", err);
        out->items = items;
        push(s, c);
        if (rc)
            store_user_list_cleanup(out);
    }
    bson_destroy(&q);
    return rc;
}

static int store_mongo_update_user(struct store *st, const struct user *u, struct chat_err *err)
{
    struct mongo_store *s = S(st);
    bson_oid_t id;
    if (!to_oid(u->id, &id))
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such user");
    bson_t q = BSON_INITIALIZER, up = BSON_INITIALIZER, set, reply;
    BSON_APPEND_OID(&q, "_id", &id);
    BSON_APPEND_DOCUMENT_BEGIN(&up, "$set", &set);
    BSON_APPEND_UTF8(&set, "displayName", u->display_name ? u->display_name : "");
    BSON_APPEND_UTF8(&set, "bio", u->bio ? u->bio : "");
    append_str_or_null(&set, "avatarUrl", u->avatar_url);
    bson_append_document_end(&up, &set);
    int rc = CHAT_E_UNAVAILABLE;
    mongoc_client_t *c = pop(s, err);
    if (c) {
        mongoc_collection_t *col = coll(s, c, "users");
        bson_error_t e;
        if (!mongoc_collection_update_one(col, &q, &up, NULL, &reply, &e))
            rc = fail(err, "update_user", &e);
        else if (reply_count(&reply, "matchedCount") == 0)
            rc = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such user");
        else
            rc = 0;
        bson_destroy(&reply);
        mongoc_collection_destroy(col);
        push(s, c);
    }
    bson_destroy(&q);
    bson_destroy(&up);
    return rc;
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

static int store_mongo_search_users(struct store *st, const char *prefix, const char *after,
                                    int limit, struct user_list *out, struct chat_err *err)
{
    struct mongo_store *s = S(st);
    memset(out, 0, sizeof *out);
    if (limit <= 0)
        return 0;
    /* An anchored, case-sensitive regex on the lower-cased copy: MongoDB
     * turns it into an index range scan on usernameLower_1. */
    char *re = regex_prefix(prefix ? prefix : "");
    if (!re)
        return oom(err);
    bson_t q = BSON_INITIALIZER, cond, opts = BSON_INITIALIZER, sort;
    BSON_APPEND_DOCUMENT_BEGIN(&q, "usernameLower", &cond);
    BSON_APPEND_REGEX(&cond, "$regex", re, "");
    if (after)
        BSON_APPEND_UTF8(&cond, "$gt", after);
    bson_append_document_end(&q, &cond);
    free(re);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
    BSON_APPEND_INT32(&sort, "usernameLower", 1);
    bson_append_document_end(&opts, &sort);
    BSON_APPEND_INT64(&opts, "limit", clamp_limit(limit));
    int rc = CHAT_E_UNAVAILABLE;
    mongoc_client_t *c = pop(s, err);
    if (c) {
        void *items;
        rc = find_all(s, c, "users", &q, &opts, (size_t)clamp_limit(limit), sizeof(struct user),
                      parse_user_cb, &items, &out->n, "search_users", err);
        out->items = items;
        push(s, c);
        if (rc)
            store_user_list_cleanup(out);
    }
    bson_destroy(&q);
    bson_destroy(&opts);
    return rc;
}

/* ---- sessions --------------------------------------------------------------------- */

/* A session's _id is the token's 32-byte hash itself: lookups by hash are
 * primary-key lookups and need no other index. */
static int store_mongo_create_session(struct store *st, const uint8_t hash[32],
                                      const char *user_id, int64_t expires_at,
                                      struct chat_err *err)
{
    struct mongo_store *s = S(st);
    bson_oid_t uid;
    if (!to_oid(user_id, &uid))
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "bad user id");
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_BINARY(&doc, "_id", BSON_SUBTYPE_BINARY, hash, 32);
    BSON_APPEND_OID(&doc, "userId", &uid);
    BSON_APPEND_DATE_TIME(&doc, "expiresAt", expires_at);
    int rc = CHAT_E_UNAVAILABLE;
    mongoc_client_t *c = pop(s, err);
    if (c) {
        mongoc_collection_t *col = coll(s, c, "sessions");
        bson_error_t e;
        rc = mongoc_collection_insert_one(col, &doc, NULL, NULL, &e)
                 ? 0
                 : fail(err, "create_session", &e);
        mongoc_collection_destroy(col);
        push(s, c);
    }
    bson_destroy(&doc);
    return rc;
}

static int store_mongo_get_session(struct store *st, const uint8_t hash[32],
                                   char user_id[OID_SIZE], int64_t *expires_at,
                                   struct chat_err *err)
{
    struct mongo_store *s = S(st);
    user_id[0] = '\0';
    *expires_at = 0;
    bson_t q = BSON_INITIALIZER, doc;
    BSON_APPEND_BINARY(&q, "_id", BSON_SUBTYPE_BINARY, hash, 32);
    int rc = CHAT_E_UNAVAILABLE;
    mongoc_client_t *c = pop(s, err);
    if (c) {
        int r = find_one(s, c, "sessions", &q, NULL, &doc, "get_session", err);
        push(s, c);
        if (r < 0) {
            rc = r;
        } else if (r == 0) {
            rc = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such session");
        } else {
            get_oid_hex(&doc, "userId", user_id);
            *expires_at = get_i64(&doc, "expiresAt");
            bson_destroy(&doc);
            rc = 0;
        }
    }
    bson_destroy(&q);
    return rc;
}

static int store_mongo_delete_session(struct store *st, const uint8_t hash[32],
                                      struct chat_err *err)
{
    struct mongo_store *s = S(st);
    bson_t q = BSON_INITIALIZER;
    BSON_APPEND_BINARY(&q, "_id", BSON_SUBTYPE_BINARY, hash, 32);
    int rc = CHAT_E_UNAVAILABLE;
    mongoc_client_t *c = pop(s, err);
    if (c) {
        mongoc_collection_t *col = coll(s, c, "sessions");
        bson_error_t e;
        rc = mongoc_collection_delete_one(col, &q, NULL, NULL, &e)
                 ? 0
                 : fail(err, "delete_session", &e);
        mongoc_collection_destroy(col);
        push(s, c);
    }
    bson_destroy(&q);
    return rc;
}

/* ---- posts, likes, comments ---------------------------------------------------------- */

static int store_mongo_create_post(struct store *st, const struct post *p, struct chat_err *err)
{
    struct mongo_store *s = S(st);
    bson_oid_t id, author;
    if (!to_oid(p->id, &id) || !to_oid(p->author_id, &author))
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "bad post id");
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_OID(&doc, "_id", &id);
    BSON_APPEND_OID(&doc, "authorId", &author);
    BSON_APPEND_UTF8(&doc, "text", p->text ? p->text : "");
    append_str_or_null(&doc, "imageUrl", p->image_url);
    BSON_APPEND_INT64(&doc, "likeCount", p->like_count);
    BSON_APPEND_INT64(&doc, "commentCount", p->comment_count);
    BSON_APPEND_DATE_TIME(&doc, "createdAt", p->created_at);
    int rc = CHAT_E_UNAVAILABLE;
    mongoc_client_t *c = pop(s, err);
    if (c) {
        mongoc_collection_t *col = coll(s, c, "posts");
        bson_error_t e;
        rc = mongoc_collection_insert_one(col, &doc, NULL, NULL, &e)
                 ? 0
                 : fail(err, "create_post", &e);
        mongoc_collection_destroy(col);
        push(s, c);
    }
    bson_destroy(&doc);
    return rc;
}

/* Sets liked_by_me on each post of `posts` that `viewer` likes, with one
 * query on likes {postId: {$in: ...}, userId: viewer}. */
static int mark_liked(struct mongo_store *s, mongoc_client_t *c, struct post *posts, size_t n,
                      const char *viewer, const char *op, struct chat_err *err)
{
    bson_oid_t uid;
    if (n == 0 || !to_oid(viewer, &uid))
        return 0;
    bson_oid_t *ids = calloc(n, sizeof *ids);
    if (!ids)
        return oom(err);
    for (size_t i = 0; i < n; i++)
        bson_oid_init_from_string(&ids[i], posts[i].id);
    bson_t q = BSON_INITIALIZER, in, opts = BSON_INITIALIZER, proj;
    BSON_APPEND_DOCUMENT_BEGIN(&q, "postId", &in);
    append_oid_array(&in, "$in", ids, n);
    bson_append_document_end(&q, &in);
    BSON_APPEND_OID(&q, "userId", &uid);
    free(ids);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
    BSON_APPEND_INT32(&proj, "postId", 1);
    bson_append_document_end(&opts, &proj);
    mongoc_collection_t *col = coll(s, c, "likes");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(col, &q, &opts, NULL);
    const bson_t *doc;
    while (mongoc_cursor_next(cur, &doc)) {
        char pid[OID_SIZE];
        get_oid_hex(doc, "postId", pid);
        for (size_t i = 0; i < n; i++)
            if (strcmp(posts[i].id, pid) == 0)
                posts[i].liked_by_me = true;
    }
    bson_error_t e;
    int rc = mongoc_cursor_error(cur, &e) ? fail(err, op, &e) : 0;
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(col);
    bson_destroy(&q);
    bson_destroy(&opts);
    return rc;
}

static int store_mongo_get_post(struct store *st, const char *id, const char *viewer_id,
                                struct post *out, struct chat_err *err)
{
    struct mongo_store *s = S(st);
    memset(out, 0, sizeof *out);
    bson_oid_t oid;
    if (!to_oid(id, &oid))
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such post");
    mongoc_client_t *c = pop(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    bson_t q = BSON_INITIALIZER, doc;
    BSON_APPEND_OID(&q, "_id", &oid);
    int rc = find_one(s, c, "posts", &q, NULL, &doc, "get_post", err);
    bson_destroy(&q);
    if (rc == 0) {
        rc = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such post");
    } else if (rc == 1) {
        rc = parse_post(&doc, out) ? oom(err) : 0;
        bson_destroy(&doc);
        if (!rc && viewer_id)
            rc = mark_liked(s, c, out, 1, viewer_id, "get_post", err);
        if (rc)
            store_post_cleanup(out);
    }
    push(s, c);
    return rc;
}

static int parse_post_cb(const bson_t *d, void *item) { return parse_post(d, item); }

/* Sort and limit options for newest-first (createdAt, _id) pages. */
static void newest_first_opts(bson_t *opts, const char *ts_field, int64_t limit)
{
    bson_t sort;
    BSON_APPEND_DOCUMENT_BEGIN(opts, "sort", &sort);
    BSON_APPEND_INT32(&sort, ts_field, -1);
    BSON_APPEND_INT32(&sort, "_id", -1);
    bson_append_document_end(opts, &sort);
    BSON_APPEND_INT64(opts, "limit", limit);
}

static int bad_page(struct chat_err *err)
{
    return chat_err_set(err, CHAT_E_VALIDATION, "before", "invalid cursor");
}

static int store_mongo_list_posts(struct store *st, const char *author_id, const char *viewer_id,
                                  const struct page_key *before, int limit,
                                  struct post_list *out, struct chat_err *err)
{
    struct mongo_store *s = S(st);
    memset(out, 0, sizeof *out);
    if (limit <= 0)
        return 0;
    bson_t q = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    int rc = 0;
    if (author_id) {
        bson_oid_t a;
        if (!to_oid(author_id, &a))
            goto out; /* no such author: an empty page */
        BSON_APPEND_OID(&q, "authorId", &a);
    }
    if (before && !append_page(&q, "createdAt", before)) {
        rc = bad_page(err);
        goto out;
    }
    newest_first_opts(&opts, "createdAt", clamp_limit(limit));
    mongoc_client_t *c = pop(s, err);
    if (!c) {
        rc = CHAT_E_UNAVAILABLE;
        goto out;
    }
    void *items;
    rc = find_all(s, c, "posts", &q, &opts, (size_t)clamp_limit(limit), sizeof(struct post),
                  parse_post_cb, &items, &out->n, "list_posts", err);
    out->items = items;
    if (!rc && viewer_id)
        rc = mark_liked(s, c, out->items, out->n, viewer_id, "list_posts", err);
    push(s, c);
    if (rc)
        store_post_list_cleanup(out);
out:
    bson_destroy(&q);
    bson_destroy(&opts);
    return rc;
}

static int delete_by_post(struct mongo_store *s, mongoc_client_t *c, const char *cname,
                          const bson_oid_t *post, struct chat_err *err)
{
    bson_t q = BSON_INITIALIZER;
    BSON_APPEND_OID(&q, "postId", post);
    mongoc_collection_t *col = coll(s, c, cname);
    bson_error_t e;
    int rc = mongoc_collection_delete_many(col, &q, NULL, NULL, &e) ? 0
                                                                     : fail(err, "delete_post", &e);
    mongoc_collection_destroy(col);
    bson_destroy(&q);
    return rc;
}

/* The post goes first, so a crash part-way leaves unreachable likes and
 * comments (no read path reaches them without the post), never a visible
 * post whose counts disagree with its children. */
static int store_mongo_delete_post(struct store *st, const char *id, struct chat_err *err)
{
    struct mongo_store *s = S(st);
    bson_oid_t oid;
    if (!to_oid(id, &oid))
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such post");
    mongoc_client_t *c = pop(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    bson_t q = BSON_INITIALIZER, reply;
    BSON_APPEND_OID(&q, "_id", &oid);
    mongoc_collection_t *col = coll(s, c, "posts");
    bson_error_t e;
    int rc;
    if (!mongoc_collection_delete_one(col, &q, NULL, &reply, &e))
        rc = fail(err, "delete_post", &e);
    else if (reply_count(&reply, "deletedCount") == 0)
        rc = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such post");
    else
        rc = 0;
    bson_destroy(&reply);
    mongoc_collection_destroy(col);
    bson_destroy(&q);
    if (!rc)
        rc = delete_by_post(s, c, "likes", &oid, err);
    if (!rc)
        rc = delete_by_post(s, c, "comments", &oid, err);
    push(s, c);
    return rc;
}

/* $inc a counter of post `id` by `by`; *value = the new count.
 * 0, CHAT_E_NOT_FOUND (no such post) or an error. */
static int inc_post_counter(struct mongo_store *s, mongoc_client_t *c, const bson_oid_t *id,
                            const char *field, int by, int64_t *value, const char *op,
                            struct chat_err *err)
{
    bson_t q = BSON_INITIALIZER, up = BSON_INITIALIZER, inc, reply;
    BSON_APPEND_OID(&q, "_id", id);
    BSON_APPEND_DOCUMENT_BEGIN(&up, "$inc", &inc);
    BSON_APPEND_INT64(&inc, field, by);
    bson_append_document_end(&up, &inc);
    /* No `fields` projection: FerretDB 1.24 refuses it on findAndModify,
     * and a post document is small. */
    mongoc_find_and_modify_opts_t *fam = mongoc_find_and_modify_opts_new();
    mongoc_find_and_modify_opts_set_update(fam, &up);
    mongoc_find_and_modify_opts_set_flags(fam, MONGOC_FIND_AND_MODIFY_RETURN_NEW);
    mongoc_collection_t *col = coll(s, c, "posts");
    bson_error_t e;
    int rc;
    doc_lock(s, id);
    bool ok = mongoc_collection_find_and_modify_with_opts(col, &q, fam, &reply, &e);
    doc_unlock(s, id);
    if (!ok) {
        rc = fail(err, op, &e);
    } else {
        bson_t v;
        if (get_doc(&reply, "value", &v)) {
            if (value)
                *value = get_i64(&v, field);
            rc = 0;
        } else {
            rc = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such post");
        }
    }
    bson_destroy(&reply);
    mongoc_collection_destroy(col);
    mongoc_find_and_modify_opts_destroy(fam);
    bson_destroy(&q);
    bson_destroy(&up);
    return rc;
}

/* A like is its own document under a unique (postId, userId) index, so a
 * repeated PUT cannot count twice; likeCount moves only when the like
 * document was really inserted or deleted. */
static int store_mongo_set_like(struct store *st, const char *post_id, const char *user_id,
                                bool liked, int64_t *like_count, struct chat_err *err)
{
    struct mongo_store *s = S(st);
    bson_oid_t pid, uid;
    *like_count = 0;
    if (!to_oid(post_id, &pid))
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such post");
    if (!to_oid(user_id, &uid))
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "bad user id");
    mongoc_client_t *c = pop(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    bson_t pq = BSON_INITIALIZER, proj = BSON_INITIALIZER, post;
    BSON_APPEND_OID(&pq, "_id", &pid);
    BSON_APPEND_INT32(&proj, "likeCount", 1);
    int rc = find_one(s, c, "posts", &pq, &proj, &post, "set_like", err);
    bson_destroy(&pq);
    bson_destroy(&proj);
    if (rc == 0) {
        rc = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such post");
        goto out;
    }
    if (rc < 0)
        goto out;
    int64_t current = get_i64(&post, "likeCount");
    bson_destroy(&post);

    bson_t like = BSON_INITIALIZER;
    BSON_APPEND_OID(&like, "postId", &pid);
    BSON_APPEND_OID(&like, "userId", &uid);
    mongoc_collection_t *col = coll(s, c, "likes");
    bson_error_t e;
    bool changed = false;
    rc = 0;
    if (liked) {
        if (mongoc_collection_insert_one(col, &like, NULL, NULL, &e))
            changed = true;
        else if (!is_dup(&e))
            rc = fail(err, "set_like", &e);
    } else {
        bson_t reply;
        if (!mongoc_collection_delete_one(col, &like, NULL, &reply, &e))
            rc = fail(err, "set_like", &e);
        else
            changed = reply_count(&reply, "deletedCount") > 0;
        bson_destroy(&reply);
    }
    if (!rc && changed) {
        rc = inc_post_counter(s, c, &pid, "likeCount", liked ? 1 : -1, &current, "set_like", err);
        if (rc == CHAT_E_NOT_FOUND && liked) {
            /* The post was deleted meanwhile: take the like back out. */
            mongoc_collection_delete_one(col, &like, NULL, NULL, NULL);
        }
    }
    mongoc_collection_destroy(col);
    bson_destroy(&like);
    if (!rc)
        *like_count = current;
out:
    push(s, c);
    return rc;
}

/* The post's count goes up first (which also proves the post exists), then
 * the comment is inserted; if the insert fails the count is taken back. */
static int store_mongo_create_comment(struct store *st, const struct comment *cm,
                                      struct chat_err *err)
{
    struct mongo_store *s = S(st);
    bson_oid_t id, pid, author;
    if (!to_oid(cm->post_id, &pid))
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such post");
    if (!to_oid(cm->id, &id) || !to_oid(cm->author_id, &author))
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "bad comment id");
    mongoc_client_t *c = pop(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    int rc = inc_post_counter(s, c, &pid, "commentCount", 1, NULL, "create_comment", err);
    if (!rc) {
        bson_t doc = BSON_INITIALIZER;
        BSON_APPEND_OID(&doc, "_id", &id);
        BSON_APPEND_OID(&doc, "postId", &pid);
        BSON_APPEND_OID(&doc, "authorId", &author);
        BSON_APPEND_UTF8(&doc, "text", cm->text ? cm->text : "");
        BSON_APPEND_DATE_TIME(&doc, "createdAt", cm->created_at);
        mongoc_collection_t *col = coll(s, c, "comments");
        bson_error_t e;
        if (!mongoc_collection_insert_one(col, &doc, NULL, NULL, &e)) {
            rc = fail(err, "create_comment", &e);
            inc_post_counter(s, c, &pid, "commentCount", -1, NULL, "create_comment", NULL);
        }
        mongoc_collection_destroy(col);
        bson_destroy(&doc);
    }
    push(s, c);
    return rc;
}

static int parse_comment_cb(const bson_t *d, void *item) { return parse_comment(d, item); }

static int store_mongo_list_comments(struct store *st, const char *post_id,
                                     const struct page_key *before, int limit,
                                     struct comment_list *out, struct chat_err *err)
{
    struct mongo_store *s = S(st);
    memset(out, 0, sizeof *out);
    bson_oid_t pid;
    if (limit <= 0 || !to_oid(post_id, &pid))
        return 0;
    bson_t q = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    int rc = 0;
    BSON_APPEND_OID(&q, "postId", &pid);
    if (before && !append_page(&q, "createdAt", before)) {
        rc = bad_page(err);
        goto out;
    }
    newest_first_opts(&opts, "createdAt", clamp_limit(limit));
    mongoc_client_t *c = pop(s, err);
    if (!c) {
        rc = CHAT_E_UNAVAILABLE;
        goto out;
    }
    void *items;
    rc = find_all(s, c, "comments", &q, &opts, (size_t)clamp_limit(limit),
                  sizeof(struct comment), parse_comment_cb, &items, &out->n, "list_comments", err);
    out->items = items;
    push(s, c);
    if (rc)
        store_comment_list_cleanup(out);
out:
    bson_destroy(&q);
    bson_destroy(&opts);
    return rc;
}

/* ---- chats ---------------------------------------------------------------------------- */

/* Messages from others after `mark` in chat `chat`. */
static int count_unread(struct mongo_store *s, mongoc_client_t *c, const bson_oid_t *chat,
                        const bson_oid_t *viewer, int64_t mark, int64_t *n, const char *op,
                        struct chat_err *err)
{
    bson_t q = BSON_INITIALIZER, gt, ne;
    BSON_APPEND_OID(&q, "chatId", chat);
    BSON_APPEND_DOCUMENT_BEGIN(&q, "seq", &gt);
    BSON_APPEND_INT64(&gt, "$gt", mark);
    bson_append_document_end(&q, &gt);
    BSON_APPEND_DOCUMENT_BEGIN(&q, "senderId", &ne);
    BSON_APPEND_OID(&ne, "$ne", viewer);
    bson_append_document_end(&q, &ne);
    mongoc_collection_t *col = coll(s, c, "messages");
    bson_error_t e;
    int64_t r = mongoc_collection_count_documents(col, &q, NULL, NULL, NULL, &e);
    mongoc_collection_destroy(col);
    bson_destroy(&q);
    if (r < 0)
        return fail(err, op, &e);
    *n = r;
    return 0;
}

/* get_chat on a popped client. */
static int get_chat_on(struct mongo_store *s, mongoc_client_t *c, const bson_oid_t *id,
                       const char *viewer, struct chat *out, const char *op, struct chat_err *err)
{
    memset(out, 0, sizeof *out);
    bson_oid_t vid;
    if (viewer && !to_oid(viewer, &vid))
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such chat");
    bson_t q = BSON_INITIALIZER, doc;
    BSON_APPEND_OID(&q, "_id", id);
    int rc = find_one(s, c, "chats", &q, NULL, &doc, op, err);
    bson_destroy(&q);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such chat");
    rc = 0;
    if (viewer && !members_contain(&doc, &vid)) {
        rc = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such chat");
    } else if (parse_chat(&doc, out)) {
        rc = oom(err);
    } else if (viewer) {
        int64_t mark = read_mark(&doc, viewer);
        if (out->last_seq > mark)
            rc = count_unread(s, c, id, &vid, mark, &out->unread_count, op, err);
        if (rc)
            store_chat_cleanup(out);
    }
    bson_destroy(&doc);
    return rc;
}

static int store_mongo_get_chat(struct store *st, const char *id, const char *viewer_id,
                                struct chat *out, struct chat_err *err)
{
    struct mongo_store *s = S(st);
    memset(out, 0, sizeof *out);
    bson_oid_t cid;
    if (!to_oid(id, &cid))
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such chat");
    mongoc_client_t *c = pop(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    int rc = get_chat_on(s, c, &cid, viewer_id, out, "get_chat", err);
    push(s, c);
    return rc;
}

static int cmp_hex(const void *a, const void *b) { return strcmp(a, b); }

static int store_mongo_create_chat(struct store *st, const struct chat *in, struct chat *out,
                                   bool *existed, struct chat_err *err)
{
    struct mongo_store *s = S(st);
    memset(out, 0, sizeof *out);
    *existed = false;
    bool direct = in->type == CHAT_DIRECT;
    if (direct && in->n_members != 2)
        return chat_err_set(err, CHAT_E_BAD_REQUEST, NULL, "a direct chat has two members");
    bson_oid_t id;
    if (!to_oid(in->id, &id))
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "bad chat id");
    bson_oid_t *members = calloc(in->n_members ? in->n_members : 1, sizeof *members);
    if (!members)
        return oom(err);
    for (size_t i = 0; i < in->n_members; i++) {
        if (!to_oid(in->member_ids[i], &members[i])) {
            free(members);
            return chat_err_set(err, CHAT_E_INTERNAL, NULL, "bad member id");
        }
    }
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
    bson_t doc = BSON_INITIALIZER, reads;
    BSON_APPEND_OID(&doc, "_id", &id);
    BSON_APPEND_UTF8(&doc, "type", direct ? "direct" : "group");
    append_str_or_null(&doc, "name", in->name);
    append_oid_array(&doc, "members", members, in->n_members);
    BSON_APPEND_UTF8(&doc, "pairKey", key);
    BSON_APPEND_INT64(&doc, "seqNext", 0);
    BSON_APPEND_INT64(&doc, "lastSeq", 0);
    BSON_APPEND_NULL(&doc, "lastMessage");
    BSON_APPEND_DOCUMENT_BEGIN(&doc, "reads", &reads);
    bson_append_document_end(&doc, &reads);
    BSON_APPEND_DATE_TIME(&doc, "createdAt", in->created_at);
    BSON_APPEND_DATE_TIME(&doc, "updatedAt", in->updated_at ? in->updated_at : in->created_at);
    free(members);

    mongoc_client_t *c = pop(s, err);
    int rc = CHAT_E_UNAVAILABLE;
    if (!c)
        goto out;
    mongoc_collection_t *col = coll(s, c, "chats");
    bson_error_t e;
    if (mongoc_collection_insert_one(col, &doc, NULL, NULL, &e)) {
        rc = get_chat_on(s, c, &id, NULL, out, "create_chat", err);
    } else if (direct && is_dup(&e)) {
        /* The pair has its chat already: answer with it, as seen by the
         * first member. */
        bson_t q = BSON_INITIALIZER, proj = BSON_INITIALIZER, found;
        BSON_APPEND_UTF8(&q, "pairKey", key);
        BSON_APPEND_INT32(&proj, "_id", 1);
        rc = find_one(s, c, "chats", &q, &proj, &found, "create_chat", err);
        if (rc == 1) {
            bson_iter_t it;
            if (bson_iter_init_find(&it, &found, "_id") && BSON_ITER_HOLDS_OID(&it)) {
                bson_oid_t other;
                bson_oid_copy(bson_iter_oid(&it), &other);
                rc = get_chat_on(s, c, &other, in->member_ids[0], out, "create_chat", err);
                *existed = rc == 0;
            } else {
                rc = chat_err_set(err, CHAT_E_INTERNAL, NULL, "database error");
            }
            bson_destroy(&found);
        } else if (rc == 0) {
            /* The duplicate was on _id, not on the pair: core reused an id. */
            rc = chat_err_set(err, CHAT_E_INTERNAL, NULL, "database error");
        }
        bson_destroy(&q);
        bson_destroy(&proj);
    } else {
        rc = fail(err, "create_chat", &e);
    }
    mongoc_collection_destroy(col);
    push(s, c);
out:
    bson_destroy(&doc);
    return rc;
}

/* Unread counts of a page of chats in one aggregate:
 * $match {$or: [{chatId, seq > mark}...], senderId != viewer},
 * $group by chatId with a count. */
static int fill_unread(struct mongo_store *s, mongoc_client_t *c, struct chat *chats,
                       const int64_t *marks, size_t n, const bson_oid_t *viewer,
                       struct chat_err *err)
{
    bson_t pipeline = BSON_INITIALIZER, st, match, m, or, arm, cond, group, g, sum;
    char kb[16];
    const char *k;
    size_t arms = 0;
    BSON_APPEND_ARRAY_BEGIN(&pipeline, "pipeline", &st);
    BSON_APPEND_DOCUMENT_BEGIN(&st, "0", &match);
    BSON_APPEND_DOCUMENT_BEGIN(&match, "$match", &m);
    BSON_APPEND_ARRAY_BEGIN(&m, "$or", &or);
    for (size_t i = 0; i < n; i++) {
        if (chats[i].last_seq <= marks[i])
            continue;
        bson_oid_t cid;
        bson_oid_init_from_string(&cid, chats[i].id);
        bson_uint32_to_string((uint32_t)arms++, &k, kb, sizeof kb);
        bson_append_document_begin(&or, k, -1, &arm);
        BSON_APPEND_OID(&arm, "chatId", &cid);
        BSON_APPEND_DOCUMENT_BEGIN(&arm, "seq", &cond);
        BSON_APPEND_INT64(&cond, "$gt", marks[i]);
        bson_append_document_end(&arm, &cond);
        bson_append_document_end(&or, &arm);
    }
    bson_append_array_end(&m, &or);
    BSON_APPEND_DOCUMENT_BEGIN(&m, "senderId", &cond);
    BSON_APPEND_OID(&cond, "$ne", viewer);
    bson_append_document_end(&m, &cond);
    bson_append_document_end(&match, &m);
    bson_append_document_end(&st, &match);
    BSON_APPEND_DOCUMENT_BEGIN(&st, "1", &group);
    BSON_APPEND_DOCUMENT_BEGIN(&group, "$group", &g);
    BSON_APPEND_UTF8(&g, "_id", "$chatId");
    BSON_APPEND_DOCUMENT_BEGIN(&g, "n", &sum);
    BSON_APPEND_INT32(&sum, "$sum", 1);
    bson_append_document_end(&g, &sum);
    bson_append_document_end(&group, &g);
    bson_append_document_end(&st, &group);
    bson_append_array_end(&pipeline, &st);
    int rc = 0;
    if (arms) {
        mongoc_collection_t *col = coll(s, c, "messages");
        mongoc_cursor_t *cur =
            mongoc_collection_aggregate(col, MONGOC_QUERY_NONE, &pipeline, NULL, NULL);
        const bson_t *doc;
        while (mongoc_cursor_next(cur, &doc)) {
            char cid[OID_SIZE];
            get_oid_hex(doc, "_id", cid);
            for (size_t i = 0; i < n; i++)
                if (strcmp(chats[i].id, cid) == 0)
                    chats[i].unread_count = get_i64(doc, "n");
        }
        bson_error_t e;
        if (mongoc_cursor_error(cur, &e))
            rc = fail(err, "list_chats", &e);
        mongoc_cursor_destroy(cur);
        mongoc_collection_destroy(col);
    }
    bson_destroy(&pipeline);
    return rc;
}

static int store_mongo_list_chats(struct store *st, const char *user_id,
                                  const struct page_key *before, int limit,
                                  struct chat_list *out, struct chat_err *err)
{
    struct mongo_store *s = S(st);
    memset(out, 0, sizeof *out);
    bson_oid_t uid;
    if (limit <= 0 || !to_oid(user_id, &uid))
        return 0;
    size_t max = (size_t)clamp_limit(limit);
    bson_t q = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    int rc = 0;
    int64_t *marks = NULL;
    BSON_APPEND_OID(&q, "members", &uid);
    if (before && !append_page(&q, "updatedAt", before)) {
        rc = bad_page(err);
        goto out;
    }
    newest_first_opts(&opts, "updatedAt", (int64_t)max);
    out->items = calloc(max, sizeof *out->items);
    marks = calloc(max, sizeof *marks);
    if (!out->items || !marks) {
        rc = oom(err);
        goto out;
    }
    mongoc_client_t *c = pop(s, err);
    if (!c) {
        rc = CHAT_E_UNAVAILABLE;
        goto out;
    }
    mongoc_collection_t *col = coll(s, c, "chats");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(col, &q, &opts, NULL);
    const bson_t *doc;
    while (out->n < max && mongoc_cursor_next(cur, &doc)) {
        if (parse_chat(doc, &out->items[out->n])) {
            rc = oom(err);
            break;
        }
        marks[out->n] = read_mark(doc, user_id);
        out->n++;
    }
    bson_error_t e;
    if (!rc && mongoc_cursor_error(cur, &e))
        rc = fail(err, "list_chats", &e);
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(col);
    if (!rc)
        rc = fill_unread(s, c, out->items, marks, out->n, &uid, err);
    push(s, c);
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

static int store_mongo_is_member(struct store *st, const char *chat_id, const char *user_id,
                                 struct chat_err *err)
{
    struct mongo_store *s = S(st);
    bson_oid_t cid, uid;
    if (!to_oid(chat_id, &cid) || !to_oid(user_id, &uid))
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such chat");
    mongoc_client_t *c = pop(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    /* By _id alone, members checked here: the same index lookup on MongoDB,
     * and the only filter FerretDB answers without scanning the collection. */
    bson_t q = BSON_INITIALIZER, proj = BSON_INITIALIZER, doc;
    BSON_APPEND_OID(&q, "_id", &cid);
    BSON_APPEND_INT32(&proj, "members", 1);
    int rc = find_one(s, c, "chats", &q, &proj, &doc, "is_member", err);
    push(s, c);
    bson_destroy(&q);
    bson_destroy(&proj);
    if (rc == 1) {
        bool member = members_contain(&doc, &uid);
        bson_destroy(&doc);
        if (member)
            return 0;
    }
    return rc < 0 ? rc : chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such chat");
}

/* One update_one of chat `id` (the filter `q` names it); *matched and
 * *modified from the reply. */
static int update_chat(struct mongo_store *s, const bson_oid_t *id, const bson_t *q,
                       const bson_t *up, int64_t *matched, int64_t *modified, const char *op,
                       struct chat_err *err)
{
    mongoc_client_t *c = pop(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    mongoc_collection_t *col = coll(s, c, "chats");
    bson_t reply;
    bson_error_t e;
    int rc = 0;
    doc_lock(s, id);
    bool ok = mongoc_collection_update_one(col, q, up, NULL, &reply, &e);
    doc_unlock(s, id);
    if (!ok) {
        rc = fail(err, op, &e);
    } else {
        *matched = reply_count(&reply, "matchedCount");
        *modified = reply_count(&reply, "modifiedCount");
    }
    bson_destroy(&reply);
    mongoc_collection_destroy(col);
    push(s, c);
    return rc;
}

static int store_mongo_add_member(struct store *st, const char *chat_id, const char *user_id,
                                  bool *added, struct chat_err *err)
{
    struct mongo_store *s = S(st);
    *added = false;
    bson_oid_t cid, uid;
    if (!to_oid(chat_id, &cid))
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such chat");
    if (!to_oid(user_id, &uid))
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "bad user id");
    /* $addToSet appends, so members stay in join order. */
    bson_t q = BSON_INITIALIZER, up = BSON_INITIALIZER, add;
    BSON_APPEND_OID(&q, "_id", &cid);
    BSON_APPEND_DOCUMENT_BEGIN(&up, "$addToSet", &add);
    BSON_APPEND_OID(&add, "members", &uid);
    bson_append_document_end(&up, &add);
    int64_t matched = 0, modified = 0;
    int rc = update_chat(s, &cid, &q, &up, &matched, &modified, "add_member", err);
    bson_destroy(&q);
    bson_destroy(&up);
    if (rc)
        return rc;
    if (matched == 0)
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such chat");
    *added = modified > 0;
    return 0;
}

static int store_mongo_remove_member(struct store *st, const char *chat_id, const char *user_id,
                                     bool *removed, struct chat_err *err)
{
    struct mongo_store *s = S(st);
    *removed = false;
    bson_oid_t cid, uid;
    if (!to_oid(chat_id, &cid))
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such chat");
    if (!to_oid(user_id, &uid))
        return 0;
    char mark[6 + OID_SIZE];
    snprintf(mark, sizeof mark, "reads.%s", user_id);
    bson_t q = BSON_INITIALIZER, up = BSON_INITIALIZER, pull, unset;
    BSON_APPEND_OID(&q, "_id", &cid);
    BSON_APPEND_OID(&q, "members", &uid);
    BSON_APPEND_DOCUMENT_BEGIN(&up, "$pull", &pull);
    BSON_APPEND_OID(&pull, "members", &uid);
    bson_append_document_end(&up, &pull);
    BSON_APPEND_DOCUMENT_BEGIN(&up, "$unset", &unset);
    BSON_APPEND_UTF8(&unset, mark, "");
    bson_append_document_end(&up, &unset);
    int64_t matched = 0, modified = 0;
    int rc = update_chat(s, &cid, &q, &up, &matched, &modified, "remove_member", err);
    bson_destroy(&q);
    bson_destroy(&up);
    if (rc)
        return rc;
    *removed = matched > 0;
    if (!*removed) {
        /* Not a member, or no such chat: only the latter is an error. */
        mongoc_client_t *c = pop(s, err);
        if (!c)
            return CHAT_E_UNAVAILABLE;
        bson_t cq = BSON_INITIALIZER, proj = BSON_INITIALIZER, doc;
        BSON_APPEND_OID(&cq, "_id", &cid);
        BSON_APPEND_INT32(&proj, "_id", 1);
        int r = find_one(s, c, "chats", &cq, &proj, &doc, "remove_member", err);
        push(s, c);
        bson_destroy(&cq);
        bson_destroy(&proj);
        if (r == 1)
            bson_destroy(&doc);
        else
            rc = r < 0 ? r : chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such chat");
    }
    return rc;
}

/* ---- messages (reads) ------------------------------------------------------------------ */

static int parse_message_cb(const bson_t *d, void *item) { return parse_message(d, NULL, item); }

static int list_messages_dir(struct mongo_store *s, const char *chat_id, int64_t seq, bool after,
                             int limit, struct message_list *out, const char *op,
                             struct chat_err *err)
{
    memset(out, 0, sizeof *out);
    bson_oid_t cid;
    if (limit <= 0 || !to_oid(chat_id, &cid))
        return 0;
    bson_t q = BSON_INITIALIZER, cond, opts = BSON_INITIALIZER, sort;
    BSON_APPEND_OID(&q, "chatId", &cid);
    if (after || seq > 0) {
        BSON_APPEND_DOCUMENT_BEGIN(&q, "seq", &cond);
        BSON_APPEND_INT64(&cond, after ? "$gt" : "$lt", seq);
        bson_append_document_end(&q, &cond);
    }
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
    BSON_APPEND_INT32(&sort, "seq", after ? 1 : -1);
    bson_append_document_end(&opts, &sort);
    BSON_APPEND_INT64(&opts, "limit", clamp_limit(limit));
    int rc = CHAT_E_UNAVAILABLE;
    mongoc_client_t *c = pop(s, err);
    if (c) {
        void *items;
        rc = find_all(s, c, "messages", &q, &opts, (size_t)clamp_limit(limit),
                      sizeof(struct message), parse_message_cb, &items, &out->n, op, err);
        out->items = items;
        push(s, c);
        if (rc)
            store_message_list_cleanup(out);
    }
    bson_destroy(&q);
    bson_destroy(&opts);
    return rc;
}

static int store_mongo_list_messages(struct store *st, const char *chat_id, int64_t before_seq,
                                     int limit, struct message_list *out, struct chat_err *err)
{
    return list_messages_dir(S(st), chat_id, before_seq, false, limit, out, "list_messages", err);
}

static int store_mongo_list_messages_after(struct store *st, const char *chat_id,
                                           int64_t after_seq, int limit, struct message_list *out,
                                           struct chat_err *err)
{
    return list_messages_dir(S(st), chat_id, after_seq, true, limit, out, "list_messages_after",
                             err);
}

/* The mark only moves forwards: the update matches only while the stored
 * mark is absent or lower, so two racing marks settle on the higher one. */
static int store_mongo_set_read(struct store *st, const char *chat_id, const char *user_id,
                                const char *message_id, bool *moved, struct chat_err *err)
{
    struct mongo_store *s = S(st);
    *moved = false;
    bson_oid_t cid, uid, mid;
    if (!to_oid(chat_id, &cid) || !to_oid(message_id, &mid))
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such message");
    if (!to_oid(user_id, &uid))
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "bad user id");
    mongoc_client_t *c = pop(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    /* By _id alone (see is_member), the chat checked here. */
    bson_t q = BSON_INITIALIZER, proj = BSON_INITIALIZER, msg;
    BSON_APPEND_OID(&q, "_id", &mid);
    BSON_APPEND_INT32(&proj, "seq", 1);
    BSON_APPEND_INT32(&proj, "chatId", 1);
    int rc = find_one(s, c, "messages", &q, &proj, &msg, "set_read", err);
    bson_destroy(&q);
    bson_destroy(&proj);
    push(s, c);
    if (rc < 0)
        return rc;
    bool in_chat = false;
    if (rc == 1) {
        bson_iter_t it;
        in_chat = bson_iter_init_find(&it, &msg, "chatId") && BSON_ITER_HOLDS_OID(&it) &&
                  bson_oid_equal(bson_iter_oid(&it), &cid);
    }
    int64_t seq = rc == 1 ? get_i64(&msg, "seq") : 0;
    if (rc == 1)
        bson_destroy(&msg);
    if (!in_chat)
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such message");

    char mark[6 + OID_SIZE];
    snprintf(mark, sizeof mark, "reads.%s", user_id);
    bson_t cq = BSON_INITIALIZER, or, arm, cond, up = BSON_INITIALIZER, set;
    BSON_APPEND_OID(&cq, "_id", &cid);
    BSON_APPEND_OID(&cq, "members", &uid);
    BSON_APPEND_ARRAY_BEGIN(&cq, "$or", &or);
    BSON_APPEND_DOCUMENT_BEGIN(&or, "0", &arm);
    BSON_APPEND_DOCUMENT_BEGIN(&arm, mark, &cond);
    BSON_APPEND_BOOL(&cond, "$exists", false);
    bson_append_document_end(&arm, &cond);
    bson_append_document_end(&or, &arm);
    BSON_APPEND_DOCUMENT_BEGIN(&or, "1", &arm);
    BSON_APPEND_DOCUMENT_BEGIN(&arm, mark, &cond);
    BSON_APPEND_INT64(&cond, "$lt", seq);
    bson_append_document_end(&arm, &cond);
    bson_append_document_end(&or, &arm);
    bson_append_array_end(&cq, &or);
    BSON_APPEND_DOCUMENT_BEGIN(&up, "$set", &set);
    BSON_APPEND_INT64(&set, mark, seq);
    bson_append_document_end(&up, &set);
    int64_t matched = 0, modified = 0;
    rc = update_chat(s, &cid, &cq, &up, &matched, &modified, "set_read", err);
    bson_destroy(&cq);
    bson_destroy(&up);
    if (!rc)
        *moved = modified > 0;
    return rc;
}

/* ---- the writer: group commit of appends -------------------------------------------------- */

static void pending_free(struct pending *p)
{
    store_message_cleanup(&p->m);
    store_message_cleanup(&p->found);
    free(p);
}

static int store_mongo_append_message(struct store *st, const struct message *m,
                                      store_append_cb cb, void *arg)
{
    struct mongo_store *s = S(st);
    struct pending *p = calloc(1, sizeof *p);
    if (!p)
        return CHAT_E_INTERNAL;
    if (store_message_copy(&p->m, m)) {
        free(p);
        return CHAT_E_INTERNAL;
    }
    p->m.seq = 0;
    p->cb = cb;
    p->arg = arg;
    p->t0 = clock_mono_ns();
    pthread_mutex_lock(&s->mu);
    if (s->closing || s->queued >= WRITER_QUEUE_MAX) {
        bool closing = s->closing;
        pthread_mutex_unlock(&s->mu);
        pending_free(p);
        if (!closing) {
            log_warn("store mongodb: append queue full (%d)", WRITER_QUEUE_MAX);
            metrics_error("unavailable");
        }
        return CHAT_E_UNAVAILABLE;
    }
    p->order = s->enqueued++;
    if (s->tail)
        s->tail->next = p;
    else
        s->head = p;
    s->tail = p;
    s->queued++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* After a batch-wide failure: every entry not inserted fails, including
 * those found as duplicates (their membership may not have been checked
 * yet; a retry finds them again). */
static void fail_open(struct pending **b, size_t n, int rc, const struct chat_err *e)
{
    for (size_t i = 0; i < n; i++) {
        if (b[i]->rc || b[i]->dup_of || b[i]->inserted)
            continue;
        if (b[i]->existed) {
            b[i]->existed = false;
            store_message_cleanup(&b[i]->found);
        }
        b[i]->rc = rc;
        b[i]->err = *e;
    }
}

static bool undecided(const struct pending *p)
{
    return !p->rc && !p->existed && !p->dup_of && !p->inserted;
}

/* Chat groups of a batch: entries [from, to) of the chat-sorted order. */
struct group {
    size_t from, to;
};

static int cmp_pending(const void *a, const void *b)
{
    const struct pending *x = *(struct pending *const *)a, *y = *(struct pending *const *)b;
    int c = strcmp(x->m.chat_id, y->m.chat_id);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order; /* queue order within a chat */
}

/* The message document as inserted (with_chat) or as a chat's lastMessage. */
static void append_message_doc(bson_t *d, const struct pending *p, const struct message *m,
                               bool with_chat)
{
    bson_oid_t id, sender;
    bson_oid_init_from_string(&id, m->id);
    bson_oid_init_from_string(&sender, m->sender_id);
    BSON_APPEND_OID(d, "_id", &id);
    if (with_chat)
        BSON_APPEND_OID(d, "chatId", &p->chat);
    BSON_APPEND_INT64(d, "seq", m->seq);
    BSON_APPEND_OID(d, "senderId", &sender);
    BSON_APPEND_UTF8(d, "text", m->text ? m->text : "");
    append_str_or_null(d, "attachmentUrl", m->attachment_url);
    append_str_or_null(d, "clientId", m->client_id);
    if (with_chat)
        BSON_APPEND_UTF8(d, "clientKey", p->key);
    BSON_APPEND_DATE_TIME(d, "createdAt", m->created_at);
}

/* Adds `id` to the set ids[0..*n) unless present. */
static void oid_set_add(bson_oid_t *ids, size_t *n, const bson_oid_t *id)
{
    for (size_t i = 0; i < *n; i++)
        if (bson_oid_equal(&ids[i], id))
            return;
    bson_oid_copy(id, &ids[(*n)++]);
}

/* Looks up already-stored messages with the batch's dedupe keys and marks
 * those entries existed.  One query for the whole batch, {chatId: {$in},
 * senderId: {$in}, clientKey: {$in}}, with the exact triples matched here:
 * MongoDB turns the three $in into point seeks on the dedupe index, and
 * FerretDB (which scans and filters in Go) evaluates three $in per document
 * rather than one $or arm per message, which was minutes per batch. */
static int dedupe_stored(struct mongo_store *s, mongoc_client_t *c, struct pending **b,
                         size_t n, struct chat_err *err)
{
    bson_oid_t *chats = calloc(n, sizeof *chats), *senders = calloc(n, sizeof *senders);
    const char **keys = calloc(n, sizeof *keys);
    int rc = 0;
    if (!chats || !senders || !keys) {
        rc = oom(err);
        goto out;
    }
    size_t nc = 0, ns = 0, nk = 0;
    for (size_t i = 0; i < n; i++) {
        if (!undecided(b[i]) || !b[i]->m.client_id)
            continue;
        oid_set_add(chats, &nc, &b[i]->chat);
        oid_set_add(senders, &ns, &b[i]->sender);
        keys[nk++] = b[i]->key; /* distinct: in-batch duplicates are dup_of */
    }
    if (nk == 0)
        goto out;
    bson_t q = BSON_INITIALIZER, in, arr;
    char kb[16];
    const char *k;
    BSON_APPEND_DOCUMENT_BEGIN(&q, "chatId", &in);
    append_oid_array(&in, "$in", chats, nc);
    bson_append_document_end(&q, &in);
    BSON_APPEND_DOCUMENT_BEGIN(&q, "senderId", &in);
    append_oid_array(&in, "$in", senders, ns);
    bson_append_document_end(&q, &in);
    BSON_APPEND_DOCUMENT_BEGIN(&q, "clientKey", &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
    for (size_t i = 0; i < nk; i++) {
        bson_uint32_to_string((uint32_t)i, &k, kb, sizeof kb);
        bson_append_utf8(&arr, k, -1, keys[i], -1);
    }
    bson_append_array_end(&in, &arr);
    bson_append_document_end(&q, &in);
    mongoc_collection_t *col = coll(s, c, "messages");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(col, &q, NULL, NULL);
    const bson_t *doc;
    while (!rc && mongoc_cursor_next(cur, &doc)) {
        char chat[OID_SIZE], sender[OID_SIZE];
        get_oid_hex(doc, "chatId", chat);
        get_oid_hex(doc, "senderId", sender);
        bson_iter_t it;
        if (!bson_iter_init_find(&it, doc, "clientKey") || !BSON_ITER_HOLDS_UTF8(&it))
            continue;
        const char *key = bson_iter_utf8(&it, NULL);
        for (size_t i = 0; i < n; i++) {
            struct pending *p = b[i];
            if (!undecided(p) || strcmp(p->key, key) || strcmp(p->m.chat_id, chat) ||
                strcmp(p->m.sender_id, sender))
                continue;
            if (parse_message(doc, NULL, &p->found)) {
                rc = oom(err);
                break;
            }
            p->existed = true;
        }
    }
    bson_error_t e;
    if (!rc && mongoc_cursor_error(cur, &e))
        rc = fail(err, "append_message", &e);
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(col);
    bson_destroy(&q);
out:
    free(chats);
    free(senders);
    free(keys);
    return rc;
}

/* Reads chat `chat`'s members; 1 found (doc in *out), 0 absent, <0 error. */
static int chat_members(struct mongo_store *s, mongoc_client_t *c, const bson_oid_t *chat,
                        bson_t *out, struct chat_err *err)
{
    bson_t q = BSON_INITIALIZER, proj = BSON_INITIALIZER;
    BSON_APPEND_OID(&q, "_id", chat);
    BSON_APPEND_INT32(&proj, "members", 1);
    int r = find_one(s, c, "chats", &q, &proj, out, "append_message", err);
    bson_destroy(&q);
    bson_destroy(&proj);
    return r;
}

/* Reserves seq numbers for the undecided entries of one chat group, in
 * their order: findAndModify {_id, members: {$all: senders}}
 * {$inc: {seqNext: k}}, returning the new document.  When the filter
 * misses (a sender is not a member, or the chat is gone) the chat is read,
 * the offenders get CHAT_E_NOT_FOUND, and it tries again.  With
 * `check_existed`, entries found as duplicates are held to membership too
 * (the port checks membership before dedupe).  Returns 0 or a backend
 * error, which the caller applies to the whole batch. */
static int reserve_seqs(struct mongo_store *s, mongoc_client_t *c, struct pending **g, size_t n,
                        bool check_existed, struct chat_err *err)
{
    /* Every entry of the group names the same chat; take the id from one
     * whose ids parsed. */
    const bson_oid_t *chat = NULL;
    for (size_t i = 0; i < n && !chat; i++)
        if (!g[i]->rc)
            chat = &g[i]->chat;
    if (!chat)
        return 0;
    bson_oid_t *senders = calloc(n, sizeof *senders);
    if (!senders)
        return oom(err);
    bson_t members_doc;
    bool have_members = false;
    int rc = 0;
    /* Bounded: each miss marks at least one sender or the chat as absent,
     * unless membership keeps changing under us. */
    for (int attempt = 0; attempt < 4; attempt++) {
        size_t k = 0, ns = 0;
        for (size_t i = 0; i < n; i++) {
            if (!undecided(g[i]))
                continue;
            k++;
            oid_set_add(senders, &ns, &g[i]->sender);
        }
        if (k == 0)
            break;
        bson_t q = BSON_INITIALIZER, all, up = BSON_INITIALIZER, inc, reply;
        BSON_APPEND_OID(&q, "_id", chat);
        BSON_APPEND_DOCUMENT_BEGIN(&q, "members", &all);
        append_oid_array(&all, "$all", senders, ns);
        bson_append_document_end(&q, &all);
        BSON_APPEND_DOCUMENT_BEGIN(&up, "$inc", &inc);
        BSON_APPEND_INT64(&inc, "seqNext", (int64_t)k);
        bson_append_document_end(&up, &inc);
        /* The whole chat comes back (FerretDB 1.24 refuses a `fields`
         * projection on findAndModify): seqNext and members are used. */
        mongoc_find_and_modify_opts_t *fam = mongoc_find_and_modify_opts_new();
        mongoc_find_and_modify_opts_set_update(fam, &up);
        mongoc_find_and_modify_opts_set_flags(fam, MONGOC_FIND_AND_MODIFY_RETURN_NEW);
        mongoc_collection_t *col = coll(s, c, "chats");
        bson_error_t e;
        doc_lock(s, chat);
        bool ok = mongoc_collection_find_and_modify_with_opts(col, &q, fam, &reply, &e);
        doc_unlock(s, chat);
        mongoc_collection_destroy(col);
        mongoc_find_and_modify_opts_destroy(fam);
        bson_destroy(&q);
        bson_destroy(&up);
        if (!ok) {
            bson_destroy(&reply);
            rc = fail(err, "append_message", &e);
            break;
        }
        bson_t v;
        if (get_doc(&reply, "value", &v)) {
            int64_t next = get_i64(&v, "seqNext") - (int64_t)k + 1;
            for (size_t i = 0; i < n; i++)
                if (undecided(g[i]))
                    g[i]->m.seq = next++;
            if (have_members)
                bson_destroy(&members_doc);
            bson_copy_to(&v, &members_doc);
            have_members = true;
            bson_destroy(&reply);
            break;
        }
        bson_destroy(&reply);
        /* Missed: find out who is not a member (or that the chat is gone). */
        if (have_members)
            bson_destroy(&members_doc);
        int r = chat_members(s, c, chat, &members_doc, err);
        if (r < 0) {
            have_members = false;
            rc = r;
            break;
        }
        have_members = r == 1;
        for (size_t i = 0; i < n; i++)
            if (undecided(g[i]) &&
                (!have_members || !members_contain(&members_doc, &g[i]->sender)))
                g[i]->rc = chat_err_set(&g[i]->err, CHAT_E_NOT_FOUND, NULL, "no such chat");
        if (attempt == 3) {
            log_warn("store mongodb append_message: seq reservation kept missing the chat");
            for (size_t i = 0; i < n; i++)
                if (undecided(g[i]))
                    g[i]->rc = chat_err_set(&g[i]->err, CHAT_E_UNAVAILABLE, NULL,
                                            "the chat is changing; try again");
        }
    }
    free(senders);
    if (!rc && check_existed) {
        bool any_existed = false;
        for (size_t i = 0; i < n; i++)
            any_existed |= g[i]->existed;
        if (any_existed && !have_members) {
            int r = chat_members(s, c, chat, &members_doc, err);
            if (r < 0)
                rc = r;
            have_members = r == 1;
        }
        for (size_t i = 0; !rc && i < n; i++) {
            if (!g[i]->existed)
                continue;
            if (!have_members || !members_contain(&members_doc, &g[i]->sender)) {
                g[i]->existed = false;
                store_message_cleanup(&g[i]->found);
                g[i]->rc = chat_err_set(&g[i]->err, CHAT_E_NOT_FOUND, NULL, "no such chat");
            }
        }
    }
    if (have_members)
        bson_destroy(&members_doc);
    return rc;
}

/* After an ordered insert stopped at an error: the entries behind it were
 * not attempted, so they wait for the next round with new seqs (the
 * reserved ones become gaps).  Whether they really were not inserted is
 * checked by _id, since FerretDB 1.24 honours `ordered` only within its
 * internal batches of 100 documents and goes on with the next batch
 * (msg_insert.go); whatever is found stored counts as inserted. */
static int settle_unattempted(struct mongo_store *s, mongoc_client_t *c, struct pending **who,
                              size_t n, struct chat_err *err)
{
    if (n == 0)
        return 0;
    bson_oid_t *ids = calloc(n, sizeof *ids);
    if (!ids)
        return oom(err);
    for (size_t j = 0; j < n; j++) {
        bson_oid_copy(&who[j]->id, &ids[j]);
        who[j]->m.seq = 0;
    }
    bson_t q = BSON_INITIALIZER, in, opts = BSON_INITIALIZER, proj;
    BSON_APPEND_DOCUMENT_BEGIN(&q, "_id", &in);
    append_oid_array(&in, "$in", ids, n);
    bson_append_document_end(&q, &in);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
    BSON_APPEND_INT32(&proj, "seq", 1);
    bson_append_document_end(&opts, &proj);
    free(ids);
    mongoc_collection_t *col = coll(s, c, "messages");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(col, &q, &opts, NULL);
    const bson_t *doc;
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_OID(&it))
            continue;
        for (size_t j = 0; j < n; j++) {
            if (bson_oid_equal(bson_iter_oid(&it), &who[j]->id)) {
                who[j]->m.seq = get_i64(doc, "seq");
                who[j]->inserted = true;
            }
        }
    }
    bson_error_t e;
    int rc = mongoc_cursor_error(cur, &e) ? fail(err, "append_message", &e) : 0;
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(col);
    bson_destroy(&q);
    bson_destroy(&opts);
    return rc;
}

/* One ordered insert_many of every undecided entry that holds a seq, in
 * chat-sorted order.  Entries before the first write error are committed;
 * the one at the error is marked for lookup (a duplicate key) or failed;
 * those after it were not attempted and wait for the next round, their
 * reserved seqs left as gaps.  Ordered, so that a chat's messages commit in
 * seq order and a retried message never lands below a later one.
 * Returns 0, or a batch-wide error when the command itself failed. */
static int insert_round(struct mongo_store *s, mongoc_client_t *c, struct pending **sorted,
                        size_t n, struct chat_err *err)
{
    const bson_t **docs = calloc(n, sizeof *docs);
    bson_t *bufs = calloc(n, sizeof *bufs);
    struct pending **who = calloc(n, sizeof *who);
    int rc = 0;
    if (!docs || !bufs || !who) {
        free(docs);
        free(bufs);
        free(who);
        return oom(err);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!undecided(sorted[i]) || sorted[i]->m.seq <= 0)
            continue;
        bson_init(&bufs[k]);
        append_message_doc(&bufs[k], sorted[i], &sorted[i]->m, true);
        docs[k] = &bufs[k];
        who[k] = sorted[i];
        k++;
    }
    if (k) {
        bson_t opts = BSON_INITIALIZER, reply;
        BSON_APPEND_BOOL(&opts, "ordered", true);
        mongoc_collection_t *col = coll(s, c, "messages");
        bson_error_t e;
        bool ok = mongoc_collection_insert_many(col, docs, k, &opts, &reply, &e);
        mongoc_collection_destroy(col);
        /* The first write error, if any: its index and code. */
        int64_t err_idx = -1, err_code = 0;
        char *err_msg = NULL;
        bson_iter_t it, arr;
        if (bson_iter_init_find(&it, &reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&it) &&
            bson_iter_recurse(&it, &arr)) {
            while (bson_iter_next(&arr)) {
                bson_t we;
                uint32_t len;
                const uint8_t *data;
                if (!BSON_ITER_HOLDS_DOCUMENT(&arr))
                    continue;
                bson_iter_document(&arr, &len, &data);
                if (!bson_init_static(&we, data, len))
                    continue;
                int64_t idx = get_i64(&we, "index");
                if (idx >= 0 && (size_t)idx < k && (err_idx < 0 || idx < err_idx)) {
                    err_idx = idx;
                    err_code = get_i64(&we, "code");
                    free(err_msg);
                    if (get_str(&we, "errmsg", &err_msg))
                        err_msg = NULL;
                }
            }
        }
        bson_iter_t wc_it, wc_arr;
        bool wc_error = bson_iter_init_find(&wc_it, &reply, "writeConcernErrors") &&
                        BSON_ITER_HOLDS_ARRAY(&wc_it) && bson_iter_recurse(&wc_it, &wc_arr) &&
                        bson_iter_next(&wc_arr);
        if (!ok && err_idx < 0 && !wc_error) {
            /* The command as a whole failed (no server, network): none of
             * these is known to be committed. */
            rc = fail(err, "append_message", &e);
        } else {
            size_t done = err_idx < 0 ? k : (size_t)err_idx;
            for (size_t j = 0; j < done; j++)
                who[j]->inserted = true;
            if (err_idx >= 0) {
                struct pending *p = who[err_idx];
                if (err_code == DUP_KEY) {
                    p->need_lookup = true;
                } else {
                    bson_error_t pe;
                    bson_set_error(&pe, MONGOC_ERROR_SERVER, (uint32_t)err_code, "%s",
                                   err_msg ? err_msg : "write error on insert");
                    p->rc = fail(&p->err, "append_message", &pe);
                }
                rc = settle_unattempted(s, c, who + err_idx + 1, k - (size_t)err_idx - 1, err);
            }
            if (wc_error) {
                /* Written on the primary but not acknowledged by a majority:
                 * it may be rolled back, so it is not "committed".  A retry
                 * with the same clientId finds it if it survived. */
                log_warn("store mongodb append_message: write concern error");
                metrics_error("unavailable");
                for (size_t j = 0; j < k; j++) {
                    if (!who[j]->inserted)
                        continue;
                    who[j]->inserted = false;
                    who[j]->rc = chat_err_set(&who[j]->err, CHAT_E_UNAVAILABLE, NULL,
                                              "the database is unavailable");
                }
            }
        }
        free(err_msg);
        bson_destroy(&reply);
        bson_destroy(&opts);
    }
    for (size_t j = 0; j < k; j++)
        bson_destroy(&bufs[j]);
    free(docs);
    free(bufs);
    free(who);
    return rc;
}

/* Moves chat `chat`'s seqNext up to its highest stored seq ($max), after a
 * seq collision: another writer took those numbers (a second instance on
 * FerretDB, whose $inc is not atomic, or a chat restored from an older
 * backup).  The next reservation then starts above them. */
static int bump_seq_next(struct mongo_store *s, mongoc_client_t *c, const bson_oid_t *chat,
                         struct chat_err *err)
{
    bson_t q = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort, proj;
    BSON_APPEND_OID(&q, "chatId", chat);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
    BSON_APPEND_INT32(&sort, "seq", -1);
    bson_append_document_end(&opts, &sort);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
    BSON_APPEND_INT32(&proj, "seq", 1);
    bson_append_document_end(&opts, &proj);
    BSON_APPEND_INT64(&opts, "limit", 1);
    mongoc_collection_t *col = coll(s, c, "messages");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(col, &q, &opts, NULL);
    const bson_t *doc;
    int64_t max = 0;
    int rc = 0;
    if (mongoc_cursor_next(cur, &doc))
        max = get_i64(doc, "seq");
    bson_error_t e;
    if (mongoc_cursor_error(cur, &e))
        rc = fail(err, "append_message", &e);
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(col);
    bson_destroy(&q);
    bson_destroy(&opts);
    if (rc)
        return rc;
    bson_t cq = BSON_INITIALIZER, up = BSON_INITIALIZER, mx, reply;
    BSON_APPEND_OID(&cq, "_id", chat);
    BSON_APPEND_DOCUMENT_BEGIN(&up, "$max", &mx);
    BSON_APPEND_INT64(&mx, "seqNext", max);
    bson_append_document_end(&up, &mx);
    col = coll(s, c, "chats");
    doc_lock(s, chat);
    bool ok = mongoc_collection_update_one(col, &cq, &up, NULL, &reply, &e);
    doc_unlock(s, chat);
    if (!ok)
        rc = fail(err, "append_message", &e);
    mongoc_collection_destroy(col);
    bson_destroy(&reply);
    bson_destroy(&cq);
    bson_destroy(&up);
    log_warn("store mongodb append_message: seq collision in a chat; seqNext moved to %lld",
             (long long)max);
    return rc;
}

/* Resolves an entry whose insert hit a duplicate key.  The dedupe key's
 * holder is the first message (existed).  Otherwise the seq was taken: the
 * chat's allocator moves up and the entry waits for the next round.  A
 * duplicate _id would mean core reused an id: internal.  Returns 0 or a
 * batch-wide backend error. */
static int resolve_duplicate(struct mongo_store *s, mongoc_client_t *c, struct pending *p,
                             struct chat_err *err)
{
    p->need_lookup = false;
    bson_t q = BSON_INITIALIZER, doc;
    BSON_APPEND_OID(&q, "chatId", &p->chat);
    BSON_APPEND_OID(&q, "senderId", &p->sender);
    BSON_APPEND_UTF8(&q, "clientKey", p->key);
    int r = find_one(s, c, "messages", &q, NULL, &doc, "append_message", err);
    bson_destroy(&q);
    if (r < 0)
        return r;
    if (r == 1) {
        if (parse_message(&doc, NULL, &p->found))
            p->rc = oom(&p->err);
        else
            p->existed = true;
        bson_destroy(&doc);
        return 0;
    }
    bson_t iq = BSON_INITIALIZER;
    BSON_APPEND_OID(&iq, "_id", &p->id);
    r = find_one(s, c, "messages", &iq, NULL, &doc, "append_message", err);
    bson_destroy(&iq);
    if (r < 0)
        return r;
    if (r == 1) {
        bson_destroy(&doc);
        log_error("store mongodb append_message: message id %s is taken", p->m.id);
        metrics_error("internal");
        p->rc = chat_err_set(&p->err, CHAT_E_INTERNAL, NULL, "database error");
        return 0;
    }
    p->m.seq = 0;
    return bump_seq_next(s, c, &p->chat, err);
}

/* Moves each chat's lastSeq / lastMessage / updatedAt to its newest
 * committed message of this batch, only forwards.  One unordered bulk write.
 * The messages are committed already, so a failure here is logged, not
 * reported: the next message of the chat (or a retry of this one, which
 * finds it as a duplicate and comes back here) moves the chat forwards. */
static int cmp_uint(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return x < y ? -1 : x > y;
}

static void update_chats(struct mongo_store *s, mongoc_client_t *c, struct pending **sorted,
                         const struct group *groups, size_t ng)
{
    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_BOOL(&opts, "ordered", false);
    mongoc_collection_t *col = coll(s, c, "chats");
    mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(col, &opts);
    unsigned *locks = calloc(ng ? ng : 1, sizeof *locks);
    size_t ops = 0, nl = 0;
    for (size_t gi = 0; gi < ng; gi++) {
        const struct pending *best = NULL;
        const struct message *bm = NULL;
        for (size_t i = groups[gi].from; i < groups[gi].to; i++) {
            const struct pending *p = sorted[i];
            const struct message *m = p->inserted ? &p->m : p->existed ? &p->found : NULL;
            if (p->rc || !m)
                continue;
            if (!bm || m->seq > bm->seq) {
                best = p;
                bm = m;
            }
        }
        if (!bm)
            continue;
        bson_t q = BSON_INITIALIZER, lt, up = BSON_INITIALIZER, set, last;
        BSON_APPEND_OID(&q, "_id", &best->chat);
        BSON_APPEND_DOCUMENT_BEGIN(&q, "lastSeq", &lt);
        BSON_APPEND_INT64(&lt, "$lt", bm->seq);
        bson_append_document_end(&q, &lt);
        BSON_APPEND_DOCUMENT_BEGIN(&up, "$set", &set);
        BSON_APPEND_INT64(&set, "lastSeq", bm->seq);
        BSON_APPEND_DOCUMENT_BEGIN(&set, "lastMessage", &last);
        append_message_doc(&last, best, bm, false);
        bson_append_document_end(&set, &last);
        BSON_APPEND_DATE_TIME(&set, "updatedAt", bm->created_at);
        bson_append_document_end(&up, &set);
        bson_error_t e;
        if (mongoc_bulk_operation_update_one_with_opts(bulk, &q, &up, NULL, &e)) {
            ops++;
            if (locks)
                locks[nl++] = stripe_of(&best->chat);
        } else {
            log_error("store mongodb append_message: bulk update: %s", e.message);
        }
        bson_destroy(&q);
        bson_destroy(&up);
    }
    if (ops && s->rmw_locks && !locks) {
        log_error("store mongodb append_message: out of memory for chat locks");
        ops = 0; /* cannot update safely; the next message repairs the chats */
    }
    if (ops) {
        /* Stripes in ascending order, each once (see doc_lock()). */
        size_t nu = 0;
        if (s->rmw_locks) {
            qsort(locks, nl, sizeof *locks, cmp_uint);
            for (size_t i = 0; i < nl; i++)
                if (i == 0 || locks[i] != locks[i - 1])
                    locks[nu++] = locks[i];
            for (size_t i = 0; i < nu; i++)
                pthread_mutex_lock(&s->stripes[locks[i]]);
        }
        bson_t reply;
        bson_error_t e;
        bool ok = mongoc_bulk_operation_execute(bulk, &reply, &e) != 0;
        for (size_t i = nu; i > 0; i--)
            pthread_mutex_unlock(&s->stripes[locks[i - 1]]);
        if (!ok) {
            log_warn("store mongodb append_message: chat update failed, repaired by the next "
                     "message: %s (domain %u, code %u)",
                     e.message, e.domain, e.code);
            metrics_error(code_of(&e) == CHAT_E_UNAVAILABLE ? "unavailable" : "internal");
        }
        bson_destroy(&reply);
    }
    free(locks);
    mongoc_bulk_operation_destroy(bulk);
    mongoc_collection_destroy(col);
    bson_destroy(&opts);
}

/* Rounds of reserve + insert a batch may take: one unless seqs collide
 * (see bump_seq_next) or a concurrent duplicate is found. */
#define COMMIT_ROUNDS 8

/* Commits one batch (entries in queue order) and runs the callbacks.
 * Returns the batch-wide failure code, if any (so the writer can fail the
 * queue behind it fast while the database is down). */
static int commit_batch(struct mongo_store *s, struct pending **b, size_t n)
{
    struct chat_err berr = {0};
    int brc = 0;

    /* Ids, dedupe keys, and duplicates inside the batch itself. */
    for (size_t i = 0; i < n; i++) {
        struct pending *p = b[i];
        if (!to_oid(p->m.chat_id, &p->chat) || !to_oid(p->m.sender_id, &p->sender)) {
            p->rc = chat_err_set(&p->err, CHAT_E_NOT_FOUND, NULL, "no such chat");
            continue;
        }
        if (!to_oid(p->m.id, &p->id)) {
            p->rc = chat_err_set(&p->err, CHAT_E_INTERNAL, NULL, "bad message id");
            continue;
        }
        if (p->m.client_id && strlen(p->m.client_id) > sizeof p->key - 3) {
            /* Core caps client ids at 64 characters; a longer one cannot be
             * keyed faithfully, so refuse it rather than truncate. */
            p->rc = chat_err_set(&p->err, CHAT_E_VALIDATION, "clientId", "clientId too long");
            continue;
        }
        if (p->m.client_id)
            snprintf(p->key, sizeof p->key, "c:%s", p->m.client_id);
        else
            snprintf(p->key, sizeof p->key, "i:%s", p->m.id);
        for (size_t j = 0; j < i && p->m.client_id; j++) {
            struct pending *q = b[j];
            if (!q->rc && !q->dup_of && q->m.client_id && strcmp(q->key, p->key) == 0 &&
                strcmp(q->m.chat_id, p->m.chat_id) == 0 &&
                strcmp(q->m.sender_id, p->m.sender_id) == 0) {
                p->dup_of = q;
                break;
            }
        }
    }

    struct pending **sorted = calloc(n, sizeof *sorted);
    struct group *groups = calloc(n, sizeof *groups);
    mongoc_client_t *c = NULL;
    size_t ng = 0;
    if (!sorted || !groups) {
        brc = oom(&berr);
        goto done;
    }
    memcpy(sorted, b, n * sizeof *b);
    qsort(sorted, n, sizeof *sorted, cmp_pending);
    for (size_t i = 0; i < n; i++) {
        if (ng == 0 || strcmp(sorted[i]->m.chat_id, sorted[groups[ng - 1].from]->m.chat_id)) {
            groups[ng].from = i;
            ng++;
        }
        groups[ng - 1].to = i + 1;
    }

    c = pop(s, &berr);
    if (!c) {
        brc = CHAT_E_UNAVAILABLE;
        goto done;
    }
    brc = dedupe_stored(s, c, b, n, &berr);
    for (int round = 0; !brc && round < COMMIT_ROUNDS; round++) {
        bool open = false;
        for (size_t gi = 0; !brc && gi < ng; gi++) {
            bool need = round == 0;
            for (size_t i = groups[gi].from; i < groups[gi].to && !need; i++)
                need = undecided(sorted[i]);
            if (need)
                brc = reserve_seqs(s, c, sorted + groups[gi].from,
                                   groups[gi].to - groups[gi].from, round == 0, &berr);
        }
        if (!brc)
            brc = insert_round(s, c, sorted, n, &berr);
        for (size_t i = 0; !brc && i < n; i++)
            if (sorted[i]->need_lookup)
                brc = resolve_duplicate(s, c, sorted[i], &berr);
        for (size_t i = 0; i < n; i++)
            open |= undecided(sorted[i]);
        if (!open)
            break;
    }
    if (!brc) {
        for (size_t i = 0; i < n; i++) {
            if (!undecided(b[i]))
                continue;
            log_warn("store mongodb append_message: no free seq after %d rounds",
                     COMMIT_ROUNDS);
            b[i]->rc = chat_err_set(&b[i]->err, CHAT_E_UNAVAILABLE, NULL,
                                    "the chat is busy; try again");
        }
        update_chats(s, c, sorted, groups, ng);
    }

done:
    push(s, c);
    if (brc)
        fail_open(b, n, brc, &berr);
    for (size_t i = 0; i < n; i++) {
        struct pending *p = b[i];
        const struct pending *src = p->dup_of ? p->dup_of : p;
        int rc = src->rc;
        bool existed = p->dup_of ? rc == 0 : p->existed;
        const struct message *m = src->existed ? &src->found : &src->m;
        struct chat_err ierr;
        const struct chat_err *e = &src->err;
        if (!rc && !src->inserted && !src->existed) {
            /* Unreachable by construction: an entry without an error was
             * either inserted or found.  Never report an uncommitted write. */
            rc = chat_err_set(&ierr, CHAT_E_INTERNAL, NULL, "database error");
            e = &ierr;
        }
        if (rc)
            p->cb(p->arg, rc, &p->m, false, e);
        else
            p->cb(p->arg, 0, m, existed, NULL);
        store__observe("append_message", p->t0);
    }
    free(sorted);
    free(groups);
    return brc;
}

static void *writer_main(void *arg)
{
    struct mongo_store *s = arg;
    struct pending **b = s->batch;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->closing)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->head)
            break; /* closing, and the queue is drained */
        size_t n = 0;
        while (s->head && n < s->batch_max) {
            struct pending *p = s->head;
            s->head = p->next;
            if (!s->head)
                s->tail = NULL;
            s->queued--;
            p->next = NULL;
            b[n++] = p;
        }
        pthread_mutex_unlock(&s->mu);
        int brc = commit_batch(s, b, n);
        for (size_t i = 0; i < n; i++)
            pending_free(b[i]);
        pthread_mutex_lock(&s->mu);
        if (brc == CHAT_E_UNAVAILABLE && s->head) {
            /* The database is down: what queued meanwhile would wait a full
             * serverSelectionTimeoutMS per batch.  Fail it now; clients
             * retry (with their clientId, so nothing doubles). */
            struct pending *q = s->head;
            s->head = s->tail = NULL;
            s->queued = 0;
            pthread_mutex_unlock(&s->mu);
            struct chat_err e;
            chat_err_set(&e, CHAT_E_UNAVAILABLE, NULL, "the database is unavailable");
            while (q) {
                struct pending *next = q->next;
                q->cb(q->arg, CHAT_E_UNAVAILABLE, &q->m, false, &e);
                store__observe("append_message", q->t0);
                pending_free(q);
                q = next;
            }
            pthread_mutex_lock(&s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- open / close ------------------------------------------------------------------------ */

static void destroy(struct mongo_store *s)
{
    if (s->pool) {
        mongoc_client_pool_destroy(s->pool);
        atomic_fetch_sub(&g_pool_size, s->pool_max);
    }
    mongoc_uri_destroy(s->uri);
    mongoc_write_concern_destroy(s->wc);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    for (int i = 0; i < LOCK_STRIPES; i++)
        pthread_mutex_destroy(&s->stripes[i]);
    free(s->db);
    free(s->batch);
    free(s);
}

static void store_mongo_close(struct store *st)
{
    struct mongo_store *s = S(st);
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    /* The writer drains the queue (every queued append gets its callback)
     * before it exits. */
    pthread_join(s->writer, NULL);
    destroy(s);
}

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
};

static int create_indexes(struct mongo_store *s, mongoc_client_t *c, struct chat_err *err)
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
            if (ix->ttl && code_of(&e) != CHAT_E_UNAVAILABLE) {
                /* FerretDB refuses TTL indexes; core checks expiry anyway,
                 * so sessions merely stay on disk until deleted. */
                log_info("store mongodb: TTL index on sessions refused (%s); expired sessions "
                         "are rejected by core and stay until logout",
                         e.message);
            } else {
                rc = fail(err, "create_indexes", &e);
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
static int detect_topology(struct mongo_store *s, mongoc_client_t *c, struct chat_err *err)
{
    bson_t cmd = BSON_INITIALIZER, reply;
    bson_error_t e;
    BSON_APPEND_INT32(&cmd, "hello", 1);
    bool ok = mongoc_client_command_simple(c, "admin", &cmd, NULL, &reply, &e);
    bson_destroy(&cmd);
    if (!ok && code_of(&e) != CHAT_E_UNAVAILABLE) {
        bson_destroy(&reply);
        bson_init(&cmd);
        BSON_APPEND_INT32(&cmd, "isMaster", 1);
        ok = mongoc_client_command_simple(c, "admin", &cmd, NULL, &reply, &e);
        bson_destroy(&cmd);
    }
    if (!ok) {
        bson_destroy(&reply);
        return fail(err, "open", &e);
    }
    bson_iter_t it;
    bool rs = bson_iter_init_find(&it, &reply, "setName") && BSON_ITER_HOLDS_UTF8(&it);
    bool mongos = bson_iter_init_find(&it, &reply, "msg") && BSON_ITER_HOLDS_UTF8(&it) &&
                  strcmp(bson_iter_utf8(&it, NULL), "isdbgrid") == 0;
    bson_destroy(&reply);
    /* FerretDB answers buildInfo with its own version: see doc_lock(). */
    bson_init(&cmd);
    BSON_APPEND_INT32(&cmd, "buildInfo", 1);
    if (!mongoc_client_command_simple(c, "admin", &cmd, NULL, &reply, &e)) {
        bson_destroy(&cmd);
        bson_destroy(&reply);
        return fail(err, "open", &e);
    }
    bson_destroy(&cmd);
    s->rmw_locks = bson_iter_init_find(&it, &reply, "ferretdbVersion");
    s->batch_max = s->rmw_locks ? FERRETDB_BATCH_MAX : WRITER_BATCH_MAX;
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
    .create_user = store_mongo_create_user,
    .get_user = store_mongo_get_user,
    .find_user_by_login = store_mongo_find_user_by_login,
    .get_users = store_mongo_get_users,
    .update_user = store_mongo_update_user,
    .search_users = store_mongo_search_users,
    .create_session = store_mongo_create_session,
    .get_session = store_mongo_get_session,
    .delete_session = store_mongo_delete_session,
    .create_post = store_mongo_create_post,
    .get_post = store_mongo_get_post,
    .list_posts = store_mongo_list_posts,
    .delete_post = store_mongo_delete_post,
    .set_like = store_mongo_set_like,
    .create_comment = store_mongo_create_comment,
    .list_comments = store_mongo_list_comments,
    .create_chat = store_mongo_create_chat,
    .get_chat = store_mongo_get_chat,
    .list_chats = store_mongo_list_chats,
    .is_member = store_mongo_is_member,
    .add_member = store_mongo_add_member,
    .remove_member = store_mongo_remove_member,
    .append_message = store_mongo_append_message,
    .list_messages = store_mongo_list_messages,
    .list_messages_after = store_mongo_list_messages_after,
    .set_read = store_mongo_set_read,
};

int store_mongo_open(const char *uri_str, const char *db, struct store **out,
                     struct chat_err *err)
{
    *out = NULL;
    pthread_once(&g_once, global_init);
    struct mongo_store *s = calloc(1, sizeof *s);
    if (!s)
        return oom(err);
    s->base.ops = &MONGO_OPS;
    s->base.name = "mongodb";
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    for (int i = 0; i < LOCK_STRIPES; i++)
        pthread_mutex_init(&s->stripes[i], NULL);
    s->batch = calloc(WRITER_BATCH_MAX, sizeof *s->batch);
    if (!s->batch) {
        destroy(s);
        return oom(err);
    }

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
        return oom(err);
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

    mongoc_client_t *c = pop(s, err);
    if (!c) {
        destroy(s);
        return CHAT_E_UNAVAILABLE;
    }
    int rc = detect_topology(s, c, err);
    if (!rc)
        rc = create_indexes(s, c, err);
    push(s, c);
    if (rc) {
        destroy(s);
        return rc;
    }
    if (pthread_create(&s->writer, NULL, writer_main, s)) {
        destroy(s);
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "cannot start the writer thread");
    }
    *out = &s->base;
    return 0;
}
