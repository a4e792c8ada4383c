/* test_send_text.c - messages_send_async_text (core/messages.c): the
 * Message is serialized once and shared by the caller's text and the
 * message.new frame, which is assembled around that text.
 *
 * What must hold: the frame on the bus is byte for byte what serializing
 * views_event("message.new", "message", msg) gives; the caller's text is
 * the same Message; a clientId repeat answers the first message with
 * created false and publishes nothing; failures before queueing return an
 * error and never call back. */
#include <pthread.h>
#include <stdatomic.h>

#include "fixture.h"

/* The raw frames published on the bus (the fixture's recorder parses). */
static pthread_mutex_t raw_lock = PTHREAD_MUTEX_INITIALIZER;
static char *raw_frames[16];
static size_t n_raw;

static void raw_deliver(void *arg, const struct bus_event *ev)
{
    pthread_mutex_lock(&raw_lock);
    if (ev->frame && n_raw < 16)
        raw_frames[n_raw++] = strndup(ev->frame, ev->len);
    pthread_mutex_unlock(&raw_lock);
}

struct wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int rc;
    char *text;
    bool created;
    int calls;
};

static void on_text(void *arg, int rc, const char *message, size_t len, bool created,
                    const struct chat_err *err)
{
    struct wait *w = arg;
    pthread_mutex_lock(&w->lock);
    w->rc = rc;
    w->text = message ? strndup(message, len) : NULL;
    w->created = created;
    w->calls++;
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* Sends `body_text` as `s` and waits for the completion. */
static int send_text(struct fx *f, const struct session *s, const char *chat, const char *body_text,
                     struct wait *w, struct chat_err *err)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    json_t *body = fx_json(body_text);
    int rc = messages_send_async_text(f->core, s, chat, body, false, 0, on_text, w, err);
    json_decref(body);
    if (rc == 0) {
        pthread_mutex_lock(&w->lock);
        while (!w->done)
            pthread_cond_wait(&w->cond, &w->lock);
        pthread_mutex_unlock(&w->lock);
    }
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    return rc;
}

int main(void)
{
    struct fx f;
    struct chat_err err = {0};
    struct session a, b;
    json_t *out = NULL;
    fx_open(&f);
    bus_subscribe(f.bus, raw_deliver, NULL);
    fx_user(&f, "st_a", &a);
    fx_user(&f, "st_b", &b);
    json_t *body = json_pack("{s:[s]}", "memberIds", b.user_id);
    bool created = false;
    CHECK_EQ_INT(chats_create(f.core, &a, body, &out, &created, &err), 0);
    json_decref(body);
    char chat[OID_SIZE];
    snprintf(chat, sizeof chat, "%s", fx_str(out, "id"));
    json_decref(out);
    pthread_mutex_lock(&raw_lock);
    for (size_t i = 0; i < n_raw; i++)
        free(raw_frames[i]);
    n_raw = 0;
    pthread_mutex_unlock(&raw_lock);

    struct wait w;
    CHECK_EQ_INT(send_text(&f, &a, chat, "{\"text\":\"h\\u00e9llo \\\"q\\\"\",\"clientId\":\"k1\"}", &w,
                           &err), 0);
    CHECK_EQ_INT(w.rc, 0);
    CHECK_EQ_INT(w.calls, 1);
    CHECK(w.created);
    json_t *msg = w.text ? json_loads(w.text, 0, NULL) : NULL;
    CHECK(msg != NULL);
    CHECK_EQ_STR(fx_str(msg, "text"), "h\xC3\xA9llo \"q\"");
    CHECK_EQ_INT(json_integer_value(json_object_get(msg, "seq")), 1);
    CHECK_EQ_STR(fx_str(json_object_get(msg, "sender"), "username"), "st_a");

    /* The frame: exactly jansson's serialization of the event object. */
    json_t *ev = json_pack("{s:s, s:O}", "type", "message.new", "message", msg);
    char *want = json_dumps(ev, JSON_COMPACT);
    pthread_mutex_lock(&raw_lock);
    CHECK_EQ_INT(n_raw, 1);
    if (n_raw == 1)
        CHECK_EQ_STR(raw_frames[0], want);
    pthread_mutex_unlock(&raw_lock);
    free(want);
    json_decref(ev);

    /* A clientId repeat: the first message, not created, not published. */
    char first_id[OID_SIZE];
    snprintf(first_id, sizeof first_id, "%s", fx_str(msg, "id"));
    json_decref(msg);
    free(w.text);
    CHECK_EQ_INT(send_text(&f, &a, chat, "{\"text\":\"again\",\"clientId\":\"k1\"}", &w, &err), 0);
    CHECK_EQ_INT(w.rc, 0);
    CHECK(!w.created);
    msg = w.text ? json_loads(w.text, 0, NULL) : NULL;
    CHECK_EQ_STR(fx_str(msg, "id"), first_id);
    json_decref(msg);
    free(w.text);
    pthread_mutex_lock(&raw_lock);
    CHECK_EQ_INT(n_raw, 1);
    pthread_mutex_unlock(&raw_lock);

    /* Refused before queueing: an error and no callback. */
    CHECK_ERR(send_text(&f, &a, chat, "{\"clientId\":\"k2\"}", &w, &err), CHAT_E_VALIDATION, "text");
    CHECK_EQ_INT(w.calls, 0);
    CHECK_ERR(send_text(&f, &a, "0123456789abcdef01234567", "{\"text\":\"x\"}", &w, &err),
              CHAT_E_NOT_FOUND, NULL);
    CHECK_EQ_INT(w.calls, 0);

    bus_subscribe(f.bus, fx_deliver, &f);
    fx_close(&f);
    for (size_t i = 0; i < n_raw; i++)
        free(raw_frames[i]);
    return check_done();
}
