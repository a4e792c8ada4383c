/* test_store_sqlite.c - the SQLite adapter against the store contract, plus
 * what only an embedded file database has: open errors, data surviving a
 * close and reopen, idempotent and refused migrations, WAL mode, a failed
 * group commit leaving nothing behind, and durability of acked appends when
 * the process is killed with SIGKILL.
 *
 * The contract suite is compiled into this file (see store_contract.h):
 * tests/CMakeLists.txt builds every test from its single source file. */
#include "contract/store_contract.c"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "chatli/adapters/store_sqlite.h"
#include "chatli/clock.h"
#include "store/store_sqlite_internal.h"

static char tmpdir[256];

/* ---- openers for the suite ---- */

static int open_memory(void *arg, struct store **out)
{
    struct chat_err err = {0};
    return store_sqlite_open(":memory:", out, &err);
}

static int open_tempfile(void *arg, struct store **out)
{
    int *counter = arg;
    char path[320];
    snprintf(path, sizeof path, "%s/contract-%d.db", tmpdir, (*counter)++);
    struct chat_err err = {0};
    return store_sqlite_open(path, out, &err);
}

static void rm_tree(const char *dir)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* ---- SQLite-only cases ---- */

static void case_open_errors(void)
{
    struct store *st = (struct store *)1;
    struct chat_err err = {0};
    char path[320];
    snprintf(path, sizeof path, "%s/no/such/dir/x.db", tmpdir);
    CHECK_EQ_INT(store_sqlite_open(path, &st, &err), CHAT_E_UNAVAILABLE);
    CHECK(st == NULL);
    CHECK_EQ_INT(err.code, CHAT_E_UNAVAILABLE);
    CHECK(strstr(err.msg, "sqlite") == NULL); /* no driver text for clients */
    CHECK_EQ_INT(store_sqlite_open("", &st, &err), CHAT_E_UNAVAILABLE);
    /* A directory where the file should be cannot be opened. */
    CHECK_EQ_INT(store_sqlite_open(tmpdir, &st, &err), CHAT_E_UNAVAILABLE);
    CHECK(st == NULL);
}

/* Reads PRAGMA `what` of a database file through a separate connection. */
static long long file_pragma(const char *path, const char *what, char *text, size_t n)
{
    sqlite3 *db;
    long long v = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *q;
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA %s", what);
        if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK) {
            if (sqlite3_step(q) == SQLITE_ROW) {
                v = sqlite3_column_int64(q, 0);
                if (text)
                    snprintf(text, n, "%s", (const char *)sqlite3_column_text(q, 0));
            }
            sqlite3_finalize(q);
        }
    }
    sqlite3_close(db);
    return v;
}

/* Does EXPLAIN QUERY PLAN of `sql` on a database file mention `index`? */
static bool file_plan_uses(const char *path, const char *sql, const char *index)
{
    sqlite3 *db;
    bool found = false;
    char eqp[1024];
    snprintf(eqp, sizeof eqp, "EXPLAIN QUERY PLAN %s", sql);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *q;
        if (sqlite3_prepare_v2(db, eqp, -1, &q, NULL) == SQLITE_OK) {
            while (sqlite3_step(q) == SQLITE_ROW) {
                const char *d = (const char *)sqlite3_column_text(q, 3);
                if (d && strstr(d, index))
                    found = true;
            }
            sqlite3_finalize(q);
        }
    }
    sqlite3_close(db);
    return found;
}

