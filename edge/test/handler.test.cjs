// Tests the compiled handler (edge/dist/build/, built by scripts/build-edge.sh) on
// CloudFront viewer-request events: every csr vector of core/tests/vectors/vectors.json
// gets the native verifier's decision (refusals answered at the edge with the contract's
// status and {error, message}; accepted CSRs forwarded with a canonical base64 DER
// device-csr and x-device-id = the CN), other paths and methods pass through untouched,
// and a client-sent x-device-id never reaches the origin on any path.
//
//   bash scripts/test-edge.sh
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { STATUS_CODES } = require('node:http');
const path = require('node:path');
const { BUILD, vectors, viewerRequest, newRequest, expected, assertRefused, single } = require('./fixtures.cjs');

const edge = require(path.join(BUILD, 'index.js'));
const wasm = require(path.join(BUILD, 'provisioner_verifier_wasm.js'));
const SPOOF = ['X-Device-Id', 'spoofed-admin-device'];
const CANONICAL_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Runs `handler` on `event` and checks the event was not mutated. */
async function run(handler, event) {
  const before = structuredClone(event);
  const result = await handler(event);
  assert.deepEqual(event, before, 'the handler mutated its event');
  return result;
}

/** The request with its x-device-id removed: all a pass-through may change. */
function withoutId(request) {
  const { 'x-device-id': _, ...headers } = request.headers;
  return { ...request, headers };
}

test('csr: every vector gets the native decision, with and without a spoofed x-device-id', async () => {
  const counts = { forwarded: 0, refused: 0 };
  // The subjectCnOnly vectors are issuance mode iot-core's policy, which the edge cannot
  // know (no environment at the edge): see the test on subject attributes below.
  for (const vector of vectors.csr.filter((v) => v.subjectCnOnly !== true)) {
    const handler = edge.createHandler({ allowP384: vector.allowP384 === true });
    const want = expected(vector);
    for (const extra of [[], [SPOOF]]) {
      const name = `${vector.name}${extra.length ? ' (spoofed x-device-id)' : ''}`;
      const event = newRequest(vector.header, extra, 'delivery=url');
      const result = await run(handler, event);
      if (want.error !== undefined) {
        assertRefused(result, want.status, want.error, name);
        assert.equal(result.statusDescription, STATUS_CODES[want.status]);
        counts.refused += 1;
        continue;
      }
      const input = event.Records[0].cf.request;
      // Only device-csr and x-device-id differ from the viewer's request.
      const strip = (r) => {
        const { 'device-csr': _c, 'x-device-id': _i, ...headers } = r.headers;
        return { ...r, headers };
      };
      assert.deepEqual(strip(result), strip(input), `${name}: other fields changed`);
      assert.equal(single(result, 'x-device-id'), want.deviceId, `${name}: x-device-id`);
      const forwarded = single(result, 'device-csr');
      assert.match(forwarded, CANONICAL_BASE64, `${name}: not canonical standard base64`);
      const der = Buffer.from(forwarded, 'base64');
      assert.equal(der.toString('base64'), forwarded, `${name}: not canonical`);
      assert.equal(der[0], 0x30, `${name}: not DER`);
      // Base64 of DER headers decode straight to the forwarded bytes (Node reads both alphabets).
      const raw = Buffer.from(vector.header.trim(), 'base64');
      if (raw[0] === 0x30) assert.ok(raw.equals(der), `${name}: DER differs from the header's`);
      const again = wasm.verifyCsr(forwarded, { allowP384: vector.allowP384 === true });
      assert.deepEqual({ ...again }, want, `${name}: the forwarded header verifies differently`);
      counts.forwarded += 1;
    }
  }
  assert.ok(vectors.csr.length >= 30, `only ${vectors.csr.length} csr vectors`);
  assert.ok(counts.forwarded >= 20 && counts.refused >= 20, JSON.stringify(counts));
});

test('the deployed handler is P-256 only', async () => {
  assert.deepEqual(edge.POLICY, { allowP384: false });
  const good = vectors.csr.find((v) => v.name === 'openssl_p256_der_b64');
  assert.equal(single(await edge.handler(newRequest(good.header)), 'x-device-id'), good.expect.deviceId);
  const p384 = vectors.csr.find((v) => v.name === 'openssl_p384_sha384_allowed');
  assertRefused(await edge.handler(newRequest(p384.header)), 400, 'unsupported_key');
});

test('POST /new without device-csr is missing_header; two values are malformed_header', async () => {
  const good = vectors.csr.find((v) => v.name === 'python_p256_der_b64').header;
  assertRefused(await run(edge.handler, newRequest(undefined, [SPOOF])), 400, 'missing_header');
  const two = newRequest(undefined, [['Device-CSR', good], ['device-csr', good]]);
  assertRefused(await run(edge.handler, two), 400, 'malformed_header');
  // The header name's case does not matter: CloudFront keys headers lower-cased.
  const mixed = await run(edge.handler, newRequest(undefined, [['Device-CSR', good]]));
  assert.equal(single(mixed, 'x-device-id'), 'sensor-pyca-0001');
});

