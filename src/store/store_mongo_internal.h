/* store_mongo_internal.h - what the files of the MongoDB adapter share.
 *
 * The adapter is split by resource, like the SQLite one, and its files call
 * one way only (top to bottom; scripts/check-calls.py checks it):
 * - store_mongo.c: open/close/ping, pool settings, topology, indexes and the
 *   ops table; it references every file below.
 * - store_mongo_users.c (users, sessions), store_mongo_posts.c (posts,
 *   likes, comments), store_mongo_chats.c (chats, members, contacts, read
 *   marks, message reads), store_mongo_messages.c (message edits,
 *   deletions, catch-up by position), store_mongo_account.c (revoking a
 *   user's sessions, account deletion) and store_mongo_append.c (the
 *   group-commit writer thread): the operations.  None calls another.
 * - store_mongo_conn.c: the client/collection scope, the bson_error_t ->
 *   CHAT_E_* mapping, the document locks and the shared BSON readers and
 *   writers; it calls nothing above it.
 * Nothing here is visible outside src/store/store_mongo*.c. */
#ifndef CHATLI_STORE_STORE_MONGO_INTERNAL_H
#define CHATLI_STORE_STORE_MONGO_INTERNAL_H

#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatli/store.h"

/* Stripes of the per-document locks (store_mongo_conn.c). */
#define STORE_MONGO_LOCK_STRIPES 64
/* Messages the writer commits together at most.  insert_many splits larger
 * batches itself, but a bounded batch bounds the callback latency of its
 * last one. */
#define STORE_MONGO_BATCH_MAX 512
/* FerretDB 1.24 stops an ordered insert at an error only within its own
 * batches of 100 documents (see settle_unattempted() in
 * store_mongo_append.c): the writer commits at most that many at once
 * there, so that a chat's messages still commit in seq order when a round
 * is cut short. */
#define STORE_MONGO_FERRETDB_BATCH_MAX 100
/* The server's code for a duplicate key. */
#define STORE_MONGO_DUP_KEY 11000

struct store_mongo_item; /* a queued append (store_mongo_append.c) */

/* The adapter.  Threads: any thread calls the ops; the writer thread
 * (store_mongo_append.c) runs the batches.
 * - pool, uri, db, wc, pool_max, rmw_locks, batch_max: set in open,
 *   immutable until close.  The pool is thread-safe; each client popped
 *   from it belongs to one thread until pushed back (the scope below).
 * - stripes[] serialise updates of one chat or post document within this
 *   process, only when rmw_locks is set (store_mongo__update_doc).
 * - mu guards head, tail, queued, enqueued and closing; cv wakes the
 *   writer.
 * - writer is touched only by open and close; batch only by the writer. */
struct store_mongo {
    struct store base; /* first: the port sees only this */
    mongoc_client_pool_t *pool;
    mongoc_uri_t *uri;
    char *db;
    mongoc_write_concern_t *wc; /* NULL: the URI's (or the default) */
    int32_t pool_max;
    bool rmw_locks; /* the server updates by read-then-replace (FerretDB) */
    pthread_mutex_t stripes[STORE_MONGO_LOCK_STRIPES];

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct store_mongo_item *head, *tail;
    size_t queued;
    uint64_t enqueued; /* appends accepted so far: the next `order` */
    bool closing;
    pthread_t writer;
    struct store_mongo_item **batch; /* STORE_MONGO_BATCH_MAX slots */
    size_t batch_max; /* messages per commit: STORE_MONGO_BATCH_MAX, or
                         STORE_MONGO_FERRETDB_BATCH_MAX on FerretDB */
};

/* ---- store_mongo_conn.c: scope and errors ---- */

/* Pooled clients checked out right now, over every open store (the
 * chatli_store_pool_in_use gauge). */
extern atomic_llong store_mongo__pool_in_use;

/* A pooled client and, optionally, one of its collections (with the store's
 * write concern).  Between scope_open and scope_close the client belongs to
 * the calling thread alone: a mongoc_client_t is single-threaded. */
struct store_mongo_scope {
    mongoc_client_t *client;
    mongoc_collection_t *coll; /* NULL when opened without a collection */
};

/* Pops a client, waiting at most waitQueueTimeoutMS, and gets collection
 * `name` (NULL: none, for commands).  0, or CHAT_E_UNAVAILABLE with `err`
 * set ("the database is busy") when the pool stays exhausted; then *sc is
 * empty.  Always pair with store_mongo__scope_close, which accepts an empty
 * scope. */
