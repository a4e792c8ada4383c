/* fuzz_ws_order.c - the gateway's reorder buffer and position reader
 * (src/ws/order.c), fed what other instances put on the shared bus.
 *
 * The input is read twice.  As a frame: ws__frame_position must either
 * refuse it (seq 0, empty chat) or give a positive seq and a chat id that
 * fits OID_SIZE.  As a script of events: each 3 bytes are (chat 0-3, seq
 * 1-256, ms to advance 0-63) offered to one table, expiring holds as time
 * passes.  Checked: every event offered is emitted exactly once (at the
 * latest when every hold has run out, or by cleanup); within a chat an
 * event that was not already late when offered is never emitted below one
 * emitted before it; nothing is held past its deadline once expired. */
#include "fuzz.h"
#include "ws_internal.h"

#include <stdlib.h>
#include <string.h>

#define MAX_EVENTS 4096

struct ev {
    int chat;
    int64_t seq;
    bool late;     /* offered at or below the chat's highest emitted seq */
    int emitted;
};

struct run {
    struct ev ev[MAX_EVENTS];
    int64_t max_emitted[4];
};

static void emit(void *arg, void *data)
{
    struct run *r = arg;
    struct ev *e = &r->ev[(intptr_t)data];
    e->emitted++;
    FUZZ_CHECK(e->emitted == 1);
    if (!e->late)
        FUZZ_CHECK(e->seq >= r->max_emitted[e->chat]);
    if (e->seq > r->max_emitted[e->chat])
        r->max_emitted[e->chat] = e->seq;
}

static const char *const chats[4] = {"c0", "c1", "c2", "c3"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char chat[OID_SIZE];
    int64_t seq = -1;
    if (ws__frame_position((const char *)data, size, chat, &seq)) {
        FUZZ_CHECK(seq > 0);
        size_t n = strnlen(chat, OID_SIZE);
        FUZZ_CHECK(n > 0 && n < OID_SIZE);
    } else {
        FUZZ_CHECK(seq == 0 && chat[0] == '\0');
    }

    static struct run r;
    memset(&r, 0, sizeof r);
    struct ws_order o;
    if (ws__order_init(&o) != 0)
        return 0;
    int64_t now = 1000;
    int n = 0;
    for (size_t i = 0; i + 3 <= size && n < MAX_EVENTS; i += 3, n++) {
        struct ev *e = &r.ev[n];
        e->chat = data[i] & 3;
        e->seq = (int64_t)data[i + 1] + 1;
        e->late = e->seq <= r.max_emitted[e->chat];
        ws__order_offer(&o, chats[e->chat], e->seq, (void *)(intptr_t)n, now, emit, &r);
        now += data[i + 2] & 63;
        ws__order_expire(&o, now, emit, &r);
        int64_t d = ws__order_next_deadline(&o);
        FUZZ_CHECK(d < 0 || d > now);
    }
    ws__order_expire(&o, now + WS_ORDER_HOLD_MS, emit, &r);
    FUZZ_CHECK(ws__order_next_deadline(&o) < 0);
    for (int i = 0; i < n; i++)
        FUZZ_CHECK(r.ev[i].emitted == 1);
    ws__order_evict(&o, now + WS_ORDER_HOLD_MS + WS_ORDER_IDLE_MS, WS_ORDER_IDLE_MS);
    FUZZ_CHECK(o.n == 0);
    ws__order_cleanup(&o, NULL, NULL);
    return 0;
}
