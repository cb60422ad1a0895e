#!/usr/bin/env bash
# Serving throughput benchmark (issue 14): `corpus serve` beside llama.cpp's server
# (llama-cpp-python's `python -m llama_cpp.server`) on the same GGUF file with 2 threads, and
# corpus with requests spread over 4 adapters and the base model against all on the base model.
#
# usage: scripts/bench-serve.sh [CORPUS_BINARY]
#   CORPUS_BINARY  default: .build/release/corpus
#   MODEL          the GGUF file (default: the SmolLM2 test model, scripts/fetch-test-model.sh)
#   PEER_PYTHON    Python with llama-cpp-python and its server extras (default
#                  ~/.cache/corpus-peers/bin/python; install the extras without rebuilding
#                  llama.cpp: PEER/bin/pip install uvicorn fastapi pydantic-settings sse-starlette
#                  'starlette-context<0.4' PyYAML); without them the llama.cpp part is skipped
#   CLIENTS (16), ROUNDS (2), MAX_TOKENS (128)   the load, see scripts/serve-load-client.py
#   OUT            file for the JSON lines (default: a temporary file, removed at the end)
#
# The load: CLIENTS threads (scripts/serve-load-client.py), each sending ROUNDS streaming
# /v1/completions requests one after the other, greedy, max_tokens MAX_TOKENS, a distinct story
# prompt per client and round (the test model does not stop early on them; a request that does
# counts the tokens it produced: usage.completion_tokens from corpus, chunks from llama.cpp, one
# token each). Measured: aggregate tokens/s (all produced tokens over the wall time) and p50/p99
# time to the first text chunk. The servers run one at a time, never side by side.
#   corpus           all clients on the base model
#   corpus-adapters  client i on model i mod 5 of [base, a1..a4] (adapters: make-test-adapter.py
#                    seeds 1..4); the ratio to `corpus` is printed
#   llama.cpp        python -m llama_cpp.server --n_threads 2 --n_threads_batch 2 --n_ctx 4096
#                    --interrupt_requests False --logits_all False --verbose False
# Threads: llama.cpp gets 2 by its options; corpus uses as many threads as the CPUs it may run
# on (no option), so on a machine with more than 2 cores both servers run under taskset -c 0,1.
#
# llama_cpp.server 0.3.36 decodes one request at a time: a global lock around the model (no
# slots, no batching of requests; n_batch/n_ubatch only split one prompt's prefill), one uvicorn
# worker. --interrupt_requests False is needed, otherwise (the default, True) a new request ends
# the stream in progress with [DONE]. --logits_all defaults to True in the server (it keeps every
# position's logits, an n_ctx x vocab buffer, and copies them at each eval); False is faster and
# loses only logprobs. Its prompt cache (--cache True) only helps repeated prompts (ours are
# distinct). A config file may list several models, but they share the lock and only one is loaded
# at a time (switching reloads). More throughput from llama-cpp-python means several server
# processes behind a balancer, outside what the server offers.
#
# Prints one JSON line per measurement (serve-load-client.py's, plus "server" and "load_avg")
# and a short table. Exit codes: 0 done (llama.cpp skipped with a message when PEER_PYTHON lacks
# it); 1 a server did not start or a measurement had failed requests; 2 no corpus binary.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-.build/release/corpus}
[ -x "$corpus" ] || { echo "error: no corpus binary at $corpus; build it (swift build -c release --product corpus) or pass its path" >&2; exit 2; }
model=${MODEL:-$(scripts/fetch-test-model.sh)}
python=${PEER_PYTHON:-$HOME/.cache/corpus-peers/bin/python}
clients=${CLIENTS:-16}
rounds=${ROUNDS:-2}
max_tokens=${MAX_TOKENS:-128}
work=$(mktemp -d -t corpus-bench-serve.XXXXXX)
out=${OUT:-$work/results.jsonl}
: > "$out"
pin=()
if [ "$(nproc)" -gt 2 ]; then pin=(taskset -c 0,1); fi

