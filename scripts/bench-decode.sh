#!/usr/bin/env bash
# Decoding and scoring benchmark (issue 13): ours (`corpus bench`: pp512, tg128, 16 sequences
# together; `corpus score` of one long text) next to llama.cpp (llama-cpp-python) on the same
# GGUF file with 2 threads, in the same run.
#
# usage: scripts/bench-decode.sh [MODEL.gguf]   (default: the Q4_1 SmolLM2 test model)
# Needs llama-cpp-python in PEER_PYTHON (default ~/.cache/corpus-peers/bin/python), built here with
#   CMAKE_BUILD_PARALLEL_LEVEL=2 PEER/bin/pip install llama-cpp-python   (it compiles llama.cpp for
# this CPU; about 15 minutes on 2 cores).
# The score text: the outputs of ../shared/data/alpaca_en_demo.json joined and cut at 6,000
# characters (1,440 tokens with SmolLM2's tokenizer). corpus's figure is the whole `corpus score
# --json` command (loading, every position's log-softmax, the top 5 alternatives, JSON out);
# llama.cpp's is `Llama.eval` of the same ids with every position's logits kept (logits_all), the
# median of 3 after a warm-up.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PEER_PYTHON:-$HOME/.cache/corpus-peers/bin/python}
model=${1:-$(scripts/fetch-test-model.sh)}
scripts/install-deps.sh
swift build -c release --product corpus > /tmp/bench-decode-build.log 2>&1 || { tail -20 /tmp/bench-decode-build.log; exit 1; }
corpus="$(swift build -c release --show-bin-path)/corpus"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
echo "== corpus bench (pp512, tg128, 16 sequences)"
"$corpus" bench --model "$model" --prompt 512 --generate 128 --batch 16 --repeats 3
have_peer=0
if [ -x "$python" ] && "$python" -c "import llama_cpp" 2>/dev/null; then have_peer=1; fi
if [ "$have_peer" = 1 ]; then
  echo "== llama.cpp (llama-cpp-python $("$python" -c 'import llama_cpp; print(llama_cpp.__version__)'))"
  "$python" ../shared/bench/llamacpp_speed.py "$model" 2
else
  echo "llama.cpp skipped: no llama_cpp at $python (set PEER_PYTHON)"
fi

text=$(python3 -c "import json; d = json.load(open('../shared/data/alpaca_en_demo.json')); print(' '.join(x['output'] for x in d)[:6000])")
echo "== corpus score (one text, whole command, best of 3)"
best=""
for _ in 1 2 3; do
  start=$(date +%s.%N)
  "$corpus" score --model "$model" --json "$text" > "$work/score.json"
  seconds=$(echo "$(date +%s.%N) - $start" | bc -l)
  if [ -z "$best" ] || [ "$(echo "$seconds < $best" | bc -l)" = 1 ]; then best=$seconds; fi
done
tokens=$(python3 -c "import json, sys; print(len(json.load(open(sys.argv[1]))['ids']))" "$work/score.json")
python3 -c "import sys; t, s = int(sys.argv[1]), float(sys.argv[2]); print(f'corpus score: {t} tokens in {s:.2f} s: {t / s:.0f} tokens/s')" "$tokens" "$best"
if [ "$have_peer" = 1 ]; then
  "$python" - "$model" "$work/score.json" <<'EOF'
import json, sys, time
from llama_cpp import Llama
ids = json.load(open(sys.argv[2]))["ids"]
llm = Llama(model_path=sys.argv[1], n_ctx=2048, n_threads=2, n_batch=512, logits_all=True, verbose=False)
times = []
for r in range(4):
    llm.reset(); t0 = time.perf_counter(); llm.eval(ids); times.append(time.perf_counter() - t0)
times = sorted(times[1:])
print(f"llama.cpp prompt processing of the same {len(ids)} ids (logits_all): median {len(ids) / times[1]:.0f} tokens/s "
      f"(min {len(ids) / times[-1]:.0f}, max {len(ids) / times[0]:.0f})")
EOF
fi
