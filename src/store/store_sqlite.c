/* store_sqlite.c - the embedded SQLite adapter: connections, pool, schema.
 *
 * Design.  One database file in WAL mode, one write connection and a small
 * pool of read connections.  WAL lets readers run beside the writer, each on
 * its own snapshot, so reads never wait for a commit; writes are serialised
 * by a mutex around the single write connection, which is cheaper and more
 * predictable than letting several connections race for SQLite's write lock
 * through the busy handler.  Message appends, the hot write, go through a
 * group-commit writer thread (store_sqlite_append.c) that commits many per
 * transaction.
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
#include "chatli/metrics.h"

#define BUSY_TIMEOUT_MS 5000

/* ---- process-wide pool gauges ------------------------------------------- */

/* Summed over every open SQLite store of the process: /metrics shows one
 * pool, and tests that open many stores register the gauges only once. */
static atomic_long pool_in_use, pool_size;
static pthread_once_t gauges_once = PTHREAD_ONCE_INIT;
static atomic_uint mem_counter;

static double gauge_in_use(void *arg) { return (double)atomic_load(&pool_in_use); }
static double gauge_size(void *arg) { return (double)atomic_load(&pool_size); }

static void register_gauges(void)
{
    metrics_register_gauge("chatli_store_pool_in_use",
                           "Store read connections in use.", gauge_in_use, NULL);
    metrics_register_gauge("chatli_store_pool_size",
                           "Store read connections available (capacity).", gauge_size, NULL);
}

/* ---- errors and statements --------------------------------------------- */

static int map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_NOMEM:
    case SQLITE_PROTOCOL:
    case SQLITE_NOLFS:
        return CHAT_E_UNAVAILABLE;
    default:
        return CHAT_E_INTERNAL;
    }
}

int store_sqlite__fail(struct store_sqlite_conn *c, int rc, const char *what,
                       struct chat_err *err)
{
    int code = map_rc(rc);
    /* The connection is held by this thread alone, so sqlite3_errmsg is
     * still the message of our failure. */
    log_error("sqlite %s failed: %s (rc=%d)", what,
              c && c->db ? sqlite3_errmsg(c->db) : "no connection", rc);
    if (c && c->db)
        store_sqlite__rollback(c);
    return chat_err_set(err, code, NULL, NULL);
}

sqlite3_stmt *store_sqlite__stmt(struct store_sqlite_conn *c, enum store_sqlite_stmt_id id,
                                 const char *sql, int *rc)
{
    *rc = SQLITE_OK;
    if (c->stmts[id])
        return c->stmts[id];
    *rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->stmts[id], NULL);
    if (*rc != SQLITE_OK) {
        log_error("sqlite prepare failed: %s (rc=%d)", sqlite3_errmsg(c->db), *rc);
        c->stmts[id] = NULL;
        return NULL;
    }
    return c->stmts[id];
}

void store_sqlite__done(sqlite3_stmt *st)
{
    if (!st)
        return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Runs a cached statement that returns no rows. */
static int exec_cached(struct store_sqlite_conn *c, enum store_sqlite_stmt_id id, const char *sql)
{
    int rc;
    sqlite3_stmt *st = store_sqlite__stmt(c, id, sql, &rc);
    if (!st)
        return rc;
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

int store_sqlite__begin(struct store_sqlite_conn *c, bool immediate, struct chat_err *err)
{
    int rc = immediate ? exec_cached(c, STORE_SQLITE_BEGIN_IMMEDIATE, "BEGIN IMMEDIATE")
                       : exec_cached(c, STORE_SQLITE_BEGIN, "BEGIN");
    return rc == SQLITE_OK ? 0 : store_sqlite__fail(c, rc, "begin", err);
}

int store_sqlite__commit(struct store_sqlite_conn *c, struct chat_err *err)
{
    int rc = exec_cached(c, STORE_SQLITE_COMMIT, "COMMIT");
    return rc == SQLITE_OK ? 0 : store_sqlite__fail(c, rc, "commit", err);
}

void store_sqlite__rollback(struct store_sqlite_conn *c)
{
    /* A failed statement may already have rolled the transaction back
     * (SQLITE_FULL, IOERR, NOMEM do); ROLLBACK outside one is an error. */
    if (sqlite3_get_autocommit(c->db))
        return;
    int rc = exec_cached(c, STORE_SQLITE_ROLLBACK, "ROLLBACK");
    if (rc != SQLITE_OK)
        log_error("sqlite rollback failed: %s (rc=%d)", sqlite3_errmsg(c->db), rc);
}

/* ---- small helpers ------------------------------------------------------ */

int store_sqlite__bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

int store_sqlite__bind_id(sqlite3_stmt *st, int i, const char *id)
{
    return sqlite3_bind_text(st, i, id, (int)strnlen(id, OID_LEN), SQLITE_TRANSIENT);
}

void store_sqlite__col_dup(sqlite3_stmt *st, int i, char **dst, bool *oom)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    if (!t) {
        *dst = NULL;
        /* NULL with SQLITE_NOMEM as the error means the conversion failed. */
        if (sqlite3_column_type(st, i) != SQLITE_NULL)
            *oom = true;
        return;
    }
    size_t n = (size_t)sqlite3_column_bytes(st, i);
    *dst = malloc(n + 1);
    if (!*dst) {
        *oom = true;
        return;
    }
    memcpy(*dst, t, n);
    (*dst)[n] = '\0';
}

void store_sqlite__col_dup_nn(sqlite3_stmt *st, int i, char **dst, bool *oom)
{
    store_sqlite__col_dup(st, i, dst, oom);
    if (!*dst && !*oom) {
        *dst = strdup("");
        if (!*dst)
            *oom = true;
    }
}

void store_sqlite__col_id(sqlite3_stmt *st, int i, char dst[OID_SIZE])
{
    const unsigned char *t = sqlite3_column_text(st, i);
    int n = sqlite3_column_bytes(st, i);
    if (!t || n > OID_LEN)
        n = 0;
    if (n)
        memcpy(dst, t, (size_t)n);
    dst[n] = '\0';
}

int store_sqlite__grow(void **items, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*items, ncap * size);
    if (!p)
        return CHAT_E_INTERNAL;
    /* Zero the new tail so a partly filled list can always be cleaned up. */
    memset((char *)p + *cap * size, 0, (ncap - *cap) * size);
    *items = p;
    *cap = ncap;
    return 0;
}

