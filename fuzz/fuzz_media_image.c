/* fuzz_media_image.c - image recognition of uploads (src/media/media_image.c).
 *
 * The input is the start of an uploaded file.  media_image_probe reads only
 * the header it needs, from a heap copy of exactly `size` bytes, so ASan
 * sees any read past the end.  Properties: a recognised image has a kind
 * equal to the magic-byte verdict, a format and MIME type, a format that
 * maps back to the kind, and a size of at least 1x1; and bytes appended
 * after a recognised header never change the answer (the upload route
 * probes the whole file: the image data after the header must not change
 * how the header reads). */
#include "chatli/media.h"
#include "fuzz.h"

static int probe(const uint8_t *data, size_t size, enum media_kind *kind, int *w, int *h)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return -1;
    memcpy(copy, data, size);
    int rc = media_image_probe(copy, size, kind, w, h);
    free(copy);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum media_kind kind = MEDIA_KIND_NONE;
    int w = 0, h = 0;
    int rc = probe(data, size, &kind, &w, &h);
    if (rc != 0) {
        FUZZ_CHECK(rc == CHAT_E_UNSUPPORTED_MEDIA || rc == -1);
        return 0;
    }
    FUZZ_CHECK(kind == media_image_kind(data, size));
    FUZZ_CHECK(w >= 1 && h >= 1);
    FUZZ_CHECK(media_kind_format(kind) && media_kind_mime(kind));
    FUZZ_CHECK(media_kind_of_format(media_kind_format(kind)) == kind);

    /* The same header followed by more bytes: the same answer. */
    uint8_t *longer = malloc(size + 64);
    if (!longer)
        return 0;
    memcpy(longer, data, size);
    memset(longer + size, 0xA5, 64);
    enum media_kind k2 = MEDIA_KIND_NONE;
    int w2 = 0, h2 = 0;
    int rc2 = media_image_probe(longer, size + 64, &k2, &w2, &h2);
    free(longer);
    FUZZ_CHECK(rc2 == 0 && k2 == kind && w2 == w && h2 == h);
    return 0;
}
