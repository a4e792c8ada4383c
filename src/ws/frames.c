/* frames.c - the gateway's frame vocabulary: parsing and validating what
 * clients send, building what the server sends, and the refcounted buffer a
 * serialized frame lives in while it waits on connection queues.
 *
 * Pure functions (jansson only), so the rules are unit-tested without a
 * socket.  The split of errors follows CONTRACT 6: a frame that is not one
 * JSON object with a string "type", or has an unknown type, is
 * `bad_request`; a known frame missing a field the gateway itself needs
 * (chatId, the sync map) is `validation_failed` with that field, like the
 * REST route would answer for a bad path or query parameter.  Fields that
 * core validates (text, attachmentUrl, clientId, messageId) are passed
 * through untouched so REST and WS give the same answers. */
#include "ws_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- buffers ---------------------------------------------------------- */

struct ws_buf *ws__buf_new(const char *data, size_t len, unsigned flags)
{
    if (len > SIZE_MAX - sizeof(struct ws_buf) - LWS_PRE - 1)
        return NULL;
    struct ws_buf *b = malloc(sizeof *b + LWS_PRE + len + 1);
    if (!b)
        return NULL;
    b->refs = 1;
    b->flags = flags;
    b->alt = NULL;
    b->len = len;
    if (len && data)
        memcpy(b->mem + LWS_PRE, data, len);
    b->mem[LWS_PRE + len] = '\0';
    return b;
}

struct ws_buf *ws__buf_from_json(json_t *frame, unsigned flags)
{
    if (!frame)
        return NULL;
    /* json_dumps grows a buffer from 16 bytes and then copies the result
     * once more; almost every frame fits here, so it is serialized once
     * and copied once.  A bigger one (a sync page's long message) is
     * serialized again straight into its buffer. */
    char stack[4096];
    size_t n = json_dumpb(frame, stack, sizeof stack, JSON_COMPACT);
    if (n == 0)
        return NULL; /* an empty dump is no frame (json_dumpb's error value) */
    if (n <= sizeof stack)
        return ws__buf_new(stack, n, flags);
    struct ws_buf *b = ws__buf_new(NULL, n, flags);
    if (b && json_dumpb(frame, (char *)ws_buf_payload(b), n, JSON_COMPACT) != n) {
        ws__buf_unref(b);
        return NULL;
    }
    return b;
}

void ws__buf_ref(struct ws_buf *b)
{
    b->refs++;
}

void ws__buf_unref(struct ws_buf *b)
{
    if (b && --b->refs == 0) {
        ws__buf_unref(b->alt);
        free(b);
    }
}

size_t ws__frame_header(unsigned char hdr[WS_FRAME_HDR_MAX], size_t len)
{
    hdr[0] = 0x81; /* FIN, opcode 1 (text) */
    if (len < 126) {
        hdr[1] = (unsigned char)len; /* server frames are not masked */
        return 2;
    }
    if (len <= 0xffff) {
        hdr[1] = 126;
        hdr[2] = (unsigned char)(len >> 8);
        hdr[3] = (unsigned char)len;
        return 4;
    }
    hdr[1] = 127;
    uint64_t v = len;
    for (int i = 0; i < 8; i++)
        hdr[2 + i] = (unsigned char)(v >> (56 - 8 * i));
    return 10;
}

/* True when `frame` starts with the bytes of `prefix` (a string literal). */
#define STARTS(frame, len, prefix) \
    ((len) >= sizeof(prefix) - 1 && memcmp((frame), (prefix), sizeof(prefix) - 1) == 0)

bool ws__frame_is_ephemeral(const char *frame, size_t len)
{
    return STARTS(frame, len, "{\"type\":\"typing\"") ||
           STARTS(frame, len, "{\"type\":\"presence\"");
}

bool ws__frame_is_chat_new(const char *frame, size_t len)
{
    return STARTS(frame, len, "{\"type\":\"chat.new\"");
}

/* ---- RFC 6455 checks ---------------------------------------------------- */

/* The length of the UTF-8 sequence starting with lead byte `c` when `s`
 * holds a well-formed one (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF), else 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t len;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

bool ws__utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t len = utf8_seq(s + i, n - i);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}

int ws__close_check(const unsigned char *payload, size_t len)
{
    if (len == 0)
        return 0;
    if (len == 1)
        return WS_CLOSE_PROTOCOL;
    unsigned code = (unsigned)payload[0] << 8 | payload[1];
    bool valid = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
                 (code >= 3000 && code <= 4999);
    if (!valid)
        return WS_CLOSE_PROTOCOL;
    if (!ws__utf8_valid(payload + 2, len - 2))
        return WS_CLOSE_BAD_DATA;
    return 0;
}

/* ---- client frames ---------------------------------------------------- */

