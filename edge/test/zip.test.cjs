// Tests the deployable edge/dist/edge.zip as Lambda@Edge would load it: under the 1 MB
// viewer-trigger limit, everything at the root, extracted to a temporary directory
// outside the tree (python3's zipfile) and `index.handler` required from there; the wasm
// is instantiated once when the module loads, not per invocation.
//
//   bash scripts/test-edge.sh
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { ZIP, vectors, viewerRequest, newRequest, assertRefused, single } = require('./fixtures.cjs');

const LIMIT_BYTES = 1024 * 1024;

function unzip(zip) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-zip-'));
  execFileSync('python3', ['-c', 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])', zip, dir]);
  return dir;
}

test('the zip is under 1 MB and holds index.js, the bindings and the wasm at its root', () => {
  const size = fs.statSync(ZIP).size;
  assert.ok(size <= LIMIT_BYTES, `edge.zip is ${size} bytes`);
  const names = JSON.parse(execFileSync('python3', ['-c',
    'import json, sys, zipfile; print(json.dumps(zipfile.ZipFile(sys.argv[1]).namelist()))', ZIP]));
  for (const name of ['index.js', 'provisioner_verifier_wasm.js', 'provisioner_verifier_wasm_bg.wasm']) {
    assert.ok(names.includes(name), `edge.zip lacks ${name}: ${names}`);
  }
  assert.deepEqual(names.filter((n) => n.includes('/')), [], 'entries below the root');
});

test('the extracted index.handler decides, instantiating the wasm once per container', async (t) => {
  const dir = unzip(ZIP);
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const Original = WebAssembly.Instance;
  let instances = 0;
  WebAssembly.Instance = new Proxy(Original, {
    construct(target, args) { instances += 1; return Reflect.construct(target, args); },
  });
  t.after(() => { WebAssembly.Instance = Original; });

  const { handler } = require(path.join(dir, 'index.js'));
  assert.equal(typeof handler, 'function');
  assert.equal(instances, 1, 'loading index.js should instantiate the wasm once');

  const good = vectors.csr.find((v) => v.name === 'openssl_p256_der_b64');
  const bad = vectors.csr.find((v) => v.name === 'bad_signature');
  for (let i = 0; i < 20; i += 1) {
    const forwarded = await handler(newRequest(good.header, [['X-Device-Id', 'spoof']]));
    assert.equal(single(forwarded, 'x-device-id'), good.expect.deviceId);
    assert.equal(single(forwarded, 'device-csr'), good.header);
    assertRefused(await handler(newRequest(bad.header)), 403, 'bad_signature');
    const health = viewerRequest({ uri: '/healthz', headers: [['X-Device-Id', 'spoof']] });
    assert.equal((await handler(health)).headers['x-device-id'], undefined);
  }
  assert.equal(instances, 1, 'invocations must not instantiate the wasm again');
});
