/* store_sqlite_internal.h - what the files of the SQLite adapter share.
 *
 * The adapter is split by domain, and its files call each other in one
 * direction, top to bottom:
 * - store_sqlite.c: open/close, ping, migrations and the ops table, which
 *   names every operation below;
 * - the operations, which never call each other: store_sqlite_users.c
 *   (users, sessions), store_sqlite_posts.c (posts, likes, comments),
 *   store_sqlite_chats.c (chats, members, read marks, message reads),
 *   store_sqlite_messages.c (message edits, deletions, catch-up),
 *   store_sqlite_account.c (revoking a user's sessions, account deletion) and
 *   store_sqlite_append.c (the group-commit writer thread) and
 *   store_sqlite_checkpoint.c (WAL checkpoints off the writer);
 * - store_sqlite_conn.c: the plumbing they all use (connections, the read
 *   pool, cached statements, error mapping, step and row helpers), which
 *   calls nothing above it.
 * Nothing here is visible outside src/store/store_sqlite*.c. */
#ifndef CHATLI_STORE_STORE_SQLITE_INTERNAL_H
#define CHATLI_STORE_STORE_SQLITE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "chatli/store.h"

/* Every statement the adapter runs has a slot here, so each connection can
 * keep it prepared for its lifetime (store_sqlite__prepare prepares it on
 * first use).  The SQL text sits beside the code that runs it. */
enum store_sqlite_stmt_id {
    STORE_SQLITE_BEGIN,
    STORE_SQLITE_BEGIN_IMMEDIATE,
    STORE_SQLITE_COMMIT,
    STORE_SQLITE_ROLLBACK,
    STORE_SQLITE_PING,
    /* users, sessions */
    STORE_SQLITE_USER_EMAIL_EXISTS,
    STORE_SQLITE_USER_NAME_EXISTS,
    STORE_SQLITE_USER_INSERT,
    STORE_SQLITE_USER_GET,
    STORE_SQLITE_USER_BY_LOGIN,
    STORE_SQLITE_USERS_GET_MANY,
    STORE_SQLITE_USER_UPDATE,
    STORE_SQLITE_USER_PWHASH,
    STORE_SQLITE_USERS_SEARCH,
    STORE_SQLITE_SESSION_INSERT,
    STORE_SQLITE_SESSION_GET,
    STORE_SQLITE_SESSION_DELETE,
    /* posts, likes, comments */
    STORE_SQLITE_POST_INSERT,
    STORE_SQLITE_POST_GET,
    STORE_SQLITE_POST_KEY,
    STORE_SQLITE_POSTS_LIST,
    STORE_SQLITE_POSTS_LIST_AUTHOR,
    STORE_SQLITE_POST_DELETE,
    STORE_SQLITE_POST_UPDATE,
    STORE_SQLITE_LIKES_DELETE_POST,
    STORE_SQLITE_COMMENTS_DELETE_POST,
    STORE_SQLITE_LIKE_INSERT,
    STORE_SQLITE_LIKE_DELETE,
    STORE_SQLITE_POST_LIKES_ADD,
    STORE_SQLITE_POST_LIKE_COUNT,
    STORE_SQLITE_COMMENT_INSERT,
    STORE_SQLITE_POST_COMMENTS_INC,
    STORE_SQLITE_COMMENTS_LIST,
    /* chats, members, reads */
    STORE_SQLITE_CHAT_BY_PAIR,
    STORE_SQLITE_CHAT_INSERT,
    STORE_SQLITE_CHAT_KEY,
    STORE_SQLITE_USER_KEY,
    STORE_SQLITE_MEMBER_INSERT,
    STORE_SQLITE_MEMBER_DELETE,
    STORE_SQLITE_CHAT_RENAME,
    STORE_SQLITE_CHAT_GET_VIEWER,
    STORE_SQLITE_CHAT_GET_ANY,
    STORE_SQLITE_CHATS_LIST,
    STORE_SQLITE_CHAT_MEMBERS,
    STORE_SQLITE_CHATS_MEMBERS_MANY,
    STORE_SQLITE_IS_MEMBER,
    STORE_SQLITE_CONTACTS,
    STORE_SQLITE_MSG_SEQ_BY_ID,
    STORE_SQLITE_READ_MARK_SET,
    STORE_SQLITE_MEMBER_OF,
    STORE_SQLITE_MSGS_BEFORE,
    STORE_SQLITE_MSGS_AFTER,
    /* group commit */
    STORE_SQLITE_APPEND_CHAT,
    STORE_SQLITE_APPEND_MEMBER,
    STORE_SQLITE_APPEND_DEDUPE,
    STORE_SQLITE_APPEND_INSERT,
    STORE_SQLITE_APPEND_BUMP,
    /* message edits and deletions */
    STORE_SQLITE_MSG_GET,
    STORE_SQLITE_MSG_TAKE_POS,
    STORE_SQLITE_MSG_EDIT,
    STORE_SQLITE_MSG_DELETE,
    STORE_SQLITE_MSGS_CHANGED,
    STORE_SQLITE_MSGS_NEW_AFTER,
    STORE_SQLITE__COUNT
};

