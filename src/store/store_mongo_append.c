/* store_mongo_append.c - the MongoDB adapter's writer: group commit of
 * message appends.
 *
 * append_message copies the message into a queue and returns.  One writer
 * thread takes up to s->batch_max queued messages at a time and commits
 * them together on one pooled client: (1) one dedupe query for the whole
 * batch, (2) one findAndModify per chat for its seq numbers, (3) one ordered
 * insert_many, (4) one unordered bulk update of the chats, then (5) the
 * callbacks, in queue order, after the server acknowledged the writes
 * (w:majority on replica sets).  A few more rounds of reserve + insert are taken only when seqs
 * collide or a concurrent duplicate turns up.  Nothing of an entry leaves
 * the writer before (5), so an entry renumbered by a later round reports
 * only the seq it is stored with: the ack and the message.new event that
 * core builds from its callback cannot disagree (tests/contract/
 * test_store_mongo_seq.c forces those rounds).
 *
 * Message order: each chat keeps an allocator `seqNext`.  The writer takes
 * k numbers with one findAndModify {$inc: k}, then inserts; a crash between
 * the two leaves a gap, never a duplicate, and {chatId, seq} is unique.
 * `lastSeq`, `lastMessage` and `updatedAt` are written after the insert
 * and only forwards (`lastSeq: {$lt: seq}`), so they always name a
 * committed message even with several instances writing.
 *
 * Message dedupe: the unique index {chatId, senderId, clientKey}, where
 * clientKey is "c:<clientId>", or "i:<message id>" when the client gave
 * none (the prefixes keep a client id that happens to look like an id from
 * colliding with a message without one).
 *
 * Threads: any thread calls append_message, which touches only the queue,
 * under s->mu; the writer thread alone runs the batches, and an entry taken
 * from the queue belongs to it until its callback has run. */
#include "store_mongo_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatli/clock.h"
#include "chatli/log.h"
#include "chatli/metrics.h"

/* Queued appends at most; past it append_message answers UNAVAILABLE at
 * once (the database cannot keep up, and memory must stay bounded). */
#define WRITER_QUEUE_MAX 65536
/* Rounds of reserve + insert a batch may take: one unless seqs collide
 * (see bump_seq_next) or a concurrent duplicate is found. */
#define COMMIT_ROUNDS 8
/* Seq reservations per chat and round: each miss marks at least one sender
 * or the chat as absent, unless membership keeps changing under us. */
#define RESERVE_ATTEMPTS 4

/* One queued append.  Owned by the queue until the writer takes it, then by
 * the writer alone until its callback has run. */
struct store_mongo_item {
    struct store_mongo_item *next;
    struct message m; /* the caller's message, copied; seq set at commit */
    store_append_cb cb;
    void *arg;
    int64_t t0;     /* clock_mono_ns() at enqueue, for the metric */
    uint64_t order; /* enqueue order, which seq follows within a chat */
    /* Writer-only state. */
    bson_oid_t id, chat, sender;
    char key[80]; /* clientKey: "c:" + client id or "i:" + id */
    int rc;
    struct chat_err err;
    bool existed; /* `found` holds the first message */
    struct message found;
    struct store_mongo_item *dup_of; /* an earlier entry of this batch with the same key */
    bool inserted;
    bool need_lookup; /* insert hit a duplicate key: find the winner */
};

/* Chat groups of a batch: entries [from, to) of the chat-sorted order. */
struct group {
    size_t from, to;
};

/* What one batch's commit works with: one pooled client for the whole batch
 * (a scope on "messages") and its handle on "chats".  `err` holds the
 * details of a batch-wide failure. */
struct commit {
    struct store_mongo *s;
    struct store_mongo_scope sc;
    mongoc_collection_t *chats;
    struct chat_err err;
};

static void item_free(struct store_mongo_item *p)
{
    store_message_cleanup(&p->m);
    store_message_cleanup(&p->found);
    free(p);
}

