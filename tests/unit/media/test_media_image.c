/* test_media_image.c - media/media_image.c: magic bytes and header sizes,
 * over valid headers of every layout, every truncation of them, hostile
 * segment lengths, and random bytes behind each magic (under ASan, an
 * out-of-bounds read fails the run). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chatli/media.h"
#include "check.h"

struct sample {
    const char *name;
    uint8_t b[512];
    size_t len;
    size_t header_end; /* bytes the probe needs */
    enum media_kind kind;
    int w, h;
};

static size_t put16be(uint8_t *p, unsigned v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; return 2; }
static size_t put32be(uint8_t *p, unsigned long v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
    return 4;
}
static void put_le(uint8_t *p, unsigned long v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* SOI, APP0, a long APP1, DQT, fill bytes, SOFn, DHT, SOS, EOI. */
static void make_jpeg(struct sample *s, uint8_t sof, int w, int h)
{
    uint8_t *p = s->b;
    size_t i = 0;
    p[i++] = 0xff, p[i++] = 0xd8;
    p[i++] = 0xff, p[i++] = 0xe0, i += put16be(p + i, 16), memcpy(p + i, "JFIF", 5), i += 14;
    p[i++] = 0xff, p[i++] = 0xe1, i += put16be(p + i, 202), i += 200;
    p[i++] = 0xff, p[i++] = 0xdb, i += put16be(p + i, 67), i += 65;
    p[i++] = 0xff; /* a fill byte */
    p[i++] = 0xff, p[i++] = sof, i += put16be(p + i, 11), p[i++] = 8;
    i += put16be(p + i, (unsigned)h), i += put16be(p + i, (unsigned)w);
    p[i++] = 1, p[i++] = 1, p[i++] = 0x11, p[i++] = 0;
    s->header_end = i;
    p[i++] = 0xff, p[i++] = 0xc4, i += put16be(p + i, 20), i += 18;
    p[i++] = 0xff, p[i++] = 0xda, i += put16be(p + i, 8), i += 6;
    p[i++] = 0x00, p[i++] = 0xff, p[i++] = 0xd9;
    s->len = i;
    s->kind = MEDIA_KIND_JPEG, s->w = w, s->h = h;
}

static void make_png(struct sample *s, unsigned long w, unsigned long h)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(s->b, sig, 8);
    put32be(s->b + 8, 13);
    memcpy(s->b + 12, "IHDR", 4);
    put32be(s->b + 16, w);
    put32be(s->b + 20, h);
    s->b[24] = 8, s->b[25] = 6;
    s->len = 33 + 12;
    s->header_end = 24;
    s->kind = MEDIA_KIND_PNG, s->w = (int)w, s->h = (int)h;
}

static void make_gif(struct sample *s, int w, int h)
{
    memcpy(s->b, "GIF89a", 6);
    put_le(s->b + 6, (unsigned long)w, 2);
    put_le(s->b + 8, (unsigned long)h, 2);
    s->len = 40;
    s->header_end = 10;
    s->kind = MEDIA_KIND_GIF, s->w = w, s->h = h;
}

static void riff(struct sample *s, const char *fourcc, size_t payload)
{
    memcpy(s->b, "RIFF", 4);
    put_le(s->b + 4, (unsigned long)(payload + 12), 4);
    memcpy(s->b + 8, "WEBP", 4);
    memcpy(s->b + 12, fourcc, 4);
    put_le(s->b + 16, (unsigned long)payload, 4);
    s->len = 20 + payload;
    s->kind = MEDIA_KIND_WEBP;
}

static void make_vp8(struct sample *s, int w, int h)
{
    riff(s, "VP8 ", 40);
    uint8_t *c = s->b + 20;
    c[0] = 0x10, c[3] = 0x9d, c[4] = 0x01, c[5] = 0x2a;
    put_le(c + 6, (unsigned long)w, 2);
    put_le(c + 8, (unsigned long)h, 2);
    s->header_end = 30;
    s->w = w, s->h = h;
}

