/* views.c - building the contract's JSON objects.
 *
 * Pure builders: no store, no cache, no other file of core, so every
 * service and cache can call them without a circle (the Authors a page
 * embeds are loaded by core/author_cache.c).
 *
 * Objects are assembled with json_object_set_new, which always consumes its
 * value (even when the object itself failed to allocate), so a failed
 * allocation anywhere leaks nothing: each builder tracks one `ok` flag and
 * drops the half-built object at the end.  Optional fields
 * are explicit nulls (imageUrl, avatarUrl, clientId, ...) because the
 * contract lists them as `"x"|null`, never as absent. */
#include "views.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatli/clock.h"

/* json_string or null for NULL. */
static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* json_string, with "" for NULL (fields the contract never makes null). */
static json_t *str_or_empty(const char *s)
{
    return json_string(s ? s : "");
}

static json_t *iso(int64_t ms)
{
    char buf[CLOCK_ISO_LEN];
    return json_string(clock_format_iso(ms, buf));
}

static json_t *borrowed_or_null(json_t *v)
{
    return v ? json_incref(v) : json_null();
}

/* Sets obj[key] = v (consumed); clears *ok when anything failed, also when
 * `obj` itself is NULL (json_object_set_new then just drops `v`), so a
 * builder needs no check of its own json_object(). */
static void put(json_t *obj, const char *key, json_t *v, bool *ok)
{
    if (!v || json_object_set_new(obj, key, v) != 0)
        *ok = false;
}

