"""The `lx` command (DESIGN.md section 3: lx generate, lx chat, lx tokenize) run as a process.

On the tiny fixtures ($LX_FIXTURES/tiny-llama-f32, tiny-qwen3-bf16; reference.safetensors from
transformers with prompt_ids, output_ids and float32 logits of every position):
  - `generate --prompt-ids ... -n 40 --ignore-eos --print-ids` prints exactly output_ids;
  - `--logits-out FILE` writes a safetensors whose "logits" [74, 512] float32 agree with the
    reference to 1e-4 of each row's largest |logit| (float32 noise is ~1e-6 for both);
  - `--stats` prints one JSON line on stderr with every key section 3 names, sane values;
  - `tokenize -m DIR TEXT` and the same text on stdin give tokenizer_cases.json's ids;
  - sampling: --temp 0.8 --seed 7 twice gives the same ids, other seeds other ids;
  - bad input (missing -m, no such path, a folder without config.json, a truncated .gguf, a
    non-numeric -n, negative and out-of-vocabulary --prompt-ids, a prompt longer than --ctx,
    an unknown option, --device gpu without a GPU): exit status 1 and a message naming the
    file or option.
On the real model (env LX_TEST_GGUF, SmolLM2-135M-Instruct Q4_1; those parts are skipped when it
is absent), against tests/fixtures/smollm2 (prompts.json: jinja2's rendering of the GGUF's chat
template; reference.safetensors: llama.cpp's prompt ids and transformers' greedy ids):
  - the rendered chat text tokenizes to llama.cpp's ids, and `generate --chat -p Q` (and with
    -s SYSTEM) feeds exactly that many tokens and continues as transformers does: same greedy
    ids, EOS (id 2) last and before -n, stats stop "eos"; the text output ends before EOS;
  - Ctrl-C: SIGINT about a second into `-n 100000 --ignore-eos --stats`: exit 0 within a few
    seconds, the stats JSON printed with stop "user";
  - `lx chat` with two lines on stdin (not a terminal) answers both; the second turn's stats
    show the first turn's context reused (reused_tokens > 0, in fact >= its prompt tokens).
No process may report a sanitizer error (an ASan report exits 1 too, so bad-input checks would
pass on it otherwise).

Env: LX_CLI (the lx binary), LX_FIXTURES, LX_TEST_GGUF, LX_TEST_TMP, LX_REPO.
Exits 77 (skipped) when the binary or the tiny fixtures are absent.
"""
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.environ.get("LX_REPO", os.path.join(HERE, "..", ".."))
CLI = os.environ.get("LX_CLI")
FIXTURES = os.environ.get("LX_FIXTURES", os.path.join(REPO, "..", "shared", "fixtures"))
GGUF = os.environ.get("LX_TEST_GGUF", "")
TMP_ROOT = os.environ.get("LX_TEST_TMP", tempfile.gettempdir())
SMOL = os.path.join(REPO, "tests", "fixtures", "smollm2")
TINY = ["tiny-llama-f32", "tiny-qwen3-bf16"]
STATS_KEYS = ["prompt_tokens", "generated_tokens", "load_s", "prefill_tok_s", "decode_tok_s",
              "peak_memory_bytes", "active_memory_bytes", "tracked"]
EOS = 2  # SmolLM2's <|im_end|>
TIMEOUT = 900  # a process's limit: the real model under ASan is slow

failures = 0
checks = 0


def check(cond, what):
    global failures, checks
    checks += 1
    if not cond:
        failures += 1
        print("FAIL: " + what, flush=True)
    return cond


def lx(*args, stdin=None, timeout=TIMEOUT):
    """Runs lx with args; returns (status, stdout, stderr) as text."""
    p = subprocess.run([CLI] + [str(a) for a in args], input=stdin, capture_output=True,
                       timeout=timeout)
    out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    check("Sanitizer" not in err and "runtime error:" not in err,
          "lx %s: a sanitizer report:\n%s" % (" ".join(map(str, args))[:200], err[-3000:]))
    return p.returncode, out, err


