#!/usr/bin/env bash
# Checks `corpus serve` with OpenAI's official Python client (the `openai` package): what a user
# of that client sees must work unchanged against our server (docs/SERVE.md).
#
# usage: scripts/check-openai-client.sh [CORPUS_BINARY]
#   CORPUS_BINARY   default: .build/release/corpus, else .build/debug/corpus
#   CORPUS_CACHE    cache folder (default ~/.cache/corpus): the test model and the venv live there
#
# What it does:
#   1. makes a venv outside the repository, $CORPUS_CACHE/openai-venv, and pip-installs `openai`
#      into it (once; later runs reuse it);
#   2. fetches the SmolLM2 test model (scripts/fetch-test-model.sh) and writes a test adapter
#      (scripts/make-test-adapter.py, seed 1) into a temporary folder;
#   3. starts `corpus serve --model GGUF --name smol --adapter med=DIR --port 0 --api-key KEY`,
#      reads the port it prints, and runs a Python program with `OpenAI(base_url=..., api_key=...)`
#      that checks: models.list() holds smol and med; a greedy chat answer (text, finish_reason
#      stop or length, usage adding up, system_fingerprint "corpus-" + 16 hex digits; for the
#      test model "The capital of France is Paris."); the same request streamed gives the same
#      text, finish_reason and usage; the adapter by name answers differently, with
#      system_fingerprint base-adapter and x-corpus-adapter-sha256 the SHA-256 of its
#      safetensors; a completion, plain and streamed alike; an unknown model raises
#      openai.NotFoundError (404, model_not_found); an unsupported field (n=2) raises
#      BadRequestError; a wrong key raises AuthenticationError (401);
#   4. stops the server (SIGTERM, on every exit path) and checks that it exited 0.
#
# Exit codes: 0 every check passed, or skipped (the message starts with "skipped:") because
# `python3 -m venv` does not work here or pip cannot reach PyPI; 1 a check failed or the server
# did not start or stop cleanly (the message says which and what was expected); 2 no corpus
# binary.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-}
if [ -z "$corpus" ]; then
  for candidate in .build/release/corpus .build/debug/corpus; do
    if [ -x "$candidate" ]; then corpus=$candidate; break; fi
  done
fi
if [ -z "$corpus" ] || [ ! -x "$corpus" ]; then
  echo "error: no corpus binary (${corpus:-none given}); build it (swift build -c release --product corpus) or pass its path" >&2
  exit 2
fi
cache=${CORPUS_CACHE:-$HOME/.cache/corpus}
venv="$cache/openai-venv"

# 1. the venv with `openai`
if ! "$venv/bin/python" -c "import openai" 2>/dev/null; then
  mkdir -p "$cache"
  if ! python3 -m venv "$venv" > /tmp/check-openai-venv.log 2>&1; then
    echo "skipped: python3 -m venv does not work here (on Debian: apt-get install python3-venv): $(tail -1 /tmp/check-openai-venv.log)"
    rm -rf "$venv"
    exit 0
  fi
  echo "installing openai into $venv" >&2
  if ! "$venv/bin/pip" install --quiet --retries 1 --timeout 30 openai > /tmp/check-openai-pip.log 2>&1; then
    if grep -q -E "No matching distribution|from versions: none|NewConnectionError|Failed to establish|Temporary failure in name resolution|Network is unreachable|ProxyError|ConnectTimeout|ReadTimeout|SSLError" /tmp/check-openai-pip.log; then
      echo "skipped: pip cannot reach PyPI to install openai (see /tmp/check-openai-pip.log)"
      exit 0
    fi
    echo "error: pip install openai failed:" >&2
    tail -20 /tmp/check-openai-pip.log >&2
    exit 1
  fi
fi
echo "openai $("$venv/bin/python" -c 'import openai; print(openai.__version__)') in $venv" >&2

