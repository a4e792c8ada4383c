/* posts.c - the feed: posts, likes and comments.
 *
 * Lists are built by core__page_build (page.h).  The cursor names the last
 * row shown by (created_at, id), the store's order key, so equal
 * timestamps neither repeat nor skip an item.
 *
 * Every write that changes what a feed page shows calls posts_feed_changed
 * after the store returned, which invalidates the feed page cache
 * (core/feed_cache.c) behind posts_list_text.
 *
 * post.new goes to every connection with likedByMe false: it is serialized
 * once for everybody, and a brand-new post has no likes anyway. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatli/bus.h"
#include "core_internal.h"
#include "cursor.h"
#include "page.h"
#include "validate.h"
#include "views.h"
#include "chatli/store.h"
#include "chatli/clock.h"

static int not_found(struct chat_err *err)
{
    return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such post");
}

static int oom(struct chat_err *err)
{
    return core__internal(err, "posts: out of memory");
}

/* The caller's Author object (new). */
static int caller_author(struct core *c, const struct session *s, json_t **out,
                         struct chat_err *err)
{
    return core__author(c, s->user_id, out, err);
}

int posts_create(struct core *c, const struct session *s, json_t *body, json_t **out,
                 struct chat_err *err)
{
    char *text = NULL, *image = NULL;
    json_t *author = NULL;
    int rc;

    *out = NULL;
    if (!json_is_object(body))
        return chat_err_set(err, CHAT_E_INVALID_JSON, NULL, "body must be a JSON object");
    rc = validate_url_field(body, "imageUrl", &image, err);
    if (rc)
        goto done;
    /* With an image the text may be empty or absent. */
    rc = validate_string_field(body, "text", VALIDATE_TRIM | (image ? 0 : VALIDATE_REQUIRED),
                               image ? 0 : 1, 5000, &text, err);
    if (rc)
        goto done;
    if (!text && !(text = strdup(""))) {
        rc = oom(err);
        goto done;
    }
    rc = caller_author(c, s, &author, err);
    if (rc)
        goto done;

    struct post p = {0};
    int64_t now = clock_now_ms();
    oid_new(p.id, now);
    memcpy(p.author_id, s->user_id, OID_SIZE);
    p.text = text;
    p.image_url = image;
    p.created_at = now;
    rc = store_create_post(c->store, &p, err);
    if (rc)
        goto done;
    posts_feed_changed(c);

    *out = views_post(&p, author);
    if (!*out) {
        rc = oom(err);
        goto done;
    }
    json_t *ev = views_event("post.new", "post", *out);
    core__publish(c, BUS_TO_ALL, NULL, 0, 0, ev);
    json_decref(ev);

done:
    json_decref(author);
    free(text);
    free(image);
    return rc;
}

/* ---- listing (page.h) ---------------------------------------------------- */

/* Posts and comments resume after their last row's (created_at, id). */
static void key_cursor(int kind, int64_t ts, const char *id, char next[CURSOR_MAX])
{
    struct page_key k = {.ts = ts};
    memcpy(k.id, id, OID_SIZE);
    cursor_encode_key(kind, &k, next);
}

static int post_authors(const void *row, struct core_ids *ids)
{
    return core__ids_push(ids, ((const struct post *)row)->author_id);
}

static json_t *post_view(const void *row, const struct views_authors *a)
{
    const struct post *p = row;
    return views_post(p, views_authors_find(a, p->author_id));
}

static void post_cursor(const void *row, char next[CURSOR_MAX])
{
    const struct post *p = row;
    key_cursor(CURSOR_POSTS, p->created_at, p->id, next);
}

static const struct core_page_kind post_kind = {
    .size = sizeof(struct post),
    .authors = post_authors,
    .view = post_view,
    .cursor = post_cursor,
};

static int comment_authors(const void *row, struct core_ids *ids)
{
    return core__ids_push(ids, ((const struct comment *)row)->author_id);
}

static json_t *comment_view(const void *row, const struct views_authors *a)
{
    const struct comment *cm = row;
    return views_comment(cm, views_authors_find(a, cm->author_id));
}

static void comment_cursor(const void *row, char next[CURSOR_MAX])
{
    const struct comment *cm = row;
    key_cursor(CURSOR_COMMENTS, cm->created_at, cm->id, next);
}

static const struct core_page_kind comment_kind = {
    .size = sizeof(struct comment),
    .authors = comment_authors,
    .view = comment_view,
    .cursor = comment_cursor,
};

