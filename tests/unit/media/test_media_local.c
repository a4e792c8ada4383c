/* test_media_local.c - media/media_local.c: content-addressed put (the temp
 * file moves under its digest name, the same content twice is one file,
 * the callback runs before put returns) and open_asset's name rules (only
 * "<64 hex>.<format>" opens: traversal and foreign names are not found). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chatli/adapters/media_local.h"
#include "check.h"

struct got {
    int calls, rc;
    struct media_result res;
};

static void on_put(void *arg, int rc, const struct media_result *res, const struct chat_err *err)
{
    struct got *g = arg;
    g->calls++;
    g->rc = rc;
    if (res)
        g->res = *res;
}

static void temp_file(struct media *m, char *path, size_t n, const char *content)
{
    snprintf(path, n, "%s/t-XXXXXX", m->tmp_dir);
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, content, strlen(content)) == (ssize_t)strlen(content));
    close(fd);
}

int main(void)
{
    char dir[] = "/tmp/chatli-media-local-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    struct media *m = NULL;
    struct chat_err err = {0};
    CHECK_EQ_INT(media_local_open(dir, &m, &err), 0);
    CHECK_EQ_STR(m->name, "local");

    const char *hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char tmp[4200];
    struct got g = {0};
    for (int i = 0; i < 2; i++) { /* the same content twice */
        temp_file(m, tmp, sizeof tmp, "GIF89a-content");
        struct media_file f = {.path = tmp, .bytes = 14, .kind = MEDIA_KIND_GIF, .width = 3, .height = 4};
        memcpy(f.sha256, hex, 65);
        CHECK_EQ_INT(media_put(m, &f, on_put, &g, &err), 0);
        CHECK(access(tmp, F_OK) != 0); /* moved */
    }
    CHECK_EQ_INT(g.calls, 2);
    CHECK_EQ_INT(g.rc, 0);
    char name[80];
    snprintf(name, sizeof name, "%s.gif", hex);
    CHECK_EQ_STR(g.res.public_id, name);
    char url[100];
    snprintf(url, sizeof url, "/uploads/%s", name);
    CHECK_EQ_STR(g.res.url, url);
    CHECK(g.res.width == 3 && g.res.height == 4 && g.res.bytes == 14);

    struct media_asset a;
    CHECK_EQ_INT(media_open_asset(m, name, &a, &err), 0);
    CHECK_EQ_INT(a.bytes, 14);
    CHECK_EQ_INT(a.kind, MEDIA_KIND_GIF);
    close(a.fd);

    /* A file the folder holds but that is not one of our names. */
    char other[4200];
    snprintf(other, sizeof other, "%s/uploads/notes.txt", dir);
    FILE *fp = fopen(other, "w");
    CHECK(fp != NULL);
    fputs("secret", fp);
    fclose(fp);
    char upper[80], wrong_ext[80], longer[90];
    snprintf(upper, sizeof upper, "%s.GIF", hex);
    snprintf(wrong_ext, sizeof wrong_ext, "%s.png", hex); /* well-formed, absent */
    snprintf(longer, sizeof longer, "%s.gif/../x", hex);
    const char *bad[] = {"notes.txt", "../chatli.db", "..", ".", "", ".tmp", "%2e%2e",
                         upper, wrong_ext, longer, "/etc/passwd"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(media_open_asset(m, bad[i], &a, &err), CHAT_E_NOT_FOUND);

    /* Not a known image: refused, and the temp file removed. */
    temp_file(m, tmp, sizeof tmp, "x");
    struct media_file f = {.path = tmp, .bytes = 1, .kind = MEDIA_KIND_NONE};
    memcpy(f.sha256, hex, 65);
    CHECK_EQ_INT(media_put(m, &f, on_put, &g, &err), CHAT_E_INTERNAL);
    CHECK_EQ_INT(g.calls, 2);
    CHECK(access(tmp, F_OK) != 0);

    CHECK_EQ_INT(media_ping(m, &err), 0);

    /* Reopening removes upload temp files a crash left (older than an
     * hour), and nothing else. */
    char old_up[4200], new_up[4200], old_other[4200];
    snprintf(old_up, sizeof old_up, "%s/up-old", m->tmp_dir);
    snprintf(new_up, sizeof new_up, "%s/up-new", m->tmp_dir);
    snprintf(old_other, sizeof old_other, "%s/keep-me", m->tmp_dir);
    const char *made[] = {old_up, new_up, old_other};
    for (int i = 0; i < 3; i++) {
        int fd = open(made[i], O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        if (i != 1) { /* two hours old */
            struct timespec ts[2] = {{time(NULL) - 7200, 0}, {time(NULL) - 7200, 0}};
            CHECK(futimens(fd, ts) == 0);
        }
        close(fd);
    }
    media_close(m);
    CHECK_EQ_INT(media_local_open(dir, &m, &err), 0);
    CHECK(access(old_up, F_OK) != 0);
    CHECK(access(new_up, F_OK) == 0);
    CHECK(access(old_other, F_OK) == 0);
    media_close(m);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return check_done();
}
