#!/bin/sh
# cuda_check.sh -- the CUDA module (liblx-cuda.so) on a machine with an NVIDIA GPU: build,
# then test_device_cuda (ops against the CPU, the fixture models end to end), the cross-backend
# harness's device:gpu target and `lx generate --device gpu` on the real model when present.
#
#   scripts/cuda_check.sh [PREBUILT]
#
# Without PREBUILT: configures and builds build-gpu/ here (-DLX_CPU_VARIANTS=OFF
# -DLX_BUILD_BENCH=OFF, -j16; needs lx's build dependencies and nvcc), then runs from it.
# With PREBUILT, a folder made by `scripts/cuda_check.sh --pack DIR` on another machine: runs
# the binaries in it (for a GPU machine without lx's build dependencies): DIR/bin (the test
# programs, lx, liblx.so*, liblx-cuda.so), DIR/deps.tar.xz (the shared libraries they need),
# DIR/fixtures (the fixture models). Logs go to $OUT when set (the device tool's folder).
#
#   scripts/cuda_check.sh --pack DIR [BUILD]   packs BUILD (default build-cuda) into DIR
#
# Environment: LX_TEST_GGUF (the real model; skipped when absent), LX_FIXTURES.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-/tmp/lx-cuda-check}
mkdir -p "$out"

if [ "${1:-}" = "--pack" ]; then
    dir=$2
    build=${3:-build-cuda}
    rm -rf "$dir"
    mkdir -p "$dir/bin" "$dir/fixtures"
    cp -P "$build/lx" "$build"/liblx.so* "$dir/bin/" || exit 1   # -P: liblx.so* links stay links
    # what the build has of the rest (scripts/gpu_bench.sh packs builds without tests, or
    # without the module for a CPU smoke test)
    for f in liblx-cuda.so tests/test_device_cuda tests/test_backend_ops; do
        if [ -f "$build/$f" ]; then cp "$build/$f" "$dir/bin/"; else echo "cuda_check: $build has no $f" >&2; fi
    done
    # the shared libraries the programs need besides glibc and CUDA's
    libs=$(for f in "$dir"/bin/*; do ldd "$f" 2>/dev/null; done | awk '/=> \//{print $3}' | sort -u |
           grep -E 'openblas|gfortran|quadmath|cjson|pcre2|utf8proc')
    mkdir -p "$dir/lib"
    for l in $libs; do cp -L "$l" "$dir/lib/"; done
    tar -C "$dir" -cJf "$dir/deps.tar.xz" lib && rm -rf "$dir/lib"
    cp -r "${LX_FIXTURES:-$here/../shared/fixtures}"/tiny-* "$dir/fixtures/"
    du -sh "$dir"
    exit 0
fi

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/gpu.txt"
status=0

if [ -n "${1:-}" ]; then
    pre=$(cd "$1" && pwd)
    bin=$pre/bin
    mkdir -p /tmp/lx-deps && tar -C /tmp/lx-deps -xJf "$pre/deps.tar.xz"
    export LD_LIBRARY_PATH="$bin:/tmp/lx-deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export LX_FIXTURES=${LX_FIXTURES:-$pre/fixtures}
    test_cuda=$bin/test_device_cuda
    test_ops=$bin/test_backend_ops
    lx=$bin/lx
    module=$bin/liblx-cuda.so
else
    cd "$here" || exit 1
    t0=$(date +%s)
    cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DLX_WERROR=ON -DLX_CPU_VARIANTS=OFF \
        -DLX_BUILD_BENCH=OFF >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
    cmake --build build-gpu -j16 >"$out/build.log" 2>&1 || { grep -E 'error|warning' "$out/build.log" | head -40; exit 1; }
    echo "built in $(( $(date +%s) - t0 )) s; warnings: $(grep -c 'warning' "$out/build.log")"
    test_cuda=build-gpu/tests/test_device_cuda
    test_ops=build-gpu/tests/test_backend_ops
    lx=build-gpu/lx
    module=$here/build-gpu/liblx-cuda.so
    export LX_FIXTURES=${LX_FIXTURES:-$here/../shared/fixtures}
fi
export LX_DEVICE_MODULES=$module
export LX_JIT_CACHE=/tmp/lx-jit
# CUDA's libraries from the Python wheels (nvidia-*) when the system has no libcudart/cublas 13
. "$here/scripts/cuda_libs.sh"
lx_cuda_libs "$module"
ldd "$module" | grep -E 'cuda|cublas|not found'

"$lx" info 2>&1 | tee "$out/info.txt"

echo "== test_device_cuda"
"$test_cuda" 2>&1 | tee "$out/test_device_cuda.log"
rc=$?
[ $rc -ne 0 ] && status=1
echo "test_device_cuda: exit $rc"

if [ -x "$test_ops" ]; then
    echo "== test_backend_ops -t device:gpu"
    "$test_ops" -t device:gpu >"$out/test_backend_ops.log" 2>&1
    rc=$?
    tail -25 "$out/test_backend_ops.log"
    echo "test_backend_ops device:gpu: exit $rc"
    [ $rc -ne 0 ] && status=1
fi

gguf=${LX_TEST_GGUF:-$HOME/.cache/lx/models/SmolLM2-135M-Instruct.Q4_1.gguf}
if [ -s "$gguf" ]; then
    for d in cpu gpu; do
        echo "== lx generate --device $d"
        "$lx" generate -m "$gguf" -p "The capital of France is" -n 32 --temp 0 --device $d --stats \
            2>&1 | tee "$out/generate_$d.txt"
    done
else
    echo "the real model ($gguf) is not on this machine: lx generate --device gpu skipped"
fi
exit $status
