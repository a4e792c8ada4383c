/* test_posts.c - core/posts.c: creating posts (text/image rules), the feed
 * with author filter and paging, likes, deletion rights, comments, and the
 * post.new event. */
#include "fixture.h"

static void test_create(struct fx *f, struct session *a)
{
    struct chat_err err = {0};
    json_t *out = NULL, *body;

    fx_clear_events(f);
    body = fx_json("{\"text\":\"  hello world \\n\",\"unknown\":1}");
    CHECK_EQ_INT(posts_create(f->core, a, body, &out, &err), 0);
    CHECK(oid_valid(fx_str(out, "id")));
    CHECK_EQ_STR(fx_str(out, "text"), "hello world");
    CHECK(json_is_null(json_object_get(out, "imageUrl")));
    CHECK_EQ_INT(fx_int(out, "likeCount"), 0);
    CHECK_EQ_INT(fx_int(out, "commentCount"), 0);
    CHECK(json_is_false(json_object_get(out, "likedByMe")));
    CHECK(fx_str(out, "createdAt") != NULL);
    CHECK(json_is_null(json_object_get(out, "editedAt")));
    json_t *author = json_object_get(out, "author");
    CHECK_EQ_STR(fx_str(author, "id"), a->user_id);
    CHECK_EQ_STR(fx_str(author, "username"), "kate");
    CHECK_EQ_INT(json_object_size(author), 4);
    CHECK_EQ_INT(json_object_size(out), 9);

    /* post.new went to everyone, with the same Post. */
    CHECK_EQ_INT(fx_count_events(f, "post.new"), 1);
    struct fx_event *ev = fx_find_event(f, "post.new", 0);
    if (ev) {
        CHECK_EQ_INT(ev->scope, BUS_TO_ALL);
        CHECK_EQ_INT(ev->skip_conn, 0);
        CHECK(json_equal(json_object_get(ev->frame, "post"), out));
    }
    json_decref(out);
    json_decref(body);

    /* Image posts may have empty or absent text. */
    body = fx_json("{\"imageUrl\":\"https://img.example.com/a.png\"}");
    CHECK_EQ_INT(posts_create(f->core, a, body, &out, &err), 0);
    CHECK_EQ_STR(fx_str(out, "text"), "");
    CHECK_EQ_STR(fx_str(out, "imageUrl"), "https://img.example.com/a.png");
    json_decref(out);
    json_decref(body);
    body = fx_json("{\"text\":\"   \",\"imageUrl\":\"http://img.example.com/b.png\"}");
    CHECK_EQ_INT(posts_create(f->core, a, body, &out, &err), 0);
    CHECK_EQ_STR(fx_str(out, "text"), "");
    json_decref(out);
    json_decref(body);

    /* 5000 code points ok, 5001 not. */
    char *big = malloc(3 * 5001 + 1);
    for (int i = 0; i < 5000; i++)
        memcpy(big + 3 * i, "\xE2\x82\xAC", 3);
    big[3 * 5000] = '\0';
    body = json_pack("{s:s}", "text", big);
    CHECK_EQ_INT(posts_create(f->core, a, body, &out, &err), 0);
    json_decref(out);
    json_decref(body);
    strcat(big, "x");
    body = json_pack("{s:s}", "text", big);
    CHECK_ERR(posts_create(f->core, a, body, &out, &err), CHAT_E_VALIDATION, "text");
    json_decref(body);
    free(big);

    fx_clear_events(f);
    struct {
        const char *json;
        int code;
        const char *field;
    } cases[] = {
        {"[\"text\"]", CHAT_E_INVALID_JSON, NULL},
        {"{}", CHAT_E_VALIDATION, "text"},
        {"{\"text\":\"\"}", CHAT_E_VALIDATION, "text"},
        {"{\"text\":\" \\t\\n \"}", CHAT_E_VALIDATION, "text"},
        {"{\"text\":null}", CHAT_E_VALIDATION, "text"},
        {"{\"text\":42}", CHAT_E_VALIDATION, "text"},
        {"{\"text\":\"ok\",\"imageUrl\":\"file:///etc/passwd\"}", CHAT_E_VALIDATION, "imageUrl"},
        {"{\"text\":\"ok\",\"imageUrl\":5}", CHAT_E_VALIDATION, "imageUrl"},
        {"{\"text\":\"\",\"imageUrl\":\"\"}", CHAT_E_VALIDATION, "text"},
        {"{\"text\":[],\"imageUrl\":\"https://x.io/a.png\"}", CHAT_E_VALIDATION, "text"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        body = fx_json(cases[i].json);
        out = (json_t *)1;
        CHECK_ERR(posts_create(f->core, a, body, &out, &err), cases[i].code, cases[i].field);
        CHECK(out == NULL);
        json_decref(body);
    }
    CHECK_EQ_INT(fx_count_events(f, "post.new"), 0); /* failures publish nothing */
}

static void test_feed(struct fx *f, struct session *a, struct session *b)
{
    struct chat_err err = {0};
    json_t *out = NULL, *body;
    char ids[30][OID_SIZE];

    /* 30 posts by b, created fast enough to share timestamps. */
    for (int i = 0; i < 30; i++) {
        body = json_pack("{s:s+}", "text", "post ", i % 2 ? "odd" : "even");
        CHECK_EQ_INT(posts_create(f->core, b, body, &out, &err), 0);
        snprintf(ids[i], OID_SIZE, "%s", fx_str(out, "id"));
        json_decref(out);
        json_decref(body);
    }

    /* The author filter pages through b's 30 posts, newest first. */
    struct page_params pp = {.limit = "7"};
    int seen = 0;
    char cur[128];
    for (int page = 0; page < 10; page++) {
        CHECK_EQ_INT(posts_list(f->core, a, b->user_id, &pp, &out, &err), 0);
        json_t *items = json_object_get(out, "items");
        for (size_t i = 0; i < json_array_size(items); i++) {
            json_t *p = json_array_get(items, i);
            CHECK_EQ_STR(fx_str(p, "id"), ids[29 - seen]);
            CHECK_EQ_STR(fx_str(json_object_get(p, "author"), "id"), b->user_id);
            seen++;
        }
        const char *next = fx_str(out, "nextCursor");
        if (!next) {
            json_decref(out);
            break;
        }
        CHECK_EQ_INT(json_array_size(items), 7);
        snprintf(cur, sizeof cur, "%s", next);
        pp.before = cur;
        json_decref(out);
    }
    CHECK_EQ_INT(seen, 30);

    /* The whole feed holds a's posts too. */
    pp.before = NULL;
    pp.limit = "100";
    CHECK_EQ_INT(posts_list(f->core, a, NULL, &pp, &out, &err), 0);
    CHECK_EQ_INT(json_array_size(json_object_get(out, "items")), 34);
    CHECK(json_is_null(json_object_get(out, "nextCursor")));
    json_decref(out);

    /* Default limit is 20. */
    pp.limit = NULL;
    CHECK_EQ_INT(posts_list(f->core, a, NULL, &pp, &out, &err), 0);
    CHECK_EQ_INT(json_array_size(json_object_get(out, "items")), 20);
    CHECK(json_is_string(json_object_get(out, "nextCursor")));
    json_decref(out);

    /* An author with no posts, and errors. */
    CHECK_EQ_INT(posts_list(f->core, a, "6929b0da0123456789abcdef", &pp, &out, &err), 0);
    CHECK_EQ_INT(json_array_size(json_object_get(out, "items")), 0);
    json_decref(out);
    CHECK_ERR(posts_list(f->core, a, "bob", &pp, &out, &err), CHAT_E_VALIDATION, "author");
    CHECK_ERR(posts_list(f->core, a, "", &pp, &out, &err), CHAT_E_VALIDATION, "author");
    pp.limit = "abc";
    CHECK_ERR(posts_list(f->core, a, NULL, &pp, &out, &err), CHAT_E_VALIDATION, "limit");
    pp.limit = NULL;
    pp.before = "AAAA";
    CHECK_ERR(posts_list(f->core, a, NULL, &pp, &out, &err), CHAT_E_VALIDATION, "before");
}

static void test_likes_delete(struct fx *f, struct session *a, struct session *b)
{
    struct chat_err err = {0};
    json_t *out = NULL, *body;
    char id[OID_SIZE];

    body = fx_json("{\"text\":\"like me\"}");
    CHECK_EQ_INT(posts_create(f->core, a, body, &out, &err), 0);
    snprintf(id, sizeof id, "%s", fx_str(out, "id"));
    json_decref(out);
    json_decref(body);

    CHECK_EQ_INT(posts_like(f->core, b, id, true, &out, &err), 0);
    CHECK_EQ_INT(fx_int(out, "likeCount"), 1);
    CHECK(json_is_true(json_object_get(out, "likedByMe")));
    CHECK_EQ_INT(json_object_size(out), 2);
    json_decref(out);
    CHECK_EQ_INT(posts_like(f->core, b, id, true, &out, &err), 0); /* idempotent */
    CHECK_EQ_INT(fx_int(out, "likeCount"), 1);
    json_decref(out);
    CHECK_EQ_INT(posts_like(f->core, a, id, true, &out, &err), 0);
    CHECK_EQ_INT(fx_int(out, "likeCount"), 2);
    json_decref(out);

    /* likedByMe is per viewer. */
    CHECK_EQ_INT(posts_get(f->core, b, id, &out, &err), 0);
    CHECK(json_is_true(json_object_get(out, "likedByMe")));
    CHECK_EQ_INT(fx_int(out, "likeCount"), 2);
    CHECK_EQ_STR(fx_str(json_object_get(out, "author"), "id"), a->user_id);
    json_decref(out);
    CHECK_EQ_INT(posts_like(f->core, b, id, false, &out, &err), 0);
    CHECK_EQ_INT(fx_int(out, "likeCount"), 1);
    CHECK(json_is_false(json_object_get(out, "likedByMe")));
    json_decref(out);
    CHECK_EQ_INT(posts_like(f->core, b, id, false, &out, &err), 0);
    CHECK_EQ_INT(fx_int(out, "likeCount"), 1);
    json_decref(out);
    CHECK_EQ_INT(posts_get(f->core, b, id, &out, &err), 0);
    CHECK(json_is_false(json_object_get(out, "likedByMe")));
    json_decref(out);

    CHECK_ERR(posts_like(f->core, b, "x", true, &out, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(posts_like(f->core, b, "6929b0da0123456789abcdef", true, &out, &err),
              CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(posts_get(f->core, b, "6929b0da0123456789abcdef", &out, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(posts_get(f->core, b, "../etc", &out, &err), CHAT_E_NOT_FOUND, NULL);

    /* Comment, then delete: only the author; comments and likes go too. */
    body = fx_json("{\"text\":\"nice\"}");
    CHECK_EQ_INT(comments_create(f->core, b, id, body, &out, &err), 0);
    json_decref(out);
    json_decref(body);
    CHECK_ERR(posts_delete(f->core, b, id, &err), CHAT_E_FORBIDDEN, NULL);
    CHECK_EQ_INT(posts_get(f->core, b, id, &out, &err), 0);
    json_decref(out);
    CHECK_EQ_INT(posts_delete(f->core, a, id, &err), 0);
    CHECK_ERR(posts_get(f->core, a, id, &out, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(posts_delete(f->core, a, id, &err), CHAT_E_NOT_FOUND, NULL);
    struct page_params pp = {0};
    CHECK_ERR(comments_list(f->core, a, id, &pp, &out, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(posts_like(f->core, b, id, true, &out, &err), CHAT_E_NOT_FOUND, NULL);
    CHECK_ERR(posts_delete(f->core, a, "zz", &err), CHAT_E_NOT_FOUND, NULL);
}

static void test_comments(struct fx *f, struct session *a, struct session *b)
{
    struct chat_err err = {0};
    json_t *out = NULL, *body;
    char id[OID_SIZE];

    body = fx_json("{\"text\":\"discuss\"}");
    CHECK_EQ_INT(posts_create(f->core, a, body, &out, &err), 0);
    snprintf(id, sizeof id, "%s", fx_str(out, "id"));
    json_decref(out);
    json_decref(body);

    body = fx_json("{\"text\":\"  first!  \"}");
    CHECK_EQ_INT(comments_create(f->core, b, id, body, &out, &err), 0);
    CHECK(oid_valid(fx_str(out, "id")));
    CHECK_EQ_STR(fx_str(out, "postId"), id);
    CHECK_EQ_STR(fx_str(out, "text"), "first!");
    CHECK_EQ_STR(fx_str(json_object_get(out, "author"), "id"), b->user_id);
    CHECK(fx_str(out, "createdAt") != NULL);
    CHECK_EQ_INT(json_object_size(out), 5);
    json_decref(out);
    json_decref(body);
    for (int i = 0; i < 24; i++) {
        body = json_pack("{s:s}", "text", "more");
        CHECK_EQ_INT(comments_create(f->core, i % 2 ? a : b, id, body, &out, &err), 0);
        json_decref(out);
        json_decref(body);
    }
    CHECK_EQ_INT(posts_get(f->core, a, id, &out, &err), 0);
    CHECK_EQ_INT(fx_int(out, "commentCount"), 25);
    json_decref(out);

    /* Newest first, paged without repeats; the oldest ("first!") is last. */
    struct page_params pp = {.limit = "10"};
    char cur[128], last_text[32] = "";
    int seen = 0;
    char seen_ids[25][OID_SIZE];
    for (int page = 0; page < 5; page++) {
        CHECK_EQ_INT(comments_list(f->core, a, id, &pp, &out, &err), 0);
        json_t *items = json_object_get(out, "items");
        for (size_t i = 0; i < json_array_size(items) && seen < 25; i++) {
            json_t *cm = json_array_get(items, i);
            snprintf(seen_ids[seen], OID_SIZE, "%s", fx_str(cm, "id"));
            for (int j = 0; j < seen; j++)
                CHECK(strcmp(seen_ids[j], seen_ids[seen]) != 0);
            snprintf(last_text, sizeof last_text, "%s", fx_str(cm, "text"));
            CHECK(json_object_get(cm, "author") && !json_is_null(json_object_get(cm, "author")));
            seen++;
        }
        const char *next = fx_str(out, "nextCursor");
        if (!next) {
            json_decref(out);
            break;
        }
        snprintf(cur, sizeof cur, "%s", next);
        pp.before = cur;
        json_decref(out);
    }
    CHECK_EQ_INT(seen, 25);
    CHECK_EQ_STR(last_text, "first!");

    /* A posts cursor is not a comments cursor. */
    pp.limit = "1";
    pp.before = NULL;
    CHECK_EQ_INT(posts_list(f->core, a, NULL, &pp, &out, &err), 0);
    snprintf(cur, sizeof cur, "%s", fx_str(out, "nextCursor"));
    json_decref(out);
    pp.before = cur;
    CHECK_ERR(comments_list(f->core, a, id, &pp, &out, &err), CHAT_E_VALIDATION, "before");

    /* Bounds and errors. */
    char big[2002];
    memset(big, 'c', 2000);
    big[2000] = '\0';
    body = json_pack("{s:s}", "text", big);
    CHECK_EQ_INT(comments_create(f->core, a, id, body, &out, &err), 0);
    json_decref(out);
    json_decref(body);
    big[2000] = 'c';
    big[2001] = '\0';
    body = json_pack("{s:s}", "text", big);
    CHECK_ERR(comments_create(f->core, a, id, body, &out, &err), CHAT_E_VALIDATION, "text");
    json_decref(body);
    body = fx_json("{\"text\":\" \"}");
    CHECK_ERR(comments_create(f->core, a, id, body, &out, &err), CHAT_E_VALIDATION, "text");
    /* The body is validated before the post is looked up; a malformed
     * path id is 404 before anything. */
    CHECK_ERR(comments_create(f->core, a, "6929b0da0123456789abcdef", body, &out, &err),
              CHAT_E_VALIDATION, "text");
    CHECK_ERR(comments_create(f->core, a, "bad", body, &out, &err), CHAT_E_NOT_FOUND, NULL);
    json_decref(body);
    body = fx_json("{\"text\":\"ok\"}");
    CHECK_ERR(comments_create(f->core, a, "6929b0da0123456789abcdef", body, &out, &err),
              CHAT_E_NOT_FOUND, NULL);
    json_decref(body);
    body = fx_json("\"text\"");
    CHECK_ERR(comments_create(f->core, a, id, body, &out, &err), CHAT_E_INVALID_JSON, NULL);
    json_decref(body);
    pp.before = NULL;
    pp.limit = NULL;
    CHECK_ERR(comments_list(f->core, a, "6929b0da0123456789abcdef", &pp, &out, &err),
              CHAT_E_NOT_FOUND, NULL);
}

int main(void)
{
    struct fx f;
    struct session a, b;
    fx_open(&f);
    fx_user(&f, "kate", &a);
    fx_user(&f, "liam", &b);
    test_create(&f, &a);
    test_feed(&f, &a, &b);
    test_likes_delete(&f, &a, &b);
    test_comments(&f, &a, &b);
    fx_close(&f);
    return check_done();
}
