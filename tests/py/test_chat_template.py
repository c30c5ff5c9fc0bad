"""Every chat template in tests/fixtures/chat_templates rendered over a set of conversations
by Python's jinja2 (set up as transformers' apply_chat_template sets it up) and by lx's Jinja
interpreter (the jinja_render driver, env LX_JINJA_RENDER): the outputs must be byte-identical,
and where jinja2 raises, lx must fail too (raise_exception as LX_E_ARG with the same message).
Exit 77 (skipped) only when jinja2 itself is absent."""
import datetime
import json
import os
import subprocess
import sys
import tempfile

try:
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError:
    print("python3-jinja2 is not installed: skipped")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.environ.get("LX_REPO", os.path.join(HERE, "..", ".."))
TEMPLATES = os.path.join(REPO, "tests", "fixtures", "chat_templates")
DRIVER = os.environ.get("LX_JINJA_RENDER")
NOW = 1721952000  # 26 Jul 2024 00:00 UTC: strftime_now's date on both sides


class Raised(Exception):
    pass


def hf_environment():
    """transformers' _compile_jinja_template: sandboxed, trim/lstrip blocks, loop controls,
    its tojson, raise_exception and strftime_now globals."""
    def raise_exception(message):
        raise Raised(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.fromtimestamp(NOW, datetime.timezone.utc).strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


TOKENS = {
    "llama-2-chat": ("<s>", "</s>"),
    "mistral-7b-instruct-v0.1": ("<s>", "</s>"),
    "mistral-7b-instruct-v0.2": ("<s>", "</s>"),
    "mistral-7b-instruct-v0.3": ("<s>", "</s>"),
    "mistral-nemo-instruct-2407": ("<s>", "</s>"),
    "tinyllama-zephyr": ("<s>", "</s>"),
    "llama-3-instruct": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama-3.1-instruct": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama-3.2-instruct": ("<|begin_of_text|>", "<|eot_id|>"),
    "qwen2.5-instruct": ("", "<|im_end|>"),
    "qwen3": ("", "<|im_end|>"),
    "smollm2-instruct": ("<|im_start|>", "<|im_end|>"),
}

TRICKY = "naïve café — 日本語 🎉 \"quotes\" 'single' {braces} {{ not jinja }} {% nor %}\nsecond line\ttab \\ backslash"
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city, in °C.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name, e.g. \"Paris\""},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
            "ratio": {"type": "number", "default": 0.5}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "search", "description": "Web search",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}},
]
TOOL_CALL = {"id": "call12345", "type": "function",
             "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}

S = {"role": "system", "content": "You are a helpful assistant."}
U1 = {"role": "user", "content": "Hello!"}
A1 = {"role": "assistant", "content": "Hi there! How can I help?"}
U2 = {"role": "user", "content": "What's the weather in Paris?"}

CONVERSATIONS = {
    "system_user": [S, U1],
    "user_only": [U1],
    "multi_turn": [S, U1, A1, U2],
    "multi_turn_no_system": [U1, A1, U2],
    "assistant_padded": [U1, {"role": "assistant", "content": "   I am an assistant   "}, U2],
    "tricky_content": [{"role": "system", "content": TRICKY}, {"role": "user", "content": TRICKY},
                       {"role": "assistant", "content": TRICKY}, {"role": "user", "content": "  " + TRICKY + "\n\n"}],
    "empty_content": [{"role": "user", "content": ""}],
    "assistant_first": [A1, U1],
    "two_users": [U1, U2],
    "tools": {"messages": [S, U2], "tools": TOOLS},
    "tools_no_system": {"messages": [U2], "tools": TOOLS},
    "tool_calls": {"messages": [S, U2,
                                {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL]},
                                {"role": "tool", "tool_call_id": "call12345", "content": "{\"temp\": 21}"},
                                {"role": "assistant", "content": "It is 21 °C."}],
                   "tools": TOOLS},
    "tool_calls_two_results": {"messages": [U2,
                                            {"role": "assistant", "content": "Let me check.",
                                             "tool_calls": [TOOL_CALL, {"id": "call67890", "type": "function",
                                                                        "function": {"name": "search", "arguments": "{\"q\": \"paris\"}"}}]},
                                            {"role": "tool", "tool_call_id": "call12345", "content": "sunny"},
                                            {"role": "tool", "tool_call_id": "call67890", "content": "<tool_response>x</tool_response>"}],
                               "tools": TOOLS},
    "thinking": [U1, {"role": "assistant", "content": "<think>\nThe user greets.\n</think>\n\nHello to you!"}, U2],
    "reasoning_content": [U1, {"role": "assistant", "content": "Hello to you!", "reasoning_content": "Greet back."}, U2],
    "thinking_off": {"messages": [U1], "enable_thinking": False},
    "date_pinned": {"messages": [S, U1], "date_string": "01 Jan 2025"},
    "custom_tools": {"messages": [S, U2], "tools": TOOLS, "tools_in_user_message": False},
}