int store_mongo__append_message(struct store *st, const struct message *m, store_append_cb cb,
                                void *arg)
{
    struct store_mongo *s = (struct store_mongo *)st;
    struct store_mongo_item *p = calloc(1, sizeof *p);
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
        item_free(p);
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

/* ---- batch bookkeeping ------------------------------------------------------- */

/* After a batch-wide failure: every entry not inserted fails, including
 * those found as duplicates (their membership may not have been checked
 * yet; a retry finds them again). */
static void fail_open(struct store_mongo_item **b, size_t n, int rc, const struct chat_err *e)
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

static bool undecided(const struct store_mongo_item *p)
{
    return !p->rc && !p->existed && !p->dup_of && !p->inserted;
}

static int cmp_item(const void *a, const void *b)
{
    const struct store_mongo_item *x = *(struct store_mongo_item *const *)a;
    const struct store_mongo_item *y = *(struct store_mongo_item *const *)b;
    int c = strcmp(x->m.chat_id, y->m.chat_id);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order; /* queue order within a chat */
}

/* Ids and dedupe keys of each entry, and duplicates inside the batch
 * itself (a later copy points to the first with dup_of). */
static void key_entries(struct store_mongo_item **b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct store_mongo_item *p = b[i];
        if (!store_mongo__oid(p->m.chat_id, &p->chat) ||
            !store_mongo__oid(p->m.sender_id, &p->sender)) {
            p->rc = chat_err_set(&p->err, CHAT_E_NOT_FOUND, NULL, "no such chat");
            continue;
        }
        if (!store_mongo__oid(p->m.id, &p->id)) {
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
            struct store_mongo_item *q = b[j];
            if (!q->rc && !q->dup_of && q->m.client_id && strcmp(q->key, p->key) == 0 &&
                strcmp(q->m.chat_id, p->m.chat_id) == 0 &&
                strcmp(q->m.sender_id, p->m.sender_id) == 0) {
                p->dup_of = q;
                break;
            }
        }
    }
}

/* Sorts the batch by chat (queue order within a chat) into `sorted` and
 * records the chat groups; returns their number. */
static size_t group_by_chat(struct store_mongo_item **b, size_t n,
                            struct store_mongo_item **sorted, struct group *groups)
{
    size_t ng = 0;
    memcpy(sorted, b, n * sizeof *b);
    qsort(sorted, n, sizeof *sorted, cmp_item);
    for (size_t i = 0; i < n; i++) {
        if (ng == 0 || strcmp(sorted[i]->m.chat_id, sorted[groups[ng - 1].from]->m.chat_id)) {
            groups[ng].from = i;
            ng++;
        }
        groups[ng - 1].to = i + 1;
    }
    return ng;
}

/* The message document as inserted (with_chat) or as a chat's lastMessage. */
static void append_message_doc(bson_t *d, const struct store_mongo_item *p,
                               const struct message *m, bool with_chat)
{
    bson_oid_t id, sender;
    bson_oid_init_from_string(&id, m->id);
    bson_oid_init_from_string(&sender, m->sender_id);
    BSON_APPEND_OID(d, "_id", &id);
    if (with_chat)
        BSON_APPEND_OID(d, "chatId", &p->chat);
    BSON_APPEND_INT64(d, "seq", m->seq);
    /* A new message's position is its seq (store_mongo_messages.c). */
    BSON_APPEND_INT64(d, "pos", m->seq);
    BSON_APPEND_OID(d, "senderId", &sender);
    BSON_APPEND_UTF8(d, "text", m->text ? m->text : "");
    store_mongo__append_str_or_null(d, "attachmentUrl", m->attachment_url);
    store_mongo__append_str_or_null(d, "clientId", m->client_id);
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

/* ---- 1. dedupe ------------------------------------------------------------------ */

/* Marks existed (with the stored message) every undecided entry whose
 * (chat, sender, key) triple is that of `doc`, a stored message. */
static int mark_existed(struct store_mongo_item **b, size_t n, const bson_t *doc,
                        struct chat_err *err)
{
    char chat[OID_SIZE], sender[OID_SIZE];
    store_mongo__get_oid_hex(doc, "chatId", chat);
    store_mongo__get_oid_hex(doc, "senderId", sender);
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, "clientKey") || !BSON_ITER_HOLDS_UTF8(&it))
        return 0;
    const char *key = bson_iter_utf8(&it, NULL);
    for (size_t i = 0; i < n; i++) {
        struct store_mongo_item *p = b[i];
        if (!undecided(p) || strcmp(p->key, key) || strcmp(p->m.chat_id, chat) ||
            strcmp(p->m.sender_id, sender))
            continue;
        if (store_mongo__parse_message(doc, NULL, &p->found))
            return store_mongo__oom(err);
        p->existed = true;
    }
    return 0;
}

