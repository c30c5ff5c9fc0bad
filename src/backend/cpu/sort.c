/*
 * sort.c -- the SORT kernel: sort, argsort, partition, argpartition and topk along one axis.
 *
 * Each row is turned into (key, index) pairs where the key is an unsigned integer whose order
 * is the value order of the dtype (NaN after +Inf, -0 equal to +0, float16/bfloat16 through
 * float32). Ordering pairs by (key, index) is a strict total order equal to the order of a
 * stable sort, so any algorithm gives the same, deterministic result: argsort is stable
 * without a stable algorithm, and partition/topk do not depend on the pivots chosen.
 * Keys of dtypes up to 32 bits are packed with the index into one uint64_t; 64-bit dtypes use
 * a (key, index) struct. Sort is an LSD radix sort on the key bytes for rows of RADIX_MIN
 * elements or more (stable, so ties stay in index order; bytes that are equal across the row
 * are skipped) and introsort below (O(n log n) worst case); partition is introselect (O(n)
 * average, O(n log n) worst); topk a select followed by an introsort of the k largest (the
 * select leaves them out of index order, so a comparison sort on (key, index) is used).
 *
 * Rows are independent and run in parallel (lx_parallel_for); each chunk of rows has one
 * scratch buffer of n pairs (2n where the radix sort runs). A long row with at least two
 * threads to itself (argsort of one softmax over a vocabulary) is sorted on all threads.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "graph/layout.h"
#include "graph/prims_scan.h"

/* ---- order-preserving keys -------------------------------------------------------------- */

/* Branch-free, so the key loops vectorize: -0 becomes +0, a negative value's bits are
 * inverted and a positive one's sign bit set, every NaN becomes the largest key. */
static inline uint32_t key_f32(float f) {
    uint32_t u = lx_bits_from_f32(f) & ~lx_mask_u32(f == 0.0f);
    uint32_t neg = 0u - (u >> 31);
    return (u ^ (neg | 0x80000000u)) | lx_mask_u32(f != f);
}

static inline uint64_t key_f64(double f) {
    uint64_t u;
    memcpy(&u, &f, 8);
    u &= (uint64_t)(f == 0.0) - 1u;
    uint64_t neg = 0u - (u >> 63);
    return (u ^ (neg | 0x8000000000000000ull)) | (0u - (uint64_t)(f != f));
}

/* SK_WIDE_<S>: the key needs 64 bits; SK_KEY_<S>(v): the key of value v. */
#define SK_WIDE_bool 0
#define SK_WIDE_u8 0
#define SK_WIDE_u16 0
#define SK_WIDE_u32 0
#define SK_WIDE_u64 1
#define SK_WIDE_i8 0
#define SK_WIDE_i16 0
#define SK_WIDE_i32 0
#define SK_WIDE_i64 1
#define SK_WIDE_f16 0
#define SK_WIDE_bf16 0
#define SK_WIDE_f32 0
#define SK_WIDE_f64 1
#define SK_KEY_bool(v) ((uint64_t)(v))
#define SK_KEY_u8(v) ((uint64_t)(v))
#define SK_KEY_u16(v) ((uint64_t)(v))
#define SK_KEY_u32(v) ((uint64_t)(v))
#define SK_KEY_u64(v) ((uint64_t)(v))
#define SK_KEY_i8(v) ((uint64_t)((uint32_t)(int32_t)(v) ^ 0x80000000u))
#define SK_KEY_i16(v) ((uint64_t)((uint32_t)(int32_t)(v) ^ 0x80000000u))
#define SK_KEY_i32(v) ((uint64_t)((uint32_t)(int32_t)(v) ^ 0x80000000u))
#define SK_KEY_i64(v) ((uint64_t)(v) ^ 0x8000000000000000ull)
#define SK_KEY_f16(v) ((uint64_t)key_f32(lx_f16_to_f32(v)))
#define SK_KEY_bf16(v) ((uint64_t)key_f32(lx_bf16_to_f32(v)))
#define SK_KEY_f32(v) ((uint64_t)key_f32(v))
#define SK_KEY_f64(v) key_f64(v)

