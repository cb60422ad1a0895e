#!/usr/bin/env bash
# Checks our LoRA files with the real PEFT and transformers (docs/ADAPTERS.md): the Swift writer
# (an env-gated test in LoRAMergeTests, skipped in ordinary runs) writes our adapter and merged
# model into DIR, then scripts/make-peft-fixtures.py --check reads them with PEFT.
#   scripts/peft-check.sh [DIR]          the PEFT fixture's adapter (default DIR: a new temporary folder)
#   scripts/peft-check.sh --real [DIR]   the SmolLM2 test model (scripts/fetch-test-model.sh), about a minute
#   VENV (default ~/.cache/corpus-peers/venv) needs torch, transformers, peft, safetensors.
#   CORPUS_PEFT_CHECK_ADAPTER (adapter-all|adapter-rslora) and CORPUS_PEFT_CHECK_DTYPE (F32|BF16|F16)
#   choose the fixture's adapter and the merged dtype.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-$HOME/.cache/corpus-peers/venv}
[ -x "$venv/bin/python" ] || { echo "error: no Python at $venv/bin/python; make the venv (python3 -m venv \"$venv\" && \"$venv/bin/pip\" install torch transformers peft safetensors) or set VENV" >&2; exit 1; }
real=0
if [ "${1:-}" = "--real" ]; then real=1; shift; fi
dir=${1:-}
if [ -z "$dir" ]; then
  dir=$(mktemp -d -t corpus-peft-check.XXXXXX)
  trap 'rm -rf "$dir"' EXIT
fi
if [ "$real" = 1 ]; then
  CORPUS_PEFT_CHECK_REAL_DIR=$dir swift test --filter 'TrainerTests.LoRAMergeTests/writeRealModelForPEFTCheck'
else
  CORPUS_PEFT_CHECK_DIR=$dir swift test --filter 'TrainerTests.LoRAMergeTests/writeForPEFTCheck'
fi
"$venv/bin/python" scripts/make-peft-fixtures.py --check "$dir"