# ---- safetensors (by hand: numpy only) -----------------------------------------------------
ST_NP = {"F32": np.float32, "I32": np.int32, "I64": np.int64, "U32": np.uint32, "F16": np.float16,
         "U16": np.uint16, "BF16": np.uint16, "U8": np.uint8}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        arr = np.frombuffer(blob[8 + n + a:8 + n + b], dtype=ST_NP[t["dtype"]]).reshape(t["shape"])
        if t["dtype"] == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = (t["dtype"], arr)
    return out


def ids_of(text):
    return [int(x) for x in text.split()]


def parse_stats(err, what):
    """The JSON lines of stderr (lx prints nothing else there on success)."""
    lines = [l for l in err.splitlines() if l.strip()]
    stats = []
    for l in lines:
        try:
            stats.append(json.loads(l))
        except ValueError:
            check(False, "%s: stderr line is not JSON: %r" % (what, l[:200]))
    return stats


def check_stats(s, what, prompt_tokens=None, generated=None):
    for k in STATS_KEYS:
        check(k in s, "%s: --stats has no '%s': %s" % (what, k, s))
    if not all(k in s for k in STATS_KEYS):
        return
    for k in ["prompt_tokens", "generated_tokens", "peak_memory_bytes", "active_memory_bytes",
              "tracked"]:
        check(isinstance(s[k], int) and s[k] >= 0, "%s: %s = %r" % (what, k, s[k]))
    for k in ["load_s", "prefill_tok_s", "decode_tok_s"]:
        check(isinstance(s[k], (int, float)) and s[k] >= 0 and np.isfinite(s[k]),
              "%s: %s = %r" % (what, k, s[k]))
    if prompt_tokens is not None:
        check(s["prompt_tokens"] == prompt_tokens, "%s: prompt_tokens %r, %d expected"
              % (what, s["prompt_tokens"], prompt_tokens))
    if generated is not None:
        check(s["generated_tokens"] == generated, "%s: generated_tokens %r, %d expected"
              % (what, s["generated_tokens"], generated))
    check(s["load_s"] < 300, "%s: load_s %r" % (what, s["load_s"]))
    if s["generated_tokens"] > 0:
        check(s["prefill_tok_s"] > 0, "%s: prefill_tok_s %r" % (what, s["prefill_tok_s"]))
    if s["generated_tokens"] > 1:
        check(s["decode_tok_s"] > 0, "%s: decode_tok_s %r" % (what, s["decode_tok_s"]))
    check(0 < s["active_memory_bytes"] <= s["peak_memory_bytes"] < 1 << 40,
          "%s: active %r, peak %r" % (what, s["active_memory_bytes"], s["peak_memory_bytes"]))


# ---- tiny fixtures --------------------------------------------------------------------------
def test_tiny_generate(name, tmp):
    d = os.path.join(FIXTURES, name)
    ref = read_safetensors(os.path.join(d, "reference.safetensors"))
    prompt = ref["prompt_ids"][1].astype(int).tolist()
    want = ref["output_ids"][1].astype(int).tolist()
    logits = ref["logits"][1].astype(np.float64)
    pid = ",".join(map(str, prompt))
    rc, out, err = lx("generate", "-m", d, "--prompt-ids", pid, "-n", 40, "--ignore-eos",
                      "--print-ids")
    check(rc == 0, "%s: exit %d: %s" % (name, rc, err))
    got = ids_of(out)
    check(got == want, "%s: --print-ids printed %s, transformers gives %s" % (name, got, want))
    check(out.count("\n") == 1, "%s: --print-ids prints one line: %r" % (name, out[:200]))
    # --logits-out and --stats (and the ids again: all rows computed is another code path)
    path = os.path.join(tmp, name + ".logits.safetensors")
    rc, out, err = lx("generate", "-m", d, "--prompt-ids", pid, "-n", 40, "--ignore-eos",
                      "--print-ids", "--logits-out", path, "--stats")
    check(rc == 0, "%s --logits-out: exit %d: %s" % (name, rc, err))
    check(ids_of(out) == want, "%s --logits-out: ids %s" % (name, out.strip()[:200]))
    check(os.path.exists(path), "%s: %s not written" % (name, path))
    if os.path.exists(path):
        got = read_safetensors(path)
        check(list(got) == ["logits"], "%s: tensors %s" % (name, list(got)))
        dt, a = got.get("logits", ("none", np.zeros(0)))
        check(dt == "F32" and a.shape == logits.shape == (74, 512),
              "%s: logits %s %s, reference %s" % (name, dt, a.shape, logits.shape))
        if a.shape == logits.shape:
            rel = np.abs(a - logits).max(axis=1) / np.abs(logits).max(axis=1)
            print("  %s: --logits-out largest error %.3g of the row's largest |logit| (row %d)"
                  % (name, rel.max(), rel.argmax()))
            check(rel.max() <= 1e-4, "%s: logits row %d differs by %.3g of its largest |logit|"
                  % (name, rel.argmax(), rel.max()))
    stats = parse_stats(err, name)
    check(len(stats) == 1, "%s: --stats printed %d JSON lines on stderr: %r"
          % (name, len(stats), err[:500]))
    if stats:
        check_stats(stats[-1], name, prompt_tokens=len(prompt), generated=40)
        check(stats[-1].get("stop") in (None, "length"), "%s: stop %r" % (name, stats[-1].get("stop")))
        print("  %s stats: %s" % (name, json.dumps(stats[-1])))


