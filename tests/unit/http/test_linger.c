/* test_linger.c - http/linger.c: lingering close drains what the client
 * still sends, closes at the client's EOF or at the timeout, and (the bug
 * TSan found in e2e) never sees events for an entry it freed while another
 * fd of the same socket, MHD's, was still open. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "http/linger.h"

/* A connected loopback TCP pair: *srv is the accepted end. */
static int tcp_pair(int *cli, int *srv)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(l, (struct sockaddr *)&sa, sizeof sa) || listen(l, 1) ||
        getsockname(l, (struct sockaddr *)&sa, &sl))
        return -1;
    *cli = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(*cli, (struct sockaddr *)&sa, sizeof sa))
        return -1;
    *srv = accept(l, NULL, NULL);
    close(l);
    return *srv < 0 ? -1 : 0;
}

static int eof_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms) <= 0)
        return 0;
    char c;
    return recv(fd, &c, 1, MSG_DONTWAIT) == 0;
}

static void test_drains_until_eof(struct http_linger *l)
{
    int cli, srv;
    CHECK_EQ_INT(tcp_pair(&cli, &srv), 0);
    shutdown(srv, SHUT_WR); /* as MHD does after its answer */
    http_linger_add(l, srv);
    char buf[65536];
    memset(buf, 'a', sizeof buf);
    int sent_ok = 1;
    for (int i = 0; i < 64; i++) /* 4 MiB: more than any socket buffer */
        if (send(cli, buf, sizeof buf, MSG_NOSIGNAL) != (ssize_t)sizeof buf)
            sent_ok = 0;
    CHECK(sent_ok); /* read and discarded, never reset */
    CHECK(eof_within(cli, 1000)); /* our side was shut down */
    close(cli);
}

static void test_timeout(void)
{
    struct http_linger *l = NULL;
    CHECK_EQ_INT(http_linger_open(200, &l, NULL), 0);
    int cli, srv;
    CHECK_EQ_INT(tcp_pair(&cli, &srv), 0);
    http_linger_add(l, srv);
    /* The client neither sends nor closes: closed after ~200 ms. */
    struct pollfd p = {.fd = cli, .events = POLLIN};
    CHECK_EQ_INT(poll(&p, 1, 2000), 1);
    char c;
    CHECK_EQ_INT(recv(cli, &c, 1, MSG_DONTWAIT), 0);
    close(cli);
    http_linger_close(l);
}

/* test_linger_dup_still_open: the entry finishes (client EOF) while the
 * original fd stays open; the level-triggered EOF would keep firing for
 * the freed entry if it were still registered (ASan catches that). */
static void test_linger_dup_still_open(struct http_linger *l)
{
    int cli[8], srv[8];
    for (int i = 0; i < 8; i++) {
        CHECK_EQ_INT(tcp_pair(&cli[i], &srv[i]), 0);
        http_linger_add(l, dup(srv[i]));
        close(cli[i]);
    }
    usleep(300000); /* the linger thread sees each EOF and finishes */
    for (int i = 0; i < 8; i++)
        close(srv[i]);
    usleep(100000);
}

int main(void)
{
    struct http_linger *l = NULL;
    CHECK_EQ_INT(http_linger_open(5000, &l, NULL), 0);
    if (!l)
        return check_done();
    test_drains_until_eof(l);
    test_linger_dup_still_open(l);
    /* Closing with entries still lingering closes them. */
    int cli, srv;
    CHECK_EQ_INT(tcp_pair(&cli, &srv), 0);
    http_linger_add(l, srv);
    http_linger_close(l);
    CHECK(eof_within(cli, 1000));
    close(cli);
    test_timeout();
    return check_done();
}
