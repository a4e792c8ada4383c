/* order.c - a chat's positioned frames in position order across instances
 * (the reorder buffer), and reading a frame's position.  Pure: no lws, no
 * core; the loop (conn.c) owns the table and calls it.
 *
 * With several instances on one Redis, a chat's message.new (and
 * message.updated / message.deleted, which take positions from the same
 * per-chat counter) reach an instance by two paths: its own store writer
 * publishes at once, other instances' events come through Redis, each
 * publisher on its own connection.  So position 8 written here can arrive
 * before position 7 written elsewhere.  Per chat the table keeps the last
 * position delivered; an event that is not the next one is held until the
 * missing ones arrive, or at most WS_ORDER_HOLD_MS, after which what is
 * held goes out in order and the gap is left to the client.
 *
 * Why deliver rather than fetch the gap from the store: a gap that outlives
 * the hold is either an event lost between instances (Redis trouble: the
 * bus then reports a gap and every client gets `resync`) or a position
 * burnt by a failed write (gaps are allowed and there is nothing to
 * fetch).  A store read on the loop is forbidden and one on a worker would
 * only delay delivery by another round trip for a case the client already
 * recovers from exactly (a `seq` gap makes it `sync`, CONTRACT 6).  An
 * event older than the last position delivered (it arrived after its hold
 * ran out) is delivered at once: late, never lost.
 *
 * The first event this instance sees of a chat has no known predecessor:
 * unless it is position 1 it is held for the hold too, so events that race
 * at the start of a stream still go out sorted.  A chat's state is
 * forgotten after WS_ORDER_IDLE_MS without events (ws__order_evict), so
 * memory follows the active chats, not every chat ever seen.  Loop only. */
#include "ws_internal.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_BUCKETS 64u

static size_t hash_chat(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return (size_t)h;
}

int ws__order_init(struct ws_order *o)
{
    memset(o, 0, sizeof *o);
    o->b = calloc(INITIAL_BUCKETS, sizeof *o->b);
    if (!o->b)
        return CHAT_E_INTERNAL;
    o->mask = INITIAL_BUCKETS - 1;
    return 0;
}

static void pending_add(struct ws_order *o, struct ws_order_chat *ch)
{
    if (ch->pending)
        return;
    ch->pending = true;
    ch->p_prev = NULL;
    ch->p_next = o->pending;
    if (o->pending)
        o->pending->p_prev = ch;
    o->pending = ch;
}

static void pending_del(struct ws_order *o, struct ws_order_chat *ch)
{
    if (!ch->pending)
        return;
    if (ch->p_prev)
        ch->p_prev->p_next = ch->p_next;
    else
        o->pending = ch->p_next;
    if (ch->p_next)
        ch->p_next->p_prev = ch->p_prev;
    ch->p_prev = ch->p_next = NULL;
    ch->pending = false;
}

/* Emits every held event of `ch` in order and forgets the gap. */
static void release_all(struct ws_order *o, struct ws_order_chat *ch, ws_order_emit_cb emit,
                        void *arg)
{
    struct ws_order_item *it = ch->held;
    ch->held = NULL;
    ch->n_held = 0;
    ch->deadline_ms = 0;
    pending_del(o, ch);
    while (it) {
        struct ws_order_item *next = it->next;
        if (it->seq > ch->last)
            ch->last = it->seq;
        ch->known = true;
        emit(arg, it->data);
        free(it);
        it = next;
    }
}

/* Emits the held events that follow the last delivered position without a
 * gap (and any at or below it). */
static void release_run(struct ws_order *o, struct ws_order_chat *ch, int64_t now_ms,
                        ws_order_emit_cb emit, void *arg)
{
    while (ch->held && ch->held->seq <= ch->last + 1) {
        struct ws_order_item *it = ch->held;
        ch->held = it->next;
        ch->n_held--;
        if (it->seq > ch->last)
            ch->last = it->seq;
        emit(arg, it->data);
        free(it);
    }
    if (!ch->held) {
        ch->deadline_ms = 0;
        pending_del(o, ch);
    } else {
        /* What remains waits behind a new gap: a fresh hold for it. */
        ch->deadline_ms = now_ms + WS_ORDER_HOLD_MS;
    }
}

static struct ws_order_chat *chat_get(struct ws_order *o, const char *chat)
{
    for (struct ws_order_chat *ch = o->b[hash_chat(chat) & o->mask]; ch; ch = ch->next)
        if (strcmp(ch->id, chat) == 0)
            return ch;
    return NULL;
}

