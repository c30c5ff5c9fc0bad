#!/usr/bin/env bash
# Installs lx's dependencies from Debian's packages (when run as root and something is missing).
# Safe to run repeatedly.
#   scripts/deps.sh           everything: building, the tests, fuzzing
#   scripts/deps.sh --build   building lx and fetching a model only (scripts/run.sh)
set -euo pipefail
# building: the compiler, cmake, OpenBLAS, cJSON, PCRE2 (the tokenizer's pre-tokenizer
# regexes), utf8proc (Unicode normalization); python3-pip for scripts/fetch_model.sh
pkgs=(build-essential cmake pkg-config libopenblas-dev libcjson-dev libpcre2-dev libutf8proc-dev
      python3 python3-pip)
if [ "${1:-}" != "--build" ]; then
  # tests/py (numpy), tests/py/test_chat_template.py (jinja2), scripts/fuzz.sh (clang)
  pkgs+=(python3-numpy python3-jinja2 clang)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "lx: missing packages: ${missing[*]} (run as root or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "lx: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
