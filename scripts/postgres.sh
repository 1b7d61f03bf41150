#!/usr/bin/env bash
# Makes sure the PostgreSQL the tests use answers on 127.0.0.1:5432 (user postgres, trust auth):
# starts the machine's cluster when it is installed but not running. Fails when there is none:
# the PostgreSQL tests never skip. Sourced or run by scripts/test.sh.
set -euo pipefail
host=127.0.0.1 port=5432
ready() { pg_isready -q -h "$host" -p "$port" -U postgres 2>/dev/null; }
if ! command -v pg_isready >/dev/null 2>&1; then
  echo "PostgreSQL client tools are missing (Debian: apt-get install postgresql); the PostgreSQL tests need a server on $host:$port" >&2
  exit 1
fi
if ! ready; then
  echo "PostgreSQL is not answering on $host:$port: starting the installed cluster"
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  if command -v pg_ctlcluster >/dev/null 2>&1 && ls /etc/postgresql/*/main >/dev/null 2>&1; then
    version="$(ls /etc/postgresql | sort -V | tail -1)"
    as_root pg_ctlcluster "$version" main start || true
  elif command -v service >/dev/null 2>&1; then
    as_root service postgresql start || true
  fi
  for _ in $(seq 50); do ready && break; sleep 0.2; done
fi
ready || { echo "PostgreSQL does not answer on $host:$port" >&2; exit 1; }
psql -h "$host" -p "$port" -U postgres -d postgres -qtAc 'SELECT 1' >/dev/null \
  || { echo "PostgreSQL on $host:$port refuses user postgres (trust auth expected)" >&2; exit 1; }
echo "PostgreSQL answers on $host:$port"