server_pid=""
stop_server() {
  [ -n "$server_pid" ] || return 0
  local pid=$server_pid
  server_pid=""
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
trap 'stop_server; rm -rf "$work"' EXIT

# measure LABEL SERVER URL [client options...]: one run of the client, its JSON line extended
measure() {
  local label=$1 server=$2 url=$3
  shift 3
  local load
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  python3 scripts/serve-load-client.py --url "$url" --label "$label" --clients "$clients" --rounds "$rounds" \
    --max-tokens "$max_tokens" "$@" > "$work/line.json" || { echo "error: $label had failed requests (above)" >&2; exit 1; }
  python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); r["server"] = sys.argv[2]; r["load_avg"] = sys.argv[3]; print(json.dumps(r))' \
    "$work/line.json" "$server" "$load" | tee -a "$out"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "load: $clients clients x $rounds streaming completions of $max_tokens tokens, temperature 0" >&2

# corpus: the base model, then the base and 4 adapters
adapters=()
for seed in 1 2 3 4; do
  python3 scripts/make-test-adapter.py "$work/a$seed" --seed "$seed"
  adapters+=(--adapter "a$seed=$work/a$seed")
done
${pin[@]+"${pin[@]}"} "$corpus" serve --model "$model" --name smol "${adapters[@]}" --port 0 --max-queue 256 2> "$work/corpus.log" &
server_pid=$!
port=""
for _ in $(seq 1200); do
  port=$(sed -n 's/^corpus serve: listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/corpus.log")
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$port" ] || { echo "error: corpus serve did not start; its log:" >&2; cat "$work/corpus.log" >&2; exit 1; }
measure corpus "corpus $("$corpus" --version 2>/dev/null || echo '?')" "http://127.0.0.1:$port" --models smol
measure corpus-adapters "corpus $("$corpus" --version 2>/dev/null || echo '?')" "http://127.0.0.1:$port" --models smol,a1,a2,a3,a4
stop_server

# llama.cpp's server
if "$python" -c "import llama_cpp, uvicorn, fastapi, sse_starlette, starlette_context, pydantic_settings" 2>/dev/null; then
  version=$("$python" -c 'import llama_cpp; print(llama_cpp.__version__)')
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  ${pin[@]+"${pin[@]}"} "$python" -m llama_cpp.server --model "$model" --model_alias smol --host 127.0.0.1 --port "$port" \
    --n_threads 2 --n_threads_batch 2 --n_ctx 4096 --interrupt_requests False --logits_all False --verbose False \
    > "$work/llama.log" 2>&1 &
  server_pid=$!
  up=0
  for _ in $(seq 1200); do
    if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "http://127.0.0.1:$port/v1/models" 2>/dev/null; then up=1; break; fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  [ "$up" = 1 ] || { echo "error: llama_cpp.server did not start; its log:" >&2; tail -20 "$work/llama.log" >&2; exit 1; }
  measure llama.cpp "llama-cpp-python $version (llama_cpp.server)" "http://127.0.0.1:$port" --models smol
  stop_server
else
  echo "llama.cpp skipped: $python lacks llama_cpp or its server extras (see the header of this script)" >&2
fi

python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print(f"\n{'measurement':<17} {'tokens/s':>9} {'TTFT p50':>10} {'TTFT p99':>10} {'tokens':>7} {'short':>6}  server")
for r in rows:
    print(f"{r['label']:<17} {r['tokens_per_s']:>9.1f} {r['ttft_p50_ms']:>8.0f}ms {r['ttft_p99_ms']:>8.0f}ms {r['tokens']:>7} {r['short_requests']:>6}  {r['server']}")
by = {r["label"]: r for r in rows}
if "corpus" in by and "corpus-adapters" in by:
    ratio = by["corpus-adapters"]["tokens_per_s"] / by["corpus"]["tokens_per_s"]
    print(f"\ncorpus, base + 4 adapters / base only: {ratio:.2f}x the tokens/s")
    print(json.dumps({"label": "adapters-ratio", "value": round(ratio, 3)}))
if "corpus" in by and "llama.cpp" in by:
    ratio = by["corpus"]["tokens_per_s"] / by["llama.cpp"]["tokens_per_s"]
    print(f"corpus / llama.cpp tokens/s: {ratio:.2f}x")
    print(json.dumps({"label": "corpus-vs-llama.cpp", "value": round(ratio, 3)}))
loads = sorted({r["load_avg"] for r in rows})
print(f"load averages at the start of each measurement: {', '.join(loads)} (figures from a busy machine are not comparable)")
PY
