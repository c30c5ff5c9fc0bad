/*
 * threefry.h -- the threefry2x32 block cipher (20 rounds, as JAX and MLX), the one definition
 * shared by the random kernels and the host-side global key stream.
 */
#ifndef LX_CORE_THREEFRY_H
#define LX_CORE_THREEFRY_H

#include <stdint.h>

static inline uint32_t lx_rotl32(uint32_t v, int r) { return (v << r) | (v >> (32 - r)); }

/* Encrypts the counter pair (*c0, *c1) in place with key (k0, k1). */
static inline void lx_threefry2x32(uint32_t k0, uint32_t k1, uint32_t *c0, uint32_t *c1) {
    static const int rot[2][4] = {{13, 15, 26, 6}, {17, 29, 16, 24}};
    uint32_t ks[3] = {k0, k1, k0 ^ k1 ^ 0x1BD11BDAu};
    uint32_t x0 = *c0 + ks[0], x1 = *c1 + ks[1];
    for (int i = 0; i < 5; i++) {
        for (int j = 0; j < 4; j++) {
            x0 += x1;
            x1 = lx_rotl32(x1, rot[i % 2][j]);
            x1 ^= x0;
        }
        x0 += ks[(i + 1) % 3];
        x1 += ks[(i + 2) % 3] + (uint32_t)i + 1u;
    }
    *c0 = x0;
    *c1 = x1;
}

#endif
