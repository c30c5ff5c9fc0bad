/*
 * conv.c -- convolutions and nearest upsampling, channels last as MLX.
 *
 * conv1d: x [N, L, Cin], w [Cout, K, Cin/groups] -> [N, Lout, Cout];
 * conv2d: x [N, H, W, Cin], w [Cout, KH, KW, Cin/groups] -> [N, Hout, Wout, Cout], with
 *   out = (in + 2*padding - dilation*(k-1) - 1) / stride + 1 per spatial dim;
 * conv_transpose1d: MLX's conv_transpose_general, i.e. a convolution of the input dilated by
 *   `stride`, padded by dilation*(K-1) - padding (low) and dilation*(K-1) - padding +
 *   output_padding (high), with the kernel flipped: Lout = (L-1)*stride - 2*padding +
 *   dilation*(K-1) + output_padding + 1. The weight is [Cout, K, Cin/groups] as in MLX.
 * The output dtype is x and w promoted (a floating type); computed in float32 (float64 for
 * float64). upsample_nearest repeats each pixel scale_h x scale_w times (any dtype).
 */
#include <string.h>

#include "graph/prims_nn.h"
#include "ops/ops.h"

static lx_array conv_impl(const char *op, lx_array xa, lx_array wa, int nsp, const int *stride,
                          const int *pad_lo, const int *pad_hi, const int *kdil, const int *idil,
                          int groups, bool flip) {
    lx_node *in[2] = {NULL, NULL};
    in[0] = lx_arg(xa, op, "x");
    in[1] = in[0] ? lx_arg(wa, op, "w") : NULL;
    if (!in[1]) {
        lx_release_nodes(in, 2);
        return LX_NULL_ARRAY;
    }
    lx_node *x = in[0], *w = in[1];
    const char *layout = nsp == 1 ? "[N, L, C_in]" : "[N, H, W, C_in]";
    const char *wlayout = nsp == 1 ? "[C_out, K, C_in/groups]" : "[C_out, KH, KW, C_in/groups]";
    char sx[96], sw[96];
    lx_shape_str(x->shape, x->ndim, sx, sizeof sx);
    lx_shape_str(w->shape, w->ndim, sw, sizeof sw);
    lx_status st = LX_OK;
    int out_shape[4];
    if (x->ndim != nsp + 2) {
        st = lx_set_error(LX_E_SHAPE, "%s: argument x has shape %s; expected %d dimensions %s",
                          op, sx, nsp + 2, layout);
    } else if (w->ndim != nsp + 2) {
        st = lx_set_error(LX_E_SHAPE, "%s: argument w has shape %s; expected %d dimensions %s",
                          op, sw, nsp + 2, wlayout);
    } else if (groups <= 0) {
        st = lx_set_error(LX_E_ARG, "%s: groups %d must be positive", op, groups);
    } else if (x->shape[nsp + 1] % groups != 0 || w->shape[0] % groups != 0) {
        st = lx_set_error(LX_E_SHAPE, "%s: groups %d must divide the input channels of x %s and "
                          "the output channels of w %s", op, groups, sx, sw);
    } else if ((int64_t)w->shape[nsp + 1] * groups != x->shape[nsp + 1]) {
        st = lx_set_error(LX_E_SHAPE, "%s: x %s has %d input channels but w %s with %d groups "
                          "expects %lld", op, sx, x->shape[nsp + 1], sw, groups,
                          (long long)w->shape[nsp + 1] * groups);
    }
    for (int d = 0; st == LX_OK && d < nsp; d++) {
        if (stride[d] <= 0 || kdil[d] <= 0 || idil[d] <= 0) {
            st = lx_set_error(LX_E_ARG, "%s: stride %d and dilation %d must be positive", op,
                              stride[d], kdil[d]);
            break;
        }
        int64_t in_len = x->shape[1 + d], k = w->shape[1 + d];
        if (k <= 0 || in_len <= 0) {
            st = lx_set_error(LX_E_SHAPE, "%s: empty spatial dimension in x %s or w %s", op, sx,
                              sw);
            break;
        }
        int64_t in_d = (in_len - 1) * idil[d] + 1;
        int64_t padded = in_d + pad_lo[d] + pad_hi[d];
        int64_t k_d = (int64_t)kdil[d] * (k - 1) + 1;
        if (padded < k_d) {
            st = lx_set_error(LX_E_SHAPE, "%s: spatial dim %d: the padded input (%lld) is shorter "
                              "than the dilated kernel (%lld); x %s, w %s", op, d,
                              (long long)padded, (long long)k_d, sx, sw);
            break;
        }
        int64_t o = (padded - k_d) / stride[d] + 1;
        if (o > INT32_MAX) {
            st = lx_set_error(LX_E_SHAPE, "%s: output length %lld is too large", op, (long long)o);
            break;
        }
        out_shape[1 + d] = (int)o;
    }
    int t = -1;
    if (st == LX_OK) {
        t = lx_promote_types((lx_dtype)x->dtype, (lx_dtype)w->dtype);
        if (!lx_dtype_is_float((lx_dtype)t)) {
            st = lx_set_error(LX_E_DTYPE, "%s: unsupported dtypes x %s, w %s; a floating type is "
                              "required", op, lx_dtype_name((lx_dtype)x->dtype),
                              lx_dtype_name((lx_dtype)w->dtype));
        }
    }
    if (st != LX_OK) {
        lx_release_nodes(in, 2);
        return LX_NULL_ARRAY;
    }
    out_shape[0] = x->shape[0];
    out_shape[nsp + 1] = w->shape[0];
    lx_conv_params p;
    memset(&p, 0, sizeof p);
    p.nsp = nsp;
    p.groups = groups;
    p.flip = flip;
    for (int d = 0; d < nsp; d++) {
        p.stride[d] = stride[d];
        p.pad_lo[d] = pad_lo[d];
        p.pad_hi[d] = pad_hi[d];
        p.kdil[d] = kdil[d];
        p.idil[d] = idil[d];
    }
    in[0] = lx_node_astype(op, in[0], (lx_dtype)t);
    in[1] = lx_node_astype(op, in[1], (lx_dtype)t);
    if (!in[0] || !in[1]) {
        lx_release_nodes(in, 2);
        return LX_NULL_ARRAY;
    }
    return lx_build_array(op, LX_PRIM_CONV, (lx_dtype)t, out_shape, nsp + 2, in, 2, &p, sizeof p);
}

