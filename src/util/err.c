/* err.c - chat_err_set and the wire names and default messages of
 * chatli's error codes.
 *
 * Both lookups are switches generated from CHAT_ERRORS (chatli/err.h), so
 * each code's words come from its one line there; a code outside the list
 * reads as "internal", the answer a client gets for anything unexpected. */
#include "chatli/err.h"

#include <stdarg.h>
#include <stdio.h>

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
    switch (code) {
    case CHAT_OK:
        return "ok";
#define WIRE(name, value, status, wire, msg) \
    case CHAT_E_##name:                      \
        return wire;
        CHAT_ERRORS(WIRE)
#undef WIRE
    default:
        return chat_err_wire(CHAT_E_INTERNAL);
    }
}

const char *chat_err_default_msg(int code)
{
    switch (code) {
    case CHAT_OK:
        return "ok";
#define MSG(name, value, status, wire, msg) \
    case CHAT_E_##name:                     \
        return msg;
        CHAT_ERRORS(MSG)
#undef MSG
    default:
        return chat_err_default_msg(CHAT_E_INTERNAL);
    }
}