def test_tiny_tokenize():
    cases = json.load(open(os.path.join(FIXTURES, "tokenizer_cases.json")))["cases"]
    for name in TINY:
        d = os.path.join(FIXTURES, name)
        bad = 0
        for c in cases:
            text, want = c["text"], c["ids"]
            if not text.startswith("-"):
                rc, out, err = lx("tokenize", "-m", d, text)
                ok = check(rc == 0 and ids_of(out) == want,
                           "%s: tokenize %r: exit %d, %s; want %s (%s)"
                           % (name, text, rc, out.strip(), want, err.strip()))
                bad += not ok
            rc, out, err = lx("tokenize", "-m", d, stdin=text.encode())
            ok = check(rc == 0 and ids_of(out) == want,
                       "%s: tokenize %r on stdin: exit %d, %s; want %s (%s)"
                       % (name, text, rc, out.strip(), want, err.strip()))
            bad += not ok
        print("  %s: tokenize: %d cases as argument and on stdin, %d wrong" % (name, len(cases), bad))
    # all of stdin, several lines: the ids of the whole text (one case after another)
    text = "".join(c["text"] for c in cases[:6])
    ref = subprocess.run([CLI, "tokenize", "-m", os.path.join(FIXTURES, TINY[0]), text],
                         capture_output=True)
    rc, out, err = lx("tokenize", "-m", os.path.join(FIXTURES, TINY[0]), stdin=text.encode())
    check(rc == 0 and ref.returncode == 0 and out == ref.stdout.decode(),
          "tokenize: stdin of %d bytes gives %s, the argument %s"
          % (len(text), out[:100], ref.stdout[:100]))


def test_sampling():
    d = os.path.join(FIXTURES, TINY[0])
    ref = read_safetensors(os.path.join(d, "reference.safetensors"))
    pid = ",".join(map(str, ref["prompt_ids"][1].astype(int).tolist()))
    greedy = ref["output_ids"][1].astype(int).tolist()[:20]

    def sample(seed):
        rc, out, err = lx("generate", "-m", d, "--prompt-ids", pid, "-n", 20, "--ignore-eos",
                          "--print-ids", "--temp", "0.8", "--seed", seed)
        check(rc == 0, "sampling seed %s: exit %d: %s" % (seed, rc, err))
        return ids_of(out)

    a, b = sample(7), sample(7)
    check(len(a) == 20 and a == b, "--temp 0.8 --seed 7 twice: %s and %s" % (a, b))
    others = [sample(s) for s in (8, 9, 10, 11)]
    differ = sum(o != a for o in others)
    check(all(len(o) == 20 for o in others), "sampling: lengths %s" % [len(o) for o in others])
    check(differ >= 3, "seeds 8..11 give seed 7's ids %d times of 4" % (4 - differ))
    check(a != greedy, "--temp 0.8 gives the greedy ids")
    print("  sampling: seed 7 reproduces, %d of 4 other seeds differ" % differ)