/* Looks up already-stored messages with the batch's dedupe keys and marks
 * those entries existed.  One query for the whole batch, {chatId: {$in},
 * senderId: {$in}, clientKey: {$in}}, with the exact triples matched here:
 * MongoDB turns the three $in into point seeks on the dedupe index, and
 * FerretDB (which scans and filters in Go) evaluates three $in per document
 * rather than one $or arm per message, which was minutes per batch. */
static int dedupe_stored(struct commit *cm, struct store_mongo_item **b, size_t n)
{
    bson_oid_t *chats = calloc(n, sizeof *chats), *senders = calloc(n, sizeof *senders);
    const char **keys = calloc(n, sizeof *keys);
    int rc = 0;
    if (!chats || !senders || !keys) {
        rc = store_mongo__oom(&cm->err);
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
    store_mongo__append_oid_in(&q, "chatId", chats, nc);
    store_mongo__append_oid_in(&q, "senderId", senders, ns);
    BSON_APPEND_DOCUMENT_BEGIN(&q, "clientKey", &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
    for (size_t i = 0; i < nk; i++) {
        bson_uint32_to_string((uint32_t)i, &k, kb, sizeof kb);
        bson_append_utf8(&arr, k, -1, keys[i], -1);
    }
    bson_append_array_end(&in, &arr);
    bson_append_document_end(&q, &in);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(cm->sc.coll, &q, NULL, NULL);
    const bson_t *doc;
    while (!rc && mongoc_cursor_next(cur, &doc))
        rc = mark_existed(b, n, doc, &cm->err);
    bson_error_t e;
    if (!rc && mongoc_cursor_error(cur, &e))
        rc = store_mongo__fail(&cm->err, "append_message", &e);
    mongoc_cursor_destroy(cur);
    bson_destroy(&q);
out:
    free(chats);
    free(senders);
    free(keys);
    return rc;
}

/* ---- 2. seq reservation --------------------------------------------------------- */

/* Replaces *doc with chat `chat`'s members as stored now: 1 found, 0 the
 * chat is gone (*doc empty), <0 error (*doc empty). */
static int reread_members(struct commit *cm, const bson_oid_t *chat, bson_t *doc)
{
    bson_destroy(doc);
    int r = store_mongo__find_id(cm->chats, chat, (const char *const[]){"members", NULL}, doc,
                                 "append_message", &cm->err);
    if (r != 1)
        bson_init(doc);
    return r;
}

/* One findAndModify {_id: chat, members: {$all: senders}}
 * {$inc: {seqNext: k}}, the new chat into *doc (replaced).  1: the k seqs
 * below the new seqNext are ours; 0: missed (a sender is not a member, or
 * the chat is gone; *doc empty); <0: error. */
static int take_seqs(struct commit *cm, const bson_oid_t *chat, const bson_oid_t *senders,
                     size_t ns, size_t k, bson_t *doc)
{
    bson_t q = BSON_INITIALIZER, all, up = BSON_INITIALIZER;
    BSON_APPEND_OID(&q, "_id", chat);
    BSON_APPEND_DOCUMENT_BEGIN(&q, "members", &all);
    store_mongo__append_oid_array(&all, "$all", senders, ns);
    bson_append_document_end(&q, &all);
    BCON_APPEND(&up, "$inc", "{", "seqNext", BCON_INT64((int64_t)k), "}");
    /* The whole chat comes back (see store_mongo__modify_doc): seqNext and
     * members are used. */
    bson_destroy(doc);
    int r = store_mongo__modify_doc(cm->s, cm->chats, chat, &q, &up, doc, "append_message",
                                    &cm->err);
    if (r != 1)
        bson_init(doc);
    bson_destroy(&q);
    bson_destroy(&up);
    return r;
}

/* With the port's order (membership before dedupe), entries found as
 * duplicates are held to membership too: their sender must be in `doc`,
 * the chat as last read (empty when not read or gone, then read now). */
static int check_existed(struct commit *cm, struct store_mongo_item **g, size_t n,
                         const bson_oid_t *chat, bson_t *doc)
{
    bool any_existed = false;
    for (size_t i = 0; i < n; i++)
        any_existed |= g[i]->existed;
    if (!any_existed)
        return 0;
    if (bson_empty(doc)) {
        int r = reread_members(cm, chat, doc);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; i < n; i++) {
        if (g[i]->existed && !store_mongo__members_contain(doc, &g[i]->sender)) {
            g[i]->existed = false;
            store_message_cleanup(&g[i]->found);
            g[i]->rc = chat_err_set(&g[i]->err, CHAT_E_NOT_FOUND, NULL, "no such chat");
        }
    }
    return 0;
}

/* Reserves seq numbers for the undecided entries of one chat group, in
 * their order (take_seqs).  When the reservation misses, the chat is read,
 * the senders that are not members (all of them when the chat is gone) get
 * CHAT_E_NOT_FOUND, and it tries again.  With `first_round`, entries found
 * as duplicates are held to membership too (check_existed).  Returns 0 or
 * a backend error, which the caller applies to the whole batch. */
static int reserve_seqs(struct commit *cm, struct store_mongo_item **g, size_t n,
                        bool first_round)
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
        return store_mongo__oom(&cm->err);
    bson_t doc = BSON_INITIALIZER; /* the chat as last read; empty: not read, or gone */
    int rc = 0;
    for (int attempt = 0; attempt < RESERVE_ATTEMPTS; attempt++) {
        size_t k = 0, ns = 0;
        for (size_t i = 0; i < n; i++) {
            if (!undecided(g[i]))
                continue;
            k++;
            oid_set_add(senders, &ns, &g[i]->sender);
        }
        if (k == 0)
            break;
        int r = take_seqs(cm, chat, senders, ns, k, &doc);
        if (r == 1) {
            int64_t next = store_mongo__get_i64(&doc, "seqNext") - (int64_t)k + 1;
            for (size_t i = 0; i < n; i++)
                if (undecided(g[i])) {
                    g[i]->m.pos = next;
                    g[i]->m.seq = next++;
                }
            break;
        }
        /* Missed: find out who is not a member (or that the chat is gone). */
        if (r == 0)
            r = reread_members(cm, chat, &doc);
        if (r < 0) {
            rc = r;
            break;
        }
        for (size_t i = 0; i < n; i++)
            if (undecided(g[i]) && !store_mongo__members_contain(&doc, &g[i]->sender))
                g[i]->rc = chat_err_set(&g[i]->err, CHAT_E_NOT_FOUND, NULL, "no such chat");
        if (attempt == RESERVE_ATTEMPTS - 1) {
            log_warn("store mongodb append_message: seq reservation kept missing the chat");
            for (size_t i = 0; i < n; i++)
                if (undecided(g[i]))
                    g[i]->rc = chat_err_set(&g[i]->err, CHAT_E_UNAVAILABLE, NULL,
                                            "the chat is changing; try again");
        }
    }
    free(senders);
    if (!rc && first_round)
        rc = check_existed(cm, g, n, chat, &doc);
    bson_destroy(&doc);
    return rc;
}

/* ---- 3. insert ---------------------------------------------------------------------- */

/* What an insert_many reply says: its first write error (index into the
 * batch, -1 when none; server code; message, new or NULL) and whether a
 * write concern error came back. */
struct insert_result {
    int64_t err_idx, err_code;
    char *err_msg;
    bool wc_error;
};

static void read_insert_reply(const bson_t *reply, size_t k, struct insert_result *r)
{
    r->err_idx = -1;
    r->err_code = 0;
    r->err_msg = NULL;
    bson_iter_t it, arr;
    if (bson_iter_init_find(&it, reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&it) &&
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
            int64_t idx = store_mongo__get_i64(&we, "index");
            if (idx >= 0 && (size_t)idx < k && (r->err_idx < 0 || idx < r->err_idx)) {
                r->err_idx = idx;
                r->err_code = store_mongo__get_i64(&we, "code");
                free(r->err_msg);
                if (store_mongo__get_str(&we, "errmsg", &r->err_msg))
                    r->err_msg = NULL;
            }
        }
    }
    r->wc_error = bson_iter_init_find(&it, reply, "writeConcernErrors") &&
                  BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &arr) &&
                  bson_iter_next(&arr);
}

