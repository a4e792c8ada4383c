/* store_sqlite_checkpoint.c - WAL checkpoints on a thread of their own.
 *
 * Why.  SQLite's default auto-checkpoint runs inside the COMMIT that takes
 * the WAL past 1000 pages, on the committing connection: for us the append
 * writer, so every ~1000 pages one group commit also copied the WAL into
 * the database and fsynced both files (synchronous=NORMAL syncs only at
 * checkpoints).  Those fsyncs were the 10 ms tail of message acks (issue 9:
 * ack p99 9.7-10.1 ms at 2,000 msg/s, matching the fdatasync times in
 * docs/performance.md).
 *
 * How.  The write connection gets a WAL hook (sqlite3_wal_hook, which
 * replaces the auto-checkpoint: the two share one slot), called after each
 * commit with the WAL's size in pages.  Past CKPT_PAGES it wakes this
 * thread, which runs a PASSIVE checkpoint on its own connection: it copies
 * what no reader still needs and never takes the write lock, so commits go
 * on meanwhile.  Once a checkpoint has copied everything, the writer's next
 * transaction starts the WAL from its beginning again.
 *
 * Restart.  SQLite starts the WAL over only when a write transaction
 * begins while every frame is checkpointed, and a checkpoint that runs
 * beside a writer committing every millisecond never gets there: new
 * frames land while it copies (and it then skips the database fsync, which
 * SQLite does only when it copied to the WAL's end).  So once the WAL is
 * past CKPT_RESTART_PAGES this thread finishes the job itself: it runs
 * more checkpoints until one has little left to copy, fsyncs the WAL and
 * the database file through its own connection's handles (the bulk of
 * the copy is flushed with nobody waiting), then takes `wmu`,
 * which holds every writer between two transactions (never inside one:
 * each write holds `wmu` for its whole transaction), runs one PASSIVE
 * checkpoint that copies the few frames since and syncs what little is
 * dirty, and lets go.  The writer's next transaction starts the WAL over;
 * SQLite syncs the new WAL header there (synchronous=NORMAL; only a VFS
 * reporting SQLITE_IOCAP_SEQUENTIAL skips it), the one fsync the writer
 * keeps.  The hold is timed as chatli_store_op_duration_seconds{op=
 * "wal_restart_hold"}.
 *
 * Bound.  A reader holding an old snapshot can keep any checkpoint from
 * finishing, and with it the restart.  At CKPT_WRITER_PAGES the hook
 * checkpoints on the writer itself, as SQLite would have done, so the WAL
 * stays bounded (journal_size_limit then truncates the file).  Not a hard
 * bound: while this thread sits in a slow fsync it holds SQLite's
 * checkpoint lock, the writer's checkpoint gets SQLITE_BUSY, and the WAL
 * grows until the fsync returns (measured on a box whose fsyncs took up to
 * 0.3 s: docs/performance.md).  Durability is unchanged: a commit is in
 * the WAL when it returns, whoever checkpoints later, and every checkpoint
 * syncs as SQLite's own would.
 *
 * Threads.  The hook runs on whatever thread commits on the write
 * connection (under `wmu`, which also guards ck_mark); the checkpointer
 * thread owns `ck`, and takes `wmu` only around the restart's checkpoint,
 * never while holding `ckmu` (the hook takes `ckmu` under `wmu`).  `ckmu`
 * guards ck_due and ck_stop; `ckcv` wakes the thread. */
#include "store_sqlite_internal.h"

#include <stdatomic.h>

#include "chatli/clock.h"
#include "chatli/log.h"
#include "chatli/metrics.h"

/* SQLite's own auto-checkpoint threshold: ~4 MiB of 4 KiB pages. */
#define CKPT_PAGES 1000
/* Past this (~32 MiB) the checkpointer holds the writer for one final
 * checkpoint so the WAL can start over (see Restart above). */
#define CKPT_RESTART_PAGES 8192
/* Before holding the writer, catch-up passes continue until one copies
 * fewer frames than this (at most CKPT_CATCHUP_PASSES of them). */
#define CKPT_HOLD_FRAMES 256
#define CKPT_CATCHUP_PASSES 6
/* The writer checkpoints itself past this (~64 MiB, journal_size_limit). */
#define CKPT_WRITER_PAGES 16384

/* WAL frames (pages) and commits of every write connection of the
 * process, for /metrics: frames per commit is what a commit costs in
 * pwrite64 and in WAL growth (docs/performance.md, issue 9). */
static atomic_long wal_frames, wal_commits;
static pthread_once_t wal_gauges_once = PTHREAD_ONCE_INIT;

static double gauge_frames(void *arg) { return (double)atomic_load(&wal_frames); }
static double gauge_commits(void *arg) { return (double)atomic_load(&wal_commits); }

static void register_wal_gauges(void)
{
    metrics_register_gauge("chatli_store_wal_frames_total",
                           "SQLite WAL frames (pages) written by commits.", gauge_frames, NULL);
    metrics_register_gauge("chatli_store_wal_commits_total",
                           "SQLite write transactions committed to the WAL.", gauge_commits,
                           NULL);
}

