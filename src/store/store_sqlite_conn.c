/* store_sqlite_conn.c - the SQLite adapter's plumbing: connections, the read
 * pool, cached statements, error mapping and the helpers that step and read.
 *
 * This is the bottom of the adapter.  store_sqlite.c (open, close, the ops
 * table) and the operation files (store_sqlite_users.c, _posts.c, _chats.c,
 * _append.c) call into it, and it calls nothing of theirs, so the adapter's
 * files depend on each other in one direction.
 *
 * Every operation then reads the same way: take a connection
 * (store_sqlite__read_acquire or store_sqlite__write_lock), get its cached
 * statement (store_sqlite__prepare), bind, step with store_sqlite__step,
 * __step_row, __exec or __collect, reset the statement (store_sqlite__done)
 * and give the connection back.  Each helper that can fail logs sqlite's
 * message, rolls back an open transaction and maps the result code through
 * store_sqlite__fail, so no operation maps a code by hand and all of them map
 * alike.
 *
 * Statements are prepared on first use with SQLITE_PREPARE_PERSISTENT and
 * kept for the connection's life in its stmts[] slot: after warm-up a
 * statement costs an array lookup, which matters most on the append path. */
#include "store_sqlite_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatli/log.h"
#include "chatli/metrics.h"

#define BUSY_TIMEOUT_MS 5000

/* ---- process-wide pool gauges ------------------------------------------- */

/* Summed over every open SQLite store of the process: /metrics shows one
 * pool, and tests that open many stores register the gauges only once. */
static atomic_long pool_in_use, pool_size;
static pthread_once_t gauges_once = PTHREAD_ONCE_INIT;

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

/* The cached statement, prepared on first use; SQLITE_OK or sqlite's code.
 * The transaction statements below use it directly: store_sqlite__prepare
 * fails through store_sqlite__fail, which rolls back, and ROLLBACK itself
 * must not recurse into that. */
static int stmt(struct store_sqlite_conn *c, enum store_sqlite_stmt_id id, const char *sql,
                sqlite3_stmt **out)
{
    if (!c->stmts[id]) {
        int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->stmts[id],
                                    NULL);
        if (rc != SQLITE_OK) {
            c->stmts[id] = NULL;
            *out = NULL;
            return rc;
        }
    }
    *out = c->stmts[id];
    return SQLITE_OK;
}

int store_sqlite__prepare(struct store_sqlite_conn *c, enum store_sqlite_stmt_id id,
                          const char *sql, sqlite3_stmt **q, struct chat_err *err)
{
    int rc = stmt(c, id, sql, q);
    return rc == SQLITE_OK ? 0 : store_sqlite__fail(c, rc, "prepare", err);
}

void store_sqlite__done(sqlite3_stmt *st)
{
    if (!st)
        return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

int store_sqlite__step(struct store_sqlite_conn *c, sqlite3_stmt *q, const char *what,
                       struct chat_err *err)
{
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return store_sqlite__fail(c, rc, what, err);
}

int store_sqlite__step_row(struct store_sqlite_conn *c, sqlite3_stmt *q, const char *what,
                           const char *missing, struct chat_err *err)
{
    int r = store_sqlite__step(c, q, what, err);
    if (r == 0)
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, missing);
    return r == 1 ? 0 : r;
}

int store_sqlite__exec(struct store_sqlite_conn *c, sqlite3_stmt *q, const char *what,
                       struct chat_err *err)
{
    int rc = sqlite3_step(q);
    /* A row here is a statement that should have returned none: a bug,
     * which store_sqlite__fail maps to CHAT_E_INTERNAL. */
    int r = rc == SQLITE_DONE ? 0 : store_sqlite__fail(c, rc, what, err);
    store_sqlite__done(q);
    return r;
}

int store_sqlite__lookup(struct store_sqlite_conn *c, enum store_sqlite_stmt_id id,
                         const char *sql, const char *arg, int64_t *k, struct chat_err *err)
{
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(c, id, sql, &q, err);
    if (r)
        return r;
    store_sqlite__bind_text(q, 1, arg);
    r = store_sqlite__step(c, q, "lookup", err);
    if (r == 1 && k)
        *k = sqlite3_column_int64(q, 0);
    store_sqlite__done(q);
    return r;
}

int store_sqlite__collect(struct store_sqlite_conn *c, sqlite3_stmt *q, const char *what,
                          void **items, size_t *n, size_t size,
                          int (*read_cb)(sqlite3_stmt *q, void *item, void *arg), void *arg,
                          struct chat_err *err)
{
    size_t cap = 0;
    int r;
    while ((r = store_sqlite__step(c, q, what, err)) == 1) {
        if (store_sqlite__grow(items, &cap, *n, size) ||
            read_cb(q, (char *)*items + *n * size, arg))
            return chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
        ++*n;
    }
    return r;
}