def expect_fail(what, args, needles, stdin=None):
    rc, out, err = lx(*args, stdin=stdin)
    check(rc == 1, "%s: exit %d, 1 expected (stderr %r)" % (what, rc, err[-300:]))
    for n in needles:
        check(n in err, "%s: the message %r does not name %r" % (what, err.strip()[-300:], n))
    return err.strip()


def test_bad_inputs(tmp):
    d = os.path.join(FIXTURES, TINY[0])
    msgs = []
    msgs.append(expect_fail("missing -m", ["generate", "-p", "hi"], ["-m"]))
    msgs.append(expect_fail("tokenize without -m", ["tokenize", "hi"], ["-m"]))
    msgs.append(expect_fail("no such path", ["generate", "-m", "/nonexistent/model.gguf", "-p", "hi"],
                            ["/nonexistent/model.gguf"]))
    msgs.append(expect_fail("tokenize: no such path", ["tokenize", "-m", "/nonexistent/dir", "hi"],
                            ["/nonexistent/dir"]))
    empty = os.path.join(tmp, "cli_no_config")
    os.makedirs(empty, exist_ok=True)
    msgs.append(expect_fail("folder without config.json", ["generate", "-m", empty, "-p", "hi"],
                            ["config.json"]))
    if os.path.exists(GGUF):
        cut = os.path.join(tmp, "cli_truncated.gguf")
        with open(GGUF, "rb") as f, open(cut, "wb") as g:
            g.write(f.read(3 << 20))  # the header and part of the tensor data
        msgs.append(expect_fail("truncated .gguf", ["generate", "-m", cut, "-p", "hi"], [cut]))
        with open(GGUF, "rb") as f, open(cut, "wb") as g:
            g.write(f.read(100))  # inside the metadata
        msgs.append(expect_fail("gguf cut in its metadata", ["generate", "-m", cut, "-p", "hi"],
                                [cut]))
        msgs.append(expect_fail("tokenize a truncated .gguf", ["tokenize", "-m", cut, "hi"], [cut]))
    msgs.append(expect_fail("non-numeric -n", ["generate", "-m", d, "-p", "hi", "-n", "ten"],
                            ["-n", "ten"]))
    msgs.append(expect_fail("negative id", ["generate", "-m", d, "--prompt-ids", "1,-2,3"],
                            ["--prompt-ids", "-2"]))
    msgs.append(expect_fail("id outside the vocabulary",
                            ["generate", "-m", d, "--prompt-ids", "1,512,3", "-n", 4],
                            ["512", "vocabulary"]))
    msgs.append(expect_fail("prompt longer than --ctx", ["generate", "-m", d, "--prompt-ids",
                            ",".join(str(i) for i in range(10, 22)), "--ctx", 8, "-n", 2],
                            ["12 tokens", "8"]))
    msgs.append(expect_fail("unknown option", ["generate", "-m", d, "-p", "hi", "--frobnicate"],
                            ["--frobnicate"]))
    msgs.append(expect_fail("chat: unknown option", ["chat", "-m", d, "--frobnicate"],
                            ["--frobnicate"], stdin=b""))
    msgs.append(expect_fail("--logits-out into a missing folder",
                            ["generate", "-m", d, "--prompt-ids", "1,2", "-n", 2, "--logits-out",
                             "/nonexistent/dir/logits.safetensors"], ["/nonexistent/dir/logits"]))
    msgs.append(expect_fail("-p and --prompt-ids", ["generate", "-m", d, "-p", "hi",
                            "--prompt-ids", "1"], ["--prompt-ids"]))
    rc, info, _ = lx("info")
    if "gpu: not available" in info or "gpu: none" in info:
        msgs.append(expect_fail("--device gpu without a GPU",
                                ["generate", "-m", d, "-p", "hi", "--device", "gpu"],
                                ["--device gpu"]))
    else:
        print("  (a GPU is there: --device gpu not checked as an error)")
    print("  bad inputs: %d refused, e.g. %r" % (len(msgs), msgs[-1] if msgs else ""))