def contexts():
    for name, conv in CONVERSATIONS.items():
        extra = {}
        if isinstance(conv, dict):
            extra = dict(conv)
            conv = extra.pop("messages")
        for agp in (False, True):
            yield f"{name}/agp={agp}", dict(extra, messages=conv, add_generation_prompt=agp)


def render_jinja2(env, src, ctx):
    try:
        return "ok", env.from_string(src).render(**ctx)
    except Raised as e:
        return "raise", str(e)
    except Exception as e:  # any other jinja2 / Python error
        return "error", f"{type(e).__name__}: {e}"


def render_lx(path, ctx, tmpdir):
    cpath = os.path.join(tmpdir, "context.json")
    with open(cpath, "w", encoding="utf-8") as f:
        json.dump(ctx, f, ensure_ascii=False)
    p = subprocess.run([DRIVER, path, cpath], capture_output=True,
                       env=dict(os.environ, LX_JINJA_NOW=str(NOW)), timeout=60)
    if p.returncode == 0:
        return "ok", p.stdout.decode("utf-8")
    return "error", p.stderr.decode("utf-8", "replace").strip()


def main():
    if not DRIVER or not os.path.exists(DRIVER):
        print("LX_JINJA_RENDER does not name the jinja_render driver", file=sys.stderr)
        return 1
    env = hf_environment()
    names = sorted(f[:-6] for f in os.listdir(TEMPLATES) if f.endswith(".jinja"))
    failures = 0
    summary = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("LX_TEST_TMP")) as tmpdir:
        for name in names:
            path = os.path.join(TEMPLATES, name + ".jinja")
            with open(path, encoding="utf-8") as f:
                src = f.read()
            bos, eos = TOKENS.get(name, ("<s>", "</s>"))
            ok = raised = 0
            for label, ctx in contexts():
                ctx = dict(ctx, bos_token=bos, eos_token=eos)
                kind, want = render_jinja2(env, src, ctx)
                got_kind, got = render_lx(path, ctx, tmpdir)
                if kind == "ok":
                    good = got_kind == "ok" and got == want
                elif kind == "raise":
                    good = got_kind == "error" and f"LX_E_ARG: chat template: {want}" in got
                else:
                    good = got_kind == "error" and "LX_E_FORMAT" in got
                if good:
                    ok += 1
                    raised += kind != "ok"
                else:
                    failures += 1
                    print(f"FAIL {name} {label}: jinja2 {kind}, lx {got_kind}", file=sys.stderr)
                    print(f"  jinja2: {want!r}", file=sys.stderr)
                    print(f"  lx:     {got!r}", file=sys.stderr)
            summary.append(f"{name}: {ok} matched ({raised} of them errors in both)")
    print("\n".join(summary))
    print(f"{failures} mismatches")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
