/* err.h - chatli's error codes and the caller-owned error struct.
 *
 * Every fallible function returns 0 on success or a negative CHAT_E_* code,
 * and may fill a `struct chat_err` that lives on the caller's stack (NULL is
 * allowed and ignored).  There is one CHAT_E_* per error code of CONTRACT.md
 * section 1; the wire string lives here so REST and WebSocket use the same
 * words, while the HTTP status table lives in http/reply.c alone. */
#ifndef CHATLI_ERR_H
#define CHATLI_ERR_H

enum chat_code {
    CHAT_OK = 0,
    CHAT_E_INVALID_JSON = -1,        /* 400 invalid_json */
    CHAT_E_BAD_REQUEST = -2,         /* 400 bad_request */
    CHAT_E_UNAUTHORIZED = -3,        /* 401 unauthorized */
    CHAT_E_INVALID_CREDENTIALS = -4, /* 401 invalid_credentials */
    CHAT_E_FORBIDDEN = -5,           /* 403 forbidden */
    CHAT_E_NOT_FOUND = -6,           /* 404 not_found */
    CHAT_E_METHOD_NOT_ALLOWED = -7,  /* 405 method_not_allowed */
    CHAT_E_EMAIL_TAKEN = -8,         /* 409 email_taken */
    CHAT_E_USERNAME_TAKEN = -9,      /* 409 username_taken */
    CHAT_E_PAYLOAD_TOO_LARGE = -10,  /* 413 payload_too_large */
    CHAT_E_UNSUPPORTED_MEDIA = -11,  /* 415 unsupported_media_type */
    CHAT_E_VALIDATION = -12,         /* 422 validation_failed (+ field) */
    CHAT_E_RATE_LIMITED = -13,       /* 429 rate_limited */
    CHAT_E_INTERNAL = -14,           /* 500 internal */
    CHAT_E_UNAVAILABLE = -15,        /* 503 unavailable */
};
#define CHAT_E_COUNT 16

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

/* The contract's snake_case code for `code` ("not_found", ...).  Unknown
 * codes map to "internal".  Returns a string literal. */
const char *chat_err_wire(int code);

/* A default human message for `code`, used when a caller set none. */
const char *chat_err_default_msg(int code);

#endif
