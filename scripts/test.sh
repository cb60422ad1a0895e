#!/usr/bin/env bash
# Runs the whole test suite (what .ci/run runs): unit tests of every module and end-to-end tests
# of the corpus binary on the bundled examples and, when present, ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build --build-tests
swift test --skip-build
