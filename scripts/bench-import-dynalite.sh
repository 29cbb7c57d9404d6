#!/usr/bin/env bash
# The DynamoDB manifest import of 100,000 devices into dynalite, a stricter DynamoDB
# stand-in than moto (25-item batches enforced, tables start CREATING), timed:
#
#   bash scripts/bench-import-dynalite.sh [ROWS] [CONCURRENCY]   (defaults 100000 and 4)
#
# Starts dynalite ($PROVISIONER_CACHE/node, from scripts/install-tools.sh) in memory on
# 127.0.0.1 on a free port and records its PID; runs the dynamodb_import_bench example
# (store-aws/examples/dynamodb_import_bench.rs) with AWS_ENDPOINT_URL pointing at it:
# create_tables (waits for ACTIVE), DynamoDbRegistry::import of ROWS new devices, the
# count (a paginated Scan) must be ROWS; then the same import again, which must find every
# row unchanged and leave the count at ROWS. The example fails otherwise, and so does this
# script. Stops that PID on exit, whatever the outcome.
#
# The example is a debug build: it shares the AWS SDK build with scripts/test-aws.sh
# (a release build of the SDK costs more minutes than the whole run), and the time goes
# to dynalite's one Node thread, not to the client. The keys are KEYS (default 1000)
# distinct P-256 keys cycled over unique device ids: making 100,000 keys in a debug build
# would take longer than the import, and the import handles every row the same.
#
# Last lines: dynalite_import_rows_per_sec=<N> (the first import), then
# dynalite_reimport_rows_per_sec=, dynalite_import_secs=, dynalite_total_secs= (the
# example's wall time: tables, both imports, counts).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=env.sh
source scripts/env.sh

ROWS=${1:-100000}
CONCURRENCY=${2:-4}
KEYS=${KEYS:-1000}
DYNALITE="$PROVISIONER_CACHE/node/node_modules/.bin/dynalite"

die() { echo "bench-import-dynalite: $*" >&2; exit 1; }
[[ -x $DYNALITE ]] || die "$DYNALITE not found: run bash scripts/install-tools.sh"

# Built before dynalite starts, so a compile never runs against a live server.
cargo build -q -p provisioner-store-aws --example dynamodb_import_bench --locked
BENCH=${CARGO_TARGET_DIR:-$ROOT/target}/debug/examples/dynamodb_import_bench

WORK=$(mktemp -d "${TMPDIR:-/tmp}/provisioner-dynalite.XXXXXX")
DYNALITE_PID=""
cleanup() {
  if [[ -n $DYNALITE_PID ]] && kill -0 "$DYNALITE_PID" 2>/dev/null; then
    kill "$DYNALITE_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$DYNALITE_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$DYNALITE_PID" 2>/dev/null || true
    echo "bench-import-dynalite: stopped dynalite (PID $DYNALITE_PID)" >&2
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The port is free when picked; another process may take it before dynalite binds it,
# so a dynalite that exits at once is retried on another port.
PORT=""
for attempt in 1 2 3; do
  port=$(free_port)
  # In memory (no --path); tables stay CREATING for dynalite's default 500 ms.
  "$DYNALITE" --host 127.0.0.1 --port "$port" >"$WORK/dynalite.log" 2>&1 </dev/null &
  DYNALITE_PID=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      PORT=$port
      break 2
    fi
    kill -0 "$DYNALITE_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench-import-dynalite: dynalite did not answer on port $port (attempt $attempt):" >&2
  tail -n 5 "$WORK/dynalite.log" >&2 || true
  kill "$DYNALITE_PID" 2>/dev/null || true
  wait "$DYNALITE_PID" 2>/dev/null || true
  DYNALITE_PID=""
done
[[ -n $PORT ]] || die "could not start dynalite"
echo "bench-import-dynalite: dynalite $(node -p "require('$PROVISIONER_CACHE/node/node_modules/dynalite/package.json').version") on 127.0.0.1:$PORT, PID $DYNALITE_PID"

# Only dynalite, with dummy credentials: no per-service endpoint or profile may win.
unset AWS_ENDPOINT_URL_DYNAMODB AWS_PROFILE AWS_SESSION_TOKEN
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT
export AWS_ACCESS_KEY_ID=dynalite AWS_SECRET_ACCESS_KEY=dynalite
export AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

start=$EPOCHREALTIME
if ! "$BENCH" "$ROWS" "$CONCURRENCY" --keys "$KEYS" | tee "$WORK/bench.out"; then
  echo "bench-import-dynalite: the import failed; dynalite's log:" >&2
  tail -n 20 "$WORK/dynalite.log" >&2 || true
  exit 1
fi
end=$EPOCHREALTIME

figure() { sed -n "s/^$1=//p" "$WORK/bench.out" | tail -n1; }
echo "dynalite_reimport_rows_per_sec=$(figure reimport_rows_per_sec)"
echo "dynalite_import_secs=$(figure import_secs)"
echo "dynalite_total_secs=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", e - s }')"
echo "dynalite_import_rows_per_sec=$(figure import_rows_per_sec)"