/* After an ordered insert stopped at an error: the entries behind it were
 * not attempted, so they wait for the next round with new seqs (the
 * reserved ones become gaps).  Whether they really were not inserted is
 * checked by _id, since FerretDB 1.24 honours `ordered` only within its
 * internal batches of 100 documents and goes on with the next batch
 * (msg_insert.go); whatever is found stored counts as inserted. */
static int settle_unattempted(struct commit *cm, struct store_mongo_item **who, size_t n)
{
    if (n == 0)
        return 0;
    bson_oid_t *ids = calloc(n, sizeof *ids);
    if (!ids)
        return store_mongo__oom(&cm->err);
    for (size_t j = 0; j < n; j++) {
        bson_oid_copy(&who[j]->id, &ids[j]);
        who[j]->m.seq = 0;
    }
    bson_t q = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    store_mongo__append_oid_in(&q, "_id", ids, n);
    BCON_APPEND(&opts, "projection", "{", "seq", BCON_INT32(1), "}");
    free(ids);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(cm->sc.coll, &q, &opts, NULL);
    const bson_t *doc;
    while (mongoc_cursor_next(cur, &doc)) {
        const bson_oid_t *id = store_mongo__get_oid(doc, "_id");
        for (size_t j = 0; id && j < n; j++) {
            if (bson_oid_equal(id, &who[j]->id)) {
                who[j]->m.seq = store_mongo__get_i64(doc, "seq");
                who[j]->inserted = true;
            }
        }
    }
    bson_error_t e;
    int rc = mongoc_cursor_error(cur, &e) ? store_mongo__fail(&cm->err, "append_message", &e) : 0;
    mongoc_cursor_destroy(cur);
    bson_destroy(&q);
    bson_destroy(&opts);
    return rc;
}

