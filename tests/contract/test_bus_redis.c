/* test_bus_redis.c - bus/bus_redis*.c against a real redis-server: an
 * event published on one instance is delivered there at once and on every
 * other instance once (origin set, skip_conn cleared), revocations and
 * invalidations reach other instances' listeners, malformed channel
 * messages are ignored, and a Redis killed and restarted is survived:
 * local delivery goes on, ping says down, the subscriber reconnects and
 * resubscribes, listeners get on_gap (removed ones do not), and
 * cross-instance delivery resumes.
 *
 * Needs CHATLI_TEST_REDIS_URL (scripts/test.sh starts that server) and
 * redis-server on PATH for the private server of the outage case; without
 * them it exits 77 (skipped). */
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "chatli/adapters/bus_local.h"
#include "chatli/adapters/bus_redis.h"
#include "check.h"
#include "contract/redis_helper.h"

/* What one instance's subscriber and listener saw.  mu guards all: the
 * callbacks run on the bus's threads. */
struct rec {
    pthread_mutex_t mu;
    int frames, revocations, invals, gaps;
    char frame[64];
    char origin[BUS_ORIGIN_LEN + 1];
    uint64_t skip;
    size_t n_users;
    char last_user[OID_SIZE];
    uint8_t token[32];
    int inval;
    char inval_key[OID_SIZE];
};

static void deliver(void *arg, const struct bus_event *ev)
{
    struct rec *r = arg;
    pthread_mutex_lock(&r->mu);
    if (ev->revoked_token) {
        r->revocations++;
        memcpy(r->token, ev->revoked_token, 32);
    } else {
        r->frames++;
        snprintf(r->frame, sizeof r->frame, "%.*s", (int)ev->len, ev->frame);
    }
    snprintf(r->origin, sizeof r->origin, "%s", ev->origin ? ev->origin : "");
    r->skip = ev->skip_conn;
    r->n_users = ev->n_users;
    if (ev->n_users)
        memcpy(r->last_user, ev->user_ids[ev->n_users - 1], OID_SIZE);
    pthread_mutex_unlock(&r->mu);
}

static void on_event(void *arg, const struct bus_event *ev)
{
    struct rec *r = arg;
    pthread_mutex_lock(&r->mu);
    if (ev->kind == BUS_INVALIDATE) {
        r->invals++;
        r->inval = ev->inval;
        snprintf(r->inval_key, sizeof r->inval_key, "%s", ev->inval_key ? ev->inval_key : "");
    }
    pthread_mutex_unlock(&r->mu);
}

static void on_gap(void *arg)
{
    struct rec *r = arg;
    pthread_mutex_lock(&r->mu);
    r->gaps++;
    pthread_mutex_unlock(&r->mu);
}

static int get(struct rec *r, int *field)
{
    pthread_mutex_lock(&r->mu);
    int v = *field;
    pthread_mutex_unlock(&r->mu);
    return v;
}

/* Polls until *field reaches `want` (up to 10 s, a bound on a failure, not
 * a performance check); returns its last value. */
static int wait_for(struct rec *r, int *field, int want)
{
    for (int i = 0; i < 1000 && get(r, field) < want; i++)
        test_sleep_ms(10);
    return get(r, field);
}

static bool wait_ping(struct bus *b, bool up)
{
    for (int i = 0; i < 1000; i++) {
        struct chat_err e = {0};
        if ((bus_ping(b, &e) == 0) == up)
            return true;
        test_sleep_ms(10);
    }
    return false;
}

struct inst {
    struct bus *bus;
    struct rec rec;
};

static void inst_open(struct inst *in, const char *url, const char *prefix)
{
    struct chat_err err = {0};
    memset(&in->rec, 0, sizeof in->rec);
    pthread_mutex_init(&in->rec.mu, NULL);
    CHECK_EQ_INT(bus_redis_open(url, prefix, &in->bus, &err), 0);
    if (!in->bus)
        abort();
    bus_subscribe(in->bus, deliver, &in->rec);
    struct bus_listener l = {.on_event = on_event, .on_gap = on_gap, .arg = &in->rec};
    CHECK_EQ_INT(bus_listen(in->bus, &l, &err), 0);
    CHECK(wait_ping(in->bus, true));
}

