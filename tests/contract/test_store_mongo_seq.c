/* test_store_mongo_seq.c - the MongoDB adapter's seq collision rounds: what
 * an append's callback reports is what is stored.
 *
 * Core builds both the sender's message.ack and the message.new event from
 * the one Message the append callback gets (src/core/messages.c
 * on_appended: one serialization for both), so "the ack and the event
 * carry different seqs for one message" can only come from the store: a
 * callback whose seq is not the one its message was stored with (a retry
 * that renumbered the message after its first seq was already used, an
 * insert error blamed on the wrong entry of a batch, a callback given
 * another entry's record).  These cases force the paths where seqs are
 * renumbered, deterministically, by doing to the chat's `seqNext` what a
 * lost FerretDB update from another process does (docs/data-model.md,
 * "FerretDB"): moving it back below stored seqs, at the start of a batch
 * and inside one (a gap below stored seqs), and then again and again while
 * two store handles on one database append to one chat.  Every callback is
 * then checked against the stored message with its id (seq and pos), and
 * the chat's stored messages against the callbacks (none stored that was
 * not acked, none acked that is not stored, no seq twice).
 *
 * Needs CHATLI_TEST_MONGODB_URI (e.g. from `scripts/ferretdb.sh start`);
 * without it the test exits 77 (CTest: skipped).  Each case gets its own
 * database (chatli_seq_<pid>_<n>), dropped at the end. */
#include "contract/store_contract.c"

#include <mongoc/mongoc.h>
#include <stdatomic.h>

#include "chatli/adapters/store_mongo.h"
#include "chatli/clock.h"

static char *base_uri;
static mongoc_client_t *raw; /* the test's own connection, for sabotage */

#define MAX_DBS 16
static char *dbs[MAX_DBS];
static int n_dbs;

static const char *new_db(void)
{
    char name[64];
    snprintf(name, sizeof name, "chatli_seq_%d_%d_%d", (int)getpid(),
             (int)(clock_now_ms() % 100000), n_dbs);
    if (n_dbs >= MAX_DBS)
        return "chatli_seq_overflow";
    dbs[n_dbs] = strdup(name);
    return dbs[n_dbs++];
}

/* Sets chat `chat`'s seqNext in database `db` to `v`, as a write that
 * another process's lost update put back would leave it. */
static void set_seq_next(const char *db, const char *chat, int64_t v)
{
    mongoc_collection_t *c = mongoc_client_get_collection(raw, db, "chats");
    bson_oid_t id;
    bson_oid_init_from_string(&id, chat);
    bson_t *q = BCON_NEW("_id", BCON_OID(&id));
    bson_t *up = BCON_NEW("$set", "{", "seqNext", BCON_INT64(v), "}");
    bson_error_t e;
    bool ok = mongoc_collection_update_one(c, q, up, NULL, NULL, &e);
    if (!ok)
        fprintf(stderr, "set seqNext: %s\n", e.message);
    CHECK(ok);
    bson_destroy(q);
    bson_destroy(up);
    mongoc_collection_destroy(c);
}

/* Deletes the stored message of chat `chat` with seq `seq` (a gap below
 * stored seqs, as a crash between reservation and insert leaves one). */
static void delete_seq(const char *db, const char *chat, int64_t seq)
{
    mongoc_collection_t *c = mongoc_client_get_collection(raw, db, "messages");
    bson_oid_t id;
    bson_oid_init_from_string(&id, chat);
    bson_t *q = BCON_NEW("chatId", BCON_OID(&id), "seq", BCON_INT64(seq));
    bson_t reply;
    bson_error_t e;
    bool ok = mongoc_collection_delete_one(c, q, NULL, &reply, &e);
    CHECK(ok);
    bson_iter_t it;
    CHECK(ok && bson_iter_init_find(&it, &reply, "deletedCount") && bson_iter_as_int64(&it) == 1);
    bson_destroy(&reply);
    bson_destroy(q);
    mongoc_collection_destroy(c);
}