static void make_vp8l(struct sample *s, int w, int h)
{
    riff(s, "VP8L", 20);
    s->b[20] = 0x2f;
    put_le(s->b + 21, (unsigned long)(w - 1) | (unsigned long)(h - 1) << 14, 4);
    s->header_end = 25;
    s->w = w, s->h = h;
}

static void make_vp8x(struct sample *s, int w, int h)
{
    riff(s, "VP8X", 10);
    s->b[20] = 0x12; /* animation + alpha */
    put_le(s->b + 24, (unsigned long)(w - 1), 3);
    put_le(s->b + 27, (unsigned long)(h - 1), 3);
    s->header_end = 30;
    s->w = w, s->h = h;
}

static int probe(const uint8_t *b, size_t len, int *w, int *h)
{
    enum media_kind k;
    return media_image_probe(b, len, &k, w, h);
}

static void check_sample(const struct sample *s)
{
    enum media_kind k = MEDIA_KIND_NONE;
    int w = 0, h = 0;
    CHECK_EQ_INT(media_image_probe(s->b, s->len, &k, &w, &h), 0);
    CHECK_EQ_INT(k, s->kind);
    CHECK_EQ_INT(w, s->w);
    CHECK_EQ_INT(h, s->h);
    /* Every truncation: refused before the header ends, exact after. */
    for (size_t n = 0; n <= s->len; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exact size: ASan sees any over-read */
        memcpy(copy, s->b, n);
        int rc = probe(copy, n, &w, &h);
        if (n < s->header_end) {
            if (rc != CHAT_E_UNSUPPORTED_MEDIA)
                fprintf(stderr, "  %s: prefix %zu accepted\n", s->name, n);
            CHECK_EQ_INT(rc, CHAT_E_UNSUPPORTED_MEDIA);
        } else {
            CHECK(rc == 0 && w == s->w && h == s->h);
        }
        free(copy);
    }
}

static void test_valid_layouts(void)
{
    struct sample s;
    memset(&s, 0, sizeof s), s.name = "jpeg baseline", make_jpeg(&s, 0xc0, 640, 480), check_sample(&s);
    memset(&s, 0, sizeof s), s.name = "jpeg progressive", make_jpeg(&s, 0xc2, 17, 65535), check_sample(&s);
    memset(&s, 0, sizeof s), s.name = "png", make_png(&s, 0x7fffffffUL, 1), check_sample(&s);
    memset(&s, 0, sizeof s), s.name = "gif", make_gif(&s, 65535, 3), check_sample(&s);
    memset(&s, 0, sizeof s), s.name = "vp8", make_vp8(&s, 16383, 2), check_sample(&s);
    memset(&s, 0, sizeof s), s.name = "vp8l", make_vp8l(&s, 16384, 16384), check_sample(&s);
    memset(&s, 0, sizeof s), s.name = "vp8x", make_vp8x(&s, 1 << 24, 7), check_sample(&s);
}

static void test_kinds(void)
{
    CHECK_EQ_INT(media_image_kind((const uint8_t *)"GIF88a......", 12), MEDIA_KIND_NONE);
    CHECK_EQ_INT(media_image_kind((const uint8_t *)"GIF87a", 6), MEDIA_KIND_GIF);
    CHECK_EQ_INT(media_image_kind((const uint8_t *)"RIFF\0\0\0\0WAVE", 12), MEDIA_KIND_NONE);
    CHECK_EQ_INT(media_image_kind((const uint8_t *)"hello, world", 12), MEDIA_KIND_NONE);
    CHECK_EQ_INT(media_image_kind((const uint8_t *)"\xff\xd8", 2), MEDIA_KIND_NONE);
    CHECK_EQ_INT(media_image_kind(NULL, 0), MEDIA_KIND_NONE);
    CHECK_EQ_STR(media_kind_format(MEDIA_KIND_JPEG), "jpg");
    CHECK_EQ_STR(media_kind_mime(MEDIA_KIND_WEBP), "image/webp");
    CHECK(media_kind_format(MEDIA_KIND_NONE) == NULL);
    CHECK_EQ_INT(media_kind_of_format("gif"), MEDIA_KIND_GIF);
    CHECK_EQ_INT(media_kind_of_format("jpeg"), MEDIA_KIND_NONE);
    CHECK_EQ_INT(media_kind_of_format(NULL), MEDIA_KIND_NONE);
}

