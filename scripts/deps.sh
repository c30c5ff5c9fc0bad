#!/usr/bin/env bash
# Installs lx's build and test dependencies from Debian's packages (when run as root and
# something is missing). Safe to run repeatedly.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libopenblas-dev libcjson-dev python3 python3-numpy
      python3-pip clang libpcre2-dev libutf8proc-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "lx: missing packages: ${missing[*]} (run as root or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
