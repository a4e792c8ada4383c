/* store_sqlite.c - the embedded SQLite adapter: open, close, ping, the
 * schema and the ops table.
 *
 * Design.  One database file in WAL mode, one write connection and a small
 * pool of read connections (store_sqlite_conn.c opens and lends them).  WAL
 * lets readers run beside the writer, each on its own snapshot, so reads
 * never wait for a commit; writes are serialised by a mutex around the
 * single write connection, which is cheaper and more predictable than
 * letting several connections race for SQLite's write lock through the busy
 * handler.  Message appends, the hot write, go through a
 * group-commit writer thread (store_sqlite_append.c) that commits many per
 * transaction, and WAL checkpoints run on a thread and connection of their
 * own (store_sqlite_checkpoint.c), off the commit path.
 *
 * Durability.  synchronous=NORMAL: a commit is in the WAL file (in the OS page
 * cache) when it returns, so it survives the process being killed at any
 * point; power loss may lose the last commits before the next checkpoint
 * syncs.  FULL would cost an fsync per commit, and the disk, not the CPU, is
 * what limits our write rate (see docs/data-model.md).
 *
 * ":memory:" maps to SQLite's memdb VFS under a unique shared name
 * ("file:/chatli-mem-<pid>-<n>?vfs=memdb"), so the write connection and the
 * read pool see one database, which lives while the write connection is
 * open.  memdb has no WAL (readers wait for a commit through the busy
 * handler), which is fine for the tests it serves.  We chose it over a
 * shared-cache URI because shared cache reports table locks as
 * SQLITE_LOCKED, which the busy handler does not retry.
 *
 * Schema versions live in PRAGMA user_version; `migrations` below is the
 * ordered list of steps, applied in one transaction at open.  A database
 * newer than this binary is refused rather than guessed at. */
#include "chatli/adapters/store_sqlite.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_sqlite_internal.h"
#include "chatli/log.h"

/* Numbers the ":memory:" databases of this process, so each store opened
 * on ":memory:" gets a database of its own. */
static atomic_uint mem_counter;

/* ---- schema -------------------------------------------------------------- */

/* Each step moves user_version from its index to index + 1.  Never edit a
 * shipped step: append a new one.
 *
 * Mapping choices (docs/data-model.md has the long form):
 * - users, posts, comments, chats have an integer rowid key `k` plus the
 *   24-hex `id` core gave (unique); rows that point at them use `k`, which
 *   keeps the message rows and the membership index small.
 * - messages are keyed (chat, seq) WITHOUT ROWID: a chat's history is one
 *   contiguous range of the primary b-tree, read newest or oldest first
 *   without a sort, and seq order is time order within a chat.
 * - Case-insensitive usernames: username_lower (ASCII-lowered by the adapter)
 *   with a unique index, which also serves prefix search as a range scan.
 * - A direct chat stores its pair ("<smaller id>:<larger id>") under a
 *   unique index; groups leave it NULL.
 * - The read mark is a member row's read_seq, so removing a member removes
 *   its mark. */