static void test_malformed(void)
{
    struct sample s;
    int w, h;
    /* JPEG: a segment length past the end, a length under 2, scan data or
     * the end before any frame header, a height of 0, a short SOF. */
    memset(&s, 0, sizeof s), make_jpeg(&s, 0xc0, 8, 8);
    s.b[4] = 0xff; /* APP0 length 0xff10: past the end */
    CHECK_EQ_INT(probe(s.b, s.len, &w, &h), CHAT_E_UNSUPPORTED_MEDIA);
    memset(&s, 0, sizeof s), make_jpeg(&s, 0xc0, 8, 8);
    s.b[4] = 0x00, s.b[5] = 0x01; /* APP0 length 1 */
    CHECK_EQ_INT(probe(s.b, s.len, &w, &h), CHAT_E_UNSUPPORTED_MEDIA);
    static const uint8_t sos_first[] = {0xff, 0xd8, 0xff, 0xda, 0x00, 0x08, 1, 1, 0, 0, 0x3f, 0};
    CHECK_EQ_INT(probe(sos_first, sizeof sos_first, &w, &h), CHAT_E_UNSUPPORTED_MEDIA);
    static const uint8_t eoi_first[] = {0xff, 0xd8, 0xff, 0xd9, 0xff, 0xc0, 0, 11, 8, 0, 1, 0, 1, 1, 1, 0x11, 0};
    CHECK_EQ_INT(probe(eoi_first, sizeof eoi_first, &w, &h), CHAT_E_UNSUPPORTED_MEDIA);
    static const uint8_t zero_h[] = {0xff, 0xd8, 0xff, 0xc0, 0, 11, 8, 0, 0, 0, 9, 1, 1, 0x11, 0};
    CHECK_EQ_INT(probe(zero_h, sizeof zero_h, &w, &h), CHAT_E_UNSUPPORTED_MEDIA);
    static const uint8_t short_sof[] = {0xff, 0xd8, 0xff, 0xc0, 0, 4, 8, 0, 9, 0, 9, 1, 1, 0x11};
    CHECK_EQ_INT(probe(short_sof, sizeof short_sof, &w, &h), CHAT_E_UNSUPPORTED_MEDIA);
    static const uint8_t dht_not_sof[] = {0xff, 0xd8, 0xff, 0xc4, 0, 7, 8, 0, 9, 0, 9};
    CHECK_EQ_INT(probe(dht_not_sof, sizeof dht_not_sof, &w, &h), CHAT_E_UNSUPPORTED_MEDIA);
    static const uint8_t junk_after_soi[] = {0xff, 0xd8, 0xff, 0x00, 0x41, 0x42, 0x43, 0x44};
    CHECK_EQ_INT(probe(junk_after_soi, sizeof junk_after_soi, &w, &h), CHAT_E_UNSUPPORTED_MEDIA);
    static const uint8_t all_fill[] = {0xff, 0xd8, 0xff, 0xff, 0xff, 0xff};
    CHECK_EQ_INT(probe(all_fill, sizeof all_fill, &w, &h), CHAT_E_UNSUPPORTED_MEDIA);
    /* PNG: IHDR of the wrong length or type, a zero or oversized side. */
    memset(&s, 0, sizeof s), make_png(&s, 5, 5), s.b[11] = 12;
    CHECK_EQ_INT(probe(s.b, s.len, &w, &h), CHAT_E_UNSUPPORTED_MEDIA);
    memset(&s, 0, sizeof s), make_png(&s, 5, 5), memcpy(s.b + 12, "IDAT", 4);
    CHECK_EQ_INT(probe(s.b, s.len, &w, &h), CHAT_E_UNSUPPORTED_MEDIA);
    memset(&s, 0, sizeof s), make_png(&s, 0, 5);
    CHECK_EQ_INT(probe(s.b, s.len, &w, &h), CHAT_E_UNSUPPORTED_MEDIA);
    memset(&s, 0, sizeof s), make_png(&s, 0x80000000UL, 5);
    CHECK_EQ_INT(probe(s.b, s.len, &w, &h), CHAT_E_UNSUPPORTED_MEDIA);
    /* GIF: a zero side. */
    memset(&s, 0, sizeof s), make_gif(&s, 0, 5);
    CHECK_EQ_INT(probe(s.b, s.len, &w, &h), CHAT_E_UNSUPPORTED_MEDIA);
    /* WebP: an unknown first chunk, an inter frame, a bad start code, a
     * bad VP8L signature, a zero-sized VP8 frame. */
    memset(&s, 0, sizeof s), make_vp8(&s, 5, 5), memcpy(s.b + 12, "VP8Z", 4);
    CHECK_EQ_INT(probe(s.b, s.len, &w, &h), CHAT_E_UNSUPPORTED_MEDIA);
    memset(&s, 0, sizeof s), make_vp8(&s, 5, 5), s.b[20] |= 1;
    CHECK_EQ_INT(probe(s.b, s.len, &w, &h), CHAT_E_UNSUPPORTED_MEDIA);
    memset(&s, 0, sizeof s), make_vp8(&s, 5, 5), s.b[24] = 0x02;
    CHECK_EQ_INT(probe(s.b, s.len, &w, &h), CHAT_E_UNSUPPORTED_MEDIA);
    memset(&s, 0, sizeof s), make_vp8l(&s, 5, 5), s.b[20] = 0x2e;
    CHECK_EQ_INT(probe(s.b, s.len, &w, &h), CHAT_E_UNSUPPORTED_MEDIA);
    memset(&s, 0, sizeof s), make_vp8(&s, 0, 5);
    CHECK_EQ_INT(probe(s.b, s.len, &w, &h), CHAT_E_UNSUPPORTED_MEDIA);
    /* Not images at all. */
    CHECK_EQ_INT(probe((const uint8_t *)"just text, long enough", 22, &w, &h), CHAT_E_UNSUPPORTED_MEDIA);
    CHECK_EQ_INT(probe(NULL, 0, &w, &h), CHAT_E_UNSUPPORTED_MEDIA);
}

