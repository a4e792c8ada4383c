/* fuzz_classify.c - the acceptor's first-bytes classifier, strict head
 * check and WebSocket handshake check.
 *
 * The input is what a client sent on a new connection (at most
 * NET_PEEK_MAX bytes are looked at, like the acceptor's peek).  Besides
 * "no crash, no read past len" (the bytes sit in an exact-size buffer
 * under ASan), it checks the property the acceptor relies on when it
 * re-reads a growing peek: once a prefix is decided (not MORE), more bytes
 * never change the decision.  The one exception is by design: a chunked
 * head that is fine on its own may turn bad when the same peek also holds
 * a first chunk line over NET_CHUNK_LINE_MAX.  A refusal always says why;
 * an acceptable head never does.  A complete WebSocket head gets 200, 400
 * or 426 from net_ws_check, with a reason for a refusal.  Every prefix
 * length is checked for short inputs and a spread of them for long ones. */
#include "classify.h"
#include "fuzz.h"

static bool valid_class(enum net_class c)
{
    return c == NET_CLASS_MORE || c == NET_CLASS_HTTP || c == NET_CLASS_WS;
}

static bool valid_head(enum net_head h)
{
    return h == NET_HEAD_MORE || h == NET_HEAD_OK || h == NET_HEAD_BAD ||
           h == NET_HEAD_HUGE_LENGTH || h == NET_HEAD_TOO_LARGE;
}

/* net_head_check with its reason checked: set exactly for a refusal. */
static enum net_head head(const char *buf, size_t len)
{
    const char *why = NULL;
    enum net_head h = net_head_check(buf, len, &why);
    FUZZ_CHECK(valid_head(h));
    FUZZ_CHECK((h == NET_HEAD_BAD) == (why != NULL) || h == NET_HEAD_HUGE_LENGTH ||
               h == NET_HEAD_TOO_LARGE);
    return h;
}

static void check_ws(const char *buf, size_t len)
{
    const char *why = NULL;
    int st = net_ws_check(buf, len, &why);
    FUZZ_CHECK(st == 200 || st == 400 || st == 426);
    FUZZ_CHECK((st == 200) == (why == NULL));
}

/* Decisions on buf[0..k) must agree with the one on all `len` bytes. */
static void check_prefix(const char *buf, size_t k, enum net_class full_c, enum net_head full_h)
{
    /* An exact-size copy, so reading past k is an ASan report. */
    char *p = malloc(k ? k : 1);
    if (!p)
        return;
    memcpy(p, buf, k);
    enum net_class c = net_classify(p, k);
    enum net_head h = head(p, k);
    FUZZ_CHECK(valid_class(c));
    FUZZ_CHECK(c == NET_CLASS_MORE || c == full_c);
    FUZZ_CHECK(h == NET_HEAD_MORE || h == full_h || (h == NET_HEAD_OK && full_h == NET_HEAD_BAD));
    free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len = size < NET_PEEK_MAX ? size : NET_PEEK_MAX;
    const char *buf = (const char *)data;
    enum net_class c = net_classify(buf, len);
    enum net_head h = head(buf, len);
    FUZZ_CHECK(valid_class(c));
    /* An empty input can only wait for more. */
    FUZZ_CHECK(len > 0 || (c == NET_CLASS_MORE && h == NET_HEAD_MORE));
    /* A WebSocket upgrade is only recognised on a complete head. */
    FUZZ_CHECK(c != NET_CLASS_WS || h != NET_HEAD_MORE);
    if (c == NET_CLASS_WS && h == NET_HEAD_OK)
        check_ws(buf, len);

    size_t step = len <= 256 ? 1 : len / 97 + 1;
    for (size_t k = 0; k < len; k += step)
        check_prefix(buf, k, c, h);
    return 0;
}
