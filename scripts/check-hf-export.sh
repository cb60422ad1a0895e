#!/usr/bin/env bash
# Checks the Hugging Face folder `corpus models export` writes from a GGUF file (issue 15) with
# transformers itself: AutoTokenizer and AutoModelForCausalLM load it; the tokenizer gives our
# ids (`corpus tokenize`) on a set of texts (English, Chinese, digits, special tokens, spaces),
# apply_chat_template gives the prompt ids `corpus generate` uses; and the model's next-token
# log-probabilities equal `corpus score`'s within 1e-3 (both fp32 on the same weights).
#
# usage: scripts/check-hf-export.sh [CORPUS_BINARY]
#   CORPUS_BINARY  default: .build/release/corpus
#   PEER_PYTHON    Python with torch and transformers (default ~/.cache/corpus-peers/bin/python);
#                  without them the check is skipped (exit 0)
# Exit codes: 0 passed or skipped; 1 a check failed; 2 no corpus binary or test model.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus="${1:-.build/release/corpus}"
peer="${PEER_PYTHON:-$HOME/.cache/corpus-peers/bin/python}"
[ -x "$corpus" ] || { echo "error: no corpus binary at $corpus (swift build -c release)" >&2; exit 2; }
if ! "$peer" -c "import torch, transformers" 2>/dev/null; then
  echo "skipped: no torch and transformers at $peer (set PEER_PYTHON)"
  exit 0
fi
model="$(scripts/fetch-test-model.sh)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$corpus" models export "$model" --out "$work/hf" > /dev/null
texts=("The capital of France is Paris." "高血压患者应该注意什么？每天服用阿司匹林100mg可以吗" "In 2024, 1234567 people   (and   tabs	here)"
       "<|im_start|>user
hi<|im_end|>" "  leading spaces and trailing  ")
i=0
for t in "${texts[@]}"; do "$corpus" tokenize --model "$model" --json "$t" > "$work/ours-$i.json"; i=$((i + 1)); done
question="What should a patient with high blood pressure avoid?"
"$corpus" generate --model "$model" --max-tokens 1 --json "$question" > "$work/generate.json"
score_text="The patient reported chest pain and shortness of breath; the doctor ordered an ECG."
"$corpus" score --model "$model" --json --top 1 "$score_text" > "$work/score.json"
"$peer" - "$work" "$question" "$score_text" "${texts[@]}" <<'PY'
import json, sys, torch
from transformers import AutoTokenizer, AutoModelForCausalLM
work, question, score_text, texts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
ok = True
tok = AutoTokenizer.from_pretrained(f"{work}/hf")
ours = [json.load(open(f"{work}/ours-{i}.json")) for i in range(len(texts))]
for text, o in zip(texts, ours):
    theirs = tok.encode(text, add_special_tokens=False)
    same = theirs == o["ids"]
    ok &= same
    print(f"{'ok  ' if same else 'FAIL'} tokenizer: {len(theirs)} ids for {text[:40]!r}" + ("" if same else f": ours {o['ids'][:12]}..., theirs {theirs[:12]}..."))
prompt = json.load(open(f"{work}/generate.json"))["prompt_ids"]
theirs = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True, tokenize=True)
if hasattr(theirs, "keys"): theirs = theirs["input_ids"]   # transformers 5 returns a BatchEncoding
same = list(theirs) == prompt
ok &= same
print(f"{'ok  ' if same else 'FAIL'} apply_chat_template: {len(theirs)} ids" + ("" if same else f": ours {prompt}, theirs {list(theirs)}"))
model = AutoModelForCausalLM.from_pretrained(f"{work}/hf", dtype=torch.float32)
score = json.load(open(f"{work}/score.json"))
ids = score["ids"]
with torch.no_grad():
    logits = model(torch.tensor([ids])).logits[0]
logp = torch.log_softmax(logits.double(), dim=-1)
theirs = [float(logp[t - 1, ids[t]]) for t in range(1, len(ids))]
gap = max(abs(a - b) for a, b in zip(score["logprobs"][1:], theirs))
ok &= gap < 1e-3
print(f"{'ok  ' if gap < 1e-3 else 'FAIL'} AutoModelForCausalLM: max |log p corpus - transformers| over {len(ids) - 1} positions = {gap:.2e}")
print("check-hf-export: " + ("passed" if ok else "FAILED"))
sys.exit(0 if ok else 1)
PY