static void inst_close(struct inst *in)
{
    bus_subscribe(in->bus, NULL, NULL);
    bus_close(in->bus);
    pthread_mutex_destroy(&in->rec.mu);
}

static const char users[2][OID_SIZE] = {"aaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbb"};

static int publish_frame(struct bus *b, const char *frame, uint64_t skip)
{
    struct bus_event ev = {.scope = BUS_TO_USERS, .user_ids = users, .n_users = 2,
                           .skip_conn = skip, .frame = frame, .len = strlen(frame)};
    struct chat_err err = {0};
    return bus_publish(b, &ev, &err);
}

static void test_cross_instance(const char *url)
{
    struct inst a, b;
    inst_open(&a, url, "t1:");
    inst_open(&b, url, "t1:");
    CHECK(strcmp(bus_redis_origin(a.bus), bus_redis_origin(b.bus)) != 0);
    CHECK_EQ_INT(strlen(bus_redis_origin(a.bus)), BUS_ORIGIN_LEN);

    CHECK_EQ_INT(publish_frame(a.bus, "{\"type\":\"x\"}", 7), 0);
    /* Delivered here at once, on the publishing thread, as published. */
    CHECK_EQ_INT(get(&a.rec, &a.rec.frames), 1);
    CHECK_EQ_STR(a.rec.origin, "");
    CHECK_EQ_INT(a.rec.skip, 7);
    /* ...and on the other instance once, with the origin and no skip. */
    CHECK_EQ_INT(wait_for(&b.rec, &b.rec.frames, 1), 1);
    CHECK_EQ_STR(b.rec.frame, "{\"type\":\"x\"}");
    CHECK_EQ_STR(b.rec.origin, bus_redis_origin(a.bus));
    CHECK_EQ_INT(b.rec.skip, 0);
    CHECK_EQ_INT(b.rec.n_users, 2);
    CHECK_EQ_STR(b.rec.last_user, users[1]);

    /* A broadcast, and order: one instance's events arrive in order. */
    for (int i = 0; i < 50; i++) {
        char f[32];
        snprintf(f, sizeof f, "{\"n\":%d}", i);
        struct bus_event ev = {.scope = BUS_TO_ALL, .frame = f, .len = strlen(f)};
        bus_publish(b.bus, &ev, NULL);
    }
    CHECK_EQ_INT(wait_for(&a.rec, &a.rec.frames, 51), 51);
    CHECK_EQ_STR(a.rec.frame, "{\"n\":49}");
    CHECK_EQ_INT(a.rec.n_users, 0);
    CHECK_EQ_INT(get(&b.rec, &b.rec.frames), 51); /* 1 from a, its own 50 */

    /* A revocation: subscriber and listener of the other instance. */
    uint8_t tok[32];
    memset(tok, 0xab, sizeof tok);
    struct bus_event rv = {.scope = BUS_TO_USERS, .user_ids = users, .n_users = 1,
                           .revoked_token = tok};
    CHECK_EQ_INT(bus_publish(a.bus, &rv, NULL), 0);
    CHECK_EQ_INT(wait_for(&b.rec, &b.rec.revocations, 1), 1);
    CHECK(memcmp(b.rec.token, tok, 32) == 0);
    CHECK_EQ_INT(get(&a.rec, &a.rec.revocations), 1);

    /* An invalidation: only the OTHER instance's listeners hear it. */
    struct bus_event inv = {.kind = BUS_INVALIDATE, .inval = BUS_INV_MEMBERS,
                            .inval_key = "cccccccccccccccccccccccc"};
    CHECK_EQ_INT(bus_publish(a.bus, &inv, NULL), 0);
    CHECK_EQ_INT(wait_for(&b.rec, &b.rec.invals, 1), 1);
    CHECK_EQ_INT(b.rec.inval, BUS_INV_MEMBERS);
    CHECK_EQ_STR(b.rec.inval_key, "cccccccccccccccccccccccc");

    /* Garbage on the channel is ignored; the next event still arrives. */
    redisContext *rc = redisConnect("127.0.0.1", atoi(strrchr(url, ':') + 1));
    redisReply *r = redisCommand(rc, "PUBLISH t1:bus %s", "not an event");
    freeReplyObject(r);
    r = redisCommand(rc, "PUBLISH t1:bus %b", "CHB1\0\0\0", (size_t)7);
    freeReplyObject(r);
    redisFree(rc);
    CHECK_EQ_INT(publish_frame(a.bus, "{\"after\":1}", 0), 0);
    CHECK_EQ_INT(wait_for(&b.rec, &b.rec.frames, 52), 52);
    CHECK_EQ_STR(b.rec.frame, "{\"after\":1}");

    /* Let stray duplicates arrive if there were any, then count. */
    test_sleep_ms(200);
    CHECK_EQ_INT(get(&a.rec, &a.rec.frames), 52);
    CHECK_EQ_INT(get(&b.rec, &b.rec.frames), 52);
    CHECK_EQ_INT(get(&a.rec, &a.rec.invals), 0);
    CHECK_EQ_INT(get(&a.rec, &a.rec.gaps) + get(&b.rec, &b.rec.gaps), 0);

    /* Another prefix is another bus. */
    struct inst c;
    inst_open(&c, url, "t2:");
    CHECK_EQ_INT(publish_frame(a.bus, "{\"p\":1}", 0), 0);
    CHECK_EQ_INT(wait_for(&b.rec, &b.rec.frames, 53), 53);
    test_sleep_ms(100);
    CHECK_EQ_INT(get(&c.rec, &c.rec.frames), 0);
    inst_close(&c);
    inst_close(&a);
    inst_close(&b);
}

