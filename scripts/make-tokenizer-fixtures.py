#!/usr/bin/env python3
"""Writes Tests/TrainerTests/Fixtures/tokenizer-cases.json: hard tokenizer cases and the ids that
Hugging Face `tokenizers` gives for them, for four pre-tokenizers over the SmolLM2 vocabulary.

Run with the venv that has `gguf` and `tokenizers` (see scripts/make-gguf-fixtures.py):
    ~/.cache/corpus-venv/bin/python scripts/make-tokenizer-fixtures.py [path/to/SmolLM2.gguf]

The vocabulary and merges are the test model's (read from its GGUF, not stored in the fixture).
Each variant is a `tokenizers.Tokenizer` built the way Hugging Face builds that model family's
tokenizer.json: SmolLM2 (Digits(individual) + ByteLevel with GPT-2's regex), GPT-2 (ByteLevel
regex only), Llama 3 (Split with Llama 3's regex + ByteLevel without regex; regex as in
transformers' GGUF conversion for `llama-bpe`), Qwen2 (NFC normalizer + Split with Qwen2's regex).
The fixture keeps each variant's normalizer / pre_tokenizer / decoder / added_tokens JSON, so the
Swift test can assemble the same tokenizer.json around the vocabulary and load it.

The script first checks that the SmolLM2 variant reproduces ../shared/reference/tokens.json
(transformers' own conversion of the GGUF), so the construction is known to be faithful.
"""
import json
import os
import sys

import gguf
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODEL = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/corpus/models/SmolLM2-135M-Instruct.Q4_1.gguf")

LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
         r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

CASES = [
    "",
    "Hello, world!",
    "𠀀𠀁𪚥𰀀 CJK extension B and later, 𠮷野家",
    "👍🏽👍🏿 skin tones, 👨‍👩‍👧‍👦 family ZWJ, 🇨🇳🇺🇸 flags, ❤️ variation",
    "digits 1 12 123 1234 12345 123456789012345678901234567890 end",
    "٣٤٥ Arabic-Indic, ²³ superscripts, ½ fraction, Ⅻ roman, ①② circled",
    "a  b   c    d\n\ne\n\n\n  f\t\tg \r\nh\r\n\r\n  ",
    "   leading and trailing   ",
    "\n",
    "\n\n \n \t",
    "I'm, can't, they'RE, we'LL, she'd, it's, You'VE, 'tis, rock'n'roll, ''quoted''",
    "'ſ long s, 'Ｓ full-width S, 'ſt",
    "Mixed世界123abcДобро пожаловать مرحبا שלום नमस्ते こんにちはカタカナ한국어",
    "患者，男，45岁。主诉：头痛３天，伴恶心！体温38.5℃，血压140/90mmHg。",
    "《中华人民共和国民法典》第1165条规定：行为人因过错侵害他人民事权益造成损害的，应当承担侵权责任。",
    "e\u0301 decomposed, é composed, Å angstrom sign, ﬁ ligature",
    "(hello) [world] {x} <tag> \"quotes\" «guillemets» —dash… ellipsis",
    "tab\tseparated\tvalues\nand\u00a0nbsp\u3000ideographic space\u2028line sep\u200bzwsp",
    "https://example.com/path?q=1&r=2#frag user@example.org C:\\Windows\\path",
    "def f(x):\n    return x**2  # comment\n\n\nclass A:\n\tpass\n",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\n2+2=?<|im_end|>\n<|im_start|>assistant\n",
    "not special: <|im_start |> <|im_end| > <|endoftext|>x",
    "锟斤拷 Ã© Ã¼ mojibake, \ufffd replacement",
    "$$$ !!! ??? ... ,,, ;;; --- ___ *** ### @@@",
    "ALLCAPS lowercase MiXeD CamelCaseWords snake_case_words kebab-case-words",
    "\x00\x01\x07 control \x1b[31mred\x1b[0m",
]


def read_gguf(path):
    r = gguf.GGUFReader(path)

    def field(name):
        f = r.fields[name]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    def ints(name):
        f = r.fields[name]
        return [int(f.parts[i][0]) for i in f.data]

    def scalar(name):
        f = r.fields.get(name)
        return None if f is None else int(f.parts[f.data[0]][0])

    return field("tokenizer.ggml.tokens"), field("tokenizer.ggml.merges"), ints("tokenizer.ggml.token_type"), scalar("tokenizer.ggml.unknown_token_id")


def build(tokens, merges, types, unk, variant):
    vocab = {t: i for i, t in enumerate(tokens)}
    # Llama 3's tokenizer.json sets ignore_merges (a piece found whole in the vocabulary is kept).
    bpe = models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges],
                     unk_token=tokens[unk] if unk is not None else None, ignore_merges=(variant == "llama3"))
    tok = Tokenizer(bpe)
    if variant == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    elif variant == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif variant in ("llama3", "qwen2"):
        if variant == "qwen2":
            tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3 if variant == "llama3" else QWEN2), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == 3])
    return tok


def main():
    tokens, merges, types, unk = read_gguf(MODEL)
    reference = json.load(open(os.path.join(ROOT, "..", "shared", "reference", "tokens.json")))
    smollm = build(tokens, merges, types, unk, "smollm")
    for case in reference:
        got = smollm.encode(case["text"], add_special_tokens=False).ids
        assert got == case["ids"], f"construction differs from transformers on {case['text']!r}: {got} vs {case['ids']}"

    variants = {}
    for name in ("smollm", "gpt2", "llama3", "qwen2"):
        tok = build(tokens, merges, types, unk, name)
        spec = json.loads(tok.to_str())
        ids = [tok.encode(text, add_special_tokens=False).ids for text in CASES]
        decoded = [tok.decode(i, skip_special_tokens=False) for i in ids]
        # The pre-tokenizer's pieces (in GPT-2's byte alphabet) for text without special tokens.
        pieces = [[p for p, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text) if tok.normalizer else text)]
                  for text in CASES]
        variants[name] = {
            "ignore_merges": spec["model"].get("ignore_merges", False),
            "unk_token": spec["model"].get("unk_token"),
            "normalizer": spec.get("normalizer"),
            "pre_tokenizer": spec.get("pre_tokenizer"),
            "decoder": spec.get("decoder"),
            "added_tokens": spec.get("added_tokens"),
            "ids": ids,
            "decoded": decoded,
            "pieces": pieces,
        }
    out = {
        "source": "scripts/make-tokenizer-fixtures.py with tokenizers " + __import__("tokenizers").__version__
                  + " over the vocabulary of SmolLM2-135M-Instruct.Q4_1.gguf",
        "cases": CASES,
        "variants": variants,
    }
    path = os.path.join(ROOT, "Tests", "TrainerTests", "Fixtures", "tokenizer-cases.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
