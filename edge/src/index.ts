// Lambda@Edge viewer-request handler for the provisioning endpoint (the edge verifier step
// of the design): rejects garbage before the origin sees it.
//
// - POST /new: the `device-csr` header is verified by verifier-wasm (decoding, parsing,
//   proof of possession, device-id rule, no requested subjectAltName). A refusal is
//   answered at the edge with the contract's status and JSON `{error, message}`. An
//   accepted CSR is forwarded with the header normalised to base64 (standard, padded) of
//   its DER and `x-device-id` set to its CN. More than one `device-csr` value is refused
//   (400 malformed_header): which one the origin would read is not ours to guess.
// - Every other method and path passes through untouched, except:
// - A client-sent `x-device-id` is removed on every path, not only /new, so a spoofed
//   value never reaches the origin whatever the origin's routes or authorizer do. It is
//   a header only this function may set; no client has a reason to send it.
//
// Lambda@Edge has no environment variables: the policy is fixed here at build time. So the
// edge cannot know the origin's issuance mode, and leaves iot-core's `subject_not_cn_only`
// check (a subject holding more than the CN) to the origin.
// `createHandler` builds a handler for another policy (the tests use it).
import { STATUS_CODES } from 'node:http';
import type { CfHeaders, CfRequest, CfRequestEvent, CfResponse } from './cloudfront';
import { fingerprint, headerToDer, verify, type Policy } from './verifier';

/** The deployed policy: P-256 only (the default verifier-wasm build has no P-384). */
export const POLICY: Policy = { allowP384: false };

const CSR_HEADER = 'device-csr';
const ID_HEADER = 'x-device-id';

/** A response generated at the edge with JSON `{error, message}`, never cached. */
function refuse(status: number, error: string, message: string): CfResponse {
  return {
    status: String(status),
    statusDescription: STATUS_CODES[status] ?? 'Error',
    headers: {
      'content-type': [{ key: 'Content-Type', value: 'application/json' }],
      'cache-control': [{ key: 'Cache-Control', value: 'no-store' }],
    },
    body: JSON.stringify({ error, message }),
  };
}

/** The request with `headers` replaced (the event itself is never mutated). */
function withHeaders(request: CfRequest, headers: CfHeaders): CfRequest {
  return { ...request, headers };
}

/** Decides one viewer request: the request to forward, or the answer to give. */
export function decide(request: CfRequest, policy: Policy): CfRequest | CfResponse {
  const { [ID_HEADER]: spoofed, ...headers } = request.headers;
  if (request.method !== 'POST' || request.uri !== '/new') {
    return spoofed === undefined ? request : withHeaders(request, headers);
  }
  const values = headers[CSR_HEADER] ?? [];
  if (values.length > 1) {
    return refuse(400, 'malformed_header', 'send exactly one device-csr header');
  }
  const header = values[0]?.value ?? '';
  const outcome = verify(header, policy);
  if (!outcome.ok) {
    const { status, error, message } = outcome.refusal;
    return refuse(status, error, message);
  }
  const der = headerToDer(header);
  if (der === undefined || fingerprint(der) !== outcome.csr.fingerprint) {
    // Cannot happen while this decoder matches core's; fail closed if it ever does not.
    console.error('edge: accepted CSR did not normalise to the verified DER', outcome.csr.fingerprint);
    return refuse(500, 'internal_error', 'the edge failed; the error is logged');
  }
  return withHeaders(request, {
    ...headers,
    [CSR_HEADER]: [{ key: CSR_HEADER, value: der.toString('base64') }],
    [ID_HEADER]: [{ key: ID_HEADER, value: outcome.csr.deviceId }],
  });
}

/** A viewer-request handler applying `policy`. */
export function createHandler(policy: Policy): (event: CfRequestEvent) => Promise<CfRequest | CfResponse> {
  return async (event) => {
    const record = event.Records[0];
    if (record === undefined) throw new Error('not a CloudFront viewer-request event');
    return decide(record.cf.request, policy);
  };
}

/** The Lambda@Edge entry point (`index.handler`). */
export const handler = createHandler(POLICY);
