/* test_store_mongo.c - the MongoDB adapter against the store contract, plus
 * what only a networked database has: open errors, the database going away
 * mid-run (fast CHAT_E_UNAVAILABLE, ping down, recovery, no acked message
 * lost), pool exhaustion answering instead of hanging, two instances
 * sharing one database (seq allocation and clientId dedupe across them),
 * the indexes the adapter relies on, and the pool gauges.
 *
 * Needs CHATLI_TEST_MONGODB_URI (e.g. from `scripts/ferretdb.sh start`);
 * without it the test prints that it was skipped and exits 77, which CTest
 * reports as skipped.  Every store opened here gets its own database
 * (chatli_test_<pid>_<n>), dropped at the end.
 *
 * The outage is made by a small TCP proxy inside this process between the
 * adapter and the server: "down" closes every proxied connection and the
 * listening socket (new connects are refused, as with a stopped server),
 * "stall" stops moving bytes (a hung server).  The database itself keeps
 * running, so the test checks the adapter's behaviour, not the server's
 * durability, and needs no control over the server process. */
#include "contract/store_contract.c"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <mongoc/mongoc.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "chatli/adapters/store_mongo.h"
#include "chatli/clock.h"
#include "chatli/metrics.h"

static char *base_uri;   /* CHATLI_TEST_MONGODB_URI + test timeouts */
static bool is_ferretdb; /* the server answers buildInfo with ferretdbVersion */
static int run_id;

/* Databases created, dropped at the end. */
#define MAX_DBS 256
static char *dbs[MAX_DBS];
static int n_dbs;

static const char *new_db_name(void)
{
    char name[64];
    snprintf(name, sizeof name, "chatli_test_%d_%d_%d", (int)getpid(), run_id, n_dbs);
    if (n_dbs >= MAX_DBS)
        return "chatli_test_overflow";
    dbs[n_dbs] = strdup(name);
    return dbs[n_dbs++];
}

/* `uri` with its database path replaced by `db` (when not NULL) and the
 * `key`, `value` pairs of `kv` added to its query unless it sets them
 * already.  New string, or NULL when it does not parse.  (String work:
 * mongoc_uri_get_string() does not reflect mongoc_uri_set_*() changes.) */
static char *uri_with_db(const char *uri, const char *db, const char *const *kv)
{
    bson_error_t e;
    mongoc_uri_t *u = mongoc_uri_new_with_error(uri, &e);
    if (!u)
        return NULL;
    const char *hs = strstr(uri, "://");
    hs = hs ? hs + 3 : uri;
    const char *q = strchr(hs, '?');
    const char *slash = strchr(hs, '/');
    if (slash && q && slash > q)
        slash = NULL;
    size_t host_end = slash ? (size_t)(slash - uri) : q ? (size_t)(q - uri) : strlen(uri);
    const char *path = slash ? slash + 1 : "";
    size_t path_len = q ? (size_t)(q - path) : strlen(path);
    if (!slash)
        path_len = 0;
    char buf[2048];
    int n = snprintf(buf, sizeof buf, "%.*s/%.*s?%s", (int)host_end, uri,
                     db ? (int)strlen(db) : (int)path_len, db ? db : path, q ? q + 1 : "");
    bool first = !q || !q[1];
    for (int i = 0; kv[i] && n > 0 && (size_t)n < sizeof buf; i += 2) {
        if (mongoc_uri_has_option(u, kv[i]))
            continue;
        n += snprintf(buf + n, sizeof buf - (size_t)n, "%s%s=%s", first ? "" : "&", kv[i],
                      kv[i + 1]);
        first = false;
    }
    mongoc_uri_destroy(u);
    return n > 0 && (size_t)n < sizeof buf ? strdup(buf) : NULL;
}

static char *uri_with(const char *uri, const char *const *kv) { return uri_with_db(uri, NULL, kv); }

static int64_t ms_since(int64_t t0) { return (clock_mono_ns() - t0) / 1000000; }

/* ---- opener for the suite ---- */

static int open_fresh(void *arg, struct store **out)
{
    struct chat_err err = {0};
    return store_mongo_open(base_uri, new_db_name(), out, &err);
}

/* ---- a loopback TCP proxy that can play dead ---- */

enum { PROXY_UP = 0, PROXY_DOWN = 1, PROXY_STALL = 2 };
#define MAX_PAIRS 128

struct proxy {
    struct sockaddr_in up;   /* the real server */
    int port;                /* ours, kept across down/up */
    int lfd;
    int pairs[MAX_PAIRS][2]; /* client fd, server fd; -1 when free */
    atomic_int mode;
    atomic_bool stop;
    int ctl[2];              /* wakes the loop when mode or stop change */
    pthread_t th;
};

static int proxy_listen(struct proxy *p)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 64)) {
        close(fd);
        return -1;
    }
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    p->port = ntohs(a.sin_port);
    return fd;
}

static void proxy_close_pair(struct proxy *p, int i)
{
    for (int k = 0; k < 2; k++) {
        if (p->pairs[i][k] >= 0)
            close(p->pairs[i][k]);
        p->pairs[i][k] = -1;
    }
}

