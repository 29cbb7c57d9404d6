#!/usr/bin/env bash
# Compares the edge handler's single-threaded throughput in Node (edge/bench/bench.cjs:
# POST /new viewer-request events on the openssl_p256_der_b64 vector, ~3 s; it also times
# the bare wasm verifyCsr, so the handler's own overhead shows) with the native verifier's (`verify_header (ring) verify/s` from
# `cargo bench -p provisioner-core --bench verify`, same vector, same run; about 40 s).
# Builds the edge function first. The last line is `edge_verify_ratio_vs_native=<x.xx>`;
# exits non-zero if a figure cannot be parsed.
#
#   bash scripts/bench-edge.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
cd "$ROOT"

bash scripts/build-edge.sh

node_out=$(node edge/bench/bench.cjs 3)
echo "$node_out"
edge=$(awk -F': ' '/^edge handler \(node\) verify\/s:/ { print $2 }' <<<"$node_out")
bare=$(awk -F': ' '/^wasm verifyCsr \(node\) verify\/s:/ { print $2 }' <<<"$node_out")

bench_out=$(cargo bench -p provisioner-core --bench verify 2>/dev/null) || {
  echo "bench-edge: cargo bench -p provisioner-core --bench verify failed" >&2; exit 1; }
grep -E 'verify/s' <<<"$bench_out" || true
native=$(awk -F': ' '/^verify_header \(ring\) verify\/s:/ { print $2 }' <<<"$bench_out")
for figure in "$edge" "$bare" "$native"; do
  [[ $figure =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "bench-edge: could not parse a verify/s figure ('$figure')" >&2; exit 1; }
done
awk -v e="$edge" -v b="$bare" 'BEGIN { printf "edge_handler_ratio_vs_bare_wasm=%.2f\n", e / b }'
awk -v e="$edge" -v n="$native" 'BEGIN { printf "edge_verify_ratio_vs_native=%.2f\n", e / n }'
