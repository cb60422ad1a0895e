#!/usr/bin/env bash
# Ingest benchmark: builds a ~100 MB GB18030 CSV of 200,000 Q&A rows (header
# department,title,ask,answer) and times `corpus ingest` on it next to pandas
# read_csv(encoding="gb18030") + to_sql, in the same run on the same machine.
#
# usage: scripts/bench-ingest.sh [ROWS]      (default 200000)
# Needs ../shared/bench (the peer scripts) and a Python with pandas for the peer; set PEER_PYTHON
# (default ~/.cache/corpus-peers/bin/python, made with `python3 -m venv ~/.cache/corpus-peers &&
# ~/.cache/corpus-peers/bin/pip install pandas`). Files go to ${BENCH_DIR:-/tmp/corpus-bench}.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-200000}
dir=${BENCH_DIR:-/tmp/corpus-bench}
peers=../shared/bench
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

# A clean seed CSV from the example rows (the bundled example has defects on purpose; the seed
# does not), each answer three examples long so that rows average ~470 bytes like real exports.
python3 - "$dir/seed.csv" <<'PY'
import csv, io, sys, importlib.util
spec = importlib.util.spec_from_file_location("ex", "scripts/make-example-data.py")
ex = importlib.util.module_from_spec(spec); spec.loader.exec_module(ex)
m = ex.MEDICAL
with io.open(sys.argv[1], "w", encoding="gb18030", newline="") as f:
    w = csv.writer(f); w.writerow(["department", "title", "ask", "answer"])
    for i, (d, t, a, ans) in enumerate(m):
        w.writerow([d, t, a, ans + m[(i + 1) % len(m)][3] + m[(i + 2) % len(m)][3]])
PY
big="$dir/big-$rows.csv"
[ -f "$big" ] || python3 "$peers/make_big_csv.py" "$dir/seed.csv" "$big" "$rows"
bytes=$(stat -c %s "$big")
echo "input: $big, $rows rows, $bytes bytes"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB"

measure() { # label, command...: prints seconds and peak RSS
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$dir/time.txt" "$@" > "$dir/$label.out" 2>&1 || { cat "$dir/$label.out"; exit 1; }
  read -r secs kb < "$dir/time.txt"
  python3 -c "s=float('$secs'); b=$bytes; r=$rows; kb=int('$kb'); print('$label: %.2f s, %.1f MB/s, %d rows/s, peak RSS %d MiB' % (s, b/s/1e6, r/s, kb/1024))"
  echo "$secs" > "$dir/$label.secs"
}

rm -f "$dir/corpus.db"*
"$corpus" init --db "$dir/corpus.db" >/dev/null
CORPUS_TIMING=1 measure corpus "$corpus" ingest --db "$dir/corpus.db" "$big"
grep -E "rows →|timing" "$dir/corpus.out" || true
if [ -x "$python" ] && "$python" -c "import pandas" 2>/dev/null; then
  rm -f "$dir/pandas.db"
  measure pandas "$python" "$peers/pandas_ingest.py" "$big" "$dir/pandas.db"
  python3 -c "p=float(open('$dir/pandas.secs').read()); c=float(open('$dir/corpus.secs').read()); print('ratio: corpus takes %.2fx the time of pandas (%.2fx its speed)' % (c/p, p/c))"
else
  echo "pandas not found at $python: peer not measured"
fi
