/* bus_redis_event.c - the Redis bus's wire format, and handing events to
 * this process's subscriber and listeners.
 *
 * Format (one PUBLISH payload, binary, little-endian), fixed header then
 * the variable parts:
 *     0  "CHB1"                    magic and version
 *     4  origin, 16 bytes          the publisher's instance id, NUL-padded
 *    20  kind, scope, inval, has_token   one byte each
 *    24  n_users u32, frame_len u32
 *    32  inval key, 25 bytes       NUL-terminated id or all zero
 *    57  token hash, 32 bytes      a revocation's token hash, or zero
 *    89  n_users * 25 bytes        NUL-terminated user ids
 *        frame_len bytes           the frame, as the gateway sends it
 * Binary rather than JSON so the frame travels as is: wrapping it in JSON
 * would escape and unescape every byte of every message.  User ids keep
 * their NUL so a receiver points into the reply instead of copying.
 * skip_conn is not sent: a connection id only means something on the
 * instance that minted it, and receivers deliver to all their own
 * connections (origin tells them the event came from elsewhere).
 *
 * The payload comes from our own Redis channel, but it is still checked
 * byte for byte: a malformed one (another program on the channel, a
 * version skew) is logged and ignored, never trusted. */
#include <stdlib.h>
#include <string.h>

#include "bus_redis_internal.h"
#include "chatli/log.h"

#define HDR 89
#define ID_BYTES OID_SIZE
#define MAGIC "CHB1"

static void put_u32(char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (char)((v >> (8 * i)) & 0xff);
}

static uint32_t get_u32(const char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)(unsigned char)p[i] << (8 * i);
    return v;
}

int bus_redis__encode(const struct bus_redis *br, const struct bus_event *ev, int kind,
                      struct pub_msg **out)
{
    size_t n = ev && (ev->scope == BUS_TO_USERS || ev->revoked_token) ? ev->n_users : 0;
    size_t flen = ev && ev->frame ? ev->len : 0;
    size_t len = HDR + n * ID_BYTES + flen;
    struct pub_msg *m = calloc(1, sizeof *m + len);
    if (!m)
        return CHAT_E_INTERNAL;
    char *p = m->data;
    memcpy(p, MAGIC, 4);
    memcpy(p + 4, br->origin, strlen(br->origin));
    p[20] = (char)kind;
    p[21] = (char)(ev ? ev->scope : 0);
    p[22] = (char)(ev ? ev->inval : 0);
    p[23] = (char)(ev && ev->revoked_token ? 1 : 0);
    put_u32(p + 24, (uint32_t)n);
    put_u32(p + 28, (uint32_t)flen);
    if (ev && ev->inval_key)
        memcpy(p + 32, ev->inval_key, strnlen(ev->inval_key, OID_LEN));
    if (ev && ev->revoked_token)
        memcpy(p + 57, ev->revoked_token, 32);
    for (size_t i = 0; i < n; i++)
        memcpy(p + HDR + i * ID_BYTES, ev->user_ids[i], OID_LEN);
    if (flen)
        memcpy(p + HDR + n * ID_BYTES, ev->frame, flen);
    m->len = len;
    *out = m;
    return 0;
}

/* Fills `ev` pointing into `data`; 0, or -1 when malformed. */
static int decode(const char *data, size_t len, struct bus_event *ev,
                  char origin[BUS_ORIGIN_LEN + 1])
{
    if (len < HDR || memcmp(data, MAGIC, 4) != 0)
        return -1;
    uint32_t n = get_u32(data + 24), flen = get_u32(data + 28);
    if ((uint64_t)n * ID_BYTES + flen != len - HDR)
        return -1;
    if (data[32 + OID_LEN] != '\0')
        return -1;
    for (uint32_t i = 0; i < n; i++)
        if (data[HDR + i * ID_BYTES + OID_LEN] != '\0')
            return -1;
    memcpy(origin, data + 4, BUS_ORIGIN_LEN);
    origin[BUS_ORIGIN_LEN] = '\0';
    memset(ev, 0, sizeof *ev);
    ev->kind = (unsigned char)data[20];
    ev->scope = (unsigned char)data[21];
    ev->inval = (unsigned char)data[22];
    ev->revoked_token = data[23] ? (const uint8_t *)data + 57 : NULL;
    ev->n_users = n;
    ev->user_ids = n ? (const char(*)[OID_SIZE])(data + HDR) : NULL;
    ev->len = flen;
    ev->frame = flen ? data + HDR + (size_t)n * ID_BYTES : NULL;
    ev->inval_key = data[32] ? data + 32 : NULL;
    ev->origin = origin;
    if (ev->kind > BUS_REDIS_KIND_GAP || ev->scope > BUS_TO_ALL)
        return -1;
    return 0;
}

void bus_redis__deliver_local(struct bus_redis *br, const struct bus_event *ev)
{
    pthread_rwlock_rdlock(&br->lock);
    if (br->cb)
        br->cb(br->cb_arg, ev);
    pthread_rwlock_unlock(&br->lock);
}

/* Listeners hear revocations and invalidations (not frames); call with
 * the read lock held. */
static void to_listeners_locked(struct bus_redis *br, const struct bus_event *ev)
{
    for (size_t i = 0; i < br->n_listeners; i++)
        if (br->listeners[i].on_event)
            br->listeners[i].on_event(br->listeners[i].arg, ev);
}

void bus_redis__dispatch(struct bus_redis *br, const char *data, size_t len)
{
    struct bus_event ev;
    char origin[BUS_ORIGIN_LEN + 1];
    if (decode(data, len, &ev, origin) != 0) {
        log_warn("bus_redis: ignoring a malformed message of %zu bytes", len);
        return;
    }
    if (strcmp(origin, br->origin) == 0)
        return; /* delivered here when it was published */
    if (ev.kind == BUS_REDIS_KIND_GAP) {
        log_warn("bus_redis: instance %s dropped events: telling listeners", origin);
        bus_redis__gap(br);
        return;
    }
    pthread_rwlock_rdlock(&br->lock);
    if (ev.kind == BUS_FRAME && br->cb && (ev.frame || ev.revoked_token))
        br->cb(br->cb_arg, &ev);
    if (ev.kind == BUS_INVALIDATE || ev.revoked_token)
        to_listeners_locked(br, &ev);
    pthread_rwlock_unlock(&br->lock);
}

void bus_redis__gap(struct bus_redis *br)
{
    pthread_rwlock_rdlock(&br->lock);
    for (size_t i = 0; i < br->n_listeners; i++)
        if (br->listeners[i].on_gap)
            br->listeners[i].on_gap(br->listeners[i].arg);
    pthread_rwlock_unlock(&br->lock);
}
