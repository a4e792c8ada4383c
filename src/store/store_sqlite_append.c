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
 * Inside the transaction each chat of the batch is read once (key and
 * event_seq, its position counter) and written once at the end (last_seq,
 * event_seq, updated_at), and each (chat, sender) pair's membership is
 * checked once; per message there is then one insert at seq = pos =
 * event_seq + 1 (edits and deletions advance event_seq too, so the seqs of
 * messages skip the positions changes took), plus one lookup for an earlier
 * message with the same (chat, sender, client_id) when a client_id is given
 * (earlier messages of the same batch are visible to it, so duplicates
 * inside a batch collapse too).  Queue order is append order, so one
 * sender's messages to a chat get increasing seqs in the order they were
 * appended, and a position is only ever taken inside the transaction that
 * commits it.
 *
 * A statement or commit failure rolls the whole batch back and every
 * callback of the batch gets the error: nothing of it is visible, so no
 * caller ever sees a message acked that is not stored, or stored but
 * refused. */
#include "store_sqlite_internal.h"

#include <stdlib.h>
#include <string.h>

#include "chatli/clock.h"
#include "chatli/log.h"

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

/* What a batch has learned about the chats and senders it touched.  The
 * write mutex is held for the whole batch, so nothing else can change a
 * membership or a last_seq meanwhile: each chat is read once and written
 * once per batch, and each (chat, sender) pair is checked once. */
struct batch_chat {
    char id[OID_SIZE];
    int64_t k;        /* 0: no such chat */
    int64_t last_seq; /* the highest position taken so far (event_seq) */
    int64_t max_at;   /* the latest created_at appended in this batch */
    bool dirty;
};

struct batch_sender {
    int chat;         /* index into the batch's chats */
    char id[OID_SIZE];
    int64_t k;        /* 0: not a member */
};

struct batch {
    struct batch_chat chats[STORE_SQLITE_BATCH_MAX];
    struct batch_sender senders[STORE_SQLITE_BATCH_MAX];
    int n_chats, n_senders;
};

/* The batch's entry for chat `id`, read from the database on first use.
 * Returns its index, or a negative port code. */
static int batch_chat(struct store_sqlite_conn *c, struct batch *b, const char *id,
                      struct chat_err *err)
{
    for (int i = 0; i < b->n_chats; i++)
        if (strcmp(b->chats[i].id, id) == 0)
            return i;
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(c, STORE_SQLITE_APPEND_CHAT,
                                  "SELECT k, event_seq FROM chats WHERE id = ?1", &q, err);
    if (r)
        return r;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    r = store_sqlite__step(c, q, "append: chat", err);
    /* One entry per distinct chat, at most one per item: never full. */
    struct batch_chat *e = &b->chats[b->n_chats];
    memset(e, 0, sizeof *e);
    memcpy(e->id, id, OID_SIZE);
    if (r == 1) {
        e->k = sqlite3_column_int64(q, 0);
        e->last_seq = sqlite3_column_int64(q, 1);
    }
    store_sqlite__done(q);
    return r < 0 ? r : b->n_chats++;
}

/* The sender's user key when it is a member of the batch's chat `chat`
 * (0 when not), or a negative port code. */
static int64_t batch_sender(struct store_sqlite_conn *c, struct batch *b, int chat, const char *id,
                            struct chat_err *err)
{
    for (int i = 0; i < b->n_senders; i++)
        if (b->senders[i].chat == chat && strcmp(b->senders[i].id, id) == 0)
            return b->senders[i].k;
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(
        c, STORE_SQLITE_APPEND_MEMBER,
        "SELECT user FROM members WHERE chat = ?1 AND user = (SELECT k FROM users WHERE id = ?2)",
        &q, err);
    if (r)
        return r;
    sqlite3_bind_int64(q, 1, b->chats[chat].k);
    sqlite3_bind_text(q, 2, id, -1, SQLITE_STATIC);
    r = store_sqlite__step(c, q, "append: membership", err);
    int64_t k = r == 1 ? sqlite3_column_int64(q, 0) : 0;
    store_sqlite__done(q);
    if (r < 0)
        return r;
    struct batch_sender *e = &b->senders[b->n_senders++];
    e->chat = chat;
    memcpy(e->id, id, OID_SIZE);
    e->k = k;
    return k;
}

/* Looks for an earlier message with the item's (chat, sender, client_id).
 * 1 when found (it->first filled, or it->rc set on allocation failure),
 * 0 when none, or a negative port code. */
static int find_duplicate(struct store_sqlite_conn *c, int64_t chat, int64_t sender,
                          struct store_sqlite_item *it)
{
    struct message *m = &it->m;
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(c, STORE_SQLITE_APPEND_DEDUPE,
                                  "SELECT " STORE_SQLITE_MSG_COLS("m") " FROM messages m"
                                  " WHERE m.chat = ?1 AND m.sender = ?2 AND m.client_id = ?3",
                                  &q, &it->err);
    if (r)
        return r;
    sqlite3_bind_int64(q, 1, chat);
    sqlite3_bind_int64(q, 2, sender);
    sqlite3_bind_text(q, 3, m->client_id, -1, SQLITE_STATIC);
    r = store_sqlite__step(c, q, "append: dedupe", &it->err);
    if (r != 1) {
        store_sqlite__done(q);
        return r;
    }
    /* The stored message is the same chat's and sender's, so only its own
     * columns are read. */
    bool oom = false;
    struct message *f = &it->first;
    store_sqlite__read_message(q, 0, f, &oom);
    memcpy(f->chat_id, m->chat_id, OID_SIZE);
    memcpy(f->sender_id, m->sender_id, OID_SIZE);
    store_sqlite__done(q);
    if (oom) {
        store_message_cleanup(f);
        it->rc = chat_err_set(&it->err, CHAT_E_INTERNAL, NULL, NULL);
    } else {
        it->existed = true;
        it->rc = 0;
    }
    return 1;
}