int posts_list(struct core *c, const struct session *s, const char *author,
               const struct page_params *pp, json_t **out, struct chat_err *err)
{
    struct page_key before;
    struct post_list list = {0};
    int limit;

    *out = NULL;
    if (author && !oid_valid(author))
        return chat_err_set(err, CHAT_E_VALIDATION, "author", "author must be a user id");
    int rc = validate_limit(pp->limit, &limit, err);
    if (rc)
        return rc;
    if (pp->before && (rc = cursor_decode_key(CURSOR_POSTS, pp->before, &before, err)))
        return rc;
    rc = store_list_posts(c->store, author, s->user_id, pp->before ? &before : NULL, limit + 1,
                          &list, err);
    if (rc == 0)
        rc = core__page_build(c, &post_kind, list.items, list.n, limit, out, err);
    store_post_list_cleanup(&list);
    return rc;
}

int posts_list_text(struct core *c, const struct session *s, const char *author,
                    const struct page_params *pp, char **text, size_t *len, struct chat_err *err)
{
    struct page_key before;
    int limit;

    *text = NULL;
    *len = 0;
    /* The same checks as posts_list, before the cache: a bad request is
     * refused whatever is cached. */
    if (author && !oid_valid(author))
        return chat_err_set(err, CHAT_E_VALIDATION, "author", "author must be a user id");
    int rc = validate_limit(pp->limit, &limit, err);
    if (rc)
        return rc;
    if (pp->before && (rc = cursor_decode_key(CURSOR_POSTS, pp->before, &before, err)))
        return rc;

    /* Everything the page depends on.  A valid cursor is at most 46
     * characters, so the key always fits. */
    char key[CORE_FCACHE_KEY_MAX];
    int kn = snprintf(key, sizeof key, "%s|%s|%d|%s", s->user_id, author ? author : "", limit,
                      pp->before ? pp->before : "");
    bool cacheable = kn > 0 && (size_t)kn < sizeof key;
    uint64_t version = core__feed_version(c); /* before any store read */
    if (cacheable && core__feed_cache_get(&c->priv->feed, key, (size_t)kn, version, text, len))
        return 0;
    /* First pages also live in the shared cache (feed_cache.c). */
    bool first = cacheable && !pp->before;
    int64_t shared_version = -1;
    if (first && core__feed_shared_get(c, key, &shared_version, text, len)) {
        if (core__feed_version(c) == version)
            core__feed_cache_put(&c->priv->feed, key, (size_t)kn, version, *text, *len);
        return 0;
    }

    json_t *page = NULL;
    rc = posts_list(c, s, author, pp, &page, err);
    if (rc)
        return rc;
    *text = json_dumps(page, JSON_COMPACT);
    json_decref(page);
    if (!*text)
        return oom(err);
    *len = strlen(*text);
    /* A write since `version` was read makes this page possibly stale: it
     * would never be served, so do not let it evict a current one. */
    if (cacheable && core__feed_version(c) == version)
        core__feed_cache_put(&c->priv->feed, key, (size_t)kn, version, *text, *len);
    if (first)
        core__feed_shared_put(c, key, shared_version, *text, *len);
    return 0;
}

int posts_get(struct core *c, const struct session *s, const char *id, json_t **out,
              struct chat_err *err)
{
    struct post p = {0};
    struct views_authors authors = {0};

    *out = NULL;
    if (!oid_valid(id))
        return not_found(err);
    int rc = store_get_post(c->store, id, s->user_id, &p, err);
    if (rc == 0)
        rc = core__authors_load(c, (const char(*)[OID_SIZE])&p.author_id, 1, &authors, err);
    if (rc == 0) {
        *out = views_post(&p, views_authors_find(&authors, p.author_id));
        if (!*out)
            rc = oom(err);
    }
    views_authors_cleanup(&authors);
    store_post_cleanup(&p);
    return rc;
}

/* Reads the PATCH body's fields into *text and *image (new, NULL when the
 * field is absent; *image_set tells whether "imageUrl" was there at all, as
 * null or blank removes the image). */
static int patch_fields(json_t *body, char **text, char **image, bool *image_set,
                        struct chat_err *err)
{
    if (!json_is_object(body))
        return chat_err_set(err, CHAT_E_INVALID_JSON, NULL, "body must be a JSON object");
    *image_set = json_object_get(body, "imageUrl") != NULL;
    int rc = validate_url_field(body, "imageUrl", image, err);
    if (!rc)
        rc = validate_string_field(body, "text", VALIDATE_TRIM, 0, 5000, text, err);
    return rc;
}

/* Applies the patch to `p` (the stored post): the new text and image, then
 * the create rule that a post without an image needs text. */
static int patch_apply(struct post *p, char **text, char **image, bool image_set,
                       struct chat_err *err)
{
    if (*text) {
        free(p->text);
        p->text = *text;
        *text = NULL;
    }
    if (image_set) {
        free(p->image_url);
        p->image_url = *image;
        *image = NULL;
    }
    if (!p->image_url && (!p->text || !p->text[0]))
        return chat_err_set(err, CHAT_E_VALIDATION, "text",
                            "text must be 1..5000 characters unless the post has an image");
    return 0;
}