int store_mongo__scope_open(struct store_mongo *s, const char *name, struct store_mongo_scope *sc,
                            struct chat_err *err);
void store_mongo__scope_close(struct store_mongo *s, struct store_mongo_scope *sc);
/* Another collection on the scope's client: new, mongoc_collection_destroy
 * it before the scope closes.  Never NULL (the driver aborts on OOM). */
mongoc_collection_t *store_mongo__coll(struct store_mongo *s, const struct store_mongo_scope *sc,
                                       const char *name);

/* The port code for a driver error: CHAT_E_UNAVAILABLE when the database
 * is unreachable, not primary, shutting down or refusing us (it may work
 * later), else CHAT_E_INTERNAL. */
int store_mongo__code_of(const bson_error_t *e);
/* Logs the driver's text (with `op`, a literal naming the operation),
 * counts the error and fills `err` with a client-safe text.  Returns the
 * port code. */
int store_mongo__fail(struct chat_err *err, const char *op, const bson_error_t *e);
int store_mongo__oom(struct chat_err *err);
/* A duplicate key error (a unique index fired). */
bool store_mongo__is_dup(const bson_error_t *e);

/* ---- store_mongo_conn.c: document locks and single-document writes ---- */

/* The stripe of document `id` (see the document locks in
 * store_mongo_conn.c). */
unsigned store_mongo__stripe_of(const bson_oid_t *id);
/* One update_one of the chat or post `id` (filter `q` names it), under its
 * stripe lock on FerretDB.  *matched and *modified (each may be NULL) from
 * the reply.  0 or a port code. */
int store_mongo__update_doc(struct store_mongo *s, mongoc_collection_t *col, const bson_oid_t *id,
                            const bson_t *q, const bson_t *up, int64_t *matched,
                            int64_t *modified, const char *op, struct chat_err *err);
/* One findAndModify of the chat or post `id` (filter `q`, update `up`),
 * under its stripe lock on FerretDB, returning the new document into
 * *value (new: bson_destroy it).  1 when matched, 0 when not (then *value
 * is untouched), <0 on error. */
int store_mongo__modify_doc(struct store_mongo *s, mongoc_collection_t *col, const bson_oid_t *id,
                            const bson_t *q, const bson_t *up, bson_t *value, const char *op,
                            struct chat_err *err);
/* insert_one of `doc` into `cname` in its own scope.  0 or a port code. */
int store_mongo__insert_one(struct store_mongo *s, const char *cname, const bson_t *doc,
                            const char *op, struct chat_err *err);

/* ---- store_mongo_conn.c: BSON writers ---- */

/* *o = the ObjectId of 24-hex `hex`; false when hex is NULL or no id. */
bool store_mongo__oid(const char *hex, bson_oid_t *o);
void store_mongo__append_str_or_null(bson_t *b, const char *key, const char *v);
/* key: [ids...] */
void store_mongo__append_oid_array(bson_t *b, const char *key, const bson_oid_t *ids, size_t n);
/* field: {$in: [ids...]} */
void store_mongo__append_oid_in(bson_t *b, const char *field, const bson_oid_t *ids, size_t n);
/* A caller's page size capped at 1000 items, whatever `limit` says. */
int64_t store_mongo__limit(int limit);
/* Completes a newest-first (ts_field, _id) page query: `filter` gets the
 * condition after `before` (when not NULL),
 * $or: [{ts: {$lt: before.ts}}, {ts: before.ts, _id: {$lt: before.id}}],
 * and `opts` gets sort {ts: -1, _id: -1} and limit `max`.  0, or
 * CHAT_E_VALIDATION ("before": invalid cursor) when before.id is no id. */
int store_mongo__page(bson_t *filter, bson_t *opts, const char *ts_field,
                      const struct page_key *before, int64_t max, struct chat_err *err);

/* ---- store_mongo_conn.c: BSON readers (absent or mistyped fields read as
 * empty: only this adapter writes the documents) ---- */

