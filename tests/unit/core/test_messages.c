/* test_messages.c - core/messages.c: sending (validation, clientId dedupe,
 * the WS form with required clientId), message.new fan-out and its skipped
 * connection, the async callback, listing newest-first with cursors and
 * oldest-first with afterSeq, the typed sync page (the same messages as
 * afterSeq, its last seq and whether more exist), and concurrent senders. */
#include <unistd.h>

#include "fixture.h"

static struct session sa, sb, sc; /* sam, tess, uma (not a member) */
static char chat_id[OID_SIZE];

static void setup_chat(struct fx *f)
{
    struct chat_err err = {0};
    json_t *out = NULL;
    bool created;
    json_t *body = json_pack("{s:[s]}", "memberIds", sb.user_id);
    CHECK_EQ_INT(chats_create(f->core, &sa, body, &out, &created, &err), 0);
    snprintf(chat_id, sizeof chat_id, "%s", fx_str(out, "id"));
    json_decref(out);
    json_decref(body);
}

static void test_send(struct fx *f)
{
    struct chat_err err = {0};
    json_t *out = NULL, *body;
    bool created = false;

    fx_clear_events(f);
    body = fx_json("{\"text\":\"  hello tess \\u3000\",\"clientId\":\" c-1 \"}");
    CHECK_EQ_INT(messages_send(f->core, &sa, chat_id, body, &out, &created, &err), 0);
    CHECK(created);
    CHECK(oid_valid(fx_str(out, "id")));
    CHECK_EQ_STR(fx_str(out, "chatId"), chat_id);
    CHECK(fx_int(out, "seq") >= 1);
    CHECK_EQ_STR(fx_str(out, "text"), "hello tess");
    CHECK(json_is_null(json_object_get(out, "attachmentUrl")));
    CHECK_EQ_STR(fx_str(out, "clientId"), " c-1 "); /* opaque: not trimmed */
    CHECK(fx_str(out, "createdAt") != NULL);
    json_t *sender = json_object_get(out, "sender");
    CHECK_EQ_STR(fx_str(sender, "id"), sa.user_id);
    CHECK_EQ_STR(fx_str(sender, "username"), "sam");
    CHECK_EQ_INT(json_object_size(out), 10);
    CHECK(json_is_null(json_object_get(out, "editedAt")));
    CHECK(json_is_false(json_object_get(out, "deleted")));
    long long seq1 = fx_int(out, "seq");
    char id1[OID_SIZE];
    snprintf(id1, sizeof id1, "%s", fx_str(out, "id"));

    /* message.new to both members; REST has no origin connection. */
    CHECK_EQ_INT(fx_count_events(f, "message.new"), 1);
    struct fx_event *ev = fx_find_event(f, "message.new", 0);
    if (ev) {
        CHECK_EQ_INT(ev->scope, BUS_TO_USERS);
        CHECK_EQ_INT(ev->skip_conn, 0);
        CHECK_EQ_INT(ev->n_users, 2);
        CHECK(fx_event_has_user(ev, sa.user_id) && fx_event_has_user(ev, sb.user_id));
        CHECK(json_equal(json_object_get(ev->frame, "message"), out));
    }
    json_decref(out);

    /* The same clientId again: the first message, not created, no event. */
    fx_clear_events(f);
    json_decref(body);
    body = fx_json("{\"text\":\"different text\",\"clientId\":\" c-1 \"}");
    CHECK_EQ_INT(messages_send(f->core, &sa, chat_id, body, &out, &created, &err), 0);
    CHECK(!created);
    CHECK_EQ_STR(fx_str(out, "id"), id1);
    CHECK_EQ_INT(fx_int(out, "seq"), seq1);
    CHECK_EQ_STR(fx_str(out, "text"), "hello tess");
    CHECK_EQ_STR(fx_str(json_object_get(out, "sender"), "id"), sa.user_id);
    CHECK_EQ_INT(f->n_events, 0);
    json_decref(out);
    /* The same clientId from the other member is a different message. */
    CHECK_EQ_INT(messages_send(f->core, &sb, chat_id, body, &out, &created, &err), 0);
    CHECK(created);
    CHECK(fx_int(out, "seq") > seq1);
    json_decref(out);
    json_decref(body);

    /* Attachment only. */
    body = fx_json("{\"attachmentUrl\":\"https://cdn.example.com/f.png\"}");
    CHECK_EQ_INT(messages_send(f->core, &sa, chat_id, body, &out, &created, &err), 0);
    CHECK_EQ_STR(fx_str(out, "text"), "");
    CHECK_EQ_STR(fx_str(out, "attachmentUrl"), "https://cdn.example.com/f.png");
    CHECK(json_is_null(json_object_get(out, "clientId")));
    json_decref(out);
    json_decref(body);

    /* Bounds: 4000 code points, clientId 64. */
    char *big = malloc(2 * 4001 + 1);
    for (int i = 0; i < 4000; i++)
        memcpy(big + 2 * i, "\xC3\xA9", 2);
    big[8000] = '\0';
    body = json_pack("{s:s}", "text", big);
    CHECK_EQ_INT(messages_send(f->core, &sa, chat_id, body, &out, &created, &err), 0);
    json_decref(out);
    json_decref(body);
    strcat(big, "x");
    body = json_pack("{s:s}", "text", big);
    CHECK_ERR(messages_send(f->core, &sa, chat_id, body, &out, &created, &err), CHAT_E_VALIDATION, "text");
    json_decref(body);
    free(big);
    char cid[70];
    memset(cid, 'k', 64);
    cid[64] = '\0';
    body = json_pack("{s:s, s:s}", "text", "x", "clientId", cid);
    CHECK_EQ_INT(messages_send(f->core, &sa, chat_id, body, &out, &created, &err), 0);
    json_decref(out);
    json_decref(body);
    strcat(cid, "k");
    body = json_pack("{s:s, s:s}", "text", "x", "clientId", cid);
    CHECK_ERR(messages_send(f->core, &sa, chat_id, body, &out, &created, &err), CHAT_E_VALIDATION, "clientId");
    json_decref(body);

    fx_clear_events(f);
    struct {
        const char *json;
        int code;
        const char *field;
    } cases[] = {
        {"[]", CHAT_E_INVALID_JSON, NULL},
        {"{}", CHAT_E_VALIDATION, "text"},
        {"{\"text\":\"\"}", CHAT_E_VALIDATION, "text"},
        {"{\"text\":\"\\n\\t \"}", CHAT_E_VALIDATION, "text"},
        {"{\"text\":{}}", CHAT_E_VALIDATION, "text"},
        {"{\"text\":\"x\",\"clientId\":\"\"}", CHAT_E_VALIDATION, "clientId"},
        {"{\"text\":\"x\",\"clientId\":5}", CHAT_E_VALIDATION, "clientId"},
        {"{\"text\":\"x\",\"attachmentUrl\":\"gopher://a\"}", CHAT_E_VALIDATION, "attachmentUrl"},
        {"{\"text\":\"x\",\"attachmentUrl\":[]}", CHAT_E_VALIDATION, "attachmentUrl"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        body = fx_json(cases[i].json);
        out = (json_t *)1;
        CHECK_ERR(messages_send(f->core, &sa, chat_id, body, &out, &created, &err), cases[i].code,
                  cases[i].field);
        CHECK(out == NULL);
        json_decref(body);
    }
    /* Not a member, unknown chat, malformed id: 404. */
    body = fx_json("{\"text\":\"let me in\"}");
    CHECK_ERR(messages_send(f->core, &sc, chat_id, body, &out, &created, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(messages_send(f->core, &sa, "6929b0da0123456789abcdef", body, &out, &created, &err),
              CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(messages_send(f->core, &sa, "../x", body, &out, &created, &err), CHAT_E_NOT_FOUND, NULL);
    json_decref(body);
    CHECK_EQ_INT(f->n_events, 0);
}

/* ---- async (the WS path) ---- */

struct async_result {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int calls;
    int rc;
    bool created;
    json_t *message;
    pthread_t thread;
    struct chat_err err;
};

static void async_cb(void *arg, int rc, json_t *message, bool created, const struct chat_err *err)
{
    struct async_result *r = arg;
    pthread_mutex_lock(&r->lock);
    r->calls++;
    r->rc = rc;
    r->created = created;
    r->message = message ? json_deep_copy(message) : NULL;
    r->thread = pthread_self();
    if (err)
        r->err = *err;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

static void async_wait(struct async_result *r)
{
    pthread_mutex_lock(&r->lock);
    while (r->calls == 0)
        pthread_cond_wait(&r->cond, &r->lock);
    pthread_mutex_unlock(&r->lock);
}

static void async_reset(struct async_result *r)
{
    json_decref(r->message);
    r->message = NULL;
    r->calls = 0;
    r->rc = 1;
    memset(&r->err, 0, sizeof r->err);
}

static void test_async(struct fx *f)
{
    struct chat_err err = {0};
    struct async_result r = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    json_t *body;

    /* WS: clientId is required. */
    body = fx_json("{\"text\":\"no id\"}");
    CHECK_ERR(messages_send_async(f->core, &sb, chat_id, body, true, 9, async_cb, &r, &err),
              CHAT_E_VALIDATION, "clientId");
    json_decref(body);
    usleep(20000);
    CHECK_EQ_INT(r.calls, 0); /* rejected before queueing: no callback */

    fx_clear_events(f);
    async_reset(&r);
    body = fx_json("{\"text\":\"from ws\",\"clientId\":\"ws-1\"}");
    CHECK_EQ_INT(messages_send_async(f->core, &sb, chat_id, body, true, 9, async_cb, &r, &err), 0);
    async_wait(&r);
    CHECK_EQ_INT(r.calls, 1);
    CHECK_EQ_INT(r.rc, 0);
    CHECK(r.created);
    CHECK(!pthread_equal(r.thread, pthread_self())); /* the writer thread */
    CHECK_EQ_STR(fx_str(r.message, "text"), "from ws");
    CHECK_EQ_STR(fx_str(r.message, "clientId"), "ws-1");
    /* The event was published before the callback, skipping the origin. */
    struct fx_event *ev = fx_find_event(f, "message.new", 0);
    CHECK(ev != NULL);
    if (ev) {
        CHECK_EQ_INT(ev->skip_conn, 9);
        CHECK(json_equal(json_object_get(ev->frame, "message"), r.message));
    }

    /* Retry of the same frame: ack with the first message, no new event. */
    fx_clear_events(f);
    async_reset(&r);
    CHECK_EQ_INT(messages_send_async(f->core, &sb, chat_id, body, true, 9, async_cb, &r, &err), 0);
    async_wait(&r);
    CHECK_EQ_INT(r.rc, 0);
    CHECK(!r.created);
    CHECK_EQ_STR(fx_str(r.message, "clientId"), "ws-1");
    CHECK_EQ_INT(fx_count_events(f, "message.new"), 0);
    json_decref(body);

    /* A non-member is refused before queueing. */
    async_reset(&r);
    body = fx_json("{\"text\":\"x\",\"clientId\":\"ws-2\"}");
    CHECK_ERR(messages_send_async(f->core, &sc, chat_id, body, true, 1, async_cb, &r, &err),
              CHAT_E_NOT_FOUND, NULL);
    json_decref(body);
    usleep(20000);
    CHECK_EQ_INT(r.calls, 0);
    async_reset(&r);
}

static void test_list(struct fx *f)
{
    struct chat_err err = {0};
    json_t *out = NULL, *body;
    bool created;
    char cid[16];

    /* A fresh chat with 45 messages. */
    body = json_pack("{s:[s], s:s}", "memberIds", sb.user_id, "name", "log");
    CHECK_EQ_INT(chats_create(f->core, &sa, body, &out, &created, &err), 0);
    char log_id[OID_SIZE];
    snprintf(log_id, sizeof log_id, "%s", fx_str(out, "id"));
    json_decref(out);
    json_decref(body);
    long long seqs[45];
    for (int i = 0; i < 45; i++) {
        snprintf(cid, sizeof cid, "m%d", i);
        body = json_pack("{s:s, s:s}", "text", cid, "clientId", cid);
        CHECK_EQ_INT(messages_send(f->core, i % 3 ? &sa : &sb, log_id, body, &out, &created, &err), 0);
        seqs[i] = fx_int(out, "seq");
        if (i)
            CHECK(seqs[i] > seqs[i - 1]);
        json_decref(out);
        json_decref(body);
    }

    /* Newest first with opaque cursors. */
    struct page_params pp = {.limit = "20"};
    char cur[128];
    int seen = 0, pages = 0;
    for (;;) {
        CHECK_EQ_INT(messages_list(f->core, &sb, log_id, &pp, &out, &err), 0);
        json_t *items = json_object_get(out, "items");
        for (size_t i = 0; i < json_array_size(items) && seen < 45; i++, seen++) {
            json_t *m = json_array_get(items, i);
            CHECK_EQ_INT(fx_int(m, "seq"), seqs[44 - seen]);
            CHECK_EQ_STR(fx_str(json_object_get(m, "sender"), "id"),
                         (44 - seen) % 3 ? sa.user_id : sb.user_id);
        }
        pages++;
        const char *next = fx_str(out, "nextCursor");
        if (!next || pages > 4) {
            json_decref(out);
            break;
        }
        snprintf(cur, sizeof cur, "%s", next);
        pp.before = cur;
        json_decref(out);
    }
    CHECK_EQ_INT(seen, 45);
    CHECK_EQ_INT(pages, 3);

    /* Oldest first after a seq; nextCursor is the decimal seq. */
    pp.before = NULL;
    pp.limit = "10";
    char after[32];
    snprintf(after, sizeof after, "%lld", seqs[29]);
    pp.after_seq = after;
    CHECK_EQ_INT(messages_list(f->core, &sa, log_id, &pp, &out, &err), 0);
    json_t *items = json_object_get(out, "items");
    CHECK_EQ_INT(json_array_size(items), 10);
    CHECK_EQ_INT(fx_int(json_array_get(items, 0), "seq"), seqs[30]);
    CHECK_EQ_INT(fx_int(json_array_get(items, 9), "seq"), seqs[39]);
    char want[32];
    snprintf(want, sizeof want, "%lld", seqs[39]);
    CHECK_EQ_STR(fx_str(out, "nextCursor"), want);
    snprintf(after, sizeof after, "%s", fx_str(out, "nextCursor"));
    json_decref(out);
    CHECK_EQ_INT(messages_list(f->core, &sa, log_id, &pp, &out, &err), 0);
    items = json_object_get(out, "items");
    CHECK_EQ_INT(json_array_size(items), 5);
    CHECK_EQ_INT(fx_int(json_array_get(items, 4), "seq"), seqs[44]);
    CHECK(json_is_null(json_object_get(out, "nextCursor")));
    json_decref(out);
    /* afterSeq=0 is the start; beyond the end is empty. */
    pp.after_seq = "0";
    pp.limit = "100";
    CHECK_EQ_INT(messages_list(f->core, &sa, log_id, &pp, &out, &err), 0);
    CHECK_EQ_INT(json_array_size(json_object_get(out, "items")), 45);
    CHECK(json_is_null(json_object_get(out, "nextCursor")));
    json_decref(out);
    snprintf(after, sizeof after, "%lld", seqs[44]);
    pp.after_seq = after;
    CHECK_EQ_INT(messages_list(f->core, &sa, log_id, &pp, &out, &err), 0);
    CHECK_EQ_INT(json_array_size(json_object_get(out, "items")), 0);
    json_decref(out);

    /* Errors. */
    const char *bad_after[] = {"-1", "", "1.5", "abc", " 1", "9999999999999999999"};
    for (size_t i = 0; i < sizeof bad_after / sizeof *bad_after; i++) {
        pp.after_seq = bad_after[i];
        CHECK_ERR(messages_list(f->core, &sa, log_id, &pp, &out, &err), CHAT_E_VALIDATION, "afterSeq");
    }
    pp.after_seq = "3";
    pp.before = cur;
    CHECK_ERR(messages_list(f->core, &sa, log_id, &pp, &out, &err), CHAT_E_VALIDATION, "afterSeq");
    pp.after_seq = NULL;
    pp.before = "3";
    CHECK_ERR(messages_list(f->core, &sa, log_id, &pp, &out, &err), CHAT_E_VALIDATION, "before");
    pp.before = NULL;
    pp.limit = "0";
    CHECK_ERR(messages_list(f->core, &sa, log_id, &pp, &out, &err), CHAT_E_VALIDATION, "limit");
    pp.limit = NULL;
    CHECK_ERR(messages_list(f->core, &sc, log_id, &pp, &out, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(messages_list(f->core, &sa, "x", &pp, &out, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(messages_list(f->core, &sa, "6929b0da0123456789abcdef", &pp, &out, &err),
              CHAT_E_NOT_FOUND, NULL);
}

/* Several threads send at once: every message gets its own seq, and a
 * clientId retried from two threads is stored once. */
struct sender_arg {
    struct fx *f;
    struct session *s;
    int id;
    long long seqs[20];
    int created;
};

static void *sender_thread(void *p)
{
    struct sender_arg *a = p;
    struct chat_err err = {0};
    char cid[32];
    for (int i = 0; i < 20; i++) {
        json_t *out = NULL;
        bool created = false;
        /* Threads 0 and 1 share clientIds: half their sends are dupes. */
        snprintf(cid, sizeof cid, "t%d-%d", a->id < 2 ? 0 : a->id, i);
        json_t *body = json_pack("{s:s, s:s}", "text", cid, "clientId", cid);
        if (messages_send(a->f->core, a->s, chat_id, body, &out, &created, &err) == 0) {
            a->seqs[i] = fx_int(out, "seq");
            a->created += created;
        }
        json_decref(out);
        json_decref(body);
    }
    return NULL;
}

static void test_concurrent(struct fx *f)
{
    struct sender_arg args[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct sender_arg){.f = f, .s = i == 2 ? &sb : &sa, .id = i};
        pthread_create(&th[i], NULL, sender_thread, &args[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    /* Threads 0 and 1 sent the same 20 clientIds: 20 created between them,
     * and for each i both got the same seq. */
    CHECK_EQ_INT(args[0].created + args[1].created, 20);
    for (int i = 0; i < 20; i++) {
        CHECK(args[0].seqs[i] > 0);
        CHECK_EQ_INT(args[0].seqs[i], args[1].seqs[i]);
    }
    CHECK_EQ_INT(args[2].created, 20);
    CHECK_EQ_INT(args[3].created, 20);
    /* All distinct seqs among created messages. */
    long long all[60];
    int n = 0;
    for (int i = 0; i < 20; i++) {
        all[n++] = args[0].seqs[i];
        all[n++] = args[2].seqs[i];
        all[n++] = args[3].seqs[i];
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            CHECK(all[i] != all[j]);
}

/* The typed sync page is GET messages?afterSeq= without the strings. */
static void test_sync_page(struct fx *f)
{
    struct chat_err err = {0};
    json_t *out = NULL, *body;
    bool created;
    body = json_pack("{s:[s], s:s}", "memberIds", sb.user_id, "name", "sync");
    CHECK_EQ_INT(chats_create(f->core, &sa, body, &out, &created, &err), 0);
    char sync_id[OID_SIZE];
    snprintf(sync_id, sizeof sync_id, "%s", fx_str(out, "id"));
    json_decref(out);
    json_decref(body);
    for (int i = 0; i < 7; i++) {
        body = json_pack("{s:s+}", "text", "sync ", i % 2 ? "odd" : "even");
        CHECK_EQ_INT(messages_send(f->core, i % 2 ? &sa : &sb, sync_id, body, &out, &created,
                                   &err), 0);
        json_decref(out);
        json_decref(body);
    }

    /* Pages of 3 after 0: 1-3 and 4-6 with more, then 7 without. */
    struct messages_sync_page page;
    int64_t after = 0;
    for (int k = 0; k < 3; k++) {
        CHECK_EQ_INT(messages_sync_page(f->core, &sb, sync_id, after, 3, &page, &err), 0);
        size_t want = k < 2 ? 3 : 1;
        CHECK_EQ_INT(json_array_size(page.messages), want);
        CHECK_EQ_INT(page.last_seq, after + (int64_t)want);
        CHECK(page.more == (k < 2));
        /* The very items GET messages?afterSeq= gives, senders embedded. */
        char a[24];
        snprintf(a, sizeof a, "%lld", (long long)after);
        struct page_params pp = {.limit = "3", .after_seq = a};
        CHECK_EQ_INT(messages_list(f->core, &sb, sync_id, &pp, &out, &err), 0);
        CHECK(json_equal(page.messages, json_object_get(out, "items")));
        CHECK(json_is_null(json_object_get(out, "nextCursor")) == !page.more);
        json_decref(out);
        after = page.last_seq;
        messages_sync_page_cleanup(&page);
    }
    /* Caught up: no messages, last_seq stays, nothing more. */
    CHECK_EQ_INT(messages_sync_page(f->core, &sa, sync_id, 7, 50, &page, &err), 0);
    CHECK(json_is_array(page.messages) && json_array_size(page.messages) == 0);
    CHECK_EQ_INT(page.last_seq, 7);
    CHECK(!page.more);
    messages_sync_page_cleanup(&page);
    /* A full page that ends exactly at the last message has no more. */
    CHECK_EQ_INT(messages_sync_page(f->core, &sa, sync_id, 6, 1, &page, &err), 0);
    CHECK_EQ_INT(page.last_seq, 7);
    CHECK(!page.more);
    messages_sync_page_cleanup(&page);
    CHECK_EQ_INT(messages_sync_page(f->core, &sa, sync_id, 999999999999999999LL, 1, &page, &err),
                 0);
    CHECK_EQ_INT(json_array_size(page.messages), 0);
    messages_sync_page_cleanup(&page);

    /* Refused like GET messages refuses them. */
    CHECK_ERR(messages_sync_page(f->core, &sc, sync_id, 0, 3, &page, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK(page.messages == NULL);
    messages_sync_page_cleanup(&page);
    CHECK_ERR(messages_sync_page(f->core, &sa, "6929b0da0123456789abcdef", 0, 3, &page, &err),
              CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(messages_sync_page(f->core, &sa, "x", 0, 3, &page, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(messages_sync_page(f->core, &sa, sync_id, 0, 0, &page, &err), CHAT_E_VALIDATION,
              "limit");
    CHECK_ERR(messages_sync_page(f->core, &sa, sync_id, 0, 101, &page, &err), CHAT_E_VALIDATION,
              "limit");
    CHECK_ERR(messages_sync_page(f->core, &sa, sync_id, -1, 3, &page, &err), CHAT_E_VALIDATION,
              "afterSeq");
    CHECK_ERR(messages_sync_page(f->core, &sa, sync_id, 1000000000000000000LL, 3, &page, &err),
              CHAT_E_VALIDATION, "afterSeq");
    messages_sync_page_cleanup(&page);
}

/* Edits and deletions (issue 13): authorship, tombstones, the frames, and
 * sync's catch-up by position. */
static void test_edit_delete(struct fx *f)
{
    struct chat_err err = {0};
    json_t *out = NULL, *body;
    bool created;
    body = json_pack("{s:[s], s:s}", "memberIds", sb.user_id, "name", "edits");
    CHECK_EQ_INT(chats_create(f->core, &sa, body, &out, &created, &err), 0);
    char chat[OID_SIZE], m1[OID_SIZE], m2[OID_SIZE];
    snprintf(chat, sizeof chat, "%s", fx_str(out, "id"));
    json_decref(out);
    json_decref(body);
    body = json_pack("{s:s}", "text", "first");
    CHECK_EQ_INT(messages_send(f->core, &sa, chat, body, &out, &created, &err), 0);
    snprintf(m1, sizeof m1, "%s", fx_str(out, "id"));
    json_decref(out);
    json_decref(body);
    body = json_pack("{s:s, s:s}", "text", "", "attachmentUrl", "https://x.example/a.png");
    CHECK_EQ_INT(messages_send(f->core, &sa, chat, body, &out, &created, &err), 0);
    snprintf(m2, sizeof m2, "%s", fx_str(out, "id"));
    json_decref(out);
    json_decref(body);

    fx_clear_events(f);
    body = json_pack("{s:s}", "text", "  first, fixed ");
    /* Only the sender; a non-member and a bad id are not found. */
    CHECK_ERR(messages_edit(f->core, &sb, chat, m1, body, &out, &err), CHAT_E_FORBIDDEN, NULL);
    CHECK_ERR(messages_edit(f->core, &sc, chat, m1, body, &out, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(messages_edit(f->core, &sa, chat, "nope", body, &out, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(messages_edit(f->core, &sa, chat, chat_id, body, &out, &err), CHAT_E_NOT_FOUND,
              NULL);
    CHECK_ERR(messages_delete(f->core, &sb, chat, m1, &err), CHAT_E_FORBIDDEN, NULL);
    CHECK_EQ_INT(fx_count_events(f, "message.updated") + fx_count_events(f, "message.deleted"),
                 0);
    CHECK_EQ_INT(messages_edit(f->core, &sa, chat, m1, body, &out, &err), 0);
    json_decref(body);
    CHECK_EQ_STR(fx_str(out, "text"), "first, fixed");
    CHECK(json_is_string(json_object_get(out, "editedAt")));
    CHECK_EQ_INT(fx_int(out, "seq"), 1);
    struct fx_event *ev = fx_find_event(f, "message.updated", 0);
    CHECK(ev != NULL);
    if (ev) {
        CHECK_EQ_INT(ev->n_users, 2);
        CHECK(json_equal(json_object_get(ev->frame, "message"), out));
        CHECK_EQ_INT(fx_int(ev->frame, "seq"), 3); /* positions 1, 2: the sends */
    }
    json_decref(out);
    /* Text rules as for a send: empty only beside an attachment. */
    body = json_pack("{s:s}", "text", "  ");
    CHECK_ERR(messages_edit(f->core, &sa, chat, m1, body, &out, &err), CHAT_E_VALIDATION, "text");
    CHECK_EQ_INT(messages_edit(f->core, &sa, chat, m2, body, &out, &err), 0);
    json_decref(out);
    json_decref(body);

    CHECK_EQ_INT(messages_delete(f->core, &sa, chat, m1, &err), 0);
    ev = fx_find_event(f, "message.deleted", 0);
    CHECK(ev != NULL);
    if (ev) {
        CHECK_EQ_STR(fx_str(ev->frame, "chatId"), chat);
        CHECK_EQ_STR(fx_str(ev->frame, "messageId"), m1);
        CHECK_EQ_INT(fx_int(ev->frame, "seq"), 5);
    }
    /* A tombstone: deleting again is a no-op, editing it is not found. */
    CHECK_EQ_INT(messages_delete(f->core, &sa, chat, m1, &err), 0);
    CHECK_EQ_INT(fx_count_events(f, "message.deleted"), 1);
    body = json_pack("{s:s}", "text", "back");
    CHECK_ERR(messages_edit(f->core, &sa, chat, m1, body, &out, &err), CHAT_E_NOT_FOUND, NULL);
    json_decref(body);

    /* sync from 0: both messages as message.new in their current state,
     * in position order (m2 changed at 4, m1 at 5). */
    struct messages_sync_page page;
    CHECK_EQ_INT(messages_sync_page(f->core, &sb, chat, 0, 10, &page, &err), 0);
    CHECK_EQ_INT(json_array_size(page.frames), 2);
    CHECK_EQ_INT(page.last_seq, 5);
    json_t *f0 = json_array_get(page.frames, 0), *f1 = json_array_get(page.frames, 1);
    CHECK_EQ_STR(fx_str(f0, "type"), "message.new");
    CHECK_EQ_INT(fx_int(f0, "seq"), 4);
    CHECK_EQ_STR(fx_str(json_object_get(f0, "message"), "id"), m2);
    CHECK_EQ_STR(fx_str(f1, "type"), "message.new");
    CHECK(json_is_true(json_object_get(json_object_get(f1, "message"), "deleted")));
    CHECK_EQ_STR(fx_str(json_object_get(f1, "message"), "text"), "");
    messages_sync_page_cleanup(&page);
    /* From 2: both are older, so their changes come. */
    CHECK_EQ_INT(messages_sync_page(f->core, &sb, chat, 2, 10, &page, &err), 0);
    CHECK_EQ_INT(json_array_size(page.frames), 2);
    CHECK_EQ_STR(fx_str(json_array_get(page.frames, 0), "type"), "message.updated");
    CHECK_EQ_STR(fx_str(json_array_get(page.frames, 1), "type"), "message.deleted");
    CHECK_EQ_STR(fx_str(json_array_get(page.frames, 1), "messageId"), m1);
    messages_sync_page_cleanup(&page);
    /* From the position reached: nothing. */
    CHECK_EQ_INT(messages_sync_page(f->core, &sb, chat, 5, 10, &page, &err), 0);
    CHECK_EQ_INT(json_array_size(page.frames), 0);
    CHECK_EQ_INT(page.last_seq, 5);
    messages_sync_page_cleanup(&page);
}

int main(void)
{
    struct fx f;
    fx_open(&f);
    fx_user(&f, "sam", &sa);
    fx_user(&f, "tess", &sb);
    fx_user(&f, "uma", &sc);
    setup_chat(&f);
    test_send(&f);
    test_async(&f);
    test_list(&f);
    test_sync_page(&f);
    test_edit_delete(&f);
    test_concurrent(&f);
    fx_close(&f);
    return check_done();
}
