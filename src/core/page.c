/* page.c - core__page_build: store rows -> the contract's page (page.h).
 *
 * The Authors of the whole page are collected first and loaded in one
 * batch, then each row's view borrows the ones it embeds, so a page of N
 * items costs at most one users query and each Author object is built
 * once. */
#include "page.h"

#include <stdlib.h>

static int oom(struct chat_err *err)
{
    return core__internal(err, "page: out of memory");
}

int core__page_items(struct core *c, const struct core_page_kind *k, const void *rows, size_t n,
                     json_t **items, struct chat_err *err)
{
    const char *row = rows;
    struct core_ids ids = {0};
    struct views_authors authors = {0};
    int rc = 0;

    *items = NULL;
    for (size_t i = 0; k->authors && i < n && rc == 0; i++)
        rc = k->authors(row + i * k->size, &ids);
    rc = rc ? oom(err) : core__authors_load(c, (const char(*)[OID_SIZE])ids.v, ids.n, &authors, err);
    core__ids_cleanup(&ids);
    if (rc) {
        views_authors_cleanup(&authors);
        return rc;
    }
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        if (json_array_append_new(a, k->view(row + i * k->size, &authors)) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    views_authors_cleanup(&authors);
    if (!a)
        return oom(err);
    *items = a;
    return 0;
}

int core__page_build(struct core *c, const struct core_page_kind *k, const void *rows, size_t n,
                     int limit, json_t **out, struct chat_err *err)
{
    size_t shown = n > (size_t)limit ? (size_t)limit : n;
    json_t *items;
    *out = NULL;
    int rc = core__page_items(c, k, rows, shown, &items, err);
    if (rc)
        return rc;
    char next[CURSOR_MAX];
    bool more = n > (size_t)limit;
    if (more) /* then shown == limit >= 1 */
        k->cursor((const char *)rows + (shown - 1) * k->size, next);
    *out = views_page(items, more ? next : NULL);
    return *out ? 0 : oom(err);
}
