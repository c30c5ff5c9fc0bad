#!/usr/bin/env python3
"""Writes the tokenizer test fixtures in tests/fixtures/ with ids from the reference tokenizers.

  smollm2_tokenizer_cases.json   SmolLM2-135M-Instruct GGUF (gpt2 / smollm vocab), ids and
                                 decoded text from llama.cpp (llama-cpp-python, vocab only)
  tiny_spm.gguf                  a small llama-type (SentencePiece) GGUF vocabulary: control
                                 tokens, a user-defined token, <0x00>..<0xFF>, scored pieces
  tiny_spm_cases.json            its ids and decoded text from llama.cpp
  tiny_llama2_tokenizer.json     the same vocabulary as a Llama 2 style tokenizer.json
                                 (Prepend/Replace normalizer, byte_fallback BPE, ByteFallback
                                 + Fuse + Strip decoder, TemplateProcessing with <s>)
  tiny_metaspace_tokenizer.json  the same with a Metaspace pre-tokenizer and decoder
  tiny_hf_cases.json             ids and decoded text from the tokenizers library for both

Run with the peers' venv (llama-cpp-python, gguf, tokenizers):
  /work/peers/venv/bin/python scripts/make_tokenizer_cases.py [path/to/SmolLM2.gguf]
"""
import json
import os
import sys

import ctypes

import gguf
import llama_cpp
from llama_cpp import Llama
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "tests", "fixtures")
GGUF_DEFAULT = os.path.expanduser("~/.cache/lx/models/SmolLM2-135M-Instruct.Q4_1.gguf")

TEXTS = [
    "", "a", " ", "  ", "\n", "Hello world", "Hello, world!", " Hello", "Hello ", "  two leading",
    "trailing two  ", "The quick brown fox jumps over the lazy dog.",
    "naïve café, Zürich – “quotes” … façade, jalapeño, Ærøskøbing, Ångström, Łódź",
    "Привет, как дела? Съешь же ещё этих мягких французских булок.",
    "Γειά σου Κόσμε· αλφάβητο ΑΒΓΔ",
    "日本語のテキストと中文，还有한국어 텍스트。",
    "مرحبا بالعالم، هذا نص عربي.", "שלום עולם, זה טקסט בעברית.",
    "नमस्ते दुनिया, यह हिन्दी है।", "สวัสดีชาวโลก ภาษาไทย",
    "emoji 🙂🚀 and ZWJ 👩‍💻 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 skin 👍🏽",
    "combining: e\u0301 a\u0308 n\u0303 o\u0323\u0302 Z\u0335\u0321",
    "0", "7", "42", "123", "1234", "12345", "123456", "1234567", "12345678901234567890",
    "3.14159 -2.5e10 1,000,000 0x1F 007",
    "x=1;y=22;z=333;w=4444;v=55555",
    "def f(x):\n    return x**2 + 1  # comment\n",
    "int main(void) {\n\tprintf(\"%d\\n\", a[i] << 2);\n\treturn 0;\n}\n",
    "for (i = 0; i < n; i++) { s += v[i] * w[i]; }",
    "    four spaces", "\t\ttabs\tand\ttabs", "mixed \t \t whitespace", "line1\r\nline2\r\n",
    "\n\n\nthree newlines", "a\n \n b", "end with newline\n", "spaces   \n   around",
    "It's 2026 and we've got tokens; they'll see. I'm sure you'd agree, won't you?",
    "MiXeD CaSe I'M DON'T IT'S THEY'LL WE'VE YOU'RE HE'D 'S 'LL 'Re",
    "https://example.com/path?q=1&r=two#frag user@example.org",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more <|endoftext|> spaced", "<|im_start|><|im_end|>",
    "not special: <|im_star|> <|im_end", "<s>Hello</s> <unk>",
    "¿Qué? ¡Sí! «guillemets» ‹single›", "$100 + 50% = €150 ~ ¥ £ ©®™",
    "ẞ ß ﬁ ﬂ Ⅻ ① ²³ ½", "----====____****", "...!!!???", "a.b,c;d:e",
    "CamelCaseIdentifier snake_case_identifier kebab-case-identifier",
    "ＦＵＬＬＷＩＤＴＨ ｈａｌｆ", "Zero\u200bwidth\u200cjoin\u200dhere", "nbsp\u00a0here\u3000ideo",
]

CORPUS = (
    "Hello world. The quick brown fox jumps over the lazy dog. Hello there, how are you? "
    "I am fine, thank you. This is a tiny corpus for a tiny tokenizer. Tokens and more tokens. "
    "The model reads text, the text becomes tokens, the tokens become numbers. "
    "Numbers like 123 and 4567 appear too. Spaces  and\ttabs and\nnewlines. "
    "Привет мир. Café naïve. "
) * 4


def write_json(name, obj):
    with open(os.path.join(FIX, name), "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def detokenize(m, ids):
    """llama.cpp's own llama_detokenize (remove_special=False, unparse_special=True): unlike
    llama-cpp-python's detokenize, which joins token_to_piece, it drops a SentencePiece
    vocabulary's leading space."""
    vocab = llama_cpp.llama_model_get_vocab(m.model)
    arr = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
    cap = 64 + 64 * len(ids)
    buf = ctypes.create_string_buffer(cap)
    n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, cap, False, True)
    assert 0 <= n <= cap, n
    return buf.raw[:n]