static void grow(struct ws_order *o)
{
    size_t nb = (o->mask + 1) * 2;
    struct ws_order_chat **b = calloc(nb, sizeof *b);
    if (!b)
        return; /* stays denser; still correct */
    for (size_t i = 0; i <= o->mask; i++) {
        struct ws_order_chat *ch = o->b[i];
        while (ch) {
            struct ws_order_chat *next = ch->next;
            size_t k = hash_chat(ch->id) & (nb - 1);
            ch->next = b[k];
            b[k] = ch;
            ch = next;
        }
    }
    free(o->b);
    o->b = b;
    o->mask = nb - 1;
}

static struct ws_order_chat *chat_add(struct ws_order *o, const char *chat)
{
    if (strlen(chat) >= OID_SIZE)
        return NULL;
    struct ws_order_chat *ch = calloc(1, sizeof *ch);
    if (!ch)
        return NULL;
    strcpy(ch->id, chat);
    if (o->n + 1 > o->mask + 1)
        grow(o);
    size_t k = hash_chat(chat) & o->mask;
    ch->next = o->b[k];
    o->b[k] = ch;
    o->n++;
    return ch;
}

void ws__order_offer(struct ws_order *o, const char *chat, int64_t seq, void *data,
                     int64_t now_ms, ws_order_emit_cb emit, void *arg)
{
    struct ws_order_chat *ch = chat_get(o, chat);
    if (!ch)
        ch = chat_add(o, chat);
    if (!ch || seq <= 0) {
        emit(arg, data); /* OOM or no position: order is best effort then */
        return;
    }
    ch->used_ms = now_ms;
    if ((ch->known || seq == 1) && seq <= ch->last + 1) {
        /* The next position, or a late one (its hold ran out): at once. */
        ch->known = true;
        if (seq > ch->last)
            ch->last = seq;
        emit(arg, data);
        if (ch->held)
            release_run(o, ch, now_ms, emit, arg);
        return;
    }
    struct ws_order_item *it = malloc(sizeof *it);
    if (!it) {
        emit(arg, data);
        return;
    }
    it->seq = seq;
    it->data = data;
    struct ws_order_item **pp = &ch->held;
    while (*pp && (*pp)->seq <= seq)
        pp = &(*pp)->next;
    it->next = *pp;
    *pp = it;
    ch->n_held++;
    if (ch->deadline_ms == 0)
        ch->deadline_ms = now_ms + WS_ORDER_HOLD_MS;
    pending_add(o, ch);
    if (ch->n_held >= WS_ORDER_HELD_MAX)
        release_all(o, ch, emit, arg);
}

void ws__order_expire(struct ws_order *o, int64_t now_ms, ws_order_emit_cb emit, void *arg)
{
    struct ws_order_chat *ch = o->pending;
    while (ch) {
        struct ws_order_chat *next = ch->p_next;
        if (ch->deadline_ms <= now_ms)
            release_all(o, ch, emit, arg);
        ch = next;
    }
}

int64_t ws__order_next_deadline(const struct ws_order *o)
{
    int64_t d = -1;
    for (const struct ws_order_chat *ch = o->pending; ch; ch = ch->p_next)
        if (d < 0 || ch->deadline_ms < d)
            d = ch->deadline_ms;
    return d;
}

void ws__order_evict(struct ws_order *o, int64_t now_ms, int64_t idle_ms)
{
    for (size_t i = 0; i <= o->mask; i++) {
        struct ws_order_chat **pp = &o->b[i];
        while (*pp) {
            struct ws_order_chat *ch = *pp;
            if (!ch->held && now_ms - ch->used_ms >= idle_ms) {
                *pp = ch->next;
                o->n--;
                free(ch);
            } else {
                pp = &ch->next;
            }
        }
    }
}

void ws__order_cleanup(struct ws_order *o, ws_order_emit_cb drop, void *arg)
{
    if (!o->b)
        return;
    for (size_t i = 0; i <= o->mask; i++) {
        struct ws_order_chat *ch = o->b[i];
        while (ch) {
            struct ws_order_chat *next = ch->next;
            struct ws_order_item *it = ch->held;
            while (it) {
                struct ws_order_item *in = it->next;
                if (drop)
                    drop(arg, it->data);
                free(it);
                it = in;
            }
            free(ch);
            ch = next;
        }
    }
    free(o->b);
    memset(o, 0, sizeof *o);
}

