/* test_util.c - util/: ObjectIds, timestamps, error wire names, metrics. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "chatli/clock.h"
#include "chatli/err.h"
#include "chatli/metrics.h"
#include "chatli/oid.h"

static void test_oid(void)
{
    char a[OID_SIZE], b[OID_SIZE];
    oid_new(a, 1764326362123);
    oid_new(b, 1764326362123);
    CHECK(oid_valid(a));
    CHECK(oid_valid(b));
    CHECK(strcmp(a, b) != 0);
    CHECK(strncmp(a, "69297bda", 8) == 0); /* 1764326362 = 0x69297bda */
    CHECK(!oid_valid(NULL));
    CHECK(!oid_valid(""));
    CHECK(!oid_valid("6929b0da00000000000000"));
    CHECK(!oid_valid("6929B0DA0000000000000000"));
    CHECK(!oid_valid("6929b0da00000000000000000"));
    CHECK(!oid_valid("6929b0da000000000000000g"));
    CHECK(oid_valid("6929b0da0000000000000000"));
}

static void test_clock(void)
{
    char buf[CLOCK_ISO_LEN];
    CHECK_EQ_STR(clock_format_iso(1795862362123, buf), "2026-11-28T10:39:22.123Z");
    CHECK_EQ_STR(clock_format_iso(0, buf), "1970-01-01T00:00:00.000Z");
    CHECK(clock_now_ms() > 1700000000000);
}

static void test_err(void)
{
    struct chat_err e;
    CHECK_EQ_INT(chat_err_set(&e, CHAT_E_VALIDATION, "text", "too long: %d", 5), CHAT_E_VALIDATION);
    CHECK_EQ_STR(e.msg, "too long: 5");
    CHECK_EQ_STR(e.field, "text");
    CHECK_EQ_STR(chat_err_wire(CHAT_E_UNSUPPORTED_MEDIA), "unsupported_media_type");
    CHECK_EQ_STR(chat_err_wire(CHAT_E_UNAVAILABLE), "unavailable");
    CHECK_EQ_STR(chat_err_wire(-99), "internal");
    CHECK_EQ_INT(chat_err_set(NULL, CHAT_E_NOT_FOUND, NULL, NULL), CHAT_E_NOT_FOUND);
}

static double seven(void *arg) { return 7; }

static void test_metrics(void)
{
    metrics_http_request("/api/posts", "GET", 200, 0.0003);
    metrics_http_request("/api/posts", "GET", 200, 0.002);
    metrics_http_request("/api/posts", "POST", 201, 0.004);
    metrics_store_op("get_user", 0.00002);
    metrics_error("internal");
    metrics_ws_connections_add(3);
    metrics_ws_connections_add(-1);
    metrics_register_gauge("chatli_test_gauge", "A test gauge.", seven, NULL);
    size_t len = 0;
    char *s = metrics_render(&len);
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK(len == strlen(s));
    CHECK(strstr(s, "chatli_http_requests_total{route=\"/api/posts\",method=\"GET\",status=\"200\"} 2\n"));
    CHECK(strstr(s, "chatli_http_requests_total{route=\"/api/posts\",method=\"POST\",status=\"201\"} 1\n"));
    CHECK(strstr(s, "chatli_http_request_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
    CHECK(strstr(s, "chatli_http_request_duration_seconds_count 3\n"));
    CHECK(strstr(s, "chatli_store_op_duration_seconds_bucket{op=\"get_user\",le=\"5e-05\"} 1\n"));
    CHECK(strstr(s, "chatli_errors_total{kind=\"internal\"} 1\n"));
    CHECK(strstr(s, "chatli_ws_connections 2\n"));
    CHECK(strstr(s, "chatli_test_gauge 7\n"));
    CHECK(strstr(s, "process_resident_memory_bytes "));
    free(s);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    test_oid();
    test_clock();
    test_err();
    test_metrics();
    return check_done();
}
