#!/usr/bin/env bash
# Check benchmark (issue 3): exact and near duplicates plus every filter over ROWS records with
# `corpus check`, next to datasketch MinHashLSH (128 permutations, character 5-grams, threshold
# 0.8; ../shared/bench/datasketch_dedup.py) in the same run on the same machine.
#
# usage: scripts/bench-dedup.sh [ROWS] [PEER_ROWS]     (defaults 1000000 and 20000)
# The input: a GB18030 CSV (department,title,ask,answer) of the shared Chinese files
# (alpaca_zh_10k, legal_zixun_1k, huanhuan: 14,750 real rows), expanded to ROWS by
# ../shared/bench/make_big_csv.py (row-unique suffixes; every tenth row a repeat). datasketch is
# timed on the first PEER_ROWS rows (it does ~2,600 records/s: a million would take minutes).
# Needs a Python with datasketch: PEER_PYTHON (default ~/.cache/corpus-peers/bin/python).
# Files go to ${BENCH_DIR:-/tmp/corpus-bench}.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
peer_rows=${2:-20000}
dir=${BENCH_DIR:-/tmp/corpus-bench}
peers=../shared/bench
data=../shared/data
python=${PEER_PYTHON:-$HOME/.cache/corpus-peers/bin/python}
mkdir -p "$dir"

scripts/install-deps.sh
# CORPUS_BIN=PATH measures a release binary built before (e.g. with --scratch-path elsewhere, so
# that the test build in .build is left alone); otherwise this builds one.
if [ -n "${CORPUS_BIN:-}" ]; then
  corpus="$CORPUS_BIN"
else
  swift build -c release --product corpus > "$dir/build.log" 2>&1 || { tail -20 "$dir/build.log"; exit 1; }
  corpus="$(swift build -c release --show-bin-path)/corpus"
fi

seed="$dir/dedup-seed.csv"
python3 - "$data" "$seed" <<'PY'
import csv, io, json, os, sys
data, out = sys.argv[1], sys.argv[2]
rows = []
for name in ["alpaca_zh_10k.json", "huanhuan.json"]:
    for r in json.load(open(os.path.join(data, name), encoding="utf-8")):
        rows.append([name.split(".")[0], r.get("instruction", ""), r.get("input", ""), r.get("output", "")])
for r in json.load(open(os.path.join(data, "legal_zixun_1k.json"), encoding="utf-8")):
    rows.append(["legal", "", r["query"], r["response"]])
rows = [r for r in rows if r[3].strip() and (r[1] + r[2]).strip()]
with io.open(out, "w", encoding="gb18030", errors="replace", newline="") as f:
    w = csv.writer(f); w.writerow(["department", "title", "ask", "answer"]); w.writerows(rows)
print(f"seed: {len(rows)} rows")
PY
big="$dir/dedup-$rows.csv"
[ -f "$big" ] || python3 "$peers/make_big_csv.py" "$seed" "$big" "$rows"
echo "input: $big, $rows rows, $(stat -c %s "$big") bytes"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB"

measure() { # label, command...: prints wall seconds and peak RSS
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$dir/time.txt" "$@" > "$dir/out.txt" 2>&1 || { cat "$dir/out.txt"; exit 1; }
  read -r secs kb < "$dir/time.txt"
  echo "$label: ${secs} s, peak RSS $((kb / 1024)) MiB"
}

db="$dir/dedup.db"
rm -f "$db" "$db-wal" "$db-shm"
"$corpus" init --db "$db" > /dev/null
measure "corpus ingest (not part of the check)" "$corpus" ingest --db "$db" "$big"
measure "corpus check, all checks, $rows records (signatures computed)" "$corpus" check --db "$db"
grep -E "checked|exact_duplicate|near_duplicate|signatures|timing" "$dir/out.txt" | sed 's/^/  /'
# Same corpus, a configuration that differs only in a threshold: the stored signatures are reused.
echo '{"near_duplicates": {"threshold": 0.75}}' > "$dir/threshold.json"
measure "corpus check again, new threshold (signatures reused)" "$corpus" check --db "$db" --config "$dir/threshold.json"
grep -E "near_duplicate|signatures|timing" "$dir/out.txt" | sed 's/^/  /'

if [ -x "$python" ] && "$python" -c "import datasketch" 2>/dev/null; then
  measure "datasketch MinHashLSH, first $peer_rows rows" "$python" "$peers/datasketch_dedup.py" "$big" "$peer_rows"
  sed 's/^/  /' "$dir/out.txt"
else
  echo "peer skipped: no datasketch at $python (set PEER_PYTHON)"
fi
