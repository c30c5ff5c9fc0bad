#!/usr/bin/env bash
# gpu_bench.sh -- issue 15's GPU benchmark in one device call: lx's CUDA module against the
# bandwidth roofline and PyTorch, batch-1 decode and prefill, on SmolLM2-135M (the real Q4_1
# GGUF when it is on the machine, else a random stand-in of the same layout) and on a
# Llama-3.2-1B-shaped model with random weights in bfloat16 and in 4-bit, made on the machine.
#
#   scripts/gpu_bench.sh                  on the GPU machine (the run tool: results in $OUT)
#   scripts/gpu_bench.sh --cpu-smoke      the same pipeline on the CPU with small models and
#                                         lengths (BUILD=build-h3 to reuse a configured build)
#   scripts/gpu_bench.sh --prebuilt DIR   use binaries packed elsewhere instead of building
#   scripts/gpu_bench.sh --pack DIR [BUILD]         pack BUILD (a CUDA build made here) for
#                                         --prebuilt: scripts/cuda_check.sh --pack + random_model
#   scripts/gpu_bench.sh --split-model DIR [MiB]    split the real GGUF (98 MB, over the 64 MiB a
#                                         call carries) into DIR/p1, DIR/p2, ... of MiB each
#   scripts/gpu_bench.sh --stash DIR...   on the device: keep those parts in $STAGE (/tmp, which
#                                         lasts while the machine stays warm) and check what
#                                         the machine has (GPU, nvcc, cmake, lx's build deps,
#                                         torch); a later call assembles and checks the GGUF
#
# Steps, in order of priority (each later one is skipped, and recorded as skipped, when the
# time left under DEADLINE_S is short), with their expected cost on an H100 machine (16 cores):
#   1. build lx + liblx-cuda.so for this GPU only (sm_<compute_cap>, no tests)    60-120 s
#      meanwhile: random_model writes the models (1B: 2.5 GB bf16 + 0.7 GB 4-bit)  15-30 s
#      and nvcc builds bench/gpu/copy_rate.cu                                       5 s
#   2. copy-rate probe (bench/gpu/copy_rate.cu): the roofline's rate                 3 s
#   3. lx, per model (SmolLM2, 1B 4-bit, 1B bf16): a checked warm-up (16 tokens, logits finite,
#      NVRTC kernels compiled into the disk cache), decode of NEW tokens x REPS, prefill of
#      each PREFILL length x REPS: `lx generate --device gpu --prompt-ids .. -n N --ignore-eos
#      --stats` (DESIGN.md §3), one process each                              20-60 s a model
#   4. PyTorch on the 1B bf16 folder (same weights, from_pretrained): eager and static cache +
#      torch.compile(mode=reduce-overhead), decode and prefill, its copy probe          60-150 s
#   5. PyTorch on the SmolLM2-shaped bf16 folder (random weights), eager (+ compile if time)
#   6. the table: results.md, summary.json, results.jsonl, log.txt in $OUT
#
# A device session (the run tool sends the working tree plus at most 64 MiB of carried paths;
# build-* folders are git-ignored, so they travel only when carried):
#   here:   scripts/gpu_bench.sh --split-model build-gpu-carry 50      (p1 52 MB, p2 46 MB)
#   call 1: command "scripts/gpu_bench.sh --stash build-gpu-carry/p1", carry [build-gpu-carry/p1]
#           (seconds; also prints what the machine has: GPU, nvcc, cmake, lx's build deps, torch)
#   call 2, while the machine is warm (30 s after a call):
#           command "scripts/gpu_bench.sh", carry [build-gpu-carry/p2], timeout 600
#   If call 1 shows lx's build dependencies missing there: build lx with CUDA here, pack it
#   (--pack build-gpu-carry/pack BUILD, ~17 MB), split at 58 MiB instead, and carry the pack
#   with p2 (the run uses a carried pack by itself when it cannot build). Call 2 alone (or a
#   machine gone cold between the calls) runs SmolLM2 as the stand-in, and says so.
#
# What needs a GPU or torch is marked [GPU] / [torch] below; --cpu-smoke runs every other line
# (and the torch ones where PY has torch). Environment: OUT (default /tmp/lx-gpu-bench), BUILD
# (build-gpu-bench; smoke: build-cpu-smoke), JOBS (nproc), REPS (3; smoke 1), NEW (128; 16),
# PROMPT (8), PREFILL ("512 2048"; "64 128"), DEADLINE_S (500; 1200), RUN_TIMEOUT (120 s a
# process), SLOW_S (30: a run slower than this is not repeated, and decode gets fewer tokens),
# PY (the python with torch: python3; smoke: /work/peers/venv/bin/python if present), TORCH=0
# (skip the peer), TORCH_COMPILE=0 (eager only), TORCH_COMPILE_PREFILL=1, SMOL_GGUF (the real
# model's path), STAGE (/tmp/lx-stage), MODELS (where models are written, /tmp/lx-bench-models),
# CARRY (build-gpu-carry: parts found under it are stashed first). For testing this script
# without a GPU: BIG_PRESET (tiny instead of llama-3.2-1b), LX_MODULE (another device module,
# e.g. build/tests/liblx-stub.so, with a stand-in nvidia-smi on PATH). A CUDA build to pack:
#   cmake -S . -B B -DCMAKE_BUILD_TYPE=Release -DLX_CPU_VARIANTS=OFF -DLX_BUILD_TESTS=OFF \
#     -DLX_BUILD_BENCH=OFF -DCMAKE_CUDA_ARCHITECTURES=90-real && cmake --build B --target lx_cli lx-cuda
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 1
t_start=$(date +%s)
smoke=0
prebuilt=${PREBUILT:-}
STAGE=${STAGE:-/tmp/lx-stage}
CARRY=${CARRY:-build-gpu-carry}
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53 # fetch_model.sh's

