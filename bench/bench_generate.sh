#!/usr/bin/env bash
# Generation benchmark: lx against its peers on the same model and the same 2 threads, one table.
#
#   LX=build/lx bash bench/bench_generate.sh            lx alone (the peers need PY, below)
#   LX=build/lx PEERS=1 bash bench/bench_generate.sh    lx, then llama-cpp-python (+ optional ones)
#
# Environment:
#   LX            the lx binary (skipped when unset or not executable)
#   MODEL         the GGUF (default: what scripts/fetch_model.sh prints)
#   THREADS       threads for every engine (default 2; lx gets LX_NUM_THREADS)
#   REPS          repetitions per lx measurement, medians reported (default 5)
#   PEERS=1       also run bench/peers/llama_cpp_bench.py with PY
#   MLX=1         also run bench/peers/mlx_lm_bench.py with PY (slow: MLX's CPU backend here runs
#                 ~10 tok/s; its converted model must exist or be made, see that script)
#   LLAMA_BENCH   a llama-bench binary built from llama.cpp's source: also run it
#   PY            the Python of the peers venv (default /work/peers/venv/bin/python); a
#                 measuring tool only, never a dependency of lx or of its CI
#   OUT           keep every raw JSON line in this file (default: a temp file)
#
# lx's side uses the documented interface (DESIGN.md §3):
#   lx generate -m MODEL --prompt-ids IDS -n N --ignore-eos --stats
# whose last stderr line is {"prompt_tokens":..,"generated_tokens":..,"load_s":..,
# "prefill_tok_s":..,"decode_tok_s":..,"peak_memory_bytes":..}. Prefill@P: P prompt ids, -n 1,
# prefill_tok_s. Decode@N: a 5-id prompt, -n N --ignore-eos, decode_tok_s. Load: load_s, and
# load_s + first_token_s where lx reports it, of the 5-id run. Peak memory: the largest
# peak_memory_bytes seen. The peers measure the same things (see bench/peers/*.py).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
THREADS=${THREADS:-2}
REPS=${REPS:-5}
PY=${PY:-/work/peers/venv/bin/python}
MODEL=${MODEL:-$(bash "$repo/scripts/fetch_model.sh")}
out=${OUT:-$(mktemp /tmp/bench_generate.XXXXXX.jsonl)}
: > "$out"
py3=$(command -v python3 || echo "$PY")

echo "# bench_generate: $(date -u +%FT%TZ) $(uname -m), $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p'), threads $THREADS" >&2
echo "# load: $(uptime)" >&2

ids_of() {  # n -> n deterministic token ids, comma-separated
  "$py3" -c "import random,sys; r=random.Random(int(sys.argv[1])); print(','.join(str(r.randrange(100,49000)) for _ in range(int(sys.argv[1]))))" "$1"
}
short=504,3575,282,4649,314   # "The capital of France is"
timer=()   # GNU time gives lx's peak RSS beside lx's own peak_memory_bytes
if [ -x /usr/bin/time ]; then timer=(/usr/bin/time -f "LXRSS_KB %M"); fi

lx_run() {  # metric n ids n_new -> one JSON line per rep into $out
  local metric=$1 n=$2 ids=$3 nnew=$4 rep err line
  for rep in $(seq "$REPS"); do
    err=$(mktemp)
    if ! LX_NUM_THREADS=$THREADS "${timer[@]}" "$LX" generate -m "$MODEL" --prompt-ids "$ids" -n "$nnew" --ignore-eos --stats \
         > /dev/null 2> "$err"; then
      echo "bench_generate: lx generate failed ($metric $n):" >&2; tail -3 "$err" >&2; rm -f "$err"; return 1
    fi
    line=$(grep '^{' "$err" | tail -1); rss=$(sed -n 's/^LXRSS_KB //p' "$err" | tail -1); rm -f "$err"
    "$py3" - "$metric" "$n" "$line" "${rss:-}" >> "$out" <<'PY'
import json, sys
metric, n, s = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
rss = sys.argv[4]
rows = []
if metric == "prefill":
    rows.append(("prefill_tok_s", n, s["prefill_tok_s"]))
elif metric == "decode":
    rows.append(("decode_tok_s", n, s["decode_tok_s"]))
    if n == 5:
        rows = [("load_s", None, s["load_s"])]
        if "first_token_s" in s:
            rows.append(("load_to_first_token_s", None, s["load_s"] + s["first_token_s"]))
rows.append(("peak_memory_bytes", None, s["peak_memory_bytes"]))
if rss:
    rows.append(("peak_rss_bytes", None, int(rss) * 1024))
for m, k, v in rows:
    print(json.dumps({"engine": "lx", "metric": m, "n": k, "value": v}))
PY
  done
}