/* Appends one message inside the batch's transaction.  Returns 0 with the
 * item's own outcome in it->rc (0, CHAT_E_NOT_FOUND, or CHAT_E_INTERNAL when
 * a duplicate could not be copied), or a negative code when a statement
 * failed and the batch must be abandoned. */
static int append_one(struct store_sqlite_conn *c, struct batch *b, struct store_sqlite_item *it)
{
    struct message *m = &it->m;
    int ci = batch_chat(c, b, m->chat_id, &it->err);
    if (ci < 0)
        return ci;
    struct batch_chat *ch = &b->chats[ci];
    int64_t sender = ch->k ? batch_sender(c, b, ci, m->sender_id, &it->err) : 0;
    if (sender < 0)
        return (int)sender;
    if (sender == 0) {
        it->rc = chat_err_set(&it->err, CHAT_E_NOT_FOUND, NULL, "no such chat or not a member");
        return 0;
    }
    if (m->client_id) {
        /* Earlier messages of this batch are visible here too, so a
         * duplicate inside one batch collapses like one across batches. */
        int r = find_duplicate(c, ch->k, sender, it);
        if (r != 0)
            return r < 0 ? r : 0;
    }

    int64_t seq = ch->last_seq + 1;
    /* Item strings outlive every step of the batch: SQLITE_STATIC saves a
     * copy per bind, and store_sqlite__exec clears the bindings. */
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(
        c, STORE_SQLITE_APPEND_INSERT,
        "INSERT INTO messages (chat, seq, id, sender, text, attachment_url,"
        " client_id, created_at, pos) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?2)",
        &q, &it->err);
    if (r)
        return r;
    sqlite3_bind_int64(q, 1, ch->k);
    sqlite3_bind_int64(q, 2, seq);
    sqlite3_bind_text(q, 3, m->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 4, sender);
    sqlite3_bind_text(q, 5, m->text, -1, SQLITE_STATIC);
    if (m->attachment_url)
        sqlite3_bind_text(q, 6, m->attachment_url, -1, SQLITE_STATIC);
    if (m->client_id)
        sqlite3_bind_text(q, 7, m->client_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 8, m->created_at);
    if ((r = store_sqlite__exec(c, q, "append: insert", &it->err)))
        return r;
    ch->last_seq = seq;
    if (!ch->dirty || m->created_at > ch->max_at)
        ch->max_at = m->created_at;
    ch->dirty = true;
    m->seq = seq;
    m->pos = seq;
    it->rc = 0;
    return 0;
}

/* Writes each touched chat's last_seq and updated_at once per batch.
 * updated_at never moves backwards: two senders' clocks may cross by a
 * millisecond, and the chat list's order must stay stable. */
static int flush_chats(struct store_sqlite_conn *c, struct batch *b, struct chat_err *err)
{
    sqlite3_stmt *q;
    int r = store_sqlite__prepare(c, STORE_SQLITE_APPEND_BUMP,
                                  "UPDATE chats SET last_seq = ?2, event_seq = ?2,"
                                  " updated_at = max(updated_at, ?3) WHERE k = ?1",
                                  &q, err);
    for (int i = 0; i < b->n_chats && !r; i++) {
        struct batch_chat *ch = &b->chats[i];
        if (!ch->dirty)
            continue;
        sqlite3_bind_int64(q, 1, ch->k);
        sqlite3_bind_int64(q, 2, ch->last_seq);
        sqlite3_bind_int64(q, 3, ch->max_at);
        r = store_sqlite__exec(c, q, "append: bump chat", err);
    }
    return r;
}

/* Commits one batch (a NULL-terminated list) and completes its items. */
static void run_batch(struct store_sqlite *s, struct batch *b, struct store_sqlite_item *batch)
{
    struct chat_err err = {0};
    b->n_chats = b->n_senders = 0;
    struct store_sqlite_conn *c = store_sqlite__write_lock(s);
    int r = store_sqlite__begin(c, true, &err);
    for (struct store_sqlite_item *it = batch; it && !r; it = it->next) {
        r = append_one(c, b, it);
        if (r)
            err = it->err;
    }
    if (!r)
        r = flush_chats(c, b, &err);
    if (!r)
        r = store_sqlite__commit(c, &err);
    store_sqlite__write_unlock(s); /* rolls back a failed batch */

    store__completions_begin(&s->base);
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
    store__completions_end(&s->base);
}

static void *writer_main(void *arg)
{
    struct store_sqlite *s = arg;
    struct batch b; /* about 25 KiB, on the writer's own stack */
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
        run_batch(s, &b, batch);
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
