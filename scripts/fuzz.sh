#!/usr/bin/env bash
# Builds the libFuzzer targets (clang) and runs each for N seconds (default 600) from the seed
# corpus in fuzz/corpus. Any crash fails the run and leaves the input in build-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DLX_FUZZ=ON -DLX_CPU_VARIANTS=OFF \
      -DLX_BUILD_TESTS=OFF -DLX_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz --target fuzz_safetensors fuzz_gguf fuzz_npy fuzz_tokenizer fuzz_jinja fuzz_gguf_vocab -j"$(nproc)"
for t in safetensors gguf npy tokenizer jinja gguf_vocab; do
  mkdir -p build-fuzz/corpus-$t
  (cd build-fuzz && ./fuzz/fuzz_$t -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
      corpus-$t ../fuzz/corpus/$t 2>&1 | tail -n 12)
done