/* ---- a frame's position ----------------------------------------------- */

static bool copy_id(json_t *v, char out[OID_SIZE])
{
    const char *s = json_string_value(v);
    if (!s || strlen(s) == 0 || strlen(s) >= OID_SIZE)
        return false;
    strcpy(out, s);
    return true;
}

/* The common case without a parse: a message.new exactly as core writes it
 * (messages.c message_new_frame around views_message: "id", "chatId" and
 * "seq" first, ids of 24 hex digits).  Measured here: a full json_loadb of
 * a 370-byte message.new costs 9-11 us, and with REDIS_URL every instance
 * reads every message's position, on the store writer or bus subscriber
 * thread; this match is three memcmp() and a digit loop.  Anything that
 * does not match byte for byte (another field order, an edit, a deletion)
 * takes the parse; on core's frames the match reads the same two values a
 * parse would, at positions the layout fixes.  (A frame that matches the
 * head but is broken further on still gets its position: it is delivered
 * as it is either way, like every frame the bus carries.) */
static bool position_fast(const char *f, size_t len, char chat[OID_SIZE], int64_t *seq)
{
    static const char head[] = "{\"type\":\"message.new\",\"message\":{\"id\":\"";
    static const char mid[] = "\",\"chatId\":\"";
    static const char tail[] = "\",\"seq\":";
    const size_t id = OID_SIZE - 1;
    size_t p = 0;
    if (len < sizeof head - 1 + id + sizeof mid - 1 + id + sizeof tail - 1 + 2 ||
        memcmp(f, head, sizeof head - 1) != 0)
        return false;
    p = sizeof head - 1 + id;
    if (memcmp(f + p, mid, sizeof mid - 1) != 0)
        return false;
    p += sizeof mid - 1;
    const char *c = f + p;
    p += id;
    if (memcmp(f + p, tail, sizeof tail - 1) != 0)
        return false;
    p += sizeof tail - 1;
    for (size_t i = 0; i < id; i++)
        if (!((c[i] >= '0' && c[i] <= '9') || (c[i] >= 'a' && c[i] <= 'f')))
            return false;
    int64_t v = 0;
    size_t digits = 0;
    while (p < len && f[p] >= '0' && f[p] <= '9' && digits < 18) {
        v = v * 10 + (f[p] - '0');
        p++;
        digits++;
    }
    if (digits == 0 || v <= 0 || p >= len || (f[p] != ',' && f[p] != '}') ||
        (digits > 1 && f[p - digits] == '0'))
        return false;
    memcpy(chat, c, id);
    chat[id] = '\0';
    *seq = v;
    return true;
}

bool ws__frame_position(const char *frame, size_t len, char chat[OID_SIZE], int64_t *seq)
{
    static const char prefix[] = "{\"type\":\"message.";
    *seq = 0;
    chat[0] = '\0';
    if (frame && position_fast(frame, len, chat, seq))
        return true;
    /* Every producer of these frames (core's views_event) writes "type"
     * first, so the other frames are passed over without a parse. */
    if (!frame || len < sizeof prefix - 1 || memcmp(frame, prefix, sizeof prefix - 1) != 0)
        return false;
    json_t *root = json_loadb(frame, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return false;
    }
    const char *type = json_string_value(json_object_get(root, "type"));
    json_t *msg = json_object_get(root, "message");
    bool ok = false;
    if (type && (strcmp(type, "message.new") == 0 || strcmp(type, "message.updated") == 0 ||
                 strcmp(type, "message.deleted") == 0)) {
        /* A change's own position is the top-level "seq" (message.updated
         * and message.deleted); message.new's is the message's seq. */
        json_t *s = json_object_get(root, "seq");
        if (!json_is_integer(s) && strcmp(type, "message.new") == 0)
            s = json_object_get(msg, "seq");
        ok = json_is_integer(s) && json_integer_value(s) > 0 &&
             (copy_id(json_object_get(root, "chatId"), chat) ||
              copy_id(json_object_get(msg, "chatId"), chat));
        if (ok)
            *seq = json_integer_value(s);
    }
    json_decref(root);
    if (!ok) {
        *seq = 0;
        chat[0] = '\0';
    }
    return ok;
}