# ---- the real GGUF in parts ------------------------------------------------------------------
split_model() { # DIR [MiB]
    local dir=$1 mib=${2:-50} src=${SMOL_GGUF:-$HOME/.cache/lx/models/$GGUF_NAME}
    [ -s "$src" ] || { echo "gpu_bench: $src is missing (scripts/fetch_model.sh)" >&2; return 1; }
    rm -rf "$dir" && mkdir -p "$dir/.split" || return 1
    split -b "${mib}M" -d -a 2 "$src" "$dir/.split/part" || return 1
    local parts k=0
    parts=$(ls "$dir/.split" | wc -l)
    for p in "$dir"/.split/part*; do
        k=$((k + 1))
        mkdir -p "$dir/p$k"
        mv "$p" "$dir/p$k/"
        printf 'name %s\nsha256 %s\nparts %s\n' "$GGUF_NAME" "$(sha256sum "$src" | cut -d' ' -f1)" \
            "$parts" > "$dir/p$k/manifest"
    done
    rmdir "$dir/.split"
    du -sh "$dir"/p*
    echo "carry one part a call: $(for k in $(seq "$parts"); do printf '%s/p%s ' "$dir" "$k"; done)"
}

stash() { # DIR...: parts and manifests into $STAGE
    mkdir -p "$STAGE"
    local d
    for d in "$@"; do
        [ -f "$d/manifest" ] || continue
        cp "$d"/part* "$d/manifest" "$STAGE/" && echo "stashed $(cd "$d" && echo part*) from $d into $STAGE"
    done
}

assemble() { # -> the assembled GGUF's path on stdout when every part is in $STAGE
    [ -f "$STAGE/manifest" ] || return 1
    local want have
    want=$(sed -n 's/^parts //p' "$STAGE/manifest")
    have=$(find "$STAGE" -maxdepth 1 -name 'part*' | wc -l)
    if [ "$have" != "$want" ]; then
        echo "gpu_bench: $STAGE has $have of $want parts of the GGUF" >&2
        return 1
    fi
    if [ ! -s "$STAGE/$GGUF_NAME" ]; then
        cat "$STAGE"/part* > "$STAGE/$GGUF_NAME.tmp" && mv "$STAGE/$GGUF_NAME.tmp" "$STAGE/$GGUF_NAME"
    fi
    if [ "$(sha256sum "$STAGE/$GGUF_NAME" | cut -d' ' -f1)" != "$(sed -n 's/^sha256 //p' "$STAGE/manifest")" ]; then
        echo "gpu_bench: the assembled $GGUF_NAME has the wrong sha256" >&2
        rm -f "$STAGE/$GGUF_NAME"
        return 1
    fi
    [ "$(sed -n 's/^sha256 //p' "$STAGE/manifest")" = "$GGUF_SHA256" ] ||
        echo "gpu_bench: note: $GGUF_NAME is not the file scripts/fetch_model.sh fetches" >&2
    echo "$STAGE/$GGUF_NAME"
}