static const char *const migrations[] = {
    /* 1: the initial schema. */
    "CREATE TABLE users ("
    "  k INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  username TEXT NOT NULL,"
    "  username_lower TEXT NOT NULL UNIQUE,"
    "  email TEXT NOT NULL UNIQUE,"
    "  display_name TEXT NOT NULL,"
    "  bio TEXT NOT NULL DEFAULT '',"
    "  avatar_url TEXT,"
    "  pwhash TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE sessions ("
    "  hash BLOB PRIMARY KEY,"
    "  user_id TEXT NOT NULL,"
    "  expires_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE posts ("
    "  k INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  author_id TEXT NOT NULL,"
    "  text TEXT NOT NULL,"
    "  image_url TEXT,"
    "  like_count INTEGER NOT NULL DEFAULT 0,"
    "  comment_count INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX posts_by_time ON posts(created_at, id);"
    "CREATE INDEX posts_by_author ON posts(author_id, created_at, id);"
    "CREATE TABLE likes ("
    "  post INTEGER NOT NULL,"
    "  user_id TEXT NOT NULL,"
    "  PRIMARY KEY (post, user_id)) WITHOUT ROWID;"
    "CREATE TABLE comments ("
    "  k INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  post INTEGER NOT NULL,"
    "  author_id TEXT NOT NULL,"
    "  text TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX comments_by_post ON comments(post, created_at, id);"
    "CREATE TABLE chats ("
    "  k INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  type INTEGER NOT NULL,"
    "  name TEXT,"
    "  pair TEXT UNIQUE,"
    "  last_seq INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE TABLE members ("
    "  chat INTEGER NOT NULL,"
    "  user INTEGER NOT NULL,"
    "  pos INTEGER NOT NULL,"
    "  read_seq INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (chat, user)) WITHOUT ROWID;"
    "CREATE INDEX members_by_user ON members(user);"
    "CREATE TABLE messages ("
    "  chat INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  id TEXT NOT NULL,"
    "  sender INTEGER NOT NULL,"
    "  text TEXT NOT NULL,"
    "  attachment_url TEXT,"
    "  client_id TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (chat, seq)) WITHOUT ROWID;"
    "CREATE UNIQUE INDEX messages_dedupe ON messages(chat, sender, client_id)"
    "  WHERE client_id IS NOT NULL;"
    "CREATE INDEX messages_by_id ON messages(id);",
    /* 2: post edits (issue 13): when a post was last edited, NULL until then. */
    "ALTER TABLE posts ADD COLUMN edited_at INTEGER;",
    /* 3: message edits and deletions (issue 13).  chats.event_seq is the
     * chat's position counter (the highest position taken: a new message's
     * seq, or an edit's or deletion's position); messages.pos is the
     * position of the message's latest change, its seq until it changes,
     * indexed for sync's catch-up in position order. */
    "ALTER TABLE chats ADD COLUMN event_seq INTEGER NOT NULL DEFAULT 0;"
    "UPDATE chats SET event_seq = last_seq;"
    "ALTER TABLE messages ADD COLUMN pos INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE messages ADD COLUMN edited_at INTEGER;"
    "ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;"
    "UPDATE messages SET pos = seq;"
    "CREATE INDEX messages_by_pos ON messages(chat, pos);",
    /* 4: revoking every token of a user (password change, logout-all,
     * account deletion) finds its sessions by user_id. */
    "CREATE INDEX sessions_by_user ON sessions(user_id);",
    /* 5: messages_by_pos holds only changed messages (issue 9).  A new
     * message has pos = seq and leaves the index alone, so an append
     * writes one b-tree page fewer (6.1 -> 5.0 WAL frames per one-message
     * commit, docs/performance.md); catch-up reads unchanged messages from
     * the primary key, where pos = seq orders them, and merges the two
     * (store_sqlite_messages.c). */
    "DROP INDEX messages_by_pos;"
    "CREATE INDEX messages_by_pos ON messages(chat, pos) WHERE pos <> seq;",
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

static int user_version(struct store_sqlite_conn *c, int *v)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *v = sqlite3_column_int(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

static int migrate(struct store_sqlite_conn *c, struct chat_err *err)
{
    int v = 0, rc;
    /* IMMEDIATE: two processes opening one file at once migrate in turn,
     * and the second sees the first's user_version. */
    if (store_sqlite__begin(c, true, err) != 0)
        return CHAT_E_UNAVAILABLE;
    if ((rc = user_version(c, &v)) != SQLITE_OK) {
        store_sqlite__fail(c, rc, "read schema version", NULL);
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, NULL);
    }
    if (v > N_MIGRATIONS) {
        log_error("sqlite schema version %d is newer than this binary's %d", v, N_MIGRATIONS);
        store_sqlite__rollback(c);
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, NULL);
    }
    for (; v < N_MIGRATIONS; v++) {
        char *msg = NULL;
        rc = sqlite3_exec(c->db, migrations[v], NULL, NULL, &msg);
        if (rc == SQLITE_OK) {
            char sql[64];
            snprintf(sql, sizeof sql, "PRAGMA user_version=%d", v + 1);
            rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);
        }
        if (rc != SQLITE_OK) {
            log_error("sqlite migration %d failed: %s (rc=%d)", v + 1, msg ? msg : "?", rc);
            sqlite3_free(msg);
            store_sqlite__rollback(c);
            return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, NULL);
        }
        log_info("sqlite schema migrated to version %d", v + 1);
    }
    if (store_sqlite__commit(c, err) != 0)
        return CHAT_E_UNAVAILABLE;
    return 0;
}

/* ---- the port's lifecycle ops ------------------------------------------- */

static void store_sqlite_close(struct store *st)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    if (s->writer_started)
        store_sqlite__append_stop(s);
    store_sqlite__checkpoint_stop(s);
    store_sqlite__pool_cleanup(s);
    /* The write connection goes last: for ":memory:" it keeps the data
     * alive, and for a file the last close checkpoints the WAL. */
    store_sqlite__conn_close(&s->w);
    pthread_mutex_destroy(&s->wmu);
    pthread_mutex_destroy(&s->qmu);
    pthread_cond_destroy(&s->qcv);
    free(s->uri);
    free(s);
}