/* One pipelined run of appends: all queued before any is waited for, so
 * they share commit batches. */
struct run {
    struct store *st;
    const char *chat, *sender, *prefix;
    int n;
    struct waiter *w;
    char (*ids)[OID_SIZE];
};

static void run_start(struct run *r)
{
    for (int i = 0; i < r->n; i++) {
        char cid[40];
        snprintf(cid, sizeof cid, "%s-%d", r->prefix, i);
        struct message m;
        msg_init(&m, r->chat, r->sender, "seq", cid, T0 + i);
        memcpy(r->ids[i], m.id, OID_SIZE);
        waiter_init(&r->w[i]);
        CHECK_EQ_INT(store_append_message(r->st, &m, waiter_cb, &r->w[i]), 0);
    }
}

static void *run_thread(void *arg)
{
    run_start(arg);
    return NULL;
}

/* Waits for every callback of `r`; each that succeeded must name its own
 * message, be new, and carry the seq and pos stored for that id; seqs grow
 * in queue order.  Failures may only be "try again" (UNAVAILABLE).  Adds
 * the acked seqs to seqs[*ns..] and counts acks and failures. */
static void run_check(struct run *r, int64_t above, int64_t *seqs, size_t *ns, int *acked,
                      int *failed)
{
    struct chat_err err = {0};
    int64_t prev = above;
    int wrong = 0, mismatch = 0, order = 0;
    for (int i = 0; i < r->n; i++) {
        struct waiter *w = &r->w[i];
        if (waiter_wait(w, 1) != 1) {
            wrong++;
            continue;
        }
        struct message got = {0};
        int grc = store_get_message(r->st, r->chat, r->ids[i], &got, &err);
        if (w->rc) {
            /* Never acked, so never stored: a stored message whose sender
             * was told to retry is one whose event is never published. */
            CHECK_EQ_INT(w->rc, CHAT_E_UNAVAILABLE);
            CHECK_EQ_INT(grc, CHAT_E_NOT_FOUND);
            (*failed)++;
        } else {
            (*acked)++;
            if (w->existed || strcmp(w->m.id, r->ids[i]) != 0)
                wrong++;
            if (grc != 0 || got.seq != w->m.seq || got.pos != w->m.seq ||
                w->m.pos != w->m.seq) {
                if (mismatch++ < 5)
                    fprintf(stderr,
                            "%s-%d: callback seq %lld pos %lld, stored rc %d seq %lld pos %lld\n",
                            r->prefix, i, (long long)w->m.seq, (long long)w->m.pos, grc,
                            (long long)got.seq, (long long)got.pos);
            }
            if (w->m.seq <= prev)
                order++;
            prev = w->m.seq;
            seqs[(*ns)++] = w->m.seq;
        }
        if (grc == 0)
            store_message_cleanup(&got);
        waiter_cleanup(w);
    }
    CHECK_EQ_INT(wrong, 0);
    CHECK_EQ_INT(mismatch, 0);
    CHECK_EQ_INT(order, 0);
}

/* The chat's stored messages are the `already` ones from before plus
 * exactly the acked ones: as many, every acked seq stored, no seq twice. */
static void check_stored(struct store *st, const char *chat, int64_t *seqs, size_t ns,
                         size_t already)
{
    struct chat_err err = {0};
    qsort(seqs, ns, sizeof *seqs, cmp_i64);
    int dups = 0;
    for (size_t i = 1; i < ns; i++)
        dups += seqs[i] == seqs[i - 1];
    CHECK_EQ_INT(dups, 0);
    struct message_list ml = {0};
    CHECK_EQ_INT(store_list_messages_after(st, chat, 0, (int)(ns + already + 10), &ml, &err), 0);
    CHECK_EQ_INT((int64_t)ml.n, (int64_t)(ns + already));
    /* Both sorted by seq: every acked seq is among the stored ones. */
    size_t j = 0, matched = 0;
    for (size_t i = 0; i < ml.n && j < ns; i++) {
        if (ml.items[i].seq == seqs[j]) {
            matched++;
            j++;
        }
    }
    CHECK_EQ_INT((int64_t)matched, (int64_t)ns);
    store_message_list_cleanup(&ml);
}