machine_check() { # what the machine has, for the log
    echo "== machine: $(uname -m), $(nproc) cores, $(free -g | awk '/^Mem/{print $2}') GiB RAM, /tmp free $(df -h /tmp | awk 'NR==2{print $4}')"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1 | head -3
    else
        echo "nvidia-smi: none"
    fi
    echo "nvcc: $(command -v nvcc >/dev/null && nvcc --version | tail -1 || echo missing)"
    echo "cmake: $(command -v cmake >/dev/null && cmake --version | head -1 || echo missing); cc: $(command -v cc || echo missing)"
    local m miss=""
    for m in openblas libcjson libpcre2-8 libutf8proc; do pkg-config --exists "$m" 2>/dev/null || miss="$miss $m"; done
    echo "lx build deps (pkg-config): ${miss:+missing:}${miss:-all present}"
    local hf=${HF_HOME:-$HOME/.cache/huggingface}/hub
    echo "models on the machine: $(ls -d "$HOME/.cache/lx/models/"*.gguf "$hf"/models--* 2>/dev/null | tr '\n' ' ')"
    echo "python: $(${PY:-python3} -c 'import sys, torch, transformers; print(sys.executable, "torch", torch.__version__, "cuda", torch.cuda.is_available(), "transformers", transformers.__version__)' 2>&1 | tail -1)"
}

case "${1:-}" in
--help|-h) sed -n '2,/^set -u/p' "$0" | sed 's/^# \{0,1\}//;/^set -u/d'; exit 0 ;;
--split-model) shift; split_model "$@"; exit $? ;;
--stash) shift; stash "$@"; machine_check; assemble >/dev/null && echo "the GGUF is whole in $STAGE"; exit 0 ;;
--pack)
    dir=$2 build=${3:-build-cuda}
    [ -f "$build/liblx-cuda.so" ] || echo "gpu_bench: $build has no liblx-cuda.so (configure it with nvcc present): the pack can only run on the CPU" >&2
    sh "$here/scripts/cuda_check.sh" --pack "$dir" "$build" || exit 1
    cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude bench/gpu/random_model.c -L"$build" -llx \
        -Wl,-rpath,'$ORIGIN' -o "$dir/bin/random_model" || exit 1
    du -sh "$dir"
    exit 0 ;;
esac
while [ $# -gt 0 ]; do
    case "$1" in
    --cpu-smoke) smoke=1 ;;
    --prebuilt) prebuilt=$2; shift ;;
    *) echo "gpu_bench: unknown option $1 (--help)" >&2; exit 2 ;;
    esac
    shift
done

if [ $smoke = 1 ]; then
    dev=cpu; BUILD=${BUILD:-build-cpu-smoke}; REPS=${REPS:-1}; NEW=${NEW:-16}
    PREFILL=${PREFILL:-"64 128"}; DEADLINE_S=${DEADLINE_S:-1200}
    [ -z "${PY:-}" ] && [ -x /work/peers/venv/bin/python ] && PY=/work/peers/venv/bin/python
else
    dev=gpu; BUILD=${BUILD:-build-gpu-bench}; REPS=${REPS:-3}; NEW=${NEW:-128}
    PREFILL=${PREFILL:-"512 2048"}; DEADLINE_S=${DEADLINE_S:-500}
