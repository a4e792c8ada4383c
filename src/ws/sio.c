/* sio.c - Engine.IO v4 / Socket.IO v5 packets: parsing what a client
 * sends, building what the server sends (see sio.h).  Pure: jansson and
 * frames.c's buffers only. */
#include "sio.h"

#include <stdio.h>
#include <string.h>

/* ---- parsing -------------------------------------------------------------- */

static int bad(const char **why, const char *msg)
{
    if (why)
        *why = msg;
    return SIO_E_PACKET;
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* The Socket.IO packet in an Engine.IO message (`s`, `n` bytes, after the
 * Engine.IO type digit). */
static int parse_sio(const char *s, size_t n, struct sio_packet *p, const char **why)
{
    if (n == 0)
        return bad(why, "empty Socket.IO packet");
    char t = s[0];
    size_t i = 1;
    bool binary = false;
    switch (t) {
    case '0': p->kind = SIO_K_CONNECT; break;
    case '1': p->kind = SIO_K_DISCONNECT; break;
    case '2': p->kind = SIO_K_EVENT; break;
    case '3': p->kind = SIO_K_ACK; break;
    case '5': p->kind = SIO_K_EVENT; binary = true; break;
    case '6': p->kind = SIO_K_ACK; binary = true; break;
    default: return bad(why, "unknown Socket.IO packet type");
    }
    if (binary) {
        unsigned a = 0;
        size_t start = i;
        while (i < n && is_digit(s[i]) && i - start < 3)
            a = a * 10 + (unsigned)(s[i++] - '0');
        if (i == start || i >= n || s[i] != '-' || a > SIO_ATTACH_MAX)
            return bad(why, "malformed attachment count");
        i++;
        p->attachments = a;
    }
    if (i < n && s[i] == '/') {
        size_t start = i;
        while (i < n && s[i] != ',')
            i++;
        p->nsp = s + start;
        p->nsp_len = i - start;
        if (p->nsp_len > SIO_NSP_MAX)
            return bad(why, "namespace too long");
        if (i < n)
            i++; /* the ',' */
    }
    if (i < n && is_digit(s[i])) {
        int64_t id = 0;
        while (i < n && is_digit(s[i])) {
            id = id * 10 + (s[i++] - '0');
            if (id > SIO_ACK_MAX)
                return bad(why, "ack id too large");
        }
        p->ack_id = id;
    }
    bool other_nsp = !(p->nsp_len == 1 && p->nsp[0] == '/');
    if (binary) {
        if (why)
            *why = "binary attachments are not supported";
        return SIO_E_BINARY;
    }
    if (i < n) {
        json_error_t jerr;
        p->data = json_loadb(s + i, n - i, JSON_DECODE_ANY, &jerr);
        if (!p->data)
            return bad(why, "the packet's data is not JSON");
    }
    switch (p->kind) {
    case SIO_K_CONNECT:
        if (p->ack_id >= 0 || (p->data && !json_is_object(p->data)))
            return bad(why, "a CONNECT's data must be an object");
        break;
    case SIO_K_DISCONNECT:
        if (p->ack_id >= 0 || p->data)
            return bad(why, "a DISCONNECT has no data");
        break;
    case SIO_K_EVENT: {
        size_t k = json_array_size(p->data);
        if (k == 0 || !json_is_string(json_array_get(p->data, 0)))
            return bad(why, "an EVENT's data must be an array starting with the event name");
        p->event = json_string_value(json_array_get(p->data, 0));
        p->arg = k > 1 ? json_array_get(p->data, 1) : NULL;
        break;
    }
    case SIO_K_ACK:
        if (p->ack_id < 0 || !json_is_array(p->data))
            return bad(why, "an ACK needs an id and an array");
        break;
    default:
        break;
    }
    if (other_nsp) {
        if (why)
            *why = "Invalid namespace";
        return SIO_E_NAMESPACE;
    }
    return 0;
}

int sio_parse(const char *s, size_t len, struct sio_packet *p, const char **why)
{
    memset(p, 0, sizeof *p);
    p->ack_id = -1;
    p->nsp = "/";
    p->nsp_len = 1;
    if (why)
        *why = NULL;
    if (len == 0)
        return bad(why, "empty Engine.IO packet");
    const char *d = s + 1;
    size_t n = len - 1;
    switch (s[0]) {
    case '1': p->kind = SIO_K_CLOSE; return 0;
    case '5': p->kind = SIO_K_UPGRADE; return 0;
    case '6': p->kind = SIO_K_NOOP; return 0;
    case '2':
    case '3':
        p->kind = s[0] == '2' ? SIO_K_PING : SIO_K_PONG;
        if (n == 5 && memcmp(d, "probe", 5) == 0)
            p->probe = true;
        else if (n != 0)
            return bad(why, "unexpected ping/pong payload");
        return 0;
    case '4':
        return parse_sio(d, n, p, why);
    default:
        return bad(why, "unknown Engine.IO packet type");
    }
}

void sio_packet_cleanup(struct sio_packet *p)
{
    json_decref(p->data);
    p->data = NULL;
    p->event = NULL;
    p->arg = NULL;
}

json_t *sio_event_frame(const struct sio_packet *p, const char **why)
{
    json_t *f;
    if (!p->arg) {
        f = json_object();
    } else if (json_is_object(p->arg)) {
        f = json_copy(p->arg);
    } else {
        if (why)
            *why = "the event's argument must be an object";
        return NULL;
    }
    if (f && json_object_set_new(f, "type", json_string(p->event)) != 0) {
        json_decref(f);
        f = NULL;
    }
    return f;
}

const char *sio_connect_token(const struct sio_packet *p)
{
    return json_string_value(json_object_get(p->data, "token"));
}

/* ---- building -------------------------------------------------------------- */

/* `prefix` followed by `v` (borrowed) serialized compactly. */
static struct ws_buf *prefixed_json(const char *prefix, json_t *v, unsigned flags)
{
    if (!v)
        return NULL;
    size_t pl = strlen(prefix);
    size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
    if (n == 0)
        return NULL;
    struct ws_buf *b = ws__buf_new(NULL, pl + n, flags | WS_BUF_SIO);
    if (!b)
        return NULL;
    memcpy(ws_buf_payload(b), prefix, pl);
    if (json_dumpb(v, (char *)ws_buf_payload(b) + pl, n, JSON_COMPACT | JSON_ENCODE_ANY) != n) {
        ws__buf_unref(b);
        return NULL;
    }
    return b;
}

struct ws_buf *sio_open_buf(const char *sid, int64_t ping_interval_ms, int64_t ping_timeout_ms,
                            size_t max_payload)
{
    json_t *o = json_pack("{s:s, s:[], s:I, s:I, s:I}", "sid", sid, "upgrades", "pingInterval",
                          (json_int_t)ping_interval_ms, "pingTimeout",
                          (json_int_t)ping_timeout_ms, "maxPayload", (json_int_t)max_payload);
    struct ws_buf *b = prefixed_json("0", o, 0);
    json_decref(o);
    return b;
}

struct ws_buf *sio_connect_buf(const char *sid)
{
    json_t *o = json_pack("{s:s}", "sid", sid);
    struct ws_buf *b = prefixed_json("40", o, 0);
    json_decref(o);
    return b;
}

struct ws_buf *sio_connect_error_buf(const char *nsp, size_t nsp_len, const char *msg)
{
    char prefix[2 + SIO_NSP_MAX + 2];
    if (nsp_len > SIO_NSP_MAX)
        return NULL;
    if (nsp_len == 1 && nsp[0] == '/')
        snprintf(prefix, sizeof prefix, "44");
    else
        snprintf(prefix, sizeof prefix, "44%.*s,", (int)nsp_len, nsp);
    json_t *o = json_pack("{s:s}", "message", msg);
    struct ws_buf *b = prefixed_json(prefix, o, 0);
    json_decref(o);
    return b;
}

struct ws_buf *sio_raw_buf(const char *text)
{
    return ws__buf_new(text, strlen(text), WS_BUF_SIO);
}

/* The type of a frame written by this gateway: `{"type":"` then a name
 * without escapes.  Sets the name's span and where the rest starts (just
 * after the name's closing quote); false when the frame does not start so. */
static bool leading_type(const char *f, size_t len, size_t *name_at, size_t *name_len,
                         size_t *rest)
{
    static const char head[] = "{\"type\":\"";
    size_t hl = sizeof head - 1;
    if (len < hl || memcmp(f, head, hl) != 0)
        return false;
    for (size_t i = hl; i < len; i++) {
        if (f[i] == '\\' || (unsigned char)f[i] < 0x20)
            return false;
        if (f[i] == '"') {
            *name_at = hl;
            *name_len = i - hl;
            *rest = i + 1;
            return true;
        }
    }
    return false;
}

struct ws_buf *sio_event_buf(const char *frame, size_t len, unsigned flags)
{
    size_t at, nl, rest;
    if (leading_type(frame, len, &at, &nl, &rest) && rest < len &&
        (frame[rest] == ',' || (frame[rest] == '}' && rest + 1 == len)) && frame[len - 1] == '}') {
        /* {"type":"X","a":1} -> 42["X",{"a":1}]   {"type":"X"} -> 42["X",{}] */
        bool empty = frame[rest] == '}';
        size_t tail = empty ? 0 : len - rest - 1; /* "a":1} */
        size_t n = 4 + nl + 3 + (empty ? 1 : tail) + 1;
        struct ws_buf *b = ws__buf_new(NULL, n, flags | WS_BUF_SIO);
        if (!b)
            return NULL;
        char *o = (char *)ws_buf_payload(b);
        memcpy(o, "42[\"", 4);
        memcpy(o + 4, frame + at, nl);
        memcpy(o + 4 + nl, "\",{", 3);
        if (empty)
            o[7 + nl] = '}';
        else
            memcpy(o + 7 + nl, frame + rest + 1, tail);
        o[n - 1] = ']';
        return b;
    }
    json_t *v = json_loadb(frame, len, 0, NULL);
    json_t *type = json_object_get(v, "type");
    struct ws_buf *b = NULL;
    if (json_is_string(type)) {
        json_t *arr = json_pack("[O,O]", type, v);
        if (arr) {
            json_object_del(json_array_get(arr, 1), "type");
            b = prefixed_json("42", arr, flags);
            json_decref(arr);
        }
    }
    json_decref(v);
    return b;
}

bool sio_frame_is_answer(const char *frame, size_t len, char cid[65])
{
    size_t at, nl, rest;
    cid[0] = '\0';
    if (!leading_type(frame, len, &at, &nl, &rest))
        return false;
    if (!((nl == 11 && memcmp(frame + at, "message.ack", 11) == 0) ||
          (nl == 5 && memcmp(frame + at, "error", 5) == 0)))
        return false;
    json_t *v = json_loadb(frame, len, 0, NULL);
    const char *c = json_string_value(json_object_get(v, "clientId"));
    if (c && strlen(c) <= 64)
        memcpy(cid, c, strlen(c) + 1);
    json_decref(v);
    return v != NULL;
}

struct ws_buf *sio_ack_buf(int64_t ack_id, const char *frame, size_t len)
{
    json_t *v = json_loadb(frame, len, 0, NULL);
    const char *type = json_string_value(json_object_get(v, "type"));
    json_t *arg = NULL;
    if (type && strcmp(type, "message.ack") == 0) {
        arg = json_copy(v);
        json_object_del(arg, "type");
    } else if (type && strcmp(type, "error") == 0) {
        json_t *e = json_object();
        json_t *f;
        if (e) {
            json_object_set(e, "code", json_object_get(v, "code"));
            json_object_set(e, "message", json_object_get(v, "message"));
            if ((f = json_object_get(v, "field")))
                json_object_set(e, "field", f);
        }
        arg = json_pack("{s:o}", "error", e);
    }
    json_decref(v);
    if (!arg)
        return NULL;
    json_t *arr = json_pack("[o]", arg);
    char prefix[24];
    snprintf(prefix, sizeof prefix, "43%lld", (long long)ack_id);
    struct ws_buf *b = prefixed_json(prefix, arr, 0);
    json_decref(arr);
    return b;
}