# 2. the model and the adapter
model=$(scripts/fetch-test-model.sh)
work=$(mktemp -d -t corpus-openai-check.XXXXXX)
server_pid=""
stop_server() {
  # SIGTERM, then up to 20 s for the requests in flight; SIGKILL after that. Returns the exit code.
  [ -n "$server_pid" ] || return 0
  local pid=$server_pid code=0
  server_pid=""
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "error: corpus serve did not stop within 20 s of SIGTERM; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" || code=$?
  return "$code"
}
trap 'stop_server || true; rm -rf "$work"' EXIT
python3 scripts/make-test-adapter.py "$work/med" --seed 1

# 3. the server and the client
key="check-$RANDOM$RANDOM"
"$corpus" serve --model "$model" --name smol --adapter "med=$work/med" --port 0 --api-key "$key" 2> "$work/serve.log" &
server_pid=$!
port=""
for _ in $(seq 600); do
  port=$(sed -n 's/^corpus serve: listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/serve.log")
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$port" ]; then
  if kill -0 "$server_pid" 2>/dev/null; then
    echo "error: corpus serve did not print its address within 60 s; its log:" >&2
  else
    echo "error: corpus serve exited before it listened; its log:" >&2
  fi
  cat "$work/serve.log" >&2
  exit 1
fi
echo "corpus serve on port $port (pid $server_pid)" >&2

status=0
"$venv/bin/python" - "http://127.0.0.1:$port/v1" "$key" "$work/med/adapter_model.safetensors" <<'PY' || status=$?
import hashlib, re, sys
import openai
from openai import OpenAI

base_url, key, adapter_file = sys.argv[1:4]
client = OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=120)
failures = []

def check(condition, what, got=None):
    if condition:
        print(f"ok    {what}")
    else:
        failures.append(what)
        print(f"FAIL  {what}" + ("" if got is None else f": got {got!r}"))

# models
ids = [m.id for m in client.models.list().data]
check(ids[:1] == ["smol"] and "med" in ids, "models.list() has the base model first and the adapter med", ids)

# a greedy chat answer
question = [{"role": "user", "content": "What is the capital of France?"}]
chat = client.chat.completions.create(model="smol", messages=question, temperature=0, max_tokens=32)
choice = chat.choices[0]
text = choice.message.content
check(isinstance(text, str) and text != "", "chat: the answer is text", text)
check(text == "The capital of France is Paris.", "chat: the test model's reference answer", text)
check(choice.finish_reason in ("stop", "length"), "chat: finish_reason is stop or length", choice.finish_reason)
check(chat.object == "chat.completion" and chat.model == "smol" and chat.id.startswith("chatcmpl-"),
      "chat: object, model and id", (chat.object, chat.model, chat.id))
usage = chat.usage
check(usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 32
      and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens,
      "chat: usage adds up (prompt > 0, 0 < completion <= max_tokens, total = prompt + completion)", usage)
check(choice.finish_reason != "length" or usage.completion_tokens == 32,
      "chat: finish_reason length only when max_tokens tokens were generated", (choice.finish_reason, usage))
fingerprint = chat.system_fingerprint or ""
check(re.fullmatch(r"corpus-[0-9a-f]{16}", fingerprint) is not None, "chat: system_fingerprint is corpus- + 16 hex digits", fingerprint)

# the same request streamed
pieces, finish, stream_usage, stream_fingerprints, roles = [], None, None, set(), []
for chunk in client.chat.completions.create(model="smol", messages=question, temperature=0, max_tokens=32,
                                            stream=True, stream_options={"include_usage": True}):
    stream_fingerprints.add(chunk.system_fingerprint)
    if chunk.usage is not None:
        stream_usage = chunk.usage
    for c in chunk.choices:
        if c.delta.role:
            roles.append(c.delta.role)
        if c.delta.content:
            pieces.append(c.delta.content)
        if c.finish_reason:
            finish = c.finish_reason
check("".join(pieces) == text, "stream: the chunks add up to the non-streamed answer", "".join(pieces))
check(finish == choice.finish_reason, "stream: the same finish_reason", finish)
check(roles == ["assistant"], "stream: one delta with role assistant", roles)
check(stream_usage is not None and stream_usage.model_dump() == usage.model_dump(), "stream: include_usage gives the same usage", stream_usage)
check(stream_fingerprints == {fingerprint}, "stream: every chunk has the same system_fingerprint", stream_fingerprints)