fi
PROMPT=${PROMPT:-8}; RUN_TIMEOUT=${RUN_TIMEOUT:-120}; SLOW_S=${SLOW_S:-30}; JOBS=${JOBS:-$(nproc)}
PY=${PY:-python3}; MODELS=${MODELS:-/tmp/lx-bench-models}
big=${BIG_PRESET:-$([ $smoke = 1 ] && echo tiny || echo llama-3.2-1b)}
out=${OUT:-/tmp/lx-gpu-bench}
mkdir -p "$out" "$MODELS"
tmp=$(mktemp -d /tmp/gpu_bench.XXXXXX)
res=$out/results.jsonl
: > "$res"
exec > >(tee -a "$out/log.txt") 2>&1
report() { python3 bench/gpu/report.py "$@"; }
elapsed() { echo $(( $(date +%s) - t_start )); }
left() { echo $(( DEADLINE_S - $(elapsed) )); }
log() { echo "[$(elapsed) s] $*"; }
note() { # KEY WHY...: a skipped/failed step, into the results
    local k=$1; shift
    python3 -c 'import json, sys; print(json.dumps({sys.argv[1]: sys.argv[2], "why": " ".join(sys.argv[3:])}))' "$k" "$@" >> "$res"
    log "$k: $*"
}
enough() { # SECONDS STEP: is there time for STEP? (records the skip when not)
    if [ "$(left)" -lt "$1" ]; then note skipped "$2" "($(left) s left of DEADLINE_S=$DEADLINE_S, needs ~$1 s)"; return 1; fi
}

log "gpu_bench: $([ $smoke = 1 ] && echo "CPU smoke test" || echo "GPU run") at $(date -u +%FT%TZ), git $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- src include CMakeLists.txt 2>/dev/null || echo '+local changes')"
log "REPS=$REPS NEW=$NEW PROMPT=$PROMPT PREFILL='$PREFILL' DEADLINE_S=$DEADLINE_S BUILD=$BUILD"
machine_check > "$out/env.txt" 2>&1
cat "$out/env.txt"
if [ $smoke = 0 ] && ! nvidia-smi >/dev/null 2>&1; then
    echo "gpu_bench: no GPU here (nvidia-smi failed); --cpu-smoke runs the pipeline on the CPU" >&2
    exit 1
fi

# ---- 1. build (or the prebuilt binaries), the models, the probe's binary --------------------
if [ -z "$prebuilt" ] && [ $smoke = 0 ] && [ -f "$CARRY/pack/bin/lx" ] &&
   ! grep -q 'build deps (pkg-config): all present' "$out/env.txt"; then
    prebuilt=$CARRY/pack
    log "lx's build dependencies are missing here: using the carried $prebuilt"
fi
. "$here/scripts/cuda_libs.sh" # lx_cuda_libs
gen_models_bg() { # random_model's runs, in the background: one JSON line per folder -> $tmp/models.jsonl
    local rm=$1 threads=$2
    (
        "$rm" --threads "$threads" --preset "$big" --out "$MODELS/$big-bf16:bf16" --out "$MODELS/$big-q4:q4g64" &&
        "$rm" --threads "$threads" --preset smollm2-135m --out "$MODELS/smollm2-135m-standin-q4_1:q4g32e8sf16" \
            --out "$MODELS/smollm2-135m-bf16:bf16"
    ) > "$tmp/models.jsonl" 2> "$tmp/models.err" &
    gen_pid=$!
}
t0=$(date +%s)
lx_ok=1     # lx built (or prebuilt) and its device module usable
models_ok=0 # random_model made the folders
build_failed() { # WHAT LOG: lx is out of this run; the probe and torch go on
    note error "$1" "$(grep -E 'error|Error|not found' "$2" | head -5 | tr '\n' ' ')(the whole log: build.log)"
    lx_ok=0
}
if [ -n "$prebuilt" ]; then
    pre=$(cd "$prebuilt" && pwd) || exit 1
    bin=$pre/bin
    mkdir -p /tmp/lx-deps && tar -C /tmp/lx-deps -xJf "$pre/deps.tar.xz" || exit 1
    export LD_LIBRARY_PATH="$bin:/tmp/lx-deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    LX=$bin/lx; module=$bin/liblx-cuda.so
    rmodel=$bin/random_model
    if [ ! -x "$rmodel" ]; then
        rmodel=$tmp/random_model
        cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude bench/gpu/random_model.c -L"$bin" -llx \
            -Wl,-rpath,"$bin" -Wl,-rpath-link,/tmp/lx-deps/lib -o "$rmodel" > "$out/build.log" 2>&1 ||
            build_failed "random_model" "$out/build.log"
    fi
    [ $lx_ok = 1 ] && gen_models_bg "$rmodel" "$JOBS"
    log "prebuilt binaries from $pre"