int store_sqlite__limit(int limit)
{
    if (limit < 0)
        return 0;
    return limit > 1000 ? 1000 : limit;
}

/* ---- connections -------------------------------------------------------- */

static void conn_close(struct store_sqlite_conn *c)
{
    for (int i = 0; i < STORE_SQLITE__COUNT; i++) {
        sqlite3_finalize(c->stmts[i]);
        c->stmts[i] = NULL;
    }
    if (c->db) {
        int rc = sqlite3_close(c->db);
        if (rc != SQLITE_OK)
            log_error("sqlite close failed (rc=%d)", rc);
        c->db = NULL;
    }
}

/* Runs one PRAGMA and, when `want` is set, checks its first result column. */
static int pragma(struct store_sqlite_conn *c, const char *sql, const char *want)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && want) {
        const char *got = (const char *)sqlite3_column_text(st, 0);
        if (!got || strcmp(got, want) != 0) {
            log_error("sqlite %s gave %s, wanted %s", sql, got ? got : "NULL", want);
            sqlite3_finalize(st);
            return SQLITE_ERROR;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int conn_open(struct store_sqlite *s, struct store_sqlite_conn *c, bool writer,
                     struct chat_err *err)
{
    memset(c, 0, sizeof *c);
    int rc = sqlite3_open_v2(s->uri, &c->db, s->open_flags, NULL);
    if (rc != SQLITE_OK) {
        store_sqlite__fail(c, rc, "open", NULL);
        conn_close(c);
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, NULL);
    }
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    /* journal_mode is a property of the file, set once by the writer; memdb
     * keeps its in-memory rollback journal. */
    if (writer && !s->memory && (rc = pragma(c, "PRAGMA journal_mode=WAL", "wal")) != SQLITE_OK)
        goto fail;
    if ((rc = pragma(c, "PRAGMA synchronous=NORMAL", NULL)) != SQLITE_OK)
        goto fail;
    if ((rc = pragma(c, "PRAGMA temp_store=MEMORY", NULL)) != SQLITE_OK)
        goto fail;
    /* Foreign keys stay off: ids are checked by core and by the statements
     * that join on them, and the per-row checks would tax every append. */
    if (writer) {
        /* 16 MiB of page cache for the writer, whose indexes are hot. */
        if ((rc = pragma(c, "PRAGMA cache_size=-16384", NULL)) != SQLITE_OK)
            goto fail;
        /* Keep the WAL from staying large after a burst. */
        if ((rc = pragma(c, "PRAGMA journal_size_limit=67108864", NULL)) != SQLITE_OK)
            goto fail;
    } else if ((rc = pragma(c, "PRAGMA query_only=1", NULL)) != SQLITE_OK) {
        goto fail;
    }
    return 0;
fail:
    store_sqlite__fail(c, rc, "configure connection", NULL);
    conn_close(c);
    return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, NULL);
}

