#!/usr/bin/env bash
# Training benchmark (issue 6): tokens/s and peak RSS of LoRA training steps on SmolLM2-135M
# (r=16, all seven projections, batch 4 x 256 random tokens, every position a target), ours
# (`corpus bench train`: forward, backward and an AdamW step; the Q4_1 weights kept as stored with
# fp32 arithmetic, then bf16 weights with bf16 arithmetic) next to PyTorch +
# PEFT (../shared/bench/torch_lora_speed.py: forward, backward, AdamW step; fp32, then bf16
# autocast) in the same run, 2 threads each.
#
# usage: scripts/bench-train.sh [STEPS]     (default 8)
# Needs a Python with torch, transformers, peft and gguf: PEER_PYTHON (default
# ~/.cache/corpus-peers/bin/python). OpenBLAS reads OPENBLAS_CORETYPE when it loads; this
# machine's environment pins Haswell (AVX2), so ours is measured with it and with SKYLAKEX.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-8}
python=${PEER_PYTHON:-$HOME/.cache/corpus-peers/bin/python}
model=$(scripts/fetch-test-model.sh)
scripts/install-deps.sh
swift build -c release --product corpus > /tmp/train-bench-build.log 2>&1 || { tail -20 /tmp/train-bench-build.log; exit 1; }
corpus="$(swift build -c release --show-bin-path)/corpus"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB"
peak() { # command...: runs it, prints its output and the whole process's peak RSS
  /usr/bin/time -f "%M" -o /tmp/bench-train-rss.txt "$@"
  echo "  whole-process peak RSS (loading included): $(( $(cat /tmp/bench-train-rss.txt) / 1024 )) MiB"
}
for compute in "--compute f32" "--compute bf16 --base-type bf16"; do
  echo "== corpus bench train $compute, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} (environment)"
  peak "$corpus" bench train --model "$model" --batch 4 --seq 256 --steps "$steps" $compute
  echo "== corpus bench train $compute, OPENBLAS_CORETYPE=SKYLAKEX"
  OPENBLAS_CORETYPE=SKYLAKEX peak "$corpus" bench train --model "$model" --batch 4 --seq 256 --steps "$steps" $compute
done
if [ -x "$python" ] && "$python" -c "import torch, peft, transformers, gguf" 2>/dev/null; then
  echo "== PyTorch + PEFT fp32"
  peak "$python" ../shared/bench/torch_lora_speed.py "$(dirname "$model")" "$(basename "$model")" 4 256 "$steps"
  echo "== PyTorch + PEFT bf16 autocast"
  peak "$python" ../shared/bench/torch_lora_speed.py "$(dirname "$model")" "$(basename "$model")" 4 256 "$steps" bf16
else
  echo "peer skipped: no torch/peft/transformers/gguf at $python (set PEER_PYTHON)"
fi