static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct store_sqlite *s = arg;
    (void)name;
    /* `pages` is the WAL's length after this commit: it grew by this
     * commit's frames, or was started over and holds only them. */
    atomic_fetch_add(&wal_commits, 1);
    atomic_fetch_add(&wal_frames, pages > s->wal_len ? pages - s->wal_len : pages);
    s->wal_len = pages;
    if (pages >= CKPT_WRITER_PAGES) {
        int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            log_warn("sqlite: checkpoint on the writer failed (rc=%d)", rc);
        return SQLITE_OK;
    }
    /* `pages` counts the whole WAL, checkpointed or not, until the writer
     * starts it over: wake the thread once per CKPT_PAGES new pages, not on
     * every commit past the threshold (measured: 271 fdatasyncs in 6 s at
     * 2,000 msg/s that way, against 52 with SQLite's auto-checkpoint). */
    if (pages < s->ck_mark)
        s->ck_mark = 0; /* the WAL was started over */
    if (pages - s->ck_mark >= CKPT_PAGES) {
        s->ck_mark = pages;
        pthread_mutex_lock(&s->ckmu);
        if (!s->ck_due) {
            s->ck_due = true;
            pthread_cond_signal(&s->ckcv);
        }
        pthread_mutex_unlock(&s->ckmu);
    }
    return SQLITE_OK;
}

/* fsyncs one of the checkpointer connection's files (`op`
 * SQLITE_FCNTL_FILE_POINTER: the database, SQLITE_FCNTL_JOURNAL_POINTER:
 * the WAL), as SQLite's own checkpoint would (SQLITE_SYNC_NORMAL). */
static int sync_file(struct store_sqlite *s, int op)
{
    sqlite3_file *f = NULL;
    int rc = sqlite3_file_control(s->ck.db, "main", op, &f);
    if (rc != SQLITE_OK || !f || !f->pMethods)
        return rc != SQLITE_OK ? rc : SQLITE_MISUSE;
    return f->pMethods->xSync(f, SQLITE_SYNC_NORMAL);
}

/* Lets the WAL start over (see Restart above): flush the copy so far with
 * nobody waiting, then hold every writer for one checkpoint to the end. */
static void restart(struct store_sqlite *s, int done)
{
    /* Catch up first with nobody waiting: each pass copies what was
     * committed during the last one, which shrinks while copying outruns
     * the commits (pages repeat across frames, so it does), until the hold
     * has only a few frames left to copy. */
    for (int pass = 0; pass < CKPT_CATCHUP_PASSES; pass++) {
        int log = 0, now = 0;
        int rc = sqlite3_wal_checkpoint_v2(s->ck.db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &now);
        if (rc != SQLITE_OK || now < done)
            return; /* busy, failed, or the writer's bound restarted the WAL */
        bool caught_up = now - done < CKPT_HOLD_FRAMES;
        done = now;
        if (caught_up)
            break;
    }
    int rc = sync_file(s, SQLITE_FCNTL_JOURNAL_POINTER);
    if (rc == SQLITE_OK)
        rc = sync_file(s, SQLITE_FCNTL_FILE_POINTER);
    if (rc != SQLITE_OK) {
        log_warn("sqlite: checkpointer sync failed (rc=%d)", rc);
        return; /* the writer's bound still restarts the WAL */
    }
    int64_t t0 = clock_mono_ns();
    pthread_mutex_lock(&s->wmu);
    rc = sqlite3_wal_checkpoint_v2(s->ck.db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    pthread_mutex_unlock(&s->wmu);
    store__observe("wal_restart_hold", t0);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        log_warn("sqlite: checkpoint failed (rc=%d): %s", rc, sqlite3_errmsg(s->ck.db));
}

static void *checkpointer_main(void *arg)
{
    struct store_sqlite *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->ckmu);
        while (!s->ck_due && !s->ck_stop)
            pthread_cond_wait(&s->ckcv, &s->ckmu);
        bool stop = s->ck_stop;
        s->ck_due = false;
        pthread_mutex_unlock(&s->ckmu);
        if (stop)
            break;
        int log = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(s->ck.db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        /* BUSY: another checkpoint (the writer's, past the bound) runs. */
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            log_warn("sqlite: checkpoint failed (rc=%d): %s", rc, sqlite3_errmsg(s->ck.db));
        if (rc == SQLITE_OK && log >= CKPT_RESTART_PAGES)
            restart(s, done);
    }
    return NULL;
}

int store_sqlite__checkpoint_start(struct store_sqlite *s, struct chat_err *err)
{
    pthread_once(&wal_gauges_once, register_wal_gauges);
    pthread_mutex_init(&s->ckmu, NULL);
    pthread_cond_init(&s->ckcv, NULL);
    s->ck_init = true;
    if (s->memory)
        return 0; /* memdb has no WAL: SQLite's defaults are fine */
    if (store_sqlite__conn_open(s, &s->ck, false, err) != 0)
        return CHAT_E_UNAVAILABLE;
    int rc = pthread_create(&s->ck_thread, NULL, checkpointer_main, s);
    if (rc) {
        log_error("sqlite: cannot start the checkpointer thread (errno %d)", rc);
        store_sqlite__conn_close(&s->ck);
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, NULL);
    }
    s->ck_started = true;
    sqlite3_wal_hook(s->w.db, wal_hook, s);
    return 0;
}

void store_sqlite__checkpoint_stop(struct store_sqlite *s)
{
    if (s->ck_started) {
        /* Back to SQLite's default on the writer, whose close then
         * checkpoints what is left. */
        sqlite3_wal_autocheckpoint(s->w.db, CKPT_PAGES);
        pthread_mutex_lock(&s->ckmu);
        s->ck_stop = true;
        pthread_cond_signal(&s->ckcv);
        pthread_mutex_unlock(&s->ckmu);
        pthread_join(s->ck_thread, NULL);
        s->ck_started = false;
        store_sqlite__conn_close(&s->ck);
    }
    if (s->ck_init) {
        pthread_mutex_destroy(&s->ckmu);
        pthread_cond_destroy(&s->ckcv);
        s->ck_init = false;
    }
}