/* Copies what is readable on `from` to `to`; false on EOF or error. */
static bool pump(int from, int to)
{
    char buf[65536];
    ssize_t r = read(from, buf, sizeof buf);
    if (r <= 0)
        return false;
    for (ssize_t off = 0; off < r;) {
        ssize_t w = write(to, buf + off, (size_t)(r - off));
        if (w <= 0)
            return false;
        off += w;
    }
    return true;
}

static void *proxy_main(void *arg)
{
    struct proxy *p = arg;
    while (!atomic_load(&p->stop)) {
        int mode = atomic_load(&p->mode);
        if (mode == PROXY_DOWN) {
            if (p->lfd >= 0)
                close(p->lfd);
            p->lfd = -1;
            for (int i = 0; i < MAX_PAIRS; i++)
                proxy_close_pair(p, i);
        } else if (p->lfd < 0) {
            p->lfd = proxy_listen(p);
        }
        struct pollfd fds[1 + 1 + 2 * MAX_PAIRS];
        int map[1 + 1 + 2 * MAX_PAIRS];
        int n = 0;
        fds[n].fd = p->ctl[0];
        fds[n].events = POLLIN;
        map[n++] = -1;
        if (mode == PROXY_UP) {
            if (p->lfd >= 0) {
                fds[n].fd = p->lfd;
                fds[n].events = POLLIN;
                map[n++] = -2;
            }
            for (int i = 0; i < MAX_PAIRS; i++)
                for (int k = 0; k < 2; k++)
                    if (p->pairs[i][k] >= 0) {
                        fds[n].fd = p->pairs[i][k];
                        fds[n].events = POLLIN;
                        map[n++] = i * 2 + k;
                    }
        }
        if (poll(fds, (nfds_t)n, 200) <= 0)
            continue;
        for (int j = 0; j < n; j++) {
            if (!fds[j].revents)
                continue;
            if (map[j] == -1) {
                char b[64];
                if (read(p->ctl[0], b, sizeof b) < 0 && errno != EINTR)
                    break;
            } else if (map[j] == -2) {
                int c = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                    continue;
                int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                int slot = -1;
                for (int i = 0; i < MAX_PAIRS && slot < 0; i++)
                    if (p->pairs[i][0] < 0)
                        slot = i;
                if (slot < 0 || connect(s, (struct sockaddr *)&p->up, sizeof p->up)) {
                    close(c);
                    close(s);
                    continue;
                }
                p->pairs[slot][0] = c;
                p->pairs[slot][1] = s;
            } else {
                int i = map[j] / 2, k = map[j] % 2;
                if (p->pairs[i][k] < 0)
                    continue; /* closed earlier in this round */
                if (!pump(p->pairs[i][k], p->pairs[i][1 - k]))
                    proxy_close_pair(p, i);
            }
        }
    }
    if (p->lfd >= 0)
        close(p->lfd);
    for (int i = 0; i < MAX_PAIRS; i++)
        proxy_close_pair(p, i);
    return NULL;
}

static void proxy_set(struct proxy *p, int mode)
{
    atomic_store(&p->mode, mode);
    if (write(p->ctl[1], "x", 1) < 0)
        perror("proxy ctl");
    /* Let the loop act on it before the caller goes on. */
    usleep(300000);
}

/* Starts a proxy to the first host of `uri`.  false when the URI is not a
 * plain host:port (e.g. mongodb+srv), and the proxy cases are skipped. */
static bool proxy_start(struct proxy *p, const char *uri)
{
    memset(p, 0, sizeof *p);
    p->lfd = -1;
    for (int i = 0; i < MAX_PAIRS; i++)
        p->pairs[i][0] = p->pairs[i][1] = -1;
    bson_error_t e;
    mongoc_uri_t *u = mongoc_uri_new_with_error(uri, &e);
    if (!u)
        return false;
    const mongoc_host_list_t *h = mongoc_uri_get_hosts(u);
    bool ok = h && !h->next && h->family != AF_UNIX;
    if (ok) {
        p->up.sin_family = AF_INET;
        p->up.sin_port = htons(h->port);
        ok = inet_pton(AF_INET, strcmp(h->host, "localhost") == 0 ? "127.0.0.1" : h->host,
                       &p->up.sin_addr) == 1;
    }
    mongoc_uri_destroy(u);
    if (!ok)
        return false;
    if (pipe2(p->ctl, O_CLOEXEC))
        return false;
    p->lfd = proxy_listen(p);
    if (p->lfd < 0)
        return false;
    pthread_create(&p->th, NULL, proxy_main, p);
    return true;
}

static void proxy_stop(struct proxy *p)
{
    atomic_store(&p->stop, true);
    if (write(p->ctl[1], "x", 1) < 0)
        perror("proxy ctl");
    pthread_join(p->th, NULL);
    close(p->ctl[0]);
    close(p->ctl[1]);
}

/* The base URI re-pointed at the proxy, with extra options. */
static char *proxied_uri(const struct proxy *p, const char *const *kv)
{
    char hostport[64];
    snprintf(hostport, sizeof hostport, "mongodb://127.0.0.1:%d/", p->port);
    const char *defaults[] = {"serverSelectionTimeoutMS", "2000", NULL};
    char *a = uri_with(hostport, kv);
    char *b = a ? uri_with(a, defaults) : NULL;
    free(a);
    return b;
}

