/*
 * view.c -- evaluation of view primitives: the output shares its input's buffer with new
 * strides and offset. Reshape of a layout that cannot be expressed with strides, as_strided
 * of a non-contiguous input and CONTIGUOUS of a non-contiguous input copy instead.
 */
#include <string.h>

#include "backend/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "eval/eval.h"

lx_buffer *lx_copy_contiguous(const lx_node *src, lx_dtype dtype, const char *op) {
    const lx_device_impl *dev = lx_device_get((lx_device)src->device);
    lx_kernel_fn copy = dev ? dev->kernels[LX_PRIM_COPY] : NULL;
    if (!copy) {
        lx_set_error(LX_E_UNSUPPORTED, "%s: no copy kernel on this device", op);
        return NULL;
    }
    lx_node tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.dtype = (uint8_t)dtype;
    tmp.ndim = src->ndim;
    tmp.device = src->device;
    tmp.prim = LX_PRIM_COPY;
    memcpy(tmp.shape, src->shape, sizeof tmp.shape);
    tmp.size = src->size;
    tmp.op = op;
    tmp.inline_inputs[0] = (lx_node *)src;
    tmp.inputs = tmp.inline_inputs;
    tmp.n_inputs = 1;
    tmp.buf = lx_buffer_alloc((lx_device)src->device, lx_node_nbytes(&tmp));
    if (!tmp.buf) return NULL;
    lx_node_set_row_strides(&tmp);
    if (lx_run_kernel(dev, copy, &tmp) != LX_OK) {
        lx_buffer_release(tmp.buf);
        return NULL;
    }
    return tmp.buf;
}

static void share(lx_node *n, const lx_node *in) {
    lx_buffer_retain(in->buf);
    n->buf = in->buf;
}

/* Strides for viewing `in` with n's shape without copying, if possible (numpy's rule: each
 * group of output dims must map onto a run of input dims that is contiguous in memory). */
static bool reshape_strides(const lx_node *in, lx_node *n) {
    int64_t shape_in[LX_MAX_NDIM], strides_in[LX_MAX_NDIM];
    int k = 0;
    for (int i = 0; i < in->ndim; i++) /* drop size-1 dims, whose strides are arbitrary */
        if (in->shape[i] != 1) {
            shape_in[k] = in->shape[i];
            strides_in[k] = in->strides[i];
            k++;
        }
    int oi = 0, ii = 0;
    int on = n->ndim;
    while (oi < on && ii < k) {
        int o0 = oi, i0 = ii;
        int64_t np = n->shape[oi], op = shape_in[ii];
        while (np != op) {
            if (np < op) np *= n->shape[++oi];
            else op *= shape_in[++ii];
        }
        for (int j = i0; j < ii; j++) /* the input run must be contiguous */
            if (strides_in[j] != strides_in[j + 1] * shape_in[j + 1]) return false;
        n->strides[oi] = strides_in[ii];
        for (int j = oi; j > o0; j--) n->strides[j - 1] = n->strides[j] * n->shape[j];
        oi++;
        ii++;
    }
    for (; oi < on; oi++) n->strides[oi] = 1; /* trailing size-1 dims */
    for (int i = 0; i < on; i++)
        if (n->shape[i] == 1 && n->strides[i] == 0) n->strides[i] = 1;
    return true;
}

lx_status lx_view_eval(lx_node *n) {
    lx_node *in = n->inputs[0];
    switch (n->prim) {
    case LX_PRIM_PERMUTE: {
        const lx_permute_params *p = n->params;
        for (int i = 0; i < n->ndim; i++) n->strides[i] = in->strides[p->perm[i]];
        n->offset = in->offset;
        share(n, in);
        return LX_OK;
    }
    case LX_PRIM_SLICE: {
        const lx_slice_params *p = n->params;
        int64_t off = in->offset;
        for (int i = 0; i < n->ndim; i++) {
            if (n->size > 0) off += (int64_t)p->start[i] * in->strides[i];
            n->strides[i] = in->strides[i] * p->step[i];
        }
        n->offset = off;
        share(n, in);
        return LX_OK;
    }
    case LX_PRIM_BROADCAST: {
        int lead = n->ndim - in->ndim;
        for (int i = 0; i < n->ndim; i++) {
            int j = i - lead;
            n->strides[i] = (j < 0 || (in->shape[j] == 1 && n->shape[i] != 1)) ? 0 : in->strides[j];
        }
        n->offset = in->offset;
        share(n, in);
        return LX_OK;
    }
    case LX_PRIM_RESHAPE:
        if (n->size == 0 || reshape_strides(in, n)) {
            n->offset = in->offset;
            share(n, in);
            return LX_OK;
        }
        break; /* copy below */
    case LX_PRIM_CONTIGUOUS:
        if (lx_node_is_row_contiguous(in)) {
            lx_node_set_row_strides(n);
            n->offset = in->offset;
            share(n, in);
            return LX_OK;
        }
        break;
    case LX_PRIM_AS_STRIDED: {
        const lx_as_strided_params *p = n->params;
        for (int i = 0; i < n->ndim; i++) n->strides[i] = p->strides[i];
        if (lx_node_is_row_contiguous(in)) {
            n->offset = in->offset + p->offset;
            share(n, in);
        } else {
            n->buf = lx_copy_contiguous(in, (lx_dtype)in->dtype, n->op);
            if (!n->buf) return lx_error() ? lx_error() : LX_E_OOM;
            n->offset = p->offset;
        }
        return LX_OK;
    }
    case LX_PRIM_PART: {
        const lx_part_params *p = n->params;
        lx_node_set_row_strides(n);
        n->offset = p->byte_offset / (int64_t)lx_dtype_size((lx_dtype)n->dtype);
        share(n, in);
        return LX_OK;
    }
    default:
        return lx_set_error(LX_E_INTERNAL, "%s: %s is not a view primitive", n->op,
                            lx_prim_name(n->prim));
    }
    /* copy: a fresh row-contiguous buffer holding in's elements in row-major order */
    n->buf = lx_copy_contiguous(in, (lx_dtype)n->dtype, n->op);
    if (!n->buf) return lx_error() ? lx_error() : LX_E_OOM;
    lx_node_set_row_strides(n);
    return LX_OK;
}