struct fixture {
    const char *db;
    struct store *s1, *s2;
    char a[OID_SIZE], b[OID_SIZE], chat[OID_SIZE];
};

static bool fixture_open(struct fixture *f)
{
    struct chat_err err = {0};
    f->db = new_db();
    CHECK_EQ_INT(store_mongo_open(base_uri, f->db, &f->s1, &err), 0);
    CHECK_EQ_INT(store_mongo_open(base_uri, f->db, &f->s2, &err), 0);
    if (!f->s1 || !f->s2)
        return false;
    mk_user(f->s1, "seqa", f->a);
    mk_user(f->s2, "seqb", f->b);
    char two[2][OID_SIZE];
    memcpy(two[0], f->a, OID_SIZE);
    memcpy(two[1], f->b, OID_SIZE);
    return mk_chat(f->s1, CHAT_GROUP, "seq", two, 2, T0, f->chat, NULL) == 0;
}

static void fixture_close(struct fixture *f)
{
    store_close(f->s1);
    store_close(f->s2);
}

/* seqNext put back to 0 under 5 stored messages: the next batch's first
 * insert collides, the allocator moves up, and the batch is renumbered. */
#define START_N 40
static void case_collision_at_batch_start(void)
{
    struct fixture f = {0};
    if (!fixture_open(&f)) {
        fixture_close(&f);
        return;
    }
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(append_wait(f.s1, f.chat, f.a, "before", NULL, T0, NULL, NULL), 0);
    set_seq_next(f.db, f.chat, 0);
    static struct waiter w[START_N];
    static char ids[START_N][OID_SIZE];
    struct run r = {.st = f.s2, .chat = f.chat, .sender = f.b, .prefix = "start", .n = START_N,
                    .w = w, .ids = ids};
    run_start(&r);
    static int64_t seqs[START_N];
    size_t ns = 0;
    int acked = 0, failed = 0;
    run_check(&r, 5, seqs, &ns, &acked, &failed);
    CHECK_EQ_INT(acked, START_N);
    check_stored(f.s1, f.chat, seqs, ns, 5);
    fixture_close(&f);
}

/* A gap at seq 3 under stored seqs 1..10 and seqNext put back to 2: the
 * next reservation starts at 3, which is free, and runs into 4, which is
 * not, inside the batch (the ordered insert stops there; what follows is
 * settled by _id and renumbered). */
#define MID_N 40
static void case_collision_inside_a_batch(void)
{
    struct fixture f = {0};
    if (!fixture_open(&f)) {
        fixture_close(&f);
        return;
    }
    for (int i = 0; i < 10; i++)
        CHECK_EQ_INT(append_wait(f.s1, f.chat, f.a, "before", NULL, T0, NULL, NULL), 0);
    delete_seq(f.db, f.chat, 3);
    set_seq_next(f.db, f.chat, 2);
    static struct waiter w[MID_N];
    static char ids[MID_N][OID_SIZE];
    struct run r = {.st = f.s1, .chat = f.chat, .sender = f.a, .prefix = "mid", .n = MID_N,
                    .w = w, .ids = ids};
    run_start(&r);
    static int64_t seqs[MID_N];
    size_t ns = 0;
    int acked = 0, failed = 0;
    /* The first may take the free 3; the rest must go above 10. */
    run_check(&r, 2, seqs, &ns, &acked, &failed);
    CHECK_EQ_INT(acked, MID_N);
    int below = 0, three = 0;
    for (size_t i = 0; i < ns; i++) {
        below += seqs[i] <= 10 && seqs[i] != 3;
        three += seqs[i] == 3;
    }
    CHECK_EQ_INT(below, 0);
    CHECK_EQ_INT(three, 1); /* the reservation started at the free 3 */
    check_stored(f.s1, f.chat, seqs, ns, 9);
    fixture_close(&f);
}