/* ---- Mongo-only cases ---- */

static void case_open_errors(void)
{
    struct store *st = (struct store *)1;
    struct chat_err err = {0};
    CHECK_EQ_INT(store_mongo_open("not a uri", NULL, &st, &err), CHAT_E_BAD_REQUEST);
    CHECK(st == NULL);
    CHECK(strstr(err.msg, "not a uri") == NULL); /* never echo the URI */

    /* Nothing listens there: UNAVAILABLE within serverSelectionTimeoutMS. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd); /* the port is free and refuses connections */
    char uri[128];
    snprintf(uri, sizeof uri, "mongodb://127.0.0.1:%d/?serverSelectionTimeoutMS=500",
             ntohs(a.sin_port));
    st = (struct store *)1;
    int64_t t0 = clock_mono_ns();
    CHECK_EQ_INT(store_mongo_open(uri, "x", &st, &err), CHAT_E_UNAVAILABLE);
    CHECK(ms_since(t0) < 3000);
    CHECK(st == NULL);
    CHECK_EQ_INT(err.code, CHAT_E_UNAVAILABLE);
}

/* The database name: the argument, else the URI's path, else "chatli"; the
 * indexes are there and enforce what the adapter relies on. */
static void case_db_and_indexes(void)
{
    struct chat_err err = {0};
    const char *name = new_db_name();
    /* Put the name in the URI path and pass none. */
    const char *none[] = {NULL};
    char *with_db = uri_with_db(base_uri, name, none);
    bson_error_t e;
    mongoc_uri_t *u = with_db ? mongoc_uri_new_with_error(with_db, &e) : NULL;
    free(with_db);
    CHECK(u != NULL);
    if (!u)
        return;
    CHECK_EQ_STR(mongoc_uri_get_database(u), name);
    struct store *st = NULL;
    CHECK_EQ_INT(store_mongo_open(mongoc_uri_get_string(u), "", &st, &err), 0);
    if (!st) {
        mongoc_uri_destroy(u);
        return;
    }
    CHECK_EQ_STR(st->name, "mongodb");
    char a[OID_SIZE];
    mk_user(st, "Indexed", a);

    mongoc_client_t *c = mongoc_client_new_from_uri(u);
    mongoc_client_set_error_api(c, MONGOC_ERROR_API_VERSION_2);
    mongoc_collection_t *users = mongoc_client_get_collection(c, name, "users");
    bson_t q = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&q, "usernameLower", "indexed");
    CHECK_EQ_INT(mongoc_collection_count_documents(users, &q, NULL, NULL, NULL, &e), 1);
    bson_destroy(&q);
    mongoc_collection_destroy(users);

    /* Every index the adapter declares exists, unique where it must be. */
    struct {
        const char *coll, *name;
        bool unique;
    } want[] = {
        {"users", "email_1", true},
        {"users", "usernameLower_1", true},
        {"posts", "createdAt_-1", false},
        {"posts", "createdAt_-1__id_-1", false},
        {"posts", "authorId_1_createdAt_-1__id_-1", false},
        {"likes", "postId_1_userId_1", true},
        {"comments", "postId_1_createdAt_-1__id_-1", false},
        {"chats", "pairKey_1", true},
        {"chats", "members_1_updatedAt_-1__id_-1", false},
        {"messages", "chatId_1_seq_1", true},
        {"messages", "chatId_1_senderId_1_clientKey_1", true},
        {"messages", "chatId_1_createdAt_-1", false},
        {"messages", "chatId_1_pos_1", false},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        mongoc_collection_t *col = mongoc_client_get_collection(c, name, want[i].coll);
        mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(col, NULL);
        const bson_t *doc;
        int found = 0;
        while (mongoc_cursor_next(cur, &doc)) {
            bson_iter_t it;
            if (bson_iter_init_find(&it, doc, "name") &&
                strcmp(bson_iter_utf8(&it, NULL), want[i].name) == 0) {
                bool uniq = bson_iter_init_find(&it, doc, "unique") && bson_iter_as_bool(&it);
                found = uniq == want[i].unique ? 1 : 2;
            }
        }
        if (found != 1)
            fprintf(stderr, "index %s.%s: %s\n", want[i].coll, want[i].name,
                    found ? "wrong uniqueness" : "missing");
        CHECK_EQ_INT(found, 1);
        mongoc_cursor_destroy(cur);
        mongoc_collection_destroy(col);
    }

    /* The dedupe key is enforced by the server, not only by the writer. */
    mongoc_collection_t *msgs = mongoc_client_get_collection(c, name, "messages");
    bson_oid_t chat, sender;
    bson_oid_init(&chat, NULL);
    bson_oid_init(&sender, NULL);
    for (int i = 0; i < 2; i++) {
        bson_t d = BSON_INITIALIZER;
        BSON_APPEND_OID(&d, "chatId", &chat);
        BSON_APPEND_OID(&d, "senderId", &sender);
        BSON_APPEND_UTF8(&d, "clientKey", "c:same");
        BSON_APPEND_INT64(&d, "seq", 100 + i);
        bool ok = mongoc_collection_insert_one(msgs, &d, NULL, NULL, &e);
        CHECK(ok == (i == 0));
        if (i == 1)
            CHECK_EQ_INT(e.code, 11000);
        bson_destroy(&d);
    }

    /* Messages stored before edits (no pos, editedAt, deleted; issue 13)
     * get pos = seq at the next open, read as neither edited nor deleted,
     * and can be edited at a later position. */
    char two[2][OID_SIZE], ch[OID_SIZE];
    memcpy(two[0], a, OID_SIZE);
    mk_user(st, "Older", two[1]);
    CHECK_EQ_INT(mk_chat(st, CHAT_DIRECT, NULL, two, 2, T0, ch, NULL), 0);
    struct message old[2];
    for (int i = 0; i < 2; i++)
        CHECK_EQ_INT(append_wait(st, ch, two[i], "before edits", NULL, T0 + i, &old[i], NULL), 0);
    bson_t all = BSON_INITIALIZER, unset = BSON_INITIALIZER;
    BCON_APPEND(&unset, "$unset", "{", "pos", BCON_INT32(1), "editedAt", BCON_INT32(1), "deleted",
                BCON_INT32(1), "}");
    CHECK(mongoc_collection_update_many(msgs, &all, &unset, NULL, NULL, &e));
    bson_destroy(&unset);
    bson_init(&unset);
    BCON_APPEND(&unset, "$unset", "{", "lastMessage.pos", BCON_INT32(1), "}");
    mongoc_collection_t *chats = mongoc_client_get_collection(c, name, "chats");
    CHECK(mongoc_collection_update_many(chats, &all, &unset, NULL, NULL, &e));
    mongoc_collection_destroy(chats);
    bson_destroy(&unset);
    bson_t nopos = BSON_INITIALIZER;
    BCON_APPEND(&nopos, "pos", "{", "$exists", BCON_BOOL(false), "}");
    CHECK(mongoc_collection_count_documents(msgs, &nopos, NULL, NULL, NULL, &e) >= 2);
    store_close(st);
    st = NULL;
    CHECK_EQ_INT(store_mongo_open(mongoc_uri_get_string(u), "", &st, &err), 0);
    CHECK_EQ_INT(mongoc_collection_count_documents(msgs, &nopos, NULL, NULL, NULL, &e), 0);
    bson_destroy(&nopos);
    bson_destroy(&all);
    if (st) {
        struct message_list l = {0};
        CHECK_EQ_INT(store_list_changes_after(st, ch, 0, 10, &l, &err), 0);
        CHECK_EQ_INT(l.n, 2);
        for (size_t i = 0; i < l.n; i++) {
            CHECK_EQ_STR(l.items[i].id, old[i].id);
            CHECK_EQ_INT(l.items[i].pos, old[i].seq);
            CHECK_EQ_INT(l.items[i].edited_at, 0);
            CHECK(!l.items[i].deleted);
        }
        store_message_list_cleanup(&l);
        struct message ed = {0};
        bool changed = false;
        CHECK_EQ_INT(store_change_message(st, ch, old[1].id, "after", T0 + 5, &ed, &changed,
                                          &err), 0);
        CHECK(changed && ed.pos > old[1].seq);
        store_message_cleanup(&ed);
        struct chat got = {0};
        CHECK_EQ_INT(store_get_chat(st, ch, two[0], &got, &err), 0);
        CHECK(got.last_message && strcmp(got.last_message->text, "after") == 0);
        store_chat_cleanup(&got);
    }
    for (int i = 0; i < 2; i++)
        store_message_cleanup(&old[i]);
    mongoc_collection_destroy(msgs);
    mongoc_client_destroy(c);
    store_close(st);
    mongoc_uri_destroy(u);
}

