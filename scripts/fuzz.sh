#!/usr/bin/env bash
# Fuzzing with libFuzzer and the address sanitizer (docs/RELIABILITY.md).
#   scripts/fuzz.sh --list                  the targets, one a line, with what each reaches
#   scripts/fuzz.sh --build                 builds the libFuzzer binary only
#   scripts/fuzz.sh TARGET SECONDS [ARG...] runs one target for SECONDS (more libFuzzer arguments after)
#   scripts/fuzz.sh --all SECONDS           runs every target for SECONDS each (what CI does)
# The binary is the product corpus-fuzz built with CORPUS_FUZZ=1 (Package.swift gives this
# package's Swift and C code -sanitize=fuzzer,address; dependencies are built as usual), in
# FUZZ_SCRATCH (default .build-fuzz; CI passes .build to reuse the dependencies of the test build,
# which is why the flags are scripts/test.sh's: -c release -Xswiftc -enable-testing).
# Each run reads fuzz/seeds/TARGET and fuzz/regressions/TARGET, keeps the inputs it finds in
# .fuzz/corpus/TARGET (not in git), and writes a crashing input to .fuzz/artifacts/TARGET/. A
# finding exits non-zero: replay it with `swift run corpus-fuzz TARGET FILE`, fix the parser,
# and add the file to fuzz/regressions/TARGET/ so the normal tests replay it from then on.
# FUZZ_BINARY=PATH runs a libFuzzer binary built before (a copy, so that builds can go on in
# the meantime) instead of building.
# Every run ends with a line "fuzz: TARGET SECONDS s, N runs, R exec/s, C crashes" (also appended
# to .fuzz/runs.log).
set -euo pipefail
cd "$(dirname "$0")/.."
scratch="${FUZZ_SCRATCH:-.build-fuzz}"
targets() { ls fuzz/seeds; }

build() {
  if [ -n "${FUZZ_BINARY:-}" ]; then return; fi
  echo "building corpus-fuzz with -sanitize=fuzzer,address in $scratch" >&2
  CORPUS_FUZZ=1 swift build -c release -Xswiftc -enable-testing --product corpus-fuzz --scratch-path "$scratch" >&2
}

binary() {
  if [ -n "${FUZZ_BINARY:-}" ]; then echo "$FUZZ_BINARY"; return; fi
  echo "$(CORPUS_FUZZ=1 swift build -c release -Xswiftc -enable-testing --scratch-path "$scratch" --show-bin-path)/corpus-fuzz"
}

# run TARGET SECONDS [ARG...]: one libFuzzer run; prints the summary line; exit status 0 unless a finding.
run() {
  local target="$1" seconds="$2"; shift 2
  local bin; bin="$(binary)"
  mkdir -p ".fuzz/corpus/$target" ".fuzz/artifacts/$target" fuzz/regressions/"$target"
  local log=".fuzz/$target.log"
  local status=0
  # Leaks are not findings (Swift's runtime caches metadata for the life of the process);
  # every other sanitizer report, a trap, a timeout (10 s per input) or 2 GB of memory is.
  CORPUS_FUZZ_TARGET="$target" SWIFT_BACKTRACE=enable=no ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}" timeout $((seconds + 120)) "$bin" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix=".fuzz/artifacts/$target/" ".fuzz/corpus/$target" "fuzz/seeds/$target" "fuzz/regressions/$target" \
    "$@" </dev/null >"$log" 2>&1 || status=$?
  local runs rate crashes
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  crashes=$(find ".fuzz/artifacts/$target" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l | tr -d ' ')
  local line="fuzz: $target ${seconds} s, ${runs:-?} runs, ${rate:-?} exec/s, $crashes crashes (exit $status)"
  echo "$line"
  echo "$(date -u +%FT%TZ) $line" >>.fuzz/runs.log
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $target found something; the log's end (.fuzz/$target.log):" >&2
    tail -40 "$log" >&2
    return 1
  fi
}

case "${1:-}" in
  --list)
    for t in $(targets); do echo "$t"; done ;;
  --build)
    build ;;
  --all)
    seconds="${2:?usage: scripts/fuzz.sh --all SECONDS}"
    build
    failed=0
    for t in $(targets); do run "$t" "$seconds" || failed=1; done
    exit "$failed" ;;
  ""|-h|--help)
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 64 ;;
  *)
    target="$1"; seconds="${2:?usage: scripts/fuzz.sh TARGET SECONDS}"; shift 2
    [ -d "fuzz/seeds/$target" ] || { echo "fuzz: no target $target; scripts/fuzz.sh --list names them" >&2; exit 64; }
    build
    run "$target" "$seconds" "$@" ;;
esac
