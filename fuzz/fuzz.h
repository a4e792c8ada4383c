/* fuzz.h - what every libFuzzer target in fuzz/ shares.
 *
 * A target checks properties of the parser's answer, not only that it did
 * not crash: FUZZ_CHECK prints the broken property and aborts, which
 * libFuzzer reports as a crash and saves the input that caused it. */
#ifndef CHATLI_FUZZ_H
#define CHATLI_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                    \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);    \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

/* A NUL-terminated copy of data[0..size) (malloc; the caller frees), or
 * NULL when out of memory.  Embedded NULs stay: C-string parsers see the
 * prefix, exactly as they would see a string from jansson or getenv. */
static inline char *fuzz_strdup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s) {
        memcpy(s, data, size);
        s[size] = '\0';
    }
    return s;
}

#endif