else
    if [ ! -f "$BUILD/CMakeCache.txt" ]; then
        flags="-DCMAKE_BUILD_TYPE=Release -DLX_CPU_VARIANTS=OFF -DLX_BUILD_TESTS=OFF -DLX_BUILD_BENCH=OFF"
        if [ $smoke = 1 ]; then
            flags="$flags -DLX_CUDA=OFF"
        else # [GPU] SASS for this GPU only (nvcc's time is the build's long pole)
            arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '. ')
            flags="$flags -DCMAKE_CUDA_ARCHITECTURES=${arch:-90}-real"
        fi
        # shellcheck disable=SC2086
        cmake -S . -B "$BUILD" $flags > "$out/build.log" 2>&1 || { rm -f "$BUILD/CMakeCache.txt"; build_failed "configure" "$out/build.log"; }
    fi
    # liblx first (C only), so random_model can make the models while nvcc builds the module
    if [ $lx_ok = 1 ]; then
        nice cmake --build "$BUILD" -j"$JOBS" --target lx >> "$out/build.log" 2>&1 || build_failed "build of liblx" "$out/build.log"
    fi
    if [ $lx_ok = 1 ]; then
        targets=lx_cli
        [ $smoke = 0 ] && targets="lx_cli lx-cuda"
        # shellcheck disable=SC2086
        nice cmake --build "$BUILD" -j"$JOBS" --target $targets >> "$out/build.log" 2>&1 &
        build_pid=$!
        rmodel=$tmp/random_model
        if cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude bench/gpu/random_model.c -L"$BUILD" -llx \
            -Wl,-rpath,"$here/$BUILD" -o "$rmodel" >> "$out/build.log" 2>&1; then
            gen_models_bg "$rmodel" $(( JOBS > 4 ? JOBS / 2 : 2 ))
        else
            build_failed "random_model" "$out/build.log"
        fi
    fi
    LX=$BUILD/lx; module=$here/$BUILD/liblx-cuda.so
fi
# the probe's binary: [GPU] to run; built wherever nvcc is
probe_bin=""
if command -v nvcc >/dev/null; then
    arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')
    if nvcc -O2 -arch=sm_"${arch:-90}" -o "$tmp/copy_rate" bench/gpu/copy_rate.cu > "$tmp/nvcc.log" 2>&1; then
        probe_bin=$tmp/copy_rate
    else
        note error copy_rate.cu "nvcc failed: $(tail -3 "$tmp/nvcc.log")"
    fi
fi
if [ -n "${build_pid:-}" ]; then
    if wait "$build_pid"; then
        log "built in $(( $(date +%s) - t0 )) s ($BUILD; warnings: $(grep -c 'warning' "$out/build.log"))"
    else
        build_failed "build of $targets" "$out/build.log"
    fi
fi
if [ -n "${gen_pid:-}" ]; then
    if wait "$gen_pid"; then
        models_ok=1
        log "models made ($(( $(date +%s) - t0 )) s from the build's start): $(du -sh "$MODELS" | cut -f1) in $MODELS"
        python3 -c '
import json, os, sys
for l in open(sys.argv[1]):
    d = json.loads(l); d["kind"] = "model"; d["label"] = os.path.basename(d["dir"])
    d["source"] = "random_model (normal(0, %g), seed %d)" % (d["std"], d["seed"])
    print(json.dumps(d))' "$tmp/models.jsonl" >> "$res"
    else
        note error "random_model" "$(tail -3 "$tmp/models.err" | tr '\n' ' ')"
        lx_ok=0
    fi
fi

if [ $smoke = 0 ] && [ $lx_ok = 1 ]; then
    module=${LX_MODULE:-$module}
    export LX_DEVICE_MODULES=$module
    if [ -f "$module" ]; then
        lx_cuda_libs "$module"
        ldd "$module" | grep -E 'cudart|cublas|not found'
    else
        note error "device module" "no $module"
        lx_ok=0
    fi
