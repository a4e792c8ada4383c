/* users.c - profiles and user search.
 *
 * PATCH /api/users/me is read-modify-write: fetch the row, apply the fields
 * present, write the three mutable fields back.  Two concurrent PATCHes of
 * one user can lose one of the updates; that is the usual last-writer-wins
 * for a profile edited by its single owner, and it keeps the store port to
 * one simple update_user.
 *
 * Search matches a prefix of the lower-cased username.  Usernames only hold
 * [A-Za-z0-9_], so a query with any other character cannot match and is
 * answered with an empty page without asking the store (which also keeps
 * LIKE/regex metacharacters away from the adapters).
 *
 * Contacts (users sharing a chat with the caller) feed the gateway's
 * presence: whom to tell that the caller came online or went offline, and
 * whose presence the ready frame lists.  The store answers them in one
 * query; USERS_CONTACTS_MAX bounds that query and the fan-out it feeds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "cursor.h"
#include "page.h"
#include "validate.h"
#include "views.h"
#include "chatli/store.h"
#include "chatli/log.h"

static int reply_user(const struct user *u, bool with_email, json_t **out, struct chat_err *err)
{
    *out = views_user(u, with_email);
    return *out ? 0 : core__internal(err, "users: out of memory building a user");
}

int users_me(struct core *c, const struct session *s, json_t **out, struct chat_err *err)
{
    struct user u = {0};
    *out = NULL;
    int rc = store_get_user(c->store, s->user_id, &u, err);
    if (rc == 0)
        rc = reply_user(&u, true, out, err);
    store_user_cleanup(&u);
    return rc;
}

int users_update_me(struct core *c, const struct session *s, json_t *body, json_t **out,
                    struct chat_err *err)
{
    char *display = NULL, *bio = NULL, *avatar = NULL;
    struct user u = {0};
    int rc;

    *out = NULL;
    if (!json_is_object(body))
        return chat_err_set(err, CHAT_E_INVALID_JSON, NULL, "body must be a JSON object");

    json_t *jd = json_object_get(body, "displayName");
    json_t *jb = json_object_get(body, "bio");
    json_t *ja = json_object_get(body, "avatarUrl");

    /* displayName can be changed, never removed: null is an error. */
    if (jd) {
        rc = validate_string_field(body, "displayName", VALIDATE_REQUIRED | VALIDATE_TRIM, 1, 64,
                                   &display, err);
        if (rc)
            goto done;
    }
    /* bio null clears it (bio reads "" when unset). */
    if (jb) {
        rc = validate_string_field(body, "bio", VALIDATE_TRIM, 0, 500, &bio, err);
        if (rc)
            goto done;
        if (!bio && !(bio = strdup(""))) {
            rc = core__internal(err, "users: out of memory");
            goto done;
        }
    }
    if (ja) {
        rc = validate_url_field(body, "avatarUrl", &avatar, err);
        if (rc)
            goto done;
    }

    rc = store_get_user(c->store, s->user_id, &u, err);
    if (rc)
        goto done;
    if (jd) {
        free(u.display_name);
        u.display_name = display;
        display = NULL;
    }
    if (jb) {
        free(u.bio);
        u.bio = bio;
        bio = NULL;
    }
    if (ja) {
        free(u.avatar_url);
        u.avatar_url = avatar; /* NULL clears it */
        avatar = NULL;
    }
    if (jd || jb || ja) {
        /* Forget the cached Author on both sides of the write: a read that
         * fetched the old row before it must not cache it after. */
        core__author_cache_forget(&c->priv->authors, u.id);
        rc = store_update_user(c->store, &u, err);
        core__author_changed(c, u.id); /* here and on other instances */
        if (rc)
            goto done;
        posts_feed_changed(c); /* feed pages embed the Author */
    }
    rc = reply_user(&u, true, out, err);

done:
    free(display);
    free(bio);
    free(avatar);
    store_user_cleanup(&u);
    return rc;
}

int users_get(struct core *c, const struct session *s, const char *id, json_t **out,
              struct chat_err *err)
{
    struct user u = {0};
    *out = NULL;
    if (!oid_valid(id))
        return chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such user");
    int rc = store_get_user(c->store, id, &u, err);
    if (rc == 0 && CORE_USER_DELETED(&u)) /* a deleted account has no profile */
        rc = chat_err_set(err, CHAT_E_NOT_FOUND, NULL, "no such user");
    if (rc == 0)
        rc = reply_user(&u, false, out, err); /* public view, even of oneself */
    store_user_cleanup(&u);
    return rc;
}

/* A search page (page.h): plain Users, no Authors to load, resuming after
 * the last lower-cased username. */
static json_t *user_view(const void *row, const struct views_authors *a)
{
    (void)a;
    return views_user(row, false);
}

static void user_cursor(const void *row, char next[CURSOR_MAX])
{
    char last[33];
    snprintf(last, sizeof last, "%s", ((const struct user *)row)->username);
    validate_ascii_lower(last);
    cursor_encode_name(last, next);
}

static const struct core_page_kind user_kind = {
    .size = sizeof(struct user),
    .view = user_view,
    .cursor = user_cursor,
};

/* True when `q` can match a username ([A-Za-z0-9_] only). */
static bool searchable(const char *q, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!((q[i] >= 'a' && q[i] <= 'z') || (q[i] >= 'A' && q[i] <= 'Z') ||
              (q[i] >= '0' && q[i] <= '9') || q[i] == '_'))
            return false;
    return true;
}

int users_search(struct core *c, const struct session *s, const char *q,
                 const struct page_params *pp, json_t **out, struct chat_err *err)
{
    char prefix[33];
    char after[33];
    struct user_list list = {0};
    int limit, rc;

    *out = NULL;
    size_t qlen = q ? strlen(q) : 0;
    size_t qcp = q ? validate_cp_len(q, qlen) : 0;
    if (qcp < 1 || qcp > 32)
        return chat_err_set(err, CHAT_E_VALIDATION, "q", "q must be 1 to 32 characters long");
    rc = validate_limit(pp->limit, &limit, err);
    if (rc)
        return rc;
    if (pp->before) {
        rc = cursor_decode_name(pp->before, after, err);
        if (rc)
            return rc;
    }
    if (!searchable(q, qlen)) /* an empty page, without asking the store */
        return core__page_build(c, &user_kind, NULL, 0, limit, out, err);
    memcpy(prefix, q, qlen + 1);
    validate_ascii_lower(prefix);

    rc = store_search_users(c->store, prefix, pp->before ? after : NULL, limit + 1, &list, err);
    if (rc == 0)
        rc = core__page_build(c, &user_kind, list.items, list.n, limit, out, err);
    store_user_list_cleanup(&list);
    return rc;
}

int users_contacts(struct core *c, const struct session *s, char (**ids)[OID_SIZE], size_t *n,
                   struct chat_err *err)
{
    bool truncated = false;
    int rc = store_list_contacts(c->store, s->user_id, USERS_CONTACTS_MAX, ids, n, &truncated,
                                 err);
    if (rc == 0 && truncated)
        log_warn("users: a user has more than %d contacts; presence covers %d of them",
                 USERS_CONTACTS_MAX, USERS_CONTACTS_MAX);
    return rc;
}
