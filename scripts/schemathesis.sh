#!/usr/bin/env bash
# Schema-based fuzzing of the merchant API and the token endpoint with schemathesis, against the
# server's own /openapi.json. Run by scripts/test.sh; can be run alone:
#   scripts/schemathesis.sh
# Environment:
#   ST_BINARY            the binary to test (default: target/debug/smartpay, built if missing)
#   ST_MAX_EXAMPLES      test cases per operation and phase (default 100)
#   ST_MAX_TIME          wall-clock budget of the run in seconds (default 150)
#   ST_SEED              a seed to replay an earlier run (default: random, printed by schemathesis)
# Starts the binary on a free loopback port with a fresh data directory and a merchant created
# for the run, and fails on any failure schemathesis reports (server errors, responses that do not
# conform to the schema, valid requests refused, invalid requests accepted, ...). The report
# (JUnit, and a cassette of every request) is written to test-artifacts/schemathesis/.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
venv=.venv-schemathesis
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $venv/"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

bin="${ST_BINARY:-target/debug/smartpay}"
if [ -z "${ST_BINARY:-}" ] && [ ! -x "$bin" ]; then
  cargo build -p smartpay
fi
[ -x "$bin" ] || { echo "no executable at $bin" >&2; exit 1; }
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The admin listener (metrics) is not under test and would clash with other servers on its fixed port.
export SMARTPAY_ADMIN_LISTEN=off
creds="$("$bin" --data-dir "$work/data" merchant create --name schemathesis --json)"
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$creds" "$1"; }
export ST_MERCHANT_KEY ST_AUTH_KEY ST_CLIENT_ID ST_CLIENT_SECRET
ST_MERCHANT_KEY="$(field merchantKey)"
ST_AUTH_KEY="$(field authenticationKey)"
ST_CLIENT_ID="$(field clientId)"
ST_CLIENT_SECRET="$(field clientSecret)"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
"$bin" --data-dir "$work/data" serve --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  if curl -fsS "$base/health/ready" >/dev/null 2>&1; then break; fi
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; echo "the server exited" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$base/health/ready" >/dev/null

# Credentials come from the environment (schemathesis resolves ${VAR}), never from this file.
# The merchant API is called with the merchant's Basic key or, for the bearer scheme, a token the
# token endpoint issues to the merchant's OAuth client; the token endpoint's own cases carry the
# client's credentials in the form, so they reach the success path and not only refusals.
cat >"$work/schemathesis.toml" <<'EOF'
[auth.openapi.basic]
username = "${ST_MERCHANT_KEY}"
password = "${ST_AUTH_KEY}"

[auth.dynamic.openapi.bearer]
path = "/oauth2/token"
payload = { grant_type = "client_credentials", client_id = "${ST_CLIENT_ID}", client_secret = "${ST_CLIENT_SECRET}" }
payload_content_type = "application/x-www-form-urlencoded"
extract_selector = "/access_token"

# A merchantKey other than the caller's is refused (403) before anything else is looked at, so the
# cases use the caller's. X-Access-Token must also have a JSON object as its first segment, which
# no pattern can say: the cases use one well-formed (unsigned) token; the merchant has no identity keys.
[[operations]]
include-path = "/payment/creation"
parameters = { "body.merchantKey" = "${ST_MERCHANT_KEY}", "header.X-Access-Token" = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzY2hlbWF0aGVzaXMifQ." }

[[operations]]
include-path = "/oauth2/token"
parameters = { "body.client_id" = "${ST_CLIENT_ID}", "body.client_secret" = "${ST_CLIENT_SECRET}" }
EOF

report=test-artifacts/schemathesis
rm -rf "$report" && mkdir -p "$report"
seed=()
if [ -n "${ST_SEED:-}" ]; then seed=(--seed "$ST_SEED"); fi
status=0
"$(pwd)/$venv/bin/st" --config-file "$work/schemathesis.toml" run "$base/openapi.json" \
  --include-path-regex "${ST_INCLUDE:-^/(payment/creation|payment/status/\{transactionId\}|oauth2/token)\$}" \
  --checks all \
  --max-examples "${ST_MAX_EXAMPLES:-100}" \
  --max-time "${ST_MAX_TIME:-150}" \
  --workers 2 \
  --request-timeout 10 \
  --report junit,vcr --report-dir "$report" \
  --no-color \
  "${seed[@]}" || status=$?
cp "$work/server.log" "$report/server.log"
if grep -q '"status":429\|429 Too Many Requests' "$report"/*.yaml 2>/dev/null; then
  echo "schemathesis was answered 429 (locked out or rate limited): see $report/" >&2
  status=1
fi
exit "$status"
