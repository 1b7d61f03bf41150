#!/usr/bin/env bash
# Benchmarks SmartPay against a ceiling measured in the same run, and prints the ratios.
#
#   scripts/bench.sh [--store sqlite|postgres] [--nodes N] [--duration S] [--concurrency N]
#                    [--wrk-threads N] [--server-cpus LIST] [--report FILE]
#
# --store sqlite (default): one `smartpay serve` on SQLite against ../shared/bench/ceiling in
#   sqlite mode. Create Checkout and Get Payment Status are driven by wrk (scripts/bench/*.lua);
#   Status is measured right after the Create burst and again on a quiet store. The whole flow,
#   captures and refunds are driven by the Rust generator (crates/smartpay-bench).
# --store postgres --nodes N (the issue asks for 1 and 2): a fresh database smartpay_bench_<pid> on the PostgreSQL
#   server of BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/), `smartpay
#   migrate`, merchants provisioned with the CLI, N nodes (own data dir and port, one
#   SMARTPAY_PUBLIC_URL) with wrk's connections split over them; the ceiling is pgbench on the
#   same server in a second fresh database (single-row insert with a custom script, and -S).
#   Both databases are dropped on exit, also on failure or Ctrl-C.
# --duration S: seconds per phase (10); --concurrency N: connections/clients in total (64), also
#   pgbench's client count; --wrk-threads N: wrk threads in total (2), split over the nodes;
#   --node-threads N: each PostgreSQL node's worker_threads (default: cores divided by --nodes);
#   --server-logs DIR: keep each server's stderr in DIR/<name>.log (discarded otherwise).
#
# Installs wrk when it is missing (apt-get, as root), builds the release binaries (the ceiling
# into /tmp/ceiling-target), then runs target/release/smartpay-bench, which prints throughput,
# p50/p99/p99.9 latency, errors, the machine and the ratios with their targets, and writes the
# report to --report FILE (default target/bench-report.md; copy it into docs/benchmarks.md when
# it is a run worth keeping).
set -euo pipefail
cd "$(dirname "$0")/.."

store=sqlite
nodes=1
report=target/bench-report.md
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --store) store="${2:?--store needs sqlite or postgres}"; shift 2 ;;
    --store=*) store="${1#*=}"; shift ;;
    --nodes) nodes="${2:?--nodes needs a number}"; shift 2 ;;
    --nodes=*) nodes="${1#*=}"; shift ;;
    --report) report="${2:?--report needs a file}"; shift 2 ;;
    --report=*) report="${1#*=}"; shift ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) pass+=("$1"); shift ;;
  esac
done
case "$store" in
  sqlite) [ "$nodes" = 1 ] || { echo "--nodes above 1 needs --store postgres (SQLite is one node's file)" >&2; exit 2; } ;;
  postgres) [[ "$nodes" =~ ^[1-9][0-9]*$ ]] || { echo "--nodes must be a positive number" >&2; exit 2; } ;;
  *) echo "--store must be sqlite or postgres" >&2; exit 2 ;;
esac

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "not root and no sudo: cannot run $*" >&2; return 1
  fi
}
if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk is missing: apt-get install -y wrk"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y wrk || { as_root apt-get update && as_root apt-get install -y wrk; }
  command -v wrk >/dev/null 2>&1 || { echo "wrk could not be installed" >&2; exit 1; }
fi

cargo build --release -p smartpay -p smartpay-bench
if [ "$store" = sqlite ]; then
  ceiling_manifest="${CEILING_MANIFEST:-../shared/bench/ceiling/Cargo.toml}"
  [ -f "$ceiling_manifest" ] || { echo "ceiling not found at $ceiling_manifest" >&2; exit 1; }
  CARGO_TARGET_DIR=/tmp/ceiling-target cargo build --release --manifest-path "$ceiling_manifest"
  pass+=(--ceiling-bin /tmp/ceiling-target/release/ceiling)
else
  command -v pgbench >/dev/null 2>&1 && command -v psql >/dev/null 2>&1 \
    || { echo "pgbench and psql are needed for --store postgres (Debian: apt-get install postgresql-client)" >&2; exit 1; }
  url="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/}"
  [ -n "${BENCH_DATABASE_URL:-}" ] || scripts/postgres.sh >/dev/null
  # postgres://user@host:port[/db][?params]: the server part, the database to connect to for
  # CREATE/DROP DATABASE (the URL's, else "postgres"), and the parameters.
  [[ "$url" =~ ^(postgres(ql)?://[^/?]*)(/([^?]*))?(\?.*)?$ ]] \
    || { echo "BENCH_DATABASE_URL is not a postgres:// URL: $url" >&2; exit 2; }
  server="${BASH_REMATCH[1]}" maintenance="${BASH_REMATCH[4]:-postgres}" params="${BASH_REMATCH[5]:-}"
  admin="$server/$maintenance$params"
  smartpay_db="smartpay_bench_$$" pgbench_db="smartpay_bench_$$_pgbench"
  drop_databases() {
    for db in "$smartpay_db" "$pgbench_db"; do
      psql "$admin" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null \
        || echo "could not drop database $db" >&2
    done
  }
  trap drop_databases EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  for db in "$smartpay_db" "$pgbench_db"; do
    psql "$admin" -qX -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$db\"" >/dev/null
  done
  pass+=(--store postgres --nodes "$nodes"
    --database-url "$server/$smartpay_db$params" --pgbench-url "$server/$pgbench_db$params")
fi

# Not exec: the trap above drops the databases once the run is over.
target/release/smartpay-bench --smartpay-bin target/release/smartpay --scripts scripts/bench \
  --report "$report" "${pass[@]}"
