#!/usr/bin/env bash
# Runs the whole test suite (what .ci/run runs): unit tests of every module and end-to-end tests
# of the corpus binary on the bundled examples and ../shared/data; the model tests read the
# SmolLM2 test model, which scripts/fetch-test-model.sh caches outside the repo. A test whose
# input is missing shows as skipped with the reason (under CI=true it fails instead).
#   scripts/test.sh           optimized build with testing enabled (.build/release): the model tests
#                             run several times faster than in a debug build, build included
#   scripts/test.sh --fast    the same without the tests of the real model (listed as skipped)
#   scripts/test.sh --debug   a debug build (.build/debug, what a plain `swift test` uses)
# Other arguments go to `swift test`, e.g. scripts/test.sh --filter LoRAMergeTests.
# After the Swift tests, a full run (no --fast, no other arguments) also drives `corpus serve`
# with scripts/load-test-serve.py (32 clients, 500 requests) and the official `openai` client
# (scripts/check-openai-client.sh; it skips, exit 0, where PyPI cannot be reached), and checks the
# GGUF files corpus writes with llama.cpp (scripts/check-gguf-export.sh; it skips without
# llama-cpp-python) and the Hugging Face folders with transformers (scripts/check-hf-export.sh;
# it skips without them), and kills every writing command a few times (scripts/crash-harness.py),
# when python3 is there (docs/SERVE.md, docs/ADAPTERS.md). Before the Swift
# tests, when python3 is there, a venv with TensorBoard is made once in ~/.cache/corpus so that
# TensorBoard itself reads the event files corpus writes (CORPUS_TENSORBOARD_PYTHON, docs/TRAINING.md).
# Under CI=true a full run ends by fuzzing every target for CORPUS_FUZZ_SECONDS (default 3) with
# libFuzzer and the address sanitizer (scripts/fuzz.sh --all, in .build so that the dependencies
# of the test build are reused; docs/RELIABILITY.md); CORPUS_FUZZ_SECONDS=0 skips it, and setting
# it outside CI runs it there too. Every `swift test` replays the fuzz seeds and regression inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
build=(-c release -Xswiftc -enable-testing)
fast=0
args=()
for arg in "$@"; do
  case "$arg" in
    --fast) fast=1 ;;
    --debug) build=() ;;
    *) args+=("$arg") ;;
  esac
done
scripts/install-deps.sh
if [ "$fast" = 1 ]; then
  export CORPUS_TEST_SKIP_MODEL=1
else
  scripts/fetch-test-model.sh >/dev/null   # the real model the model tests read (cached outside the repo)
fi
# TensorBoard's own reader checks the event files corpus writes (TensorBoardEventWriterTests): a venv
# outside the repo with the tensorboard package, made once; where it cannot be made (no PyPI) the
# test shows as skipped. An existing CORPUS_TENSORBOARD_PYTHON is used as it is.
if [ -z "${CORPUS_TENSORBOARD_PYTHON:-}" ] && command -v python3 >/dev/null; then
  tb_venv="$HOME/.cache/corpus/tensorboard-venv"
  if ! "$tb_venv/bin/python" -c 'import tensorboard' >/dev/null 2>&1; then
    echo "making $tb_venv (pip install tensorboard) for the TensorBoard reader test" >&2
    if ! { python3 -m venv "$tb_venv" && "$tb_venv/bin/pip" install -q --retries 1 --timeout 20 tensorboard; } >/dev/null 2>&1; then
      echo "note: could not install tensorboard into $tb_venv; the TensorBoard reader test will be skipped" >&2
    fi
  fi
  if "$tb_venv/bin/python" -c 'import tensorboard' >/dev/null 2>&1; then
    export CORPUS_TENSORBOARD_PYTHON="$tb_venv/bin/python"
  fi
fi
swift build --build-tests ${build[@]+"${build[@]}"}
swift test --skip-build ${build[@]+"${build[@]}"} ${args[@]+"${args[@]}"}
if [ "$fast" = 0 ] && [ ${#args[@]} -eq 0 ] && command -v python3 >/dev/null; then
  bin="$(swift build --show-bin-path ${build[@]+"${build[@]}"})/corpus"
  python3 scripts/load-test-serve.py --binary "$bin"
  scripts/check-openai-client.sh "$bin"
  scripts/check-gguf-export.sh "$bin"      # skips without llama-cpp-python (PEER_PYTHON)
  scripts/check-hf-export.sh "$bin"        # skips without torch and transformers (PEER_PYTHON)
  # A few SIGKILLs of every writing command at random moments (the seed is printed), the store and
  # the outputs checked after each (docs/RELIABILITY.md, "Crash consistency"; 50 per command there).
  python3 scripts/crash-harness.py --binary "$bin" --kills 3 --rows 3000
fi
fuzz_seconds="${CORPUS_FUZZ_SECONDS:-}"
if [ -z "$fuzz_seconds" ] && [ "${CI:-}" = true ]; then fuzz_seconds=3; fi
if [ "$fast" = 0 ] && [ ${#args[@]} -eq 0 ] && [ -n "$fuzz_seconds" ] && [ "$fuzz_seconds" != 0 ]; then
  FUZZ_SCRATCH=.build scripts/fuzz.sh --all "$fuzz_seconds"
fi