/* One SQLite connection and its cached statements.  Used by one thread at a
 * time: the write connection under `wmu`, a read connection between
 * store_sqlite__read_acquire and store_sqlite__read_release. */
struct store_sqlite_conn {
    sqlite3 *db;
    sqlite3_stmt *stmts[STORE_SQLITE__COUNT];
};

#define STORE_SQLITE_POOL_MAX 8      /* read connections per store */
#define STORE_SQLITE_BATCH_MAX 256   /* appends per group-commit transaction */

struct store_sqlite_item; /* a queued append (store_sqlite_append.c) */

/* The adapter.  Threads: any thread calls the ops; the writer thread drains
 * the append queue.
 * - `uri`, `open_flags`, `memory` are immutable after open.
 * - `w` (the only write connection) is guarded by `wmu`, taken by
 *   store_sqlite__write_lock: direct writes (create_user, set_like, ...) and
 *   the writer's batches both lock it.  The checkpointer thread also takes
 *   `wmu` (without touching `w`) to hold every writer between two
 *   transactions while it lets the WAL start over.
 * - `rpool`, `rfree`, `n_free`, `n_open` are guarded by `pmu` (touched only
 *   in store_sqlite_conn.c); `pcv` signals a released connection.  A
 *   connection taken from the pool belongs to its taker until released.
 * - `head`, `tail`, `closing` are guarded by `qmu`; `qcv` wakes the writer
 *   (store_sqlite_append.c).
 * - `writer`, `writer_started` are touched only by open and close.
 * - `ck` (the checkpointer's connection) belongs to the checkpointer
 *   thread; `ck_mark` and `wal_len` are the WAL hook's, under `wmu`; `ck_due`,
 *   `ck_stop` are guarded by `ckmu`, `ckcv` wakes the
 *   thread; `ck_thread`, `ck_started`, `ck_init` are touched only by open
 *   and close (store_sqlite_checkpoint.c).
 * For ":memory:" the write connection, open for the store's whole life,
 * is what keeps the shared in-memory database alive. */
struct store_sqlite {
    struct store base; /* first: the port sees only this */
    char *uri;         /* what sqlite3_open_v2 gets */
    int open_flags;
    bool memory;

    pthread_mutex_t wmu;
    struct store_sqlite_conn w;

    pthread_mutex_t pmu;
    pthread_cond_t pcv;
    struct store_sqlite_conn rpool[STORE_SQLITE_POOL_MAX];
    int rfree[STORE_SQLITE_POOL_MAX];
    int n_free, n_open;

    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    struct store_sqlite_item *head, *tail;
    bool closing;
    pthread_t writer;
    bool writer_started;

    pthread_mutex_t ckmu;
    pthread_cond_t ckcv;
    struct store_sqlite_conn ck;
    bool ck_due, ck_stop;
    int ck_mark;       /* WAL pages when the thread was last woken (under wmu) */
    int wal_len;       /* WAL pages after the last commit (under wmu, for metrics) */
    pthread_t ck_thread;
    bool ck_started, ck_init;
};