/* *out = new copy of a string field, NULL when absent or null.  -1 on OOM. */
int store_mongo__get_str(const bson_t *d, const char *key, char **out);
/* Like store_mongo__get_str but never NULL: "" when absent. */
int store_mongo__get_str_nn(const bson_t *d, const char *key, char **out);
/* An integer or date field; 0 when absent. */
int64_t store_mongo__get_i64(const bson_t *d, const char *key);
/* An ObjectId field (borrowed from `d`), NULL when absent. */
const bson_oid_t *store_mongo__get_oid(const bson_t *d, const char *key);
/* An ObjectId field as hex; "" when absent. */
void store_mongo__get_oid_hex(const bson_t *d, const char *key, char out[OID_SIZE]);
/* A sub-document as a static bson_t (borrowed from `d`). */
bool store_mongo__get_doc(const bson_t *d, const char *key, bson_t *out);
/* A message document, or a chat's lastMessage (which has no chatId: pass
 * the chat's id as `chat_hex`).  -1 on OOM (then `m` holds nothing). */
int store_mongo__parse_message(const bson_t *d, const char *chat_hex, struct message *m);
/* Whether `who` is in the chat document's members. */
bool store_mongo__members_contain(const bson_t *chat, const bson_oid_t *who);

/* ---- store_mongo_conn.c: finds ---- */

/* Parses one document into `item`; -1 on OOM (then `item` holds nothing). */
typedef int (*store_mongo_parse_cb)(const bson_t *doc, void *item);

/* Finds one document of `col` (with `projection` when not NULL): 1 when
 * found (copied into *out: new, bson_destroy it), 0 when none, <0 on
 * error. */
int store_mongo__find_one(mongoc_collection_t *col, const bson_t *filter,
                          const bson_t *projection, bson_t *out, const char *op,
                          struct chat_err *err);
/* store_mongo__find_one by _id, projected on the NULL-terminated `fields`
 * (all fields when `fields` is NULL). */
int store_mongo__find_id(mongoc_collection_t *col, const bson_oid_t *id,
                         const char *const *fields, bson_t *out, const char *op,
                         struct chat_err *err);
/* Runs a find and parses each document into a new array of `size`-byte
 * items, at most `max`; *items is NULL when *n is 0.  On failure *items
 * holds the *n items parsed so far (the caller's list cleanup releases
 * them). */
int store_mongo__find_all(mongoc_collection_t *col, const bson_t *filter, const bson_t *opts,
                          size_t max, size_t size, store_mongo_parse_cb parse, void **items,
                          size_t *n, const char *op, struct chat_err *err);
/* store_mongo__find_all on collection `cname`, in its own scope. */
int store_mongo__find_list(struct store_mongo *s, const char *cname, const bson_t *filter,
                           const bson_t *opts, size_t max, size_t size, store_mongo_parse_cb parse,
                           void **items, size_t *n, const char *op, struct chat_err *err);
/* Lists into `out` the messages of chat `chat_id` whose `field` is `cmp`
 * ("$gt", "$lt"; NULL: any) `bound`, sorted by `field` (`dir` 1 or -1), at
 * most `limit` (clamped); none for a limit <= 0 or a chat id that does not
 * parse.  0 or a port code (then `out` is empty). */
int store_mongo__list_message_docs(struct store_mongo *s, const char *chat_id, const char *field,
                                   const char *cmp, int64_t bound, int dir, int limit,
                                   struct message_list *out, const char *op,
                                   struct chat_err *err);

/* ---- the operations (one file per resource), in the ops table ---- */

int store_mongo__create_user(struct store *st, const struct user *u, struct chat_err *err);
int store_mongo__get_user(struct store *st, const char *id, struct user *out,
                          struct chat_err *err);
int store_mongo__find_user_by_login(struct store *st, const char *login, struct user *out,
                                    struct chat_err *err);
int store_mongo__get_users(struct store *st, const char (*ids)[OID_SIZE], size_t n,
                           struct user_list *out, struct chat_err *err);
int store_mongo__update_user(struct store *st, const struct user *u, struct chat_err *err);
int store_mongo__update_user_pwhash(struct store *st, const char *id, const char *pwhash,
                                    struct chat_err *err);
int store_mongo__search_users(struct store *st, const char *prefix, const char *after, int limit,
                              struct user_list *out, struct chat_err *err);
int store_mongo__create_session(struct store *st, const uint8_t hash[32], const char *user_id,
                                int64_t expires_at, struct chat_err *err);
int store_mongo__get_session(struct store *st, const uint8_t hash[32], char user_id[OID_SIZE],
                             int64_t *expires_at, struct chat_err *err);
