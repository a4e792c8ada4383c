/* test_ws_order.c - the reorder buffer (src/ws/order.c): in-order events go
 * at once, an early one waits for the positions before it, a gap that
 * outlives the hold is skipped in order, late events are never lost, the
 * first event of an unknown chat waits unless it is position 1, the held
 * cap, eviction, chats are independent, and reading a frame's position
 * (including malformed frames). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ws/ws_internal.h"

/* What the emit callback saw, in order. */
struct seen {
    long v[600];
    int n;
};

static void emit(void *arg, void *data)
{
    struct seen *s = arg;
    if (s->n < 600)
        s->v[s->n++] = (long)(intptr_t)data;
}

static void offer(struct ws_order *o, const char *chat, long seq, int64_t now, struct seen *s)
{
    ws__order_offer(o, chat, seq, (void *)(intptr_t)seq, now, emit, s);
}

static void test_in_order_and_hold(void)
{
    struct ws_order o;
    struct seen s = {0};
    CHECK_EQ_INT(ws__order_init(&o), 0);
    offer(&o, "c1", 1, 1000, &s);
    offer(&o, "c1", 2, 1000, &s);
    CHECK_EQ_INT(s.n, 2);
    /* 4 and 5 arrive before 3: held */
    offer(&o, "c1", 4, 1001, &s);
    offer(&o, "c1", 5, 1002, &s);
    CHECK_EQ_INT(s.n, 2);
    CHECK_EQ_INT(ws__order_next_deadline(&o), 1001 + WS_ORDER_HOLD_MS);
    /* the hold has not run out yet */
    ws__order_expire(&o, 1001 + WS_ORDER_HOLD_MS - 1, emit, &s);
    CHECK_EQ_INT(s.n, 2);
    offer(&o, "c1", 3, 1010, &s);
    CHECK_EQ_INT(s.n, 5);
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(s.v[i], i + 1);
    CHECK_EQ_INT(ws__order_next_deadline(&o), -1);
    ws__order_cleanup(&o, NULL, NULL);
}

static void test_gap_skipped_after_hold(void)
{
    struct ws_order o;
    struct seen s = {0};
    ws__order_init(&o);
    offer(&o, "c", 1, 0, &s);
    /* 2 was never written (a failed write): 4, 3 wait, then go sorted */
    offer(&o, "c", 4, 10, &s);
    offer(&o, "c", 3, 20, &s);
    CHECK_EQ_INT(s.n, 1);
    ws__order_expire(&o, 10 + WS_ORDER_HOLD_MS, emit, &s);
    CHECK_EQ_INT(s.n, 3);
    CHECK_EQ_INT(s.v[1], 3);
    CHECK_EQ_INT(s.v[2], 4);
    /* the stream goes on from 4 */
    offer(&o, "c", 5, 200, &s);
    CHECK_EQ_INT(s.n, 4);
    CHECK_EQ_INT(s.v[3], 5);
    /* 2 arrives at last (late): delivered at once, not dropped */
    offer(&o, "c", 2, 210, &s);
    CHECK_EQ_INT(s.n, 5);
    CHECK_EQ_INT(s.v[4], 2);
    /* and does not move the position back */
    offer(&o, "c", 6, 220, &s);
    CHECK_EQ_INT(s.n, 6);
    CHECK_EQ_INT(s.v[5], 6);
    ws__order_cleanup(&o, NULL, NULL);
}

static void test_partial_release_rearms(void)
{
    struct ws_order o;
    struct seen s = {0};
    ws__order_init(&o);
    offer(&o, "c", 1, 0, &s);
    offer(&o, "c", 3, 0, &s);
    offer(&o, "c", 6, 0, &s);
    offer(&o, "c", 2, 50, &s); /* 2 and 3 go; 6 waits behind 4 and 5 */
    CHECK_EQ_INT(s.n, 3);
    CHECK_EQ_INT(ws__order_next_deadline(&o), 50 + WS_ORDER_HOLD_MS);
    ws__order_expire(&o, 50 + WS_ORDER_HOLD_MS, emit, &s);
    CHECK_EQ_INT(s.n, 4);
    CHECK_EQ_INT(s.v[3], 6);
    ws__order_cleanup(&o, NULL, NULL);
}

static void test_unknown_start_waits(void)
{
    struct ws_order o;
    struct seen s = {0};
    ws__order_init(&o);
    /* A chat first seen at 8 (it began before this instance listened):
     * 8 waits; 7 racing it still goes first. */
    offer(&o, "x", 8, 0, &s);
    CHECK_EQ_INT(s.n, 0);
    offer(&o, "x", 7, 5, &s);
    CHECK_EQ_INT(s.n, 0);
    ws__order_expire(&o, WS_ORDER_HOLD_MS, emit, &s);
    CHECK_EQ_INT(s.n, 2);
    CHECK_EQ_INT(s.v[0], 7);
    CHECK_EQ_INT(s.v[1], 8);
    offer(&o, "x", 9, 200, &s);
    CHECK_EQ_INT(s.n, 3);
    /* position 1 of a new chat has nothing before it: at once */
    offer(&o, "y", 1, 300, &s);
    CHECK_EQ_INT(s.n, 4);
    ws__order_cleanup(&o, NULL, NULL);
}

