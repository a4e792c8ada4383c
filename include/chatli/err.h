/* err.h - chatli's error codes and the caller-owned error struct.
 *
 * Every fallible function returns 0 on success or a negative CHAT_E_* code,
 * and may fill a `struct chat_err` that lives on the caller's stack (NULL is
 * allowed and ignored).  There is one CHAT_E_* per error code of CONTRACT.md
 * section 1, and everything about a code sits on its one line of
 * CHAT_ERRORS below, so adding a code cannot leave a table behind.  The wire
 * string is shared by REST and WebSocket; the HTTP status sits on the same
 * line only so the line is complete: http/reply.c is the one place that
 * reads it (core and the gateway never think in statuses). */
#ifndef CHATLI_ERR_H
#define CHATLI_ERR_H

/* X(NAME, value, HTTP status, wire code, default message): CHAT_E_<NAME>.
 * Values are distinct negative numbers (switches built from this list
 * refuse to compile otherwise); the wire code and message are what a
 * client sees when the caller set no message of its own. */
#define CHAT_ERRORS(X)                                                                             \
    X(INVALID_JSON, -1, 400, "invalid_json", "request body is not a valid JSON object")            \
    X(BAD_REQUEST, -2, 400, "bad_request", "bad request")                                          \
    X(UNAUTHORIZED, -3, 401, "unauthorized", "missing, invalid or expired token")                  \
    X(INVALID_CREDENTIALS, -4, 401, "invalid_credentials", "wrong email/username or password")     \
    X(FORBIDDEN, -5, 403, "forbidden", "not allowed")                                              \
    X(NOT_FOUND, -6, 404, "not_found", "not found")                                                \
    X(METHOD_NOT_ALLOWED, -7, 405, "method_not_allowed", "method not allowed")                     \
    X(EMAIL_TAKEN, -8, 409, "email_taken", "email is already registered")                          \
    X(USERNAME_TAKEN, -9, 409, "username_taken", "username is already taken")                      \
    X(PAYLOAD_TOO_LARGE, -10, 413, "payload_too_large", "payload too large")                       \
    X(UNSUPPORTED_MEDIA, -11, 415, "unsupported_media_type", "unsupported media type")             \
    X(VALIDATION, -12, 422, "validation_failed", "validation failed") /* + field */                \
    X(RATE_LIMITED, -13, 429, "rate_limited", "too many requests")                                 \
    X(INTERNAL, -14, 500, "internal", "internal error")                                            \
    X(UNAVAILABLE, -15, 503, "unavailable", "a backing service is unavailable")

enum chat_code {
    CHAT_OK = 0,
#define CHAT_ERR__ENUM(name, value, status, wire, msg) CHAT_E_##name = (value),
    CHAT_ERRORS(CHAT_ERR__ENUM)
#undef CHAT_ERR__ENUM
};

/* Details of a failure.  `field` points to a string literal (never freed);
 * `msg` is human text safe to show a client: never SQL, driver text or a
 * stack trace (those go to the log). */
struct chat_err {
    int code;
    const char *field;
    char msg[128];
};

/* Fills `err` (if not NULL) and returns `code`, so a caller can write
 * `return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such post");`.
 * `field` must be a string literal or otherwise outlive `err`. */
int chat_err_set(struct chat_err *err, int code, const char *field,
                 const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The contract's snake_case code for `code` ("not_found", ...); "ok" for
 * CHAT_OK.  Unknown codes map to "internal".  Returns a string literal. */
const char *chat_err_wire(int code);

/* A default human message for `code`, used when a caller set none; "ok"
 * for CHAT_OK, and "internal error" for unknown codes.  Returns a string
 * literal. */
const char *chat_err_default_msg(int code);

#endif
