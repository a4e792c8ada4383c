/* store_mongo_conn.c - the plumbing every file of the MongoDB adapter shares.
 *
 * The bottom of the adapter (store_mongo_internal.h has the map of files):
 * it calls nothing above it.  It holds
 * - the client/collection scope.  A mongoc_client_t is single-threaded while
 *   the pool is not, so every operation takes a pooled client for its
 *   duration; the pool's wait is bounded (waitQueueTimeoutMS), so an
 *   exhausted pool answers CHAT_E_UNAVAILABLE instead of blocking a request
 *   thread;
 * - the one translation of bson_error_t into CHAT_E_*: the driver's text
 *   goes to the log, the caller gets a client-safe one;
 * - the per-document locks that FerretDB's non-atomic updates need;
 * - the BSON readers and writers used by more than one resource file: field
 *   readers, id and page filters, the generic finds, and the message and
 *   membership readers that the writer shares with the chat reads. */
#include "store_mongo_internal.h"

#include <stdlib.h>
#include <string.h>

#include "chatli/log.h"
#include "chatli/metrics.h"

/* Items a list operation returns at most, whatever `limit` says. */
#define LIST_MAX 1000

atomic_llong store_mongo__pool_in_use;

/* ---- errors ----------------------------------------------------------------- */

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

int store_mongo__code_of(const bson_error_t *e)
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

int store_mongo__fail(struct chat_err *err, const char *op, const bson_error_t *e)
{
    int code = store_mongo__code_of(e);
    log_warn("store mongodb %s: %s (domain %u, code %u)", op, e->message, e->domain, e->code);
    metrics_error(code == CHAT_E_UNAVAILABLE ? "unavailable" : "internal");
    return chat_err_set(err, code, NULL, "%s",
                        code == CHAT_E_UNAVAILABLE ? "the database is unavailable"
                                                   : "database error");
}

int store_mongo__oom(struct chat_err *err)
{
    return chat_err_set(err, CHAT_E_INTERNAL, NULL, "out of memory");
}

bool store_mongo__is_dup(const bson_error_t *e)
{
    return (e->domain == MONGOC_ERROR_SERVER || e->domain == MONGOC_ERROR_COLLECTION ||
            e->domain == MONGOC_ERROR_COMMAND || e->domain == MONGOC_ERROR_QUERY) &&
           e->code == STORE_MONGO_DUP_KEY;
}

/* ---- the client/collection scope ---------------------------------------------- */

mongoc_collection_t *store_mongo__coll(struct store_mongo *s, const struct store_mongo_scope *sc,
                                       const char *name)
{
    mongoc_collection_t *col = mongoc_client_get_collection(sc->client, s->db, name);
    if (s->wc)
        mongoc_collection_set_write_concern(col, s->wc);
    return col;
}

int store_mongo__scope_open(struct store_mongo *s, const char *name, struct store_mongo_scope *sc,
                            struct chat_err *err)
{
    sc->coll = NULL;
    sc->client = mongoc_client_pool_pop(s->pool);
    if (!sc->client) {
        log_warn("store mongodb: no pooled client within waitQueueTimeoutMS");
        metrics_error("unavailable");
        chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, "the database is busy");
        return CHAT_E_UNAVAILABLE;
    }
    atomic_fetch_add(&store_mongo__pool_in_use, 1);
    if (name)
        sc->coll = store_mongo__coll(s, sc, name);
    return 0;
}

void store_mongo__scope_close(struct store_mongo *s, struct store_mongo_scope *sc)
{
    mongoc_collection_destroy(sc->coll); /* NULL-safe */
    sc->coll = NULL;
    if (!sc->client)
        return;
    atomic_fetch_sub(&store_mongo__pool_in_use, 1);
    mongoc_client_pool_push(s->pool, sc->client);
    sc->client = NULL;
}

int store_mongo__insert_one(struct store_mongo *s, const char *cname, const bson_t *doc,
                            const char *op, struct chat_err *err)
{
    struct store_mongo_scope sc;
    int rc = store_mongo__scope_open(s, cname, &sc, err);
    bson_error_t e;
    if (!rc && !mongoc_collection_insert_one(sc.coll, doc, NULL, NULL, &e))
        rc = store_mongo__fail(err, op, &e);
    store_mongo__scope_close(s, &sc);
    return rc;
}

/* ---- document locks ------------------------------------------------------------ */