static void test_chats_independent_and_cap(void)
{
    struct ws_order o;
    struct seen s = {0};
    ws__order_init(&o);
    offer(&o, "a", 1, 0, &s);
    offer(&o, "b", 1, 0, &s);
    offer(&o, "a", 3, 0, &s); /* a waits for 2 */
    offer(&o, "b", 2, 0, &s); /* b is not held up by a */
    CHECK_EQ_INT(s.n, 3);
    CHECK_EQ_INT(s.v[2], 2);
    /* the cap: a chat holding WS_ORDER_HELD_MAX events lets them all go */
    offer(&o, "c", 1, 0, &s);
    int before = s.n;
    for (long i = WS_ORDER_HELD_MAX + 2; i >= 3; i--)
        offer(&o, "c", i, 0, &s);
    CHECK_EQ_INT(s.n, before + WS_ORDER_HELD_MAX);
    int sorted = 1;
    for (int i = before + 1; i < s.n; i++)
        if (s.v[i] <= s.v[i - 1])
            sorted = 0;
    CHECK(sorted);
    ws__order_cleanup(&o, NULL, NULL);
}

static void test_evict_and_cleanup_drops(void)
{
    struct ws_order o;
    struct seen s = {0}, dropped = {0};
    ws__order_init(&o);
    for (int i = 0; i < 200; i++) { /* grows the table past its first size */
        char id[OID_SIZE];
        snprintf(id, sizeof id, "chat%03d", i);
        offer(&o, id, 1, 0, &s);
    }
    CHECK_EQ_INT(o.n, 200);
    offer(&o, "held", 5, 0, &s);
    ws__order_evict(&o, WS_ORDER_IDLE_MS, WS_ORDER_IDLE_MS);
    CHECK_EQ_INT(o.n, 1); /* only the chat holding an event stays */
    /* an evicted chat starts over: its next event waits like a first one */
    offer(&o, "chat000", 2, WS_ORDER_IDLE_MS + 1, &s);
    CHECK_EQ_INT(s.n, 200);
    ws__order_cleanup(&o, emit, &dropped);
    CHECK_EQ_INT(dropped.n, 2);
}