test('a CSR requesting a subjectAltName is refused at the edge: 400 subject_alt_name_requested', async () => {
  const san = vectors.csr.filter((v) => v.expect.error === 'subject_alt_name_requested');
  assert.ok(san.length >= 3, `only ${san.length} subjectAltName vectors`);
  for (const vector of san) {
    const result = await run(edge.handler, newRequest(vector.header, [SPOOF]));
    assertRefused(result, 400, 'subject_alt_name_requested', vector.name);
    assert.equal(result.statusDescription, 'Bad Request');
    assert.match(JSON.parse(result.body).message, /subjectAltName/, vector.name);
  }
});

test('the edge cannot know the issuance mode: a subject with O and OU is forwarded for the origin to judge', async () => {
  const cnOnly = vectors.csr.find((v) => v.name === 'openssl_p256_ca_true_o_ou_subject_cn_only');
  assert.equal(cnOnly.expect.error, 'subject_not_cn_only');
  const result = await run(edge.handler, newRequest(cnOnly.header));
  assert.equal(single(result, 'x-device-id'), 'sensor-ca-0042');
});

test('a refusal is 403 Forbidden for a bad signature, JSON, not cacheable', async () => {
  const bad = vectors.csr.find((v) => v.name === 'bad_signature');
  const result = await run(edge.handler, newRequest(bad.header, [SPOOF]));
  assertRefused(result, 403, 'bad_signature');
  assert.equal(result.statusDescription, 'Forbidden');
});

test('other paths and methods pass through untouched; only a sent x-device-id is removed', async () => {
  const good = vectors.csr.find((v) => v.name === 'openssl_p256_der_b64').header;
  const cases = [
    { method: 'GET', uri: '/healthz' },
    { method: 'GET', uri: '/certificates/x', querystring: 'token=abc&expires=1700000000' },
    { method: 'POST', uri: '/other', headers: [['device-csr', good]] },
    { method: 'GET', uri: '/new', headers: [['device-csr', good]] },
    { method: 'PUT', uri: '/new', headers: [['device-csr', 'not base64!']] },
    { method: 'POST', uri: '/new/', headers: [['device-csr', 'not base64!']] },
    { method: 'POST', uri: '/NEW' },
  ];
  for (const shape of cases) {
    const name = `${shape.method} ${shape.uri}`;
    const clean = viewerRequest(shape);
    assert.equal(await run(edge.handler, clean), clean.Records[0].cf.request, `${name}: not the same request`);
    for (const spoof of [[SPOOF], [['x-device-id', 'a'], ['X-DEVICE-ID', 'b']]]) {
      const event = viewerRequest({ ...shape, headers: [...(shape.headers ?? []), ...spoof] });
      const input = event.Records[0].cf.request;
      assert.ok(input.headers['x-device-id'], 'fixture lacks the spoofed header');
      const result = await run(edge.handler, event);
      assert.deepEqual(result, withoutId(input), `${name}: changed beyond x-device-id`);
    }
  }
});

test('a spoofed x-device-id is replaced by the CN on an accepted POST /new', async () => {
  const good = vectors.csr.find((v) => v.name === 'openssl_p256_pem_b64');
  const event = newRequest(good.header, [['x-device-id', 'victim-0001'], SPOOF]);
  const result = await run(edge.handler, event);
  assert.deepEqual(result.headers['x-device-id'], [{ key: 'x-device-id', value: good.expect.deviceId }]);
});

test('the header-to-DER decoder and the fingerprint guard behind the forwarding', () => {
  const verifier = require(path.join(BUILD, 'verifier.js'));
  for (const vector of vectors.csr.filter((v) => v.expect.fingerprint !== undefined)) {
    const der = verifier.headerToDer(vector.header);
    assert.ok(der, `${vector.name}: not decoded`);
    assert.equal(verifier.fingerprint(der), vector.expect.fingerprint, vector.name);
    assert.equal(verifier.fingerprint(der.subarray(0, der.length - 1)), undefined, `${vector.name}: truncated`);
    assert.equal(verifier.fingerprint(Buffer.concat([der, Buffer.from([0])])), undefined, `${vector.name}: trailing`);
  }
  for (const name of ['header_raw_pem_one_line', 'header_not_base64', 'header_base64_of_text', 'header_empty']) {
    assert.equal(verifier.headerToDer(vectors.csr.find((v) => v.name === name).header), undefined, name);
  }
});
