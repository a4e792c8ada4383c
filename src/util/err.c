/* err.c - the wire names of chatli's error codes. */
#include "chatli/err.h"

#include <stdarg.h>
#include <stdio.h>

static const struct {
    const char *wire;
    const char *msg;
} table[CHAT_E_COUNT] = {
    [0] = {"ok", "ok"},
    [1] = {"invalid_json", "request body is not a valid JSON object"},
    [2] = {"bad_request", "bad request"},
    [3] = {"unauthorized", "missing, invalid or expired token"},
    [4] = {"invalid_credentials", "wrong email/username or password"},
    [5] = {"forbidden", "not allowed"},
    [6] = {"not_found", "not found"},
    [7] = {"method_not_allowed", "method not allowed"},
    [8] = {"email_taken", "email is already registered"},
    [9] = {"username_taken", "username is already taken"},
    [10] = {"payload_too_large", "payload too large"},
    [11] = {"unsupported_media_type", "unsupported media type"},
    [12] = {"validation_failed", "validation failed"},
    [13] = {"rate_limited", "too many requests"},
    [14] = {"internal", "internal error"},
    [15] = {"unavailable", "a backing service is unavailable"},
};

static int index_of(int code)
{
    int i = -code;
    return (i > 0 && i < CHAT_E_COUNT) ? i : 14;
}

int chat_err_set(struct chat_err *err, int code, const char *field,
                 const char *fmt, ...)
{
    if (err) {
        err->code = code;
        err->field = field;
        if (fmt) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err->msg, sizeof err->msg, fmt, ap);
            va_end(ap);
        } else {
            snprintf(err->msg, sizeof err->msg, "%s", chat_err_default_msg(code));
        }
    }
    return code;
}

const char *chat_err_wire(int code)
{
    return code == 0 ? table[0].wire : table[index_of(code)].wire;
}

const char *chat_err_default_msg(int code)
{
    return code == 0 ? table[0].msg : table[index_of(code)].msg;
}