static const struct {
    const char *name;
    int type;
} types[] = {
    {"auth", WS_F_AUTH},     {"message.send", WS_F_SEND}, {"typing", WS_F_TYPING},
    {"read", WS_F_READ},     {"ping", WS_F_PING},         {"sync", WS_F_SYNC},
};

static int need_chat_id(struct ws_frame *f, struct chat_err *err)
{
    f->chat_id = json_string_value(json_object_get(f->root, "chatId"));
    if (!f->chat_id)
        return chat_err_set(err, CHAT_E_VALIDATION, "chatId", "chatId must be a string");
    return 0;
}

static int parse_sync(struct ws_frame *f, struct chat_err *err)
{
    json_t *chats = json_object_get(f->root, "chats");
    if (!json_is_object(chats))
        return chat_err_set(err, CHAT_E_VALIDATION, "chats",
                            "chats must be an object of chatId -> lastSeq");
    size_t n = json_object_size(chats);
    if (n > WS_SYNC_MAX_CHATS)
        return chat_err_set(err, CHAT_E_VALIDATION, "chats", "at most %d chats per sync",
                            WS_SYNC_MAX_CHATS);
    const char *key;
    json_t *v;
    json_object_foreach(chats, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return chat_err_set(err, CHAT_E_VALIDATION, "chats",
                                "each lastSeq must be a non-negative integer");
    }
    if (n == 0)
        return 0;
    f->sync = calloc(n, sizeof *f->sync);
    if (!f->sync)
        return chat_err_set(err, CHAT_E_INTERNAL, NULL, NULL);
    json_object_foreach(chats, key, v) {
        /* A key that is not an id cannot name a chat the caller belongs to,
         * and chats the caller does not belong to are ignored (CONTRACT 6). */
        if (!oid_valid(key))
            continue;
        struct ws_sync_entry *e = &f->sync[f->n_sync++];
        memcpy(e->chat_id, key, OID_SIZE);
        e->after_seq = (int64_t)json_integer_value(v);
    }
    return 0;
}

int ws__frame_parse(const char *data, size_t len, struct ws_frame *out, struct chat_err *err)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    /* JSON_REJECT_DUPLICATES: a frame with two "type"s or two "chatId"s is
     * ambiguous; refuse it rather than pick one. */
    out->root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(out->root))
        return chat_err_set(err, CHAT_E_BAD_REQUEST, NULL,
                            "a frame must be one JSON object with a \"type\"");
    out->client_id = json_string_value(json_object_get(out->root, "clientId"));
    const char *type = json_string_value(json_object_get(out->root, "type"));
    if (!type)
        return chat_err_set(err, CHAT_E_BAD_REQUEST, NULL,
                            "a frame must be one JSON object with a \"type\"");
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (strcmp(type, types[i].name) == 0) {
            out->type = types[i].type;
            break;
        }
    }

    switch (out->type) {
    case WS_F_AUTH:
        out->token = json_string_value(json_object_get(out->root, "token"));
        if (!out->token)
            return chat_err_set(err, CHAT_E_VALIDATION, "token", "token must be a string");
        return 0;
    case WS_F_SEND: {
        int rc = need_chat_id(out, err);
        if (rc < 0)
            return rc;
        /* Core reads only its own fields (text, attachmentUrl, clientId),
         * like the REST body it also gets whole: no copy of them. */
        out->body = json_incref(out->root);
        return 0;
    }
    case WS_F_TYPING:
        return need_chat_id(out, err);
    case WS_F_READ: {
        int rc = need_chat_id(out, err);
        if (rc < 0)
            return rc;
        out->body = json_incref(out->root); /* core reads messageId */
        return 0;
    }
    case WS_F_PING:
        return 0;
    case WS_F_SYNC:
        return parse_sync(out, err);
    default:
        return chat_err_set(err, CHAT_E_BAD_REQUEST, NULL, "unknown frame type");
    }
}

void ws__frame_cleanup(struct ws_frame *f)
{
    json_decref(f->body);
    json_decref(f->root);
    free(f->sync);
    memset(f, 0, sizeof *f);
}

json_t *ws__frame_error(int code, const char *msg, const char *field, const char *client_id)
{
    json_t *j = json_pack("{s:s, s:s, s:s}", "type", "error", "code", chat_err_wire(code),
                          "message", (msg && *msg) ? msg : chat_err_default_msg(code));
    if (!j)
        return NULL;
    if ((code == CHAT_E_VALIDATION && field &&
         json_object_set_new(j, "field", json_string(field)) < 0) ||
        (client_id && json_object_set_new(j, "clientId", json_string(client_id)) < 0)) {
        json_decref(j);
        return NULL;
    }
    return j;
}
