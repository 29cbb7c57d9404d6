#!/usr/bin/env bash
# Compares the wasm verifier's single-threaded verifyCsr throughput in Node (on the
# openssl_p256_der_b64 vector, via verifier-wasm/js/bench.cjs) with
# `openssl speed ecdsap256` verify/s. Builds the wasm first if verifier-wasm/pkg/node is
# missing. The last line is `wasm_verify_ratio_vs_openssl=<x.xx>`; exits non-zero if
# openssl's figure cannot be parsed.
#
#   bash scripts/bench-wasm.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

[[ -d verifier-wasm/pkg/node ]] || bash scripts/build-wasm.sh

wasm_line=$(node verifier-wasm/js/bench.cjs 3)
echo "$wasm_line"
wasm=${wasm_line##*: }

# The results line reads: " 256 bits ecdsa (nistp256)   0.0000s   0.0001s  36913.0  12589.8"
openssl=$(openssl speed -seconds 3 ecdsap256 2>/dev/null | awk '/\(nistp256\)/ { v = $NF } END { print v }') || true
if ! [[ $openssl =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
  echo "bench-wasm: could not parse verify/s from 'openssl speed ecdsap256'" >&2
  exit 1
fi
echo "openssl speed ecdsap256 verify/s: $openssl"
awk -v w="$wasm" -v o="$openssl" 'BEGIN { printf "wasm_verify_ratio_vs_openssl=%.2f\n", w / o }'