/* Two handles append to one chat while a third party keeps putting
 * seqNext back (every lost update at once): every acked message is stored
 * with the seq its callback gave. */
#define RACE_N 150
static atomic_bool race_stop;
struct saboteur {
    const char *db, *chat;
    int resets;
};

static void *saboteur_thread(void *arg)
{
    struct saboteur *s = arg;
    while (!atomic_load(&race_stop)) {
        set_seq_next(s->db, s->chat, 0);
        s->resets++;
        usleep(5000);
    }
    return NULL;
}

static void case_two_handles_with_lost_updates(void)
{
    struct fixture f = {0};
    if (!fixture_open(&f)) {
        fixture_close(&f);
        return;
    }
    static struct waiter w1[RACE_N], w2[RACE_N];
    static char ids1[RACE_N][OID_SIZE], ids2[RACE_N][OID_SIZE];
    struct run r1 = {.st = f.s1, .chat = f.chat, .sender = f.a, .prefix = "ra", .n = RACE_N,
                     .w = w1, .ids = ids1};
    struct run r2 = {.st = f.s2, .chat = f.chat, .sender = f.b, .prefix = "rb", .n = RACE_N,
                     .w = w2, .ids = ids2};
    struct saboteur sab = {.db = f.db, .chat = f.chat};
    atomic_store(&race_stop, false);
    pthread_t ts, t1, t2;
    pthread_create(&ts, NULL, saboteur_thread, &sab);
    pthread_create(&t1, NULL, run_thread, &r1);
    pthread_create(&t2, NULL, run_thread, &r2);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    static int64_t seqs[2 * RACE_N];
    size_t ns = 0;
    int acked = 0, failed = 0;
    run_check(&r1, 0, seqs, &ns, &acked, &failed);
    run_check(&r2, 0, seqs, &ns, &acked, &failed);
    atomic_store(&race_stop, true);
    pthread_join(ts, NULL);
    CHECK_EQ_INT(acked + failed, 2 * RACE_N);
    CHECK(acked > 0);
    check_stored(f.s1, f.chat, seqs, ns, 0);
    printf("race: %d acked, %d told to retry, %d seqNext resets\n", acked, failed, sab.resets);
    fixture_close(&f);
}

static void drop_databases(void)
{
    bson_error_t e;
    for (int i = 0; i < n_dbs; i++) {
        mongoc_database_t *db = mongoc_client_get_database(raw, dbs[i]);
        if (!mongoc_database_drop(db, &e))
            fprintf(stderr, "drop %s: %s\n", dbs[i], e.message);
        mongoc_database_destroy(db);
        free(dbs[i]);
    }
}

int main(void)
{
    const char *env = getenv("CHATLI_TEST_MONGODB_URI");
    if (!env || !*env) {
        printf("test_store_mongo_seq: skipped (CHATLI_TEST_MONGODB_URI is not set; "
               "scripts/ferretdb.sh start prints one)\n");
        return 77;
    }
    mongoc_init();
    base_uri = strdup(env);
    bson_error_t e;
    mongoc_uri_t *u = mongoc_uri_new_with_error(base_uri, &e);
    raw = u ? mongoc_client_new_from_uri(u) : NULL;
    mongoc_uri_destroy(u);
    if (!raw) {
        fprintf(stderr, "test_store_mongo_seq: CHATLI_TEST_MONGODB_URI does not parse\n");
        return 1;
    }
    case_collision_at_batch_start();
    case_collision_inside_a_batch();
    case_two_handles_with_lost_updates();
    drop_databases();
    mongoc_client_destroy(raw);
    free(base_uri);
    return check_done();
}