/* ---- sorting and selection, one definition per element type ------------------------------ */

typedef uint64_t pk32;                           /* key << 32 | index */
typedef struct { uint64_t key; uint64_t idx; } pk64; /* key, then index */

#define PK32_LESS(a, b) ((a) < (b))
static inline bool pk64_less(pk64 a, pk64 b) {
    return a.key < b.key || (a.key == b.key && a.idx < b.idx);
}
#define PK64_LESS(a, b) pk64_less((a), (b))
#define PK32_IDX(e) ((uint32_t)(e))
#define PK64_IDX(e) ((uint32_t)(e).idx)

#define SMALL_SORT 16
#define RADIX_MIN 512 /* rows at least this long are radix sorted */
#define RADIX_WIDE_MIN 16384 /* and with 11-bit digits from this length */
/* A row sorted alone (at least two threads per row) uses all threads from this length, in
 * slices of at least RADIX_SLICE_MIN (each slice's 2048 counters per pass stay small next to
 * its elements). On the 2-vCPU VM, float32 rows of 64k came out at 0.8x to 1.4x the serial
 * time over runs (no gain on average), of 128k at 0.7x to 1.2x. */
#define RADIX_PAR_MIN 100000
#define RADIX_SLICE_MIN 16384
/* Counts of the 11-bit digit histograms of one slice: 6 digits of 2048 (64-bit keys; 32-bit
 * ones use 3). */
#define RADIX_HIST (6 << 11)

