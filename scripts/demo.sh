#!/usr/bin/env bash
# Builds lx and runs the decode-loop example: a toy model's token loop whose memory stays flat.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target decode_loop
./build/decode_loop