static double gauge_value(const char *text, const char *name)
{
    char key[96];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(text, key);
    return p ? strtod(p + strlen(key), NULL) : -1;
}

static void case_pool_gauges(void)
{
    struct chat_err err = {0};
    const char *kv[] = {"maxPoolSize", "7", NULL};
    char *uri = uri_with(base_uri, kv);
    struct store *st = NULL;
    CHECK_EQ_INT(store_mongo_open(uri, new_db_name(), &st, &err), 0);
    free(uri);
    if (!st)
        return;
    size_t len;
    char *text = metrics_render(&len);
    CHECK(text != NULL);
    if (text) {
        CHECK(gauge_value(text, "chatli_store_pool_size") == 7);
        CHECK(gauge_value(text, "chatli_store_pool_in_use") == 0);
        free(text);
    }
    store_close(st);
}

/* Appends from a producer thread, recording each outcome by index. */
#define OUT_N 4000
struct outage_job {
    struct store *st;
    char chat[OID_SIZE], sender[OID_SIZE];
    atomic_int next;                /* appends issued */
    atomic_int done;                /* callbacks seen */
    atomic_bool stop;
    int rc[OUT_N];                  /* written by the callback */
    int64_t seq[OUT_N];
    char id[OUT_N][OID_SIZE];       /* the id each call reported */
    int64_t fail_ms[OUT_N];         /* ms from issue to a failed callback */
    int64_t issued_ns[OUT_N];
    int calls[OUT_N];
};

