#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this script).
#   scripts/test.sh            format check, clippy, then every test of the workspace
# Installs what the tests need that a fresh machine may lack. A missing dependency fails
# the run; no test skips itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast --test-threads 4
else
  cargo test --workspace --no-fail-fast -- --test-threads 4
fi
