#!/usr/bin/env bash
# Checks the GGUF files corpus writes against llama.cpp (issue 15): llama.cpp (llama-cpp-python,
# compiled here) loads (1) the test model with the GGUF LoRA of `corpus adapters export`, and
# (2, 3) the merged models of `corpus merge --format gguf --type f16`, `--type q8_0` and
# `--type q4_k` (our Q4_K quantizer: llama.cpp must read the same numbers we do), and
# (4) the F16 merged model written from a Hugging Face folder (`corpus models export` of the test
# model, so the metadata and tokenizer are built from config.json and tokenizer.json); its
# log-probabilities of the next token at every position of a text agree with corpus's (`corpus
# score --adapter` for the LoRA, `corpus score --model MERGED.gguf` for a merged file) as closely
# as llama.cpp and corpus agree on the base model alone (llama.cpp rounds activations to 8 bits in
# its quantized products, so the two never agree exactly). Also printed: how far each merged file
# is from the base model with the adapter (the cost of rounding the merged weights to F16, Q8_0).
#
# usage: scripts/check-gguf-export.sh [CORPUS_BINARY]
#   CORPUS_BINARY  default: .build/release/corpus
#   PEER_PYTHON    Python with llama-cpp-python (default ~/.cache/corpus-peers/bin/python);
#                  without it the check is skipped (exit 0)
# The adapter: scripts/make-test-adapter.py --all-targets --strength 3 (all seven projections of
# every layer, so the Q/K row order llama.cpp expects is exercised, and strong enough to move the
# log-probabilities well beyond the two engines' disagreement), exported as F32.
# Passes when: the mean |Δ log p| with the LoRA is at most 1.5x the base model's + 0.01 and the
# maximum at most 2x + 0.05; and the gap would be at least 2x larger had llama.cpp ignored the
# LoRA (ours with the adapter against llama.cpp without it), so the comparison tells a working
# LoRA from an ignored one.
# Exit codes: 0 passed or skipped; 1 a check failed; 2 no corpus binary or test model.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus="${1:-.build/release/corpus}"
peer="${PEER_PYTHON:-$HOME/.cache/corpus-peers/bin/python}"
[ -x "$corpus" ] || { echo "error: no corpus binary at $corpus (swift build -c release)" >&2; exit 2; }
if ! "$peer" -c "import llama_cpp" 2>/dev/null; then
  echo "skipped: no llama-cpp-python at $peer (set PEER_PYTHON)"
  exit 0
fi
model="$(scripts/fetch-test-model.sh)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 scripts/make-test-adapter.py "$work/adapter" --all-targets --seed 1 --strength 3
"$corpus" adapters export "$work/adapter" --model "$model" --out "$work/lora.gguf"
"$corpus" merge --adapter "$work/adapter" --model "$model" --format gguf --type f16 --out "$work/merged-f16.gguf"
"$corpus" merge --adapter "$work/adapter" --model "$model" --format gguf --type q8_0 --out "$work/merged-q8_0.gguf"
"$corpus" merge --adapter "$work/adapter" --model "$model" --format gguf --type q4_k --out "$work/merged-q4_k.gguf"
"$corpus" models export "$model" --out "$work/hf" > /dev/null
"$corpus" merge --adapter "$work/adapter" --model "$work/hf" --format gguf --type f16 --out "$work/merged-folder-f16.gguf"
text="The patient, a 54-year-old man, reported chest pain on exertion for two weeks. An ECG showed ST depression; the doctor ordered a stress test and prescribed aspirin and a statin. What else should he do?"
printf '%s' "$text" > "$work/text.txt"
"$corpus" score --model "$model" --json --top 1 "$text" > "$work/base.json"
"$corpus" score --model "$model" --adapter "$work/adapter" --json --top 1 "$text" > "$work/adapter.json"
"$corpus" score --model "$work/merged-f16.gguf" --json --top 1 "$text" > "$work/merged-f16.json"
"$corpus" score --model "$work/merged-q8_0.gguf" --json --top 1 "$text" > "$work/merged-q8_0.json"
"$corpus" score --model "$work/merged-folder-f16.gguf" --json --top 1 "$text" > "$work/merged-folder-f16.json"
"$corpus" score --model "$work/merged-q4_k.gguf" --json --top 1 "$text" > "$work/merged-q4_k.json"
"$peer" - "$model" "$work/lora.gguf" "$work/base.json" "$work/adapter.json" "$work/merged-f16.gguf" "$work/merged-q8_0.gguf" "$work/merged-folder-f16.gguf" "$work/merged-q4_k.gguf" <<'PY'
import json, math, sys
from llama_cpp import Llama
model, lora, base_json, adapter_json, merged_f16, merged_q8, merged_folder, merged_q4k = sys.argv[1:9]
work = base_json.rsplit("/", 1)[0]