fi
if [ $lx_ok = 0 ]; then
    log "lx is out of this run (see the errors above); the copy probe and PyTorch go on"
    LX=false
fi
export LX_JIT_CACHE=${LX_JIT_CACHE:-/tmp/lx-jit}
: > "$tmp/info.txt"
[ $lx_ok = 1 ] && "$LX" info > "$tmp/info.txt" 2>&1
cat "$tmp/info.txt" >> "$out/env.txt"
grep -iE 'device|module|cuda|variant' "$tmp/info.txt" | head -12

# the SmolLM2 GGUF: SMOL_GGUF, else the parts carried or stashed, else lx's model cache
for d in "$CARRY"/p*; do [ -f "$d/manifest" ] && stash "$d"; done
gguf=${SMOL_GGUF:-}
if [ -n "$gguf" ] && [ ! -s "$gguf" ]; then
    note error "SMOL_GGUF" "$gguf is not a file"
    gguf=""
fi
[ -z "$gguf" ] && gguf=$(assemble 2>/dev/null)
[ -z "$gguf" ] && [ -s "$HOME/.cache/lx/models/$GGUF_NAME" ] && gguf=$HOME/.cache/lx/models/$GGUF_NAME
if [ -n "$gguf" ]; then
    log "real SmolLM2 GGUF: $gguf"
    # its bytes read per token are the stand-in's: same shapes and the same layout in lx
    python3 -c '