# the adapter by name
adapter_sha = hashlib.sha256(open(adapter_file, "rb").read()).hexdigest()
raw = client.chat.completions.with_raw_response.create(model="med", messages=question, temperature=0, max_tokens=32)
adapted = raw.parse()
adapted_text = adapted.choices[0].message.content
check(isinstance(adapted_text, str) and adapted_text != "", "adapter: med answers", adapted_text)
check(adapted_text != text, "adapter: its answer differs from the base model's", adapted_text)
check(adapted.model == "med", "adapter: model is med", adapted.model)
check(adapted.system_fingerprint == f"{fingerprint}-{adapter_sha[:16]}",
      "adapter: system_fingerprint is the base's + '-' + the adapter's SHA-256 (16 hex digits)", adapted.system_fingerprint)
check(raw.headers.get("x-corpus-adapter-sha256") == adapter_sha, "adapter: x-corpus-adapter-sha256 header", raw.headers.get("x-corpus-adapter-sha256"))
check(raw.headers.get("x-corpus-model") == "med", "adapter: x-corpus-model header", raw.headers.get("x-corpus-model"))

# completions, plain and streamed
completion = client.completions.create(model="smol", prompt="Once upon a time", temperature=0, max_tokens=8)
ctext = completion.choices[0].text
check(completion.object == "text_completion" and isinstance(ctext, str) and ctext != "", "completions: text", ctext)
check(completion.choices[0].finish_reason in ("stop", "length"), "completions: finish_reason", completion.choices[0].finish_reason)
check(completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
      and completion.usage.completion_tokens <= 8, "completions: usage adds up", completion.usage)
streamed = "".join(c.choices[0].text for c in client.completions.create(
    model="smol", prompt="Once upon a time", temperature=0, max_tokens=8, stream=True) if c.choices)
check(streamed == ctext, "completions: streamed text equals the plain one", streamed)

# errors
try:
    client.chat.completions.create(model="no-such-model", messages=question, max_tokens=4)
    check(False, "unknown model: openai.NotFoundError", "no exception")
except openai.NotFoundError as error:
    check(error.status_code == 404 and error.code == "model_not_found", "unknown model: NotFoundError 404 model_not_found",
          (error.status_code, error.code))
except openai.APIError as error:
    check(False, "unknown model: openai.NotFoundError", repr(error))
try:
    client.chat.completions.create(model="smol", messages=question, max_tokens=4, n=2)
    check(False, "n=2: openai.BadRequestError", "no exception")
except openai.BadRequestError as error:
    check(error.status_code == 400 and error.param == "n", "n=2: BadRequestError 400 naming n", (error.status_code, error.param))
except openai.APIError as error:
    check(False, "n=2: openai.BadRequestError", repr(error))
wrong = OpenAI(base_url=base_url, api_key=key + "-wrong", max_retries=0, timeout=60)
for what, call in (("models.list", lambda: wrong.models.list()),
                   ("chat", lambda: wrong.chat.completions.create(model="smol", messages=question, max_tokens=4))):
    try:
        call()
        check(False, f"wrong key, {what}: openai.AuthenticationError", "no exception")
    except openai.AuthenticationError as error:
        check(error.status_code == 401, f"wrong key, {what}: AuthenticationError 401", error.status_code)
    except openai.APIError as error:
        check(False, f"wrong key, {what}: openai.AuthenticationError", repr(error))

if failures:
    print(f"{len(failures)} check(s) failed: " + "; ".join(failures))
    sys.exit(1)
print("every check passed")
PY

# 4. the server stops cleanly
stop_code=0
stop_server || stop_code=$?
if [ "$stop_code" != 0 ]; then
  echo "FAIL  corpus serve exited $stop_code after SIGTERM (expected 0); its log:" >&2
  tail -20 "$work/serve.log" >&2
  status=1
fi
if [ "$status" != 0 ]; then
  echo "check-openai-client: FAILED (see above)" >&2
  exit 1
fi
echo "check-openai-client: passed"
