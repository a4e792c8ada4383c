/* fixture.h - what every core unit test sets up: the real SQLite adapter on
 * ":memory:", a local bus with a recording subscriber, and a core with the
 * cheapest Argon2id parameters (hashing cost is not what these tests test).
 *
 * The recorder keeps each published event (parsed frame, scope, recipients,
 * skipped connection) so tests can assert exactly who was told what.  It
 * runs on the publishing thread, which for message.new is the store's
 * writer thread, hence the mutex. */
#ifndef CHATLI_TESTS_UNIT_CORE_FIXTURE_H
#define CHATLI_TESTS_UNIT_CORE_FIXTURE_H

#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatli/bus.h"
#include "chatli/adapters/bus_local.h"
#include "check.h"
#include "chatli/core.h"
#include "chatli/adapters/store_sqlite.h"

#define FX_MAX_EVENTS 256

struct fx_event {
    bool revocation;        /* frame is NULL; token_hash is set */
    uint8_t token_hash[32];
    int scope;
    size_t n_users;
    char (*users)[OID_SIZE];
    uint64_t skip_conn;
    json_t *frame;
};

struct fx {
    struct store *st;
    struct bus *bus;
    struct core *core;
    pthread_mutex_t lock; /* guards events and n_events */
    struct fx_event events[FX_MAX_EVENTS];
    size_t n_events;
};

static inline void fx_deliver(void *arg, const struct bus_event *ev)
{
    struct fx *f = arg;
    pthread_mutex_lock(&f->lock);
    if (f->n_events < FX_MAX_EVENTS) {
        struct fx_event *e = &f->events[f->n_events++];
        e->scope = ev->scope;
        e->n_users = ev->n_users;
        e->users = calloc(ev->n_users ? ev->n_users : 1, OID_SIZE);
        if (ev->n_users)
            memcpy(e->users, ev->user_ids, ev->n_users * OID_SIZE);
        e->skip_conn = ev->skip_conn;
        e->revocation = ev->revoked_token != NULL;
        if (e->revocation)
            memcpy(e->token_hash, ev->revoked_token, 32);
        e->frame = ev->frame ? json_loadb(ev->frame, ev->len, 0, NULL) : NULL;
    }
    pthread_mutex_unlock(&f->lock);
}

static inline void fx_clear_events(struct fx *f)
{
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->n_events; i++) {
        free(f->events[i].users);
        json_decref(f->events[i].frame);
    }
    f->n_events = 0;
    pthread_mutex_unlock(&f->lock);
}

/* The i-th recorded event of type `type`, or NULL. */
static inline struct fx_event *fx_find_event(struct fx *f, const char *type, int nth)
{
    for (size_t i = 0; i < f->n_events; i++) {
        const char *t = json_string_value(json_object_get(f->events[i].frame, "type"));
        if (t && strcmp(t, type) == 0 && nth-- == 0)
            return &f->events[i];
    }
    return NULL;
}

static inline size_t fx_count_events(struct fx *f, const char *type)
{
    size_t n = 0;
    while (fx_find_event(f, type, (int)n))
        n++;
    return n;
}

static inline bool fx_event_has_user(const struct fx_event *e, const char *id)
{
    for (size_t i = 0; i < e->n_users; i++)
        if (strcmp(e->users[i], id) == 0)
            return true;
    return false;
}

static inline void fx_open_ttl(struct fx *f, int64_t ttl_s)
{
    struct chat_err err = {0};
    memset(f, 0, sizeof *f);
    if (sodium_init() < 0) {
        fprintf(stderr, "sodium_init failed\n");
        exit(2);
    }
    pthread_mutex_init(&f->lock, NULL);
    if (store_sqlite_open(":memory:", &f->st, &err) != 0) {
        fprintf(stderr, "store_sqlite_open: %s\n", err.msg);
        exit(2);
    }
    if (bus_local_new(&f->bus, &err) != 0) {
        fprintf(stderr, "bus_local_new: %s\n", err.msg);
        exit(2);
    }
    bus_subscribe(f->bus, fx_deliver, f);
    struct core_config cfg = {
        .token_ttl_s = ttl_s,
        .pwhash_opslimit = crypto_pwhash_OPSLIMIT_MIN,
        .pwhash_memlimit = crypto_pwhash_MEMLIMIT_MIN,
        .pwhash_concurrency = 2,
    };
    if (core_new(&cfg, f->st, f->bus, &f->core, &err) != 0) {
        fprintf(stderr, "core_new: %s\n", err.msg);
        exit(2);
    }
}

static inline void fx_open(struct fx *f)
{
    fx_open_ttl(f, 3600);
}