/* Applies the outcome of the insert_many of who[0..k): entries before the
 * first write error are committed; the one at the error is marked for
 * lookup (a duplicate key) or failed; those after it are settled by
 * settle_unattempted.  A write concern error takes "committed" back from
 * every one of them. */
static int apply_insert(struct commit *cm, struct store_mongo_item **who, size_t k,
                        const struct insert_result *r)
{
    int rc = 0;
    size_t done = r->err_idx < 0 ? k : (size_t)r->err_idx;
    for (size_t j = 0; j < done; j++)
        who[j]->inserted = true;
    if (r->err_idx >= 0) {
        struct store_mongo_item *p = who[r->err_idx];
        if (r->err_code == STORE_MONGO_DUP_KEY) {
            p->need_lookup = true;
        } else {
            bson_error_t pe;
            bson_set_error(&pe, MONGOC_ERROR_SERVER, (uint32_t)r->err_code, "%s",
                           r->err_msg ? r->err_msg : "write error on insert");
            p->rc = store_mongo__fail(&p->err, "append_message", &pe);
        }
        rc = settle_unattempted(cm, who + done + 1, k - done - 1);
    }
    if (r->wc_error) {
        /* Written on the primary but not acknowledged by a majority: it may
         * be rolled back, so it is not "committed".  A retry with the same
         * clientId finds it if it survived. */
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
    return rc;
}

/* One ordered insert_many of every undecided entry that holds a seq, in
 * chat-sorted order, then apply_insert.  Ordered, so that a chat's messages
 * commit in seq order and a retried message never lands below a later one.
 * Returns 0, or a batch-wide error when the command itself failed (no
 * server, network): none of these is known to be committed. */
static int insert_round(struct commit *cm, struct store_mongo_item **sorted, size_t n)
{
    const bson_t **docs = calloc(n, sizeof *docs);
    bson_t *bufs = calloc(n, sizeof *bufs);
    struct store_mongo_item **who = calloc(n, sizeof *who);
    int rc = 0;
    size_t k = 0;
    if (!docs || !bufs || !who) {
        rc = store_mongo__oom(&cm->err);
        goto out;
    }
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
        bson_error_t e;
        bool ok = mongoc_collection_insert_many(cm->sc.coll, docs, k, &opts, &reply, &e);
        struct insert_result r;
        read_insert_reply(&reply, k, &r);
        if (!ok && r.err_idx < 0 && !r.wc_error)
            rc = store_mongo__fail(&cm->err, "append_message", &e);
        else
            rc = apply_insert(cm, who, k, &r);
        free(r.err_msg);
        bson_destroy(&reply);
        bson_destroy(&opts);
    }
    for (size_t j = 0; j < k; j++)
        bson_destroy(&bufs[j]);
out:
    free(docs);
    free(bufs);
    free(who);
    return rc;
}

