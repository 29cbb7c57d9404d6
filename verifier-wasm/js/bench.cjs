// Measures single-threaded verifyCsr throughput of the optimised Node build (../pkg/node/)
// on the `openssl_p256_der_b64` vector's header: a short warm-up, then ~3 s of calls.
// Prints `wasm verifyCsr (node) verify/s: N`. Usually run through scripts/bench-wasm.sh,
// which also compares against `openssl speed ecdsap256`:
//
//   node verifier-wasm/js/bench.cjs [seconds]
'use strict';
const path = require('node:path');
const { verifyCsr } = require(path.join(__dirname, '..', 'pkg', 'node', 'provisioner_verifier_wasm.js'));
const vectors = require('../../core/tests/vectors/vectors.json');

const vector = vectors.csr.find((v) => v.name === 'openssl_p256_der_b64');
const seconds = Number(process.argv[2] || 3);

// Fails loudly (rather than timing the refusal path) if the vector no longer verifies.
if (verifyCsr(vector.header).deviceId !== vector.expect.deviceId) {
  throw new Error('openssl_p256_der_b64 did not verify');
}

/** Calls verifyCsr for `ms` milliseconds; returns [calls, elapsed seconds]. */
function run(ms) {
  const start = process.hrtime.bigint();
  const end = start + BigInt(ms) * 1_000_000n;
  let calls = 0;
  let now = start;
  while (now < end) {
    verifyCsr(vector.header);
    calls += 1;
    now = process.hrtime.bigint();
  }
  return [calls, Number(now - start) / 1e9];
}

run(500); // warm-up: lets V8 tier the wasm up
const [calls, elapsed] = run(seconds * 1000);
console.log(`wasm verifyCsr (node) verify/s: ${Math.round(calls / elapsed)}`);
