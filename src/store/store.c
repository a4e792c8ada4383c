/* store.c - the adapter-independent parts of the store port: releasing the
 * records adapters fill, and timing every operation into /metrics. */
#include "chatli/store.h"

#include <stdlib.h>
#include <string.h>

#include "chatli/metrics.h"

void store__observe(const char *op, int64_t start_ns)
{
    metrics_store_op(op, (double)(clock_mono_ns() - start_ns) / 1e9);
}

void store_user_cleanup(struct user *u)
{
    if (!u)
        return;
    free(u->username);
    free(u->email);
    free(u->display_name);
    free(u->bio);
    free(u->avatar_url);
    free(u->pwhash);
    memset(u, 0, sizeof *u);
}

void store_post_cleanup(struct post *p)
{
    if (!p)
        return;
    free(p->text);
    free(p->image_url);
    memset(p, 0, sizeof *p);
}

void store_comment_cleanup(struct comment *c)
{
    if (!c)
        return;
    free(c->text);
    memset(c, 0, sizeof *c);
}

void store_message_cleanup(struct message *m)
{
    if (!m)
        return;
    free(m->text);
    free(m->attachment_url);
    free(m->client_id);
    memset(m, 0, sizeof *m);
}

void store_chat_cleanup(struct chat *c)
{
    if (!c)
        return;
    free(c->name);
    free(c->member_ids);
    free(c->read_seqs);
    if (c->last_message) {
        store_message_cleanup(c->last_message);
        free(c->last_message);
    }
    memset(c, 0, sizeof *c);
}

#define LIST_CLEANUP(fn, list_type, item_cleanup)                              \
    void fn(struct list_type *l)                                               \
    {                                                                          \
        if (!l)                                                                \
            return;                                                            \
        for (size_t i = 0; i < l->n; i++)                                      \
            item_cleanup(&l->items[i]);                                        \
        free(l->items);                                                        \
        l->items = NULL;                                                       \
        l->n = 0;                                                              \
    }

LIST_CLEANUP(store_user_list_cleanup, user_list, store_user_cleanup)
LIST_CLEANUP(store_post_list_cleanup, post_list, store_post_cleanup)
LIST_CLEANUP(store_comment_list_cleanup, comment_list, store_comment_cleanup)
LIST_CLEANUP(store_chat_list_cleanup, chat_list, store_chat_cleanup)
LIST_CLEANUP(store_message_list_cleanup, message_list, store_message_cleanup)

static int dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : CHAT_E_INTERNAL;
}

int store_message_copy(struct message *dst, const struct message *src)
{
    *dst = *src;
    dst->text = dst->attachment_url = dst->client_id = NULL;
    if (dup_opt(&dst->text, src->text) || dup_opt(&dst->attachment_url, src->attachment_url) ||
        dup_opt(&dst->client_id, src->client_id)) {
        store_message_cleanup(dst);
        return CHAT_E_INTERNAL;
    }
    return 0;
}