/* Moves chat `chat`'s seqNext up to its highest stored seq ($max), after a
 * seq collision: another writer took those numbers (a second instance on
 * FerretDB, whose $inc is not atomic, or a chat restored from an older
 * backup).  The next reservation then starts above them. */
static int bump_seq_next(struct commit *cm, const bson_oid_t *chat)
{
    bson_t q = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    BSON_APPEND_OID(&q, "chatId", chat);
    BCON_APPEND(&opts, "sort", "{", "seq", BCON_INT32(-1), "}", "projection", "{", "seq",
                BCON_INT32(1), "}", "limit", BCON_INT64(1));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(cm->sc.coll, &q, &opts, NULL);
    const bson_t *doc;
    int64_t max = 0;
    int rc = 0;
    if (mongoc_cursor_next(cur, &doc))
        max = store_mongo__get_i64(doc, "seq");
    bson_error_t e;
    if (mongoc_cursor_error(cur, &e))
        rc = store_mongo__fail(&cm->err, "append_message", &e);
    mongoc_cursor_destroy(cur);
    bson_destroy(&q);
    bson_destroy(&opts);
    if (rc)
        return rc;
    bson_t cq = BSON_INITIALIZER, up = BSON_INITIALIZER;
    BSON_APPEND_OID(&cq, "_id", chat);
    BCON_APPEND(&up, "$max", "{", "seqNext", BCON_INT64(max), "}");
    rc = store_mongo__update_doc(cm->s, cm->chats, chat, &cq, &up, NULL, NULL, "append_message",
                                 &cm->err);
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
static int resolve_duplicate(struct commit *cm, struct store_mongo_item *p)
{
    p->need_lookup = false;
    bson_t q = BSON_INITIALIZER, doc;
    BSON_APPEND_OID(&q, "chatId", &p->chat);
    BSON_APPEND_OID(&q, "senderId", &p->sender);
    BSON_APPEND_UTF8(&q, "clientKey", p->key);
    int r = store_mongo__find_one(cm->sc.coll, &q, NULL, &doc, "append_message", &cm->err);
    bson_destroy(&q);
    if (r < 0)
        return r;
    if (r == 1) {
        if (store_mongo__parse_message(&doc, NULL, &p->found))
            p->rc = store_mongo__oom(&p->err);
        else
            p->existed = true;
        bson_destroy(&doc);
        return 0;
    }
    r = store_mongo__find_id(cm->sc.coll, &p->id, NULL, &doc, "append_message", &cm->err);
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
    return bump_seq_next(cm, &p->chat);
}

/* ---- 4. the chats' last message ---------------------------------------------------------- */

static int cmp_uint(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return x < y ? -1 : x > y;
}

/* Adds to `bulk` the forward move of group `g`'s chat to its newest
 * committed message of this batch.  False when the group has none, or the
 * driver refused the operation (logged). */
static bool queue_chat_update(mongoc_bulk_operation_t *bulk, struct store_mongo_item **g,
                              size_t n, const bson_oid_t **chat)
{
    const struct store_mongo_item *best = NULL;
    const struct message *bm = NULL;
    for (size_t i = 0; i < n; i++) {
        const struct message *m = g[i]->inserted ? &g[i]->m : g[i]->existed ? &g[i]->found : NULL;
        if (g[i]->rc || !m)
            continue;
        if (!bm || m->seq > bm->seq) {
            best = g[i];
            bm = m;
        }
    }
    if (!bm)
        return false;
    bson_t q = BSON_INITIALIZER, up = BSON_INITIALIZER, set, last;
    BCON_APPEND(&q, "_id", BCON_OID(&best->chat), "lastSeq", "{", "$lt", BCON_INT64(bm->seq), "}");
    BSON_APPEND_DOCUMENT_BEGIN(&up, "$set", &set);
    BSON_APPEND_INT64(&set, "lastSeq", bm->seq);
    BSON_APPEND_DOCUMENT_BEGIN(&set, "lastMessage", &last);
    append_message_doc(&last, best, bm, false);
    bson_append_document_end(&set, &last);
    BSON_APPEND_DATE_TIME(&set, "updatedAt", bm->created_at);
    bson_append_document_end(&up, &set);
    bson_error_t e;
    bool ok = mongoc_bulk_operation_update_one_with_opts(bulk, &q, &up, NULL, &e);
    if (!ok)
        log_error("store mongodb append_message: bulk update: %s", e.message);
    *chat = &best->chat;
    bson_destroy(&q);
    bson_destroy(&up);
    return ok;
}

/* Runs `bulk` holding the stripe locks locks[0..nl) (see the document locks
 * in store_mongo_conn.c): each once, in ascending order. */
static void execute_locked(struct store_mongo *s, mongoc_bulk_operation_t *bulk,
                           unsigned *locks, size_t nl)
{
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
        metrics_error(store_mongo__code_of(&e) == CHAT_E_UNAVAILABLE ? "unavailable"
                                                                      : "internal");
    }
    bson_destroy(&reply);
}