static bool check_nonneg(const char *op, const char *what, const int *v, int n) {
    for (int i = 0; i < n; i++)
        if (v[i] < 0) {
            lx_set_error(LX_E_ARG, "%s: %s %d is negative", op, what, v[i]);
            return false;
        }
    return true;
}

lx_array lx_conv1d(lx_array x, lx_array w, int stride, int padding, int dilation, int groups) {
    const char *op = "lx_conv1d";
    if (!check_nonneg(op, "padding", &padding, 1)) return LX_NULL_ARRAY;
    int one = 1;
    return conv_impl(op, x, w, 1, &stride, &padding, &padding, &dilation, &one, groups, false);
}

lx_array lx_conv2d(lx_array x, lx_array w, const int *stride, const int *padding,
                   const int *dilation, int groups) {
    const char *op = "lx_conv2d";
    static const int ones[2] = {1, 1}, zeros[2] = {0, 0};
    if (!stride) stride = ones;
    if (!padding) padding = zeros;
    if (!dilation) dilation = ones;
    if (!check_nonneg(op, "padding", padding, 2)) return LX_NULL_ARRAY;
    return conv_impl(op, x, w, 2, stride, padding, padding, dilation, ones, groups, false);
}

lx_array lx_conv_transpose1d(lx_array xa, lx_array wa, int stride, int padding, int dilation,
                             int output_padding, int groups) {
    const char *op = "lx_conv_transpose1d";
    if (!check_nonneg(op, "padding", &padding, 1) ||
        !check_nonneg(op, "output_padding", &output_padding, 1))
        return LX_NULL_ARRAY;
    if (stride <= 0 || dilation <= 0) {
        lx_set_error(LX_E_ARG, "%s: stride %d and dilation %d must be positive", op, stride,
                     dilation);
        return LX_NULL_ARRAY;
    }
    /* the kernel length is needed for the padding: look at w first */
    lx_node *w = lx_arg(wa, op, "w");
    if (!w) return LX_NULL_ARRAY;
    int64_t k = w->ndim == 3 ? w->shape[1] : 1;
    lx_node_release(w);
    int64_t lo = (int64_t)dilation * (k - 1) - padding;
    int64_t hi = lo + output_padding;
    if (lo < INT32_MIN || hi > INT32_MAX) {
        lx_set_error(LX_E_ARG, "%s: padding out of range", op);
        return LX_NULL_ARRAY;
    }
    int plo = (int)lo, phi = (int)hi, one = 1;
    return conv_impl(op, xa, wa, 1, &one, &plo, &phi, &dilation, &stride, groups, true);
}

lx_array lx_upsample_nearest(lx_array xa, int scale_h, int scale_w) {
    const char *op = "lx_upsample_nearest";
    lx_node *x = lx_arg(xa, op, "x");
    if (!x) return LX_NULL_ARRAY;
    if (x->ndim != 4) {
        lx_set_error(LX_E_SHAPE, "%s: argument x has shape %s; expected 4 dimensions [N, H, W, C]",
                     op, LX_SHAPE_STR(x));
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    if (scale_h <= 0 || scale_w <= 0) {
        lx_set_error(LX_E_ARG, "%s: scales %d, %d must be positive", op, scale_h, scale_w);
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    int N = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    if ((int64_t)H * scale_h > INT32_MAX || (int64_t)W * scale_w > INT32_MAX) {
        lx_set_error(LX_E_SHAPE, "%s: the output of x %s scaled by %d, %d is too large", op,
                     LX_SHAPE_STR(x), scale_h, scale_w);
        lx_node_release(x);
        return LX_NULL_ARRAY;
    }
    /* [N, H, 1, W, 1, C] broadcast to [N, H, sh, W, sw, C], reshaped (a copy unless a view can
     * express it) */
    lx_dtype t = (lx_dtype)x->dtype;
    int s6[6] = {N, H, 1, W, 1, C};
    int b6[6] = {N, H, scale_h, W, scale_w, C};
    int o4[4] = {N, H * scale_h, W * scale_w, C};
    x = lx_build(op, LX_PRIM_RESHAPE, t, s6, 6, &x, 1, NULL, 0);
    x = lx_node_broadcast(op, x, b6, 6);
    if (!x) return LX_NULL_ARRAY;
    return lx_wrap(lx_build(op, LX_PRIM_RESHAPE, t, o4, 4, &x, 1, NULL, 0));
}
