// Shared test support: CloudFront viewer-request event builders (the structure of
// https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/lambda-event-structure.html),
// the csr vectors of core/tests/vectors/vectors.json with the rule this build follows for
// them, and checks for what a handler returns.
'use strict';
const assert = require('node:assert/strict');
const path = require('node:path');

const EDGE = path.join(__dirname, '..');
const BUILD = path.join(EDGE, 'dist', 'build');
const ZIP = path.join(EDGE, 'dist', 'edge.zip');
const vectors = require('../../core/tests/vectors/vectors.json');

let requestCount = 0;

/**
 * A viewer-request event. `headers` is a list of [name as sent, value] pairs (a name may
 * repeat); CloudFront keys them by lower-cased name and keeps the spelling in `key`.
 */
function viewerRequest({ method = 'GET', uri = '/', querystring = '', headers = [], clientIp = '203.0.113.178' } = {}) {
  const all = [
    ['Host', 'd111111abcdef8.cloudfront.net'],
    ['User-Agent', 'provisioner-device/0.1'],
    ['Accept', 'application/json'],
    ...headers,
  ];
  const map = {};
  for (const [key, value] of all) {
    (map[key.toLowerCase()] ??= []).push({ key, value });
  }
  requestCount += 1;
  return {
    Records: [{
      cf: {
        config: {
          distributionDomainName: 'd111111abcdef8.cloudfront.net',
          distributionId: 'EDFDVBD6EXAMPLE',
          eventType: 'viewer-request',
          requestId: `4TyzHTaYWb1GX1qTfsHhEqV6HUDd_BzoBZnwfnvQc_1oF26Clk${String(requestCount).padStart(6, '0')}==`,
        },
        request: { clientIp, headers: map, method, querystring, uri },
      },
    }],
  };
}

/** A device's `POST /new` carrying `csr` (omitted when undefined) plus extra headers. */
function newRequest(csr, extra = [], querystring = '') {
  const headers = csr === undefined ? [...extra] : [['device-csr', csr], ...extra];
  return viewerRequest({ method: 'POST', uri: '/new', querystring, headers });
}

const P384_SPKI_PREFIX = 'MHYwEAYHKoZIzj0CAQYFK4EEACI';

/** What the default (P-256 only) wasm build answers: the vector's expectation, except
 *  P-384 keys are refused unsupported_key (as verifier-wasm/js/package.test.cjs). */
function expected(vector) {
  const key = vector.expect.publicKey;
  if (typeof key === 'string' && key.startsWith(P384_SPKI_PREFIX)) {
    return { error: 'unsupported_key', status: 400 };
  }
  return vector.expect;
}

/** Asserts `result` is a generated response refusing with `status` and `error`. */
function assertRefused(result, status, error, name = '') {
  assert.equal(result.uri, undefined, `${name}: forwarded instead of refused`);
  assert.equal(result.status, String(status), `${name}: status`);
  assert.equal(typeof result.statusDescription, 'string');
  assert.ok(result.statusDescription.length > 0, `${name}: empty statusDescription`);
  assert.deepEqual(result.headers, {
    'content-type': [{ key: 'Content-Type', value: 'application/json' }],
    'cache-control': [{ key: 'Cache-Control', value: 'no-store' }],
  });
  const body = JSON.parse(result.body);
  assert.deepEqual(Object.keys(body).sort(), ['error', 'message'], `${name}: body keys`);
  assert.equal(body.error, error, `${name}: error code`);
  assert.ok(typeof body.message === 'string' && body.message.length > 0, `${name}: empty message`);
}

/** The only value of a forwarded request's header, asserting there is exactly one. */
function single(request, name) {
  const values = request.headers[name];
  assert.ok(Array.isArray(values) && values.length === 1, `${name}: ${JSON.stringify(values)}`);
  return values[0].value;
}

module.exports = { BUILD, ZIP, vectors, viewerRequest, newRequest, expected, assertRefused, single };
