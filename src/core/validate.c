/* validate.c - the contract's input rules as pure functions.
 *
 * Lengths are code points, not bytes, because that is what a client's
 * `string.length`-style check shows its user (CONTRACT.md section 1); we
 * count lead bytes rather than decode, which is exact for valid UTF-8 and
 * harmless for invalid input.  Trimming decodes just the code points at each
 * end.  The email and URL rules are deliberately "looks like" checks: the
 * contract asks for `local@domain.tld` and an http(s) URL with a host, and a
 * full RFC grammar would accept strings no client means (quoted local parts,
 * userinfo tricks) while rejecting none that matter. */
#include "validate.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

size_t validate_cp_len(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

static bool is_space_cp(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

/* Decodes the code point starting at s[0] (at most `len` bytes).  Returns its
 * byte length, or 0 when the bytes are not a well-formed sequence (then the
 * caller treats the byte as a non-space). */
static size_t decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char b = s[0];
    size_t n;
    uint32_t v;
    if (b < 0x80) {
        *cp = b;
        return 1;
    } else if ((b & 0xE0) == 0xC0) {
        n = 2;
        v = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
        n = 3;
        v = b & 0x0F;
    } else if ((b & 0xF8) == 0xF0) {
        n = 4;
        v = b & 0x07;
    } else {
        return 0;
    }
    if (n > len)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return n;
}

void validate_trim(const char **sp, size_t *lenp)
{
    const unsigned char *s = (const unsigned char *)*sp;
    size_t len = *lenp;
    uint32_t cp;

    while (len > 0) {
        size_t n = decode(s, len, &cp);
        if (n == 0 || !is_space_cp(cp))
            break;
        s += n;
        len -= n;
    }
    while (len > 0) {
        /* Step back over continuation bytes to the last lead byte; a
         * sequence longer than 4 bytes cannot be whitespace. */
        size_t start = len - 1;
        while (start > 0 && len - start < 4 && (s[start] & 0xC0) == 0x80)
            start--;
        size_t n = decode(s + start, len - start, &cp);
        if (n == 0 || start + n != len || !is_space_cp(cp))
            break;
        len = start;
    }
    *sp = (const char *)s;
    *lenp = len;
}

static bool is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool validate_username(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        if (n >= 32 || !(is_alnum((unsigned char)s[n]) || s[n] == '_'))
            return false;
    }
    return n >= 3;
}

/* RFC 5322 atext, the characters of an unquoted local part besides dots. */
static bool is_atext(unsigned char c)
{
    return is_alnum(c) || (c && strchr("!#$%&'*+/=?^_`{|}~-", c));
}

bool validate_email(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > VALIDATE_EMAIL_MAX)
        return false;
    const char *at = strchr(s, '@');
    if (!at || at == s || at - s > 64 || strchr(at + 1, '@'))
        return false;

    /* Local part: dot-atom, so no leading, trailing or doubled dots. */
    for (const char *p = s; p < at; p++) {
        if (*p == '.') {
            if (p == s || p + 1 == at || p[1] == '.')
                return false;
        } else if (!is_atext((unsigned char)*p)) {
            return false;
        }
    }

    /* Domain: labels separated by single dots. */
    const char *d = at + 1;
    int labels = 0;
    for (;;) {
        const char *end = d + strcspn(d, ".");
        size_t n = (size_t)(end - d);
        if (n == 0 || n > 63 || d[0] == '-' || end[-1] == '-')
            return false;
        bool all_digits = true;
        for (const char *p = d; p < end; p++) {
            if (!(is_alnum((unsigned char)*p) || *p == '-'))
                return false;
            if (*p < '0' || *p > '9')
                all_digits = false;
        }
        labels++;
        if (*end == '\0')
            return labels >= 2 && n >= 2 && !all_digits;
        d = end + 1;
    }
}