int store_mongo__delete_session(struct store *st, const uint8_t hash[32], struct chat_err *err);

int store_mongo__create_post(struct store *st, const struct post *p, struct chat_err *err);
int store_mongo__get_post(struct store *st, const char *id, const char *viewer_id,
                          struct post *out, struct chat_err *err);
int store_mongo__list_posts(struct store *st, const char *author_id, const char *viewer_id,
                            const struct page_key *before, int limit, struct post_list *out,
                            struct chat_err *err);
int store_mongo__update_post(struct store *st, const struct post *p, struct chat_err *err);
int store_mongo__delete_post(struct store *st, const char *id, struct chat_err *err);
int store_mongo__set_like(struct store *st, const char *post_id, const char *user_id, bool liked,
                          int64_t *like_count, struct chat_err *err);
int store_mongo__create_comment(struct store *st, const struct comment *c, struct chat_err *err);
int store_mongo__list_comments(struct store *st, const char *post_id,
                               const struct page_key *before, int limit, struct comment_list *out,
                               struct chat_err *err);

int store_mongo__create_chat(struct store *st, const struct chat *c, struct chat *out,
                             bool *existed, struct chat_err *err);
int store_mongo__get_chat(struct store *st, const char *id, const char *viewer_id,
                          struct chat *out, struct chat_err *err);
int store_mongo__list_chats(struct store *st, const char *user_id, const struct page_key *before,
                            int limit, struct chat_list *out, struct chat_err *err);
int store_mongo__is_member(struct store *st, const char *chat_id, const char *user_id,
                           struct chat_err *err);
int store_mongo__list_contacts(struct store *st, const char *user_id, size_t max,
                               char (**out)[OID_SIZE], size_t *n_out, bool *truncated,
                               struct chat_err *err);
int store_mongo__add_member(struct store *st, const char *chat_id, const char *user_id,
                            bool *added, struct chat_err *err);
int store_mongo__rename_chat(struct store *st, const char *chat_id, const char *name,
                             struct chat_err *err);
int store_mongo__remove_member(struct store *st, const char *chat_id, const char *user_id,
                               bool *removed, struct chat_err *err);
int store_mongo__list_messages(struct store *st, const char *chat_id, int64_t before_seq,
                               int limit, struct message_list *out, struct chat_err *err);
int store_mongo__list_messages_after(struct store *st, const char *chat_id, int64_t after_seq,
                                     int limit, struct message_list *out, struct chat_err *err);
int store_mongo__set_read(struct store *st, const char *chat_id, const char *user_id,
                          const char *message_id, bool *moved, struct chat_err *err);
/* Account lifecycle and read receipts (issue 13). */
int store_mongo__set_read_seq(struct store *st, const char *chat_id, const char *user_id,
                              const char *message_id, bool *moved, int64_t *seq,
                              struct chat_err *err);
int store_mongo__delete_user_sessions(struct store *st, const char *user_id,
                                      const uint8_t keep[32], uint8_t (**hashes)[32], size_t *n,
                                      struct chat_err *err);
int store_mongo__delete_user(struct store *st, const struct user *anon,
                             char (**groups)[OID_SIZE], size_t *n_groups, struct chat_err *err);

/* store_mongo_messages.c: message edits, deletions, catch-up by position. */
int store_mongo__get_message(struct store *st, const char *chat_id, const char *message_id,
                             struct message *out, struct chat_err *err);
int store_mongo__change_message(struct store *st, const char *chat_id, const char *message_id,
                                const char *text, int64_t at, struct message *out, bool *changed,
                                struct chat_err *err);
int store_mongo__list_changes_after(struct store *st, const char *chat_id, int64_t after_pos,
                                    int limit, struct message_list *out, struct chat_err *err);
/* Gives every message document stored before edits existed its `pos`
 * (= seq), at open.  0 or a port code. */
int store_mongo__backfill_pos(struct store_mongo *s, struct chat_err *err);
/* store_mongo_append.c */
/* Allocates the batch and starts the writer thread.  0 or a port code. */
int store_mongo__append_start(struct store_mongo *s, struct chat_err *err);
/* Refuses new appends, lets the writer drain the queue (every queued
 * append gets its callback), joins it. */
void store_mongo__append_stop(struct store_mongo *s);
int store_mongo__append_message(struct store *st, const struct message *m, store_append_cb cb,
                                void *arg);

#endif