import json, sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d.get("label") == "smollm2-135m-standin-q4_1":
        d.update(label="smollm2-135m-q4_1-gguf", dir=sys.argv[2], format="GGUF Q4_1 (Q8_0 head)",
                 source="the real GGUF; decode_bytes: the stand-in'"'"'s (same layout in lx)")
        print(json.dumps(d))' "$res" "$gguf" >> "$res"
else
    note skipped "real SmolLM2 GGUF" "not on this machine (see --split-model / --stash); the random stand-in of its layout runs instead"
fi

# ---- 2. the copy-rate probe ---------------------------------------------------------------
if [ -n "$probe_bin" ] && [ $smoke = 0 ]; then # [GPU]
    if "$probe_bin" 2048 20 > "$tmp/probe.json" 2> "$tmp/probe.err"; then
        sed 's/^{/{"kind":"probe",/' "$tmp/probe.json" >> "$res"
        log "copy probe: $(cat "$tmp/probe.json")"
    else
        note error "copy probe" "$(cat "$tmp/probe.err")"
    fi
elif [ -n "$probe_bin" ]; then
    note skipped "copy probe (cuda)" "built with nvcc, not run: needs a GPU"
fi

# ---- 3. lx ---------------------------------------------------------------------------------
vocab_of() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1] + "/config.json"))["vocab_size"])' "$1"; }
lx_run() { # MODEL IDS N [ARGS...] -> $tmp/err.txt (stats line last), $tmp/ids.txt; status
    local m=$1 ids=$2 n=$3 rc
    shift 3
    local t=$(( $(left) - 5 ))
    [ "$t" -gt "$RUN_TIMEOUT" ] && t=$RUN_TIMEOUT
    [ "$t" -lt 10 ] && t=10
    timeout "$t" "$LX" generate -m "$m" --prompt-ids "$ids" -n "$n" --ignore-eos --stats \
        --print-ids --device $dev -c 4096 "$@" > "$tmp/ids.txt" 2> "$tmp/err.txt"
    rc=$?
    [ $rc = 124 ] && echo "(timed out after $t s)" >> "$tmp/err.txt"
    return $rc
}
lx_model() { # LABEL PATH VOCAB
    local label=$1 m=$2 vocab=$3 ids p rep rc
    local engine=lx-$dev
    enough 30 "lx $label" || return 0
    ids=$(report ids "$PROMPT" "$vocab")
    # warm-up and check: 16 tokens, every logit finite (also fills the NVRTC disk cache)
    lx_run "$m" "$ids" 16 --logits-out "$tmp/logits.safetensors"
    rc=$?
    if [ $rc -ne 0 ]; then
        note error "lx $label" "exit $rc: $(tail -3 "$tmp/err.txt" | tr '\n' ' ')"
        return 0
    fi
    check=$(report check-logits "$tmp/logits.safetensors") || { note error "lx $label" "non-finite logits: $check"; return 0; }
    python3 -c 'import json, sys; print(json.dumps({"engine": sys.argv[1], "model": sys.argv[2], "metric": "greedy_ids",
        "n": 16, "value": [int(x) for x in sys.argv[3].split()], "check": json.loads(sys.argv[4]),
        "warmup": json.loads(sys.argv[5])}))' "$engine" "$label" "$(cat "$tmp/ids.txt")" "$check" \
        "$(grep '^{' "$tmp/err.txt" | tail -1)" >> "$res"
    log "lx $label: warm-up $(grep '^{' "$tmp/err.txt" | tail -1 | cut -c1-160); logits $check"
    # decode: NEW tokens, fewer where the warm-up's speed says NEW would take over SLOW_S
    local tps n t_run last_t=0 last_p=0
    tps=$(grep '^{' "$tmp/err.txt" | tail -1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["decode_tok_s"])')
    n=$(python3 -c 'import sys; new, tps, slow = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print(new if tps <= 0 or new / tps <= slow else max(16, int(slow * tps)))' "$NEW" "$tps" "$SLOW_S")
    [ "$n" != "$NEW" ] && note skipped "lx $label decode@$NEW" "the warm-up decoded $tps tok/s: decode@$n instead"
    for rep in $(seq "$REPS"); do
        enough 10 "lx $label decode rep $rep" || return 0
        if lx_run "$m" "$ids" "$n"; then
            report lx-row "$engine" "$label" decode_tok_s "$n" "$(grep '^{' "$tmp/err.txt" | tail -1)" "prompt=$PROMPT" >> "$res"
            log "lx $label decode@$n: $(tail -1 "$res" | python3 -c 'import json,sys; print(json.load(sys.stdin)["value"])') tok/s"
        else
            note error "lx $label decode" "exit $?: $(tail -2 "$tmp/err.txt" | tr '\n' ' ')"
            break
        fi
    done
    # prefill: a length is repeated only while a run takes under SLOW_S, and a longer one is
    # tried only if the last run, scaled by the length, fits RUN_TIMEOUT
    for p in $PREFILL; do
        if [ "$last_p" -gt 0 ] && [ $(( last_t * p / last_p )) -gt "$RUN_TIMEOUT" ]; then
            note skipped "lx $label prefill@$p" "prefill@$last_p took $last_t s"
            continue
        fi
        ids=$(report ids "$p" "$vocab")
        for rep in $(seq "$REPS"); do
            enough 10 "lx $label prefill@$p rep $rep" || return 0
            t_run=$SECONDS
            if lx_run "$m" "$ids" 1; then
                last_t=$(( SECONDS - t_run )); last_p=$p
                report lx-row "$engine" "$label" prefill_tok_s "$p" "$(grep '^{' "$tmp/err.txt" | tail -1)" >> "$res"
                log "lx $label prefill@$p: $(tail -1 "$res" | python3 -c 'import json,sys; print(json.load(sys.stdin)["value"])') tok/s ($last_t s)"
                [ "$last_t" -gt "$SLOW_S" ] && { note skipped "lx $label prefill@$p reps after $rep" "a run took $last_t s"; break; }
            else
                note error "lx $label prefill@$p" "exit $?: $(tail -2 "$tmp/err.txt" | tr '\n' ' ')"
                last_t=$RUN_TIMEOUT; last_p=$p
                break
            fi
        done
    done
}
if [ $lx_ok = 1 ]; then
    if [ -n "$gguf" ]; then
        lx_model smollm2-135m-q4_1-gguf "$gguf" 49152
    else
        lx_model smollm2-135m-standin-q4_1 "$MODELS/smollm2-135m-standin-q4_1" 49152
    fi
    lx_model "$big-q4" "$MODELS/$big-q4" "$(vocab_of "$MODELS/$big-q4")"
    lx_model "$big-bf16" "$MODELS/$big-bf16" "$(vocab_of "$MODELS/$big-bf16")"
fi

