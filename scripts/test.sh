#!/usr/bin/env bash
# Builds lx and runs the whole test suite. `scripts/test.sh --sanitize` does it in an
# ASan+UBSan build instead (build-asan/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
jobs=$(nproc)
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  # -O1, as AddressSanitizer's documentation advises: at -O0 each real-model test alone runs
  # over 7 minutes on 2 cores; at -O1 the whole suite takes about 4
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_C_FLAGS_DEBUG=-g -O1" -DLX_SANITIZE=ON -DLX_WERROR=ON \
        -DLX_CPU_VARIANTS=OFF -DLX_BUILD_BENCH=OFF >/dev/null
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
else
  dir=build
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DLX_WERROR=ON >/dev/null
fi
cmake --build "$dir" -j"$jobs"
ctest --test-dir "$dir" --output-on-failure -j"$jobs"
