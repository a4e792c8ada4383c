/* page.h - the listing pipeline every paged GET shares.
 *
 * Posts, comments, chats, messages and user search all turn a store list
 * into the contract's page the same way: collect the ids of the Authors
 * the rows embed, load them in one batch (core__authors_load), build one
 * view per row, make the cursor that resumes after the last row shown,
 * and wrap it all as {"items", "nextCursor"}.  Lists are read with limit+1
 * rows: the extra row only tells that another page exists, so nextCursor
 * is never a cursor to an empty page.  A `struct core_page_kind` says what
 * differs per resource; core__page_build does the rest. */
#ifndef CHATLI_CORE_PAGE_H
#define CHATLI_CORE_PAGE_H

#include <jansson.h>
#include <stddef.h>

#include "core_internal.h"
#include "cursor.h"
#include "views.h"

/* How to read one kind of row.  Rows are an array of `size`-byte records
 * (a store list's items), all borrowed for the call. */
struct core_page_kind {
    size_t size;
    /* Pushes the ids of the Authors `row` embeds; NULL when rows embed
     * none.  0 or CHAT_E_INTERNAL. */
    int (*authors)(const void *row, struct core_ids *ids);
    /* The view of `row` (new; NULL when out of memory), its Authors found
     * in `a`. */
    json_t *(*view)(const void *row, const struct views_authors *a);
    /* Writes the cursor that resumes after `row`, the last row shown. */
    void (*cursor)(const void *row, char next[CURSOR_MAX]);
};

/* The views of `rows` (all `n` of them) as a new array in *items, with
 * their Authors loaded.  Store errors pass through; CHAT_E_INTERNAL when
 * out of memory.  On failure *items is NULL. */
int core__page_items(struct core *c, const struct core_page_kind *k, const void *rows, size_t n,
                     json_t **items, struct chat_err *err);

/* The page (new, in *out) of `rows`, `n` of them read with `limit`+1: at
 * most `limit` items, and nextCursor after the last of them when a row is
 * left over, else null.  Errors as core__page_items; on failure *out is
 * NULL. */
int core__page_build(struct core *c, const struct core_page_kind *k, const void *rows, size_t n,
                     int limit, json_t **out, struct chat_err *err);

#endif