/* MongoDB applies each update to one document atomically, and the adapter
 * relies on it ($inc counters, $addToSet members, guarded `$lt` moves).
 * FerretDB 1.24 does not: it reads the document, applies the update in
 * memory and writes the whole document back, so two concurrent updates of
 * one chat or post can lose one of them (even updates of different fields:
 * a member added while the writer bumps seqNext).  On such a server
 * (detected at open) every update of a chat or post document takes a
 * per-document stripe lock, which makes one process exact; several processes
 * on one FerretDB are not (docs/data-model.md).  On MongoDB the locks are
 * never taken.  Lock order: open the scope first, then lock; hold stripes
 * only around the update itself; the writer may hold several, taken in
 * ascending stripe order. */
unsigned store_mongo__stripe_of(const bson_oid_t *id)
{
    uint32_t h = 2166136261u; /* FNV-1a over the 12 bytes */
    for (int i = 0; i < 12; i++)
        h = (h ^ id->bytes[i]) * 16777619u;
    return h % STORE_MONGO_LOCK_STRIPES;
}

static void doc_lock(struct store_mongo *s, const bson_oid_t *id)
{
    if (s->rmw_locks)
        pthread_mutex_lock(&s->stripes[store_mongo__stripe_of(id)]);
}

static void doc_unlock(struct store_mongo *s, const bson_oid_t *id)
{
    if (s->rmw_locks)
        pthread_mutex_unlock(&s->stripes[store_mongo__stripe_of(id)]);
}

int store_mongo__update_doc(struct store_mongo *s, mongoc_collection_t *col, const bson_oid_t *id,
                            const bson_t *q, const bson_t *up, int64_t *matched,
                            int64_t *modified, const char *op, struct chat_err *err)
{
    bson_t reply;
    bson_error_t e;
    doc_lock(s, id);
    bool ok = mongoc_collection_update_one(col, q, up, NULL, &reply, &e);
    doc_unlock(s, id);
    int rc = 0;
    if (!ok) {
        rc = store_mongo__fail(err, op, &e);
    } else {
        if (matched)
            *matched = store_mongo__get_i64(&reply, "matchedCount");
        if (modified)
            *modified = store_mongo__get_i64(&reply, "modifiedCount");
    }
    bson_destroy(&reply);
    return rc;
}

int store_mongo__modify_doc(struct store_mongo *s, mongoc_collection_t *col, const bson_oid_t *id,
                            const bson_t *q, const bson_t *up, bson_t *value, const char *op,
                            struct chat_err *err)
{
    /* No `fields` projection: FerretDB 1.24 refuses it on findAndModify,
     * and chat and post documents are small. */
    mongoc_find_and_modify_opts_t *fam = mongoc_find_and_modify_opts_new();
    mongoc_find_and_modify_opts_set_update(fam, up);
    mongoc_find_and_modify_opts_set_flags(fam, MONGOC_FIND_AND_MODIFY_RETURN_NEW);
    bson_t reply, v;
    bson_error_t e;
    doc_lock(s, id);
    bool ok = mongoc_collection_find_and_modify_with_opts(col, q, fam, &reply, &e);
    doc_unlock(s, id);
    int rc;
    if (!ok) {
        rc = store_mongo__fail(err, op, &e);
    } else if (store_mongo__get_doc(&reply, "value", &v)) {
        bson_copy_to(&v, value);
        rc = 1;
    } else {
        rc = 0;
    }
    bson_destroy(&reply);
    mongoc_find_and_modify_opts_destroy(fam);
    return rc;
}

/* ---- BSON writers ----------------------------------------------------------------- */

bool store_mongo__oid(const char *hex, bson_oid_t *o)
{
    if (!hex || !oid_valid(hex))
        return false;
    bson_oid_init_from_string(o, hex);
    return true;
}

void store_mongo__append_str_or_null(bson_t *b, const char *key, const char *v)
{
    if (v)
        BSON_APPEND_UTF8(b, key, v);
    else
        BSON_APPEND_NULL(b, key);
}

void store_mongo__append_oid_array(bson_t *b, const char *key, const bson_oid_t *ids, size_t n)
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

void store_mongo__append_oid_in(bson_t *b, const char *field, const bson_oid_t *ids, size_t n)
{
    bson_t in;
    BSON_APPEND_DOCUMENT_BEGIN(b, field, &in);
    store_mongo__append_oid_array(&in, "$in", ids, n);
    bson_append_document_end(b, &in);
}

int64_t store_mongo__limit(int limit) { return limit > LIST_MAX ? LIST_MAX : limit; }