int posts_update(struct core *c, const struct session *s, const char *id, json_t *body,
                 json_t **out, struct chat_err *err)
{
    struct post p = {0};
    char *text = NULL, *image = NULL;
    bool image_set = false;

    *out = NULL;
    if (!oid_valid(id))
        return not_found(err);
    int rc = store_get_post(c->store, id, s->user_id, &p, err);
    if (rc == 0 && strcmp(p.author_id, s->user_id) != 0)
        rc = chat_err_set(err, CHAT_E_FORBIDDEN, NULL, "only the author may edit a post");
    if (rc == 0)
        rc = patch_fields(body, &text, &image, &image_set, err);
    if (rc == 0 && (text || image_set)) {
        rc = patch_apply(&p, &text, &image, image_set, err);
        p.edited_at = clock_now_ms();
        if (rc == 0)
            rc = store_update_post(c->store, &p, err);
        if (rc == 0)
            posts_feed_changed(c);
    }
    free(text);
    free(image);
    store_post_cleanup(&p);
    return rc ? rc : posts_get(c, s, id, out, err);
}

int posts_delete(struct core *c, const struct session *s, const char *id, struct chat_err *err)
{
    struct post p = {0};
    if (!oid_valid(id))
        return not_found(err);
    int rc = store_get_post(c->store, id, s->user_id, &p, err);
    if (rc == 0 && strcmp(p.author_id, s->user_id) != 0)
        rc = chat_err_set(err, CHAT_E_FORBIDDEN, NULL, "only the author may delete a post");
    store_post_cleanup(&p);
    if (rc)
        return rc;
    rc = store_delete_post(c->store, id, err);
    if (rc == 0)
        posts_feed_changed(c);
    return rc;
}

int posts_like(struct core *c, const struct session *s, const char *id, bool like,
               json_t **out, struct chat_err *err)
{
    int64_t count = 0;
    *out = NULL;
    if (!oid_valid(id))
        return not_found(err);
    int rc = store_set_like(c->store, id, s->user_id, like, &count, err);
    if (rc)
        return rc;
    posts_feed_changed(c);
    json_t *o = json_object();
    if (!o || json_object_set_new(o, "likeCount", json_integer(count)) != 0 ||
        json_object_set_new(o, "likedByMe", json_boolean(like)) != 0) {
        json_decref(o);
        return oom(err);
    }
    *out = o;
    return 0;
}

int comments_create(struct core *c, const struct session *s, const char *post_id, json_t *body,
                    json_t **out, struct chat_err *err)
{
    char *text = NULL;
    json_t *author = NULL;

    *out = NULL;
    if (!oid_valid(post_id))
        return not_found(err);
    if (!json_is_object(body))
        return chat_err_set(err, CHAT_E_INVALID_JSON, NULL, "body must be a JSON object");
    int rc = validate_string_field(body, "text", VALIDATE_REQUIRED | VALIDATE_TRIM, 1, 2000,
                                   &text, err);
    if (rc)
        goto done;
    rc = caller_author(c, s, &author, err);
    if (rc)
        goto done;

    struct comment cm = {0};
    int64_t now = clock_now_ms();
    oid_new(cm.id, now);
    memcpy(cm.post_id, post_id, OID_SIZE);
    memcpy(cm.author_id, s->user_id, OID_SIZE);
    cm.text = text;
    cm.created_at = now;
    rc = store_create_comment(c->store, &cm, err);
    if (rc == CHAT_E_NOT_FOUND)
        rc = not_found(err);
    if (rc)
        goto done;
    posts_feed_changed(c); /* commentCount */
    *out = views_comment(&cm, author);
    if (!*out)
        rc = oom(err);

done:
    json_decref(author);
    free(text);
    return rc;
}

int comments_list(struct core *c, const struct session *s, const char *post_id,
                  const struct page_params *pp, json_t **out, struct chat_err *err)
{
    struct page_key before;
    struct comment_list list = {0};
    struct post p = {0};
    int limit;

    *out = NULL;
    if (!oid_valid(post_id))
        return not_found(err);
    int rc = validate_limit(pp->limit, &limit, err);
    if (rc)
        return rc;
    if (pp->before && (rc = cursor_decode_key(CURSOR_COMMENTS, pp->before, &before, err)))
        return rc;
    /* The comments of a post that does not exist are a 404, not an empty page. */
    rc = store_get_post(c->store, post_id, s->user_id, &p, err);
    store_post_cleanup(&p);
    if (rc)
        return rc;
    rc = store_list_comments(c->store, post_id, pp->before ? &before : NULL, limit + 1, &list,
                             err);
    if (rc == 0)
        rc = core__page_build(c, &comment_kind, list.items, list.n, limit, out, err);
    store_comment_list_cleanup(&list);
    return rc;
}