static void test_no_position_passes(void)
{
    struct ws_order o;
    struct seen s = {0};
    ws__order_init(&o);
    offer(&o, "c", 0, 0, &s);
    offer(&o, "c", -3, 0, &s);
    CHECK_EQ_INT(s.n, 2);
    char long_id[OID_SIZE + 8];
    memset(long_id, 'z', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    offer(&o, long_id, 7, 0, &s);
    CHECK_EQ_INT(s.n, 3);
    ws__order_cleanup(&o, NULL, NULL);
}

static void test_frame_position(void)
{
    char chat[OID_SIZE];
    int64_t seq;
    const char *f1 = "{\"type\":\"message.new\",\"message\":{\"id\":\"m\",\"chatId\":\"c1\","
                     "\"seq\":42,\"text\":\"\\\"seq\\\":7\"}}";
    CHECK(ws__frame_position(f1, strlen(f1), chat, &seq));
    CHECK_EQ_INT(seq, 42);
    CHECK_EQ_STR(chat, "c1");
    /* an edit's position is its own, not the message's */
    const char *f2 = "{\"type\":\"message.updated\",\"seq\":50,\"message\":{\"chatId\":\"c2\","
                     "\"seq\":3}}";
    CHECK(ws__frame_position(f2, strlen(f2), chat, &seq));
    CHECK_EQ_INT(seq, 50);
    CHECK_EQ_STR(chat, "c2");
    const char *f3 = "{\"type\":\"message.deleted\",\"chatId\":\"c3\",\"messageId\":\"m\","
                     "\"seq\":51}";
    CHECK(ws__frame_position(f3, strlen(f3), chat, &seq));
    CHECK_EQ_INT(seq, 51);
    CHECK_EQ_STR(chat, "c3");
    /* an edit without its own position is not ordered by the message's */
    const char *f4 = "{\"type\":\"message.updated\",\"message\":{\"chatId\":\"c2\",\"seq\":3}}";
    CHECK(!ws__frame_position(f4, strlen(f4), chat, &seq));
    CHECK_EQ_INT(seq, 0);
    /* other frames and malformed ones */
    const char *bad[] = {
        "{\"type\":\"typing\",\"chatId\":\"c\",\"userId\":\"u\"}",
        "{\"type\":\"message.new\"",
        "{\"type\":\"message.new\",\"message\":{\"chatId\":\"c\",\"seq\":\"1\"}}",
        "{\"type\":\"message.new\",\"message\":{\"chatId\":\"c\",\"seq\":0}}",
        "{\"type\":\"message.new\",\"message\":{\"chatId\":7,\"seq\":3}}",
        "{\"type\":\"message.new\",\"message\":{\"chatId\":\"\",\"seq\":3}}",
        "{\"type\":\"message.new\",\"message\":[1,2]}",
        "{\"type\":\"message.newer\",\"message\":{\"chatId\":\"c\",\"seq\":3}}",
        "{\"type\":\"message.new\",\"message\":{\"chatId\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
        "\"seq\":3}}",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(!ws__frame_position(bad[i], strlen(bad[i]), chat, &seq));
        CHECK_EQ_INT(seq, 0);
    }
    CHECK(!ws__frame_position(NULL, 0, chat, &seq));
    /* core's own layout (the fast path) and the same message with its
     * fields in another order (the parse) read the same position */
    const char *fast = "{\"type\":\"message.new\",\"message\":{\"id\":"
                       "\"6b165534c55bd4d129c2fc9a\",\"chatId\":\"6b165534c55bd4d129c2fc9b\","
                       "\"seq\":4242,\"text\":\"x\"}}";
    const char *slow = "{\"type\":\"message.new\",\"message\":{\"seq\":4242,\"id\":"
                       "\"6b165534c55bd4d129c2fc9a\",\"chatId\":\"6b165534c55bd4d129c2fc9b\","
                       "\"text\":\"x\"}}";
    CHECK(ws__frame_position(fast, strlen(fast), chat, &seq));
    CHECK_EQ_INT(seq, 4242);
    CHECK_EQ_STR(chat, "6b165534c55bd4d129c2fc9b");
    CHECK(ws__frame_position(slow, strlen(slow), chat, &seq));
    CHECK_EQ_INT(seq, 4242);
    CHECK_EQ_STR(chat, "6b165534c55bd4d129c2fc9b");
    /* near misses of the layout fall to the parse, which judges them */
    const char *near[] = {
        /* seq 0, leading zero, not a number, a float: refused by both */
        "{\"type\":\"message.new\",\"message\":{\"id\":\"6b165534c55bd4d129c2fc9a\","
        "\"chatId\":\"6b165534c55bd4d129c2fc9b\",\"seq\":0}}",
        "{\"type\":\"message.new\",\"message\":{\"id\":\"6b165534c55bd4d129c2fc9a\","
        "\"chatId\":\"6b165534c55bd4d129c2fc9b\",\"seq\":07}}",
        "{\"type\":\"message.new\",\"message\":{\"id\":\"6b165534c55bd4d129c2fc9a\","
        "\"chatId\":\"6b165534c55bd4d129c2fc9b\",\"seq\":7.5}}",
        /* cut short after the digits */
        "{\"type\":\"message.new\",\"message\":{\"id\":\"6b165534c55bd4d129c2fc9a\","
        "\"chatId\":\"6b165534c55bd4d129c2fc9b\",\"seq\":7",
        /* an uppercase id is not ours */
        "{\"type\":\"message.new\",\"message\":{\"id\":\"6b165534c55bd4d129c2fc9a\","
        "\"chatId\":\"6B165534C55BD4D129C2FC9B\",\"seq\":7,\"x\":1",
    };
    for (size_t i = 0; i < sizeof near / sizeof near[0]; i++) {
        CHECK(!ws__frame_position(near[i], strlen(near[i]), chat, &seq));
        CHECK_EQ_INT(seq, 0);
    }
    /* a complete frame whose chat id is not hex still parses (the slow
     * path accepts any short string id) */
    const char *odd = "{\"type\":\"message.new\",\"message\":{\"id\":\"6b165534c55bd4d129c2fc9a\","
                      "\"chatId\":\"6B165534C55BD4D129C2FC9B\",\"seq\":7}}";
    CHECK(ws__frame_position(odd, strlen(odd), chat, &seq));
    CHECK_EQ_INT(seq, 7);
    CHECK_EQ_STR(chat, "6B165534C55BD4D129C2FC9B");
    /* a length that cuts the frame short is honoured */
    CHECK(!ws__frame_position(f1, 30, chat, &seq));
}

int main(void)
{
    test_in_order_and_hold();
    test_gap_skipped_after_hold();
    test_partial_release_rearms();
    test_unknown_start_waits();
    test_chats_independent_and_cap();
    test_evict_and_cleanup_drops();
    test_no_position_passes();
    test_frame_position();
    return check_done();
}
