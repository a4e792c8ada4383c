/* media_image.c - image type by magic bytes and pixel size from the header.
 *
 * Pure functions over a byte range: no I/O and no allocation, so the unit
 * test feeds them truncated and hostile headers directly.  Every read is
 * bounds-checked against `len` first; a header that ends early or names an
 * impossible size is "not an image" (415), never a crash.
 *
 * Where the size lives:
 *   JPEG  the first SOFn segment (C0-CF, except DHT C4, JPG C8, DAC CC),
 *         found by walking the segments by their lengths; progressive
 *         files use SOF2, which this covers.  A height of 0 (defined later
 *         by a DNL marker) is refused: no browser shows such files either.
 *   PNG   the IHDR chunk, which must come first.
 *   GIF   the logical screen descriptor: the canvas every frame is drawn
 *         on, so an animation's size.
 *   WebP  VP8 (lossy key frame), VP8L (lossless) or VP8X (the canvas of
 *         extended files, which is how animated WebP is stored). */
#include "chatli/media.h"

#include <string.h>

static const uint8_t PNG_SIG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

enum media_kind media_image_kind(const uint8_t *buf, size_t len)
{
    if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff)
        return MEDIA_KIND_JPEG;
    if (len >= 8 && memcmp(buf, PNG_SIG, 8) == 0)
        return MEDIA_KIND_PNG;
    if (len >= 6 && (memcmp(buf, "GIF87a", 6) == 0 || memcmp(buf, "GIF89a", 6) == 0))
        return MEDIA_KIND_GIF;
    if (len >= 12 && memcmp(buf, "RIFF", 4) == 0 && memcmp(buf + 8, "WEBP", 4) == 0)
        return MEDIA_KIND_WEBP;
    return MEDIA_KIND_NONE;
}

const char *media_kind_format(enum media_kind k)
{
    switch (k) {
    case MEDIA_KIND_JPEG: return "jpg";
    case MEDIA_KIND_PNG: return "png";
    case MEDIA_KIND_GIF: return "gif";
    case MEDIA_KIND_WEBP: return "webp";
    default: return NULL;
    }
}

const char *media_kind_mime(enum media_kind k)
{
    switch (k) {
    case MEDIA_KIND_JPEG: return "image/jpeg";
    case MEDIA_KIND_PNG: return "image/png";
    case MEDIA_KIND_GIF: return "image/gif";
    case MEDIA_KIND_WEBP: return "image/webp";
    default: return NULL;
    }
}

enum media_kind media_kind_of_format(const char *fmt)
{
    for (enum media_kind k = MEDIA_KIND_JPEG; k <= MEDIA_KIND_WEBP; k++)
        if (fmt && strcmp(fmt, media_kind_format(k)) == 0)
            return k;
    return MEDIA_KIND_NONE;
}

static unsigned be16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }
static unsigned le16(const uint8_t *p) { return (unsigned)p[1] << 8 | p[0]; }
static unsigned long be32(const uint8_t *p)
{
    return (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 | p[3];
}
static unsigned long le24(const uint8_t *p)
{
    return (unsigned long)p[2] << 16 | (unsigned long)p[1] << 8 | p[0];
}

static bool is_sof(uint8_t m)
{
    return m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc;
}

static int jpeg_size(const uint8_t *b, size_t len, unsigned long *w, unsigned long *h)
{
    size_t i = 2; /* after SOI */
    for (;;) {
        if (i >= len || b[i] != 0xff)
            return -1;
        while (i < len && b[i] == 0xff) /* fill bytes before a marker */
            i++;
        if (i >= len)
            return -1;
        uint8_t m = b[i++];
        if (m == 0x01 || (m >= 0xd0 && m <= 0xd8))
            continue; /* markers without a length */
        if (m == 0xd9 || m == 0xda || i + 2 > len)
            return -1; /* end of image or scan data before any frame header */
        unsigned seg = be16(b + i);
        if (seg < 2 || seg > len - i)
            return -1;
        if (is_sof(m)) {
            if (seg < 7)
                return -1;
            *h = be16(b + i + 3);
            *w = be16(b + i + 5);
            return 0;
        }
        i += seg;
    }
}

static int png_size(const uint8_t *b, size_t len, unsigned long *w, unsigned long *h)
{
    if (len < 24 || be32(b + 8) != 13 || memcmp(b + 12, "IHDR", 4) != 0)
        return -1;
    *w = be32(b + 16);
    *h = be32(b + 20);
    return 0;
}

static int gif_size(const uint8_t *b, size_t len, unsigned long *w, unsigned long *h)
{
    if (len < 10)
        return -1;
    *w = le16(b + 6);
    *h = le16(b + 8);
    return 0;
}

static int webp_size(const uint8_t *b, size_t len, unsigned long *w, unsigned long *h)
{
    if (len < 20)
        return -1;
    const uint8_t *c = b + 20; /* the first chunk's payload */
    if (memcmp(b + 12, "VP8 ", 4) == 0) {
        /* 3-byte frame tag (bit 0 clear on a key frame), start code, sizes */
        if (len < 30 || (c[0] & 1) || c[3] != 0x9d || c[4] != 0x01 || c[5] != 0x2a)
            return -1;
        *w = le16(c + 6) & 0x3fff;
        *h = le16(c + 8) & 0x3fff;
        return 0;
    }
    if (memcmp(b + 12, "VP8L", 4) == 0) {
        if (len < 25 || c[0] != 0x2f)
            return -1;
        unsigned long bits = (unsigned long)c[1] | (unsigned long)c[2] << 8 |
                             (unsigned long)c[3] << 16 | (unsigned long)c[4] << 24;
        *w = (bits & 0x3fff) + 1;
        *h = ((bits >> 14) & 0x3fff) + 1;
        return 0;
    }
    if (memcmp(b + 12, "VP8X", 4) == 0) {
        if (len < 30)
            return -1;
        *w = le24(c + 4) + 1;
        *h = le24(c + 7) + 1;
        return 0;
    }
    return -1;
}

int media_image_probe(const uint8_t *buf, size_t len, enum media_kind *kind, int *width,
                      int *height)
{
    enum media_kind k = media_image_kind(buf, len);
    unsigned long w = 0, h = 0;
    int rc = -1;
    switch (k) {
    case MEDIA_KIND_JPEG: rc = jpeg_size(buf, len, &w, &h); break;
    case MEDIA_KIND_PNG: rc = png_size(buf, len, &w, &h); break;
    case MEDIA_KIND_GIF: rc = gif_size(buf, len, &w, &h); break;
    case MEDIA_KIND_WEBP: rc = webp_size(buf, len, &w, &h); break;
    default: break;
    }
    /* PNG allows up to 2^31-1 pixels a side; nothing larger fits an int. */
    if (rc != 0 || w == 0 || h == 0 || w > 0x7fffffffUL || h > 0x7fffffffUL)
        return CHAT_E_UNSUPPORTED_MEDIA;
    *kind = k;
    *width = (int)w;
    *height = (int)h;
    return 0;
}