struct outage_ctx {
    struct outage_job *j;
    int i;
};

static struct outage_ctx outage_ctx[OUT_N];

static void outage_cb(void *arg, int rc, const struct message *m, bool existed,
                      const struct chat_err *err)
{
    struct outage_ctx *c = arg;
    struct outage_job *j = c->j;
    j->rc[c->i] = rc;
    j->calls[c->i]++;
    if (rc == 0) {
        j->seq[c->i] = m->seq;
        memcpy(j->id[c->i], m->id, OID_SIZE);
    } else {
        j->fail_ms[c->i] = (clock_mono_ns() - j->issued_ns[c->i]) / 1000000;
    }
    atomic_fetch_add(&j->done, 1);
}

static void issue(struct outage_job *j, int i, const char *text)
{
    char cid[32];
    snprintf(cid, sizeof cid, "out-%d", i);
    struct message m;
    msg_init(&m, j->chat, j->sender, text, cid, T0 + i);
    outage_ctx[i].j = j;
    outage_ctx[i].i = i;
    j->issued_ns[i] = clock_mono_ns();
    if (store_append_message(j->st, &m, outage_cb, &outage_ctx[i]) != 0) {
        j->rc[i] = CHAT_E_UNAVAILABLE; /* refused at once: counts as failed */
        j->calls[i]++;
        atomic_fetch_add(&j->done, 1);
    }
}

static void *outage_producer(void *arg)
{
    struct outage_job *j = arg;
    while (!atomic_load(&j->stop)) {
        int i = atomic_load(&j->next);
        if (i >= OUT_N)
            break;
        /* At most 64 in flight, a message every millisecond or so. */
        while (i - atomic_load(&j->done) > 64 && !atomic_load(&j->stop))
            usleep(500);
        issue(j, i, "through the outage");
        atomic_store(&j->next, i + 1);
        usleep(1000);
    }
    return NULL;
}

static bool wait_done(struct outage_job *j, int n, int seconds)
{
    int64_t t0 = clock_mono_ns();
    while (atomic_load(&j->done) < n && ms_since(t0) < seconds * 1000)
        usleep(2000);
    return atomic_load(&j->done) >= n;
}