# ---- 4-5. PyTorch ([torch]; on the GPU: [GPU]) --------------------------------------------------
torch_peer() { # LABEL MODES ARGS... (ARGS: --model DIR, or --preset NAME without the folders)
    local label=$1 modes=$2 t
    shift 2
    t=$(( $(left) - 10 ))
    [ "$t" -lt 30 ] && t=30
    local tdev=cuda tdt=bfloat16
    [ $smoke = 1 ] && tdev=cpu && tdt=float32
    log "torch $label ($modes, timeout $t s)"
    PYTHONUNBUFFERED=1 timeout "$t" "$PY" bench/peers/torch_decode.py --label "$label" \
        --device $tdev --dtype $tdt --prompt "$PROMPT" --new "$NEW" --prefill "$(echo $PREFILL | tr ' ' ,)" \
        --reps "$REPS" --modes "$modes" "$@" > "$tmp/torch.jsonl" 2> "$tmp/torch.err"
    local rc=$?
    grep '^{' "$tmp/torch.jsonl" >> "$res"
    grep '"metric"' "$tmp/torch.jsonl" | python3 -c '
import json, sys
for l in sys.stdin:
    d = json.loads(l)
    v = d["value"]
    print("  %s %s %s%s: %s" % (d["engine"], d["model"], d["metric"], "@%s" % d["n"] if d.get("n") else "", round(v, 2) if isinstance(v, float) else v))'
    [ $rc -ne 0 ] && note error "torch $label" "exit $rc: $(grep -v '^W' "$tmp/torch.err" | tail -3 | tr '\n' ' ')"
    return 0
}
if [ "${TORCH:-1}" = 0 ]; then
    note skipped torch "TORCH=0"
elif ! "$PY" -c 'import torch, transformers' > /dev/null 2>&1; then
    note skipped torch "$PY has no torch/transformers (untested here unless a venv has them)"
else
    src() { # PRESET LABEL: the folder random_model made, else the preset's config (random init)
        if [ $models_ok = 1 ]; then echo "--model $MODELS/$2"; else echo "--preset $1"; fi
    }
    [ $models_ok = 0 ] && note skipped "same weights for torch" "no model folders: torch builds the presets' configs with its own random init"
    modes=eager
    extra=()
    [ "${TORCH_COMPILE:-1}" = 1 ] && modes=eager,compile
    [ "${TORCH_COMPILE_PREFILL:-0}" = 1 ] && extra+=(--compile-prefill)
    if enough 60 "torch $big-bf16"; then
        [ "$(left)" -lt 150 ] && modes=eager && note skipped "torch compile on $big-bf16" "short of time"
        # shellcheck disable=SC2046
        torch_peer "$big-bf16" "$modes" $(src "$big" "$big-bf16") --copy-probe-mib "$([ $smoke = 1 ] && echo 256 || echo 2048)" \
            --greedy-ids 16 "${extra[@]}"
    fi
    if enough 40 "torch smollm2-135m-bf16"; then
        modes=eager
        # (not in the smoke test: inductor's CPU compile of 30 layers takes minutes here)
        [ $smoke = 0 ] && [ "${TORCH_COMPILE:-1}" = 1 ] && [ "$(left)" -gt 150 ] && modes=eager,compile
        # shellcheck disable=SC2046
        torch_peer smollm2-135m-bf16 "$modes" $(src smollm2-135m smollm2-135m-bf16) --greedy-ids 16
    fi
fi
# when there is time: the stand-in beside the real GGUF (is it a fair stand-in?), and lx on the
# bf16 SmolLM2-shaped folder that PyTorch ran (the same weights as its peer)
if [ $lx_ok = 1 ] && [ -n "$gguf" ] && enough 60 "lx smollm2-135m-standin-q4_1 (beside the real GGUF)"; then
    lx_model smollm2-135m-standin-q4_1 "$MODELS/smollm2-135m-standin-q4_1" 49152
fi
if [ $lx_ok = 1 ] && enough 60 "lx smollm2-135m-bf16"; then
    lx_model smollm2-135m-bf16 "$MODELS/smollm2-135m-bf16" 49152
fi

# ---- 6. the table ---------------------------------------------------------------------------
log "done in $(elapsed) s"
report table "$res" "$out"
rm -rf "$tmp"
