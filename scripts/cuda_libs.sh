# cuda_libs.sh -- sourced by scripts/cuda_check.sh and scripts/gpu_bench.sh.
# lx_cuda_libs MODULE: when MODULE (liblx-cuda.so) has unresolved libraries (no system
# libcudart/cublas 13), puts the CUDA libraries of the Python wheels (nvidia-*) on
# LD_LIBRARY_PATH.
lx_cuda_libs() {
    local module=$1 d l
    if [ -f "$module" ] && ldd "$module" | grep -q 'not found'; then
        for d in $(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null); do
            for l in "$d"/nvidia/*/lib "$d"/nvidia/cu13/lib; do
                [ -d "$l" ] && LD_LIBRARY_PATH="$l${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
            done
        done
        export LD_LIBRARY_PATH
    fi
}