#define DEFINE_SORTS(P, E, LESS, KEYBITS, KEY)                                                             \
    static void P##_insertion(E *a, int64_t n) {                                               \
        for (int64_t i = 1; i < n; i++) {                                                      \
            E v = a[i];                                                                        \
            int64_t j = i;                                                                     \
            while (j > 0 && LESS(v, a[j - 1])) {                                               \
                a[j] = a[j - 1];                                                               \
                j--;                                                                           \
            }                                                                                  \
            a[j] = v;                                                                          \
        }                                                                                      \
    }                                                                                          \
    static void P##_sift(E *a, int64_t root, int64_t n) {                                      \
        E v = a[root];                                                                         \
        for (;;) {                                                                             \
            int64_t child = 2 * root + 1;                                                      \
            if (child >= n) break;                                                             \
            if (child + 1 < n && LESS(a[child], a[child + 1])) child++;                        \
            if (!LESS(v, a[child])) break;                                                     \
            a[root] = a[child];                                                                \
            root = child;                                                                      \
        }                                                                                      \
        a[root] = v;                                                                           \
    }                                                                                          \
    static void P##_heapsort(E *a, int64_t n) {                                                \
        for (int64_t i = n / 2; i-- > 0;) P##_sift(a, i, n);                                   \
        for (int64_t i = n - 1; i > 0; i--) {                                                  \
            E t = a[0];                                                                        \
            a[0] = a[i];                                                                       \
            a[i] = t;                                                                          \
            P##_sift(a, 0, i);                                                                 \
        }                                                                                      \
    }                                                                                          \
    /* Median-of-three Hoare partition of [lo, hi) (hi - lo >= 3); returns the pivot's final  \
     * position p: [lo, p) < a[p] < (p, hi). */                                               \
    static int64_t P##_partition(E *a, int64_t lo, int64_t hi) {                               \
        int64_t mid = lo + (hi - lo) / 2, last = hi - 1;                                       \
        E t;                                                                                   \
        if (LESS(a[mid], a[lo])) { t = a[mid]; a[mid] = a[lo]; a[lo] = t; }                    \
        if (LESS(a[last], a[mid])) {                                                           \
            t = a[mid]; a[mid] = a[last]; a[last] = t;                                         \
            if (LESS(a[mid], a[lo])) { t = a[mid]; a[mid] = a[lo]; a[lo] = t; }                \
        }                                                                                      \
        t = a[mid]; a[mid] = a[last - 1]; a[last - 1] = t;                                     \
        E pv = a[last - 1];                                                                    \
        int64_t i = lo, j = last - 1;                                                          \
        for (;;) {                                                                             \
            do i++; while (LESS(a[i], pv));                                                    \
            do j--; while (LESS(pv, a[j]));                                                    \
            if (i >= j) break;                                                                 \
            t = a[i]; a[i] = a[j]; a[j] = t;                                                   \
        }                                                                                      \
        t = a[i]; a[i] = a[last - 1]; a[last - 1] = t;                                         \
        return i;                                                                              \
    }                                                                                          \
    static void P##_introsort(E *a, int64_t lo, int64_t hi, int depth) {                       \
        while (hi - lo > SMALL_SORT) {                                                         \
            if (depth-- <= 0) {                                                                \
                P##_heapsort(a + lo, hi - lo);                                                 \
                return;                                                                        \
            }                                                                                  \
            int64_t p = P##_partition(a, lo, hi);                                              \
            if (p - lo < hi - p - 1) { /* recurse into the smaller side */                     \
                P##_introsort(a, lo, p, depth);                                                \
                lo = p + 1;                                                                    \
            } else {                                                                           \
                P##_introsort(a, p + 1, hi, depth);                                            \
                hi = p;                                                                        \
            }                                                                                  \
        }                                                                                      \
        P##_insertion(a + lo, hi - lo);                                                        \
    }                                                                                          \
    /* LSD radix sort on W-bit digits of the key: stable, so equal keys stay in index order,  \
     * which is the order the pairs were made in. Passes whose digit is the same everywhere   \
     * are skipped. tmp has room for n elements; hist, zeroed, for ND * 2^W counts. W is a     \
     * constant where this is inlined. */                                                     \
    static inline __attribute__((always_inline)) void P##_radix_w(E *a, E *tmp, int64_t n,     \
                                                                  const int W, int64_t *hist) { \
        const int ND = (KEYBITS + W - 1) / W, R = 1 << W;                                      \
        const uint64_t mask = (uint64_t)R - 1;                                                 \
        for (int64_t i = 0; i < n; i++)                                                        \
            for (int d = 0; d < ND; d++) hist[d * R + (int)((KEY(a[i]) >> (W * d)) & mask)]++;  \
        E *src = a, *dst = tmp;                                                                \
        for (int d = 0; d < ND; d++) {                                                         \
            int64_t *h = hist + d * R;                                                         \
            const int sh = W * d;                                                              \
            if (h[(KEY(a[0]) >> sh) & mask] == n) continue;                                    \
            int64_t sum = 0;                                                                   \
            for (int v = 0; v < R; v++) {                                                      \
                int64_t c = h[v];                                                              \
                h[v] = sum;                                                                    \
                sum += c;                                                                      \
            }                                                                                  \
            for (int64_t i = 0; i < n; i++) dst[h[(KEY(src[i]) >> sh) & mask]++] = src[i];     \
            E *t = src;                                                                        \
            src = dst;                                                                         \
            dst = t;                                                                           \
        }                                                                                      \
        if (src != a) memcpy(a, src, sizeof(E) * (size_t)n);                                   \
    }                                                                                          \
    /* Bytes for short rows; 11-bit digits for long ones (3 passes instead of 4 over 32-bit   \
     * keys: 128k floats sort in ~0.7 ms instead of ~1.2), their 2048-entry histograms in     \
     * hist (room for RADIX_HIST counts, from the caller's scratch). */                       \
    static void P##_radix(E *a, E *tmp, int64_t n, int64_t *hist) {                            \
        if (n >= RADIX_WIDE_MIN && hist) {                                                     \
            memset(hist, 0, sizeof *hist * ((size_t)((KEYBITS + 10) / 11) << 11));              \
            P##_radix_w(a, tmp, n, 11, hist);                                                  \
            return;                                                                            \
        }                                                                                      \
        int64_t h8[(KEYBITS / 8) << 8];                                                        \
        memset(h8, 0, sizeof h8);                                                              \
        P##_radix_w(a, tmp, n, 8, h8);                                                         \
    }                                                                                          \
    /* The same sort (11-bit digits) of one long row on T slices of it in parallel, the        \
     * classic parallel LSD scheme: per digit, each slice counts its values, a prefix over     \
     * (value, slice) gives each slice its own write offsets, and each slice scatters its      \
     * elements in order, so every pass stays stable and the result is the serial one. The     \
     * first phase counts all digits: their totals do not depend on the order and decide the   \
     * skipped passes, but a slice's counts of a later digit do, so they are counted again     \
     * before its pass. Slices run on whichever threads take them; the return of               \
     * lx_parallel_for is the barrier between phases. The result is copied back to a, as the   \
     * serial sort does (measured no slower than handing the caller tmp). */                   \
    typedef struct {                                                                           \
        E *src, *dst;                                                                          \
        int64_t n;                                                                             \
        int64_t *hist; /* [slice][digit][2^11]: counts, then write offsets */                  \
        int T, d;      /* slices; the digit to count (-1: all) or scatter */                   \
    } P##_par;                                                                                 \
    static void P##_par_count(void *vc, int64_t s0, int64_t s1) {                              \
        const P##_par *c = vc;                                                                 \
        const int ND = (KEYBITS + 10) / 11, R = 1 << 11;                                       \
        const E *a = c->src;                                                                   \
        for (int64_t s = s0; s < s1; s++) {                                                    \
            int64_t b = c->n * s / c->T, e = c->n * (s + 1) / c->T;                            \
            int64_t *h = c->hist + s * ND * R;                                                 \
            if (c->d < 0) {                                                                    \
                memset(h, 0, sizeof *h * (size_t)(ND * R));                                    \
                for (int64_t i = b; i < e; i++)                                                \
                    for (int d = 0; d < ND; d++)                                               \
                        h[d * R + (int)((KEY(a[i]) >> (11 * d)) & 2047)]++;                    \
            } else {                                                                           \
                const int sh = 11 * c->d;                                                      \
                h += c->d * R;                                                                 \
                memset(h, 0, sizeof *h * (size_t)R);                                           \
                for (int64_t i = b; i < e; i++) h[(KEY(a[i]) >> sh) & 2047]++;                 \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    static void P##_par_scatter(void *vc, int64_t s0, int64_t s1) {                            \
        const P##_par *c = vc;                                                                 \
        const int ND = (KEYBITS + 10) / 11, R = 1 << 11, sh = 11 * c->d;                       \
        const E *src = c->src;                                                                 \
        E *dst = c->dst;                                                                       \
        for (int64_t s = s0; s < s1; s++) {                                                    \
            int64_t b = c->n * s / c->T, e = c->n * (s + 1) / c->T;                            \
            int64_t *h = c->hist + (s * ND + c->d) * R;                                        \
            for (int64_t i = b; i < e; i++) dst[h[(KEY(src[i]) >> sh) & 2047]++] = src[i];     \
        }                                                                                      \
    }                                                                                          \
    /* tmp has room for n elements; hist for T * ND * 2^11 counts. */                          \
    static void P##_radix_par(E *a, E *tmp, int64_t n, int T, int64_t *hist) {                 \
        const int ND = (KEYBITS + 10) / 11, R = 1 << 11;                                       \
        P##_par c = {a, tmp, n, hist, T, -1};                                                  \
        lx_parallel_for(T, 1, P##_par_count, &c);                                              \
        bool counted = true; /* the slices' counts are those of the current order */           \
        for (c.d = 0; c.d < ND; c.d++) {                                                       \
            int64_t v0 = (int64_t)((KEY(a[0]) >> (11 * c.d)) & 2047), all = 0;                 \
            for (int s = 0; s < T; s++) all += hist[((int64_t)s * ND + c.d) * R + v0];         \
            if (all == n) continue;                                                            \
            if (!counted) lx_parallel_for(T, 1, P##_par_count, &c);                            \
            counted = false;                                                                   \
            int64_t sum = 0;                                                                   \
            for (int v = 0; v < R; v++)                                                        \
                for (int s = 0; s < T; s++) {                                                  \
                    int64_t *h = &hist[((int64_t)s * ND + c.d) * R + v], k = *h;               \
                    *h = sum;                                                                  \
                    sum += k;                                                                  \
                }                                                                              \
            lx_parallel_for(T, 1, P##_par_scatter, &c);                                        \
            E *t = c.src;                                                                      \
            c.src = c.dst;                                                                     \
            c.dst = t;                                                                         \
        }                                                                                      \
        if (c.src != a) memcpy(a, c.src, sizeof(E) * (size_t)n);                               \
    }                                                                                          \
    /* Sorts a[0, n); tmp (room for n elements, or NULL) enables the radix sort, on T slices   \
     * in parallel where T > 1; hist has room for T * RADIX_HIST counts (NULL: bytes only,    \
     * serially). */                                                                          \
    static void P##_sort(E *a, int64_t n, E *tmp, int T, int64_t *hist) {                      \
        if (tmp && n >= RADIX_MIN) {                                                           \
            if (T > 1 && n >= RADIX_WIDE_MIN && hist) P##_radix_par(a, tmp, n, T, hist);       \
            else P##_radix(a, tmp, n, hist);                                                   \
        } else {                                                                               \
            P##_introsort(a, 0, n, 2 * depth_limit(n));                                        \
        }                                                                                      \
    }                                                                                          \
    /* Puts the element of rank k at a[k], smaller ones before it, larger ones after. */      \
    static void P##_select(E *a, int64_t n, int64_t k) {                                       \
        int64_t lo = 0, hi = n;                                                                \
        int depth = 2 * depth_limit(n);                                                        \
        while (hi - lo > SMALL_SORT) {                                                         \
            if (depth-- <= 0) {                                                                \
                P##_heapsort(a + lo, hi - lo);                                                 \
                return;                                                                        \
            }                                                                                  \
            int64_t p = P##_partition(a, lo, hi);                                              \
            if (p == k) return;                                                                \
            if (k < p) hi = p;                                                                 \
            else lo = p + 1;                                                                   \
        }                                                                                      \
        P##_insertion(a + lo, hi - lo);                                                        \
    }

static inline int depth_limit(int64_t n) {
    int d = 0;
    while (n > 1) {
        n >>= 1;
        d++;
    }
    return d;
}

#define PK32_KEY(e) ((e) >> 32)
#define PK64_KEY(e) ((e).key)
DEFINE_SORTS(pk32, pk32, PK32_LESS, 32, PK32_KEY)
DEFINE_SORTS(pk64, pk64, PK64_LESS, 64, PK64_KEY)

/* ---- rows ------------------------------------------------------------------------------- */

typedef struct {
    lx_axis_rows g;
    const char *in;
    char *out;
    int mode;
    int64_t kth;     /* partitions */
    int64_t out_n;   /* output length along the axis (n, or k for topk) */
    size_t esz;      /* element size of the input */
    bool wide;       /* 64-bit keys */
    int slices;      /* > 1: a row's radix sort runs on this many slices in parallel */
    void (*keys)(const void *row, int64_t stride, int64_t n, void *pairs);
    lx_task_scratch *ts; /* sort_scratch_bytes per task */
    atomic_int failed;
} sort_ctx;

#define SK_DEFINE_KEYS(E, T, S)                                                                \
    static void keys_##S(const void *row, int64_t stride, int64_t n, void *pairs) {           \
        const T *p = row;                                                                      \
        if (SK_WIDE_##S) {                                                                     \
            pk64 *e = pairs;                                                                   \
            for (int64_t i = 0; i < n; i++) {                                                  \
                e[i].key = SK_KEY_##S(p[i * stride]);                                          \
                e[i].idx = (uint64_t)i;                                                        \
            }                                                                                  \
        } else {                                                                               \
            pk32 *e = pairs;                                                                   \
            if (stride == 1) /* the common case, a loop that vectorizes */                     \
                for (int64_t i = 0; i < n; i++) e[i] = SK_KEY_##S(p[i]) << 32 | (uint64_t)i;   \
            else                                                                               \
                for (int64_t i = 0; i < n; i++)                                                \
                    e[i] = SK_KEY_##S(p[i * stride]) << 32 | (uint64_t)i;                      \
        }                                                                                      \
    }