/* Moves each chat's lastSeq / lastMessage / updatedAt to its newest
 * committed message of this batch, only forwards.  One unordered bulk write.
 * The messages are committed already, so a failure here is logged, not
 * reported: the next message of the chat (or a retry of this one, which
 * finds it as a duplicate and comes back here) moves the chat forwards. */
static void update_chats(struct commit *cm, struct store_mongo_item **sorted,
                         const struct group *groups, size_t ng)
{
    struct store_mongo *s = cm->s;
    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_BOOL(&opts, "ordered", false);
    mongoc_bulk_operation_t *bulk =
        mongoc_collection_create_bulk_operation_with_opts(cm->chats, &opts);
    unsigned *locks = calloc(ng ? ng : 1, sizeof *locks);
    size_t ops = 0, nl = 0;
    for (size_t gi = 0; gi < ng; gi++) {
        const bson_oid_t *chat;
        if (!queue_chat_update(bulk, sorted + groups[gi].from, groups[gi].to - groups[gi].from,
                               &chat))
            continue;
        ops++;
        if (locks)
            locks[nl++] = store_mongo__stripe_of(chat);
    }
    if (ops && s->rmw_locks && !locks) {
        log_error("store mongodb append_message: out of memory for chat locks");
        ops = 0; /* cannot update safely; the next message repairs the chats */
    }
    if (ops)
        execute_locked(s, bulk, locks, nl);
    free(locks);
    mongoc_bulk_operation_destroy(bulk);
    bson_destroy(&opts);
}

/* ---- the batch --------------------------------------------------------------------- */

/* Steps 1 to 4 on the commit's client.  Returns the batch-wide failure
 * code, if any. */
static int run_rounds(struct commit *cm, struct store_mongo_item **b,
                      struct store_mongo_item **sorted, size_t n, const struct group *groups,
                      size_t ng)
{
    int brc = dedupe_stored(cm, b, n);
    for (int round = 0; !brc && round < COMMIT_ROUNDS; round++) {
        for (size_t gi = 0; !brc && gi < ng; gi++) {
            bool need = round == 0;
            for (size_t i = groups[gi].from; i < groups[gi].to && !need; i++)
                need = undecided(sorted[i]);
            if (need)
                brc = reserve_seqs(cm, sorted + groups[gi].from, groups[gi].to - groups[gi].from,
                                   round == 0);
        }
        if (!brc)
            brc = insert_round(cm, sorted, n);
        for (size_t i = 0; !brc && i < n; i++)
            if (sorted[i]->need_lookup)
                brc = resolve_duplicate(cm, sorted[i]);
        bool open = false;
        for (size_t i = 0; i < n; i++)
            open |= undecided(sorted[i]);
        if (!open)
            break;
    }
    if (brc)
        return brc;
    for (size_t i = 0; i < n; i++) {
        if (!undecided(b[i]))
            continue;
        log_warn("store mongodb append_message: no free seq after %d rounds", COMMIT_ROUNDS);
        b[i]->rc = chat_err_set(&b[i]->err, CHAT_E_UNAVAILABLE, NULL,
                                "the chat is busy; try again");
    }
    update_chats(cm, sorted, groups, ng);
    return 0;
}

