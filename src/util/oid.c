/* oid.c - ObjectId minting.  The random part comes from libsodium, drawn once
 * (sodium_init must have run; main does it before any thread starts); the
 * counter is an atomic so concurrent MHD workers never mint the same id. */
#include "chatli/oid.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>

static uint8_t process_random[5];
static _Atomic uint32_t counter;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_random(void)
{
    randombytes_buf(process_random, sizeof process_random);
    uint32_t start;
    randombytes_buf(&start, sizeof start);
    atomic_store(&counter, start & 0xffffff);
}

void oid_new(char out[OID_SIZE], int64_t now_ms)
{
    static const char hex[] = "0123456789abcdef";
    pthread_once(&once, init_random);
    uint32_t secs = (uint32_t)(now_ms / 1000);
    uint32_t n = atomic_fetch_add(&counter, 1) & 0xffffff;
    uint8_t b[12] = {
        (uint8_t)(secs >> 24), (uint8_t)(secs >> 16), (uint8_t)(secs >> 8), (uint8_t)secs,
        process_random[0], process_random[1], process_random[2], process_random[3],
        process_random[4], (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n,
    };
    for (int i = 0; i < 12; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[OID_LEN] = '\0';
}

bool oid_valid(const char *s)
{
    if (!s)
        return false;
    for (int i = 0; i < OID_LEN; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return s[OID_LEN] == '\0';
}
