#!/usr/bin/env bash
# Runs the whole test suite (what .ci/run runs): unit tests of every module and end-to-end tests
# of the corpus binary on the bundled examples and, when present, ../shared/data; the Trainer
# tests read the SmolLM2 test model, which scripts/fetch-test-model.sh caches outside the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/fetch-test-model.sh >/dev/null   # the real model the Trainer tests read (cached outside the repo)
swift build --build-tests
swift test --skip-build