LX_FOR_EACH_DTYPE(SK_DEFINE_KEYS)

static void (*const keys_table[LX_DTYPE_COUNT])(const void *, int64_t, int64_t, void *) = {
#define SK_ENTRY(E, T, S) [E] = keys_##S,
    LX_FOR_EACH_DTYPE(SK_ENTRY)
#undef SK_ENTRY
};

/* Writes m results from pairs (their indices) to the output row: indices or gathered values. */
static void write_row(const sort_ctx *c, const void *pairs, int64_t first, int64_t m,
                      const char *row, char *dst) {
    const int64_t inner = c->g.inner;
    const int64_t s = c->g.axis_stride;
    bool indices = c->mode == LX_SORT_INDICES || c->mode == LX_SORT_ARGPARTITION;
    const pk32 *e32 = pairs;
    const pk64 *e64 = pairs;
#define IDX_AT(i) (c->wide ? PK64_IDX(e64[first + (i)]) : PK32_IDX(e32[first + (i)]))
    if (indices) {
        uint32_t *q = (uint32_t *)(void *)dst;
        for (int64_t i = 0; i < m; i++) q[i * inner] = IDX_AT(i);
        return;
    }
    switch (c->esz) {
#define GATHER(T)                                                                              \
    {                                                                                          \
        const T *src = (const T *)(const void *)row;                                           \
        T *q = (T *)(void *)dst;                                                               \
        for (int64_t i = 0; i < m; i++) q[i * inner] = src[(int64_t)IDX_AT(i) * s];           \
        break;                                                                                 \
    }
    case 1: GATHER(uint8_t)
    case 2: GATHER(uint16_t)
    case 4: GATHER(uint32_t)
    default: GATHER(uint64_t)
#undef GATHER
    }
#undef IDX_AT
}

