/* store_contract.c - the cases every store adapter must pass (see
 * store_contract.h for how a contract test pulls this file in).
 *
 * The cases follow store.h's comments op by op, and add what the wire
 * contract needs from storage: case-insensitive usernames, pages that never
 * repeat or skip items sharing a timestamp (also while new items arrive),
 * exact like and comment counts under concurrency, direct chats unique per
 * pair in either order, seq assignment and clientId dedupe (across batches
 * and within one), read marks that never move backwards, unread counts, and
 * close() draining queued appends.  Every wait is bounded. */
#include "contract/store_contract.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "chatli/store.h"
#include "chatli/oid.h"

#define T0 1764326362000LL /* a fixed base time (ms) so orders are ours */

static const struct store_contract_opts *opts;

static struct store *fresh(void)
{
    struct store *st = NULL;
    int rc = opts->open(opts->arg, &st);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0 || !st) {
        fprintf(stderr, "store_contract: cannot open a fresh store (%d)\n", rc);
        return NULL;
    }
    return st;
}

static void new_id(char out[OID_SIZE]) { oid_new(out, T0); }

/* Creates a user named `name` (email name@example.com lower-cased). */
static void mk_user(struct store *st, const char *name, char id[OID_SIZE])
{
    char email[128], lower[64];
    size_t i;
    for (i = 0; name[i] && i + 1 < sizeof lower; i++)
        lower[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    lower[i] = '\0';
    snprintf(email, sizeof email, "%s@example.com", lower);
    struct user u = {0};
    new_id(u.id);
    u.username = (char *)name;
    u.email = email;
    u.display_name = (char *)name;
    u.bio = "";
    u.pwhash = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA";
    u.created_at = T0;
    struct chat_err err = {0};
    CHECK_EQ_INT(store_create_user(st, &u, &err), 0);
    memcpy(id, u.id, OID_SIZE);
}

/* ---- waiting for appends ---------------------------------------------- */

/* One append's outcome, filled by the callback on the adapter's thread. */
struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    int rc;
    bool existed;
    struct message m; /* a copy of the callback's message */
};

static void waiter_init(struct waiter *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
}

static void waiter_cleanup(struct waiter *w)
{
    store_message_cleanup(&w->m);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

static void waiter_cb(void *arg, int rc, const struct message *m, bool existed,
                      const struct chat_err *err)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->calls++;
    w->rc = rc;
    w->existed = existed;
    store_message_cleanup(&w->m);
    if (m && store_message_copy(&w->m, m) != 0)
        memset(&w->m, 0, sizeof w->m);
    if (rc != 0 && !err)
        w->rc = 1000; /* a failure must come with its error: make it visible */
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Waits up to 10 s for `n` callbacks.  Returns the calls seen. */
static int waiter_wait(struct waiter *w, int n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&w->mu);
    while (w->calls < n)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &dl) != 0)
            break;
    int calls = w->calls;
    pthread_mutex_unlock(&w->mu);
    return calls;
}

static void msg_init(struct message *m, const char *chat, const char *sender, const char *text,
                     const char *client_id, int64_t at)
{
    memset(m, 0, sizeof *m);
    new_id(m->id);
    memcpy(m->chat_id, chat, OID_SIZE);
    memcpy(m->sender_id, sender, OID_SIZE);
    m->text = (char *)text;
    m->client_id = (char *)client_id;
    m->created_at = at;
}

/* Appends and waits.  Returns the callback's rc; *out (optional) gets the
 * callback's message (new strings) and *existed its flag. */
static int append_wait(struct store *st, const char *chat, const char *sender, const char *text,
                       const char *client_id, int64_t at, struct message *out, bool *existed)
{
    struct message m;
    msg_init(&m, chat, sender, text, client_id, at);
    struct waiter w;
    waiter_init(&w);
    int rc = store_append_message(st, &m, waiter_cb, &w);
    CHECK_EQ_INT(rc, 0);
    if (rc == 0) {
        CHECK_EQ_INT(waiter_wait(&w, 1), 1);
        rc = w.rc;
    }
    if (existed)
        *existed = w.existed;
    if (out) {
        *out = w.m;
        memset(&w.m, 0, sizeof w.m);
    }
    waiter_cleanup(&w);
    return rc;
}

/* Creates a chat of `n` members (type from `type`) at time `at`. */
static int mk_chat(struct store *st, int type, const char *name, char (*members)[OID_SIZE],
                   size_t n, int64_t at, char id[OID_SIZE], bool *existed)
{
    struct chat in = {0}, out = {0};
    new_id(in.id);
    in.type = type;
    in.name = (char *)name;
    in.member_ids = members;
    in.n_members = n;
    in.created_at = in.updated_at = at;
    bool ex = false;
    struct chat_err err = {0};
    int rc = store_create_chat(st, &in, &out, &ex, &err);
    if (rc == 0)
        memcpy(id, out.id, OID_SIZE);
    if (existed)
        *existed = ex;
    store_chat_cleanup(&out);
    return rc;
}

/* ---- users ---------------------------------------------------------------- */

