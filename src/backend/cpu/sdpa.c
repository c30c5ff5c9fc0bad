/*
 * sdpa.c -- SDPA on the CPU: scaled dot-product attention as MLX's
 * fast.scaled_dot_product_attention, computed flash-style.
 *
 * q [B, Hq, Lq, D], k [B, Hkv, Lk, D], v [B, Hkv, Lk, Dv] (any strides), query head h reading
 * kv head h / (Hq / Hkv). No score matrix is materialised: the rows that share a kv head (the
 * Hq/Hkv query heads of a group times the Lq positions, flattened) are processed in blocks of
 * RB rows against blocks of KB keys with an online softmax: a running maximum m, a running
 * denominator l and an accumulator acc[Dv] per row, rescaled by exp(m_old - m_new) whenever
 * the maximum grows. Keys a block cannot see (causal) are skipped whole. Grouping the query
 * heads of a kv head into one block makes decoding (Lq = 1) read each key and value once for
 * all heads of the group; when there are too few blocks to occupy the threads, the keys are
 * also split into ranges whose partial (m, l, acc) states are merged afterwards (split-K).
 *
 * Compute is float32 (float64 for float64 inputs): half inputs are converted block by block,
 * float32 inputs with a unit last stride are read in place.
 *
 * Masks: causal keeps key j for query i iff j <= i + Lk - Lq (bottom-right aligned); a bool
 * mask keeps true entries; a float mask is added to the scaled scores. A sink (one logit per
 * query head) joins the softmax denominator only. A row that keeps no key has output zero.
 */
#ifndef LX_NN_TEMPLATE_PASS

#include <stdatomic.h>

#include "graph/elementwise_ops.h"
#include "backend/cpu/nn_util.h"
#include "graph/prims_nn.h"

#define RB 32 /* query rows per block */
#define KB 64 /* keys per block */
#define LX_SDPA_LANES 16

/* The float exp of the elementwise ops and softmax (elementwise_ops.h), with weights below
 * FLT_MIN (x < -87.34) set to 0: a subnormal weight adds nothing to a row's sum or to P.V but
 * can cost a microcode assist per multiply on CPUs that handle subnormals slowly. Written
 * as a select so that the loops over it vectorize. */
static inline float sdpa_expf(float x) {
    float e = lx_ew_exp_f(x);
    return lx_f32_from_bits(lx_bits_from_f32(e) & ~lx_mask_u32(x < -87.336544f));
}

#define LX_NN_TEMPLATE_PASS
#define CT float
#define SFX(name) name##_f32
#define CT_EXP sdpa_expf
#define CT_VEC lx_nn_vf32
#define CT_IVEC lx_nn_vi32
#define CT_DTYPE LX_FLOAT32
#include "backend/cpu/sdpa.c"
#undef CT
#undef SFX
#undef CT_EXP
#undef CT_VEC
#undef CT_IVEC
#undef CT_DTYPE
#define CT double
#define SFX(name) name##_f64
#define CT_EXP lx_nn_exp
#define CT_VEC lx_nn_vf64
#define CT_IVEC lx_nn_vi64
#define CT_DTYPE LX_FLOAT64
#include "backend/cpu/sdpa.c"
#undef CT
#undef SFX
#undef CT_EXP
#undef CT_VEC
#undef CT_IVEC
#undef CT_DTYPE
#undef LX_NN_TEMPLATE_PASS

lx_status LX_CPU_KERNEL(SDPA)(lx_kctx *kctx, lx_node *out) {
    if (out->size == 0) return LX_OK;
    return lx_nn_is_f64((lx_dtype)out->dtype) ? sdpa_f64(kctx, out) : sdpa_f32(kctx, out);
}

#else /* ---- template body ---- */

