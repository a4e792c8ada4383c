/* skim.c - a single-pass JSON member finder; see skim.h for why. */
#include "skim.h"

#include <string.h>

/* Returns the index just past the closing quote of the string starting at
 * js[i] == '"', or n + 1 when it is unterminated. */
static size_t skip_string(const char *js, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        if (js[i] == '\\')
            i++;
        else if (js[i] == '"')
            return i + 1;
    }
    return n + 1;
}

static size_t skip_ws(const char *js, size_t n, size_t i)
{
    while (i < n && (js[i] == ' ' || js[i] == '\t' || js[i] == '\n' || js[i] == '\r'))
        i++;
    return i;
}

/* The end of the value starting at js[i]: a string, a nested container, or a
 * scalar running to the next ',', '}', ']' or space; n + 1 when the text
 * ends first (a truncated frame must not yield a truncated value). */
static size_t value_end(const char *js, size_t n, size_t i)
{
    if (i >= n)
        return n + 1;
    if (js[i] == '"')
        return skip_string(js, n, i);
    if (js[i] == '{' || js[i] == '[') {
        int depth = 0;
        while (i < n) {
            char c = js[i];
            if (c == '"') {
                i = skip_string(js, n, i);
                if (i > n)
                    return n + 1;
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else if (c == '}' || c == ']') {
                if (--depth == 0)
                    return i + 1;
            }
            i++;
        }
        return n + 1;
    }
    while (i < n && js[i] != ',' && js[i] != '}' && js[i] != ']' && js[i] != ' ')
        i++;
    return i < n ? i : n + 1;
}

int skim_get(const char *js, size_t n, const char *key, int depth, const char **val, size_t *len)
{
    size_t klen = strlen(key);
    int d = 0;
    /* Whether the next string at this point is an object key: true right
     * after '{' or after a ',' inside an object. */
    int in_obj[64];
    int expect_key = 0;
    size_t i = 0;
    while (i < n) {
        char c = js[i];
        if (c == '"') {
            size_t end = skip_string(js, n, i);
            if (end >= n)
                return 0;
            if (expect_key) {
                expect_key = 0;
                size_t colon = skip_ws(js, n, end);
                if (colon >= n || js[colon] != ':')
                    return 0;
                if ((depth == 0 || d == depth) && end - i - 2 == klen &&
                    memcmp(js + i + 1, key, klen) == 0) {
                    size_t v = skip_ws(js, n, colon + 1);
                    size_t ve = value_end(js, n, v);
                    if (ve > n)
                        return 0;
                    if (js[v] == '"') {
                        if (ve - v < 2)
                            return 0;
                        *val = js + v + 1;
                        *len = ve - v - 2;
                    } else {
                        *val = js + v;
                        *len = ve - v;
                    }
                    return 1;
                }
                i = colon + 1;
                continue;
            }
            i = end;
            continue;
        }
        if (c == '{' || c == '[') {
            if (d >= 63)
                return 0;
            d++;
            in_obj[d] = (c == '{');
            expect_key = in_obj[d];
        } else if (c == '}' || c == ']') {
            if (d == 0)
                return 0;
            d--;
            expect_key = 0;
        } else if (c == ',') {
            expect_key = d > 0 && in_obj[d];
        }
        i++;
    }
    return 0;
}

int skim_is(const char *js, size_t n, const char *key, int depth, const char *want)
{
    const char *v;
    size_t len;
    if (!skim_get(js, n, key, depth, &v, &len))
        return 0;
    return len == strlen(want) && memcmp(v, want, len) == 0;
}