static void case_outage(void)
{
    struct proxy px;
    if (!proxy_start(&px, base_uri)) {
        printf("outage case skipped: the URI is not a single host:port\n");
        return;
    }
    const char *none[] = {NULL};
    char *uri = proxied_uri(&px, none);
    struct chat_err err = {0};
    struct store *st = NULL;
    CHECK_EQ_INT(store_mongo_open(uri, new_db_name(), &st, &err), 0);
    free(uri);
    if (!st) {
        proxy_stop(&px);
        return;
    }
    static struct outage_job j;
    memset(&j, 0, sizeof j);
    j.st = st;
    mk_user(st, "outage", j.sender);
    char one[1][OID_SIZE];
    memcpy(one[0], j.sender, OID_SIZE);
    CHECK_EQ_INT(mk_chat(st, CHAT_GROUP, NULL, one, 1, T0, j.chat, NULL), 0);
    CHECK_EQ_INT(store_ping(st, &err), 0);

    pthread_t th;
    pthread_create(&th, NULL, outage_producer, &j);
    int64_t t0 = clock_mono_ns();
    while (atomic_load(&j.done) < 300 && ms_since(t0) < 20000)
        usleep(2000);
    CHECK(atomic_load(&j.done) >= 300);

    /* The database goes away mid-stream. */
    proxy_set(&px, PROXY_DOWN);
    int down_at = atomic_load(&j.next);
    struct user u = {0};
    int64_t t1 = clock_mono_ns();
    CHECK_EQ_INT(store_get_user(st, j.sender, &u, &err), CHAT_E_UNAVAILABLE);
    int64_t get_ms = ms_since(t1);
    CHECK(get_ms < 4000);
    CHECK_EQ_INT(err.code, CHAT_E_UNAVAILABLE);
    t1 = clock_mono_ns();
    CHECK_EQ_INT(store_ping(st, &err), CHAT_E_UNAVAILABLE);
    int64_t ping_ms = ms_since(t1);
    CHECK(ping_ms < 4000);
    struct post_list pl = {0};
    CHECK_EQ_INT(store_list_posts(st, NULL, NULL, NULL, 10, &pl, &err), CHAT_E_UNAVAILABLE);
    CHECK(pl.n == 0 && pl.items == NULL);
    /* Appends issued while down fail, each within a few seconds. */
    sleep(3);
    int during = atomic_load(&j.next);
    CHECK(during > down_at);

    proxy_set(&px, PROXY_UP);
    int64_t t2 = clock_mono_ns();
    int up_rc = -1;
    while ((up_rc = store_ping(st, &err)) != 0 && ms_since(t2) < 15000)
        usleep(100000);
    CHECK_EQ_INT(up_rc, 0);
    int64_t recover_ms = ms_since(t2);
    CHECK_EQ_INT(store_get_user(st, j.sender, &u, &err), 0);
    store_user_cleanup(&u);

    /* Let the producer finish, then wait for every callback. */
    pthread_join(th, NULL);
    CHECK(wait_done(&j, OUT_N, 60));

    int acked = 0, failed = 0, slow_fail = 0, multi = 0;
    int64_t max_fail_ms = 0;
    for (int i = 0; i < OUT_N; i++) {
        if (j.calls[i] != 1)
            multi++;
        if (j.rc[i] == 0) {
            acked++;
        } else {
            failed++;
            CHECK_EQ_INT(j.rc[i], CHAT_E_UNAVAILABLE);
            if (j.fail_ms[i] > max_fail_ms)
                max_fail_ms = j.fail_ms[i];
            /* A failed append answers within serverSelectionTimeoutMS
             * (2 s here) plus the batch it queued behind. */
            if (j.fail_ms[i] > 6000)
                slow_fail++;
        }
    }
    CHECK_EQ_INT(multi, 0);
    CHECK(failed > 0);
    CHECK_EQ_INT(slow_fail, 0);

    /* Clients retry what failed, with the same clientId. */
    int64_t acked_seq[OUT_N];
    char acked_id[OUT_N][OID_SIZE];
    for (int i = 0; i < OUT_N; i++) {
        acked_seq[i] = j.rc[i] == 0 ? j.seq[i] : 0;
        memcpy(acked_id[i], j.id[i], OID_SIZE);
    }
    int retried = 0;
    for (int i = 0; i < OUT_N; i++) {
        if (j.rc[i] == 0)
            continue;
        j.calls[i] = 0;
        atomic_fetch_sub(&j.done, 1);
        issue(&j, i, "through the outage");
        retried++;
    }
    CHECK(wait_done(&j, OUT_N, 60));
    int retry_failed = 0;
    for (int i = 0; i < OUT_N; i++)
        retry_failed += j.rc[i] != 0;
    CHECK_EQ_INT(retry_failed, 0);

    /* Every acked message is stored, at its acked seq; every clientId is
     * stored exactly once; seqs only grow. */
    static struct message all[OUT_N + 16];
    size_t n = 0;
    int64_t after = 0;
    for (;;) {
        struct message_list ml = {0};
        if (store_list_messages_after(st, j.chat, after, 500, &ml, &err) != 0 || ml.n == 0) {
            store_message_list_cleanup(&ml);
            break;
        }
        after = ml.items[ml.n - 1].seq;
        for (size_t k = 0; k < ml.n && n < OUT_N + 16; k++) {
            all[n] = ml.items[k];
            memset(&ml.items[k], 0, sizeof ml.items[k]); /* moved to all[] */
            n++;
        }
        store_message_list_cleanup(&ml);
    }
    CHECK_EQ_INT(n, OUT_N);
    static int seen[OUT_N];
    memset(seen, 0, sizeof seen);
    int lost = 0, dup = 0;
    for (size_t k = 0; k < n; k++) {
        int idx = all[k].client_id ? atoi(all[k].client_id + 4) : -1;
        if (idx >= 0 && idx < OUT_N && seen[idx]++)
            dup++;
    }
    for (int i = 0; i < OUT_N; i++) {
        if (!acked_seq[i])
            continue;
        bool ok = false;
        for (size_t k = 0; k < n && !ok; k++)
            ok = all[k].seq == acked_seq[i] && strcmp(all[k].id, acked_id[i]) == 0;
        lost += !ok;
    }
    CHECK_EQ_INT(lost, 0);
    CHECK_EQ_INT(dup, 0);
    struct chat c = {0};
    CHECK_EQ_INT(store_get_chat(st, j.chat, NULL, &c, &err), 0);
    CHECK_EQ_INT(c.last_seq, n ? all[n - 1].seq : 0);
    store_chat_cleanup(&c);
    for (size_t k = 0; k < n; k++)
        store_message_cleanup(&all[k]);
    printf("outage: get_user failed in %lld ms, ping in %lld ms, recovered in %lld ms; "
           "%d acked before/around it, %d failed (slowest %lld ms), %d retried, none lost: %s\n",
           (long long)get_ms, (long long)ping_ms, (long long)recover_ms, acked, failed,
           (long long)max_fail_ms, retried, lost ? "NO" : "yes");
    store_close(st);
    proxy_stop(&px);
}

/* A hung server holds the only pooled client; the next operation gets
 * UNAVAILABLE after waitQueueTimeoutMS instead of waiting for it. */
struct hold_job {
    struct store *st;
    char id[OID_SIZE];
    int rc;
};

static void *hold_thread(void *arg)
{
    struct hold_job *h = arg;
    struct user u = {0};
    struct chat_err err = {0};
    h->rc = store_get_user(h->st, h->id, &u, &err);
    store_user_cleanup(&u);
    return NULL;
}

