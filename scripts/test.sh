#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this script).
#   scripts/test.sh            format check, clippy, cargo deny, every test of the workspace
#                              (the store contract suite on SQLite and PostgreSQL), the API tests
#                              once more on PostgreSQL, the browser tests, then schemathesis
# Installs what the tests need that a fresh machine may lack. A missing dependency fails
# the run; no test skips itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo deny (RustSec advisories, offline, against ../shared/advisory-db)"
# cargo-deny reads its databases from <db-path>/<name derived from the URL>/, a git checkout; the
# snapshot in ../shared is plain files. So a git repository with an empty commit is made at that
# place, holding links to the snapshot's files (a fetch never happens: --offline).
CARGO_DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q "$CARGO_DENY_VERSION"; then
  cargo install --locked cargo-deny --version "$CARGO_DENY_VERSION"
fi
# cargo deny reads the metadata of every feature offline: every crate of the lockfile must be in
# the local registry cache, also those no build of ours needs (optional features' crates).
cargo fetch --locked
snapshot="$(cd ../shared/advisory-db && pwd)"
db_dir="$(cargo deny --offline -L debug check advisories 2>&1 | sed -n "s/.*Opening advisory database at '\(.*\)'.*/\1/p" | head -1 || true)"
[ -n "$db_dir" ] || { echo "cargo deny did not name its advisory database directory" >&2; exit 1; }
rm -rf "$db_dir" && mkdir -p "$db_dir"
ln -s "$snapshot/crates" "$db_dir/crates"
ln -s "$snapshot/rust" "$db_dir/rust"
git -C "$db_dir" init -q
git -C "$db_dir" -c user.name=smartpay-ci -c user.email=ci@localhost commit -q --allow-empty -m "links to $snapshot"
cargo deny --offline --locked check advisories

echo "== browser test dependencies (Debian chromium, playwright-core)"
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

echo "== PostgreSQL for the store's contract suite and the API tests on PostgreSQL"
bash scripts/postgres.sh
# (Not SMARTPAY_*: the binary refuses SMARTPAY_ variables it does not know, and e2e tests run it.)
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast --test-threads 4
else
  cargo test --workspace --no-fail-fast -- --test-threads 4
fi

echo "== the API tests again, each server on a PostgreSQL database of its own"
# Left out: tests that read SQLite's own files (data-directory modes, canary scans of the
# database files); the contract suite covers the stores' behaviour on both.
API_TESTS_DATABASE_URL="$TEST_DATABASE_URL" cargo nextest run -p smartpay-server --test api \
  --no-fail-fast --test-threads 4 \
  -E 'not (test(=edge::the_data_directory_and_every_file_in_it_are_private) | test(/^vault::canary::/))'

echo "== browser tests (headless Chromium; screenshots in test-artifacts/browser/)"
cargo build -p smartpay
(cd tests/browser && WIDGET_TEST_BINARY="$PWD/../../target/debug/smartpay" node --test --test-concurrency=1 widget.test.mjs payu.test.mjs vault.test.mjs)

echo "== schemathesis (merchant API and token endpoint against /openapi.json; report in test-artifacts/schemathesis/)"
ST_BINARY="$PWD/target/debug/smartpay" bash scripts/schemathesis.sh
