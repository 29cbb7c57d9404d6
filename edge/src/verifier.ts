// The typed face of verifier-wasm for the edge handler, and the header-to-DER decoding
// the handler needs to forward a canonical header (the verifier returns no DER).
//
// The wasm-bindgen `--target nodejs` bindings compile and instantiate the module
// synchronously when required, so the `require` below runs once per container, at cold
// start, never per request. They are required relative to this file: scripts/build-edge.sh
// puts them next to the compiled JS (dist/build/ and the zip's root).
import { createHash } from 'node:crypto';

/** What verifyCsr returns for an accepted CSR. */
export interface Verified {
  deviceId: string;
  publicKey: string;
  fingerprint: string;
  signatureAlgorithm: string;
}

/** What verifyCsr throws for a refused one: the contract's code and HTTP status. */
export interface Refusal {
  error: string;
  status: number;
  message: string;
}

/** The issuance profile's part the edge applies. */
export interface Policy {
  allowP384: boolean;
}

export type Outcome = { ok: true; csr: Verified } | { ok: false; refusal: Refusal };

// The wasm boundary: untyped in, checked by the guards below on the way out.
interface Bindings {
  verifyCsr(header: string, options: unknown): unknown;
}
const bindings = require('./provisioner_verifier_wasm.js') as Bindings;

function hasStrings(value: unknown, names: string[]): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null &&
    names.every((name) => typeof (value as Record<string, unknown>)[name] === 'string');
}

function isVerified(value: unknown): value is Verified {
  return hasStrings(value, ['deviceId', 'publicKey', 'fingerprint', 'signatureAlgorithm']);
}

function isRefusal(value: unknown): value is Refusal {
  return hasStrings(value, ['error', 'message']) && Number.isInteger(value['status']);
}

/**
 * Verifies a `device-csr` header value: decoding, parsing, proof of possession, device id.
 * Anything thrown that is not a refusal (a wasm trap, a bindings bug) is rethrown: it is
 * not a decision about the device.
 */
export function verify(header: string, policy: Policy): Outcome {
  let result: unknown;
  try {
    result = bindings.verifyCsr(header, { allowP384: policy.allowP384 });
  } catch (thrown: unknown) {
    if (isRefusal(thrown)) return { ok: false, refusal: thrown };
    throw thrown;
  }
  if (!isVerified(result)) throw new Error('verifyCsr returned an unexpected shape');
  return { ok: true, csr: result };
}

const STANDARD = /^[A-Za-z0-9+/]*={0,2}$/;
const URL_SAFE = /^[A-Za-z0-9_-]*={0,2}$/;

/** Base64 in either alphabet, padding optional, as core's `decode_base64`. */
function decodeBase64(text: string): Buffer | undefined {
  const urlSafe = /[-_]/.test(text);
  if (!(urlSafe ? URL_SAFE : STANDARD).test(text)) return undefined;
  const body = text.replace(/=+$/, '');
  if (body.length % 4 === 1) return undefined;
  return Buffer.from(body, urlSafe ? 'base64url' : 'base64');
}

/** The DER inside PEM text: the base64 lines between its BEGIN and END lines. */
function pemToDer(text: string): Buffer | undefined {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const end = lines.findIndex((line) => line.startsWith('-----END'));
  if (!lines[0]?.startsWith('-----BEGIN') || end < 1) return undefined;
  return decodeBase64(lines.slice(1, end).join(''));
}

/**
 * The CSR's DER from a header value, decoded as core's `decode_header` does: trimmed,
 * base64 (standard or URL-safe, padding optional) of the DER or of PEM text. Undefined
 * for a value core would refuse (callers verify first, so that is a bug, not a device).
 */
export function headerToDer(value: string): Buffer | undefined {
  const bytes = decodeBase64(value.trim());
  if (bytes === undefined || bytes.length === 0) return undefined;
  if (bytes[0] === 0x30) return bytes;
  const text = bytes.toString('latin1');
  return text.startsWith('-----BEGIN') ? pemToDer(text) : undefined;
}

/** Where a DER element's contents start and where it ends, or undefined if truncated. */
function element(der: Uint8Array, at: number): { start: number; end: number } | undefined {
  const first = der[at + 1];
  if (first === undefined) return undefined;
  let start = at + 2;
  let length = first;
  if (first & 0x80) {
    const count = first & 0x7f;
    if (count < 1 || count > 3) return undefined;
    length = 0;
    for (let i = 0; i < count; i += 1) {
      const byte = der[start + i];
      if (byte === undefined) return undefined;
      length = length * 256 + byte;
    }
    start += count;
  }
  const end = start + length;
  return end <= der.length ? { start, end } : undefined;
}

/**
 * The contract's CSR fingerprint: hex SHA-256 of the CertificationRequestInfo, the first
 * element of the outer SEQUENCE. Undefined unless `der` is exactly one SEQUENCE holding one.
 */
export function fingerprint(der: Uint8Array): string | undefined {
  const outer = der[0] === 0x30 ? element(der, 0) : undefined;
  if (outer === undefined || outer.end !== der.length || der[outer.start] !== 0x30) return undefined;
  const info = element(der, outer.start);
  if (info === undefined) return undefined;
  return createHash('sha256').update(der.subarray(outer.start, info.end)).digest('hex');
}
