#!/usr/bin/env bash
# Issuance throughput: `device load` against `serve --rate-limit 0 --renew-within-days 36500`
# (every request verifies a CSR and signs a new certificate), 64 concurrent connections,
# generator on the same machine. Prints the load report, then the crypto bound from
# `openssl speed ecdsap256` measured in the same run (one verify and one sign per
# certificate, on every core) and the ratio to it.
#
#   bash scripts/bench-load.sh            # DEVICES=2000 DURATION=10 CONCURRENCY=64
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
cd "$ROOT"
DEVICES=${DEVICES:-2000}
DURATION=${DURATION:-10}
CONCURRENCY=${CONCURRENCY:-64}

cargo build --release -p provisioner >&2
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/provisioner"
WORK=$(mktemp -d)
SERVE_PID=
cleanup() {
  if [[ -n $SERVE_PID ]]; then kill "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" device fleet --count "$DEVICES" --out "$WORK/fleet" >/dev/null
"$BIN" import "$WORK/fleet/manifest.csv" --data-dir "$WORK/data" --json >/dev/null
PROVISIONER_LOG=warn "$BIN" serve --data-dir "$WORK/data" --listen 127.0.0.1:0 \
  --rate-limit 0 --failed-rate-limit 0 --renew-within-days 36500 >"$WORK/serve.out" &
SERVE_PID=$!
for _ in $(seq 100); do
  grep -q '^listening on ' "$WORK/serve.out" 2>/dev/null && break
  sleep 0.1
done
URL=$(sed -n 's/^listening on //p' "$WORK/serve.out" | head -n1)
[[ -n $URL ]] || { echo "bench-load: serve did not start" >&2; exit 1; }

"$BIN" device load --url "$URL" --fleet "$WORK/fleet" --concurrency "$CONCURRENCY" \
  --duration "$DURATION" >"$WORK/load.json"
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true; SERVE_PID=

SPEED=$(openssl speed -seconds 3 ecdsap256 2>/dev/null | grep '(nistp256)')
python3 - "$WORK/load.json" "$SPEED" "$(nproc)" <<'PY'
import json, sys
load = json.load(open(sys.argv[1]))
fields = sys.argv[2].split()
sign, verify, cores = float(fields[-2]), float(fields[-1]), int(sys.argv[3])
bound = cores / (1 / sign + 1 / verify)
print(json.dumps(load))
print(f"new certificates/s: {load['throughput']:.0f} (p50 {load['p50_ms']:.1f} ms, p95 {load['p95_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms)")
print(f"openssl speed ecdsap256: {sign:.0f} sign/s, {verify:.0f} verify/s per core; crypto bound on {cores} cores: {bound:.0f} certificates/s")
print(f"issuance_ratio_vs_crypto_bound={load['throughput'] / bound:.3f}")
PY