if [ -n "${LX:-}" ] && [ -x "$LX" ]; then
  echo "# lx: $LX" >&2
  lx_run decode 5 "$short" 1
  for p in 128 512; do lx_run prefill "$p" "$(ids_of "$p")" 1; done
  for n in 128 512; do lx_run decode "$n" "$short" "$n"; done
else
  echo "# lx: skipped (set LX=path/to/lx)" >&2
fi

peer() {  # engine script args... : the peer's JSON lines -> $out
  local engine=$1; shift
  echo "# $engine: $*" >&2
  "$PY" "$@" 2>/dev/null | "$py3" -c '
import json, sys
eng = sys.argv[1]
for l in sys.stdin:
    d = json.loads(l)
    for v in d.get("samples") or [d["median"]]:
        print(json.dumps({"engine": eng, "metric": d["metric"], "n": d.get("n") if d["metric"].endswith("tok_s") else None, "value": v}))
' "$engine" >> "$out" || echo "bench_generate: $engine failed" >&2
}
if [ "${PEERS:-0}" = 1 ]; then
  peer llama-cpp-python "$here/peers/llama_cpp_bench.py" --model "$MODEL" --threads "$THREADS" --reps "$REPS"
fi
if [ "${MLX:-0}" = 1 ]; then
  peer mlx-lm "$here/peers/mlx_lm_bench.py" --gguf "$MODEL" --reps "$(( REPS < 3 ? REPS : 3 ))"
fi
if [ -n "${LLAMA_BENCH:-}" ]; then
  echo "# llama-bench: $LLAMA_BENCH" >&2
  "$LLAMA_BENCH" -m "$MODEL" -t "$THREADS" -p 128,512 -n 128,512 -r "$REPS" -o jsonl 2>/dev/null | "$py3" -c '
import json, sys
for l in sys.stdin:
    d = json.loads(l)
    m, n = ("prefill_tok_s", d["n_prompt"]) if d["n_prompt"] else ("decode_tok_s", d["n_gen"])
    for v in d["samples_ts"]:
        print(json.dumps({"engine": "llama-bench", "metric": m, "n": n, "value": v}))
' >> "$out" || echo "bench_generate: llama-bench failed" >&2
fi
echo "# load after: $(uptime)" >&2
echo "# raw: $out" >&2

"$py3" - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cols = [("prefill_tok_s", 128, "prefill@128 tok/s"), ("prefill_tok_s", 512, "prefill@512 tok/s"),
        ("decode_tok_s", 128, "decode@128 tok/s"), ("decode_tok_s", 512, "decode@512 tok/s"),
        ("load_to_first_token_s", None, "load→1st token s"), ("peak", None, "peak memory MiB")]
engines = list(dict.fromkeys(r["engine"] for r in rows))
def cell(eng, metric, n):
    if metric == "peak":
        v = [r["value"] for r in rows if r["engine"] == eng and r["metric"] in ("peak_memory_bytes", "peak_rss_bytes")]
        if not v: return "–"
        kinds = {r["metric"] for r in rows if r["engine"] == eng and r["metric"].startswith("peak")}
        pm = [r["value"] for r in rows if r["engine"] == eng and r["metric"] == "peak_memory_bytes"]
        rss = [r["value"] for r in rows if r["engine"] == eng and r["metric"] == "peak_rss_bytes"]
        s = []
        if pm: s.append(f"{max(pm) / 2**20:.0f}")
        if rss: s.append(f"RSS {max(rss) / 2**20:.0f}")
        return " / ".join(s)
    v = [r["value"] for r in rows if r["engine"] == eng and r["metric"] == metric and r["n"] == n]
    if not v: return "–"
    med = statistics.median(v)
    fmt = (lambda x: f"{x:.3f}") if metric.endswith("_s") and not metric.endswith("tok_s") else (lambda x: f"{x:.1f}")
    return f"{fmt(med)} ({fmt(min(v))}–{fmt(max(v))}, n={len(v)})" if len(v) > 1 else fmt(med)
print("| engine | " + " | ".join(c[2] for c in cols) + " |")
print("| --- |" + " ---: |" * len(cols))
for e in engines:
    print(f"| {e} | " + " | ".join(cell(e, m, n) for m, n, _ in cols) + " |")
print("\nmedian (min–max, n samples); peak memory: the engine's own count, and process RSS where measured")
PY
