/* redis_helper.h - for the Redis adapters' contract tests: the shared
 * server's URL, and a private redis-server the test may kill and restart.
 *
 * The basic cases run against CHATLI_TEST_REDIS_URL (scripts/test.sh
 * starts that server).  Outage cases need to stop a server: doing that to
 * the shared one would break the suites running beside this one, so each
 * test starts its own redis-server on a free loopback port, kills it with
 * SIGKILL (no goodbye to clients, like a crash) and starts it again on the
 * same port. */
#ifndef CHATLI_TESTS_REDIS_HELPER_H
#define CHATLI_TESTS_REDIS_HELPER_H

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct test_redis {
    int port;
    pid_t pid;
    char url[64];
};

static void test_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(sa.sin_port);
}

static int test_port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Starts (or restarts, on t->port when set) a private redis-server; 0 once
 * it accepts connections, -1 when it cannot be started. */
static int test_redis_start(struct test_redis *t)
{
    if (!t->port)
        t->port = test_free_port();
    snprintf(t->url, sizeof t->url, "redis://127.0.0.1:%d/0", t->port);
    char port[16];
    snprintf(port, sizeof port, "%d", t->port);
    t->pid = fork();
    if (t->pid == 0) {
        execlp("redis-server", "redis-server", "--bind", "127.0.0.1", "--port", port, "--save",
               "", "--appendonly", "no", "--dir", "/tmp", "--logfile", "/dev/null", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500 && t->pid > 0; i++) {
        if (test_port_open(t->port))
            return 0;
        if (waitpid(t->pid, NULL, WNOHANG) == t->pid)
            break;
        test_sleep_ms(10);
    }
    return -1;
}

/* SIGKILL, like a crash: clients see their sockets reset. */
static void test_redis_kill(struct test_redis *t)
{
    if (t->pid > 0) {
        kill(t->pid, SIGKILL);
        waitpid(t->pid, NULL, 0);
        t->pid = 0;
    }
}

#endif
