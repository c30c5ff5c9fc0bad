#!/usr/bin/env bash
# Builds lx and runs the decode-loop example: a toy model's token loop whose memory stays flat.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --build
# the same configuration as scripts/test.sh and scripts/run.sh, so they share build/
if [ ! -f build/CMakeCache.txt ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLX_WERROR=ON >/dev/null
fi
cmake --build build -j"$(nproc)" --target decode_loop
./build/decode_loop
