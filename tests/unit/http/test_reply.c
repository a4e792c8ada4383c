/* test_reply.c - http/reply.c: the CHAT_E_* -> status mapping and the
 * contract's error body. */
#include <jansson.h>
#include <string.h>

#include "check.h"
#include "http/reply.h"
#include "chatli/err.h"

static void test_status_table(void)
{
    CHECK_EQ_INT(http_status_of(CHAT_OK), 200);
    CHECK_EQ_INT(http_status_of(CHAT_E_INVALID_JSON), 400);
    CHECK_EQ_INT(http_status_of(CHAT_E_BAD_REQUEST), 400);
    CHECK_EQ_INT(http_status_of(CHAT_E_UNAUTHORIZED), 401);
    CHECK_EQ_INT(http_status_of(CHAT_E_INVALID_CREDENTIALS), 401);
    CHECK_EQ_INT(http_status_of(CHAT_E_FORBIDDEN), 403);
    CHECK_EQ_INT(http_status_of(CHAT_E_NOT_FOUND), 404);
    CHECK_EQ_INT(http_status_of(CHAT_E_METHOD_NOT_ALLOWED), 405);
    CHECK_EQ_INT(http_status_of(CHAT_E_EMAIL_TAKEN), 409);
    CHECK_EQ_INT(http_status_of(CHAT_E_USERNAME_TAKEN), 409);
    CHECK_EQ_INT(http_status_of(CHAT_E_PAYLOAD_TOO_LARGE), 413);
    CHECK_EQ_INT(http_status_of(CHAT_E_UNSUPPORTED_MEDIA), 415);
    CHECK_EQ_INT(http_status_of(CHAT_E_VALIDATION), 422);
    CHECK_EQ_INT(http_status_of(CHAT_E_RATE_LIMITED), 429);
    CHECK_EQ_INT(http_status_of(CHAT_E_INTERNAL), 500);
    CHECK_EQ_INT(http_status_of(CHAT_E_UNAVAILABLE), 503);
    /* Every listed code has a status in 200..599 (its own line's, which
     * catches a case the switch lost); unknown codes, starting just past
     * the lowest listed one, are 500. */
    int lowest = 0;
#define EACH(name, value, st, wire, msg)                                                     \
    CHECK(http_status_of(CHAT_E_##name) >= 200 && http_status_of(CHAT_E_##name) < 600);      \
    CHECK_EQ_INT(http_status_of(CHAT_E_##name), st);                                         \
    if (CHAT_E_##name < lowest)                                                              \
        lowest = CHAT_E_##name;
    CHAT_ERRORS(EACH)
#undef EACH
    CHECK_EQ_INT(http_status_of(lowest - 1), 500);
    CHECK_EQ_INT(http_status_of(-1000), 500);
    CHECK_EQ_INT(http_status_of(7), 500);
}

static void check_body(json_t *b, const char *code, const char *msg, const char *field)
{
    CHECK(b != NULL);
    if (!b)
        return;
    CHECK_EQ_INT(json_object_size(b), 1);
    json_t *e = json_object_get(b, "error");
    CHECK(json_is_object(e));
    CHECK_EQ_STR(json_string_value(json_object_get(e, "code")), code);
    if (msg)
        CHECK_EQ_STR(json_string_value(json_object_get(e, "message")), msg);
    else
        CHECK(json_string_length(json_object_get(e, "message")) > 0);
    if (field)
        CHECK_EQ_STR(json_string_value(json_object_get(e, "field")), field);
    else
        CHECK(json_object_get(e, "field") == NULL);
    json_decref(b);
}

static void test_error_body(void)
{
    check_body(http_error_body(CHAT_E_VALIDATION, "text", "text is too long"), "validation_failed",
               "text is too long", "text");
    /* field only for validation errors */
    check_body(http_error_body(CHAT_E_NOT_FOUND, "id", "no such post"), "not_found", "no such post", NULL);
    check_body(http_error_body(CHAT_E_NOT_FOUND, NULL, NULL), "not_found", NULL, NULL);
    check_body(http_error_body(CHAT_E_NOT_FOUND, NULL, ""), "not_found", NULL, NULL);
    check_body(http_error_body(CHAT_E_VALIDATION, "", "x"), "validation_failed", "x", NULL);
    /* internal errors never echo a message: details go to the log */
    check_body(http_error_body(CHAT_E_INTERNAL, NULL, "SQLITE_CORRUPT near \"x\""), "internal",
               "internal error", NULL);
    check_body(http_error_body(-99, NULL, "weird"), "internal", "internal error", NULL);
    /* a message that is not UTF-8 is replaced, never dropped */
    check_body(http_error_body(CHAT_E_BAD_REQUEST, NULL, "bad \xff byte"), "bad_request", NULL, NULL);
    check_body(http_error_body(CHAT_E_RATE_LIMITED, NULL, NULL), "rate_limited", NULL, NULL);
}

int main(void)
{
    test_status_table();
    test_error_body();
    return check_done();
}
