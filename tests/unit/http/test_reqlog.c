/* test_reqlog.c - http/reqlog.c: secrets in logged request targets. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "http/reqlog.h"

static void redacts(const char *in, const char *want)
{
    char *got = http_redact_target(in);
    CHECK_EQ_STR(got, want);
    free(got);
}

int main(void)
{
    redacts("/api/posts", "/api/posts");
    redacts("/api/posts?limit=5", "/api/posts?limit=5");
    redacts("/ws?token=abc.def", "/ws?token=[redacted]");
    redacts("/api/posts?limit=5&token=SECRET&x=1", "/api/posts?limit=5&token=[redacted]&x=1");
    redacts("/x?TOKEN=a&Token=b", "/x?TOKEN=[redacted]&Token=[redacted]");
    redacts("/x?access_token=a&refresh_token=b&tokens=c", "/x?access_token=[redacted]&refresh_token=[redacted]&tokens=c");
    redacts("/x?t%6Fken=SECRET", "/x?t%6Fken=[redacted]");     /* MHD decodes names */
    redacts("/x?t%6fken=SECRET", "/x?t%6fken=[redacted]");
    redacts("/x?token%00=SECRET", "/x?token%00=[redacted]");   /* MHD's key ends at NUL */
    redacts("/x?password=hunter2&secret=s&auth=a", "/x?password=[redacted]&secret=[redacted]&auth=[redacted]");
    redacts("/x?token", "/x?token");                           /* no value: nothing to hide */
    redacts("/x?token=", "/x?token=[redacted]");
    redacts("/x?a=token&b=1", "/x?a=token&b=1");               /* values are not names */
    redacts("/x?token=a=b&c", "/x?token=[redacted]&c");
    redacts("/x?&&token=a&&", "/x?&&token=[redacted]&&");
    redacts("/x?", "/x?");
    redacts("/x?%", "/x?%");
    redacts("/x?%zz=1&%4=2", "/x?%zz=1&%4=2");
    redacts("", "");
    redacts("/x\xff?a=\xc3\x28 b&token=\x01", "/x%FF?a=%C3(%20b&token=[redacted]");
    redacts("/\x7f", "/%7F");

    /* Over-long targets are cut, still redacted. */
    size_t n = HTTP_LOG_TARGET_MAX + 500;
    char *big = malloc(n + 1);
    memcpy(big, "/x?token=", 9);
    memset(big + 9, 'S', n - 9);
    big[n] = '\0';
    char *got = http_redact_target(big);
    CHECK(got != NULL);
    CHECK(strstr(got, "SSS") == NULL);
    CHECK(strcmp(got, "/x?token=[redacted]...") == 0);
    free(got);
    memset(big, 'a', n);
    big[0] = '/';
    got = http_redact_target(big);
    CHECK_EQ_INT(strlen(got), HTTP_LOG_TARGET_MAX + 3);
    free(got);
    /* A token parameter cut in half by the limit shows none of its value. */
    memset(big, 'a', n);
    big[0] = '/';
    big[1] = '?';
    memcpy(big + HTTP_LOG_TARGET_MAX - 10, "&token=SECRETSECRET", 19);
    got = http_redact_target(big);
    CHECK(strstr(got, "SECRET") == NULL);
    free(got);
    free(big);
    return check_done();
}