/* ---- store_sqlite_conn.c: the plumbing every other file calls ---- */

/* The read pool's part of open and close.  init sets up `pmu` and `pcv`,
 * counts the pool in the process-wide gauges (registering them on first
 * use); cleanup closes the read connections opened so far and undoes init.
 * Called once each, with no other thread using the store. */
void store_sqlite__pool_init(struct store_sqlite *s);
void store_sqlite__pool_cleanup(struct store_sqlite *s);

/* Opens `c` on s->uri and configures it: WAL (on a file) and a larger page
 * cache for the writer, query_only for a reader, synchronous=NORMAL for
 * both.  0, or CHAT_E_UNAVAILABLE after logging (then `c` is closed). */
int store_sqlite__conn_open(struct store_sqlite *s, struct store_sqlite_conn *c, bool writer,
                            struct chat_err *err);
/* Finalizes the cached statements and closes the database; a closed or
 * zeroed `c` is fine. */
void store_sqlite__conn_close(struct store_sqlite_conn *c);

/* Takes a read connection (waiting while all STORE_SQLITE_POOL_MAX are busy, opening
 * one lazily).  NULL (and CHAT_E_UNAVAILABLE in err) when it cannot open. */
struct store_sqlite_conn *store_sqlite__read_acquire(struct store_sqlite *s, struct chat_err *err);
/* Gives it back; rolls back a transaction left open. */
void store_sqlite__read_release(struct store_sqlite *s, struct store_sqlite_conn *c);

/* Locks `wmu` and returns the write connection; unlock rolls back whatever
 * transaction the caller left open, then unlocks. */
struct store_sqlite_conn *store_sqlite__write_lock(struct store_sqlite *s);
void store_sqlite__write_unlock(struct store_sqlite *s);

/* Logs sqlite's message for `rc` on `c` (with `what`, a literal naming the
 * operation), rolls back an open transaction, and maps rc to a port code:
 * CHAT_E_UNAVAILABLE for busy/locked/IO/full/cantopen/readonly/nomem/
 * protocol/nolfs, CHAT_E_INTERNAL otherwise.  Fills `err` with the default
 * text.  Every helper below fails through it. */
int store_sqlite__fail(struct store_sqlite_conn *c, int rc, const char *what, struct chat_err *err);

/* Sets *q to the cached statement `id` of `c`, prepared from `sql` on first
 * use.  0, or a port code (store_sqlite__fail) with *q NULL.  The statement
 * is borrowed from `c`: bind it, step it, then reset it with
 * store_sqlite__done before the connection is given back. */
int store_sqlite__prepare(struct store_sqlite_conn *c, enum store_sqlite_stmt_id id,
                          const char *sql, sqlite3_stmt **q, struct chat_err *err);

/* Resets `st` and clears its bindings (so no pointer bound with
 * SQLITE_STATIC outlives its buffer).  NULL is fine. */
void store_sqlite__done(sqlite3_stmt *st);

/* The step helpers.  None resets the statement except store_sqlite__exec;
 * a failure has been through store_sqlite__fail (logged, rolled back,
 * mapped), with `what` naming the operation in the log.
 * - step: 1 on a row (read it), 0 at the end, or a port code.
 * - step_row: 0 on a row (read it), CHAT_E_NOT_FOUND with `missing` as the
 *   message when there is none, or a port code.
 * - exec: runs `q` to its end, expecting no row, then resets it; 0 or a
 *   port code.  sqlite3_changes still counts its rows afterwards. */
int store_sqlite__step(struct store_sqlite_conn *c, sqlite3_stmt *q, const char *what,
                       struct chat_err *err);
int store_sqlite__step_row(struct store_sqlite_conn *c, sqlite3_stmt *q, const char *what,
                           const char *missing, struct chat_err *err);
int store_sqlite__exec(struct store_sqlite_conn *c, sqlite3_stmt *q, const char *what,
                       struct chat_err *err);

/* Runs the cached one-text-parameter query `id` with `arg` bound (NULL binds
 * NULL, which matches nothing).  1 when it finds a row (and, when `k` is
 * non-NULL, *k = its first column), 0 when none, or a port code. */