/* Whether rows of c are radix sorted (they then need n more pairs and the histograms). */
static bool sort_radix(const sort_ctx *c) {
    return c->g.n >= RADIX_MIN && (c->mode == LX_SORT_VALUES || c->mode == LX_SORT_INDICES);
}

/* A task's scratch: n pairs, and where the radix sort runs n more and the 11-bit histograms
 * of its slices (8-byte pairs, so the counts after them are aligned). */
static size_t sort_scratch_bytes(const sort_ctx *c) {
    size_t psz = c->wide ? sizeof(pk64) : sizeof(pk32), n = (size_t)c->g.n;
    if (!sort_radix(c)) return n * psz;
    size_t hist = n >= RADIX_WIDE_MIN ? (size_t)c->slices * RADIX_HIST * sizeof(int64_t) : 0;
    return 2 * n * psz + hist;
}

static void sort_range(void *vc, int64_t r0, int64_t r1) {
    sort_ctx *c = vc;
    const int64_t n = c->g.n, inner = c->g.inner;
    size_t psz = c->wide ? sizeof(pk64) : sizeof(pk32);
    bool scratch = sort_radix(c);
    int slot;
    void *pairs = lx_task_scratch_take(c->ts, &slot);
    if (!pairs) {
        atomic_store(&c->failed, 1);
        return;
    }
    int64_t *hist = scratch && n >= RADIX_WIDE_MIN
                        ? (int64_t *)(void *)((char *)pairs + 2 * (size_t)n * psz)
                        : NULL;
    for (int64_t r = r0; r < r1; r++) {
        int64_t o = r / inner, j = r % inner;
        const char *row =
            c->in + (lx_axis_rows_outer_off(&c->g, o) + lx_axis_rows_inner_off(&c->g, j)) *
                        (int64_t)c->esz;
        size_t osz = (c->mode == LX_SORT_INDICES || c->mode == LX_SORT_ARGPARTITION)
                         ? sizeof(uint32_t) : c->esz;
        char *dst = c->out + (o * c->out_n * inner + j) * (int64_t)osz;
        c->keys(row, c->g.axis_stride, n, pairs);
        int64_t first = 0;
        switch (c->mode) {
        case LX_SORT_VALUES:
        case LX_SORT_INDICES:
            if (c->wide) pk64_sort(pairs, n, scratch ? (pk64 *)pairs + n : NULL, c->slices, hist);
            else pk32_sort(pairs, n, scratch ? (pk32 *)pairs + n : NULL, c->slices, hist);
            break;
        case LX_SORT_PARTITION:
        case LX_SORT_ARGPARTITION:
            if (c->wide) pk64_select(pairs, n, c->kth);
            else pk32_select(pairs, n, c->kth);
            break;
        default: /* TOPK: the last out_n in ascending order */
            first = n - c->out_n;
            if (c->wide) {
                if (first > 0) pk64_select(pairs, n, first);
                pk64_sort((pk64 *)pairs + first, c->out_n, NULL, 1, NULL);
            } else {
                if (first > 0) pk32_select(pairs, n, first);
                pk32_sort((pk32 *)pairs + first, c->out_n, NULL, 1, NULL);
            }
            break;
        }
        write_row(c, pairs, first, c->out_n, row, dst);
    }
    lx_task_scratch_give(c->ts, slot);
}

