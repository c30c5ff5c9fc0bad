#!/usr/bin/env python3
"""report.py -- the small helpers of scripts/gpu_bench.sh (Python's standard library only, so
they run with any python3: the device's, or Debian's here).

    report.py ids N VOCAB              N prompt ids, comma-separated: random.Random(N) over
                                       [256, VOCAB-2), as bench/peers/torch_decode.py makes them
    report.py check-logits FILE        a --logits-out safetensors: every value finite? one JSON
                                       line; exit status 1 if not
    report.py lx-row ENGINE MODEL METRIC N STATS_LINE [KEY=VALUE...]
                                       one result row (JSON) from `lx generate --stats`
    report.py table RESULTS.jsonl OUTDIR
                                       results.md and summary.json in OUTDIR, the table on stdout

Result rows (results.jsonl) are JSON objects: {"engine", "model", "metric", "n", "value",
"samples"} for measurements (metric decode_tok_s, prefill_tok_s, ...), {"kind": "model", ...}
for what random_model printed of each folder (decode_bytes: weight bytes read per decoded token)
and {"kind": "probe", ...} for the copy-rate probes; rows with "skipped" or "error" say why a
step did not run.
"""
import json
import math
import os
import random
import statistics
import struct
import sys


def ids(n, vocab):
    r = random.Random(n)
    return ",".join(str(r.randrange(256, vocab - 2)) for _ in range(n))


def check_logits(path):
    with open(path, "rb") as f:
        hlen = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(hlen))
        t = header["logits"]
        assert t["dtype"] == "F32", t["dtype"]
        b, e = t["data_offsets"]
        f.seek(8 + hlen + b)
        data = f.read(e - b)
    n = len(data) // 4
    vals = struct.unpack(f"<{n}f", data)
    bad = sum(1 for v in vals if not math.isfinite(v))
    mx = max((abs(v) for v in vals if math.isfinite(v)), default=0.0)
    rows, vocab = t["shape"]
    out = {"rows": rows, "vocab": vocab, "nonfinite": bad, "max_abs": mx}
    print(json.dumps(out))
    return 0 if bad == 0 else 1


def lx_row(engine, model, metric, n, stats, extra):
    s = json.loads(stats)
    key = {"decode_tok_s": "decode_tok_s", "prefill_tok_s": "prefill_tok_s"}[metric]
    row = {"engine": engine, "model": model, "metric": metric, "n": int(n), "value": s[key],
           "samples": [s[key]], "stats": s}
    for kv in extra:
        k, v = kv.split("=", 1)
        row[k] = v
    print(json.dumps(row))


def fmt(v, digits=1):
    if v is None:
        return "–"
    if v >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}f}"