static void test_outage(void)
{
    struct test_redis srv = {0};
    if (test_redis_start(&srv) != 0) {
        CHECK(!"cannot start a private redis-server");
        return;
    }
    struct inst a, b;
    inst_open(&a, srv.url, "o:");
    inst_open(&b, srv.url, "o:");
    /* A listener removed before the outage (as the gateway does when it
     * closes) hears nothing of it; the others still do. */
    struct rec gone;
    memset(&gone, 0, sizeof gone);
    pthread_mutex_init(&gone.mu, NULL);
    struct bus_listener gl = {.on_gap = on_gap, .arg = &gone};
    CHECK_EQ_INT(bus_listen(a.bus, &gl, NULL), 0);
    bus_unlisten(a.bus, &gone);

    test_redis_kill(&srv);
    CHECK(wait_ping(a.bus, false));
    CHECK(wait_ping(b.bus, false));
    /* Down: publish says so, but this instance's delivery still happens. */
    CHECK_EQ_INT(publish_frame(a.bus, "{\"down\":1}", 0), CHAT_E_UNAVAILABLE);
    CHECK_EQ_INT(get(&a.rec, &a.rec.frames), 1);
    CHECK_EQ_STR(a.rec.frame, "{\"down\":1}");

    CHECK_EQ_INT(test_redis_start(&srv), 0);
    CHECK(wait_ping(a.bus, true));
    CHECK(wait_ping(b.bus, true));
    /* Both resubscribed after a gap: each listener was told. */
    CHECK(wait_for(&a.rec, &a.rec.gaps, 1) >= 1);
    CHECK(wait_for(&b.rec, &b.rec.gaps, 1) >= 1);
    CHECK_EQ_INT(get(&gone, &gone.gaps), 0);
    pthread_mutex_destroy(&gone.mu);
    /* The event published while down never reaches b... */
    CHECK_EQ_INT(get(&b.rec, &b.rec.frames), 0);
    /* ...and delivery across instances works again. */
    CHECK_EQ_INT(publish_frame(a.bus, "{\"up\":1}", 0), 0);
    CHECK_EQ_INT(wait_for(&b.rec, &b.rec.frames, 1), 1);
    CHECK_EQ_STR(b.rec.frame, "{\"up\":1}");
    inst_close(&a);
    inst_close(&b);
    test_redis_kill(&srv);
}

