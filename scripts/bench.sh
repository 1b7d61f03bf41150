#!/usr/bin/env bash
# Benchmarks SmartPay against ../shared/bench/ceiling in one run.
#   scripts/bench.sh [--duration S] [--concurrency N] [--server-cpus LIST]
# Builds release binaries (the ceiling into /tmp/ceiling-target), then runs smartpay-bench,
# which prints throughput, p50/p99/p99.9 latency and SmartPay/ceiling ratios, and writes
# target/bench-report.md (copy it into docs/benchmarks.md when it is a run worth keeping).
set -euo pipefail
cd "$(dirname "$0")/.."
ceiling_manifest="${CEILING_MANIFEST:-../shared/bench/ceiling/Cargo.toml}"
[ -f "$ceiling_manifest" ] || { echo "ceiling not found at $ceiling_manifest" >&2; exit 1; }
cargo build --release -p smartpay -p smartpay-bench
CARGO_TARGET_DIR=/tmp/ceiling-target cargo build --release --manifest-path "$ceiling_manifest"
exec target/release/smartpay-bench \
  --smartpay-bin target/release/smartpay \
  --ceiling-bin /tmp/ceiling-target/release/ceiling \
  --report target/bench-report.md "$@"