def table(path, outdir):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    models = {r["label"]: r for r in rows if r.get("kind") == "model"}
    probes = [r for r in rows if r.get("kind") == "probe"]
    meas = [r for r in rows if "metric" in r and "value" in r and r.get("value") is not None]
    notes = [r for r in rows if "skipped" in r or "error" in r]
    # the roofline's rate: the CUDA probe's copy rate if present, else torch's
    rate, rate_from = None, None
    for want in ("cuda", "torch"):
        for p in probes:
            if p.get("probe") == want and p.get("copy_rw_bytes_per_s"):
                rate, rate_from = p["copy_rw_bytes_per_s"], f"{want} copy (read+write bytes/s)"
                break
        if rate:
            break

    def merged(engine, model, metric, n):
        vals = []
        for r in meas:
            if r["engine"] == engine and r["model"] == model and r["metric"] == metric \
                    and (n is None or r.get("n") == n):
                vals += r.get("samples") or [r["value"]]
        return vals

    combos = list(dict.fromkeys((r["engine"], r["model"]) for r in meas
                                if r["metric"] in ("decode_tok_s", "prefill_tok_s")))
    prefill_ns = sorted({r["n"] for r in meas if r["metric"] == "prefill_tok_s"})
    decode_ns = sorted({r["n"] for r in meas if r["metric"] == "decode_tok_s"})
    head = ["model", "engine", "decode tok/s @N (min–max)", "ms/token", "roofline tok/s",
            "of roofline"] + [f"prefill@{n} tok/s" for n in prefill_ns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    summary = []
    for eng, model in combos:
        m = models.get(model, {})
        cells, entry = [model, eng], {"model": model, "engine": eng}
        # one decode cell: the longest run measured (gpu_bench.sh shortens it for slow models)
        dec = None
        for n in sorted(decode_ns, reverse=True):
            v = merged(eng, model, "decode_tok_s", n)
            if not v:
                continue
            dec = statistics.median(v)
            cells.append(fmt(dec) + f" @{n}" + (f" ({fmt(min(v))}–{fmt(max(v))})" if len(v) > 1 else ""))
            entry.update(decode_n=n, decode_tok_s=dec, decode_samples=v)
            break
        if dec is None:
            cells.append("–")
        roof = rate / m["decode_bytes"] if rate and m.get("decode_bytes") else None
        cells += [fmt(1000 / dec, 2) if dec else "–", fmt(roof), f"{100 * dec / roof:.0f}%" if dec and roof else "–"]
        entry.update(roofline_tok_s=roof, decode_bytes=m.get("decode_bytes"))
        for n in prefill_ns:
            v = merged(eng, model, "prefill_tok_s", n)
            med = statistics.median(v) if v else None
            cells.append(fmt(med) + (f" ({fmt(min(v))}–{fmt(max(v))})" if len(v) > 1 else ""))
            entry[f"prefill_tok_s@{n}"] = med
        lines.append("| " + " | ".join(cells) + " |")
        summary.append(entry)
    out = ["## Results", ""] + lines + [""]
    if rate:
        out.append(f"Roofline: decode_bytes / {rate / 1e9:.0f} GB/s ({rate_from}); "
                   "decode_bytes = weight bytes read per decoded token, as lx holds them "
                   "(see the models table).")
    else:
        out.append("Roofline: no copy-rate probe ran.")
    out += ["", "### Models", "", "| model | format | params | file MB | decode MB/token | source |",
            "|---|---|---:|---:|---:|---|"]
    for label, m in models.items():
        out.append(f"| {label} | {m.get('format', '')} | {m.get('params', 0) / 1e6:.1f} M | "
                   f"{m.get('file_bytes', 0) / 1e6:.1f} | {m.get('decode_bytes', 0) / 1e6:.1f} | "
                   f"{m.get('source', '')} |")
    if probes:
        out += ["", "### Copy-rate probes", ""]
        for p in probes:
            out.append("- " + json.dumps({k: v for k, v in p.items() if k != "kind"}))
    other = [r for r in meas if r["metric"] not in ("decode_tok_s", "prefill_tok_s")]
    if other:
        out += ["", "### Other measurements", ""]
        for r in other:
            v = r["value"]
            out.append(f"- {r['engine']} {r['model']} {r['metric']}"
                       f"{'@' + str(r['n']) if r.get('n') is not None else ''}: "
                       f"{v if not isinstance(v, float) else round(v, 4)}")
    # greedy ids of engines on the same model (the same weights): do they agree?
    greedy = {}
    for r in meas:
        if r["metric"] == "greedy_ids":
            greedy.setdefault(r["model"], []).append((r["engine"], r["value"]))
    agree = []
    for model, lst in greedy.items():
        for i in range(len(lst)):
            for j in range(i + 1, len(lst)):
                (ea, a), (eb, b) = lst[i], lst[j]
                k = next((t for t, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
                agree.append(f"- {model}: {ea} and {eb} agree on the first {k} of "
                             f"{min(len(a), len(b))} greedy ids")
    if agree:
        out += ["", "### Greedy ids, engine against engine (same weights, same prompt)", ""] + agree
    if notes:
        out += ["", "### Skipped or failed", ""]
        for r in notes:
            out.append("- " + json.dumps(r))
    text = "\n".join(out) + "\n"
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(outdir, "summary.json"), "w") as f:
        json.dump({"rate_bytes_per_s": rate, "rate_from": rate_from, "rows": summary,
                   "models": models, "probes": probes, "notes": notes}, f, indent=1)
    sys.stdout.write(text)
    return 0


def main(argv):
    if len(argv) >= 3 and argv[0] == "ids":
        print(ids(int(argv[1]), int(argv[2])))
        return 0
    if len(argv) == 2 and argv[0] == "check-logits":
        return check_logits(argv[1])
    if len(argv) >= 6 and argv[0] == "lx-row":
        lx_row(*argv[1:6], argv[6:])
        return 0
    if len(argv) == 3 and argv[0] == "table":
        return table(argv[1], argv[2])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
