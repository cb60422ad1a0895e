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
echo
echo "done: the store is $CORPUS_DB; try \`CORPUS_DB=$CORPUS_DB $corpus records --json\`"