/* Random bytes behind each magic: any answer is fine, as long as every
 * read stays in bounds (ASan) and an accepted size is positive. */
static void test_random_bytes(void)
{
    static const char *magic[] = {"\xff\xd8\xff", "\x89PNG\r\n\x1a\n", "GIF89a", "RIFF\0\0\0\0WEBPVP8 ",
                                  "RIFF\0\0\0\0WEBPVP8L", "RIFF\0\0\0\0WEBPVP8X"};
    static const size_t mlen[] = {3, 8, 6, 16, 16, 16};
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    int accepted = 0;
    for (int round = 0; round < 60000; round++) {
        size_t m = (size_t)round % 6;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t len = mlen[m] + (size_t)(x % 80);
        uint8_t *b = malloc(len);
        memcpy(b, magic[m], mlen[m]);
        for (size_t i = mlen[m]; i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            /* Bias towards 0xff and small values so JPEG markers and short
             * lengths come up often. */
            b[i] = (x & 3) == 0 ? 0xff : (uint8_t)(x >> 24) & ((x & 4) ? 0x0f : 0xff);
        }
        int w = 0, h = 0;
        if (probe(b, len, &w, &h) == 0) {
            accepted++;
            CHECK(w >= 1 && h >= 1);
        }
        free(b);
    }
    CHECK(accepted > 0); /* the generator does reach the size-reading paths */
}

int main(void)
{
    test_valid_layouts();
    test_kinds();
    test_malformed();
    test_random_bytes();
    return check_done();
}