/* A dropped publish (a's own subscriber stayed up, its publisher did not)
 * is announced: the other instance's listeners get on_gap. */
static void test_gap_notice(void)
{
    struct test_redis srv = {0};
    if (test_redis_start(&srv) != 0) {
        CHECK(!"cannot start a private redis-server");
        return;
    }
    struct inst a, b;
    inst_open(&a, srv.url, "g:");
    inst_open(&b, srv.url, "g:");
    /* Close a's publisher connection from the server side: CLIENT KILL of
     * every normal (non-pubsub) client but this one. */
    CHECK_EQ_INT(publish_frame(a.bus, "{\"warm\":1}", 0), 0);
    CHECK_EQ_INT(wait_for(&b.rec, &b.rec.frames, 1), 1);
    redisContext *rc = redisConnect("127.0.0.1", srv.port);
    redisReply *r = redisCommand(rc, "CLIENT KILL TYPE normal SKIPME yes");
    freeReplyObject(r);
    redisFree(rc);
    int gaps0 = get(&b.rec, &b.rec.gaps);
    /* The first publish after the kill fails and is dropped... */
    publish_frame(a.bus, "{\"lost\":1}", 0);
    /* ...the next ones reconnect, preceded by a gap notice. */
    for (int i = 0; i < 300 && get(&b.rec, &b.rec.gaps) == gaps0; i++) {
        publish_frame(a.bus, "{\"again\":1}", 0);
        test_sleep_ms(10);
    }
    CHECK(get(&b.rec, &b.rec.gaps) > gaps0);
    inst_close(&a);
    inst_close(&b);
    test_redis_kill(&srv);
}

static void test_bad_urls(void)
{
    struct bus *b = NULL;
    struct chat_err err = {0};
    CHECK_EQ_INT(bus_redis_open("rediss://127.0.0.1:6379", "x:", &b, &err), CHAT_E_VALIDATION);
    CHECK(b == NULL);
    CHECK_EQ_INT(bus_redis_open("redis://127.0.0.1:6379/abc", "x:", &b, &err),
                 CHAT_E_VALIDATION);
    CHECK_EQ_INT(bus_redis_open("not a url", "x:", &b, &err), CHAT_E_VALIDATION);
    CHECK(b == NULL);
}

/* bus_local has no other instance: invalidations go nowhere. */
static void test_local_invalidation(void)
{
    struct bus *b = NULL;
    struct inst in;
    memset(&in.rec, 0, sizeof in.rec);
    pthread_mutex_init(&in.rec.mu, NULL);
    CHECK_EQ_INT(bus_local_new(&b, NULL), 0);
    bus_subscribe(b, deliver, &in.rec);
    struct bus_event inv = {.kind = BUS_INVALIDATE, .inval = BUS_INV_FEED};
    CHECK_EQ_INT(bus_publish(b, &inv, NULL), 0);
    CHECK_EQ_INT(get(&in.rec, &in.rec.frames), 0);
    struct bus_listener l = {.on_gap = on_gap, .arg = &in.rec};
    CHECK_EQ_INT(bus_listen(b, &l, NULL), 0);
    bus_close(b);
    pthread_mutex_destroy(&in.rec.mu);
}

int main(void)
{
    const char *url = getenv("CHATLI_TEST_REDIS_URL");
    if (!url || !*url) {
        printf("test_bus_redis: skipped (CHATLI_TEST_REDIS_URL not set)\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    test_bad_urls();
    test_local_invalidation();
    test_cross_instance(url);
    test_outage();
    test_gap_notice();
    return check_done();
}