static json_t *finish(json_t *obj, bool ok)
{
    if (!ok) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* The fields a User and an Author both start with. */
static void put_names(json_t *o, const struct user *u, bool *ok)
{
    put(o, "id", json_string(u->id), ok);
    put(o, "username", str_or_empty(u->username), ok);
    put(o, "displayName", str_or_empty(u->display_name), ok);
}

json_t *views_user(const struct user *u, bool with_email)
{
    json_t *o = json_object();
    bool ok = o != NULL;
    put_names(o, u, &ok);
    put(o, "bio", str_or_empty(u->bio), &ok);
    put(o, "avatarUrl", str_or_null(u->avatar_url), &ok);
    put(o, "createdAt", iso(u->created_at), &ok);
    if (with_email)
        put(o, "email", str_or_empty(u->email), &ok);
    return finish(o, ok);
}

json_t *views_author(const struct user *u)
{
    json_t *o = json_object();
    bool ok = o != NULL;
    put_names(o, u, &ok);
    put(o, "avatarUrl", str_or_null(u->avatar_url), &ok);
    return finish(o, ok);
}

json_t *views_post(const struct post *p, json_t *author)
{
    json_t *o = json_object();
    bool ok = o != NULL;
    put(o, "id", json_string(p->id), &ok);
    put(o, "author", borrowed_or_null(author), &ok);
    put(o, "text", str_or_empty(p->text), &ok);
    put(o, "imageUrl", str_or_null(p->image_url), &ok);
    put(o, "likeCount", json_integer(p->like_count), &ok);
    put(o, "commentCount", json_integer(p->comment_count), &ok);
    put(o, "likedByMe", json_boolean(p->liked_by_me), &ok);
    put(o, "createdAt", iso(p->created_at), &ok);
    put(o, "editedAt", p->edited_at ? iso(p->edited_at) : json_null(), &ok);
    return finish(o, ok);
}

json_t *views_comment(const struct comment *cm, json_t *author)
{
    json_t *o = json_object();
    bool ok = o != NULL;
    put(o, "id", json_string(cm->id), &ok);
    put(o, "postId", json_string(cm->post_id), &ok);
    put(o, "author", borrowed_or_null(author), &ok);
    put(o, "text", str_or_empty(cm->text), &ok);
    put(o, "createdAt", iso(cm->created_at), &ok);
    return finish(o, ok);
}

json_t *views_message(const struct message *m, json_t *sender)
{
    json_t *o = json_object();
    bool ok = o != NULL;
    put(o, "id", json_string(m->id), &ok);
    put(o, "chatId", json_string(m->chat_id), &ok);
    put(o, "seq", json_integer(m->seq), &ok);
    put(o, "sender", borrowed_or_null(sender), &ok);
    put(o, "text", str_or_empty(m->text), &ok);
    put(o, "attachmentUrl", str_or_null(m->attachment_url), &ok);
    put(o, "clientId", str_or_null(m->client_id), &ok);
    put(o, "createdAt", iso(m->created_at), &ok);
    put(o, "editedAt", m->edited_at ? iso(m->edited_at) : json_null(), &ok);
    put(o, "deleted", json_boolean(m->deleted), &ok);
    return finish(o, ok);
}

/* ---- a Message as text, without the object ------------------------------------ */

/* A growing output buffer; `ok` goes false on any failure. */
struct tbuf {
    char *p;
    size_t n, cap;
    bool ok;
};

static bool tb_room(struct tbuf *b, size_t more)
{
    if (!b->ok)
        return false;
    if (b->n + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap * 2 > b->n + more + 1 ? b->cap * 2 : b->n + more + 1;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->ok = false;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static void tb_put(struct tbuf *b, const char *s, size_t n)
{
    if (tb_room(b, n)) {
        memcpy(b->p + b->n, s, n);
        b->n += n;
    }
}

#define TB_LIT(b, s) tb_put((b), (s), sizeof(s) - 1)

/* Appends jansson's compact serialization of `v` (borrowed): the encoding
 * of every value that is not a fixed-format token is jansson's own. */
static void tb_json(struct tbuf *b, const json_t *v)
{
    const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
    if (!v || !tb_room(b, 0)) {
        b->ok = false;
        return;
    }
    size_t need = json_dumpb(v, b->p + b->n, b->cap - b->n - 1, flags);
    if (need == 0) {
        b->ok = false;
        return;
    }
    if (need > b->cap - b->n - 1) { /* did not fit: grow and write again */
        if (!tb_room(b, need))
            return;
        if (json_dumpb(v, b->p + b->n, need, flags) != need) {
            b->ok = false;
            return;
        }
    }
    b->n += need;
}

/* A string field's value: jansson's encoding of `s`, or null / "". */
static void tb_str(struct tbuf *b, const char *s, bool null_for_null)
{
    if (!s && null_for_null) {
        TB_LIT(b, "null");
        return;
    }
    json_t *v = json_string(s ? s : "");
    tb_json(b, v);
    json_decref(v);
}

/* An id or a timestamp: characters that never need escaping ([0-9a-f],
 * clock_format_iso's digits and -T:.Z), quoted. */
static void tb_token(struct tbuf *b, const char *s)
{
    TB_LIT(b, "\"");
    tb_put(b, s, strlen(s));
    TB_LIT(b, "\"");
}

static void tb_iso(struct tbuf *b, int64_t ms)
{
    char buf[CLOCK_ISO_LEN];
    tb_token(b, clock_format_iso(ms, buf));
}

char *views_message_text(const struct message *m, const json_t *sender, size_t *len)
{
    size_t guess = 256 + (m->text ? strlen(m->text) : 0) +
                   (m->attachment_url ? strlen(m->attachment_url) : 0) +
                   (m->client_id ? strlen(m->client_id) : 0);
    struct tbuf b = {.p = malloc(guess + guess / 2), .cap = guess + guess / 2, .ok = true};
    b.ok = b.p != NULL;
    char num[24];
    TB_LIT(&b, "{\"id\":");
    tb_token(&b, m->id);
    TB_LIT(&b, ",\"chatId\":");
    tb_token(&b, m->chat_id);
    TB_LIT(&b, ",\"seq\":");
    tb_put(&b, num, (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, (json_int_t)m->seq));
    TB_LIT(&b, ",\"sender\":");
    if (sender)
        tb_json(&b, sender);
    else
        TB_LIT(&b, "null");
    TB_LIT(&b, ",\"text\":");
    tb_str(&b, m->text, false);
    TB_LIT(&b, ",\"attachmentUrl\":");
    tb_str(&b, m->attachment_url, true);
    TB_LIT(&b, ",\"clientId\":");
    tb_str(&b, m->client_id, true);
    TB_LIT(&b, ",\"createdAt\":");
    tb_iso(&b, m->created_at);
    TB_LIT(&b, ",\"editedAt\":");
    if (m->edited_at)
        tb_iso(&b, m->edited_at);
    else
        TB_LIT(&b, "null");
    if (m->deleted)
        TB_LIT(&b, ",\"deleted\":true}");
    else
        TB_LIT(&b, ",\"deleted\":false}");
    if (!b.ok) {
        free(b.p);
        return NULL;
    }
    b.p[b.n] = '\0';
    *len = b.n;
    return b.p;
}

json_t *views_chat(const struct chat *ch, const struct views_authors *authors)
{
    json_t *o = json_object();
    bool ok = o != NULL;
    put(o, "id", json_string(ch->id), &ok);
    put(o, "type", json_string(ch->type == CHAT_GROUP ? "group" : "direct"), &ok);
    put(o, "name", str_or_null(ch->name), &ok);
    json_t *members = json_array();
    if (members) {
        for (size_t i = 0; i < ch->n_members; i++) {
            json_t *a = views_authors_find(authors, ch->member_ids[i]);
            /* A member whose user row is gone cannot be shown as an Author;
             * leaving it out beats embedding a null clients would trip on. */
            if (a && json_array_append(members, a) != 0)
                ok = false;
        }
    }
    put(o, "members", members, &ok);
    if (ch->last_message) {
        json_t *sender = views_authors_find(authors, ch->last_message->sender_id);
        put(o, "lastMessage", views_message(ch->last_message, sender), &ok);
    } else {
        put(o, "lastMessage", json_null(), &ok);
    }
    put(o, "unreadCount", json_integer(ch->unread_count), &ok);
    put(o, "lastSeq", json_integer(ch->last_seq), &ok);
    put(o, "createdAt", iso(ch->created_at), &ok);
    put(o, "updatedAt", iso(ch->updated_at), &ok);
    /* readMarks: every member's read mark (0 before its first read), as the
     * store read it with the members. */
    json_t *marks = json_object();
    for (size_t i = 0; marks && i < ch->n_members; i++)
        if (json_object_set_new(marks, ch->member_ids[i],
                                json_integer(ch->read_seqs ? ch->read_seqs[i] : 0)) != 0)
            ok = false;
    put(o, "readMarks", marks, &ok);
    return finish(o, ok);
}

json_t *views_page(json_t *items, const char *next)
{
    json_t *o = json_object();
    bool ok = o != NULL;
    put(o, "items", items, &ok); /* consumed even when `o` is NULL */
    put(o, "nextCursor", str_or_null(next), &ok);
    return finish(o, ok);
}

json_t *views_event(const char *type, const char *key, json_t *value)
{
    json_t *o = json_object();
    bool ok = o != NULL;
    put(o, "type", json_string(type), &ok);
    put(o, key, borrowed_or_null(value), &ok);
    return finish(o, ok);
}

/* ---- author batches ------------------------------------------------------ */

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, OID_LEN);
}

void views_authors_cleanup(struct views_authors *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        json_decref(a->items[i].json);
    free(a->items);
    a->items = NULL;
    a->n = 0;
}

json_t *views_authors_find(const struct views_authors *a, const char *id)
{
    if (!a || a->n == 0 || !id)
        return NULL;
    struct views_author key;
    memcpy(key.id, id, OID_LEN);
    const struct views_author *hit = bsearch(&key, a->items, a->n, sizeof *a->items, cmp_id);
    return hit ? hit->json : NULL;
}
