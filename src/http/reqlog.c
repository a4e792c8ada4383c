/* reqlog.c - redacting secrets from logged request targets.
 *
 * Names are percent-decoded before comparison because MHD decodes them too:
 * "?t%6Fken=..." reaches the application as "token", so it must be
 * redacted as "token".  Values are not inspected at all, only replaced. */
#include "reqlog.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Is the raw (still escaped) parameter name s[0..n) a secret's name? */
static bool secret_name(const char *s, size_t n)
{
    char name[HTTP_LOG_TARGET_MAX + 1]; /* n never exceeds the logged target */
    size_t o = 0;
    for (size_t i = 0; i < n && o < sizeof name - 1; i++) {
        char c = s[i];
        if (c == '%') {
            int h = i + 1 < n ? hexval(s[i + 1]) : -1;
            int l = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (h >= 0 && l >= 0) {
                c = (char)(h * 16 + l);
                i += 2;
            }
        } else if (c == '+') {
            c = ' ';
        }
        if (c == '\0')
            break; /* MHD's C-string key ends here too */
        name[o++] = (char)tolower((unsigned char)c);
    }
    name[o] = '\0';
    if (strcmp(name, "password") == 0 || strcmp(name, "secret") == 0 || strcmp(name, "auth") == 0)
        return true;
    return o >= 5 && strcmp(name + o - 5, "token") == 0;
}

/* Log lines are JSON, and jansson refuses strings that are not UTF-8:
 * raw bytes outside printable ASCII (a client may send any) are written as
 * %XX, as they would appear escaped in a URL.  Steals `s`. */
static char *escape_unprintable(char *s, size_t n)
{
    size_t extra = 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            extra += 2;
    if (extra == 0)
        return s;
    char *out = malloc(n + extra + 1);
    if (!out) {
        free(s);
        return NULL;
    }
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f) {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    free(s);
    return out;
}

char *http_redact_target(const char *target)
{
    static const char red[] = "[redacted]";
    size_t len = strlen(target);
    bool cut = len > HTTP_LOG_TARGET_MAX;
    if (cut)
        len = HTTP_LOG_TARGET_MAX;
    /* Each parameter grows by at most sizeof red; there are at most len/2+1. */
    size_t cap = len + (len / 2 + 1) * sizeof red + 4;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    const char *q = memchr(target, '?', len);
    size_t o = 0;
    size_t head = q ? (size_t)(q - target) + 1 : len;
    memcpy(out, target, head);
    o = head;
    if (q) {
        const char *p = q + 1, *end = target + len;
        while (p <= end) {
            const char *amp = memchr(p, '&', (size_t)(end - p));
            if (!amp)
                amp = end;
            const char *eq = memchr(p, '=', (size_t)(amp - p));
            if (eq && secret_name(p, (size_t)(eq - p))) {
                size_t nl = (size_t)(eq - p) + 1;
                memcpy(out + o, p, nl);
                o += nl;
                memcpy(out + o, red, sizeof red - 1);
                o += sizeof red - 1;
            } else {
                memcpy(out + o, p, (size_t)(amp - p));
                o += (size_t)(amp - p);
            }
            if (amp == end)
                break;
            out[o++] = '&';
            p = amp + 1;
        }
    }
    if (cut) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return escape_unprintable(out, o);
}
