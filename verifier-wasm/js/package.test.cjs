// Checks the OPTIMISED built package (the wasm-opt output the edge function ships, in
// ../pkg/node/) against every vector in core/tests/vectors/vectors.json: the `csr`,
// `keys` and `authorize` sections. Refusals must be plain objects
// {error: string, status: number, message: non-empty string}. The default build has no
// P-384, so a vector expecting a P-384 key must throw unsupported_key (400), the rule
// of verifier-wasm/tests/common/mod.rs. Also checks the ../pkg/web/ build's files exist
// and its .wasm compiles in Node with the expected exports.
//
//   bash scripts/build-wasm.sh && node --test verifier-wasm/js/
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const PKG = path.join(__dirname, '..', 'pkg');
const wasm = require(path.join(PKG, 'node', 'provisioner_verifier_wasm.js'));
const vectors = require('../../core/tests/vectors/vectors.json');

const P384_SPKI_PREFIX = 'MHYwEAYHKoZIzj0CAQYFK4EEACI';

/** What this build must answer: the vector's expectation, except P-384 keys are refused. */
function expected(vector) {
  const key = vector.expect.publicKey;
  if (typeof key === 'string' && key.startsWith(P384_SPKI_PREFIX)) {
    return { error: 'unsupported_key', status: 400 };
  }
  return vector.expect;
}

/** Runs `call` and returns its result, or the thrown refusal as {error, status}. */
function outcome(name, call) {
  try {
    return call();
  } catch (err) {
    assert.ok(
      err !== null && typeof err === 'object' && Object.getPrototypeOf(err) === Object.prototype,
      `${name}: threw ${err}, not a plain object`,
    );
    assert.equal(typeof err.error, 'string', `${name}: error is not a string`);
    assert.equal(typeof err.status, 'number', `${name}: status is not a number`);
    assert.ok(typeof err.message === 'string' && err.message.length > 0, `${name}: empty message`);
    return { error: err.error, status: err.status };
  }
}

function options(vector) {
  return { allowP384: vector.allowP384 === true, subjectCnOnly: vector.subjectCnOnly === true };
}

function checkSection(section, minimum, run) {
  const list = vectors[section];
  assert.ok(list.length >= minimum, `${section}: only ${list.length} vectors`);
  for (const vector of list) {
    const got = outcome(vector.name, () => run(vector));
    assert.deepStrictEqual(got, expected(vector), `${section} vector "${vector.name}"`);
  }
}

test('csr: every vector gets its expected decision', () => {
  checkSection('csr', 30, (v) => ({ ...wasm.verifyCsr(v.header, options(v)) }));
});

test('keys: every vector normalises as expected', () => {
  checkSection('keys', 15, (v) => ({ publicKey: wasm.normalizePublicKey(v.input) }));
});

test('authorize: every vector gets its expected decision', () => {
  checkSection('authorize', 8, (v) => ({ ...wasm.authorize(v.header, v.registeredKey, options(v)) }));
});

test('web: the browser build exists and its wasm compiles with the expected exports', async () => {
  const dir = path.join(PKG, 'web');
  for (const file of ['provisioner_verifier_wasm.js', 'provisioner_verifier_wasm.d.ts',
    'provisioner_verifier_wasm_bg.wasm']) {
    assert.ok(fs.existsSync(path.join(dir, file)), `pkg/web/${file} is missing`);
  }
  const module = await WebAssembly.compile(fs.readFileSync(path.join(dir, 'provisioner_verifier_wasm_bg.wasm')));
  const exports = WebAssembly.Module.exports(module).map((e) => e.name);
  for (const name of ['verifyCsr', 'authorize', 'normalizePublicKey', 'memory']) {
    assert.ok(exports.includes(name), `pkg/web wasm lacks export ${name}; has ${exports.join(', ')}`);
  }
});
