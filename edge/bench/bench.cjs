// Measures the compiled edge handler's invocations per second on one thread: a
// viewer-request POST /new carrying the `openssl_p256_der_b64` vector (each invocation
// is one full verification plus normalisation), a short warm-up, then ~N s of awaited
// calls. Prints `edge handler (node) verify/s: N`, then the bare wasm verifyCsr's rate on
// the same header, `wasm verifyCsr (node) verify/s: N` (the handler's own overhead is the
// difference). Run through scripts/bench-edge.sh, which also measures the native verifier:
//
//   node edge/bench/bench.cjs [seconds]
'use strict';
const path = require('node:path');
const { BUILD, vectors, newRequest } = require('../test/fixtures.cjs');

const { handler } = require(path.join(BUILD, 'index.js'));
const { verifyCsr } = require(path.join(BUILD, 'provisioner_verifier_wasm.js'));
const vector = vectors.csr.find((v) => v.name === 'openssl_p256_der_b64');
const event = newRequest(vector.header);
const seconds = Number(process.argv[2] || 3);

/** The handler's invocation, checked: a refusal would time the wrong path. */
async function invoke() {
  const result = await handler(event);
  if (result.headers['x-device-id']?.[0]?.value !== vector.expect.deviceId) {
    throw new Error('the vector was not forwarded: timing the wrong path');
  }
}

/** Calls `call` for `ms` milliseconds; returns [calls, elapsed seconds]. */
async function run(call, ms) {
  const start = process.hrtime.bigint();
  const end = start + BigInt(ms) * 1_000_000n;
  let calls = 0;
  let now = start;
  while (now < end) {
    await call();
    calls += 1;
    now = process.hrtime.bigint();
  }
  return [calls, Number(now - start) / 1e9];
}

(async () => {
  await run(invoke, 500); // warm-up: lets V8 tier the wasm up
  const [calls, elapsed] = await run(invoke, seconds * 1000);
  console.log(`edge handler (node) verify/s: ${Math.round(calls / elapsed)}`);
  const [bare, bareElapsed] = await run(async () => verifyCsr(vector.header), seconds * 1000);
  console.log(`wasm verifyCsr (node) verify/s: ${Math.round(bare / bareElapsed)}`);
})().catch((err) => { console.error(err); process.exit(1); });