static void case_pool_exhausted(void)
{
    struct proxy px;
    if (!proxy_start(&px, base_uri)) {
        printf("pool case skipped: the URI is not a single host:port\n");
        return;
    }
    const char *kv[] = {"maxPoolSize", "1", "waitQueueTimeoutMS", "300", "socketTimeoutMS",
                        "3000", NULL};
    char *uri = proxied_uri(&px, kv);
    struct chat_err err = {0};
    struct store *st = NULL;
    CHECK_EQ_INT(store_mongo_open(uri, new_db_name(), &st, &err), 0);
    free(uri);
    if (!st) {
        proxy_stop(&px);
        return;
    }
    struct hold_job h = {.st = st};
    mk_user(st, "holder", h.id);
    proxy_set(&px, PROXY_STALL);
    pthread_t th;
    pthread_create(&th, NULL, hold_thread, &h);
    usleep(200000);
    struct user u = {0};
    int64_t t0 = clock_mono_ns();
    CHECK_EQ_INT(store_get_user(st, h.id, &u, &err), CHAT_E_UNAVAILABLE);
    /* It waited for the pool's queue (waitQueueTimeoutMS) rather than failing
     * at once; that it did not wait for the held connection is what the
     * CHAT_E_UNAVAILABLE above says (no upper time bound: a loaded machine
     * stretches it, and timing bounds belong in benchmarks). */
    int64_t waited = ms_since(t0);
    CHECK(waited >= 250);
    proxy_set(&px, PROXY_UP);
    pthread_join(th, NULL);
    /* The held call ends by itself (socketTimeoutMS) or succeeds. */
    CHECK(h.rc == 0 || h.rc == CHAT_E_UNAVAILABLE);
    int64_t t1 = clock_mono_ns();
    int rc;
    while ((rc = store_get_user(st, h.id, &u, &err)) != 0 && ms_since(t1) < 15000)
        usleep(100000);
    CHECK_EQ_INT(rc, 0);
    store_user_cleanup(&u);
    printf("pool exhausted: answered UNAVAILABLE after %lld ms\n", (long long)waited);
    store_close(st);
    proxy_stop(&px);
}

/* Two instances on one database: appends to one chat from both keep seqs
 * unique and growing per instance, and a clientId sent to both at once is
 * stored once, both callers getting that one message. */
#define TWO_N 300
struct two_job {
    struct store *st;
    const char *chat, *sender;
    const char *prefix;
    struct waiter w[TWO_N];
};

static void *two_thread(void *arg)
{
    struct two_job *t = arg;
    for (int i = 0; i < TWO_N; i++) {
        char cid[32];
        snprintf(cid, sizeof cid, "%s%d", t->prefix, i);
        struct message m;
        msg_init(&m, t->chat, t->sender, "two instances", cid, T0 + i);
        waiter_init(&t->w[i]);
        CHECK_EQ_INT(store_append_message(t->st, &m, waiter_cb, &t->w[i]), 0);
    }
    return NULL;
}

static void case_two_instances(void)
{
    struct chat_err err = {0};
    const char *db = new_db_name();
    struct store *s1 = NULL, *s2 = NULL;
    CHECK_EQ_INT(store_mongo_open(base_uri, db, &s1, &err), 0);
    CHECK_EQ_INT(store_mongo_open(base_uri, db, &s2, &err), 0);
    if (!s1 || !s2) {
        store_close(s1);
        store_close(s2);
        return;
    }
    char a[OID_SIZE], b[OID_SIZE], chat[OID_SIZE];
    mk_user(s1, "twoa", a);
    mk_user(s2, "twob", b);
    char two[2][OID_SIZE];
    memcpy(two[0], a, OID_SIZE);
    memcpy(two[1], b, OID_SIZE);
    CHECK_EQ_INT(mk_chat(s1, CHAT_GROUP, "shared", two, 2, T0, chat, NULL), 0);
    /* The same direct pair created through both answers one chat. */
    char d1[OID_SIZE], d2[OID_SIZE];
    bool ex1 = true, ex2 = false;
    CHECK_EQ_INT(mk_chat(s1, CHAT_DIRECT, NULL, two, 2, T0, d1, &ex1), 0);
    CHECK_EQ_INT(mk_chat(s2, CHAT_DIRECT, NULL, two, 2, T0, d2, &ex2), 0);
    CHECK(!ex1 && ex2);
    CHECK_EQ_STR(d1, d2);

    /* Different senders, one chat, both instances at once. */
    static struct two_job j1, j2;
    j1 = (struct two_job){.st = s1, .chat = chat, .sender = a, .prefix = "a"};
    j2 = (struct two_job){.st = s2, .chat = chat, .sender = b, .prefix = "b"};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, two_thread, &j1);
    pthread_create(&t2, NULL, two_thread, &j2);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    static int64_t seqs[2 * TWO_N];
    size_t n = 0;
    int bad = 0, order = 0;
    struct two_job *js[2] = {&j1, &j2};
    for (int k = 0; k < 2; k++) {
        int64_t prev = 0;
        for (int i = 0; i < TWO_N; i++) {
            struct waiter *w = &js[k]->w[i];
            if (waiter_wait(w, 1) != 1 || w->rc != 0)
                bad++;
            if (w->m.seq <= prev)
                order++;
            prev = w->m.seq;
            seqs[n++] = w->m.seq;
            waiter_cleanup(w);
        }
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(order, 0);
    qsort(seqs, n, sizeof seqs[0], cmp_i64);
    int dups = 0;
    for (size_t i = 1; i < n; i++)
        dups += seqs[i] == seqs[i - 1];
    CHECK_EQ_INT(dups, 0);
    struct chat c = {0};
    CHECK_EQ_INT(store_get_chat(s2, chat, a, &c, &err), 0);
    if (!is_ferretdb) {
        /* FerretDB rewrites a whole document per update, so two processes
         * updating one chat can put back an older lastSeq; MongoDB cannot
         * (docs/data-model.md, "FerretDB"). */
        CHECK_EQ_INT(c.last_seq, seqs[n - 1]);
        CHECK(c.last_message != NULL);
        if (c.last_message)
            CHECK_EQ_INT(c.last_message->seq, seqs[n - 1]);
    }
    CHECK_EQ_INT(c.unread_count, TWO_N); /* b's messages, a never read */
    store_chat_cleanup(&c);

    /* One clientId, sent through both instances at the same moment, many
     * times: stored once; every caller gets that message. */
    enum { DUPS = 40 };
    static struct waiter dw[2][DUPS];
    for (int i = 0; i < DUPS; i++) {
        struct message m;
        for (int k = 0; k < 2; k++) {
            msg_init(&m, chat, a, "only once", "same-client-id", T0 + 1000 + i);
            waiter_init(&dw[k][i]);
            CHECK_EQ_INT(store_append_message(k ? s2 : s1, &m, waiter_cb, &dw[k][i]), 0);
        }
    }
    int fresh_n = 0, bad_dup = 0;
    char first[OID_SIZE] = "";
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < DUPS; i++) {
            struct waiter *w = &dw[k][i];
            if (waiter_wait(w, 1) != 1 || w->rc != 0) {
                bad_dup++;
            } else {
                fresh_n += !w->existed;
                if (!first[0])
                    memcpy(first, w->m.id, OID_SIZE);
                else if (strcmp(first, w->m.id) != 0)
                    bad_dup++;
            }
            waiter_cleanup(w);
        }
    CHECK_EQ_INT(bad_dup, 0);
    CHECK_EQ_INT(fresh_n, 1);
    struct message_list ml = {0};
    CHECK_EQ_INT(store_list_messages(s1, chat, 0, 5, &ml, &err), 0);
    int copies = 0;
    for (size_t i = 0; i < ml.n; i++)
        copies += ml.items[i].client_id && strcmp(ml.items[i].client_id, "same-client-id") == 0;
    CHECK_EQ_INT(copies, 1);
    store_message_list_cleanup(&ml);
    store_close(s1);
    store_close(s2);
}