static inline CT SFX(sdpa_dot)(const CT *a, const CT *b, int64_t n) {
    CT acc[LX_SDPA_LANES] = {0};
    int64_t i = 0;
    for (; i + LX_SDPA_LANES <= n; i += LX_SDPA_LANES)
        for (int l = 0; l < LX_SDPA_LANES; l++) acc[l] += a[i + l] * b[i + l];
    CT s = 0;
    for (; i < n; i++) s += a[i] * b[i];
    for (int l = 0; l < LX_SDPA_LANES; l++) s += acc[l];
    return s;
}

static inline void SFX(sdpa_axpy)(CT *y, CT a, const CT *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

#ifdef LX_NN_VEC
#define VL ((int64_t)(LX_NN_VBYTES / sizeof(CT)))
static inline CT_VEC SFX(vload)(const CT *p) {
    CT_VEC v;
    memcpy(&v, p, sizeof v);
    return v;
}
/* Horizontal sum by halving (extracts and vector adds rather than VL scalar adds). */
typedef CT SFX(v16b) __attribute__((vector_size(16)));
#if LX_NN_VBYTES >= 32
typedef CT SFX(v32b) __attribute__((vector_size(32)));
#endif
static inline CT SFX(vsum)(CT_VEC v) {
#if LX_NN_VBYTES == 64
    SFX(v32b) h0, h1;
    memcpy(&h0, &v, 32);
    memcpy(&h1, (char *)&v + 32, 32);
    h0 += h1;
#elif LX_NN_VBYTES == 32
    SFX(v32b) h0 = v;
#endif
#if LX_NN_VBYTES >= 32
    SFX(v16b) q0, q1;
    memcpy(&q0, &h0, 16);
    memcpy(&q1, (char *)&h0 + 16, 16);
    q0 += q1;
#else
    SFX(v16b) q0 = v;
#endif
    CT s = 0;
    for (int64_t l = 0; l < (int64_t)(16 / sizeof(CT)); l++) s += q0[l];
    return s;
}

/* Scores of one query row against a transposed key block kT[D][KB] (all KB columns): no
 * horizontal sums, one broadcast of q[d] per KB/VL vector multiply-adds. */
static void SFX(sdpa_scores_t)(CT *s, const CT *q, const CT *kT, int64_t D) {
    CT_VEC a[KB / VL];
    for (int64_t c = 0; c < KB / VL; c++) a[c] = (CT_VEC){0};
    for (int64_t d = 0; d < D; d++) {
        CT qd = q[d];
        const CT *kr = kT + d * KB;
        for (int64_t c = 0; c < KB / VL; c++) a[c] += qd * SFX(vload)(kr + c * VL);
    }
    memcpy(s, a, sizeof a);
}
#endif

/* The largest of s[0..n) (-inf if none); *nan tells whether a NaN was seen. */
static CT SFX(sdpa_rowmax)(const CT *s, int64_t n, bool *nan) {
    CT mx = -INFINITY;
    bool bad = false;
    int64_t j = 0;
#ifdef LX_NN_VEC
    if (n >= VL) {
        CT_VEC mv = SFX(vload)(s);
        CT_IVEC nv = mv != mv;
        for (j = VL; j + VL <= n; j += VL) {
            CT_VEC v = SFX(vload)(s + j);
            CT_IVEC gt = v > mv;
            mv = (CT_VEC)(((CT_IVEC)v & gt) | ((CT_IVEC)mv & ~gt));
            nv |= v != v;
        }
        for (int64_t l = 0; l < VL; l++) {
            if (mv[l] > mx) mx = mv[l];
            if (nv[l]) bad = true;
        }
    }
#endif
    for (; j < n; j++) {
        if (s[j] > mx) mx = s[j];
        else if (s[j] != s[j]) bad = true;
    }
    *nan = bad;
    return mx;
}

/* s[j] = exp(s[j] - m) for j < n; returns their sum. The exp loop vectorizes on its own (float);
 * the sum keeps vector accumulators. */
static CT SFX(sdpa_exp_sum)(CT *s, int64_t n, CT m) {
    for (int64_t j = 0; j < n; j++) s[j] = CT_EXP(s[j] - m);
    CT sum = 0;
    int64_t j = 0;
#if defined(LX_NN_VEC)
    CT_VEC acc = {0};
    for (; j + VL <= n; j += VL) acc += SFX(vload)(s + j);
    sum = SFX(vsum)(acc);
#endif
    for (; j < n; j++) sum += s[j];
    return sum;
}

/* s[j] = q . k_j for j < n: four keys at a time share each load of q. */
static void SFX(sdpa_scores)(CT *s, const CT *q, const CT *const *kp, int64_t n, int64_t D) {
    int64_t j = 0;
#ifdef LX_NN_VEC
    for (; j + 4 <= n; j += 4) {
        const CT *k0 = kp[j], *k1 = kp[j + 1], *k2 = kp[j + 2], *k3 = kp[j + 3];
        CT_VEC a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        int64_t d = 0;
        for (; d + VL <= D; d += VL) {
            CT_VEC qv = SFX(vload)(q + d);
            a0 += qv * SFX(vload)(k0 + d);
            a1 += qv * SFX(vload)(k1 + d);
            a2 += qv * SFX(vload)(k2 + d);
            a3 += qv * SFX(vload)(k3 + d);
        }
        CT s0 = SFX(vsum)(a0), s1 = SFX(vsum)(a1), s2 = SFX(vsum)(a2), s3 = SFX(vsum)(a3);
        for (; d < D; d++) {
            s0 += q[d] * k0[d];
            s1 += q[d] * k1[d];
            s2 += q[d] * k2[d];
            s3 += q[d] * k3[d];
        }
        s[j] = s0, s[j + 1] = s1, s[j + 2] = s2, s[j + 3] = s3;
    }
#endif
    for (; j < n; j++) s[j] = SFX(sdpa_dot)(q, kp[j], D);
}

/* acc[0..Dv) += sum_j p[j] * v_j: the accumulator stays in registers across the keys. */
static void SFX(sdpa_pv)(CT *acc, const CT *p, const CT *const *vp, int64_t n, int64_t Dv) {
    int64_t d = 0;
#ifdef LX_NN_VEC
    for (; d + 4 * VL <= Dv; d += 4 * VL) {
        CT_VEC a0 = SFX(vload)(acc + d), a1 = SFX(vload)(acc + d + VL),
               a2 = SFX(vload)(acc + d + 2 * VL), a3 = SFX(vload)(acc + d + 3 * VL);
        for (int64_t j = 0; j < n; j++) {
            const CT *v = vp[j] + d;
            CT pj = p[j];
            a0 += pj * SFX(vload)(v);
            a1 += pj * SFX(vload)(v + VL);
            a2 += pj * SFX(vload)(v + 2 * VL);
            a3 += pj * SFX(vload)(v + 3 * VL);
        }
        memcpy(acc + d, &a0, sizeof a0);
        memcpy(acc + d + VL, &a1, sizeof a1);
        memcpy(acc + d + 2 * VL, &a2, sizeof a2);
        memcpy(acc + d + 3 * VL, &a3, sizeof a3);
    }
    for (; d + VL <= Dv; d += VL) {
        CT_VEC a0 = SFX(vload)(acc + d);
        for (int64_t j = 0; j < n; j++) a0 += p[j] * SFX(vload)(vp[j] + d);
        memcpy(acc + d, &a0, sizeof a0);
    }
#undef VL
#endif
    for (; d < Dv; d++) {
        CT a = acc[d];
        for (int64_t j = 0; j < n; j++) a += p[j] * vp[j][d];
        acc[d] = a;
    }
}

typedef struct {
    const lx_node *out, *q, *k, *v, *mask, *sinks;
    const lx_sdpa_params *p;
    int64_t B, Hq, Hkv, G, Lq, Lk, D, Dv;
    int64_t nib;  /* row blocks per query head (per_g) */
    int64_t nblk; /* row blocks per (b, kv head) */
    bool per_g;   /* blocks stay within one query head (Lq >= RB) */
    bool k_direct, v_direct; /* k / v read in place (compute dtype, unit last stride) */
    int64_t nsplit, split_len;
    CT *partial; /* nsplit > 1: [task][split][RB][Dv + 2] (m, l, acc) */
    lx_task_scratch *work;  /* sdpa_scratch_bytes per task of sdpa_items */
    lx_task_scratch *merge; /* Dv + 1 values and nsplit pointers per task of sdpa_merge */
    _Atomic int failed;
} SFX(sdpa_ctx);

/* Scratch of one worker. */
typedef struct {
    CT *qf;     /* [RB][D] scaled queries */
    CT *s;      /* [RB][KB] scores, then probabilities */
    CT *acc;    /* [RB][Dv] */
    CT *kf;     /* [KB][D] converted keys (unless direct) */
    CT *vf;     /* [KB][Dv] converted values (unless direct) */
    CT *mrow;   /* [KB] additive mask values */
    CT *mrow2;  /* [D] one converted key row (transposed path) */
    CT *m, *l;  /* [RB] */
    const CT **kp, **vp; /* [KB] */
    int64_t *jend, *lim; /* [RB] */
    const char **mptr;   /* [RB] mask row of each row */
    int64_t *hq, *qi;    /* [RB] query head and position of each row */
} SFX(sdpa_scratch);

/* Rounds an element count up to a multiple of 64 bytes of CT. */
static inline size_t SFX(sdpa_round)(int64_t n) {
    size_t per = 64 / sizeof(CT);
    return ((size_t)n + per - 1) / per * per;
}

/* The pointer and index arrays of a worker's scratch (8-byte aligned), in bytes: a multiple of
 * 64, so the CT arrays after them each start on 64 bytes. */
static inline size_t SFX(sdpa_scratch_head)(void) {
    size_t head = (2 * KB) * sizeof(CT *) + 4 * RB * sizeof(int64_t) + RB * sizeof(char *);
    return (head + 63) / 64 * 64;
}

/* Bytes of one worker's scratch. */
static size_t SFX(sdpa_scratch_bytes)(int64_t D, int64_t Dv) {
    size_t n_ct = SFX(sdpa_round)(RB * D) + SFX(sdpa_round)(RB * KB) + SFX(sdpa_round)(RB * Dv) +
                  SFX(sdpa_round)(KB * D) + SFX(sdpa_round)(KB * Dv) + SFX(sdpa_round)(KB) +
                  SFX(sdpa_round)(D) + 2 * SFX(sdpa_round)(RB);
    return SFX(sdpa_scratch_head)() + n_ct * sizeof(CT);
}

/* Lays a worker's scratch out over p (sdpa_scratch_bytes, 64-byte aligned: lx's allocator). */
static void SFX(sdpa_scratch_carve)(SFX(sdpa_scratch) *w, char *p, int64_t D, int64_t Dv) {
    size_t head = SFX(sdpa_scratch_head)();
    w->kp = (const CT **)(void *)p;
    w->vp = w->kp + KB;
    w->jend = (int64_t *)(void *)(w->vp + KB);
    w->lim = w->jend + RB;
    w->hq = w->lim + RB;
    w->qi = w->hq + RB;
    w->mptr = (const char **)(void *)(w->qi + RB);
    CT *c = (CT *)(void *)(p + head);
    w->qf = c, c += SFX(sdpa_round)(RB * D);
    w->s = c, c += SFX(sdpa_round)(RB * KB);
    w->acc = c, c += SFX(sdpa_round)(RB * Dv);
    w->kf = c, c += SFX(sdpa_round)(KB * D);
    w->vf = c, c += SFX(sdpa_round)(KB * Dv);
    w->mrow = c, c += SFX(sdpa_round)(KB);
    w->mrow2 = c, c += SFX(sdpa_round)(D);
    w->m = c, c += SFX(sdpa_round)(RB);
    w->l = c;
}

/* Rows [start, start + count) of the flattened (g, i) rows of kv head hkv of batch b. */
static void SFX(sdpa_task_rows)(const SFX(sdpa_ctx) *c, int64_t task, int64_t *b, int64_t *hkv,
                                int64_t *start, int64_t *count) {
    int64_t bh = task / c->nblk, blk = task % c->nblk;
    *b = bh / c->Hkv;
    *hkv = bh % c->Hkv;
    if (c->per_g) {
        int64_t g = blk / c->nib, ib = blk % c->nib;
        *start = g * c->Lq + ib * RB;
        *count = c->Lq - ib * RB < RB ? c->Lq - ib * RB : RB;
    } else {
        *start = blk * RB;
        int64_t total = c->G * c->Lq;
        *count = total - *start < RB ? total - *start : RB;
    }
}

/* Merges partial states (m_s, l_s, acc_s) s < ns and the sink into the output row. */
static void SFX(sdpa_finish_row)(const SFX(sdpa_ctx) *c, const CT *ms, const CT *ls,
                                 const CT *const *accs, int64_t stride, int64_t ns, bool has_sink,
                                 CT sink, CT *tmp, char *dst) {
    int64_t Dv = c->Dv;
    CT M = -INFINITY;
    bool nan = false;
    for (int64_t s = 0; s < ns; s++) {
        CT m = ms[s * stride], l = ls[s * stride];
        if (l != l) nan = true;
        if (m > M) M = m;
    }
    if (has_sink && sink > M) M = sink;
    for (int64_t j = 0; j < Dv; j++) tmp[j] = 0;
    CT L = 0;
    if (nan || M != M) {
        L = NAN;
    } else if (M != -INFINITY) {
        for (int64_t s = 0; s < ns; s++) {
            CT m = ms[s * stride], l = ls[s * stride];
            if (m == -INFINITY || l == 0) continue;
            CT f = CT_EXP(m - M);
            L += l * f;
            SFX(sdpa_axpy)(tmp, f, accs[s], Dv);
        }
        if (has_sink) L += CT_EXP(sink - M);
    }
    if (L != 0) {
        CT inv = (CT)1 / L;
        for (int64_t j = 0; j < Dv; j++) tmp[j] *= inv;
    } else {
        for (int64_t j = 0; j < Dv; j++) tmp[j] = 0;
    }
    SFX(lx_nn_store)(dst, (lx_dtype)c->out->dtype, tmp, Dv);
}

/* One (row block, key range): the online softmax over keys [kbeg, kend). */
static void SFX(sdpa_block)(SFX(sdpa_ctx) *c, SFX(sdpa_scratch) *w, int64_t task, int64_t split) {
    const lx_sdpa_params *p = c->p;
    const lx_node *q = c->q, *k = c->k, *v = c->v, *mask = c->mask;
    int64_t D = c->D, Dv = c->Dv, Lq = c->Lq, Lk = c->Lk;
    int64_t b, hkv, start, count;
    SFX(sdpa_task_rows)(c, task, &b, &hkv, &start, &count);
    lx_dtype qt = (lx_dtype)q->dtype;
    size_t esz = lx_dtype_size(qt);

    /* rows: scaled queries, visible key limit, mask row */
    int64_t kmax = 0;
    for (int64_t r = 0; r < count; r++) {
        int64_t f = start + r, g = f / Lq, i = f % Lq, hq = hkv * c->G + g;
        w->hq[r] = hq;
        w->qi[r] = i;
        const char *qrow = lx_nn_elem(q, b * q->strides[0] + hq * q->strides[1] +
                                             i * q->strides[2]);
        SFX(lx_nn_load)(w->qf + r * D, qrow, qt, q->strides[3], D);
        CT sc = (CT)p->scale;
        for (int64_t j = 0; j < D; j++) w->qf[r * D + j] *= sc;
        int64_t je = Lk;
        if (p->causal) {
            je = i + Lk - Lq + 1;
            je = je < 0 ? 0 : (je > Lk ? Lk : je);
        }
        w->jend[r] = je;
        if (je > kmax) kmax = je;
        if (mask)
            w->mptr[r] = lx_nn_elem(mask, b * mask->strides[0] + hq * mask->strides[1] +
                                              i * mask->strides[2]);
        w->m[r] = -INFINITY;
        w->l[r] = 0;
        for (int64_t j = 0; j < Dv; j++) w->acc[r * Dv + j] = 0;
    }
    int64_t kbeg = split * c->split_len;
    int64_t kend = kbeg + c->split_len < Lk ? kbeg + c->split_len : Lk;
    if (kend > kmax) kend = kmax;

    const char *kbase = lx_nn_elem(k, b * k->strides[0] + hkv * k->strides[1]);
    const char *vbase = lx_nn_elem(v, b * v->strides[0] + hkv * v->strides[1]);
    lx_dtype mt = mask ? (lx_dtype)mask->dtype : LX_FLOAT32;
    size_t msz = mask ? lx_dtype_size(mt) : 0;
    for (int64_t j0 = kbeg; j0 < kend; j0 += KB) {
        int64_t jn = kend - j0 < KB ? kend - j0 : KB;
        /* many rows: transpose the key block once (kT[D][KB] in w->kf, zero-padded) so each
         * row's scores need no horizontal sums; few rows (decoding): dot products */
        bool tr = false;
#ifdef LX_NN_VEC
        tr = count >= 8;
#endif
        for (int64_t j = 0; j < jn; j++) {
            const char *kr = kbase + (size_t)((j0 + j) * k->strides[2]) * esz;
            if (tr) {
                const CT *row = (const CT *)(const void *)kr;
                if (!c->k_direct) {
                    SFX(lx_nn_load)(w->mrow2, kr, qt, k->strides[3], D);
                    row = w->mrow2;
                }
                for (int64_t d = 0; d < D; d++) w->kf[d * KB + j] = row[d];
            } else if (c->k_direct) {
                w->kp[j] = (const CT *)(const void *)kr;
            } else {
                SFX(lx_nn_load)(w->kf + j * D, kr, qt, k->strides[3], D);
                w->kp[j] = w->kf + j * D;
            }
        }
        if (tr && jn < KB)
            for (int64_t d = 0; d < D; d++)
                for (int64_t j = jn; j < KB; j++) w->kf[d * KB + j] = 0;
        bool any = false;
        for (int64_t r = 0; r < count; r++) {
            CT *s = w->s + r * KB;
            int64_t lim = w->jend[r] - j0;
            lim = lim > jn ? jn : lim;
            w->lim[r] = 0;
            if (lim <= 0) continue;
#ifdef LX_NN_VEC
            if (tr)
                SFX(sdpa_scores_t)(s, w->qf + r * D, w->kf, D);
            else
#endif
                SFX(sdpa_scores)(s, w->qf + r * D, w->kp, lim, D);
            if (mask) {
                SFX(lx_nn_load)(w->mrow, w->mptr[r] + (size_t)(j0 * mask->strides[3]) * msz, mt,
                                mask->strides[3], lim);
                if (mt == LX_BOOL)
                    for (int64_t j = 0; j < lim; j++) s[j] = w->mrow[j] != 0 ? s[j] : -INFINITY;
                else
                    for (int64_t j = 0; j < lim; j++) s[j] += w->mrow[j];
            }
            bool nan;
            CT mx = SFX(sdpa_rowmax)(s, lim, &nan);
            if (mx == -INFINITY) {
                if (nan) w->l[r] = NAN;
                continue;
            }
            CT mold = w->m[r];
            CT mnew = mold > mx ? mold : mx;
            CT corr = CT_EXP(mold - mnew); /* 0 while nothing was seen */
            CT sum = SFX(sdpa_exp_sum)(s, lim, mnew);
            w->l[r] = w->l[r] * corr + sum;
            if (corr != (CT)1) {
                CT *a = w->acc + r * Dv;
                for (int64_t j = 0; j < Dv; j++) a[j] *= corr;
            }
            w->m[r] = mnew;
            w->lim[r] = lim;
            any = true;
        }
        if (!any) continue;
        int64_t vmax = 0;
        for (int64_t r = 0; r < count; r++)
            if (w->lim[r] > vmax) vmax = w->lim[r];
        for (int64_t j = 0; j < vmax; j++) {
            const char *vr = vbase + (size_t)((j0 + j) * v->strides[2]) * esz;
            if (c->v_direct) {
                w->vp[j] = (const CT *)(const void *)vr;
            } else {
                SFX(lx_nn_load)(w->vf + j * Dv, vr, qt, v->strides[3], Dv);
                w->vp[j] = w->vf + j * Dv;
            }
        }
        for (int64_t r = 0; r < count; r++)
            SFX(sdpa_pv)(w->acc + r * Dv, w->s + r * KB, w->vp, w->lim[r], Dv);
    }

    if (c->nsplit > 1) {
        CT *part = c->partial + (task * c->nsplit + split) * RB * (Dv + 2);
        for (int64_t r = 0; r < count; r++) {
            CT *pr = part + r * (Dv + 2);
            pr[0] = w->m[r];
            pr[1] = w->l[r];
            memcpy(pr + 2, w->acc + r * Dv, sizeof(CT) * (size_t)Dv);
        }
        return;
    }
    char *op = lx_node_ptr(c->out);
    for (int64_t r = 0; r < count; r++) {
        int64_t hq = w->hq[r], i = w->qi[r];
        CT sink = 0;
        if (c->sinks)
            SFX(lx_nn_load)(&sink, lx_nn_elem(c->sinks, hq * c->sinks->strides[0]), qt, 1, 1);
        const CT *a = w->acc + r * Dv;
        char *dst = op + (size_t)(((b * c->Hq + hq) * Lq + i) * Dv) * esz;
        /* w->vf (KB * Dv values) is free now: the row buffer of the output */
        SFX(sdpa_finish_row)(c, &w->m[r], &w->l[r], &a, 1, 1, c->sinks != NULL, sink, w->vf, dst);
    }
}

static void SFX(sdpa_items)(void *vctx, int64_t begin, int64_t end) {
    SFX(sdpa_ctx) *c = vctx;
    SFX(sdpa_scratch) w;
    int slot;
    char *p = lx_task_scratch_take(c->work, &slot);
    if (!p) {
        atomic_store(&c->failed, 1);
        return;
    }
    SFX(sdpa_scratch_carve)(&w, p, c->D, c->Dv);
    for (int64_t it = begin; it < end; it++) SFX(sdpa_block)(c, &w, it / c->nsplit, it % c->nsplit);
    lx_task_scratch_give(c->work, slot);
}

/* split-K: merges the partial states of each task's rows. */
static void SFX(sdpa_merge)(void *vctx, int64_t begin, int64_t end) {
    SFX(sdpa_ctx) *c = vctx;
    int64_t Dv = c->Dv, ns = c->nsplit;
    size_t esz = lx_dtype_size((lx_dtype)c->out->dtype);
    int slot;
    const CT **accs = lx_task_scratch_take(c->merge, &slot);
    if (!accs) {
        atomic_store(&c->failed, 1);
        return;
    }
    CT *tmp = (CT *)(void *)(accs + ns); /* 8-byte pointers, so CT-aligned */
    char *op = lx_node_ptr(c->out);
    for (int64_t task = begin; task < end; task++) {
        int64_t b, hkv, start, count;
        SFX(sdpa_task_rows)(c, task, &b, &hkv, &start, &count);
        for (int64_t r = 0; r < count; r++) {
            int64_t f = start + r, g = f / c->Lq, i = f % c->Lq, hq = hkv * c->G + g;
            const CT *base = c->partial + (task * ns * RB + r) * (Dv + 2);
            int64_t stride = RB * (Dv + 2);
            for (int64_t s = 0; s < ns; s++) accs[s] = base + s * stride + 2;
            CT sink = 0;
            if (c->sinks)
                SFX(lx_nn_load)(&sink, lx_nn_elem(c->sinks, hq * c->sinks->strides[0]),
                                (lx_dtype)c->sinks->dtype, 1, 1);
            char *dst = op + (size_t)(((b * c->Hq + hq) * c->Lq + i) * Dv) * esz;
            SFX(sdpa_finish_row)(c, base, base + 1, accs, stride, ns, c->sinks != NULL, sink, tmp,
                                 dst);
        }
    }
    lx_task_scratch_give(c->merge, slot);
}

static lx_status SFX(sdpa)(lx_kctx *kctx, lx_node *out) {
    const lx_sdpa_params *p = out->params;
    SFX(sdpa_ctx) c;
    memset(&c, 0, sizeof c);
    c.out = out;
    c.p = p;
    c.q = out->inputs[0];
    c.k = out->inputs[1];
    c.v = out->inputs[2];
    int idx = 3;
    if (p->has_mask) c.mask = out->inputs[idx++];
    if (p->has_sinks) c.sinks = out->inputs[idx++];
    c.B = c.q->shape[0];
    c.Hq = c.q->shape[1];
    c.Lq = c.q->shape[2];
    c.D = c.q->shape[3];
    c.Hkv = c.k->shape[1];
    c.Lk = c.k->shape[2];
    c.Dv = c.v->shape[3];
    c.G = c.Hq / c.Hkv;
    c.per_g = c.Lq >= RB;
    c.nib = (c.Lq + RB - 1) / RB;
    c.nblk = c.per_g ? c.G * c.nib : (c.G * c.Lq + RB - 1) / RB;
    c.k_direct = c.k->dtype == CT_DTYPE && (c.k->strides[3] == 1 || c.D <= 1);
    c.v_direct = c.v->dtype == CT_DTYPE && (c.v->strides[3] == 1 || c.Dv <= 1);
    atomic_init(&c.failed, 0);

    int64_t tasks = c.B * c.Hkv * c.nblk;
    int64_t threads = lx_num_threads();
    c.nsplit = 1;
    c.split_len = c.Lk > 0 ? c.Lk : 1;
    if (tasks < 2 * threads && c.Lk >= 4 * KB) {
        int64_t want = (2 * threads + tasks - 1) / tasks;
        int64_t most = (c.Lk + 255) / 256;
        int64_t ns = want < most ? want : most;
        if (ns > 1) {
            int64_t kblocks = (c.Lk + KB - 1) / KB;
            c.split_len = (kblocks + ns - 1) / ns * KB;
            c.nsplit = (c.Lk + c.split_len - 1) / c.split_len;
        }
    }
    if (c.nsplit > 1) {
        c.partial =
            lx_kernel_scratch(kctx, sizeof(CT) * (size_t)(tasks * c.nsplit * RB * (c.Dv + 2)));
        if (!c.partial) return LX_NN_OOM(out->op);
    }
    lx_task_scratch work;
    if (!lx_task_scratch_init(&work, kctx, SFX(sdpa_scratch_bytes)(c.D, c.Dv), tasks * c.nsplit,
                              1))
        return LX_NN_OOM(out->op);
    c.work = &work;
    lx_parallel_for(tasks * c.nsplit, 1, SFX(sdpa_items), &c);
    if (c.nsplit > 1 && !atomic_load(&c.failed)) {
        lx_task_scratch merge;
        size_t mbytes = sizeof(CT *) * (size_t)c.nsplit + sizeof(CT) * (size_t)(c.Dv + 1);
        if (!lx_task_scratch_init(&merge, kctx, mbytes, tasks, 1)) return LX_NN_OOM(out->op);
        c.merge = &merge;
        lx_parallel_for(tasks, 1, SFX(sdpa_merge), &c);
    }
    if (atomic_load(&c.failed)) return LX_NN_OOM(out->op);
    return LX_OK;
}

#endif