static inline void fx_close(struct fx *f)
{
    core_free(f->core);
    store_close(f->st);
    bus_subscribe(f->bus, NULL, NULL);
    bus_close(f->bus);
    fx_clear_events(f);
    pthread_mutex_destroy(&f->lock);
}

/* Parses a JSON literal; exits on a typo in the test itself. */
static inline json_t *fx_json(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
    if (!v) {
        fprintf(stderr, "bad test JSON %s: %s\n", text, je.text);
        exit(2);
    }
    return v;
}

/* Registers `username` (email <username>@example.com, password
 * "password123") and fills `s` with its session.  Exits on failure: every
 * test depends on it. */
static inline void fx_user(struct fx *f, const char *username, struct session *s)
{
    struct chat_err err = {0};
    json_t *out = NULL;
    json_t *body = json_pack("{s:s, s:s+, s:s}", "username", username, "email", username,
                             "@example.com", "password", "password123");
    if (auth_register(f->core, body, &out, &err) != 0) {
        fprintf(stderr, "register %s: %s (%s)\n", username, err.msg, err.field ? err.field : "");
        exit(2);
    }
    const char *token = json_string_value(json_object_get(out, "token"));
    if (!token || auth_check(f->core, token, s, &err) != 0) {
        fprintf(stderr, "auth_check after register %s: %s\n", username, err.msg);
        exit(2);
    }
    json_decref(out);
    json_decref(body);
}

static inline void fx_check_err(int rc, const struct chat_err *e, int code, const char *field,
                         const char *file, int line)
{
    bool ok = rc == code && e->code == code && e->msg[0] != '\0' &&
              ((!field && !e->field) || (field && e->field && strcmp(field, e->field) == 0));
    if (ok) {
        check__passed++;
        return;
    }
    check__failed++;
    fprintf(stderr, "%s:%d: want error %d field %s, got rc %d code %d field %s msg \"%s\"\n", file,
            line, code, field ? field : "(none)", rc, e->code, e->field ? e->field : "(none)",
            e->msg);
}

/* Runs `expr` (which fills the caller's `err`) and checks the code, the
 * field (NULL for none) and that a human message was set. */
#define CHECK_ERR(expr, want_code, want_field)                                 \
    do {                                                                       \
        memset(&err, 0, sizeof err);                                           \
        int rc__ = (expr);                                                     \
        fx_check_err(rc__, &err, (want_code), (want_field), __FILE__, __LINE__); \
    } while (0)

/* ---- a blocking send ----------------------------------------------------
 * Core only sends asynchronously (REST and the gateway both answer from
 * the callback); tests want the stored message back before they go on, so
 * this waits for messages_send_async's callback.  REST's form: no clientId
 * required, no connection to skip.  *out is new (json_decref); on failure
 * it is NULL and `err` holds the callback's error. */

struct fx_send_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int rc;
    json_t *message;
    bool created;
    struct chat_err err;
};

static inline void fx_on_sent(void *arg, int rc, json_t *message, bool created,
                              const struct chat_err *err)
{
    struct fx_send_wait *w = arg;
    struct chat_err copy_err = {0};
    /* A private deep copy, not json_incref: the writer thread still holds
     * (and drops) references into `message`, and jansson's decref has no
     * acquire fence, so sharing one refcounted tree across threads is a
     * data race (ThreadSanitizer reports it). */
    json_t *copy = message ? json_deep_copy(message) : NULL;
    if (message && !copy && rc == 0) {
        rc = chat_err_set(&copy_err, CHAT_E_INTERNAL, NULL, "out of memory copying a message");
        err = &copy_err;
    }
    pthread_mutex_lock(&w->lock);
    w->rc = rc;
    w->message = copy;
    w->created = created;
    if (err)
        w->err = *err;
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static inline int messages_send(struct core *c, const struct session *s, const char *chat_id,
                                json_t *body, json_t **out, bool *created, struct chat_err *err)
{
    struct fx_send_wait w = {.done = false};
    *out = NULL;
    *created = false;
    if (pthread_mutex_init(&w.lock, NULL) != 0 || pthread_cond_init(&w.cond, NULL) != 0) {
        fprintf(stderr, "messages_send: cannot create a mutex or condition variable\n");
        exit(2);
    }
    int rc = messages_send_async(c, s, chat_id, body, false, 0, fx_on_sent, &w, err);
    if (rc == 0) {
        pthread_mutex_lock(&w.lock);
        while (!w.done)
            pthread_cond_wait(&w.cond, &w.lock);
        pthread_mutex_unlock(&w.lock);
        rc = w.rc;
        if (rc == 0) {
            *out = w.message;
            *created = w.created;
        } else if (err) {
            *err = w.err;
        }
    }
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    return rc;
}

static inline const char *fx_str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static inline long long fx_int(json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

#endif
