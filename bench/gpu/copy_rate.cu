// copy_rate.cu -- the device's memory rate, for the decode roofline of scripts/gpu_bench.sh:
// a device-to-device cudaMemcpy (bytes read + bytes written per second, as vendors and
// PyTorch's copy benchmarks count them) and a read-only streaming kernel (16-byte loads, a
// persistent grid, one sum a block: bytes read per second, the pattern of a decode step that
// streams its weights once). Buffers of 2 GiB by default, larger than any cache; median of
// the timed repetitions, CUDA events around each.
//
//   nvcc -O2 -arch=sm_90 -o copy_rate bench/gpu/copy_rate.cu && ./copy_rate [MiB] [reps]
//
// One JSON line on stdout.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CK(x)                                                                          \
    do {                                                                               \
        cudaError_t e_ = (x);                                                          \
        if (e_ != cudaSuccess) {                                                       \
            fprintf(stderr, "copy_rate: %s: %s\n", #x, cudaGetErrorString(e_));        \
            return 1;                                                                  \
        }                                                                              \
    } while (0)

__global__ void read_sum(const uint4 *__restrict__ p, size_t n, unsigned *out) {
    unsigned acc = 0;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    // four independent 16-byte loads in flight per thread
    for (; i + 3 * stride < n; i += 4 * stride) {
        uint4 a = p[i], b = p[i + stride], c = p[i + 2 * stride], d = p[i + 3 * stride];
        acc += a.x ^ b.y ^ c.z ^ d.w;
    }
    for (; i < n; i += stride) acc += p[i].x;
    __shared__ unsigned s[32];
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, o);
    if ((threadIdx.x & 31) == 0) s[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned t = 0;
        for (int w = 0; w < (int)(blockDim.x >> 5); w++) t += s[w];
        out[blockIdx.x] = t;
    }
}

static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoull(argv[1], nullptr, 10) : 2048;
    int reps = argc > 2 ? atoi(argv[2]) : 20;
    size_t bytes = mib << 20;
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    void *a, *b;
    unsigned *sums;
    int blocks = prop.multiProcessorCount * 4, threads = 512;
    CK(cudaMalloc(&a, bytes));
    CK(cudaMalloc(&b, bytes));
    CK(cudaMalloc(&sums, sizeof(unsigned) * (size_t)blocks));
    CK(cudaMemset(a, 1, bytes));
    CK(cudaMemset(b, 2, bytes));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    std::vector<double> copy_ms, read_ms;
    for (int r = 0; r < reps + 3; r++) {
        float ms;
        CK(cudaEventRecord(e0));
        CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        CK(cudaEventElapsedTime(&ms, e0, e1));
        if (r >= 3) copy_ms.push_back(ms);
        // alternate the buffers so the read never finds the copy's tail in L2
        const void *src = (r & 1) ? a : b;
        CK(cudaEventRecord(e0));
        read_sum<<<blocks, threads>>>((const uint4 *)src, bytes / 16, sums);
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        CK(cudaGetLastError());
        CK(cudaEventElapsedTime(&ms, e0, e1));
        if (r >= 3) read_ms.push_back(ms);
    }
    double c = median(copy_ms) * 1e-3, rd = median(read_ms) * 1e-3;
    printf("{\"probe\":\"cuda\",\"device\":\"%s\",\"sm\":\"%d.%d\",\"bytes\":%zu,\"reps\":%d,"
           "\"copy_s\":%.6f,\"copy_rw_bytes_per_s\":%.4e,\"read_s\":%.6f,\"read_bytes_per_s\":%.4e,"
           "\"memory_bytes\":%zu}\n",
           prop.name, prop.major, prop.minor, bytes, reps, c, 2.0 * (double)bytes / c, rd,
           (double)bytes / rd, (size_t)prop.totalGlobalMem);
    return 0;
}