int store_mongo__page(bson_t *filter, bson_t *opts, const char *ts_field,
                      const struct page_key *before, int64_t max, struct chat_err *err)
{
    if (before) {
        bson_oid_t id;
        if (!store_mongo__oid(before->id, &id))
            return chat_err_set(err, CHAT_E_VALIDATION, "before", "invalid cursor");
        BCON_APPEND(filter, "$or", "[",
                    "{", ts_field, "{", "$lt", BCON_DATE_TIME(before->ts), "}", "}",
                    "{", ts_field, BCON_DATE_TIME(before->ts),
                         "_id", "{", "$lt", BCON_OID(&id), "}", "}",
                    "]");
    }
    BCON_APPEND(opts, "sort", "{", ts_field, BCON_INT32(-1), "_id", BCON_INT32(-1), "}",
                "limit", BCON_INT64(max));
    return 0;
}

/* ---- BSON readers ------------------------------------------------------------------ */

/* Absent or mistyped fields read as empty: documents are written only by
 * this adapter. */

int store_mongo__get_str(const bson_t *d, const char *key, char **out)
{
    bson_iter_t it;
    *out = NULL;
    if (!bson_iter_init_find(&it, d, key) || !BSON_ITER_HOLDS_UTF8(&it))
        return 0;
    uint32_t len;
    const char *v = bson_iter_utf8(&it, &len);
    *out = strndup(v, len);
    return *out ? 0 : -1;
}

int store_mongo__get_str_nn(const bson_t *d, const char *key, char **out)
{
    if (store_mongo__get_str(d, key, out))
        return -1;
    if (!*out)
        *out = strdup("");
    return *out ? 0 : -1;
}

int64_t store_mongo__get_i64(const bson_t *d, const char *key)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, d, key))
        return 0;
    if (BSON_ITER_HOLDS_DATE_TIME(&it))
        return bson_iter_date_time(&it);
    if (BSON_ITER_HOLDS_NUMBER(&it))
        return bson_iter_as_int64(&it);
    return 0;
}

const bson_oid_t *store_mongo__get_oid(const bson_t *d, const char *key)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, d, key) && BSON_ITER_HOLDS_OID(&it))
        return bson_iter_oid(&it);
    return NULL;
}

void store_mongo__get_oid_hex(const bson_t *d, const char *key, char out[OID_SIZE])
{
    const bson_oid_t *o = store_mongo__get_oid(d, key);
    out[0] = '\0';
    if (o)
        bson_oid_to_string(o, out);
}

bool store_mongo__get_doc(const bson_t *d, const char *key, bson_t *out)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, d, key) || !BSON_ITER_HOLDS_DOCUMENT(&it))
        return false;
    uint32_t len;
    const uint8_t *data;
    bson_iter_document(&it, &len, &data);
    return bson_init_static(out, data, len);
}

int store_mongo__parse_message(const bson_t *d, const char *chat_hex, struct message *m)
{
    memset(m, 0, sizeof *m);
    store_mongo__get_oid_hex(d, "_id", m->id);
    if (chat_hex)
        memcpy(m->chat_id, chat_hex, OID_SIZE);
    else
        store_mongo__get_oid_hex(d, "chatId", m->chat_id);
    store_mongo__get_oid_hex(d, "senderId", m->sender_id);
    m->seq = store_mongo__get_i64(d, "seq");
    m->created_at = store_mongo__get_i64(d, "createdAt");
    /* Issue 13: a document from before edits has no pos (its seq is its
     * position: the open backfills it), editedAt or deleted (not edited,
     * not deleted). */
    m->pos = store_mongo__get_i64(d, "pos");
    if (m->pos == 0)
        m->pos = m->seq;
    m->edited_at = store_mongo__get_i64(d, "editedAt");
    bson_iter_t it;
    m->deleted = bson_iter_init_find(&it, d, "deleted") && BSON_ITER_HOLDS_BOOL(&it) &&
                 bson_iter_bool(&it);
    if (store_mongo__get_str_nn(d, "text", &m->text) ||
        store_mongo__get_str(d, "attachmentUrl", &m->attachment_url) ||
        store_mongo__get_str(d, "clientId", &m->client_id)) {
        store_message_cleanup(m);
        return -1;
    }
    return 0;
}

bool store_mongo__members_contain(const bson_t *chat, const bson_oid_t *who)
{
    bson_iter_t it, arr;
    if (!bson_iter_init_find(&it, chat, "members") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &arr))
        return false;
    while (bson_iter_next(&arr))
        if (BSON_ITER_HOLDS_OID(&arr) && bson_oid_equal(bson_iter_oid(&arr), who))
            return true;
    return false;
}

