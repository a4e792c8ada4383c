/* append.c - chatli_store_append: the SQLite store's append path alone,
 * without the network, for counting what one message costs the store
 * (issue 9).
 *
 * It opens a fresh database file, creates CHATS direct chats between two
 * users each, then appends MESSAGES messages through the store port,
 * round-robin over the chats with alternating senders, 64-byte texts and a
 * clientId each (as bench/ws sends them).  With IN_FLIGHT 1 (the default)
 * it waits for each append's callback before the next, so every commit
 * carries one message: the open-loop case of bench/ws at 2,000 msg/s,
 * where batches hold one message.  A larger IN_FLIGHT keeps that many
 * queued, which lets the writer batch.
 *
 * It prints the wall time, the process's user and system CPU per message,
 * and the WAL frames and commits the adapter counted (its /metrics gauges
 * chatli_store_wal_frames_total and chatli_store_wal_commits_total).  For
 * deterministic instruction counts run it under callgrind twice with
 * different MESSAGES and divide the difference in instructions by the
 * difference in messages: setup cancels out.
 *
 *   build/bench/chatli_store_append [--messages N] [--chats C]
 *       [--in-flight W] [--dir DIR] [--keep] [--leave-wal] [--progress]
 *
 * --progress prints "acked N" (flushed) every 100 acknowledged appends, for
 * crash trials: kill -9 it at a random moment, then check that the
 * database holds at least the last N printed (bench/store/crash.sh).
 *
 * --leave-wal exits without closing the store, as a crash would, so the
 * WAL stays behind (with --dir or --keep) for counting which pages each
 * commit wrote: bench/store/walpages.py reads it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "chatli/adapters/store_sqlite.h"
#include "chatli/metrics.h"
#include "chatli/oid.h"
#include "chatli/store.h"

#define T0 1764326362000LL /* a fixed base time (ms) */

/* Completions counted by the writer's callbacks; the main thread waits. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static long done, failed;

static void append_cb(void *arg, int rc, const struct message *m, bool existed,
                      const struct chat_err *err)
{
    (void)arg, (void)m, (void)err;
    pthread_mutex_lock(&mu);
    done++;
    if (rc != 0 || existed)
        failed++;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(const struct timeval *tv) { return (double)tv->tv_sec + tv->tv_usec / 1e6; }

/* The value of metric `name` in a /metrics rendering, or -1. */
static double metric(const char *name)
{
    size_t len;
    char *text = metrics_render(&len);
    double v = -1;
    if (!text)
        return v;
    size_t n = strlen(name);
    for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, name, n) == 0 && line[n] == ' ') {
            v = strtod(line + n + 1, NULL);
            break;
        }
    free(text);
    return v;
}

static void mk_user(struct store *st, int i, char id[OID_SIZE])
{
    char name[32], email[64];
    snprintf(name, sizeof name, "u%d", i);
    snprintf(email, sizeof email, "u%d@example.com", i);
    struct user u = {0};
    oid_new(u.id, T0);
    u.username = name;
    u.email = email;
    u.display_name = name;
    u.bio = "";
    u.pwhash = "x";
    u.created_at = T0;
    struct chat_err err = {0};
    if (store_create_user(st, &u, &err) != 0) {
        fprintf(stderr, "create user: %s\n", err.msg);
        exit(1);
    }
    memcpy(id, u.id, OID_SIZE);
}