int store_sqlite__lookup(struct store_sqlite_conn *c, enum store_sqlite_stmt_id id,
                         const char *sql, const char *arg, int64_t *k, struct chat_err *err);

/* Steps `q` to its end, appending one `size`-byte item per row to the array
 * *items of *n (grown as store_sqlite__grow does); `read_cb` fills the
 * zeroed item from the row, with `arg` passed through, and returns 0 or
 * CHAT_E_INTERNAL (out of memory, the item then holding nothing to free).
 * 0, or a port code; either way *items and *n hold the rows read, for the
 * caller's list cleanup.  Does not reset `q`. */
int store_sqlite__collect(struct store_sqlite_conn *c, sqlite3_stmt *q, const char *what,
                          void **items, size_t *n, size_t size,
                          int (*read_cb)(sqlite3_stmt *q, void *item, void *arg), void *arg,
                          struct chat_err *err);

/* Transaction helpers on a connection the caller holds.  0 or a port code. */
int store_sqlite__begin(struct store_sqlite_conn *c, bool immediate, struct chat_err *err);
int store_sqlite__commit(struct store_sqlite_conn *c, struct chat_err *err);
void store_sqlite__rollback(struct store_sqlite_conn *c);

/* Binding and reading helpers.  store_sqlite__bind_text binds NULL for a NULL string and
 * copies the text (SQLITE_TRANSIENT). */
int store_sqlite__bind_text(sqlite3_stmt *st, int i, const char *s);
/* Binds an id held in a fixed OID_SIZE buffer, which may lack its NUL when
 * a caller filled it carelessly: at most OID_LEN bytes are read. */
int store_sqlite__bind_id(sqlite3_stmt *st, int i, const char *id);
/* Binds a page of a list newest first: before->ts at ?i, before->id at
 * ?i+1 (for the row-value condition (ts, id) < (?i, ?i+1)) and `limit` at
 * ?i+2.  A NULL `before` is the first page: a key after every row. */
void store_sqlite__bind_page(sqlite3_stmt *st, int i, const struct page_key *before, int limit);
/* Copies column `i` into *dst (new string, NULL when the column is NULL);
 * sets *oom on allocation failure. */
void store_sqlite__col_dup(sqlite3_stmt *st, int i, char **dst, bool *oom);
/* Like store_sqlite__col_dup but never NULL: "" for a NULL column. */
void store_sqlite__col_dup_nn(sqlite3_stmt *st, int i, char **dst, bool *oom);
/* Copies an id column into a fixed buffer ("" when NULL or too long). */
void store_sqlite__col_id(sqlite3_stmt *st, int i, char dst[OID_SIZE]);

/* The message columns every message read shares, `t` being the messages
 * table's alias in the query.  store_sqlite__read_message zeroes `m`, then
 * fills seq, id, text, attachment_url, client_id and created_at from the 6
 * columns at `col`; chat_id and sender_id are the caller's to fill.  Sets
 * *oom on allocation failure; the strings read so far stay in `m` for
 * store_message_cleanup. */
#define STORE_SQLITE_MSG_COLS(t) \
    t ".seq, " t ".id, " t ".text, " t ".attachment_url, " t ".client_id, " t ".created_at, " \
    t ".pos, " t ".edited_at, " t ".deleted"
/* How many columns STORE_SQLITE_MSG_COLS names (pos, edited_at and deleted
 * follow the first 6: issue 13's edits and deletions). */
#define STORE_SQLITE_MSG_NCOLS 9
void store_sqlite__read_message(sqlite3_stmt *q, int col, struct message *m, bool *oom);

/* The two halves of list_changes_after (store_sqlite_messages.c), here so
 * the contract test can check their query plans: messages never changed
 * after seq ?2, on the primary key (chat, seq), and changed messages after
 * position ?2, on the partial index messages_by_pos; chat id at ?1, limit
 * at ?3, rows as store_sqlite__read_message_cb reads them. */
#define STORE_SQLITE_CHANGES_FROM                                                   \
    " FROM messages m JOIN users u ON u.k = m.sender"                               \
    " WHERE m.chat = (SELECT k FROM chats WHERE id = ?1)"