bool validate_url(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > VALIDATE_URL_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7F || strchr("\"<>\\^`{|}", c))
            return false;
    }

    const char *p;
    if (strncasecmp(s, "http://", 7) == 0)
        p = s + 7;
    else if (strncasecmp(s, "https://", 8) == 0)
        p = s + 8;
    else
        return false;

    /* Authority: up to the first '/', '?' or '#'; userinfo ends at its last
     * '@' (a browser reads "http://a@b" as host b, and so do we). */
    const char *end = p + strcspn(p, "/?#");
    const char *host = p;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            host = q + 1;
    if (host == end)
        return false;

    const char *port;
    if (*host == '[') {
        const char *rb = memchr(host, ']', (size_t)(end - host));
        if (!rb || rb == host + 1)
            return false;
        for (const char *q = host + 1; q < rb; q++)
            if (!(is_alnum((unsigned char)*q) || *q == ':' || *q == '.' || *q == '%'))
                return false;
        port = rb + 1;
        if (port != end && *port != ':')
            return false;
    } else {
        port = memchr(host, ':', (size_t)(end - host));
        if (!port)
            port = end;
        if (port == host)
            return false;
        for (const char *q = host; q < port; q++)
            if (*q == '[' || *q == ']')
                return false;
    }
    if (port != end) {
        /* ":" then 1..5 digits, 1..65535. */
        size_t nd = (size_t)(end - port - 1);
        if (nd < 1 || nd > 5)
            return false;
        long v = 0;
        for (const char *q = port + 1; q < end; q++) {
            if (*q < '0' || *q > '9')
                return false;
            v = v * 10 + (*q - '0');
        }
        if (v < 1 || v > 65535)
            return false;
    }
    return true;
}

void validate_ascii_lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

bool validate_base64url(const char *s, size_t len)
{
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") >= len;
}

bool validate_decimal(const char *s, int max_digits, int64_t *out)
{
    int64_t v = 0;
    int n = 0;
    if (!s)
        return false;
    for (; s[n]; n++) {
        if (n >= max_digits || s[n] < '0' || s[n] > '9')
            return false;
        v = v * 10 + (s[n] - '0');
    }
    if (n == 0)
        return false;
    *out = v;
    return true;
}

int validate_limit(const char *raw, int *out, struct chat_err *err)
{
    int64_t v;
    if (!raw) {
        *out = 20;
        return 0;
    }
    /* Four digits is enough to tell "0100" from "1000" yet cannot overflow. */
    if (!validate_decimal(raw, 4, &v) || v < 1 || v > 100)
        return chat_err_set(err, CHAT_E_VALIDATION, "limit",
                            "limit must be an integer from 1 to 100");
    *out = (int)v;
    return 0;
}

int validate_string_field(json_t *body, const char *name, unsigned flags, size_t min_cp,
                          size_t max_cp, char **out, struct chat_err *err)
{
    *out = NULL;
    json_t *v = json_object_get(body, name);
    if (!v || json_is_null(v)) {
        if (flags & VALIDATE_REQUIRED)
            return chat_err_set(err, CHAT_E_VALIDATION, name, "%s is required", name);
        return 0;
    }
    if (!json_is_string(v))
        return chat_err_set(err, CHAT_E_VALIDATION, name, "%s must be a string", name);
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (strlen(s) != len)
        return chat_err_set(err, CHAT_E_VALIDATION, name, "%s must not contain U+0000", name);
    if (flags & VALIDATE_TRIM)
        validate_trim(&s, &len);
    size_t cp = validate_cp_len(s, len);
    if (cp < min_cp || cp > max_cp) {
        if (cp == 0)
            return chat_err_set(err, CHAT_E_VALIDATION, name, "%s must not be empty", name);
        return chat_err_set(err, CHAT_E_VALIDATION, name,
                            "%s must be %zu to %zu characters long", name, min_cp, max_cp);
    }
    *out = strndup(s, len);
    if (!*out)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
    return 0;
}

int validate_url_field(json_t *body, const char *name, char **out, struct chat_err *err)
{
    char *s;
    int rc = validate_string_field(body, name, VALIDATE_TRIM, 0, SIZE_MAX, &s, err);
    if (rc)
        return rc;
    if (s && s[0] == '\0') {
        /* A blank URL is how many forms say "none": treat it like null. */
        free(s);
        s = NULL;
    }
    if (s && !validate_url(s)) {
        free(s);
        return chat_err_set(err, CHAT_E_VALIDATION, name,
                            "%s must be an http(s) URL of at most %d characters", name,
                            VALIDATE_URL_MAX);
    }
    *out = s;
    return 0;
}