int main(int argc, char **argv)
{
    long messages = 2000, in_flight = 1;
    int chats = 200;
    const char *dir = NULL;
    bool keep = false, leave_wal = false, progress = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--messages") && i + 1 < argc)
            messages = atol(argv[++i]);
        else if (!strcmp(argv[i], "--chats") && i + 1 < argc)
            chats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--in-flight") && i + 1 < argc)
            in_flight = atol(argv[++i]);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--keep"))
            keep = true;
        else if (!strcmp(argv[i], "--leave-wal"))
            keep = leave_wal = true;
        else if (!strcmp(argv[i], "--progress"))
            progress = true;
        else {
            fprintf(stderr, "usage: %s [--messages N] [--chats C] [--in-flight W] [--dir DIR]"
                            " [--keep] [--leave-wal] [--progress]\n", argv[0]);
            return 2;
        }
    }
    if (messages < 1 || chats < 1 || in_flight < 1) {
        fprintf(stderr, "messages, chats and in-flight must be positive\n");
        return 2;
    }
    char tmpl[] = "/tmp/chatli-store-append-XXXXXX";
    if (!dir && !(dir = mkdtemp(tmpl))) {
        perror("mkdtemp");
        return 1;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/chatli.db", dir);

    struct store *st = NULL;
    struct chat_err err = {0};
    if (store_sqlite_open(path, &st, &err) != 0) {
        fprintf(stderr, "open %s: %s\n", path, err.msg);
        return 1;
    }
    char (*users)[OID_SIZE] = calloc((size_t)chats * 2, OID_SIZE);
    char (*ids)[OID_SIZE] = calloc((size_t)chats, OID_SIZE);
    if (!users || !ids)
        return 1;
    for (int i = 0; i < chats * 2; i++)
        mk_user(st, i, users[i]);
    for (int i = 0; i < chats; i++) {
        struct chat in = {0}, out = {0};
        oid_new(in.id, T0);
        in.type = CHAT_DIRECT;
        in.member_ids = &users[2 * i];
        in.n_members = 2;
        in.created_at = in.updated_at = T0;
        bool existed;
        if (store_create_chat(st, &in, &out, &existed, &err) != 0) {
            fprintf(stderr, "create chat: %s\n", err.msg);
            return 1;
        }
        memcpy(ids[i], out.id, OID_SIZE);
        store_chat_cleanup(&out);
    }

    double f0 = metric("chatli_store_wal_frames_total");
    double c0 = metric("chatli_store_wal_commits_total");
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = now_s();
    char text[65], client_id[32];
    for (long n = 0; n < messages; n++) {
        pthread_mutex_lock(&mu);
        while (n - done >= in_flight)
            pthread_cond_wait(&cv, &mu);
        long acked = done;
        pthread_mutex_unlock(&mu);
        if (progress && n % 100 == 0) {
            printf("acked %ld\n", acked);
            fflush(stdout);
        }
        int chat = (int)(n % chats);
        struct message m = {0};
        oid_new(m.id, T0 + n);
        memcpy(m.chat_id, ids[chat], OID_SIZE);
        memcpy(m.sender_id, users[2 * chat + (int)((n / chats) & 1)], OID_SIZE);
        snprintf(text, sizeof text, "%064ld", n);
        snprintf(client_id, sizeof client_id, "c%ld", n);
        m.text = text;
        m.client_id = client_id;
        m.created_at = T0 + n;
        if (store_append_message(st, &m, append_cb, NULL) != 0) {
            fprintf(stderr, "append %ld refused\n", n);
            return 1;
        }
    }
    pthread_mutex_lock(&mu);
    while (done < messages)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    double t1 = now_s();
    getrusage(RUSAGE_SELF, &r1);
    double frames = metric("chatli_store_wal_frames_total") - f0;
    double commits = metric("chatli_store_wal_commits_total") - c0;

    double user = cpu_s(&r1.ru_utime) - cpu_s(&r0.ru_utime);
    double sys = cpu_s(&r1.ru_stime) - cpu_s(&r0.ru_stime);
    printf("RESULT messages=%ld chats=%d in_flight=%ld failed=%ld\n", messages, chats, in_flight,
           failed);
    printf("RESULT wall=%.3f s, %.0f msg/s, %.1f us per message\n", t1 - t0,
           (double)messages / (t1 - t0), (t1 - t0) * 1e6 / (double)messages);
    printf("RESULT cpu per message: user %.1f us, sys %.1f us\n", user * 1e6 / (double)messages,
           sys * 1e6 / (double)messages);
    printf("RESULT wal: %.0f frames, %.0f commits: %.2f frames per commit, %.2f per message\n",
           frames, commits, commits > 0 ? frames / commits : 0.0, frames / (double)messages);
    printf("RESULT wal restart holds: %.0f, %.1f ms in all\n",
           metric("chatli_store_op_duration_seconds_count{op=\"wal_restart_hold\"}"),
           1e3 * metric("chatli_store_op_duration_seconds_sum{op=\"wal_restart_hold\"}"));
    if (leave_wal) {
        printf("RESULT left %s and its WAL\n", path);
        fflush(stdout);
        _exit(failed ? 1 : 0);
    }
    store_close(st);
    free(users);
    free(ids);
    if (!keep && dir == tmpl) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    return failed ? 1 : 0;
}
