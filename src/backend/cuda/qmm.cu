/*
 * qmm.cu -- QUANTIZED_MATMUL of MLX's affine format (graph/prims_quant.h) with transpose
 * (x @ w^T, w [N, K] quantized along K), bits 2, 4, 8 (values never straddle a uint32 word),
 * group sizes 32/64/128, x, scales and biases float32/float16/bfloat16.
 *
 * lxc_qmm: one warp per output column n and QMM_ROWS rows of x at a time: lanes stride over
 * the packed words of w's row n (coalesced), unpack 32/bits values, and accumulate
 * scale * dot(q, x) + bias * sum(x) per group word in float32; the warp's partial sums are
 * added by shuffles. Used for decoding (a few rows) and as the fallback for any x layout.
 * lxc_dequant: w dequantized to x's dtype as MLX rounds it ((q * scale) rounded to the dtype,
 * then + bias rounded), for the cuBLAS product cuda_device.c runs when there are many rows.
 */
#include "backend/cuda/cuda_common.cuh"

#define QMM_ROWS 8
#define QMM_WARPS 4

template <int BITS>
__global__ void __launch_bounds__(QMM_WARPS * 32) k_qmm(char *out, lxc_qmm_args a) {
    const int per = 32 / BITS;
    const uint32_t mask = (1u << BITS) - 1u;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int64_t n = (int64_t)blockIdx.x * QMM_WARPS + warp;
    if (n >= a.N) return; /* no block-wide synchronisation below */
    int es = lxc_dsize(a.dtype);
    int64_t Kw = a.K / per;
    const uint32_t *wr = a.w + n * a.w_row;
    const char *sr = (const char *)a.scales + n * a.sg_row * es;
    const char *br = (const char *)a.biases + n * a.sg_row * es;
    const char *x = (const char *)a.x;
    for (int64_t r0 = (int64_t)blockIdx.y * QMM_ROWS; r0 < a.rows; r0 += (int64_t)gridDim.y * QMM_ROWS) {
        int64_t xo[QMM_ROWS];
        float acc[QMM_ROWS];
#pragma unroll
        for (int r = 0; r < QMM_ROWS; r++) {
            acc[r] = 0;
            xo[r] = r0 + r < a.rows ? lxc_offset_of(r0 + r, a.nd, a.rshape, a.xst) : 0;
        }
        for (int64_t wi = lane; wi < Kw; wi += 32) {
            uint32_t word = wr[wi];
            int64_t k0 = wi * per, g = k0 / a.gs;
            float s = lxc_loadf(a.dtype, sr + g * es), b = lxc_loadf(a.dtype, br + g * es);
            float q[per];
#pragma unroll
            for (int j = 0; j < per; j++) q[j] = (float)((word >> (j * BITS)) & mask);
#pragma unroll
            for (int r = 0; r < QMM_ROWS; r++) {
                if (r0 + r >= a.rows) break;
                float dot = 0, xs = 0;
                const char *xr = x + (xo[r] + k0 * a.xk) * es;
#pragma unroll
                for (int j = 0; j < per; j++) {
                    float xv = lxc_loadf(a.dtype, xr + j * a.xk * es);
                    dot += q[j] * xv;
                    xs += xv;
                }
                acc[r] += s * dot + b * xs;
            }
        }
#pragma unroll
        for (int r = 0; r < QMM_ROWS; r++) {
            float v = acc[r];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
            if (lane == 0 && r0 + r < a.rows) lxc_storef(a.dtype, out + ((r0 + r) * a.N + n) * es, v);
        }
    }
}

extern "C" int lxc_qmm(lxc_stream s, void *out, const lxc_qmm_args *a) {
    if (a->rows <= 0 || a->N <= 0) return 0;
    int64_t gy = (a->rows + QMM_ROWS - 1) / QMM_ROWS;
    dim3 grid((unsigned)((a->N + QMM_WARPS - 1) / QMM_WARPS), (unsigned)(gy > 65535 ? 65535 : gy));
    switch (a->bits) {
    case 2: k_qmm<2><<<grid, QMM_WARPS * 32, 0, s>>>((char *)out, *a); break;
    case 4: k_qmm<4><<<grid, QMM_WARPS * 32, 0, s>>>((char *)out, *a); break;
    default: k_qmm<8><<<grid, QMM_WARPS * 32, 0, s>>>((char *)out, *a); break;
    }
    return lxc_launch_error();
}

__global__ void k_dequant(char *wd, lxc_qmm_args a, int64_t n) {
    int es = lxc_dsize(a.dtype);
    int per = 32 / a.bits;
    uint32_t mask = (1u << a.bits) - 1u;
    LXC_GRID_LOOP(e, n) {
        int64_t k = e % a.K, row = e / a.K;
        uint32_t word = a.w[row * a.w_row + k / per];
        float q = (float)((word >> ((k % per) * a.bits)) & mask);
        int64_t g = k / a.gs;
        float s = lxc_loadf(a.dtype, (const char *)a.scales + (row * a.sg_row + g) * es);
        float b = lxc_loadf(a.dtype, (const char *)a.biases + (row * a.sg_row + g) * es);
        float v = __fadd_rn(lxc_roundf(a.dtype, __fmul_rn(q, s)), b);
        lxc_storef(a.dtype, wd + e * es, v);
    }
}

extern "C" int lxc_dequant(lxc_stream s, void *wd, const lxc_qmm_args *a) {
    int64_t n = a->N * a->K;
    if (n <= 0) return 0;
    k_dequant<<<lxc_blocks(n, LXC_THREADS), LXC_THREADS, 0, s>>>((char *)wd, *a, n);
    return lxc_launch_error();
}
