/*
 * gemv.cu -- MATMUL's mixed form (graph/prims.h: a float32 a times a bfloat16/float16 b, the
 * result float32) for the few rows of a decode step: out [M, N] = alpha a [M, K] @ b [K, N]
 * (+ beta out, which holds c on entry). cuBLAS has no float32 x half product, and converting
 * the weight into float32 first (the fallback) writes and reads 4 bytes a weight for every 2
 * the weight holds; here each weight is read once, as stored, and converted in registers.
 *
 * One warp per output column n, up to GEMV_ROWS rows of a at a time: the lanes stride over K
 * (for b = W^T, W [N, K] row-contiguous, column n of b is row n of W: contiguous), float32
 * accumulation, the warp's partial sums added by shuffles. Contiguous case (b's column and a's
 * rows contiguous, K a multiple of 8, 16-byte aligned): each lane reads 8 weights (16 bytes) at
 * a time, so a warp moves 512 bytes per load.
 */
#include "backend/cuda/cuda_common.cuh"

#define GEMV_ROWS 8
#define GEMV_WARPS 4

__global__ void __launch_bounds__(GEMV_WARPS * 32) k_gemv_mixed(float *out, lxc_gemv_args g) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int64_t n = (int64_t)blockIdx.x * GEMV_WARPS + warp;
    if (n >= g.N) return; /* no block-wide synchronisation below */
    const uint16_t *bcol = (const uint16_t *)g.b + n * g.b_cs;
    float acc[GEMV_ROWS];
#pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++) acc[r] = 0.0f;
    if (g.vec) {
        const uint4 *wv = (const uint4 *)(const void *)bcol; /* 8 weights a load */
        for (int64_t k8 = lane; k8 < g.K / 8; k8 += 32) {
            uint4 q = wv[k8];
            uint16_t w16[8];
            memcpy(w16, &q, sizeof q);
            float w[8];
#pragma unroll
            for (int j = 0; j < 8; j++) /* from registers (lxc_loadf reads memory) */
                w[j] = g.bt == LX_BFLOAT16 ? lx_bf16_to_f32(w16[j]) : lx_f16_to_f32(w16[j]);
#pragma unroll
            for (int r = 0; r < GEMV_ROWS; r++) {
                if (r >= g.M) break;
                const float4 *ar = (const float4 *)(const void *)(g.a + r * g.a_rs + k8 * 8);
                float4 x0 = ar[0], x1 = ar[1];
                acc[r] += ((x0.x * w[0] + x0.y * w[1]) + (x0.z * w[2] + x0.w * w[3])) +
                          ((x1.x * w[4] + x1.y * w[5]) + (x1.z * w[6] + x1.w * w[7]));
            }
        }
    } else {
        for (int64_t k = lane; k < g.K; k += 32) {
            float w = lxc_loadf(g.bt, (const char *)(bcol + k * g.b_rs));
#pragma unroll
            for (int r = 0; r < GEMV_ROWS; r++) {
                if (r >= g.M) break;
                acc[r] += g.a[r * g.a_rs + k * g.a_cs] * w;
            }
        }
    }
#pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++) {
        if (r >= g.M) break;
        float v = acc[r];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (lane == 0) {
            float *o = out + r * g.N + n;
            *o = g.alpha * v + (g.with_c ? g.beta * *o : 0.0f);
        }
    }
}

extern "C" int lxc_gemv_mixed(lxc_stream s, float *out, const lxc_gemv_args *g) {
    if (g->M <= 0 || g->N <= 0) return 0;
    if (g->M > GEMV_ROWS) return (int)cudaErrorInvalidValue;
    dim3 grid((unsigned)((g->N + GEMV_WARPS - 1) / GEMV_WARPS));
    k_gemv_mixed<<<grid, GEMV_WARPS * 32, 0, s>>>(out, *g);
    return lxc_launch_error();
}