static void case_users(void)
{
    struct store *st = fresh();
    if (!st)
        return;
    struct chat_err err = {0};
    CHECK_EQ_INT(store_ping(st, &err), 0);

    char alice[OID_SIZE];
    mk_user(st, "Alice_1", alice);

    struct user u = {0};
    CHECK_EQ_INT(store_get_user(st, alice, &u, &err), 0);
    CHECK_EQ_STR(u.id, alice);
    CHECK_EQ_STR(u.username, "Alice_1");
    CHECK_EQ_STR(u.email, "alice_1@example.com");
    CHECK_EQ_STR(u.display_name, "Alice_1");
    CHECK_EQ_STR(u.bio, "");
    CHECK(u.avatar_url == NULL);
    CHECK(u.pwhash && strncmp(u.pwhash, "$argon2id$", 10) == 0);
    CHECK_EQ_INT(u.created_at, T0);
    store_user_cleanup(&u);

    char missing[OID_SIZE];
    new_id(missing);
    CHECK_EQ_INT(store_get_user(st, missing, &u, &err), CHAT_E_NOT_FOUND);
    CHECK(u.username == NULL);

    /* Duplicate email, then duplicate username ignoring case; email first. */
    struct user d = {0};
    new_id(d.id);
    d.username = "bob";
    d.email = "alice_1@example.com";
    d.display_name = "Bob";
    d.bio = "";
    d.pwhash = "h";
    d.created_at = T0;
    CHECK_EQ_INT(store_create_user(st, &d, &err), CHAT_E_EMAIL_TAKEN);
    d.username = "ALICE_1";
    CHECK_EQ_INT(store_create_user(st, &d, &err), CHAT_E_EMAIL_TAKEN);
    d.email = "bob@example.com";
    CHECK_EQ_INT(store_create_user(st, &d, &err), CHAT_E_USERNAME_TAKEN);
    d.username = "alice_1";
    CHECK_EQ_INT(store_create_user(st, &d, &err), CHAT_E_USERNAME_TAKEN);
    d.username = "bob";
    CHECK_EQ_INT(store_create_user(st, &d, &err), 0);

    /* Login by email or by lower-cased username. */
    CHECK_EQ_INT(store_find_user_by_login(st, "alice_1@example.com", &u, &err), 0);
    CHECK_EQ_STR(u.id, alice);
    store_user_cleanup(&u);
    CHECK_EQ_INT(store_find_user_by_login(st, "alice_1", &u, &err), 0);
    CHECK_EQ_STR(u.id, alice);
    CHECK_EQ_STR(u.username, "Alice_1");
    store_user_cleanup(&u);
    CHECK_EQ_INT(store_find_user_by_login(st, "bob", &u, &err), 0);
    CHECK_EQ_STR(u.id, d.id);
    store_user_cleanup(&u);
    CHECK_EQ_INT(store_find_user_by_login(st, "carol", &u, &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_find_user_by_login(st, "", &u, &err), CHAT_E_NOT_FOUND);

    /* Update. */
    struct user up = {0};
    memcpy(up.id, alice, OID_SIZE);
    up.display_name = "Alice A.";
    up.bio = "hello";
    up.avatar_url = "https://img.example.com/a.png";
    CHECK_EQ_INT(store_update_user(st, &up, &err), 0);
    CHECK_EQ_INT(store_get_user(st, alice, &u, &err), 0);
    CHECK_EQ_STR(u.display_name, "Alice A.");
    CHECK_EQ_STR(u.bio, "hello");
    CHECK_EQ_STR(u.avatar_url, "https://img.example.com/a.png");
    CHECK_EQ_STR(u.username, "Alice_1");
    CHECK_EQ_STR(u.email, "alice_1@example.com");
    store_user_cleanup(&u);
    up.avatar_url = NULL;
    up.bio = "";
    CHECK_EQ_INT(store_update_user(st, &up, &err), 0);
    CHECK_EQ_INT(store_get_user(st, alice, &u, &err), 0);
    CHECK(u.avatar_url == NULL);
    CHECK_EQ_STR(u.bio, "");
    store_user_cleanup(&u);
    memcpy(up.id, missing, OID_SIZE);
    CHECK_EQ_INT(store_update_user(st, &up, &err), CHAT_E_NOT_FOUND);

    /* The password hash alone (login's rehash). */
    CHECK_EQ_INT(store_update_user_pwhash(st, alice, "$argon2id$v=19$m=65536,t=2,p=1$new", &err), 0);
    CHECK_EQ_INT(store_get_user(st, alice, &u, &err), 0);
    CHECK_EQ_STR(u.pwhash, "$argon2id$v=19$m=65536,t=2,p=1$new");
    CHECK_EQ_STR(u.display_name, "Alice A.");
    CHECK_EQ_STR(u.email, "alice_1@example.com");
    store_user_cleanup(&u);
    CHECK_EQ_INT(store_find_user_by_login(st, "bob", &u, &err), 0);
    CHECK_EQ_STR(u.pwhash, "h"); /* nobody else's */
    store_user_cleanup(&u);
    CHECK_EQ_INT(store_update_user_pwhash(st, missing, "$argon2id$x", &err), CHAT_E_NOT_FOUND);

    /* get_users: present ones only, any order. */
    char ids[3][OID_SIZE];
    memcpy(ids[0], alice, OID_SIZE);
    memcpy(ids[1], missing, OID_SIZE);
    memcpy(ids[2], d.id, OID_SIZE);
    struct user_list ul = {0};
    CHECK_EQ_INT(store_get_users(st, (const char(*)[OID_SIZE])ids, 3, &ul, &err), 0);
    CHECK_EQ_INT(ul.n, 2);
    int seen = 0;
    for (size_t i = 0; i < ul.n; i++)
        seen |= strcmp(ul.items[i].id, alice) == 0 ? 1 : strcmp(ul.items[i].id, d.id) == 0 ? 2 : 4;
    CHECK_EQ_INT(seen, 3);
    store_user_list_cleanup(&ul);
    CHECK_EQ_INT(store_get_users(st, (const char(*)[OID_SIZE])ids, 0, &ul, &err), 0);
    CHECK_EQ_INT(ul.n, 0);
    store_user_list_cleanup(&ul);

    store_close(st);
}

static void case_search(void)
{
    struct store *st = fresh();
    if (!st)
        return;
    struct chat_err err = {0};
    const char *names[] = {"abc", "Abd", "ab_x", "ABZ", "a_b", "b", "abcde", "xab"};
    char id[OID_SIZE];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        mk_user(st, names[i], id);

    /* "ab" prefix, ascending by lower-cased username: "ab_x" < "abc" <
     * "abcde" < "abd" < "abz" ('_' is 0x5F, below the letters). */
    const char *want[] = {"ab_x", "abc", "abcde", "Abd", "ABZ"};
    struct user_list ul = {0};
    CHECK_EQ_INT(store_search_users(st, "ab", NULL, 10, &ul, &err), 0);
    CHECK_EQ_INT(ul.n, 5);
    for (size_t i = 0; i < ul.n && i < 5; i++)
        CHECK_EQ_STR(ul.items[i].username, want[i]);
    store_user_list_cleanup(&ul);

    /* Paging two at a time, strictly after the last lower-cased name. */
    const char *after = NULL;
    char last[64] = "";
    size_t got = 0;
    for (int page = 0; page < 5; page++) {
        CHECK_EQ_INT(store_search_users(st, "ab", after, 2, &ul, &err), 0);
        for (size_t i = 0; i < ul.n; i++, got++) {
            if (got < 5)
                CHECK_EQ_STR(ul.items[i].username, want[got]);
            size_t j;
            for (j = 0; ul.items[i].username[j] && j + 1 < sizeof last; j++) {
                char ch = ul.items[i].username[j];
                last[j] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
            }
            last[j] = '\0';
        }
        bool end = ul.n < 2;
        store_user_list_cleanup(&ul);
        if (end)
            break;
        after = last;
    }
    CHECK_EQ_INT(got, 5);

    /* '_' is a plain character, not a wildcard. */
    CHECK_EQ_INT(store_search_users(st, "a_", NULL, 10, &ul, &err), 0);
    CHECK_EQ_INT(ul.n, 1);
    if (ul.n == 1)
        CHECK_EQ_STR(ul.items[0].username, "a_b");
    store_user_list_cleanup(&ul);
    CHECK_EQ_INT(store_search_users(st, "abcde", NULL, 10, &ul, &err), 0);
    CHECK_EQ_INT(ul.n, 1);
    store_user_list_cleanup(&ul);
    CHECK_EQ_INT(store_search_users(st, "abcdef", NULL, 10, &ul, &err), 0);
    CHECK_EQ_INT(ul.n, 0);
    store_user_list_cleanup(&ul);
    CHECK_EQ_INT(store_search_users(st, "zz", NULL, 10, &ul, &err), 0);
    CHECK_EQ_INT(ul.n, 0);
    store_user_list_cleanup(&ul);
    CHECK_EQ_INT(store_search_users(st, "ab", NULL, 3, &ul, &err), 0);
    CHECK_EQ_INT(ul.n, 3);
    store_user_list_cleanup(&ul);
    store_close(st);
}

static void case_sessions(void)
{
    struct store *st = fresh();
    if (!st)
        return;
    struct chat_err err = {0};
    char uid[OID_SIZE], got[OID_SIZE];
    mk_user(st, "sess", uid);
    uint8_t h1[32], h2[32];
    for (int i = 0; i < 32; i++) {
        h1[i] = (uint8_t)i;
        h2[i] = (uint8_t)(255 - i);
    }
    h1[5] = 0; /* hashes are bytes, zeros included */
    int64_t exp = 0;
    CHECK_EQ_INT(store_create_session(st, h1, uid, T0 + 1000, &err), 0);
    CHECK_EQ_INT(store_get_session(st, h1, got, &exp, &err), 0);
    CHECK_EQ_STR(got, uid);
    CHECK_EQ_INT(exp, T0 + 1000);
    CHECK_EQ_INT(store_get_session(st, h2, got, &exp, &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_delete_session(st, h2, &err), 0); /* absent: fine */
    CHECK_EQ_INT(store_delete_session(st, h1, &err), 0);
    CHECK_EQ_INT(store_get_session(st, h1, got, &exp, &err), CHAT_E_NOT_FOUND);
    store_close(st);
}

/* ---- posts, likes, comments ---------------------------------------------- */

static void mk_post(struct store *st, const char *author, const char *text, int64_t at,
                    char id[OID_SIZE])
{
    struct post p = {0};
    new_id(p.id);
    memcpy(p.author_id, author, OID_SIZE);
    p.text = (char *)text;
    p.created_at = at;
    struct chat_err err = {0};
    CHECK_EQ_INT(store_create_post(st, &p, &err), 0);
    memcpy(id, p.id, OID_SIZE);
}

/* Pages through list_posts and checks each id of `want` (newest first)
 * comes exactly once, in order. */
static void check_post_pages(struct store *st, const char *author, char (*want)[OID_SIZE],
                             size_t n, int limit)
{
    struct chat_err err = {0};
    struct page_key key, *before = NULL;
    size_t got = 0;
    for (int guard = 0; guard < 1000; guard++) {
        struct post_list pl = {0};
        CHECK_EQ_INT(store_list_posts(st, author, NULL, before, limit, &pl, &err), 0);
        CHECK(pl.n <= (size_t)limit);
        for (size_t i = 0; i < pl.n; i++, got++)
            if (got < n)
                CHECK_EQ_STR(pl.items[i].id, want[got]);
        bool end = pl.n < (size_t)limit;
        if (pl.n) {
            key.ts = pl.items[pl.n - 1].created_at;
            memcpy(key.id, pl.items[pl.n - 1].id, OID_SIZE);
            before = &key;
        }
        store_post_list_cleanup(&pl);
        if (end)
            break;
    }
    CHECK_EQ_INT(got, n);
}

static int cmp_desc(const void *a, const void *b) { return -strcmp(a, b); }

static void case_posts(void)
{
    struct store *st = fresh();
    if (!st)
        return;
    struct chat_err err = {0};
    char a[OID_SIZE], b[OID_SIZE];
    mk_user(st, "pa", a);
    mk_user(st, "pb", b);

    /* 23 posts over 4 distinct timestamps, authors interleaved.  Newest
     * first means (created_at, id) descending. */
    enum { N = 23 };
    char ids[N][OID_SIZE], want[N][OID_SIZE], want_a[N][OID_SIZE];
    int64_t at[N];
    for (int i = 0; i < N; i++) {
        at[i] = T0 + (i % 4) * 1000;
        mk_post(st, i % 3 ? a : b, "hello", at[i], ids[i]);
    }
    size_t n = 0, na = 0;
    for (int t = 3; t >= 0; t--) {
        size_t start = n;
        for (int i = 0; i < N; i++)
            if (at[i] == T0 + t * 1000)
                memcpy(want[n++], ids[i], OID_SIZE);
        qsort(want[start], n - start, OID_SIZE, cmp_desc);
    }
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < N; j++)
            if (strcmp(want[i], ids[j]) == 0 && j % 3)
                memcpy(want_a[na++], ids[j], OID_SIZE);
    for (int limit = 1; limit <= 7; limit += 3)
        check_post_pages(st, NULL, want, n, limit);
    check_post_pages(st, a, want_a, na, 4);
    check_post_pages(st, a, want_a, na, 100);

    /* Paging while newer posts arrive: the pages continue where they were. */
    struct page_key key;
    struct post_list pl = {0};
    CHECK_EQ_INT(store_list_posts(st, NULL, NULL, NULL, 5, &pl, &err), 0);
    CHECK_EQ_INT(pl.n, 5);
    if (pl.n == 5) {
        key.ts = pl.items[4].created_at;
        memcpy(key.id, pl.items[4].id, OID_SIZE);
    }
    store_post_list_cleanup(&pl);
    /* One newer post, and one at the top timestamp whose id sorts above
     * every other: both belong before the page key, so neither shows up. */
    char newer[OID_SIZE];
    mk_post(st, a, "newer", T0 + 9000, newer);
    struct post top = {0};
    memcpy(top.id, "ffffffffffffffffffffffff", OID_SIZE);
    memcpy(top.author_id, b, OID_SIZE);
    top.text = "same time as the top";
    top.created_at = T0 + 3000;
    CHECK_EQ_INT(store_create_post(st, &top, &err), 0);
    size_t got = 5;
    for (int guard = 0; guard < 100; guard++) {
        CHECK_EQ_INT(store_list_posts(st, NULL, NULL, &key, 5, &pl, &err), 0);
        for (size_t i = 0; i < pl.n; i++, got++) {
            if (got < n)
                CHECK_EQ_STR(pl.items[i].id, want[got]);
        }
        bool end = pl.n < 5;
        if (pl.n) {
            key.ts = pl.items[pl.n - 1].created_at;
            memcpy(key.id, pl.items[pl.n - 1].id, OID_SIZE);
        }
        store_post_list_cleanup(&pl);
        if (end)
            break;
    }
    CHECK_EQ_INT(got, n);

    /* get_post, likes (idempotent, per viewer), comments. */
    char p[OID_SIZE], missing[OID_SIZE];
    mk_post(st, a, "", T0 + 10000, p);
    new_id(missing);
    struct post po = {0};
    CHECK_EQ_INT(store_get_post(st, p, b, &po, &err), 0);
    CHECK_EQ_STR(po.id, p);
    CHECK_EQ_STR(po.author_id, a);
    CHECK_EQ_STR(po.text, "");
    CHECK(po.image_url == NULL);
    CHECK_EQ_INT(po.like_count, 0);
    CHECK_EQ_INT(po.comment_count, 0);
    CHECK(!po.liked_by_me);
    CHECK_EQ_INT(po.created_at, T0 + 10000);
    store_post_cleanup(&po);
    CHECK_EQ_INT(store_get_post(st, missing, b, &po, &err), CHAT_E_NOT_FOUND);

    struct post ip = {0};
    new_id(ip.id);
    memcpy(ip.author_id, b, OID_SIZE);
    ip.text = "";
    ip.image_url = "https://img.example.com/p.jpg";
    ip.created_at = T0;
    CHECK_EQ_INT(store_create_post(st, &ip, &err), 0);
    CHECK_EQ_INT(store_get_post(st, ip.id, NULL, &po, &err), 0);
    CHECK_EQ_STR(po.image_url, "https://img.example.com/p.jpg");
    store_post_cleanup(&po);

    int64_t count = -1;
    CHECK_EQ_INT(store_set_like(st, p, b, true, &count, &err), 0);
    CHECK_EQ_INT(count, 1);
    CHECK_EQ_INT(store_set_like(st, p, b, true, &count, &err), 0);
    CHECK_EQ_INT(count, 1);
    CHECK_EQ_INT(store_set_like(st, p, a, true, &count, &err), 0);
    CHECK_EQ_INT(count, 2);
    CHECK_EQ_INT(store_get_post(st, p, b, &po, &err), 0);
    CHECK(po.liked_by_me);
    CHECK_EQ_INT(po.like_count, 2);
    store_post_cleanup(&po);
    CHECK_EQ_INT(store_get_post(st, p, NULL, &po, &err), 0);
    CHECK(!po.liked_by_me);
    store_post_cleanup(&po);
    CHECK_EQ_INT(store_set_like(st, p, b, false, &count, &err), 0);
    CHECK_EQ_INT(count, 1);
    CHECK_EQ_INT(store_set_like(st, p, b, false, &count, &err), 0);
    CHECK_EQ_INT(count, 1);
    CHECK_EQ_INT(store_get_post(st, p, b, &po, &err), 0);
    CHECK(!po.liked_by_me);
    store_post_cleanup(&po);
    CHECK_EQ_INT(store_set_like(st, missing, b, true, &count, &err), CHAT_E_NOT_FOUND);

    /* list_posts fills liked_by_me for the viewer too. */
    CHECK_EQ_INT(store_list_posts(st, a, a, NULL, 1, &pl, &err), 0);
    CHECK_EQ_INT(pl.n, 1);
    if (pl.n == 1) {
        CHECK_EQ_STR(pl.items[0].id, p);
        CHECK(pl.items[0].liked_by_me);
        CHECK_EQ_INT(pl.items[0].like_count, 1);
    }
    store_post_list_cleanup(&pl);

    /* Comments: counts and pages newest first with equal timestamps. */
    enum { NC = 9 };
    char cids[NC][OID_SIZE];
    int64_t cts[NC];
    for (int i = 0; i < NC; i++) {
        struct comment cm = {0};
        new_id(cm.id);
        memcpy(cm.post_id, p, OID_SIZE);
        memcpy(cm.author_id, i % 2 ? a : b, OID_SIZE);
        cm.text = "nice";
        cm.created_at = T0 + (i / 3) * 10;
        CHECK_EQ_INT(store_create_comment(st, &cm, &err), 0);
        memcpy(cids[i], cm.id, OID_SIZE);
        cts[i] = cm.created_at;
    }
    /* Expected order, newest first: (created_at, id) descending.  Sorted
     * here rather than assumed from minting order. */
    int corder[NC];
    for (int i = 0; i < NC; i++)
        corder[i] = i;
    for (int i = 1; i < NC; i++)
        for (int j = i; j > 0; j--) {
            int x = corder[j - 1], y = corder[j];
            if (cts[x] > cts[y] || (cts[x] == cts[y] && strcmp(cids[x], cids[y]) > 0))
                break;
            corder[j - 1] = y;
            corder[j] = x;
        }
    struct comment cm = {0};
    new_id(cm.id);
    memcpy(cm.post_id, missing, OID_SIZE);
    memcpy(cm.author_id, a, OID_SIZE);
    cm.text = "x";
    CHECK_EQ_INT(store_create_comment(st, &cm, &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_get_post(st, p, NULL, &po, &err), 0);
    CHECK_EQ_INT(po.comment_count, NC);
    store_post_cleanup(&po);
    struct page_key ck, *cbefore = NULL;
    int cgot = 0;
    for (int guard = 0; guard < 20; guard++) {
        struct comment_list cl = {0};
        CHECK_EQ_INT(store_list_comments(st, p, cbefore, 2, &cl, &err), 0);
        for (size_t i = 0; i < cl.n; i++, cgot++) {
            if (cgot < NC) {
                int want_i = corder[cgot];
                CHECK_EQ_STR(cl.items[i].id, cids[want_i]);
                CHECK_EQ_STR(cl.items[i].post_id, p);
                CHECK_EQ_STR(cl.items[i].text, "nice");
                CHECK_EQ_STR(cl.items[i].author_id, want_i % 2 ? a : b);
                CHECK_EQ_INT(cl.items[i].created_at, cts[want_i]);
            }
        }
        bool end = cl.n < 2;
        if (cl.n) {
            ck.ts = cl.items[cl.n - 1].created_at;
            memcpy(ck.id, cl.items[cl.n - 1].id, OID_SIZE);
            cbefore = &ck;
        }
        store_comment_list_cleanup(&cl);
        if (end)
            break;
    }
    CHECK_EQ_INT(cgot, NC);

    /* Delete cascades to likes and comments. */
    CHECK_EQ_INT(store_delete_post(st, p, &err), 0);
    CHECK_EQ_INT(store_get_post(st, p, NULL, &po, &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_delete_post(st, p, &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_set_like(st, p, a, true, &count, &err), CHAT_E_NOT_FOUND);
    struct comment_list cl = {0};
    CHECK_EQ_INT(store_list_comments(st, p, NULL, 10, &cl, &err), 0);
    CHECK_EQ_INT(cl.n, 0);
    store_comment_list_cleanup(&cl);
    CHECK_EQ_INT(store_delete_post(st, missing, &err), CHAT_E_NOT_FOUND);
    /* Other posts are untouched. */
    CHECK_EQ_INT(store_get_post(st, newer, NULL, &po, &err), 0);
    store_post_cleanup(&po);
    store_close(st);
}

/* update_post overwrites text, image and edited_at, keeps the rest. */
static void case_post_update(void)
{
    struct store *st = fresh();
    if (!st)
        return;
    struct chat_err err = {0};
    char a[OID_SIZE], id[OID_SIZE], missing[OID_SIZE];
    mk_user(st, "pe", a);
    mk_post(st, a, "first", T0, id);
    new_id(missing);
    struct post po = {0};
    CHECK_EQ_INT(store_get_post(st, id, NULL, &po, &err), 0);
    CHECK_EQ_INT(po.edited_at, 0);
    store_post_cleanup(&po);
    int64_t count = 0;
    CHECK_EQ_INT(store_set_like(st, id, a, true, &count, &err), 0);

    struct post up = {0};
    memcpy(up.id, id, OID_SIZE);
    up.text = "second";
    up.image_url = "https://img.example/x.png";
    up.edited_at = T0 + 5000;
    CHECK_EQ_INT(store_update_post(st, &up, &err), 0);
    CHECK_EQ_INT(store_get_post(st, id, a, &po, &err), 0);
    CHECK_EQ_STR(po.text, "second");
    CHECK_EQ_STR(po.image_url, "https://img.example/x.png");
    CHECK_EQ_INT(po.edited_at, T0 + 5000);
    CHECK_EQ_INT(po.created_at, T0);
    CHECK_EQ_INT(po.like_count, 1);
    CHECK(po.liked_by_me);
    CHECK_EQ_STR(po.author_id, a);
    store_post_cleanup(&po);

    up.text = "";
    up.image_url = NULL;
    up.edited_at = T0 + 6000;
    CHECK_EQ_INT(store_update_post(st, &up, &err), 0);
    CHECK_EQ_INT(store_get_post(st, id, NULL, &po, &err), 0);
    CHECK_EQ_STR(po.text, "");
    CHECK(po.image_url == NULL);
    CHECK_EQ_INT(po.edited_at, T0 + 6000);
    store_post_cleanup(&po);

    memcpy(up.id, missing, OID_SIZE);
    CHECK_EQ_INT(store_update_post(st, &up, &err), CHAT_E_NOT_FOUND);
    store_close(st);
}

/* Many threads liking and commenting one post at once. */
struct like_job {
    struct store *st;
    const char *post;
    char user[OID_SIZE];
    int fails;
};

static void *like_thread(void *arg)
{
    struct like_job *j = arg;
    struct chat_err err = {0};
    int64_t count;
    for (int i = 0; i < 20; i++) {
        /* Toggle a few times, ending liked: the final count is exact only if
         * every change was counted once. */
        if (store_set_like(j->st, j->post, j->user, i % 2 == 0 || i == 19, &count, &err))
            j->fails++;
        struct comment cm = {0};
        new_id(cm.id);
        memcpy(cm.post_id, j->post, OID_SIZE);
        memcpy(cm.author_id, j->user, OID_SIZE);
        cm.text = "c";
        cm.created_at = T0 + i;
        if (store_create_comment(j->st, &cm, &err))
            j->fails++;
    }
    return NULL;
}

static void case_likes_concurrent(void)
{
    struct store *st = fresh();
    if (!st)
        return;
    enum { NT = 6 };
    char author[OID_SIZE], post[OID_SIZE];
    mk_user(st, "author", author);
    mk_post(st, author, "popular", T0, post);
    struct like_job jobs[NT];
    pthread_t th[NT];
    for (int i = 0; i < NT; i++) {
        char name[16];
        snprintf(name, sizeof name, "fan%d", i);
        jobs[i] = (struct like_job){.st = st, .post = post};
        mk_user(st, name, jobs[i].user);
    }
    for (int i = 0; i < NT; i++)
        pthread_create(&th[i], NULL, like_thread, &jobs[i]);
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(jobs[i].fails, 0);
    }
    struct post po = {0};
    struct chat_err err = {0};
    CHECK_EQ_INT(store_get_post(st, post, NULL, &po, &err), 0);
    CHECK_EQ_INT(po.like_count, NT);
    CHECK_EQ_INT(po.comment_count, NT * 20);
    store_post_cleanup(&po);
    store_close(st);
}

/* ---- chats and membership ------------------------------------------------- */

static void case_chats(void)
{
    struct store *st = fresh();
    if (!st)
        return;
    struct chat_err err = {0};
    char u[4][OID_SIZE], missing[OID_SIZE];
    mk_user(st, "c_ann", u[0]);
    mk_user(st, "c_ben", u[1]);
    mk_user(st, "c_cat", u[2]);
    mk_user(st, "c_dan", u[3]);
    new_id(missing);

    /* A direct chat is unique per pair, whichever member creates it. */
    char d1[OID_SIZE], d2[OID_SIZE], d3[OID_SIZE];
    char pair[2][OID_SIZE];
    memcpy(pair[0], u[0], OID_SIZE);
    memcpy(pair[1], u[1], OID_SIZE);
    bool existed = true;
    CHECK_EQ_INT(mk_chat(st, CHAT_DIRECT, NULL, pair, 2, T0, d1, &existed), 0);
    CHECK(!existed);
    CHECK_EQ_INT(mk_chat(st, CHAT_DIRECT, NULL, pair, 2, T0 + 5, d2, &existed), 0);
    CHECK(existed);
    CHECK_EQ_STR(d2, d1);
    memcpy(pair[0], u[1], OID_SIZE);
    memcpy(pair[1], u[0], OID_SIZE);
    CHECK_EQ_INT(mk_chat(st, CHAT_DIRECT, NULL, pair, 2, T0 + 6, d3, &existed), 0);
    CHECK(existed);
    CHECK_EQ_STR(d3, d1);
    memcpy(pair[1], u[2], OID_SIZE);
    CHECK_EQ_INT(mk_chat(st, CHAT_DIRECT, NULL, pair, 2, T0 + 7, d3, &existed), 0);
    CHECK(!existed);
    CHECK(strcmp(d3, d1) != 0);

    /* The existing chat comes back filled, as get_chat for member 0. */
    struct chat in = {0}, out = {0};
    new_id(in.id);
    in.type = CHAT_DIRECT;
    in.member_ids = pair;
    in.n_members = 2;
    in.created_at = in.updated_at = T0 + 8;
    memcpy(pair[1], u[0], OID_SIZE);
    CHECK_EQ_INT(store_create_chat(st, &in, &out, &existed, &err), 0);
    CHECK(existed);
    CHECK_EQ_STR(out.id, d1);
    CHECK_EQ_INT(out.type, CHAT_DIRECT);
    CHECK(out.name == NULL);
    CHECK_EQ_INT(out.n_members, 2);
    if (out.n_members == 2) {
        CHECK_EQ_STR(out.member_ids[0], u[0]); /* join order of the first create */
        CHECK_EQ_STR(out.member_ids[1], u[1]);
    }
    CHECK_EQ_INT(out.created_at, T0);
    CHECK_EQ_INT(out.last_seq, 0);
    CHECK(out.last_message == NULL);
    store_chat_cleanup(&out);

    /* Groups: not unique, named or not, members in join order. */
    char g1[OID_SIZE], g2[OID_SIZE];
    char gm[3][OID_SIZE];
    memcpy(gm[0], u[2], OID_SIZE);
    memcpy(gm[1], u[0], OID_SIZE);
    memcpy(gm[2], u[1], OID_SIZE);
    CHECK_EQ_INT(mk_chat(st, CHAT_GROUP, "Team", gm, 3, T0 + 10, g1, &existed), 0);
    CHECK(!existed);
    CHECK_EQ_INT(mk_chat(st, CHAT_GROUP, NULL, gm, 2, T0 + 11, g2, &existed), 0);
    CHECK(!existed);
    CHECK(strcmp(g1, g2) != 0);

    CHECK_EQ_INT(store_get_chat(st, g1, u[0], &out, &err), 0);
    CHECK_EQ_STR(out.id, g1);
    CHECK_EQ_INT(out.type, CHAT_GROUP);
    CHECK_EQ_STR(out.name, "Team");
    CHECK_EQ_INT(out.n_members, 3);
    for (size_t i = 0; i < out.n_members && i < 3; i++)
        CHECK_EQ_STR(out.member_ids[i], gm[i]);
    CHECK_EQ_INT(out.created_at, T0 + 10);
    CHECK_EQ_INT(out.updated_at, T0 + 10);
    CHECK_EQ_INT(out.unread_count, 0);
    store_chat_cleanup(&out);
    CHECK_EQ_INT(store_get_chat(st, g2, NULL, &out, &err), 0);
    CHECK(out.name == NULL);
    CHECK_EQ_INT(out.n_members, 2);
    store_chat_cleanup(&out);
    CHECK_EQ_INT(store_get_chat(st, g1, u[3], &out, &err), CHAT_E_NOT_FOUND);
    CHECK(out.member_ids == NULL);
    CHECK_EQ_INT(store_get_chat(st, missing, NULL, &out, &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_get_chat(st, missing, u[0], &out, &err), CHAT_E_NOT_FOUND);

    /* Membership. */
    CHECK_EQ_INT(store_is_member(st, g1, u[2], &err), 0);
    CHECK_EQ_INT(store_is_member(st, g1, u[3], &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_is_member(st, missing, u[0], &err), CHAT_E_NOT_FOUND);
    bool added = false, removed = false;
    CHECK_EQ_INT(store_add_member(st, g1, u[3], &added, &err), 0);
    CHECK(added);
    CHECK_EQ_INT(store_add_member(st, g1, u[3], &added, &err), 0);
    CHECK(!added);
    CHECK_EQ_INT(store_is_member(st, g1, u[3], &err), 0);
    CHECK_EQ_INT(store_add_member(st, missing, u[3], &added, &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_get_chat(st, g1, u[3], &out, &err), 0);
    CHECK_EQ_INT(out.n_members, 4);
    if (out.n_members == 4)
        CHECK_EQ_STR(out.member_ids[3], u[3]);
    store_chat_cleanup(&out);
    CHECK_EQ_INT(store_remove_member(st, g1, u[0], &removed, &err), 0);
    CHECK(removed);
    CHECK_EQ_INT(store_remove_member(st, g1, u[0], &removed, &err), 0);
    CHECK(!removed);
    CHECK_EQ_INT(store_remove_member(st, missing, u[0], &removed, &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_is_member(st, g1, u[0], &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_get_chat(st, g1, u[0], &out, &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_get_chat(st, g1, NULL, &out, &err), 0);
    CHECK_EQ_INT(out.n_members, 3);
    if (out.n_members == 3) { /* join order kept: cat, ben, dan */
        CHECK_EQ_STR(out.member_ids[0], u[2]);
        CHECK_EQ_STR(out.member_ids[1], u[1]);
        CHECK_EQ_STR(out.member_ids[2], u[3]);
    }
    store_chat_cleanup(&out);
    /* A member who left and comes back joins at the end. */
    CHECK_EQ_INT(store_add_member(st, g1, u[0], &added, &err), 0);
    CHECK(added);
    CHECK_EQ_INT(store_get_chat(st, g1, NULL, &out, &err), 0);
    if (out.n_members == 4)
        CHECK_EQ_STR(out.member_ids[3], u[0]);
    store_chat_cleanup(&out);
    store_close(st);
}

/* True when `id` is one of the n ids in `ids`. */
static bool has_id(char (*ids)[OID_SIZE], size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return true;
    return false;
}

/* Contacts: every other member of every chat of a user, once each. */
/* rename_chat names a group, never a direct chat or a missing one. */
static void case_rename_chat(void)
{
    struct store *st = fresh();
    if (!st)
        return;
    struct chat_err err = {0};
    char two[2][OID_SIZE], g[OID_SIZE], d[OID_SIZE], missing[OID_SIZE];
    mk_user(st, "ra", two[0]);
    mk_user(st, "rb", two[1]);
    new_id(missing);
    CHECK_EQ_INT(mk_chat(st, CHAT_GROUP, NULL, two, 2, T0, g, NULL), 0);
    CHECK_EQ_INT(mk_chat(st, CHAT_DIRECT, NULL, two, 2, T0, d, NULL), 0);

    CHECK_EQ_INT(store_rename_chat(st, g, "renamed", &err), 0);
    struct chat c = {0};
    CHECK_EQ_INT(store_get_chat(st, g, two[1], &c, &err), 0);
    CHECK_EQ_STR(c.name, "renamed");
    CHECK_EQ_INT(c.type, CHAT_GROUP);
    CHECK_EQ_INT(c.n_members, 2);
    CHECK_EQ_INT(c.updated_at, T0);
    store_chat_cleanup(&c);
    CHECK_EQ_INT(store_rename_chat(st, g, "again", &err), 0);
    CHECK_EQ_INT(store_get_chat(st, g, NULL, &c, &err), 0);
    CHECK_EQ_STR(c.name, "again");
    store_chat_cleanup(&c);

    CHECK_EQ_INT(store_rename_chat(st, d, "no", &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_get_chat(st, d, NULL, &c, &err), 0);
    CHECK(c.name == NULL);
    store_chat_cleanup(&c);
    CHECK_EQ_INT(store_rename_chat(st, missing, "no", &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_rename_chat(st, "bad", "no", &err), CHAT_E_NOT_FOUND);
    store_close(st);
}

static void case_contacts(void)
{
    struct store *st = fresh();
    if (!st)
        return;
    struct chat_err err = {0};
    char u[5][OID_SIZE], missing[OID_SIZE], c[OID_SIZE];
    mk_user(st, "k_ann", u[0]);
    mk_user(st, "k_ben", u[1]);
    mk_user(st, "k_cat", u[2]);
    mk_user(st, "k_dan", u[3]);
    mk_user(st, "k_eve", u[4]); /* shares no chat with ann */
    new_id(missing);
    char pair[2][OID_SIZE], trio[3][OID_SIZE];
    memcpy(pair[0], u[0], OID_SIZE);
    memcpy(pair[1], u[1], OID_SIZE);
    bool existed;
    CHECK_EQ_INT(mk_chat(st, CHAT_DIRECT, NULL, pair, 2, T0, c, &existed), 0);
    memcpy(trio[0], u[1], OID_SIZE); /* ben again: counted once */
    memcpy(trio[1], u[0], OID_SIZE);
    memcpy(trio[2], u[2], OID_SIZE);
    CHECK_EQ_INT(mk_chat(st, CHAT_GROUP, "g", trio, 3, T0 + 1, c, &existed), 0);
    memcpy(pair[0], u[3], OID_SIZE); /* dan and eve: not ann's */
    memcpy(pair[1], u[4], OID_SIZE);
    CHECK_EQ_INT(mk_chat(st, CHAT_DIRECT, NULL, pair, 2, T0 + 2, c, &existed), 0);

    char(*ids)[OID_SIZE] = NULL;
    size_t n = 99;
    bool cut = true;
    CHECK_EQ_INT(store_list_contacts(st, u[0], 10, &ids, &n, &cut, &err), 0);
    CHECK_EQ_INT(n, 2);
    CHECK(!cut);
    CHECK(has_id(ids, n, u[1]) && has_id(ids, n, u[2]));
    CHECK(!has_id(ids, n, u[0]));
    free(ids);

    /* A cut list says so. */
    CHECK_EQ_INT(store_list_contacts(st, u[0], 1, &ids, &n, &cut, &err), 0);
    CHECK_EQ_INT(n, 1);
    CHECK(cut);
    CHECK(n == 1 && (has_id(ids, n, u[1]) || has_id(ids, n, u[2])));
    free(ids);

    /* Leaving a chat drops the contacts met only there. */
    bool removed = false;
    CHECK_EQ_INT(store_remove_member(st, c, u[4], &removed, &err), 0);
    CHECK_EQ_INT(store_list_contacts(st, u[3], 10, &ids, &n, &cut, &err), 0);
    CHECK_EQ_INT(n, 0);
    CHECK(ids == NULL);
    free(ids);

    /* No chats, or no such user: no contacts, not an error. */
    CHECK_EQ_INT(store_list_contacts(st, u[4], 10, &ids, &n, &cut, &err), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(store_list_contacts(st, missing, 10, &ids, &n, &cut, &err), 0);
    CHECK_EQ_INT(n, 0);
    CHECK(ids == NULL);
    store_close(st);
}

/* Chats list, most recently active first, with last message and unread. */
static void case_list_chats(void)
{
    struct store *st = fresh();
    if (!st)
        return;
    struct chat_err err = {0};
    char me[OID_SIZE], other[OID_SIZE];
    mk_user(st, "l_me", me);
    mk_user(st, "l_other", other);
    enum { NCH = 11 };
    char ids[NCH][OID_SIZE];
    char two[2][OID_SIZE];
    memcpy(two[0], me, OID_SIZE);
    memcpy(two[1], other, OID_SIZE);
    /* Timestamps repeat (i / 3) so ties are broken by id. */
    for (int i = 0; i < NCH; i++)
        CHECK_EQ_INT(mk_chat(st, CHAT_GROUP, NULL, two, 2, T0 + (i / 3) * 100, ids[i], NULL), 0);
    char mine_only[OID_SIZE], notmine[OID_SIZE];
    CHECK_EQ_INT(mk_chat(st, CHAT_GROUP, "solo", two, 1, T0 - 50, mine_only, NULL), 0);
    memcpy(two[0], other, OID_SIZE);
    CHECK_EQ_INT(mk_chat(st, CHAT_GROUP, NULL, two, 1, T0 + 5000, notmine, NULL), 0);

    /* Activity: a message in chat 1 moves it to the front. */
    struct message m1 = {0};
    CHECK_EQ_INT(append_wait(st, ids[1], other, "hey", NULL, T0 + 2000, &m1, NULL), 0);
    CHECK_EQ_INT(m1.seq, 1);

    /* Expected order: ids[1], then by (ts, id) desc. */
    char want[NCH + 1][OID_SIZE];
    size_t n = 0;
    memcpy(want[n++], ids[1], OID_SIZE);
    for (int t = 3; t >= 0; t--) {
        size_t start = n;
        for (int i = 0; i < NCH; i++)
            if (i != 1 && i / 3 == t)
                memcpy(want[n++], ids[i], OID_SIZE);
        qsort(want[start], n - start, OID_SIZE, cmp_desc);
    }
    memcpy(want[n++], mine_only, OID_SIZE);

    struct page_key key, *before = NULL;
    size_t got = 0;
    for (int guard = 0; guard < 50; guard++) {
        struct chat_list cl = {0};
        CHECK_EQ_INT(store_list_chats(st, me, before, 4, &cl, &err), 0);
        for (size_t i = 0; i < cl.n; i++, got++) {
            struct chat *c = &cl.items[i];
            if (got < n)
                CHECK_EQ_STR(c->id, want[got]);
            CHECK(strcmp(c->id, notmine) != 0);
            CHECK(c->n_members >= 1);
            if (c->n_members >= 1)
                CHECK_EQ_STR(c->member_ids[0], me);
            if (strcmp(c->id, ids[1]) == 0) {
                CHECK_EQ_INT(c->n_members, 2);
                CHECK_EQ_INT(c->last_seq, 1);
                CHECK_EQ_INT(c->updated_at, T0 + 2000);
                CHECK_EQ_INT(c->unread_count, 1);
                CHECK(c->last_message != NULL);
                if (c->last_message) {
                    CHECK_EQ_STR(c->last_message->id, m1.id);
                    CHECK_EQ_STR(c->last_message->chat_id, ids[1]);
                    CHECK_EQ_STR(c->last_message->sender_id, other);
                    CHECK_EQ_STR(c->last_message->text, "hey");
                    CHECK_EQ_INT(c->last_message->seq, 1);
                    CHECK_EQ_INT(c->last_message->created_at, T0 + 2000);
                }
            } else {
                CHECK_EQ_INT(c->last_seq, 0);
                CHECK(c->last_message == NULL);
                CHECK_EQ_INT(c->unread_count, 0);
            }
        }
        bool end = cl.n < 4;
        if (cl.n) {
            key.ts = cl.items[cl.n - 1].updated_at;
            memcpy(key.id, cl.items[cl.n - 1].id, OID_SIZE);
            before = &key;
        }
        store_chat_list_cleanup(&cl);
        if (end)
            break;
    }
    CHECK_EQ_INT(got, n);

    /* The other user sees their own list (and not mine_only). */
    struct chat_list cl = {0};
    CHECK_EQ_INT(store_list_chats(st, other, NULL, 100, &cl, &err), 0);
    CHECK_EQ_INT(cl.n, NCH + 1);
    if (cl.n >= 2) {
        CHECK_EQ_STR(cl.items[0].id, notmine);
        CHECK_EQ_STR(cl.items[1].id, ids[1]);
        CHECK_EQ_INT(cl.items[1].unread_count, 0); /* own message */
    }
    store_chat_list_cleanup(&cl);
    char nobody[OID_SIZE];
    new_id(nobody);
    CHECK_EQ_INT(store_list_chats(st, nobody, NULL, 10, &cl, &err), 0);
    CHECK_EQ_INT(cl.n, 0);
    store_chat_list_cleanup(&cl);
    store_message_cleanup(&m1);
    store_close(st);
}

/* ---- messages ---------------------------------------------------------------- */

static void case_append(void)
{
    struct store *st = fresh();
    if (!st)
        return;
    struct chat_err err = {0};
    char a[OID_SIZE], b[OID_SIZE], outsider[OID_SIZE], chat[OID_SIZE], chat2[OID_SIZE];
    char missing[OID_SIZE];
    mk_user(st, "m_a", a);
    mk_user(st, "m_b", b);
    mk_user(st, "m_out", outsider);
    new_id(missing);
    char two[2][OID_SIZE];
    memcpy(two[0], a, OID_SIZE);
    memcpy(two[1], b, OID_SIZE);
    CHECK_EQ_INT(mk_chat(st, CHAT_DIRECT, NULL, two, 2, T0, chat, NULL), 0);
    CHECK_EQ_INT(mk_chat(st, CHAT_GROUP, "g", two, 2, T0, chat2, NULL), 0);

    /* seq 1..N in order, fields round-trip. */
    struct message m = {0};
    for (int i = 1; i <= 5; i++) {
        char cid[16];
        snprintf(cid, sizeof cid, "c%d", i);
        bool existed = true;
        CHECK_EQ_INT(append_wait(st, chat, i % 2 ? a : b, "hi", cid, T0 + i, &m, &existed), 0);
        CHECK(!existed);
        CHECK_EQ_INT(m.seq, i);
        CHECK_EQ_STR(m.chat_id, chat);
        CHECK_EQ_STR(m.sender_id, i % 2 ? a : b);
        CHECK_EQ_STR(m.text, "hi");
        CHECK_EQ_STR(m.client_id, cid);
        CHECK(m.attachment_url == NULL);
        CHECK_EQ_INT(m.created_at, T0 + i);
        store_message_cleanup(&m);
    }
    /* Attachment with empty text, no client id. */
    struct message in;
    msg_init(&in, chat, a, "", NULL, T0 + 6);
    in.attachment_url = "https://img.example.com/x.png";
    struct waiter w;
    waiter_init(&w);
    CHECK_EQ_INT(store_append_message(st, &in, waiter_cb, &w), 0);
    CHECK_EQ_INT(waiter_wait(&w, 1), 1);
    CHECK_EQ_INT(w.rc, 0);
    CHECK(!w.existed);
    CHECK_EQ_INT(w.m.seq, 6);
    CHECK_EQ_STR(w.m.id, in.id);
    CHECK_EQ_STR(w.m.text, "");
    CHECK_EQ_STR(w.m.attachment_url, "https://img.example.com/x.png");
    CHECK(w.m.client_id == NULL);
    waiter_cleanup(&w);

    /* Dedupe across batches: the first message comes back, existed. */
    struct message first = {0};
    bool existed = false;
    CHECK_EQ_INT(append_wait(st, chat, a, "orig", "dup-1", T0 + 7, &first, &existed), 0);
    CHECK(!existed);
    CHECK_EQ_INT(first.seq, 7);
    CHECK_EQ_INT(append_wait(st, chat, a, "retry text", "dup-1", T0 + 8, &m, &existed), 0);
    CHECK(existed);
    CHECK_EQ_STR(m.id, first.id);
    CHECK_EQ_INT(m.seq, 7);
    CHECK_EQ_STR(m.text, "orig");
    CHECK_EQ_STR(m.client_id, "dup-1");
    CHECK_EQ_STR(m.sender_id, a);
    CHECK_EQ_STR(m.chat_id, chat);
    CHECK_EQ_INT(m.created_at, T0 + 7);
    store_message_cleanup(&m);
    /* The same client id from another sender, or in another chat, is new. */
    CHECK_EQ_INT(append_wait(st, chat, b, "b's", "dup-1", T0 + 9, &m, &existed), 0);
    CHECK(!existed);
    CHECK_EQ_INT(m.seq, 8);
    store_message_cleanup(&m);
    CHECK_EQ_INT(append_wait(st, chat2, a, "other chat", "dup-1", T0 + 9, &m, &existed), 0);
    CHECK(!existed);
    CHECK_EQ_INT(m.seq, 1);
    store_message_cleanup(&m);

    /* Dedupe inside a burst (most land in one batch): one message stored,
     * every callback names it. */
    enum { NB = 40 };
    struct waiter ws[NB];
    char burst_ids[NB][OID_SIZE];
    for (int i = 0; i < NB; i++) {
        waiter_init(&ws[i]);
        msg_init(&in, chat, b, "burst", "burst-1", T0 + 10);
        memcpy(burst_ids[i], in.id, OID_SIZE);
        CHECK_EQ_INT(store_append_message(st, &in, waiter_cb, &ws[i]), 0);
    }
    int created = 0;
    for (int i = 0; i < NB; i++) {
        CHECK_EQ_INT(waiter_wait(&ws[i], 1), 1);
        CHECK_EQ_INT(ws[i].rc, 0);
        CHECK_EQ_INT(ws[i].m.seq, 9);
        CHECK_EQ_STR(ws[i].m.id, burst_ids[0]);
        created += !ws[i].existed;
        if (i > 0)
            CHECK(ws[i].existed);
        waiter_cleanup(&ws[i]);
    }
    CHECK_EQ_INT(created, 1);

    /* Refusals: not a member, no such chat.  Nothing is stored. */
    CHECK_EQ_INT(append_wait(st, chat, outsider, "x", NULL, T0 + 11, &m, NULL), CHAT_E_NOT_FOUND);
    store_message_cleanup(&m);
    CHECK_EQ_INT(append_wait(st, missing, a, "x", NULL, T0 + 11, &m, NULL), CHAT_E_NOT_FOUND);
    store_message_cleanup(&m);
    CHECK_EQ_INT(append_wait(st, chat, missing, "x", "c-x", T0 + 11, &m, NULL), CHAT_E_NOT_FOUND);
    store_message_cleanup(&m);

    struct chat c = {0};
    CHECK_EQ_INT(store_get_chat(st, chat, a, &c, &err), 0);
    CHECK_EQ_INT(c.last_seq, 9);
    CHECK_EQ_INT(c.updated_at, T0 + 10);
    CHECK(c.last_message != NULL);
    if (c.last_message) {
        CHECK_EQ_STR(c.last_message->id, burst_ids[0]);
        CHECK_EQ_STR(c.last_message->client_id, "burst-1");
    }
    store_chat_cleanup(&c);

    /* A member who left is refused again. */
    bool removed = false;
    CHECK_EQ_INT(store_remove_member(st, chat2, b, &removed, &err), 0);
    CHECK_EQ_INT(append_wait(st, chat2, b, "x", NULL, T0 + 12, &m, NULL), CHAT_E_NOT_FOUND);
    store_message_cleanup(&m);
    store_message_cleanup(&first);
    store_close(st);
}

/* Several threads append to one chat at once. */
#define CONC_THREADS 4
#define CONC_PER 150

struct conc_job {
    struct store *st;
    const char *chat;
    char sender[OID_SIZE];
    struct waiter w[CONC_PER];
    int refused;
};

static void *conc_thread(void *arg)
{
    struct conc_job *j = arg;
    for (int i = 0; i < CONC_PER; i++) {
        struct message m;
        char cid[32];
        snprintf(cid, sizeof cid, "t-%d", i);
        msg_init(&m, j->chat, j->sender, "concurrent", cid, T0 + i);
        waiter_init(&j->w[i]);
        if (store_append_message(j->st, &m, waiter_cb, &j->w[i]) != 0)
            j->refused++;
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void case_append_concurrent(void)
{
    struct store *st = fresh();
    if (!st)
        return;
    struct chat_err err = {0};
    static struct conc_job jobs[CONC_THREADS];
    char members[CONC_THREADS][OID_SIZE], chat[OID_SIZE];
    for (int i = 0; i < CONC_THREADS; i++) {
        char name[16];
        snprintf(name, sizeof name, "conc%d", i);
        memset(&jobs[i], 0, sizeof jobs[i]);
        mk_user(st, name, jobs[i].sender);
        memcpy(members[i], jobs[i].sender, OID_SIZE);
    }
    CHECK_EQ_INT(mk_chat(st, CHAT_GROUP, "busy", members, CONC_THREADS, T0, chat, NULL), 0);
    pthread_t th[CONC_THREADS];
    for (int i = 0; i < CONC_THREADS; i++) {
        jobs[i].st = st;
        jobs[i].chat = chat;
        pthread_create(&th[i], NULL, conc_thread, &jobs[i]);
    }
    for (int i = 0; i < CONC_THREADS; i++)
        pthread_join(th[i], NULL);

    static int64_t seqs[CONC_THREADS * CONC_PER];
    size_t n = 0;
    int bad_calls = 0, bad_rc = 0, out_of_order = 0;
    for (int t = 0; t < CONC_THREADS; t++) {
        CHECK_EQ_INT(jobs[t].refused, 0);
        int64_t prev = 0;
        for (int i = 0; i < CONC_PER; i++) {
            struct waiter *w = &jobs[t].w[i];
            if (waiter_wait(w, 1) != 1)
                bad_calls++;
            /* Give a second callback, if any, a moment to show itself. */
            if (i == CONC_PER - 1)
                usleep(20000);
            pthread_mutex_lock(&w->mu);
            if (w->calls != 1)
                bad_calls++;
            if (w->rc != 0 || w->existed)
                bad_rc++;
            seqs[n++] = w->m.seq;
            if (w->m.seq <= prev)
                out_of_order++;
            prev = w->m.seq;
            pthread_mutex_unlock(&w->mu);
            waiter_cleanup(w);
        }
    }
    CHECK_EQ_INT(bad_calls, 0);
    CHECK_EQ_INT(bad_rc, 0);
    if (opts->strict_seq)
        CHECK_EQ_INT(out_of_order, 0); /* one sender's order is kept */
    qsort(seqs, n, sizeof seqs[0], cmp_i64);
    int dups = 0, gaps = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && seqs[i] == seqs[i - 1])
            dups++;
        if (seqs[i] != (int64_t)i + 1)
            gaps++;
    }
    CHECK_EQ_INT(dups, 0);
    CHECK(n == 0 || seqs[0] >= 1);
    if (opts->strict_seq)
        CHECK_EQ_INT(gaps, 0);
    struct chat c = {0};
    CHECK_EQ_INT(store_get_chat(st, chat, NULL, &c, &err), 0);
    CHECK_EQ_INT(c.last_seq, n ? seqs[n - 1] : 0);
    store_chat_cleanup(&c);
    struct message_list ml = {0};
    CHECK_EQ_INT(store_list_messages_after(st, chat, 0, 1000, &ml, &err), 0);
    CHECK_EQ_INT(ml.n, CONC_THREADS * CONC_PER);
    store_message_list_cleanup(&ml);
    store_close(st);
}

static void case_list_messages(void)
{
    struct store *st = fresh();
    if (!st)
        return;
    struct chat_err err = {0};
    char a[OID_SIZE], b[OID_SIZE], chat[OID_SIZE], other_chat[OID_SIZE], missing[OID_SIZE];
    mk_user(st, "lm_a", a);
    mk_user(st, "lm_b", b);
    new_id(missing);
    char two[2][OID_SIZE];
    memcpy(two[0], a, OID_SIZE);
    memcpy(two[1], b, OID_SIZE);
    CHECK_EQ_INT(mk_chat(st, CHAT_DIRECT, NULL, two, 2, T0, chat, NULL), 0);
    CHECK_EQ_INT(mk_chat(st, CHAT_GROUP, NULL, two, 2, T0, other_chat, NULL), 0);
    enum { NM = 25 };
    char ids[NM + 1][OID_SIZE];
    struct message m = {0};
    for (int i = 1; i <= NM; i++) {
        CHECK_EQ_INT(append_wait(st, chat, i % 2 ? a : b, "m", NULL, T0 + i, &m, NULL), 0);
        CHECK_EQ_INT(m.seq, i);
        memcpy(ids[i], m.id, OID_SIZE);
        store_message_cleanup(&m);
    }
    CHECK_EQ_INT(append_wait(st, other_chat, a, "elsewhere", NULL, T0, &m, NULL), 0);
    char foreign[OID_SIZE];
    memcpy(foreign, m.id, OID_SIZE);
    store_message_cleanup(&m);

    /* Newest first, pages of 10: 25..16, 15..6, 5..1, then nothing. */
    int64_t before = 0, expect = NM;
    for (int page = 0; page < 4; page++) {
        struct message_list ml = {0};
        CHECK_EQ_INT(store_list_messages(st, chat, before, 10, &ml, &err), 0);
        CHECK_EQ_INT(ml.n, page < 2 ? 10 : page == 2 ? 5 : 0);
        for (size_t i = 0; i < ml.n; i++, expect--) {
            CHECK_EQ_INT(ml.items[i].seq, expect);
            if (expect >= 1 && expect <= NM)
                CHECK_EQ_STR(ml.items[i].id, ids[expect]);
            CHECK_EQ_STR(ml.items[i].chat_id, chat);
            CHECK_EQ_STR(ml.items[i].sender_id, expect % 2 ? a : b);
            CHECK_EQ_INT(ml.items[i].created_at, T0 + expect);
        }
        if (ml.n)
            before = ml.items[ml.n - 1].seq;
        store_message_list_cleanup(&ml);
    }
    CHECK_EQ_INT(expect, 0);

    /* Oldest first after a seq: 1..10, 11..20, 21..25, then nothing. */
    int64_t after = 0;
    expect = 1;
    for (int page = 0; page < 4; page++) {
        struct message_list ml = {0};
        CHECK_EQ_INT(store_list_messages_after(st, chat, after, 10, &ml, &err), 0);
        CHECK_EQ_INT(ml.n, page < 2 ? 10 : page == 2 ? 5 : 0);
        for (size_t i = 0; i < ml.n; i++, expect++)
            CHECK_EQ_INT(ml.items[i].seq, expect);
        if (ml.n)
            after = ml.items[ml.n - 1].seq;
        store_message_list_cleanup(&ml);
    }
    CHECK_EQ_INT(expect, NM + 1);
    struct message_list ml = {0};
    CHECK_EQ_INT(store_list_messages(st, missing, 0, 10, &ml, &err), 0);
    CHECK_EQ_INT(ml.n, 0);
    store_message_list_cleanup(&ml);
    CHECK_EQ_INT(store_list_messages_after(st, missing, 0, 10, &ml, &err), 0);
    CHECK_EQ_INT(ml.n, 0);
    store_message_list_cleanup(&ml);

    /* Read marks: unread counts others' messages after the mark. */
    struct chat c = {0};
    CHECK_EQ_INT(store_get_chat(st, chat, a, &c, &err), 0);
    CHECK_EQ_INT(c.unread_count, 12); /* b sent the even seqs 2..24 */
    store_chat_cleanup(&c);
    bool moved = false;
    CHECK_EQ_INT(store_set_read(st, chat, a, ids[10], &moved, &err), 0);
    CHECK(moved);
    CHECK_EQ_INT(store_get_chat(st, chat, a, &c, &err), 0);
    CHECK_EQ_INT(c.unread_count, 7); /* 12..24 even */
    store_chat_cleanup(&c);
    CHECK_EQ_INT(store_set_read(st, chat, a, ids[10], &moved, &err), 0);
    CHECK(!moved);
    CHECK_EQ_INT(store_set_read(st, chat, a, ids[4], &moved, &err), 0);
    CHECK(!moved); /* never backwards */
    CHECK_EQ_INT(store_get_chat(st, chat, a, &c, &err), 0);
    CHECK_EQ_INT(c.unread_count, 7);
    store_chat_cleanup(&c);
    CHECK_EQ_INT(store_set_read(st, chat, a, ids[NM], &moved, &err), 0);
    CHECK(moved);
    CHECK_EQ_INT(store_get_chat(st, chat, a, &c, &err), 0);
    CHECK_EQ_INT(c.unread_count, 0);
    store_chat_cleanup(&c);
    /* b's own count is independent of a's mark: a sent 13 (odd seqs). */
    CHECK_EQ_INT(store_get_chat(st, chat, b, &c, &err), 0);
    CHECK_EQ_INT(c.unread_count, 13);
    store_chat_cleanup(&c);
    struct chat_list cl = {0};
    CHECK_EQ_INT(store_list_chats(st, b, NULL, 10, &cl, &err), 0);
    for (size_t i = 0; i < cl.n; i++)
        CHECK_EQ_INT(cl.items[i].unread_count,
                     strcmp(cl.items[i].id, chat) == 0 ? 13 : 1);
    store_chat_list_cleanup(&cl);
    /* A message of another chat, or none at all: not found. */
    CHECK_EQ_INT(store_set_read(st, chat, a, foreign, &moved, &err), CHAT_E_NOT_FOUND);
    CHECK(!moved);
    CHECK_EQ_INT(store_set_read(st, chat, a, missing, &moved, &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_set_read(st, missing, a, ids[1], &moved, &err), CHAT_E_NOT_FOUND);

    /* Leaving drops the mark: back in, everything from others is unread. */
    bool removed = false, added = false;
    CHECK_EQ_INT(store_set_read(st, other_chat, b, foreign, &moved, &err), 0);
    CHECK(moved);
    CHECK_EQ_INT(store_get_chat(st, other_chat, b, &c, &err), 0);
    CHECK_EQ_INT(c.unread_count, 0);
    store_chat_cleanup(&c);
    CHECK_EQ_INT(store_remove_member(st, other_chat, b, &removed, &err), 0);
    CHECK(removed);
    CHECK_EQ_INT(store_add_member(st, other_chat, b, &added, &err), 0);
    CHECK(added);
    CHECK_EQ_INT(store_get_chat(st, other_chat, b, &c, &err), 0);
    CHECK_EQ_INT(c.unread_count, 1);
    store_chat_cleanup(&c);
    store_close(st);
}

/* close() commits and calls back what is queued; appends after it started
 * are refused without a callback. */
struct drain_probe {
    struct store *st;
    const char *chat, *sender;
    struct waiter *w;        /* the probes' shared waiter */
    int accepted, refused;   /* written by the writer thread only */
    bool done;
};

static void probe_cb(void *arg, int rc, const struct message *m, bool existed,
                     const struct chat_err *err)
{
    struct drain_probe *p = arg;
    if (p->done)
        return;
    p->done = true;
    /* Runs on the adapter's thread: keep appending until close() turns us
     * away (bounded: 5 s), then let close drain what we got in. */
    for (int i = 0; i < 5000; i++) {
        struct message pm;
        msg_init(&pm, p->chat, p->sender, "probe", NULL, T0);
        int rc2 = store_append_message(p->st, &pm, waiter_cb, p->w);
        if (rc2 == CHAT_E_UNAVAILABLE) {
            p->refused++;
            break;
        }
        if (rc2 == 0)
            p->accepted++;
        usleep(1000);
    }
}

static void case_close_drains(void)
{
    struct store *st = fresh();
    if (!st)
        return;
    char a[OID_SIZE], chat[OID_SIZE];
    mk_user(st, "drain", a);
    char one[1][OID_SIZE];
    memcpy(one[0], a, OID_SIZE);
    CHECK_EQ_INT(mk_chat(st, CHAT_GROUP, NULL, one, 1, T0, chat, NULL), 0);

    struct waiter w, pw;
    waiter_init(&w);
    waiter_init(&pw);
    struct drain_probe probe = {.st = st, .chat = chat, .sender = a, .w = &pw};
    struct message m;
    msg_init(&m, chat, a, "first", NULL, T0);
    CHECK_EQ_INT(store_append_message(st, &m, probe_cb, &probe), 0);
    enum { NQ = 300 };
    for (int i = 0; i < NQ; i++) {
        msg_init(&m, chat, a, "queued", NULL, T0 + i);
        CHECK_EQ_INT(store_append_message(st, &m, waiter_cb, &w), 0);
    }
    store_close(st); /* returns after every callback */
    CHECK(probe.done);
    CHECK_EQ_INT(probe.refused, 1);
    pthread_mutex_lock(&w.mu);
    CHECK_EQ_INT(w.calls, NQ);
    CHECK_EQ_INT(w.rc, 0);
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_lock(&pw.mu);
    CHECK_EQ_INT(pw.calls, probe.accepted);
    CHECK_EQ_INT(pw.rc, 0);
    pthread_mutex_unlock(&pw.mu);
    waiter_cleanup(&w);
    waiter_cleanup(&pw);
}

/* Ids that are not 24 hex characters (empty, too long, a real id with a
 * suffix) find nothing and break nothing. */
static void case_odd_ids(void)
{
    struct store *st = fresh();
    if (!st)
        return;
    struct chat_err err = {0};
    char a[OID_SIZE], chat[OID_SIZE], post[OID_SIZE], longer[64], quote[] = "\"'];--";
    mk_user(st, "odd", a);
    mk_post(st, a, "p", T0, post);
    char one[1][OID_SIZE];
    memcpy(one[0], a, OID_SIZE);
    CHECK_EQ_INT(mk_chat(st, CHAT_GROUP, NULL, one, 1, T0, chat, NULL), 0);
    const char *bad[3] = {"", longer, quote};
    for (int i = 0; i < 3; i++) {
        snprintf(longer, sizeof longer, "%s0", a);
        struct user u = {0};
        CHECK_EQ_INT(store_get_user(st, bad[i], &u, &err), CHAT_E_NOT_FOUND);
        struct post p = {0};
        snprintf(longer, sizeof longer, "%s0", post);
        CHECK_EQ_INT(store_get_post(st, bad[i], a, &p, &err), CHAT_E_NOT_FOUND);
        CHECK_EQ_INT(store_delete_post(st, bad[i], &err), CHAT_E_NOT_FOUND);
        int64_t n = 0;
        CHECK_EQ_INT(store_set_like(st, bad[i], a, true, &n, &err), CHAT_E_NOT_FOUND);
        snprintf(longer, sizeof longer, "%s0", chat);
        struct chat c = {0};
        CHECK_EQ_INT(store_get_chat(st, bad[i], a, &c, &err), CHAT_E_NOT_FOUND);
        CHECK_EQ_INT(store_get_chat(st, bad[i], NULL, &c, &err), CHAT_E_NOT_FOUND);
        CHECK_EQ_INT(store_is_member(st, bad[i], a, &err), CHAT_E_NOT_FOUND);
        CHECK_EQ_INT(store_is_member(st, chat, bad[i], &err), CHAT_E_NOT_FOUND);
        bool flag = true;
        CHECK_EQ_INT(store_add_member(st, bad[i], a, &flag, &err), CHAT_E_NOT_FOUND);
        CHECK(!flag);
        struct message_list ml = {0};
        CHECK_EQ_INT(store_list_messages(st, bad[i], 0, 10, &ml, &err), 0);
        CHECK_EQ_INT(ml.n, 0);
        store_message_list_cleanup(&ml);
        CHECK_EQ_INT(store_set_read(st, chat, a, bad[i], &flag, &err), CHAT_E_NOT_FOUND);
        struct chat_list cl = {0};
        CHECK_EQ_INT(store_list_chats(st, bad[i], NULL, 10, &cl, &err), 0);
        CHECK_EQ_INT(cl.n, 0);
        store_chat_list_cleanup(&cl);
        struct user_list ul = {0};
        CHECK_EQ_INT(store_search_users(st, bad[i], NULL, 10, &ul, &err), 0);
        CHECK_EQ_INT(ul.n, i == 0 ? 1 : 0); /* "" is every user's prefix */
        store_user_list_cleanup(&ul);
    }
    /* A limit of 0 (or less) is an empty page, not an error. */
    struct post_list pl = {0};
    CHECK_EQ_INT(store_list_posts(st, NULL, NULL, NULL, 0, &pl, &err), 0);
    CHECK_EQ_INT(pl.n, 0);
    CHECK_EQ_INT(store_list_posts(st, NULL, NULL, NULL, -5, &pl, &err), 0);
    CHECK_EQ_INT(pl.n, 0);
    store_close(st);
}

/* ---- message edits, deletions, catch-up by position (issue 13) ----------- */

/* Concurrent edits of one message: every edit commits at its own position,
 * and the message ends in the state of the highest one. */
struct change_arg {
    struct store *st;
    const char *chat, *msg;
    int k;
    int64_t pos[8];
    char text[8][16];
    int failed;
};

static void *change_thread(void *arg)
{
    struct change_arg *a = arg;
    for (int i = 0; i < 8; i++) {
        struct chat_err err = {0};
        struct message out = {0};
        bool changed = false;
        snprintf(a->text[i], sizeof a->text[i], "t%d-%d", a->k, i);
        if (store_change_message(a->st, a->chat, a->msg, a->text[i], T0 + 100 + i, &out,
                                 &changed, &err) != 0 || !changed)
            a->failed++;
        a->pos[i] = out.pos;
        store_message_cleanup(&out);
    }
    return NULL;
}

static void case_message_changes(void)
{
    struct store *st = fresh();
    if (!st)
        return;
    struct chat_err err = {0};
    char two[2][OID_SIZE], chat[OID_SIZE], other[OID_SIZE], missing[OID_SIZE];
    mk_user(st, "ea", two[0]);
    mk_user(st, "eb", two[1]);
    new_id(missing);
    CHECK_EQ_INT(mk_chat(st, CHAT_GROUP, "e", two, 2, T0, chat, NULL), 0);
    CHECK_EQ_INT(mk_chat(st, CHAT_GROUP, "o", two, 2, T0, other, NULL), 0);
    struct message m[4], o = {0};
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(append_wait(st, chat, two[i % 2], "orig", NULL, T0 + 1 + i, &m[i], NULL), 0);
        CHECK_EQ_INT(m[i].pos, m[i].seq);
        CHECK_EQ_INT(m[i].edited_at, 0);
        CHECK(!m[i].deleted);
    }
    CHECK_EQ_INT(append_wait(st, other, two[0], "elsewhere", NULL, T0 + 9, &o, NULL), 0);

    /* get_message: only in its own chat. */
    struct message g = {0};
    CHECK_EQ_INT(store_get_message(st, chat, m[1].id, &g, &err), 0);
    CHECK_EQ_STR(g.id, m[1].id);
    CHECK_EQ_STR(g.chat_id, chat);
    CHECK_EQ_STR(g.sender_id, two[1]);
    CHECK_EQ_INT(g.seq, m[1].seq);
    CHECK_EQ_STR(g.text, "orig");
    store_message_cleanup(&g);
    CHECK_EQ_INT(store_get_message(st, chat, o.id, &g, &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_get_message(st, chat, missing, &g, &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_get_message(st, missing, m[1].id, &g, &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_get_message(st, chat, "bad", &g, &err), CHAT_E_NOT_FOUND);

    /* An edit takes the next position; the message keeps its seq. */
    struct message e = {0};
    bool changed = false;
    int64_t top = m[3].seq;
    CHECK_EQ_INT(store_change_message(st, chat, m[0].id, "edited", T0 + 50, &e, &changed, &err),
                 0);
    CHECK(changed);
    CHECK_EQ_STR(e.text, "edited");
    CHECK_EQ_INT(e.seq, m[0].seq);
    CHECK_EQ_INT(e.edited_at, T0 + 50);
    CHECK(e.pos > top);
    CHECK(!e.deleted);
    int64_t p_edit = e.pos;
    store_message_cleanup(&e);
    CHECK_EQ_INT(store_get_message(st, chat, m[0].id, &g, &err), 0);
    CHECK_EQ_STR(g.text, "edited");
    CHECK_EQ_INT(g.edited_at, T0 + 50);
    CHECK_EQ_INT(g.pos, p_edit);
    store_message_cleanup(&g);
    /* Another chat's message, a missing one: not found, nothing changes. */
    CHECK_EQ_INT(store_change_message(st, chat, o.id, "x", T0, &e, &changed, &err),
                 CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_change_message(st, chat, missing, NULL, T0, &e, &changed, &err),
                 CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_change_message(st, missing, m[0].id, NULL, T0, &e, &changed, &err),
                 CHAT_E_NOT_FOUND);

    /* The last message deleted: a tombstone, also as the chat's last message. */
    CHECK_EQ_INT(store_change_message(st, chat, m[3].id, NULL, T0 + 60, &e, &changed, &err), 0);
    CHECK(changed && e.deleted);
    CHECK_EQ_STR(e.text, "");
    CHECK(e.attachment_url == NULL);
    CHECK(e.pos > p_edit);
    int64_t p_del = e.pos;
    store_message_cleanup(&e);
    struct chat c = {0};
    CHECK_EQ_INT(store_get_chat(st, chat, two[0], &c, &err), 0);
    CHECK_EQ_INT(c.last_seq, m[3].seq); /* the highest message seq, not the position */
    CHECK(c.last_message != NULL);
    if (c.last_message) {
        CHECK_EQ_STR(c.last_message->id, m[3].id);
        CHECK(c.last_message->deleted);
        CHECK_EQ_STR(c.last_message->text, "");
    }
    store_chat_cleanup(&c);
    /* A tombstone stays: a second deletion changes nothing, an edit is refused. */
    CHECK_EQ_INT(store_change_message(st, chat, m[3].id, NULL, T0 + 61, &e, &changed, &err), 0);
    CHECK(!changed && e.deleted);
    CHECK_EQ_INT(e.pos, p_del);
    store_message_cleanup(&e);
    CHECK_EQ_INT(store_change_message(st, chat, m[3].id, "back", T0 + 62, &e, &changed, &err),
                 CHAT_E_NOT_FOUND);

    /* Editing the (new) last message shows in the chat's last message. */
    struct message n = {0};
    CHECK_EQ_INT(append_wait(st, chat, two[1], "newest", NULL, T0 + 70, &n, NULL), 0);
    CHECK(n.seq > p_del);
    CHECK_EQ_INT(n.pos, n.seq);
    CHECK_EQ_INT(store_change_message(st, chat, n.id, "newest!", T0 + 71, &e, &changed, &err), 0);
    int64_t p_last = e.pos;
    store_message_cleanup(&e);
    CHECK_EQ_INT(store_get_chat(st, chat, two[0], &c, &err), 0);
    CHECK_EQ_INT(c.last_seq, n.seq);
    if (c.last_message) {
        CHECK_EQ_STR(c.last_message->text, "newest!");
        CHECK_EQ_INT(c.last_message->edited_at, T0 + 71);
    }
    /* Changes are no new messages and a tombstone never counts: m[1] and n
     * are from two[1] (m[3], also theirs, is deleted). */
    CHECK_EQ_INT(c.unread_count, 2);
    store_chat_cleanup(&c);

    /* Catch-up by position: after m[3].seq, the changes of m[0] and m[3]
     * and the new message, each once, ascending. */
    struct message_list l = {0};
    CHECK_EQ_INT(store_list_changes_after(st, chat, top, 10, &l, &err), 0);
    CHECK_EQ_INT(l.n, 3);
    if (l.n == 3) {
        CHECK_EQ_STR(l.items[0].id, m[0].id);
        CHECK_EQ_INT(l.items[0].pos, p_edit);
        CHECK_EQ_STR(l.items[0].text, "edited");
        CHECK_EQ_STR(l.items[1].id, m[3].id);
        CHECK(l.items[1].deleted);
        CHECK_EQ_STR(l.items[2].id, n.id);
        CHECK_EQ_INT(l.items[2].pos, p_last);
        CHECK_EQ_STR(l.items[2].text, "newest!");
        CHECK_EQ_STR(l.items[2].sender_id, two[1]);
        CHECK_EQ_STR(l.items[2].chat_id, chat);
    }
    store_message_list_cleanup(&l);
    /* From 0: every message once, in position order (m[1], m[2] untouched first). */
    CHECK_EQ_INT(store_list_changes_after(st, chat, 0, 2, &l, &err), 0);
    CHECK_EQ_INT(l.n, 2);
    if (l.n == 2) {
        CHECK_EQ_STR(l.items[0].id, m[1].id);
        CHECK_EQ_STR(l.items[1].id, m[2].id);
    }
    store_message_list_cleanup(&l);
    CHECK_EQ_INT(store_list_changes_after(st, chat, p_last, 10, &l, &err), 0);
    CHECK_EQ_INT(l.n, 0);
    store_message_list_cleanup(&l);
    CHECK_EQ_INT(store_list_changes_after(st, missing, 0, 10, &l, &err), 0);
    CHECK_EQ_INT(l.n, 0);
    store_message_list_cleanup(&l);
    /* History by seq shows current states; the other chat is untouched. */
    CHECK_EQ_INT(store_list_messages_after(st, chat, 0, 10, &l, &err), 0);
    CHECK_EQ_INT(l.n, 5);
    if (l.n == 5) {
        CHECK_EQ_STR(l.items[0].text, "edited");
        CHECK(l.items[3].deleted);
        CHECK_EQ_INT(l.items[3].seq, m[3].seq);
    }
    store_message_list_cleanup(&l);
    CHECK_EQ_INT(store_list_changes_after(st, other, 0, 10, &l, &err), 0);
    CHECK_EQ_INT(l.n, 1);
    store_message_list_cleanup(&l);

    /* Racing edits of one message: distinct positions, and the final
     * state is the edit at the highest one. */
    struct change_arg ca[4];
    pthread_t th[4];
    for (int k = 0; k < 4; k++) {
        memset(&ca[k], 0, sizeof ca[k]);
        ca[k].st = st;
        ca[k].chat = chat;
        ca[k].msg = m[2].id;
        ca[k].k = k;
        CHECK_EQ_INT(pthread_create(&th[k], NULL, change_thread, &ca[k]), 0);
    }
    int64_t best = 0;
    const char *best_text = NULL;
    int64_t all[32];
    int na = 0;
    for (int k = 0; k < 4; k++) {
        pthread_join(th[k], NULL);
        CHECK_EQ_INT(ca[k].failed, 0);
        for (int i = 0; i < 8; i++) {
            all[na++] = ca[k].pos[i];
            if (ca[k].pos[i] > best) {
                best = ca[k].pos[i];
                best_text = ca[k].text[i];
            }
        }
    }
    for (int i = 0; i < na; i++)
        for (int j = i + 1; j < na; j++)
            CHECK(all[i] != all[j]);
    CHECK_EQ_INT(store_get_message(st, chat, m[2].id, &g, &err), 0);
    CHECK_EQ_INT(g.pos, best);
    if (best_text)
        CHECK_EQ_STR(g.text, best_text);
    store_message_cleanup(&g);

    for (int i = 0; i < 4; i++)
        store_message_cleanup(&m[i]);
    store_message_cleanup(&o);
    store_message_cleanup(&n);
    store_close(st);
}

/* ---- account lifecycle and read receipts (issue 13) ------------------- */

/* The read mark of `who` in `ch` (-1 when not a member). */
static int64_t mark_of(const struct chat *ch, const char *who)
{
    for (size_t i = 0; i < ch->n_members; i++)
        if (strcmp(ch->member_ids[i], who) == 0)
            return ch->read_seqs ? ch->read_seqs[i] : 0;
    return -1;
}

/* read_seqs: every member's mark, from get_chat and from a list_chats page
 * (whatever the viewer), and set_read_seq's seq. */
static void case_read_marks(void)
{
    struct store *st = fresh();
    if (!st)
        return;
    struct chat_err err = {0};
    char u[3][OID_SIZE], g[OID_SIZE], d[OID_SIZE];
    mk_user(st, "rm_a", u[0]);
    mk_user(st, "rm_b", u[1]);
    mk_user(st, "rm_c", u[2]);
    CHECK_EQ_INT(mk_chat(st, CHAT_GROUP, "g", u, 3, T0, g, NULL), 0);
    char pair[2][OID_SIZE];
    memcpy(pair[0], u[0], OID_SIZE);
    memcpy(pair[1], u[1], OID_SIZE);
    CHECK_EQ_INT(mk_chat(st, CHAT_DIRECT, NULL, pair, 2, T0 + 1, d, NULL), 0);
    struct message m[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(append_wait(st, g, u[0], "x", NULL, T0 + 10 + i, &m[i], NULL), 0);

    struct chat ch = {0};
    CHECK_EQ_INT(store_get_chat(st, g, u[1], &ch, &err), 0);
    CHECK_EQ_INT(mark_of(&ch, u[0]), 0);
    CHECK_EQ_INT(mark_of(&ch, u[1]), 0);
    CHECK_EQ_INT(mark_of(&ch, u[2]), 0);
    store_chat_cleanup(&ch);

    bool moved = false;
    int64_t seq = -1;
    CHECK_EQ_INT(store_set_read_seq(st, g, u[1], m[2].id, &moved, &seq, &err), 0);
    CHECK(moved);
    CHECK_EQ_INT(seq, m[2].seq);
    CHECK_EQ_INT(store_set_read_seq(st, g, u[2], m[0].id, &moved, &seq, &err), 0);
    CHECK(moved);
    CHECK_EQ_INT(seq, m[0].seq);
    /* Backwards: not moved, the seq asked for is still reported. */
    CHECK_EQ_INT(store_set_read_seq(st, g, u[1], m[1].id, &moved, &seq, &err), 0);
    CHECK(!moved);
    CHECK_EQ_INT(seq, m[1].seq);
    CHECK_EQ_INT(store_set_read_seq(st, d, u[1], m[1].id, &moved, &seq, &err),
                 CHAT_E_NOT_FOUND); /* not a message of that chat */

    /* get_chat, with and without a viewer. */
    for (int v = 0; v < 2; v++) {
        CHECK_EQ_INT(store_get_chat(st, g, v ? u[2] : NULL, &ch, &err), 0);
        CHECK_EQ_INT(ch.n_members, 3);
        CHECK_EQ_INT(mark_of(&ch, u[0]), 0);
        CHECK_EQ_INT(mark_of(&ch, u[1]), m[2].seq);
        CHECK_EQ_INT(mark_of(&ch, u[2]), m[0].seq);
        store_chat_cleanup(&ch);
    }
    /* A page of chats: each chat carries every member's marks. */
    struct chat_list cl = {0};
    CHECK_EQ_INT(store_list_chats(st, u[0], NULL, 10, &cl, &err), 0);
    CHECK_EQ_INT(cl.n, 2);
    for (size_t i = 0; i < cl.n; i++) {
        if (strcmp(cl.items[i].id, g) == 0) {
            CHECK_EQ_INT(mark_of(&cl.items[i], u[1]), m[2].seq);
            CHECK_EQ_INT(mark_of(&cl.items[i], u[2]), m[0].seq);
        } else {
            CHECK_EQ_INT(cl.items[i].n_members, 2);
            CHECK_EQ_INT(mark_of(&cl.items[i], u[0]), 0);
            CHECK_EQ_INT(mark_of(&cl.items[i], u[1]), 0);
        }
    }
    store_chat_list_cleanup(&cl);
    /* A member who leaves takes its mark along; one who comes back starts
     * at 0. */
    bool removed = false, added = false;
    CHECK_EQ_INT(store_remove_member(st, g, u[1], &removed, &err), 0);
    CHECK_EQ_INT(store_add_member(st, g, u[1], &added, &err), 0);
    CHECK_EQ_INT(store_get_chat(st, g, NULL, &ch, &err), 0);
    CHECK_EQ_INT(mark_of(&ch, u[1]), 0);
    store_chat_cleanup(&ch);
    for (int i = 0; i < 3; i++)
        store_message_cleanup(&m[i]);
    store_close(st);
}

/* delete_user_sessions: every session of the user but `keep`, reported. */
static void case_user_sessions(void)
{
    struct store *st = fresh();
    if (!st)
        return;
    struct chat_err err = {0};
    char a[OID_SIZE], b[OID_SIZE], got[OID_SIZE];
    mk_user(st, "us_a", a);
    mk_user(st, "us_b", b);
    uint8_t h[4][32];
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 32; i++)
            h[k][i] = (uint8_t)(k * 50 + i);
    h[1][0] = 0;
    for (int k = 0; k < 3; k++)
        CHECK_EQ_INT(store_create_session(st, h[k], a, T0 + 1000, &err), 0);
    CHECK_EQ_INT(store_create_session(st, h[3], b, T0 + 1000, &err), 0);
    uint8_t(*del)[32] = NULL;
    size_t n = 99;
    int64_t exp;
    /* All but h[0]. */
    CHECK_EQ_INT(store_delete_user_sessions(st, a, h[0], &del, &n, &err), 0);
    CHECK_EQ_INT(n, 2);
    bool saw1 = false, saw2 = false;
    for (size_t i = 0; i < n; i++) {
        saw1 |= memcmp(del[i], h[1], 32) == 0;
        saw2 |= memcmp(del[i], h[2], 32) == 0;
    }
    CHECK(saw1 && saw2);
    free(del);
    CHECK_EQ_INT(store_get_session(st, h[0], got, &exp, &err), 0);
    CHECK_EQ_INT(store_get_session(st, h[1], got, &exp, &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_get_session(st, h[2], got, &exp, &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_get_session(st, h[3], got, &exp, &err), 0); /* b's stays */
    /* All of them (keep NULL); then none left: 0 sessions, not an error. */
    CHECK_EQ_INT(store_delete_user_sessions(st, a, NULL, &del, &n, &err), 0);
    CHECK_EQ_INT(n, 1);
    if (n == 1)
        CHECK(memcmp(del[0], h[0], 32) == 0);
    free(del);
    CHECK_EQ_INT(store_get_session(st, h[0], got, &exp, &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_delete_user_sessions(st, a, NULL, &del, &n, &err), 0);
    CHECK_EQ_INT(n, 0);
    CHECK(del == NULL);
    free(del);
    CHECK_EQ_INT(store_get_session(st, h[3], got, &exp, &err), 0);
    store_close(st);
}

/* delete_user: posts with their likes and comments, the user's likes and
 * comments elsewhere (counts fixed), groups left (direct chats and
 * messages kept), sessions gone, the row anonymized, name and email free. */
static void case_delete_user(void)
{
    struct store *st = fresh();
    if (!st)
        return;
    struct chat_err err = {0};
    char x[OID_SIZE], y[OID_SIZE], z[OID_SIZE];
    mk_user(st, "Del_X", x);
    mk_user(st, "del_y", y);
    mk_user(st, "del_z", z);
    char px[OID_SIZE], py[OID_SIZE], cm[OID_SIZE];
    mk_post(st, x, "x's post", T0 + 1, px);
    mk_post(st, y, "y's post", T0 + 2, py);
    int64_t likes = 0;
    CHECK_EQ_INT(store_set_like(st, py, x, true, &likes, &err), 0);
    CHECK_EQ_INT(store_set_like(st, py, z, true, &likes, &err), 0);
    CHECK_EQ_INT(store_set_like(st, px, y, true, &likes, &err), 0);
    for (int i = 0; i < 3; i++) {
        struct comment c = {0};
        new_id(c.id);
        memcpy(c.post_id, i == 2 ? px : py, OID_SIZE);
        memcpy(c.author_id, i == 1 ? z : x, OID_SIZE);
        c.text = "c";
        c.created_at = T0 + 10 + i;
        CHECK_EQ_INT(store_create_comment(st, &c, &err), 0);
        if (i == 1)
            memcpy(cm, c.id, OID_SIZE);
    }
    char three[3][OID_SIZE], pair[2][OID_SIZE], g[OID_SIZE], g2[OID_SIZE], d[OID_SIZE];
    memcpy(three[0], x, OID_SIZE);
    memcpy(three[1], y, OID_SIZE);
    memcpy(three[2], z, OID_SIZE);
    memcpy(pair[0], y, OID_SIZE);
    memcpy(pair[1], x, OID_SIZE);
    CHECK_EQ_INT(mk_chat(st, CHAT_GROUP, "g", three, 3, T0, g, NULL), 0);
    CHECK_EQ_INT(mk_chat(st, CHAT_GROUP, NULL, pair, 2, T0, g2, NULL), 0);
    CHECK_EQ_INT(mk_chat(st, CHAT_DIRECT, NULL, pair, 2, T0, d, NULL), 0);
    struct message m = {0};
    CHECK_EQ_INT(append_wait(st, d, x, "from x", NULL, T0 + 20, &m, NULL), 0);
    bool moved;
    CHECK_EQ_INT(store_set_read(st, d, x, m.id, &moved, &err), 0);
    uint8_t h[32];
    memset(h, 7, sizeof h);
    CHECK_EQ_INT(store_create_session(st, h, x, T0 + 1000, &err), 0);

    struct user anon = {0};
    char name[64];
    snprintf(name, sizeof name, "deleted_%s", x);
    memcpy(anon.id, x, OID_SIZE);
    anon.username = name;
    anon.email = name;
    anon.display_name = "Deleted user";
    anon.bio = "";
    anon.pwhash = "";
    char(*groups)[OID_SIZE] = NULL;
    size_t ng = 0;
    CHECK_EQ_INT(store_delete_user(st, &anon, &groups, &ng, &err), 0);
    CHECK_EQ_INT(ng, 2);
    bool saw_g = false, saw_g2 = false;
    for (size_t i = 0; i < ng; i++) {
        saw_g |= strcmp(groups[i], g) == 0;
        saw_g2 |= strcmp(groups[i], g2) == 0;
    }
    CHECK(saw_g && saw_g2);
    free(groups);

    /* The row: anonymized, same id. */
    struct user u = {0};
    CHECK_EQ_INT(store_get_user(st, x, &u, &err), 0);
    CHECK_EQ_STR(u.username, name);
    CHECK_EQ_STR(u.display_name, "Deleted user");
    CHECK_EQ_STR(u.pwhash, "");
    CHECK(u.avatar_url == NULL);
    store_user_cleanup(&u);
    CHECK_EQ_INT(store_find_user_by_login(st, "del_x@example.com", &u, &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_find_user_by_login(st, "del_x", &u, &err), CHAT_E_NOT_FOUND);
    /* Search never finds it, even by its new name. */
    struct user_list ul = {0};
    CHECK_EQ_INT(store_search_users(st, "del", NULL, 10, &ul, &err), 0);
    CHECK_EQ_INT(ul.n, 2);
    for (size_t i = 0; i < ul.n; i++)
        CHECK(strcmp(ul.items[i].id, x) != 0);
    store_user_list_cleanup(&ul);
    /* Name and email free: a new account takes them. */
    char again[OID_SIZE];
    mk_user(st, "DEL_x", again);
    CHECK(strcmp(again, x) != 0);
    /* Sessions gone. */
    char got[OID_SIZE];
    int64_t exp;
    CHECK_EQ_INT(store_get_session(st, h, got, &exp, &err), CHAT_E_NOT_FOUND);
    /* Posts: x's gone; y's has z's like and comment only. */
    struct post p = {0};
    CHECK_EQ_INT(store_get_post(st, px, NULL, &p, &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_get_post(st, py, x, &p, &err), 0);
    CHECK_EQ_INT(p.like_count, 1);
    CHECK_EQ_INT(p.comment_count, 1);
    CHECK(!p.liked_by_me);
    store_post_cleanup(&p);
    struct comment_list cl = {0};
    CHECK_EQ_INT(store_list_comments(st, py, NULL, 10, &cl, &err), 0);
    CHECK_EQ_INT(cl.n, 1);
    if (cl.n == 1)
        CHECK_EQ_STR(cl.items[0].id, cm);
    store_comment_list_cleanup(&cl);
    struct post_list pl = {0};
    CHECK_EQ_INT(store_list_posts(st, x, NULL, NULL, 10, &pl, &err), 0);
    CHECK_EQ_INT(pl.n, 0);
    store_post_list_cleanup(&pl);
    /* Chats: out of both groups (the others stay), the direct chat and its
     * message kept. */
    struct chat ch = {0};
    CHECK_EQ_INT(store_get_chat(st, g, NULL, &ch, &err), 0);
    CHECK_EQ_INT(ch.n_members, 2);
    CHECK_EQ_INT(mark_of(&ch, x), -1);
    store_chat_cleanup(&ch);
    CHECK_EQ_INT(store_is_member(st, g2, x, &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(store_is_member(st, g2, y, &err), 0);
    CHECK_EQ_INT(store_get_chat(st, d, y, &ch, &err), 0);
    CHECK_EQ_INT(ch.n_members, 2);
    CHECK_EQ_INT(mark_of(&ch, x), m.seq);
    CHECK(ch.last_message && strcmp(ch.last_message->sender_id, x) == 0);
    store_chat_cleanup(&ch);
    struct message_list ml = {0};
    CHECK_EQ_INT(store_list_messages(st, d, 0, 10, &ml, &err), 0);
    CHECK_EQ_INT(ml.n, 1);
    store_message_list_cleanup(&ml);
    /* Unknown user: NOT_FOUND. */
    new_id(anon.id);
    CHECK_EQ_INT(store_delete_user(st, &anon, &groups, &ng, &err), CHAT_E_NOT_FOUND);
    CHECK_EQ_INT(ng, 0);
    store_message_cleanup(&m);
    store_close(st);
}

int store_contract_run(const struct store_contract_opts *o)
{
    opts = o;
    int failed_before = check__failed, passed_before = check__passed;
    case_users();
    case_search();
    case_sessions();
    case_posts();
    case_post_update();
    case_likes_concurrent();
    case_chats();
    case_rename_chat();
    case_contacts();
    case_list_chats();
    case_append();
    case_append_concurrent();
    case_list_messages();
    case_message_changes();
    case_odd_ids();
    case_close_drains();
    case_read_marks();
    case_user_sessions();
    case_delete_user();
    int failed = check__failed - failed_before;
    printf("store contract [%s]: %d checks, %d failed\n", o->label ? o->label : "?",
           check__passed - passed_before + failed, failed);
    return failed;
}