struct store_sqlite_conn *store_sqlite__read_acquire(struct store_sqlite *s, struct chat_err *err)
{
    pthread_mutex_lock(&s->pmu);
    while (s->n_free == 0 && s->n_open >= STORE_SQLITE_POOL_MAX)
        pthread_cond_wait(&s->pcv, &s->pmu);
    /* A free slot, or a new one; a slot is opened on first use (or again
     * after an open failed), outside the lock since opening reads the
     * schema. */
    int slot = s->n_free > 0 ? s->rfree[--s->n_free] : s->n_open++;
    pthread_mutex_unlock(&s->pmu);
    struct store_sqlite_conn *c = &s->rpool[slot];
    if (!c->db && conn_open(s, c, false, err) != 0) {
        pthread_mutex_lock(&s->pmu);
        s->rfree[s->n_free++] = slot;
        pthread_cond_signal(&s->pcv);
        pthread_mutex_unlock(&s->pmu);
        return NULL;
    }
    atomic_fetch_add(&pool_in_use, 1);
    return c;
}

void store_sqlite__read_release(struct store_sqlite *s, struct store_sqlite_conn *c)
{
    if (!c)
        return;
    store_sqlite__rollback(c);
    atomic_fetch_sub(&pool_in_use, 1);
    pthread_mutex_lock(&s->pmu);
    s->rfree[s->n_free++] = (int)(c - s->rpool);
    pthread_cond_signal(&s->pcv);
    pthread_mutex_unlock(&s->pmu);
}

struct store_sqlite_conn *store_sqlite__write_lock(struct store_sqlite *s)
{
    pthread_mutex_lock(&s->wmu);
    return &s->w;
}

void store_sqlite__write_unlock(struct store_sqlite *s)
{
    /* Whatever the caller did, it never leaves a transaction open. */
    store_sqlite__rollback(&s->w);
    pthread_mutex_unlock(&s->wmu);
}

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

int store_sqlite__migrate(struct store_sqlite_conn *c, struct chat_err *err)
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
    for (int i = 0; i < s->n_open; i++)
        conn_close(&s->rpool[i]);
    /* The write connection goes last: for ":memory:" it keeps the data
     * alive, and for a file the last close checkpoints the WAL. */
    conn_close(&s->w);
    atomic_fetch_sub(&pool_size, STORE_SQLITE_POOL_MAX);
    pthread_mutex_destroy(&s->wmu);
    pthread_mutex_destroy(&s->pmu);
    pthread_cond_destroy(&s->pcv);
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
    int rc;
    sqlite3_stmt *q = store_sqlite__stmt(c, STORE_SQLITE_PING,
                                         "SELECT count(*) FROM sqlite_schema", &rc);
    if (q && (rc = sqlite3_step(q)) == SQLITE_ROW)
        rc = SQLITE_OK;
    store_sqlite__done(q);
    int out = rc == SQLITE_OK ? 0 : store_sqlite__fail(c, rc, "ping", err);
    store_sqlite__read_release(s, c);
    /* Whatever went wrong, a failed ping means "down" for /readyz. */
    return out ? chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, NULL) : 0;
}

static const struct store_ops store_sqlite_ops = {
    .close = store_sqlite_close,
    .ping = store_sqlite_ping,
    .create_user = store_sqlite__create_user,
    .get_user = store_sqlite__get_user,
    .find_user_by_login = store_sqlite__find_user_by_login,
    .get_users = store_sqlite__get_users,
    .update_user = store_sqlite__update_user,
    .search_users = store_sqlite__search_users,
    .create_session = store_sqlite__create_session,
    .get_session = store_sqlite__get_session,
    .delete_session = store_sqlite__delete_session,
    .create_post = store_sqlite__create_post,
    .get_post = store_sqlite__get_post,
    .list_posts = store_sqlite__list_posts,
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
    .remove_member = store_sqlite__remove_member,
    .append_message = store_sqlite__append_message,
    .list_messages = store_sqlite__list_messages,
    .list_messages_after = store_sqlite__list_messages_after,
    .set_read = store_sqlite__set_read,
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
    pthread_once(&gauges_once, register_gauges);
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
    pthread_mutex_init(&s->pmu, NULL);
    pthread_cond_init(&s->pcv, NULL);
    pthread_mutex_init(&s->qmu, NULL);
    pthread_cond_init(&s->qcv, NULL);
    atomic_fetch_add(&pool_size, STORE_SQLITE_POOL_MAX);

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
    if (conn_open(s, &s->w, true, err) != 0)
        goto fail;
    if (store_sqlite__migrate(&s->w, err) != 0)
        goto fail;
    if (store_sqlite__append_start(s, err) != 0)
        goto fail;
    *out = &s->base;
    return 0;
fail:
    store_sqlite_close(&s->base);
    return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, NULL);
}