lx_status LX_CPU_KERNEL(SORT)(lx_kctx *kctx, lx_node *out) {
    const lx_node *in = out->inputs[0];
    const lx_sort_params *p = out->params;
    if (out->size == 0) return LX_OK;
    if (!p || p->axis < 0 || p->axis >= in->ndim || p->mode < LX_SORT_VALUES ||
        p->mode > LX_SORT_TOPK || !lx_dtype_valid(in->dtype) || in->ndim != out->ndim)
        return lx_set_error(LX_E_INTERNAL, "%s: bad SORT parameters", out->op);
    sort_ctx c;
    lx_axis_rows_init(&c.g, in, p->axis);
    c.in = lx_node_ptr(in);
    c.out = lx_node_ptr(out);
    c.mode = p->mode;
    c.kth = p->kth;
    c.out_n = out->shape[p->axis];
    c.esz = lx_dtype_size((lx_dtype)in->dtype);
    c.wide = c.esz == 8;
    c.keys = keys_table[in->dtype];
    atomic_init(&c.failed, 0);
    bool partition = c.mode == LX_SORT_PARTITION || c.mode == LX_SORT_ARGPARTITION;
    if ((partition && (c.kth < 0 || c.kth >= c.g.n)) || c.out_n > c.g.n ||
        (c.mode != LX_SORT_TOPK && c.out_n != c.g.n) || c.g.n > (int64_t)UINT32_MAX)
        return lx_set_error(LX_E_INTERNAL, "%s: bad SORT parameters (kth %lld, n %lld)", out->op,
                            (long long)c.kth, (long long)c.g.n);
    int64_t rows = c.g.outer * c.g.inner;
    int threads = lx_num_threads();
    /* few long rows: one row after the other, each sorted on all threads (with more rows,
     * rows side by side on one thread each waste less than the parallel passes do) */
    c.slices = 1;
    if (2 * rows <= threads && c.g.n >= RADIX_PAR_MIN &&
        (c.mode == LX_SORT_VALUES || c.mode == LX_SORT_INDICES))
        c.slices = c.g.n / RADIX_SLICE_MIN < threads ? (int)(c.g.n / RADIX_SLICE_MIN) : threads;
    int64_t grain = c.g.n >= 16384 ? 1 : 16384 / c.g.n;
    lx_task_scratch ts;
    if (!lx_task_scratch_init(&ts, kctx, sort_scratch_bytes(&c), c.slices > 1 ? 1 : rows, grain))
        return lx_set_error(LX_E_OOM, "%s: out of host memory for a sort of %lld elements",
                            out->op, (long long)c.g.n);
    c.ts = &ts;
    if (c.slices > 1) sort_range(&c, 0, rows);
    else lx_parallel_for(rows, grain, sort_range, &c);
    if (atomic_load(&c.failed))
        return lx_set_error(LX_E_OOM, "%s: out of host memory for a sort of %lld elements",
                            out->op, (long long)c.g.n);
    return LX_OK;
}