static void case_reopen_and_migrations(void)
{
    char path[320];
    snprintf(path, sizeof path, "%s/reopen.db", tmpdir);
    struct chat_err err = {0};
    struct store *st = NULL;
    CHECK_EQ_INT(store_sqlite_open(path, &st, &err), 0);
    if (!st)
        return;
    CHECK_EQ_STR(st->name, "sqlite");
    char a[OID_SIZE], b[OID_SIZE], chat[OID_SIZE], post[OID_SIZE];
    mk_user(st, "Persist", a);
    mk_user(st, "other", b);
    mk_post(st, a, "kept", T0, post);
    char two[2][OID_SIZE];
    memcpy(two[0], a, OID_SIZE);
    memcpy(two[1], b, OID_SIZE);
    CHECK_EQ_INT(mk_chat(st, CHAT_DIRECT, NULL, two, 2, T0, chat, NULL), 0);
    struct message m = {0};
    for (int i = 1; i <= 3; i++) {
        CHECK_EQ_INT(append_wait(st, chat, a, "persisted", NULL, T0 + i, &m, NULL), 0);
        store_message_cleanup(&m);
    }
    uint8_t h[32] = {1, 2, 3};
    CHECK_EQ_INT(store_create_session(st, h, a, T0 + 99, &err), 0);
    store_close(st);

    char mode[32] = "";
    CHECK_EQ_INT(file_pragma(path, "user_version", NULL, 0), 5);
    /* Revoking a user's tokens finds them by index (migration 4). */
    CHECK(file_plan_uses(path, "SELECT hash FROM sessions WHERE user_id = 'x'",
                         "sessions_by_user"));
    file_pragma(path, "journal_mode", mode, sizeof mode);
    CHECK_EQ_STR(mode, "wal");

    /* Reopen twice: the migrations do not run again and data is all there. */
    for (int round = 0; round < 2; round++) {
        st = NULL;
        CHECK_EQ_INT(store_sqlite_open(path, &st, &err), 0);
        if (!st)
            return;
        struct user u = {0};
        CHECK_EQ_INT(store_find_user_by_login(st, "persist", &u, &err), 0);
        CHECK_EQ_STR(u.id, a);
        store_user_cleanup(&u);
        struct post p = {0};
        CHECK_EQ_INT(store_get_post(st, post, NULL, &p, &err), 0);
        CHECK_EQ_STR(p.text, "kept");
        store_post_cleanup(&p);
        char uid[OID_SIZE];
        int64_t exp = 0;
        CHECK_EQ_INT(store_get_session(st, h, uid, &exp, &err), 0);
        CHECK_EQ_INT(exp, T0 + 99);
        /* seq continues after the stored last_seq. */
        CHECK_EQ_INT(append_wait(st, chat, b, "after reopen", NULL, T0 + 10, &m, NULL), 0);
        CHECK_EQ_INT(m.seq, 4 + round);
        store_message_cleanup(&m);
        struct chat c = {0};
        CHECK_EQ_INT(store_get_chat(st, chat, a, &c, &err), 0);
        CHECK_EQ_INT(c.last_seq, 4 + round);
        CHECK_EQ_INT(c.unread_count, 1 + round);
        CHECK_EQ_INT(c.n_members, 2);
        store_chat_cleanup(&c);
        store_close(st);
        CHECK_EQ_INT(file_pragma(path, "user_version", NULL, 0), 5);
    }

    /* A database from a newer binary is refused, not guessed at. */
    sqlite3 *db;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    st = (struct store *)1;
    CHECK_EQ_INT(store_sqlite_open(path, &st, &err), CHAT_E_UNAVAILABLE);
    CHECK(st == NULL);
}

/* Turns a version-5 file back into a version-2 one (migrations 5, 4 and 3
 * undone; 5 only made 3's messages_by_pos partial). */
#define V3_UNDO                                                                \
    "DROP INDEX sessions_by_user;"                                             \
    "DROP INDEX messages_by_pos;"                                              \
    "ALTER TABLE messages DROP COLUMN pos;"                                    \
    "ALTER TABLE messages DROP COLUMN edited_at;"                              \
    "ALTER TABLE messages DROP COLUMN deleted;"                                \
    "ALTER TABLE chats DROP COLUMN event_seq;"

/* A version-1 file (posts without edited_at) gets migration 2 at open: its
 * posts read as never edited and can be edited. */