# ---- the real model -------------------------------------------------------------------------
def smol_reference():
    prompts = json.load(open(os.path.join(SMOL, "prompts.json")))["prompts"]
    ref = read_safetensors(os.path.join(SMOL, "reference.safetensors"))
    return prompts, ref


def test_chat_template():
    prompts, ref = smol_reference()
    for k in (3, 4):  # one user turn (the template's default system prompt), own system prompt
        p = prompts[k]
        want_prompt = ref["p%d.prompt_ids" % k][1].astype(int).tolist()
        want_out = ref["p%d.output_ids" % k][1].astype(int).tolist()
        # jinja2's rendering, tokenized by lx (specials parsed, nothing added): llama.cpp's ids
        rc, out, err = lx("tokenize", "-m", GGUF, "--no-add-special", p["text"])
        check(rc == 0 and ids_of(out) == want_prompt,
              "prompt %d: the rendered template tokenizes to %s, llama.cpp %s (%s)"
              % (k, out.strip()[:300], want_prompt, err))
        msgs = p["messages"]
        args = ["generate", "-m", GGUF, "--chat", "-p", msgs[-1]["content"], "--print-ids",
                "--stats"]
        if msgs[0]["role"] == "system":
            args += ["-s", msgs[0]["content"]]
        n = 60 if k == 3 else 12  # prompt 3 stops at EOS after 8; prompt 4: the first 12
        rc, out, err = lx(*(args + ["-n", n]))
        check(rc == 0, "prompt %d --chat: exit %d: %s" % (k, rc, err))
        got = ids_of(out)
        stats = parse_stats(err, "--chat")
        s = stats[-1] if stats else {}
        check(s.get("prompt_tokens") == len(want_prompt),
              "prompt %d --chat: %r prompt tokens, the template gives %d"
              % (k, s.get("prompt_tokens"), len(want_prompt)))
        check(got == want_out[:n], "prompt %d --chat: ids %s, transformers %s" % (k, got, want_out[:n]))
        if k == 3:  # EOS stop: before -n, EOS printed last
            check(len(got) < n and got[-1:] == [EOS] and EOS not in got[:-1],
                  "--chat: %d ids, last %s: EOS (2) last and before -n %d expected"
                  % (len(got), got[-1:], n))
            check(s.get("stop") == "eos" and s.get("generated_tokens") == len(got),
                  "--chat EOS stop: stats %s" % s)
            if stats:
                check_stats(s, "--chat", prompt_tokens=len(want_prompt), generated=len(got))
            # the text output streams the same answer, without the end token
            rc, out, err = lx("generate", "-m", GGUF, "--chat", "-p", msgs[-1]["content"], "-n", 60)
            check(rc == 0 and out == p["hf_output_text"] + "\n",
                  "--chat text: %r, transformers %r" % (out, p["hf_output_text"]))
        print("  prompt %d (%s) --chat: %d prompt tokens, %d ids as transformers"
              % (k, p["name"], s.get("prompt_tokens", -1), len(got)))


