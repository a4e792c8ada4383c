/* test_bus_local.c - bus/bus_local.c: synchronous delivery to the one
 * subscriber, dropping with none, replacing and removing the subscriber,
 * and that unsubscribe waits for callbacks in flight. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "chatli/bus.h"
#include "chatli/adapters/bus_local.h"
#include "check.h"

struct rec {
    int calls;
    pthread_t thread;
    char frame[64];
    size_t n_users;
    char first_user[OID_SIZE];
    uint64_t skip;
    int scope;
};

static void deliver(void *arg, const struct bus_event *ev)
{
    struct rec *r = arg;
    r->calls++;
    r->thread = pthread_self();
    snprintf(r->frame, sizeof r->frame, "%.*s", (int)ev->len, ev->frame);
    r->n_users = ev->n_users;
    if (ev->n_users)
        memcpy(r->first_user, ev->user_ids[0], OID_SIZE);
    r->skip = ev->skip_conn;
    r->scope = ev->scope;
}

static void test_basic(void)
{
    struct bus *b = NULL;
    struct chat_err err = {0};
    CHECK_EQ_INT(bus_local_new(&b, &err), 0);
    CHECK_EQ_STR(b->name, "local");
    CHECK_EQ_INT(bus_ping(b, &err), 0);

    const char users[2][OID_SIZE] = {"6929b0da0123456789abcdef", "6929b0da0123456789abcdee"};
    const char *frame = "{\"type\":\"typing\"}";
    struct bus_event ev = {.scope = BUS_TO_USERS, .user_ids = users, .n_users = 2,
                           .skip_conn = 5, .frame = frame, .len = strlen(frame)};

    /* Nobody subscribed: dropped, not an error. */
    CHECK_EQ_INT(bus_publish(b, &ev, &err), 0);

    struct rec r1 = {0}, r2 = {0};
    bus_subscribe(b, deliver, &r1);
    CHECK_EQ_INT(bus_publish(b, &ev, &err), 0);
    CHECK_EQ_INT(r1.calls, 1);
    CHECK(pthread_equal(r1.thread, pthread_self())); /* synchronous */
    CHECK_EQ_STR(r1.frame, frame);
    CHECK_EQ_INT(r1.n_users, 2);
    CHECK_EQ_STR(r1.first_user, users[0]);
    CHECK_EQ_INT(r1.skip, 5);
    CHECK_EQ_INT(r1.scope, BUS_TO_USERS);

    /* Replaced: only the new subscriber hears. */
    bus_subscribe(b, deliver, &r2);
    struct bus_event all = {.scope = BUS_TO_ALL, .frame = "{}", .len = 2};
    CHECK_EQ_INT(bus_publish(b, &all, &err), 0);
    CHECK_EQ_INT(r1.calls, 1);
    CHECK_EQ_INT(r2.calls, 1);
    CHECK_EQ_INT(r2.scope, BUS_TO_ALL);
    CHECK_EQ_INT(r2.n_users, 0);

    /* Removed: dropped again. */
    bus_subscribe(b, NULL, NULL);
    CHECK_EQ_INT(bus_publish(b, &all, &err), 0);
    CHECK_EQ_INT(r2.calls, 1);

    /* A NULL bus publishes nowhere (core without live delivery). */
    CHECK_EQ_INT(bus_publish(NULL, &all, &err), 0);
    bus_close(b);
}

/* Publishers on several threads while the main thread unsubscribes: once
 * subscribe(NULL) returns, no callback runs any more. */
struct slow {
    atomic_int in_flight;
    atomic_int calls;
    atomic_int after_unsub;
    atomic_bool unsubscribed;
};

static void slow_deliver(void *arg, const struct bus_event *ev)
{
    struct slow *s = arg;
    atomic_fetch_add(&s->in_flight, 1);
    if (atomic_load(&s->unsubscribed))
        atomic_fetch_add(&s->after_unsub, 1);
    usleep(100);
    atomic_fetch_add(&s->calls, 1);
    atomic_fetch_sub(&s->in_flight, 1);
}

struct pub_arg {
    struct bus *b;
    atomic_bool *stop;
};

static void *publisher(void *p)
{
    struct pub_arg *a = p;
    struct bus_event ev = {.scope = BUS_TO_ALL, .frame = "{}", .len = 2};
    while (!atomic_load(a->stop))
        bus_publish(a->b, &ev, NULL);
    return NULL;
}

static void test_unsubscribe_waits(void)
{
    struct bus *b = NULL;
    struct chat_err err = {0};
    CHECK_EQ_INT(bus_local_new(&b, &err), 0);
    struct slow s = {0};
    atomic_bool stop = false;
    bus_subscribe(b, slow_deliver, &s);
    pthread_t th[3];
    struct pub_arg a = {b, &stop};
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, publisher, &a);
    while (atomic_load(&s.calls) < 50)
        usleep(1000);
    bus_subscribe(b, NULL, NULL);
    /* No callback may be running or start now. */
    CHECK_EQ_INT(atomic_load(&s.in_flight), 0);
    atomic_store(&s.unsubscribed, true);
    usleep(20000);
    atomic_store(&stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ_INT(atomic_load(&s.after_unsub), 0);
    bus_close(b);
}

int main(void)
{
    test_basic();
    test_unsubscribe_waits();
    return check_done();
}