def llama_cases(path, texts, extra_bos=True):
    m = Llama(model_path=path, vocab_only=True, verbose=False)
    cases = []
    for t in texts:
        b = t.encode()
        ids = m.tokenize(b, add_bos=False, special=True)
        c = {"text": t, "ids": ids}
        c["ids_nospecial"] = m.tokenize(b, add_bos=False, special=False)
        if extra_bos:
            c["ids_add_special"] = m.tokenize(b, add_bos=True, special=True)
        dec = detokenize(m, ids)
        try:
            c["decoded"] = dec.decode("utf-8")
        except UnicodeDecodeError:
            pass  # llama.cpp's raw bytes are not text; lx repairs them, so nothing to compare
        cases.append(c)
    return cases


def smollm2(path):
    if not os.path.exists(path):
        print(f"skipping the SmolLM2 cases: {path} is absent")
        return
    cases = llama_cases(path, TEXTS)
    write_json("smollm2_tokenizer_cases.json", {
        "source": "llama.cpp (llama-cpp-python, vocab_only) on SmolLM2-135M-Instruct.Q4_1.gguf",
        "fields": "ids: add_bos=False special=True; ids_nospecial: special=False; "
                  "ids_add_special: add_bos=True special=True; decoded: llama_detokenize(ids, remove_special=False, unparse_special=True)",
        "cases": cases})
    print(f"smollm2: {len(cases)} cases")


def tiny_vocab():
    """Trains a small Metaspace BPE and lays its vocabulary out as Llama 2's: <unk> <s> </s>,
    <0x00>..<0xFF>, then the learned pieces."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first", split=True)
    tr = trainers.BpeTrainer(vocab_size=420, special_tokens=["<unk>", "<s>", "</s>"],
                             limit_alphabet=60, show_progress=False)
    tok.train_from_iterator([CORPUS], trainer=tr)
    d = json.loads(tok.to_str())
    learned = sorted(((i, p) for p, i in d["model"]["vocab"].items() if i >= 3))
    vocab = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    for _, p in learned:
        if p not in vocab:
            vocab.append(p)
    vocab.append("<|user|>")  # a user-defined token
    merges = [m if isinstance(m, list) else m.split(" ") for m in d["model"]["merges"]]
    return vocab, merges


def hf_json(vocab, merges, metaspace):
    added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, c in enumerate(["<unk>", "<s>", "</s>"])]
    added.append({"id": len(vocab) - 1, "content": "<|user|>", "single_word": False,
                  "lstrip": False, "rstrip": False, "normalized": False, "special": False})
    j = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": {p: i for i, p in enumerate(vocab)}, "merges": merges},
    }
    if metaspace:
        j["normalizer"] = None
        j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first",
                              "split": False}
        j["decoder"] = {"type": "Sequence", "decoders": [
            {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False},
            {"type": "ByteFallback"}, {"type": "Fuse"}]}
    else:
        j["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
        j["pre_tokenizer"] = None
        j["decoder"] = {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    return j


def hf_cases(j, texts):
    tok = Tokenizer.from_str(json.dumps(j))
    cases = []
    for t in texts:
        ids = tok.encode(t, add_special_tokens=False).ids
        cases.append({"text": t, "ids": ids,
                      "ids_add_special": tok.encode(t, add_special_tokens=True).ids,
                      "decoded": tok.decode(ids, skip_special_tokens=False),
                      "decoded_skip": tok.decode(ids, skip_special_tokens=True)})
    # decoding alone: byte runs that are and are not valid UTF-8, specials, the first token
    runs = [[3 + 0x41, 3 + 0xE6, 3 + 0x97, 3 + 0xA5], [3 + 0xE6, 3 + 0x97], [3 + 0x41, 3 + 0xE6],
            [1, 3 + 0x20, 3 + 0x41, 2], [3 + 0xF0, 3 + 0x9F, 3 + 0x99, 3 + 0x82, 3 + 0xFF]]
    dec = [{"ids": r, "decoded": tok.decode(r, skip_special_tokens=False),
            "decoded_skip": tok.decode(r, skip_special_tokens=True)} for r in runs]
    return cases, dec


def tiny_gguf(vocab, path):
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_feed_forward_length(16)
    w.add_head_count(1)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(vocab))
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    scores, types = [], []
    for i, p in enumerate(vocab):
        if i < 3:
            types.append(gguf.TokenType.UNKNOWN if i == 0 else gguf.TokenType.CONTROL)
            scores.append(0.0)
        elif i < 259:
            types.append(gguf.TokenType.BYTE)
            scores.append(0.0)
        elif p == "<|user|>":
            types.append(gguf.TokenType.USER_DEFINED)
            scores.append(0.0)
        else:
            types.append(gguf.TokenType.NORMAL)
            scores.append(-float(i - 259) - 0.5 * (len(p) == 1))
    w.add_token_list(vocab)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    os.makedirs(FIX, exist_ok=True)
    smollm2(sys.argv[1] if len(sys.argv) > 1 else GGUF_DEFAULT)
    vocab, merges = tiny_vocab()
    texts = TEXTS + ["<|user|> says hi", "Hello<|user|>world", "the model reads tokens"]
    out = {}
    for name, meta in (("tiny_llama2_tokenizer.json", False), ("tiny_metaspace_tokenizer.json", True)):
        j = hf_json(vocab, merges, meta)
        write_json(name, j)
        cases, dec = hf_cases(j, texts)
        out[name] = {"cases": cases, "decode": dec}
    write_json("tiny_hf_cases.json", {"source": "tokenizers (Hugging Face) library", "tokenizers": out})
    gpath = os.path.join(FIX, "tiny_spm.gguf")
    tiny_gguf(vocab, gpath)
    cases = llama_cases(gpath, texts)
    write_json("tiny_spm_cases.json", {
        "source": "llama.cpp (llama-cpp-python, vocab_only) on tiny_spm.gguf", "cases": cases})
    print(f"tiny vocab: {len(vocab)} tokens, {len(merges)} merges, {len(texts)} texts")


if __name__ == "__main__":
    main()
