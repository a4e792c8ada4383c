/* store_sqlite_append.c - message appends with group commit.
 *
 * A commit costs a WAL write (and with synchronous=FULL an fsync): one per
 * message would cap appends at the disk's commit rate.  So append_message
 * only copies the message into a queue and returns; one writer thread per
 * store drains the queue in batches of up to STORE_SQLITE_BATCH_MAX and
 * commits each batch in one BEGIN IMMEDIATE ... COMMIT, then calls every
 * callback of the batch.  Batches form by themselves: while one commits,
 * the next arrivals queue up, so the batch size follows the load with no
 * timer and no added latency when idle.
 *
 * Per message, inside the transaction: one statement checks the sender is
 * a member and reads the chat's key and last_seq, one looks for an earlier
 * message with the same (chat, sender, client_id) when a client_id is given
 * (earlier messages of the same batch are visible to it, so duplicates
 * inside a batch collapse too), one inserts at seq = last_seq + 1 and one
 * moves the chat's last_seq and updated_at.  Queue order is append order, so
 * one sender's messages to a chat get increasing seqs in the order they were
 * appended, and seqs are gap-free: a seq is only ever taken inside the
 * transaction that commits it.
 *
 * A statement or commit failure rolls the whole batch back and every
 * callback of the batch gets the error: nothing of it is visible, so no
 * caller ever sees a message acked that is not stored, or stored but
 * refused. */
#include "store/store_sqlite_internal.h"

#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/log.h"

/* One queued append.  Owned by the queue, then by the writer thread;
 * freed after its callback. */
struct store_sqlite_item {
    struct store_sqlite_item *next;
    struct message m;      /* the caller's message; strings point into buf */
    store_append_cb cb;
    void *arg;
    int64_t t0;            /* clock_mono_ns() at append, for the latency metric */
    int rc;                /* the outcome given to cb */
    bool existed;
    struct message first;  /* when existed: the stored message (new strings) */
    struct chat_err err;
    char buf[];
};

static char *put(char **at, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *dst = *at;
    memcpy(dst, s, n);
    *at += n;
    return dst;
}