/* Runs a cached statement that returns no rows; SQLITE_OK or sqlite's code. */
static int exec_cached(struct store_sqlite_conn *c, enum store_sqlite_stmt_id id, const char *sql)
{
    sqlite3_stmt *st;
    int rc = stmt(c, id, sql, &st);
    if (rc != SQLITE_OK)
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

/* ---- binding and reading ------------------------------------------------ */

int store_sqlite__bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

int store_sqlite__bind_id(sqlite3_stmt *st, int i, const char *id)
{
    return sqlite3_bind_text(st, i, id, (int)strnlen(id, OID_LEN), SQLITE_TRANSIENT);
}

void store_sqlite__bind_page(sqlite3_stmt *st, int i, const struct page_key *before, int limit)
{
    /* The first page's key sorts after every real (ts, id): INT64_MAX is
     * after any time, and ids are ASCII, below 0x7F. */
    sqlite3_bind_int64(st, i, before ? before->ts : INT64_MAX);
    store_sqlite__bind_id(st, i + 1, before ? before->id : "\x7f");
    sqlite3_bind_int(st, i + 2, limit);
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

void store_sqlite__read_message(sqlite3_stmt *q, int col, struct message *m, bool *oom)
{
    memset(m, 0, sizeof *m);
    m->seq = sqlite3_column_int64(q, col);
    store_sqlite__col_id(q, col + 1, m->id);
    store_sqlite__col_dup_nn(q, col + 2, &m->text, oom);
    store_sqlite__col_dup(q, col + 3, &m->attachment_url, oom);
    store_sqlite__col_dup(q, col + 4, &m->client_id, oom);
    m->created_at = sqlite3_column_int64(q, col + 5);
    m->pos = sqlite3_column_int64(q, col + 6);
    m->edited_at = sqlite3_column_int64(q, col + 7); /* NULL reads as 0 */
    m->deleted = sqlite3_column_int(q, col + 8) != 0;
}

void store_sqlite__read_sent_message(sqlite3_stmt *q, int col, const char *chat_id,
                                     struct message *m, bool *oom)
{
    store_sqlite__read_message(q, col, m, oom);
    snprintf(m->chat_id, sizeof m->chat_id, "%.*s", OID_LEN, chat_id);
    store_sqlite__col_id(q, col + STORE_SQLITE_MSG_NCOLS, m->sender_id);
}

int store_sqlite__read_message_cb(sqlite3_stmt *q, void *item, void *arg)
{
    bool oom = false;
    store_sqlite__read_sent_message(q, 0, arg, item, &oom);
    if (oom) {
        store_message_cleanup(item);
        return CHAT_E_INTERNAL;
    }
    return 0;
}

int store_sqlite__list_message_rows(struct store_sqlite *s, enum store_sqlite_stmt_id id,
                                    const char *sql, const char *what, const char *chat_id,
                                    int64_t bound, int limit, struct message_list *out,
                                    struct chat_err *err)
{
    out->items = NULL;
    out->n = 0;
    limit = store_sqlite__limit(limit);
    if (limit == 0)
        return 0;
    if (!chat_id)
        chat_id = "";
    struct store_sqlite_conn *c = store_sqlite__read_acquire(s, err);
    if (!c)
        return CHAT_E_UNAVAILABLE;
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(c, id, sql, &q, err);
    if (!r) {
        store_sqlite__bind_text(q, 1, chat_id);
        sqlite3_bind_int64(q, 2, bound);
        sqlite3_bind_int(q, 3, limit);
        r = store_sqlite__collect(c, q, what, (void **)&out->items, &out->n, sizeof *out->items,
                                  store_sqlite__read_message_cb, (void *)chat_id, err);
        if (r)
            store_message_list_cleanup(out);
        store_sqlite__done(q);
    }
    store_sqlite__read_release(s, c);
    return r;
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

void store_sqlite__conn_close(struct store_sqlite_conn *c)
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

int store_sqlite__conn_open(struct store_sqlite *s, struct store_sqlite_conn *c, bool writer,
                            struct chat_err *err)
{
    memset(c, 0, sizeof *c);
    int rc = sqlite3_open_v2(s->uri, &c->db, s->open_flags, NULL);
    if (rc != SQLITE_OK) {
        store_sqlite__fail(c, rc, "open", NULL);
        store_sqlite__conn_close(c);
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
    store_sqlite__conn_close(c);
    return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, NULL);
}

/* ---- the read pool and the write connection ----------------------------- */

void store_sqlite__pool_init(struct store_sqlite *s)
{
    pthread_once(&gauges_once, register_gauges);
    pthread_mutex_init(&s->pmu, NULL);
    pthread_cond_init(&s->pcv, NULL);
    atomic_fetch_add(&pool_size, STORE_SQLITE_POOL_MAX);
}

void store_sqlite__pool_cleanup(struct store_sqlite *s)
{
    for (int i = 0; i < s->n_open; i++)
        store_sqlite__conn_close(&s->rpool[i]);
    atomic_fetch_sub(&pool_size, STORE_SQLITE_POOL_MAX);
    pthread_mutex_destroy(&s->pmu);
    pthread_cond_destroy(&s->pcv);
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
    if (!c->db && store_sqlite__conn_open(s, c, false, err) != 0) {
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
