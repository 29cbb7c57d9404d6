#!/usr/bin/env bash
# The dashboard end to end: builds the dashboard and the `provisioner` binary, starts
# `provisioner serve` on a free port with a fresh data directory, and runs the
# Playwright tests (tests/e2e, TypeScript, Debian's Chromium) against it (the sign-in
# with Cognito test runs its own `serve` beside a stub OpenID provider; the AWS views'
# test runs its own `serve --backend aws`, built with the `aws` feature, over moto's
# server, which this script starts through scripts/moto.sh):
#
#   bash scripts/test-e2e.sh
#
# Screenshots of each page go to $TMPDIR/provisioner-e2e-screenshots (printed at the end),
# so a test run leaves the checkout clean; E2E_SCREENSHOTS=docs/screenshots refreshes the
# README's committed ones. The server and moto are stopped by their PIDs on exit,
# whatever happens.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source scripts/env.sh
source scripts/lib.sh

step "build the dashboard" bash scripts/build-ui.sh
# Wherever CARGO_TARGET_DIR (or a config) puts it.
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --locked \
  | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
BIN="$TARGET_DIR/debug/provisioner"

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  # Only the moto this run started (its PID file is in $WORK/moto); none yet is fine.
  MOTO_DIR="$WORK/moto" bash scripts/moto.sh stop 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The AWS views' test (tests/e2e/src/aws.test.ts) needs `serve --backend aws`, which only
# the `aws` feature builds. The plain build below writes the same debug/provisioner, so this
# one is kept under another name first: a hard link (the debug binary is ~500 MB; cargo
# replaces debug/provisioner rather than writing into it), a copy across filesystems.
step "build provisioner (feature aws)" cargo build -p provisioner --features aws --locked
AWS_BIN="$WORK/provisioner-aws"
ln "$BIN" "$AWS_BIN" 2>/dev/null || cp "$BIN" "$AWS_BIN"
step "build provisioner" cargo build -p provisioner --locked
[[ -x $BIN ]] || { echo "test-e2e: no binary at $BIN" >&2; exit 1; }

E2E="$ROOT/tests/e2e"
# npm ci only when the lock file changed since the last install.
if [[ ! -f $E2E/node_modules/.package-lock.json || $E2E/package-lock.json -nt $E2E/node_modules/.package-lock.json ]]; then
  step "npm ci (tests/e2e)" npm ci --prefix "$E2E" --no-audit --no-fund
fi
step "tsc (tests/e2e)" "$E2E/node_modules/.bin/tsc" -p "$E2E"

# moto's server for the AWS views' test, on 127.0.0.1, its PID file in this run's directory.
MOTO_DIR="$WORK/moto" bash scripts/moto.sh start >"$WORK/moto.env"
AWS_ENDPOINT=$(sed -n 's/^export AWS_ENDPOINT_URL=//p' "$WORK/moto.env")

# Three simulated devices, and their manifest with one bad row appended.
"$BIN" device fleet --count 3 --out "$WORK/fleet" >/dev/null
cp "$WORK/fleet/manifest.csv" "$WORK/manifest-with-a-bad-row.csv"
echo "not a device id,04deadbeef" >>"$WORK/manifest-with-a-bad-row.csv"

"$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --dashboard-dir "$ROOT/admin-ui/dist" \
  --rate-limit 0 >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER_PID=$!
# The first line says where it listens; the token is printed once, at creation.
for _ in $(seq 1 100); do
  grep -q '^admin token' "$WORK/serve.out" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.err" >&2; exit 1; }
  sleep 0.1
done
URL=$(head -n1 "$WORK/serve.out" | sed -n 's/^listening on //p')
TOKEN=$(sed -n 's/^admin token .*: //p' "$WORK/serve.out")
[[ -n $URL && -n $TOKEN ]] || { echo "test-e2e: no address or token from serve" >&2; cat "$WORK/serve.out" >&2; exit 1; }
echo "serve: $URL (pid $SERVER_PID)"

# The Cognito sign-in test (tests/e2e/src/cognito.test.ts) starts its own stub OpenID
# provider and its own `serve` trusting it, from the same binary and dashboard.
export E2E_URL=$URL E2E_TOKEN=$TOKEN E2E_PROVISIONER=$BIN E2E_WORK=$WORK \
  E2E_DASHBOARD_DIR="$ROOT/admin-ui/dist" \
  E2E_FLEET="$WORK/fleet" E2E_MANIFEST="$WORK/manifest-with-a-bad-row.csv" \
  E2E_AWS_PROVISIONER=$AWS_BIN E2E_AWS_ENDPOINT=$AWS_ENDPOINT \
  E2E_SCREENSHOTS=$(realpath -m "${E2E_SCREENSHOTS:-${TMPDIR:-/tmp}/provisioner-e2e-screenshots}")
if ! step "playwright: the dashboard end to end" node --test "$E2E/dist/"; then
  echo "--- serve's log ---" >&2
  tail -n 40 "$WORK/serve.err" >&2
  exit 1
fi
echo "screenshots: $E2E_SCREENSHOTS"