/* Step 5: each entry's callback, in queue order.  A duplicate inside the
 * batch answers as its first copy did, with existed set. */
static void complete(struct store_mongo_item **b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct store_mongo_item *p = b[i];
        const struct store_mongo_item *src = p->dup_of ? p->dup_of : p;
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
}

/* Commits one batch (entries in queue order) and runs the callbacks.
 * Returns the batch-wide failure code, if any (so the writer can fail the
 * queue behind it fast while the database is down). */
static int commit_batch(struct store_mongo *s, struct store_mongo_item **b, size_t n)
{
    struct commit cm = {.s = s};
    key_entries(b, n);
    struct store_mongo_item **sorted = calloc(n, sizeof *sorted);
    struct group *groups = calloc(n, sizeof *groups);
    int brc;
    if (!sorted || !groups) {
        brc = store_mongo__oom(&cm.err);
    } else {
        size_t ng = group_by_chat(b, n, sorted, groups);
        brc = store_mongo__scope_open(s, "messages", &cm.sc, &cm.err);
        if (!brc) {
            cm.chats = store_mongo__coll(s, &cm.sc, "chats");
            brc = run_rounds(&cm, b, sorted, n, groups, ng);
            mongoc_collection_destroy(cm.chats);
        }
        store_mongo__scope_close(s, &cm.sc);
    }
    if (brc)
        fail_open(b, n, brc, &cm.err);
    store__completions_begin(&s->base);
    complete(b, n);
    store__completions_end(&s->base);
    free(sorted);
    free(groups);
    return brc;
}

/* ---- the writer thread ------------------------------------------------------------- */

/* While the database is down, what queued behind a failed batch would wait
 * a full serverSelectionTimeoutMS per batch: fail it now (called with
 * s->mu held, returns with it held).  Clients retry, with their clientId,
 * so nothing doubles. */
static void fail_queue(struct store_mongo *s)
{
    struct store_mongo_item *q = s->head;
    s->head = s->tail = NULL;
    s->queued = 0;
    pthread_mutex_unlock(&s->mu);
    struct chat_err e;
    chat_err_set(&e, CHAT_E_UNAVAILABLE, NULL, "the database is unavailable");
    while (q) {
        struct store_mongo_item *next = q->next;
        q->cb(q->arg, CHAT_E_UNAVAILABLE, &q->m, false, &e);
        store__observe("append_message", q->t0);
        item_free(q);
        q = next;
    }
    pthread_mutex_lock(&s->mu);
}

static void *writer_main(void *arg)
{
    struct store_mongo *s = arg;
    struct store_mongo_item **b = s->batch;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->closing)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->head)
            break; /* closing, and the queue is drained */
        size_t n = 0;
        while (s->head && n < s->batch_max) {
            struct store_mongo_item *p = s->head;
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
            item_free(b[i]);
        pthread_mutex_lock(&s->mu);
        if (brc == CHAT_E_UNAVAILABLE && s->head)
            fail_queue(s);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int store_mongo__append_start(struct store_mongo *s, struct chat_err *err)
{
    s->batch = calloc(STORE_MONGO_BATCH_MAX, sizeof *s->batch);
    if (!s->batch)
        return store_mongo__oom(err);
    if (pthread_create(&s->writer, NULL, writer_main, s)) {
        free(s->batch);
        s->batch = NULL;
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, "cannot start the writer thread");
    }
    return 0;
}

void store_mongo__append_stop(struct store_mongo *s)
{
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    /* The writer drains the queue (every queued append gets its callback)
     * before it exits. */
    pthread_join(s->writer, NULL);
    free(s->batch);
    s->batch = NULL;
}