int store_sqlite__append_message(struct store *st, const struct message *m, store_append_cb cb,
                                 void *arg)
{
    struct store_sqlite *s = (struct store_sqlite *)st;
    int64_t t0 = clock_mono_ns();
    if (!m)
        return CHAT_E_INTERNAL;
    /* One allocation per append: the item and its three strings. */
    size_t n = sizeof(struct store_sqlite_item) + (m->text ? strlen(m->text) + 1 : 1) +
               (m->attachment_url ? strlen(m->attachment_url) + 1 : 0) +
               (m->client_id ? strlen(m->client_id) + 1 : 0);
    struct store_sqlite_item *it = calloc(1, n);
    if (!it)
        return CHAT_E_INTERNAL;
    char *at = it->buf;
    it->m = *m;
    it->m.id[OID_LEN] = it->m.chat_id[OID_LEN] = it->m.sender_id[OID_LEN] = '\0';
    it->m.seq = 0;
    it->m.text = put(&at, m->text ? m->text : "");
    it->m.attachment_url = put(&at, m->attachment_url);
    it->m.client_id = put(&at, m->client_id);
    it->cb = cb;
    it->arg = arg;
    it->t0 = t0;

    pthread_mutex_lock(&s->qmu);
    if (s->closing) {
        pthread_mutex_unlock(&s->qmu);
        free(it);
        return CHAT_E_UNAVAILABLE;
    }
    if (s->tail)
        s->tail->next = it;
    else
        s->head = it;
    s->tail = it;
    pthread_cond_signal(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
    return 0;
}

/* Appends one message inside the batch's transaction.  Returns 0 with the
 * item's own outcome in it->rc (0 or CHAT_E_NOT_FOUND), or a negative code
 * when the statement failed and the batch must be abandoned. */
static int append_one(struct store_sqlite_conn *c, struct store_sqlite_item *it)
{
    int rc;
    struct message *m = &it->m;
    /* Item strings outlive every step of the batch: SQLITE_STATIC saves a
     * copy per bind, and store_sqlite__done clears the bindings. */
    sqlite3_stmt *q = store_sqlite__stmt(
        c, STORE_SQLITE_APPEND_MEMBER,
        "SELECT c.k, c.last_seq, v.user FROM chats c JOIN members v ON v.chat = c.k"
        " AND v.user = (SELECT k FROM users WHERE id = ?2) WHERE c.id = ?1",
        &rc);
    if (!q)
        return store_sqlite__fail(c, rc, "prepare", &it->err);
    sqlite3_bind_text(q, 1, m->chat_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, m->sender_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    int64_t chat = 0, last_seq = 0, sender = 0;
    if (rc == SQLITE_ROW) {
        chat = sqlite3_column_int64(q, 0);
        last_seq = sqlite3_column_int64(q, 1);
        sender = sqlite3_column_int64(q, 2);
    } else if (rc != SQLITE_DONE) {
        int r = store_sqlite__fail(c, rc, "append: membership", &it->err);
        store_sqlite__done(q);
        return r;
    }
    store_sqlite__done(q);
    if (rc == SQLITE_DONE) {
        it->rc = chat_err_set(&it->err, CHAT_E_NOT_FOUND, NULL, "no such chat or not a member");
        return 0;
    }

    if (m->client_id) {
        q = store_sqlite__stmt(c, STORE_SQLITE_APPEND_DEDUPE,
                               "SELECT seq, id, text, attachment_url, created_at FROM messages"
                               " WHERE chat = ?1 AND sender = ?2 AND client_id = ?3",
                               &rc);
        if (!q)
            return store_sqlite__fail(c, rc, "prepare", &it->err);
        sqlite3_bind_int64(q, 1, chat);
        sqlite3_bind_int64(q, 2, sender);
        sqlite3_bind_text(q, 3, m->client_id, -1, SQLITE_STATIC);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            bool oom = false;
            struct message *f = &it->first;
            f->seq = sqlite3_column_int64(q, 0);
            store_sqlite__col_id(q, 1, f->id);
            memcpy(f->chat_id, m->chat_id, OID_SIZE);
            memcpy(f->sender_id, m->sender_id, OID_SIZE);
            store_sqlite__col_dup_nn(q, 2, &f->text, &oom);
            store_sqlite__col_dup(q, 3, &f->attachment_url, &oom);
            f->client_id = strdup(m->client_id);
            f->created_at = sqlite3_column_int64(q, 4);
            store_sqlite__done(q);
            if (oom || !f->client_id) {
                store_message_cleanup(f);
                it->rc = chat_err_set(&it->err, CHAT_E_INTERNAL, NULL, NULL);
                return 0;
            }
            it->existed = true;
            it->rc = 0;
            return 0;
        }
        if (rc != SQLITE_DONE) {
            int r = store_sqlite__fail(c, rc, "append: dedupe", &it->err);
            store_sqlite__done(q);
            return r;
        }
        store_sqlite__done(q);
    }

    int64_t seq = last_seq + 1;
    q = store_sqlite__stmt(c, STORE_SQLITE_APPEND_INSERT,
                           "INSERT INTO messages (chat, seq, id, sender, text, attachment_url,"
                           " client_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                           &rc);
    if (!q)
        return store_sqlite__fail(c, rc, "prepare", &it->err);
    sqlite3_bind_int64(q, 1, chat);
    sqlite3_bind_int64(q, 2, seq);
    sqlite3_bind_text(q, 3, m->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 4, sender);
    sqlite3_bind_text(q, 5, m->text, -1, SQLITE_STATIC);
    if (m->attachment_url)
        sqlite3_bind_text(q, 6, m->attachment_url, -1, SQLITE_STATIC);
    if (m->client_id)
        sqlite3_bind_text(q, 7, m->client_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 8, m->created_at);
    rc = sqlite3_step(q);
    if (rc != SQLITE_DONE) {
        int r = store_sqlite__fail(c, rc, "append: insert", &it->err);
        store_sqlite__done(q);
        return r;
    }
    store_sqlite__done(q);

    /* updated_at never moves backwards: two senders' clocks may cross by a
     * millisecond, and the chat list's order must stay stable. */
    q = store_sqlite__stmt(c, STORE_SQLITE_APPEND_BUMP,
                           "UPDATE chats SET last_seq = ?2, updated_at = max(updated_at, ?3)"
                           " WHERE k = ?1",
                           &rc);
    if (!q)
        return store_sqlite__fail(c, rc, "prepare", &it->err);
    sqlite3_bind_int64(q, 1, chat);
    sqlite3_bind_int64(q, 2, seq);
    sqlite3_bind_int64(q, 3, m->created_at);
    rc = sqlite3_step(q);
    if (rc != SQLITE_DONE) {
        int r = store_sqlite__fail(c, rc, "append: bump chat", &it->err);
        store_sqlite__done(q);
        return r;
    }
    store_sqlite__done(q);
    m->seq = seq;
    it->rc = 0;
    return 0;
}

/* Commits one batch (a NULL-terminated list) and completes its items. */
static void run_batch(struct store_sqlite *s, struct store_sqlite_item *batch)
{
    struct chat_err err = {0};
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    int r = store_sqlite__begin(c, true, &err);
    for (struct store_sqlite_item *it = batch; it && !r; it = it->next) {
        r = append_one(c, it);
        if (r)
            err = it->err;
    }
    if (!r)
        r = store_sqlite__commit(c, &err);
    store_sqlite__write_unlock(s); /* rolls back a failed batch */

    for (struct store_sqlite_item *it = batch, *next; it; it = next) {
        next = it->next;
        if (r) {
            /* Nothing of the batch is stored: every item fails alike. */
            it->rc = r;
            it->err = err;
            it->existed = false;
            it->m.seq = 0;
            store_message_cleanup(&it->first);
        }
        store__observe("append_message", it->t0);
        if (it->cb)
            it->cb(it->arg, it->rc, it->existed ? &it->first : &it->m, it->existed,
                   it->rc ? &it->err : NULL);
        store_message_cleanup(&it->first);
        free(it);
    }
}

static void *writer_main(void *arg)
{
    struct store_sqlite *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->qmu);
        while (!s->head && !s->closing)
            pthread_cond_wait(&s->qcv, &s->qmu);
        if (!s->head) { /* closing and drained */
            pthread_mutex_unlock(&s->qmu);
            break;
        }
        struct store_sqlite_item *batch = s->head, *last = s->head;
        for (int n = 1; n < STORE_SQLITE_BATCH_MAX && last->next; n++)
            last = last->next;
        s->head = last->next;
        if (!s->head)
            s->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&s->qmu);
        run_batch(s, batch);
    }
    return NULL;
}

int store_sqlite__append_start(struct store_sqlite *s, struct chat_err *err)
{
    int rc = pthread_create(&s->writer, NULL, writer_main, s);
    if (rc) {
        log_error("sqlite: cannot start the writer thread (errno %d)", rc);
        return chat_err_set(err, CHAT_E_UNAVAILABLE, NULL, NULL);
    }
    s->writer_started = true;
    return 0;
}

void store_sqlite__append_stop(struct store_sqlite *s)
{
    pthread_mutex_lock(&s->qmu);
    s->closing = true;
    pthread_cond_signal(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
    /* The writer commits and calls back everything already queued before it
     * sees the queue empty and exits. */
    pthread_join(s->writer, NULL);
    s->writer_started = false;
}