#define STORE_SQLITE_SQL_NEW_AFTER                                                  \
    "SELECT " STORE_SQLITE_MSG_COLS("m") ", u.id" STORE_SQLITE_CHANGES_FROM         \
    " AND m.seq > ?2 AND m.pos = m.seq ORDER BY m.seq LIMIT ?3"
#define STORE_SQLITE_SQL_CHANGED_AFTER                                              \
    "SELECT " STORE_SQLITE_MSG_COLS("m") ", u.id" STORE_SQLITE_CHANGES_FROM         \
    " AND m.pos > ?2 AND m.pos <> m.seq ORDER BY m.pos LIMIT ?3"
/* store_sqlite__read_message, then chat_id = `chat_id` and sender_id from
 * the column after the shared ones (a query's "STORE_SQLITE_MSG_COLS(t),
 * u.id"). */
void store_sqlite__read_sent_message(sqlite3_stmt *q, int col, const char *chat_id,
                                     struct message *m, bool *oom);
/* Fills the message `item` of the chat `arg` from such a row at column 0
 * (a store_sqlite__collect reader).  0 or CHAT_E_INTERNAL (then `item` is
 * cleaned up). */
int store_sqlite__read_message_cb(sqlite3_stmt *q, void *item, void *arg);
/* Lists into `out` the messages of chat `chat_id` (NULL reads as "") that
 * the cached query `id` (`sql`) returns on a read connection, `sql` taking
 * the chat id at ?1, `bound` at ?2 and the clamped `limit` at ?3 and
 * returning such rows; `what` names it in errors.  0 or a port code (then
 * `out` is empty). */
int store_sqlite__list_message_rows(struct store_sqlite *s, enum store_sqlite_stmt_id id,
                                    const char *sql, const char *what, const char *chat_id,
                                    int64_t bound, int limit, struct message_list *out,
                                    struct chat_err *err);

/* Grows an array of `size`-byte items to hold at least n+1; 0 or
 * CHAT_E_INTERNAL (the old array stays valid). */
int store_sqlite__grow(void **items, size_t *cap, size_t n, size_t size);

/* Clamps a caller's page size into [0, 1000]; core already keeps it in
 * 1..100, this only keeps a bad caller from asking for huge pages. */
int store_sqlite__limit(int limit);

/* ---- the op families (one file each), named by store_sqlite.c's ops table ---- */

int store_sqlite__create_user(struct store *st, const struct user *u, struct chat_err *err);
int store_sqlite__get_user(struct store *st, const char *id, struct user *out,
                           struct chat_err *err);
int store_sqlite__find_user_by_login(struct store *st, const char *login, struct user *out,
                                     struct chat_err *err);
int store_sqlite__get_users(struct store *st, const char (*ids)[OID_SIZE], size_t n,
                            struct user_list *out, struct chat_err *err);
int store_sqlite__update_user(struct store *st, const struct user *u, struct chat_err *err);
int store_sqlite__update_user_pwhash(struct store *st, const char *id, const char *pwhash,
                                     struct chat_err *err);
int store_sqlite__search_users(struct store *st, const char *prefix, const char *after, int limit,
                               struct user_list *out, struct chat_err *err);
int store_sqlite__create_session(struct store *st, const uint8_t hash[32], const char *user_id,
                                 int64_t expires_at, struct chat_err *err);
int store_sqlite__get_session(struct store *st, const uint8_t hash[32], char user_id[OID_SIZE],
                              int64_t *expires_at, struct chat_err *err);
int store_sqlite__delete_session(struct store *st, const uint8_t hash[32], struct chat_err *err);

int store_sqlite__create_post(struct store *st, const struct post *p, struct chat_err *err);
int store_sqlite__get_post(struct store *st, const char *id, const char *viewer_id,
                           struct post *out, struct chat_err *err);
int store_sqlite__list_posts(struct store *st, const char *author_id, const char *viewer_id,
                             const struct page_key *before, int limit, struct post_list *out,
                             struct chat_err *err);