def ours(path):
    s = json.load(open(path))
    return s["ids"], s["logprobs"][1:]   # logprobs[t]: log p(ids[t] | ids[:t]); the first is null

def theirs(ids, lora_path, path=None):
    kwargs = dict(model_path=path or model, n_ctx=512, n_threads=2, n_batch=512, logits_all=True, verbose=False)
    if lora_path: kwargs["lora_path"] = lora_path
    llm = Llama(**kwargs)
    llm.eval(ids)
    out = []
    for pos in range(len(ids) - 1):
        row = llm.scores[pos]
        m = max(row)
        lse = m + math.log(sum(math.exp(v - m) for v in row))
        out.append(float(row[ids[pos + 1]] - lse))
    return out

ids, base_ours = ours(base_json)
ids2, adapter_ours = ours(adapter_json)
assert ids == ids2, "the two scores tokenized differently"
base_theirs = theirs(ids, None)
adapter_theirs = theirs(ids, lora)
def gaps(a, b):
    d = [abs(x - y) for x, y in zip(a, b)]
    return sum(d) / len(d), max(d)
base_mean, base_max = gaps(base_ours, base_theirs)
lora_mean, lora_max = gaps(adapter_ours, adapter_theirs)
moved_mean, _ = gaps(base_theirs, adapter_theirs)
ignored_mean, _ = gaps(adapter_ours, base_theirs)
print(f"{len(ids) - 1} positions")
print(f"base model alone:   mean |corpus - llama.cpp| {base_mean:.4f}, max {base_max:.4f}")
print(f"with the GGUF LoRA: mean |corpus - llama.cpp| {lora_mean:.4f}, max {lora_max:.4f}")
print(f"the LoRA moves llama.cpp's log-probabilities by {moved_mean:.4f} on average; had llama.cpp ignored it, the gap would be {ignored_mean:.4f}")
ok = lora_mean <= 1.5 * base_mean + 0.01 and lora_max <= 2 * base_max + 0.05 and ignored_mean >= 2 * lora_mean
for label, path, name in (("merged GGUF, F16", merged_f16, "merged-f16"), ("merged GGUF, Q8_0", merged_q8, "merged-q8_0"),
                          ("merged GGUF, Q4_K", merged_q4k, "merged-q4_k"), ("from a folder, F16", merged_folder, "merged-folder-f16")):
    ids3, merged_ours = ours(f"{work}/{name}.json")
    assert ids3 == ids, "the merged file tokenized differently"
    merged_mean, merged_max = gaps(merged_ours, theirs(ids, None, path))
    cost_mean, cost_max = gaps(merged_ours, adapter_ours)
    print(f"{label + ':':19s} mean |corpus - llama.cpp| {merged_mean:.4f}, max {merged_max:.4f}; "
          f"from the base with the adapter (rounding): mean {cost_mean:.4f}, max {cost_max:.4f}")
    ok = ok and merged_mean <= 1.5 * base_mean + 0.01 and merged_max <= 2 * base_max + 0.05
    if name in ("merged-f16", "merged-folder-f16"): ok = ok and cost_mean < 0.01
# llama.cpp's own tokenizer, read from each file's metadata, gives our ids for the text.
text = open(f"{work}/text.txt").read()
for label, path in (("base", model), ("merged from a GGUF", merged_f16), ("merged from a folder", merged_folder)):
    vocab = Llama(model_path=path, vocab_only=True, verbose=False)
    theirs_ids = vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True)
    same = theirs_ids == ids
    ok = ok and same
    print(f"llama.cpp tokenizer of the {label} file: {'the same' if same else 'DIFFERENT'} {len(theirs_ids)} ids")
print("check-gguf-export: " + ("passed" if ok else "FAILED"))
sys.exit(0 if ok else 1)
PY