static bool detect_ferretdb(void)
{
    bson_error_t e;
    mongoc_uri_t *u = mongoc_uri_new_with_error(base_uri, &e);
    mongoc_client_t *c = u ? mongoc_client_new_from_uri(u) : NULL;
    bson_t cmd = BSON_INITIALIZER, reply;
    BSON_APPEND_INT32(&cmd, "buildInfo", 1);
    bool r = false;
    if (c && mongoc_client_command_simple(c, "admin", &cmd, NULL, &reply, &e)) {
        bson_iter_t it;
        r = bson_iter_init_find(&it, &reply, "ferretdbVersion");
    }
    if (c)
        bson_destroy(&reply);
    bson_destroy(&cmd);
    mongoc_client_destroy(c);
    mongoc_uri_destroy(u);
    return r;
}

static void drop_databases(void)
{
    bson_error_t e;
    mongoc_uri_t *u = mongoc_uri_new_with_error(base_uri, &e);
    mongoc_client_t *c = u ? mongoc_client_new_from_uri(u) : NULL;
    for (int i = 0; i < n_dbs; i++) {
        if (c) {
            mongoc_database_t *db = mongoc_client_get_database(c, dbs[i]);
            if (!mongoc_database_drop(db, &e))
                fprintf(stderr, "drop %s: %s\n", dbs[i], e.message);
            mongoc_database_destroy(db);
        }
        free(dbs[i]);
    }
    mongoc_client_destroy(c);
    mongoc_uri_destroy(u);
}

int main(void)
{
    const char *env = getenv("CHATLI_TEST_MONGODB_URI");
    if (!env || !*env) {
        printf("test_store_mongo: skipped (CHATLI_TEST_MONGODB_URI is not set; "
               "scripts/ferretdb.sh start prints one)\n");
        return 77;
    }
    mongoc_init();
    run_id = (int)(clock_now_ms() % 100000);
    /* Small timeouts so that a missing server fails the test quickly. */
    const char *kv[] = {"serverSelectionTimeoutMS", "2000", NULL};
    base_uri = uri_with(env, kv);
    if (!base_uri) {
        fprintf(stderr, "test_store_mongo: CHATLI_TEST_MONGODB_URI does not parse\n");
        return 1;
    }

    case_open_errors(); /* first: the adapter routes the driver's log to ours */
    is_ferretdb = detect_ferretdb();
    printf("test_store_mongo: server is %s\n", is_ferretdb ? "FerretDB" : "MongoDB");
    case_db_and_indexes();
    case_pool_gauges();
    struct store_contract_opts o = {.open = open_fresh, .label = "mongodb",
                                    .strict_seq = true};
    CHECK_EQ_INT(store_contract_run(&o), 0);
    case_two_instances();
    case_pool_exhausted();
    case_outage();

    drop_databases();
    free(base_uri);
    return check_done();
}
