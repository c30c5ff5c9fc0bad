#!/usr/bin/env bash
# The quick start: installs the build dependencies (as root), builds the lx command (Release,
# in build/, reused by later runs and by scripts/test.sh), fetches SmolLM2-135M-Instruct once
# (98 MB, scripts/fetch_model.sh) and streams its answer to a chat prompt.
#   scripts/run.sh                          the default question
#   scripts/run.sh "QUESTION" [OPTIONS]     your question; OPTIONS go to lx generate
#                                           (e.g. --temp 0.7 --seed 1 --stats; lx --help)
#   LX_MODEL=DIR|FILE.gguf scripts/run.sh   another model
set -euo pipefail
cd "$(dirname "$0")/.."
prompt="Why is the sky blue?"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  prompt=$1
  shift
fi
scripts/deps.sh --build
# the same configuration as scripts/test.sh, so that the tests reuse this build
if [ ! -f build/CMakeCache.txt ]; then
  echo "lx: configuring build/ (Release)" >&2
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLX_WERROR=ON >/dev/null
fi
[ -x build/lx ] || echo "lx: building the lx command in build/ (a few minutes, once)" >&2
# compiler messages go to stderr; on a terminal the progress shows on one line
tty=false
[ -t 2 ] && tty=true
cmake --build build -j"$(nproc)" --target lx_cli | while IFS= read -r line; do
  if $tty && [[ $line == "["*"%]"* ]]; then printf '\r  %s' "${line%%]*}]" >&2; fi
done
if $tty; then printf '\r%10s\r' '' >&2; fi
model=${LX_MODEL:-$(scripts/fetch_model.sh)}
echo "lx: model $model" >&2
exec ./build/lx generate -m "$model" --chat -p "$prompt" -n 256 "$@"