int store_sqlite__update_post(struct store *st, const struct post *p, struct chat_err *err);
int store_sqlite__delete_post(struct store *st, const char *id, struct chat_err *err);
int store_sqlite__set_like(struct store *st, const char *post_id, const char *user_id, bool liked,
                           int64_t *like_count, struct chat_err *err);
int store_sqlite__create_comment(struct store *st, const struct comment *c, struct chat_err *err);
int store_sqlite__list_comments(struct store *st, const char *post_id,
                                const struct page_key *before, int limit, struct comment_list *out,
                                struct chat_err *err);

int store_sqlite__create_chat(struct store *st, const struct chat *c, struct chat *out,
                              bool *existed, struct chat_err *err);
int store_sqlite__get_chat(struct store *st, const char *id, const char *viewer_id,
                           struct chat *out, struct chat_err *err);
int store_sqlite__list_chats(struct store *st, const char *user_id, const struct page_key *before,
                             int limit, struct chat_list *out, struct chat_err *err);
int store_sqlite__is_member(struct store *st, const char *chat_id, const char *user_id,
                            struct chat_err *err);
int store_sqlite__list_contacts(struct store *st, const char *user_id, size_t max,
                                char (**out)[OID_SIZE], size_t *n_out, bool *truncated,
                                struct chat_err *err);
int store_sqlite__add_member(struct store *st, const char *chat_id, const char *user_id,
                             bool *added, struct chat_err *err);
int store_sqlite__rename_chat(struct store *st, const char *chat_id, const char *name,
                              struct chat_err *err);
int store_sqlite__remove_member(struct store *st, const char *chat_id, const char *user_id,
                                bool *removed, struct chat_err *err);
int store_sqlite__list_messages(struct store *st, const char *chat_id, int64_t before_seq,
                                int limit, struct message_list *out, struct chat_err *err);
int store_sqlite__list_messages_after(struct store *st, const char *chat_id, int64_t after_seq,
                                      int limit, struct message_list *out, struct chat_err *err);
int store_sqlite__set_read(struct store *st, const char *chat_id, const char *user_id,
                           const char *message_id, bool *moved, struct chat_err *err);
/* Account lifecycle and read receipts (issue 13). */
int store_sqlite__set_read_seq(struct store *st, const char *chat_id, const char *user_id,
                               const char *message_id, bool *moved, int64_t *seq,
                               struct chat_err *err);
int store_sqlite__delete_user_sessions(struct store *st, const char *user_id,
                                       const uint8_t keep[32], uint8_t (**hashes)[32], size_t *n,
                                       struct chat_err *err);
int store_sqlite__delete_user(struct store *st, const struct user *anon,
                              char (**groups)[OID_SIZE], size_t *n_groups, struct chat_err *err);

/* store_sqlite_messages.c: message edits, deletions, catch-up by position. */
int store_sqlite__get_message(struct store *st, const char *chat_id, const char *message_id,
                              struct message *out, struct chat_err *err);
int store_sqlite__change_message(struct store *st, const char *chat_id, const char *message_id,
                                 const char *text, int64_t at, struct message *out,
                                 bool *changed, struct chat_err *err);
int store_sqlite__list_changes_after(struct store *st, const char *chat_id, int64_t after_pos,
                                     int limit, struct message_list *out, struct chat_err *err);

/* store_sqlite_append.c; store_sqlite.c starts and stops the writer. */
int store_sqlite__append_start(struct store_sqlite *s, struct chat_err *err);
/* Refuses new appends, drains the queue (commit + callbacks), joins. */
void store_sqlite__append_stop(struct store_sqlite *s);
int store_sqlite__append_message(struct store *st, const struct message *m, store_append_cb cb,
                                 void *arg);

/* store_sqlite_checkpoint.c; store_sqlite.c starts it after the writer
 * connection is open and stops it before that connection closes.  start:
 * 0 or CHAT_E_UNAVAILABLE (stop is still needed); stop undoes whatever
 * start did and is safe to call when start never ran. */
int store_sqlite__checkpoint_start(struct store_sqlite *s, struct chat_err *err);
void store_sqlite__checkpoint_stop(struct store_sqlite *s);

#endif