static int store_sqlite_ping(struct store *st, struct chat_err *err)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    struct store_sqlite_conn *c = store_sqlite__read_acquire(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(c, STORE_SQLITE_PING, "SELECT count(*) FROM sqlite_schema",
                                  &q, err);
    if (!r)
        r = store_sqlite__step_row(c, q, "ping", "no answer", err);
    store_sqlite__done(q);
    store_sqlite__read_release(s, c);
    /* Whatever went wrong, a failed ping means "down" for /readyz. */
    return r ? chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, NULL) : 0;
}

static const struct store_ops store_sqlite_ops = {
    .close = store_sqlite_close,
    .ping = store_sqlite_ping,
    .create_user = store_sqlite__create_user,
    .get_user = store_sqlite__get_user,
    .find_user_by_login = store_sqlite__find_user_by_login,
    .get_users = store_sqlite__get_users,
    .update_user = store_sqlite__update_user,
    .update_user_pwhash = store_sqlite__update_user_pwhash,
    .search_users = store_sqlite__search_users,
    .create_session = store_sqlite__create_session,
    .get_session = store_sqlite__get_session,
    .delete_session = store_sqlite__delete_session,
    .create_post = store_sqlite__create_post,
    .get_post = store_sqlite__get_post,
    .list_posts = store_sqlite__list_posts,
    .update_post = store_sqlite__update_post,
    .delete_post = store_sqlite__delete_post,
    .set_like = store_sqlite__set_like,
    .create_comment = store_sqlite__create_comment,
    .list_comments = store_sqlite__list_comments,
    .create_chat = store_sqlite__create_chat,
    .get_chat = store_sqlite__get_chat,
    .list_chats = store_sqlite__list_chats,
    .is_member = store_sqlite__is_member,
    .list_contacts = store_sqlite__list_contacts,
    .add_member = store_sqlite__add_member,
    .rename_chat = store_sqlite__rename_chat,
    .remove_member = store_sqlite__remove_member,
    .append_message = store_sqlite__append_message,
    .list_messages = store_sqlite__list_messages,
    .list_messages_after = store_sqlite__list_messages_after,
    .set_read = store_sqlite__set_read,
    .get_message = store_sqlite__get_message,
    .change_message = store_sqlite__change_message,
    .list_changes_after = store_sqlite__list_changes_after,
    .set_read_seq = store_sqlite__set_read_seq,
    .delete_user_sessions = store_sqlite__delete_user_sessions,
    .delete_user = store_sqlite__delete_user,
};

/* The directory that must already hold the database file. */
static bool parent_dir_exists(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return true; /* the working directory */
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *dir = strndup(path, n);
    if (!dir)
        return false;
    struct stat sb;
    bool ok = stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode);
    free(dir);
    return ok;
}

int store_sqlite_open(const char *path, struct store **out, struct chat_err *err)
{
    *out = NULL;
    if (!path || !*path) {
        log_error("sqlite open: empty database path");
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, NULL);
    }
    struct store_sqlite *s = calloc(1, sizeof *s);
    if (!s)
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, NULL);
    s->base.ops = &store_sqlite_ops;
    s->base.name = "sqlite";
    pthread_mutex_init(&s->wmu, NULL);
    store_sqlite__pool_init(s);
    pthread_mutex_init(&s->qmu, NULL);
    pthread_cond_init(&s->qcv, NULL);

    /* NOMUTEX: each connection is used by one thread at a time (our locks
     * and the pool see to it), so SQLite's per-connection mutex is waste. */
    s->open_flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                    SQLITE_OPEN_PRIVATECACHE;
    if (strcmp(path, ":memory:") == 0) {
        char uri[96];
        snprintf(uri, sizeof uri, "file:/chatli-mem-%ld-%u?vfs=memdb", (long)getpid(),
                 atomic_fetch_add(&mem_counter, 1));
        s->uri = strdup(uri);
        s->memory = true;
        s->open_flags |= SQLITE_OPEN_URI;
    } else {
        if (!parent_dir_exists(path)) {
            log_error("sqlite open: the directory of %s does not exist", path);
            goto fail;
        }
        /* No SQLITE_OPEN_URI: a path is a path, even one starting "file:". */
        s->uri = strdup(path);
    }
    if (!s->uri)
        goto fail;
    if (store_sqlite__conn_open(s, &s->w, true, err) != 0)
        goto fail;
    if (migrate(&s->w, err) != 0)
        goto fail;
    if (store_sqlite__checkpoint_start(s, err) != 0)
        goto fail;
    if (store_sqlite__append_start(s, err) != 0)
        goto fail;
    *out = &s->base;
    return 0;
fail:
    store_sqlite_close(&s->base);
    return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, NULL);
}