def test_ctrl_c():
    cmd = [CLI, "generate", "-m", GGUF, "-p", "Once upon a time", "-n", 100000, "--ignore-eos",
           "--stats"]
    t0 = time.time()
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # wait for the first streamed text (generation has begun, the handler is installed)
    r, _, _ = select.select([proc.stdout], [], [], 300)
    check(bool(r), "Ctrl-C: no output within 300 s")
    first = time.time()
    if r:
        proc.stdout.read1(1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    t_sig = time.time()
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        check(False, "Ctrl-C: still running 30 s after SIGINT")
    waited = time.time() - t_sig
    err = err.decode("utf-8", "replace")
    check("Sanitizer" not in err, "Ctrl-C: sanitizer report: %s" % err[-2000:])
    check(proc.returncode == 0, "Ctrl-C: exit %d, 0 expected (stderr %r)" % (proc.returncode, err[-500:]))
    check(waited < 5, "Ctrl-C: %.1f s from SIGINT to exit" % waited)
    stats = parse_stats(err, "Ctrl-C")
    s = stats[-1] if stats else {}
    check(s.get("stop") == "user", "Ctrl-C: stats %s, stop 'user' expected" % s)
    if stats:
        check_stats(s, "Ctrl-C")
        check(0 < s["generated_tokens"] < 100000, "Ctrl-C: %d tokens" % s["generated_tokens"])
    print("  Ctrl-C: first text after %.1f s, exit %d %.2f s after SIGINT, %s tokens, stop %s"
          % (first - t0, proc.returncode, waited, s.get("generated_tokens"), s.get("stop")))


def test_chat_command():
    turns = "What is the capital of France?\nAnd what is the capital of Germany?\n"
    rc, out, err = lx("chat", "-m", GGUF, "-n", 24, "--stats", stdin=turns.encode())
    check(rc == 0, "lx chat: exit %d: %s" % (rc, err))
    stats = parse_stats(err, "lx chat")
    check(len(stats) == 2, "lx chat: %d stats lines for 2 turns: %r" % (len(stats), err[-500:]))
    check("Paris" in out, "lx chat: the first answer %r does not say Paris" % out[:300])
    if len(stats) == 2:
        a, b = stats
        for s, what in ((a, "turn 1"), (b, "turn 2")):
            check_stats(s, "lx chat " + what)
            check(s.get("generated_tokens", 0) > 0, "lx chat %s: %s" % (what, s))
        check(b["prompt_tokens"] > a["prompt_tokens"] + a["generated_tokens"] - 1,
              "lx chat: turn 2 has %d prompt tokens, turn 1 %d + %d"
              % (b["prompt_tokens"], a["prompt_tokens"], a["generated_tokens"]))
        check(b.get("reused_tokens", 0) > 0, "lx chat: turn 2 reused %r tokens" % b.get("reused_tokens"))
        # turn 1's prompt is a prefix of turn 2's (same template, same messages): all reused
        check(b.get("reused_tokens", 0) >= a["prompt_tokens"],
              "lx chat: turn 2 reused %r tokens, turn 1's prompt had %d"
              % (b.get("reused_tokens"), a["prompt_tokens"]))
        # the two answers: each turn's text ends with a newline
        check(out.count("\n") >= 2 and out.strip(), "lx chat: output %r" % out[:300])
        print("  lx chat: turn 1 %d+%d tokens, turn 2 %d prompt tokens (%d reused), %d generated"
              % (a["prompt_tokens"], a["generated_tokens"], b["prompt_tokens"],
                 b.get("reused_tokens", -1), b["generated_tokens"]))
        print("  lx chat output: %r" % out[:400])


def main():
    if not CLI or not os.access(CLI, os.X_OK):
        print("skipped: LX_CLI (%s) is not an executable" % CLI)
        return 77
    if not all(os.path.exists(os.path.join(FIXTURES, n, "reference.safetensors")) for n in TINY):
        print("skipped: the tiny fixtures are not in %s" % FIXTURES)
        return 77
    tmp = tempfile.mkdtemp(prefix="test_cli_", dir=TMP_ROOT if os.path.isdir(TMP_ROOT) else None)
    try:
        t0 = time.time()
        for name in TINY:
            test_tiny_generate(name, tmp)
        test_tiny_tokenize()
        test_sampling()
        test_bad_inputs(tmp)
        print("  tiny fixtures and bad inputs: %.1f s" % (time.time() - t0))
        if os.path.exists(GGUF) and os.path.isdir(SMOL):
            for fn in (test_chat_template, test_ctrl_c, test_chat_command):
                t = time.time()
                fn()
                print("  %s: %.1f s" % (fn.__name__, time.time() - t))
        else:
            print("  the real model (LX_TEST_GGUF=%r) or tests/fixtures/smollm2 is absent: its "
                  "parts skipped" % GGUF)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d checks, %d failed" % (checks, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
