/* views.h - the contract's JSON objects (CONTRACT.md section 2) from store
 * records.
 *
 * Embedded authors (post author, comment author, message sender, chat
 * members) are looked up in a `struct views_authors`, which
 * core__authors_load (core/author_cache.c) fills from the author cache plus
 * at most ONE store_get_users call per page, so a page costs at most one
 * users query however many items it has.  Each Author object is built once
 * and shared (jansson refcounts) by every item that embeds it.
 *
 * Every builder returns a new reference, or NULL when out of memory. */
#ifndef CHATLI_CORE_VIEWS_H
#define CHATLI_CORE_VIEWS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "chatli/store.h"

struct views_author {
    char id[OID_SIZE];
    json_t *json; /* owned Author object */
};

/* Sorted by id for bsearch. */
struct views_authors {
    struct views_author *items;
    size_t n;
};

/* Releases every Author of `a` and empties it.  NULL is ignored. */
void views_authors_cleanup(struct views_authors *a);
/* Borrowed Author for `id`, or NULL when not loaded. */
json_t *views_authors_find(const struct views_authors *a, const char *id);

/* User (public), plus "email" when `with_email` (the owner's own view). */
json_t *views_user(const struct user *u, bool with_email);
/* Author: {"id","username","displayName","avatarUrl"}. */
json_t *views_author(const struct user *u);

/* The item views take their embedded author as a borrowed reference (NULL
 * embeds null). */
json_t *views_post(const struct post *p, json_t *author);
json_t *views_comment(const struct comment *cm, json_t *author);
json_t *views_message(const struct message *m, json_t *sender);
/* Exactly json_dumps(views_message(m, sender), JSON_COMPACT), built without
 * the object: the fixed keys and tokens (ids, seq, timestamps, booleans)
 * are written around jansson's encoding of the sender and of each string
 * field, which cost most of a message's serialization as a whole object
 * (the store's writer thread runs it for every message.send; issue 9).
 * New (free()), with its length in *len, or NULL when out of memory or when
 * a string is not valid UTF-8 (as views_message would fail). */
char *views_message_text(const struct message *m, const json_t *sender, size_t *len);
/* Chat: members and the last message's sender come from `authors`. */
json_t *views_chat(const struct chat *ch, const struct views_authors *authors);

/* {"items": items, "nextCursor": next or null}.  Steals `items` (even on
 * failure); `next` is copied. */
json_t *views_page(json_t *items, const char *next);

/* {"type": type, <key>: value}: an event frame.  Borrows `value`. */
json_t *views_event(const char *type, const char *key, json_t *value);

#endif