/* ---- finds --------------------------------------------------------------------------- */

int store_mongo__find_one(mongoc_collection_t *col, const bson_t *filter,
                          const bson_t *projection, bson_t *out, const char *op,
                          struct chat_err *err)
{
    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_INT64(&opts, "limit", 1);
    if (projection)
        BSON_APPEND_DOCUMENT(&opts, "projection", projection);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(col, filter, &opts, NULL);
    const bson_t *doc;
    int rc = 0;
    if (mongoc_cursor_next(cur, &doc)) {
        bson_copy_to(doc, out);
        rc = 1;
    } else {
        bson_error_t e;
        if (mongoc_cursor_error(cur, &e))
            rc = store_mongo__fail(err, op, &e);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(&opts);
    return rc;
}

int store_mongo__find_id(mongoc_collection_t *col, const bson_oid_t *id,
                         const char *const *fields, bson_t *out, const char *op,
                         struct chat_err *err)
{
    bson_t q = BSON_INITIALIZER, proj = BSON_INITIALIZER;
    BSON_APPEND_OID(&q, "_id", id);
    for (size_t i = 0; fields && fields[i]; i++)
        BSON_APPEND_INT32(&proj, fields[i], 1);
    int rc = store_mongo__find_one(col, &q, fields ? &proj : NULL, out, op, err);
    bson_destroy(&q);
    bson_destroy(&proj);
    return rc;
}

int store_mongo__find_all(mongoc_collection_t *col, const bson_t *filter, const bson_t *opts,
                          size_t max, size_t size, store_mongo_parse_cb parse, void **items,
                          size_t *n, const char *op, struct chat_err *err)
{
    *items = NULL;
    *n = 0;
    if (max == 0)
        return 0;
    char *arr = calloc(max, size);
    if (!arr)
        return store_mongo__oom(err);
    *items = arr;
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(col, filter, opts, NULL);
    const bson_t *doc;
    int rc = 0;
    while (*n < max && mongoc_cursor_next(cur, &doc)) {
        if (parse(doc, arr + *n * size)) {
            rc = store_mongo__oom(err);
            break;
        }
        (*n)++;
    }
    bson_error_t e;
    if (!rc && mongoc_cursor_error(cur, &e))
        rc = store_mongo__fail(err, op, &e);
    mongoc_cursor_destroy(cur);
    if (*n == 0) {
        free(arr);
        *items = NULL;
    }
    return rc;
}

int store_mongo__find_list(struct store_mongo *s, const char *cname, const bson_t *filter,
                           const bson_t *opts, size_t max, size_t size, store_mongo_parse_cb parse,
                           void **items, size_t *n, const char *op, struct chat_err *err)
{
    struct store_mongo_scope sc;
    *items = NULL;
    *n = 0;
    int rc = store_mongo__scope_open(s, cname, &sc, err);
    if (!rc)
        rc = store_mongo__find_all(sc.coll, filter, opts, max, size, parse, items, n, op, err);
    store_mongo__scope_close(s, &sc);
    return rc;
}

static int parse_message_cb(const bson_t *d, void *item)
{
    return store_mongo__parse_message(d, NULL, item);
}

int store_mongo__list_message_docs(struct store_mongo *s, const char *chat_id, const char *field,
                                   const char *cmp, int64_t bound, int dir, int limit,
                                   struct message_list *out, const char *op,
                                   struct chat_err *err)
{
    memset(out, 0, sizeof *out);
    bson_oid_t cid;
    if (limit <= 0 || !store_mongo__oid(chat_id, &cid))
        return 0;
    bson_t q = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    BSON_APPEND_OID(&q, "chatId", &cid);
    if (cmp)
        BCON_APPEND(&q, field, "{", cmp, BCON_INT64(bound), "}");
    int64_t max = store_mongo__limit(limit);
    BCON_APPEND(&opts, "sort", "{", field, BCON_INT32(dir), "}", "limit", BCON_INT64(max));
    void *items;
    int rc = store_mongo__find_list(s, "messages", &q, &opts, (size_t)max, sizeof(struct message),
                                    parse_message_cb, &items, &out->n, op, err);
    out->items = items;
    if (rc)
        store_message_list_cleanup(out);
    bson_destroy(&q);
    bson_destroy(&opts);
    return rc;
}
