/* check.h - the tiny assertion header every C test uses (no framework).
 *
 * CHECK(cond) records a failure with file:line and carries on, so one run
 * shows every broken case; a test's main() ends with `return check_done();`,
 * which prints "N passed, N failed" and returns non-zero on any failure. */
#ifndef CHATLI_TESTS_CHECK_H
#define CHATLI_TESTS_CHECK_H

#include <stdio.h>
#include <string.h>

static int check__passed, check__failed;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (cond) {                                                            \
            check__passed++;                                                   \
        } else {                                                               \
            check__failed++;                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                      \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                     \
    do {                                                                       \
        long long a__ = (long long)(a), b__ = (long long)(b);                  \
        if (a__ == b__) {                                                      \
            check__passed++;                                                   \
        } else {                                                               \
            check__failed++;                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n",  \
                    __FILE__, __LINE__, #a, #b, a__, b__);                     \
        }                                                                      \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                     \
    do {                                                                       \
        const char *a__ = (a), *b__ = (b);                                     \
        if (a__ && b__ && strcmp(a__, b__) == 0) {                             \
            check__passed++;                                                   \
        } else {                                                               \
            check__failed++;                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (\"%s\" != \"%s\")\n", \
                    __FILE__, __LINE__, #a, #b, a__ ? a__ : "(null)",          \
                    b__ ? b__ : "(null)");                                     \
        }                                                                      \
    } while (0)

static inline int check_done(void)
{
    printf("%d passed, %d failed\n", check__passed, check__failed);
    return check__failed ? 1 : 0;
}

#endif
