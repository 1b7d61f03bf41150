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

echo "== browser test dependencies (Debian chromium, playwright-core)"
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast --test-threads 4
else
  cargo test --workspace --no-fail-fast -- --test-threads 4
fi

echo "== browser tests (headless Chromium; screenshots in test-artifacts/browser/)"
cargo build -p smartpay
(cd tests/browser && WIDGET_TEST_BINARY="$PWD/../../target/debug/smartpay" node --test --test-concurrency=1 widget.test.mjs)
