/* fuzz_validate.c - the contract's input rules (src/core/validate.c).
 *
 * Each input is used twice.  As a C string (a query value, or a string
 * field after jansson) it goes through every scalar rule, and each "true"
 * is checked against the rule's documented shape.  As a request body it is
 * parsed like the REST layer does (src/http/server.c) and, when it is an
 * object, its fields are read with the exact field rules core applies
 * (auth, users, posts, chats, messages); an accepted string must lie
 * within its bounds. */
#include <jansson.h>
#include <strings.h>

#include "fuzz.h"
#include "validate.h"

static bool is_space_ascii(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static void check_scalars(char *s)
{
    size_t len = strlen(s);

    if (validate_username(s)) {
        FUZZ_CHECK(len >= 3 && len <= 32);
        FUZZ_CHECK(strspn(s, "abcdefghijklmnopqrstuvwxyz"
                             "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == len);
    }
    if (validate_email(s)) {
        const char *at = strchr(s, '@');
        FUZZ_CHECK(len <= VALIDATE_EMAIL_MAX && at && at > s && !strchr(at + 1, '@'));
        FUZZ_CHECK(strchr(at, '.') && s[len - 1] != '.');
    }
    if (validate_url(s)) {
        FUZZ_CHECK(len <= VALIDATE_URL_MAX);
        FUZZ_CHECK(strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0);
        FUZZ_CHECK(strcspn(s, " \t\r\n\"<>\\^`{|}") == len);
    }
    int64_t v = -1;
    if (validate_decimal(s, 18, &v)) {
        FUZZ_CHECK(len >= 1 && len <= 18 && v >= 0);
        FUZZ_CHECK(v == strtoll(s, NULL, 10));
    }
    int limit = 0;
    struct chat_err err = {0};
    if (validate_limit(s, &limit, &err) == 0)
        FUZZ_CHECK(limit >= 1 && limit <= 100);
    else
        FUZZ_CHECK(err.code == CHAT_E_VALIDATION && strcmp(err.field, "limit") == 0);

    const char *t = s;
    size_t tl = len;
    validate_trim(&t, &tl);
    FUZZ_CHECK(t >= s && t + tl <= s + len);
    FUZZ_CHECK(tl == 0 || (!is_space_ascii(t[0]) && !is_space_ascii(t[tl - 1])));
    FUZZ_CHECK(validate_cp_len(s, len) <= len && validate_cp_len(t, tl) <= tl);

    validate_ascii_lower(s);
    for (size_t i = 0; i < len; i++)
        FUZZ_CHECK(s[i] < 'A' || s[i] > 'Z');
}

/* The field rules core applies, as (name, flags, min, max); url = 1 for the
 * URL fields. */
static const struct {
    const char *name;
    unsigned flags;
    size_t min, max;
    int url;
} fields[] = {
    {"username", VALIDATE_REQUIRED | VALIDATE_TRIM, 3, 32, 0},
    {"email", VALIDATE_REQUIRED | VALIDATE_TRIM, 1, VALIDATE_EMAIL_MAX, 0},
    {"password", VALIDATE_REQUIRED, 8, 128, 0},
    {"displayName", VALIDATE_TRIM, 1, 64, 0},
    {"bio", VALIDATE_TRIM, 0, 500, 0},
    {"name", VALIDATE_TRIM, 1, 64, 0},
    {"userId", VALIDATE_REQUIRED, 0, SIZE_MAX, 0},
    {"messageId", VALIDATE_REQUIRED, 0, SIZE_MAX, 0},
    {"text", VALIDATE_REQUIRED | VALIDATE_TRIM, 1, 2000, 0},
    {"clientId", 0, 1, 64, 0},
    {"avatarUrl", 0, 0, 0, 1},
    {"imageUrl", 0, 0, 0, 1},
    {"attachmentUrl", 0, 0, 0, 1},
};

static void check_body(json_t *body)
{
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        char *out = NULL;
        struct chat_err err = {0};
        int rc = fields[i].url
                     ? validate_url_field(body, fields[i].name, &out, &err)
                     : validate_string_field(body, fields[i].name, fields[i].flags, fields[i].min,
                                             fields[i].max, &out, &err);
        if (rc != 0) {
            FUZZ_CHECK(out == NULL && rc == err.code);
            FUZZ_CHECK(rc == CHAT_E_INTERNAL ||
                       (rc == CHAT_E_VALIDATION && strcmp(err.field, fields[i].name) == 0));
            continue;
        }
        if (!out) {
            FUZZ_CHECK(!(fields[i].flags & VALIDATE_REQUIRED));
            continue;
        }
        size_t len = strlen(out);
        if (fields[i].url) {
            FUZZ_CHECK(validate_url(out));
        } else {
            size_t cp = validate_cp_len(out, len);
            FUZZ_CHECK(cp >= fields[i].min && cp <= fields[i].max);
        }
        free(out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_strdup(data, size);
    if (!s)
        return 0;
    check_scalars(s);
    free(s);

    json_error_t jerr;
    json_t *body =
        json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (json_is_object(body))
        check_body(body);
    json_decref(body);
    return 0;
}