static void case_migration_post_edits(void)
{
    char path[320];
    snprintf(path, sizeof path, "%s/v1.db", tmpdir);
    struct chat_err err = {0};
    struct store *st = NULL;
    CHECK_EQ_INT(store_sqlite_open(path, &st, &err), 0);
    if (!st)
        return;
    char a[OID_SIZE], post[OID_SIZE];
    mk_user(st, "old", a);
    mk_post(st, a, "from v1", T0, post);
    store_close(st);
    sqlite3 *db;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(db, "ALTER TABLE posts DROP COLUMN edited_at;" V3_UNDO
                                  "PRAGMA user_version=1", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    st = NULL;
    CHECK_EQ_INT(store_sqlite_open(path, &st, &err), 0);
    if (!st)
        return;
    CHECK_EQ_INT(file_pragma(path, "user_version", NULL, 0), 5);
    struct post p = {0};
    CHECK_EQ_INT(store_get_post(st, post, NULL, &p, &err), 0);
    CHECK_EQ_STR(p.text, "from v1");
    CHECK_EQ_INT(p.edited_at, 0);
    store_post_cleanup(&p);
    struct post up = {.text = "edited", .edited_at = T0 + 1};
    memcpy(up.id, post, OID_SIZE);
    CHECK_EQ_INT(store_update_post(st, &up, &err), 0);
    CHECK_EQ_INT(store_get_post(st, post, NULL, &p, &err), 0);
    CHECK_EQ_STR(p.text, "edited");
    CHECK_EQ_INT(p.edited_at, T0 + 1);
    store_post_cleanup(&p);
    store_close(st);
}

/* Opens a new store file `name` in tmpdir (its path in `path`) holding the
 * users <prefix>a and <prefix>b (ids in two[]) and a direct chat between
 * them (`chat`); NULL when the open failed (a check has failed then). */
static struct store *open_with_pair(const char *name, const char *prefix, char path[320],
                                    char two[2][OID_SIZE], char chat[OID_SIZE])
{
    struct chat_err err = {0};
    struct store *st = NULL;
    char user[64];
    snprintf(path, 320, "%s/%s", tmpdir, name);
    CHECK_EQ_INT(store_sqlite_open(path, &st, &err), 0);
    if (!st)
        return NULL;
    snprintf(user, sizeof user, "%sa", prefix);
    mk_user(st, user, two[0]);
    snprintf(user, sizeof user, "%sb", prefix);
    mk_user(st, user, two[1]);
    CHECK_EQ_INT(mk_chat(st, CHAT_DIRECT, NULL, two, 2, T0, chat, NULL), 0);
    return st;
}

/* A version-2 file (messages without positions) gets migration 3 at open:
 * its messages read as never edited nor deleted, their position is their
 * seq, and edits and new messages take positions after them. */
static void case_migration_message_edits(void)
{
    char path[320];
    struct chat_err err = {0};
    char two[2][OID_SIZE], chat[OID_SIZE];
    struct store *st = open_with_pair("v2.db", "v2", path, two, chat);
    if (!st)
        return;
    struct message m[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(append_wait(st, chat, two[0], "old", NULL, T0 + i, &m[i], NULL), 0);
    store_close(st);
    sqlite3 *db;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(db, V3_UNDO "PRAGMA user_version=2", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    st = NULL;
    CHECK_EQ_INT(store_sqlite_open(path, &st, &err), 0);
    if (!st)
        return;
    CHECK_EQ_INT(file_pragma(path, "user_version", NULL, 0), 5);
    struct message_list l = {0};
    CHECK_EQ_INT(store_list_changes_after(st, chat, 1, 10, &l, &err), 0);
    CHECK_EQ_INT(l.n, 2);
    for (size_t i = 0; i < l.n; i++) {
        CHECK_EQ_INT(l.items[i].pos, l.items[i].seq);
        CHECK_EQ_INT(l.items[i].edited_at, 0);
        CHECK(!l.items[i].deleted);
    }
    store_message_list_cleanup(&l);
    struct message e = {0};
    bool changed = false;
    CHECK_EQ_INT(store_change_message(st, chat, m[0].id, "new", T0 + 9, &e, &changed, &err), 0);
    CHECK_EQ_INT(e.pos, m[2].seq + 1);
    store_message_cleanup(&e);
    struct message n = {0};
    CHECK_EQ_INT(append_wait(st, chat, two[1], "after", NULL, T0 + 10, &n, NULL), 0);
    CHECK_EQ_INT(n.seq, m[2].seq + 2);
    store_message_cleanup(&n);
    for (int i = 0; i < 3; i++)
        store_message_cleanup(&m[i]);
    store_close(st);
}

/* Migration 5: messages_by_pos holds only changed messages, and catch-up
 * merges it with the primary key.  Both halves read their index in order
 * (no scan, no sort), a version-4 file gets the partial index at open, and
 * paging through interleaved new, edited and deleted messages in small
 * pages gives every message once, in position order, in its current
 * state. */
static void case_changes_merge(void)
{
    char path[320];
    struct chat_err err = {0};
    char two[2][OID_SIZE], chat[OID_SIZE];
    struct store *st = open_with_pair("merge.db", "merge", path, two, chat);
    if (!st)
        return;
    enum { N = 25 };
    struct message m[N];
    for (int i = 0; i < 20; i++)
        CHECK_EQ_INT(append_wait(st, chat, two[i & 1], "m", NULL, T0 + i, &m[i], NULL), 0);
    /* Changes take positions 21..24 (seq 3, 7, 15 edited, 10 deleted). */
    const int changed_at[] = {2, 6, 14, 9};
    struct message e = {0};
    bool changed = false;
    for (int k = 0; k < 4; k++) {
        const char *text = k == 3 ? NULL : "edited";
        CHECK_EQ_INT(store_change_message(st, chat, m[changed_at[k]].id, text, T0 + 50 + k, &e,
                                          &changed, &err), 0);
        CHECK_EQ_INT(e.pos, 21 + k);
        store_message_cleanup(&e);
    }
    for (int i = 20; i < N; i++)
        CHECK_EQ_INT(append_wait(st, chat, two[i & 1], "m", NULL, T0 + 60 + i, &m[i], NULL), 0);
    CHECK_EQ_INT(m[20].seq, 25);
    /* seq 26 edited at position 30. */
    CHECK_EQ_INT(store_change_message(st, chat, m[21].id, "late", T0 + 90, &e, &changed, &err),
                 0);
    CHECK_EQ_INT(e.pos, 30);
    store_message_cleanup(&e);

    /* Pages of 3 from position 0: 25 messages, positions strictly rising,
     * each message once; the changed ones at their change's position. */
    bool seen[N] = {0};
    int total = 0;
    int64_t after = 0;
    for (int round = 0; round < 20; round++) {
        struct message_list l = {0};
        CHECK_EQ_INT(store_list_changes_after(st, chat, after, 3, &l, &err), 0);
        for (size_t i = 0; i < l.n; i++) {
            CHECK(l.items[i].pos > after);
            after = l.items[i].pos;
            for (int j = 0; j < N; j++)
                if (strcmp(l.items[i].id, m[j].id) == 0) {
                    CHECK(!seen[j]);
                    seen[j] = true;
                    bool was_changed = j == 2 || j == 6 || j == 14 || j == 9 || j == 21;
                    CHECK_EQ_INT(l.items[i].pos != l.items[i].seq, was_changed);
                    CHECK_EQ_INT(l.items[i].deleted, j == 9);
                }
            total++;
        }
        bool end = l.n == 0;
        store_message_list_cleanup(&l);
        if (end)
            break;
    }
    CHECK_EQ_INT(total, N);
    CHECK_EQ_INT(after, 30);
    for (int j = 0; j < N; j++)
        CHECK(seen[j]);
    /* From position 20: 21, 22, 23, 24 (changes), 25 (new), 27 ... */
    struct message_list l = {0};
    CHECK_EQ_INT(store_list_changes_after(st, chat, 20, 6, &l, &err), 0);
    CHECK_EQ_INT(l.n, 6);
    static const int64_t want[6] = {21, 22, 23, 24, 25, 27};
    for (size_t i = 0; i < l.n && i < 6; i++)
        CHECK_EQ_INT(l.items[i].pos, want[i]);
    store_message_list_cleanup(&l);
    for (int i = 0; i < N; i++)
        store_message_cleanup(&m[i]);
    store_close(st);

    /* Each half is one ordered range of its index: no scan, no sort. */
    CHECK(file_plan_uses(path, STORE_SQLITE_SQL_NEW_AFTER, "USING PRIMARY KEY (chat=? AND seq>?)"));
    CHECK(file_plan_uses(path, STORE_SQLITE_SQL_CHANGED_AFTER,
                         "USING INDEX messages_by_pos (chat=? AND pos>?)"));
    CHECK(!file_plan_uses(path, STORE_SQLITE_SQL_NEW_AFTER, "TEMP B-TREE"));
    CHECK(!file_plan_uses(path, STORE_SQLITE_SQL_CHANGED_AFTER, "TEMP B-TREE"));
    CHECK(!file_plan_uses(path, STORE_SQLITE_SQL_NEW_AFTER, "SCAN"));
    CHECK(!file_plan_uses(path, STORE_SQLITE_SQL_CHANGED_AFTER, "SCAN"));

    /* A version-4 file (the full index) gets the partial one at open, and
     * its catch-up still finds the changes. */
    sqlite3 *db;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(db, "DROP INDEX messages_by_pos;"
                                  "CREATE INDEX messages_by_pos ON messages(chat, pos);"
                                  "PRAGMA user_version=4", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    st = NULL;
    CHECK_EQ_INT(store_sqlite_open(path, &st, &err), 0);
    if (!st)
        return;
    CHECK_EQ_INT(file_pragma(path, "user_version", NULL, 0), 5);
    CHECK_EQ_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    CHECK_EQ_INT(sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_schema"
                                        " WHERE name = 'messages_by_pos'", -1, &q, NULL),
                 SQLITE_OK);
    CHECK_EQ_INT(sqlite3_step(q), SQLITE_ROW);
    const char *sql = (const char *)sqlite3_column_text(q, 0);
    CHECK(sql && strstr(sql, "WHERE pos <> seq"));
    sqlite3_finalize(q);
    sqlite3_close(db);
    CHECK_EQ_INT(store_list_changes_after(st, chat, 20, 6, &l, &err), 0);
    CHECK_EQ_INT(l.n, 6);
    if (l.n == 6)
        CHECK_EQ_INT(l.items[5].pos, 27);
    store_message_list_cleanup(&l);
    store_close(st);
}

/* A commit that cannot happen (another connection holds the write lock past
 * busy_timeout) fails every append of the batch and stores none of it. */
static void case_failed_batch(void)
{
    char path[320];
    snprintf(path, sizeof path, "%s/locked.db", tmpdir);
    struct chat_err err = {0};
    struct store *st = NULL;
    CHECK_EQ_INT(store_sqlite_open(path, &st, &err), 0);
    if (!st)
        return;
    char a[OID_SIZE], chat[OID_SIZE];
    mk_user(st, "locked", a);
    char one[1][OID_SIZE];
    memcpy(one[0], a, OID_SIZE);
    CHECK_EQ_INT(mk_chat(st, CHAT_GROUP, NULL, one, 1, T0, chat, NULL), 0);

    sqlite3 *db;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    enum { NF = 5 };
    struct waiter w;
    waiter_init(&w);
    for (int i = 0; i < NF; i++) {
        struct message m;
        msg_init(&m, chat, a, "doomed", NULL, T0 + i);
        CHECK_EQ_INT(store_append_message(st, &m, waiter_cb, &w), 0);
    }
    /* The first batch waits out busy_timeout (5 s); later ones may too. */
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 30;
    pthread_mutex_lock(&w.mu);
    while (w.calls < NF && pthread_cond_timedwait(&w.cv, &w.mu, &dl) == 0)
        ;
    CHECK_EQ_INT(w.calls, NF);
    CHECK_EQ_INT(w.rc, CHAT_E_UNAVAILABLE);
    CHECK_EQ_INT(w.m.seq, 0);
    pthread_mutex_unlock(&w.mu);
    waiter_cleanup(&w);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);

    /* Nothing was stored, and the store works again. */
    struct message_list ml = {0};
    CHECK_EQ_INT(store_list_messages(st, chat, 0, 10, &ml, &err), 0);
    CHECK_EQ_INT(ml.n, 0);
    store_message_list_cleanup(&ml);
    struct message m = {0};
    CHECK_EQ_INT(append_wait(st, chat, a, "alive", NULL, T0 + 9, &m, NULL), 0);
    CHECK_EQ_INT(m.seq, 1);
    store_message_cleanup(&m);
    CHECK_EQ_INT(store_ping(st, &err), 0);
    store_close(st);
}

/* ---- durability: SIGKILL after acks ---- */

#define ACK_LEN 46 /* "%020lld <24 hex id>\n" */

static int ack_fd = -1;
static atomic_int in_flight;

static void child_ack_cb(void *arg, int rc, const struct message *m, bool existed,
                         const struct chat_err *err)
{
    if (rc == 0) {
        char rec[ACK_LEN + 1];
        snprintf(rec, sizeof rec, "%020lld %.24s\n", (long long)m->seq, m->id);
        /* One write per record, smaller than PIPE_BUF: records stay whole. */
        if (write(ack_fd, rec, ACK_LEN) != ACK_LEN)
            _exit(3);
    }
    atomic_fetch_sub(&in_flight, 1);
}

static void child_main(const char *path, const char *chat, const char *sender)
{
    struct store *st = NULL;
    struct chat_err err = {0};
    if (store_sqlite_open(path, &st, &err) != 0)
        _exit(2);
    int64_t start = clock_mono_ns();
    for (int i = 0; i < 400000 && clock_mono_ns() - start < 20000000000LL; i++) {
        while (atomic_load(&in_flight) > 512)
            usleep(200);
        struct message m;
        msg_init(&m, chat, sender, "durable", NULL, T0 + i);
        atomic_fetch_add(&in_flight, 1);
        if (store_append_message(st, &m, child_ack_cb, NULL) != 0)
            _exit(4);
    }
    store_close(st);
    _exit(0);
}

static void case_kill9_durability(void)
{
    char path[320];
    snprintf(path, sizeof path, "%s/kill9.db", tmpdir);
    struct chat_err err = {0};
    struct store *st = NULL;
    CHECK_EQ_INT(store_sqlite_open(path, &st, &err), 0);
    if (!st)
        return;
    char a[OID_SIZE], chat[OID_SIZE];
    mk_user(st, "durable", a);
    char one[1][OID_SIZE];
    memcpy(one[0], a, OID_SIZE);
    CHECK_EQ_INT(mk_chat(st, CHAT_GROUP, NULL, one, 1, T0, chat, NULL), 0);
    store_close(st); /* no adapter thread runs across the fork */

    int fds[2];
    CHECK_EQ_INT(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        ack_fd = fds[1];
        child_main(path, chat, a);
    }
    close(fds[1]);
    CHECK(pid > 0);
    if (pid <= 0)
        return;

    /* Read acks until a few thousand have come, then kill mid-stream. */
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    bool killed = false;
    int64_t start = clock_mono_ns();
    for (;;) {
        if (len + 4096 > cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fds[0], buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* EOF: the child is gone and every ack it wrote is read */
        len += (size_t)r;
        if (!killed && (len / ACK_LEN >= 3000 || clock_mono_ns() - start > 30000000000LL)) {
            kill(pid, SIGKILL);
            killed = true;
        }
    }
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(killed);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    size_t acks = len / ACK_LEN;
    CHECK(acks >= 3000);
    CHECK_EQ_INT(len % ACK_LEN, 0);

    /* Every acked message is in the reopened database, at its seq. */
    st = NULL;
    CHECK_EQ_INT(store_sqlite_open(path, &st, &err), 0);
    if (!st) {
        free(buf);
        return;
    }
    struct chat c = {0};
    CHECK_EQ_INT(store_get_chat(st, chat, NULL, &c, &err), 0);
    int64_t last = c.last_seq;
    store_chat_cleanup(&c);
    CHECK((size_t)last >= acks);
    char (*ids)[OID_SIZE] = calloc((size_t)last + 1, OID_SIZE);
    int64_t after = 0;
    while (ids && after < last) {
        struct message_list ml = {0};
        if (store_list_messages_after(st, chat, after, 1000, &ml, &err) != 0 || ml.n == 0) {
            store_message_list_cleanup(&ml);
            break;
        }
        for (size_t i = 0; i < ml.n; i++)
            if (ml.items[i].seq >= 1 && ml.items[i].seq <= last)
                memcpy(ids[ml.items[i].seq], ml.items[i].id, OID_SIZE);
        after = ml.items[ml.n - 1].seq;
        store_message_list_cleanup(&ml);
    }
    CHECK_EQ_INT(after, last);
    size_t missing = 0;
    for (size_t i = 0; ids && i < acks; i++) {
        char *rec = buf + i * ACK_LEN;
        long long seq = strtoll(rec, NULL, 10);
        if (seq < 1 || seq > last || strncmp(ids[seq], rec + 21, OID_LEN) != 0)
            missing++;
    }
    CHECK_EQ_INT(missing, 0);
    printf("kill -9: %zu acked appends, %lld stored, none lost: %s\n", acks, (long long)last,
           missing ? "NO" : "yes");
    free(ids);
    free(buf);
    store_close(st);
}

/* ---- a throughput figure (printed, never asserted) ---- */

struct rate_job {
    struct store *st;
    char chat[OID_SIZE], sender[OID_SIZE];
    int n;
};

static atomic_int rate_done;

static void rate_cb(void *arg, int rc, const struct message *m, bool existed,
                    const struct chat_err *err)
{
    atomic_fetch_add(&rate_done, 1);
}

static void *rate_thread(void *arg)
{
    struct rate_job *j = arg;
    for (int i = 0; i < j->n; i++) {
        struct message m;
        char cid[32];
        snprintf(cid, sizeof cid, "r%d", i);
        msg_init(&m, j->chat, j->sender, "a typical short chat message", cid, T0 + i);
        while (store_append_message(j->st, &m, rate_cb, NULL) != 0)
            usleep(100);
        /* Keep at most ~1000 in flight per thread, like bounded clients. */
        while (i - atomic_load(&rate_done) / 4 > 1000)
            usleep(100);
    }
    return NULL;
}

static void print_append_rate(void)
{
    char path[320];
    snprintf(path, sizeof path, "%s/rate.db", tmpdir);
    struct chat_err err = {0};
    struct store *st = NULL;
    if (store_sqlite_open(path, &st, &err) != 0)
        return;
    enum { NT = 4, PER = 10000 };
    struct rate_job jobs[NT];
    pthread_t th[NT];
    for (int i = 0; i < NT; i++) {
        char name[16];
        snprintf(name, sizeof name, "rate%d", i);
        jobs[i].st = st;
        jobs[i].n = PER;
        mk_user(st, name, jobs[i].sender);
        char one[1][OID_SIZE];
        memcpy(one[0], jobs[i].sender, OID_SIZE);
        mk_chat(st, CHAT_GROUP, NULL, one, 1, T0, jobs[i].chat, NULL);
    }
    atomic_store(&rate_done, 0);
    int64_t t0 = clock_mono_ns();
    for (int i = 0; i < NT; i++)
        pthread_create(&th[i], NULL, rate_thread, &jobs[i]);
    for (int i = 0; i < NT; i++)
        pthread_join(th[i], NULL);
    while (atomic_load(&rate_done) < NT * PER && clock_mono_ns() - t0 < 60000000000LL)
        usleep(1000);
    double secs = (double)(clock_mono_ns() - t0) / 1e9;
    printf("append rate (file, WAL, synchronous=NORMAL, %d threads): %.0f committed appends/s\n",
           NT, atomic_load(&rate_done) / secs);
    store_close(st);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/chatli-store-test-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }

    case_kill9_durability();
    case_open_errors();
    case_reopen_and_migrations();
    case_migration_post_edits();
    case_migration_message_edits();
    case_changes_merge();
    case_failed_batch();

    struct store_contract_opts mem = {.open = open_memory, .label = "sqlite :memory:",
                                      .strict_seq = true};
    CHECK_EQ_INT(store_contract_run(&mem), 0);
    int counter = 0;
    struct store_contract_opts file = {.open = open_tempfile, .arg = &counter,
                                       .label = "sqlite file", .strict_seq = true};
    CHECK_EQ_INT(store_contract_run(&file), 0);

    print_append_rate();
    rm_tree(tmpdir);
    return check_done();
}
