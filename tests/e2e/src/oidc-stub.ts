// A stand-in for Cognito's hosted UI and user pool, just enough for the dashboard's
// sign-in end to end: `GET /oauth2/authorize` (approves at once: redirects back with a
// code), `POST /oauth2/token` (the code and its PKCE verifier for an RS256 ID token
// carrying Cognito's claims), `GET /.well-known/jwks.json` (what `provisioner serve`
// checks the token's signature with), and `GET /logout`. It listens on 127.0.0.1 on a
// free port; its base URL is the issuer (`iss`), as a user pool's is
// `https://cognito-idp.REGION.amazonaws.com/POOL_ID`. Every deviation from the protocol
// the dashboard must follow is refused and recorded in `problems`.

import { createHash, generateKeyPairSync, randomBytes, randomUUID, sign, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the stub saw, for the test to assert on. */
export interface StubCalls {
  authorize: number;
  /** Token requests whose code and PKCE verifier were good (an ID token was issued). */
  tokensIssued: number;
  jwks: number;
  logout: { clientId: string; logoutUri: string }[];
  /** Requests refused, and why. */
  problems: string[];
}

export interface OidcStub {
  /** `http://127.0.0.1:PORT`: the issuer, and the hosted UI's domain. */
  baseUrl: string;
  clientId: string;
  calls: StubCalls;
  /** The dashboard's callback (`ORIGIN/`), known once `serve` listens. */
  expectRedirect(uri: string): void;
  /** The last ID token issued. */
  lastIdToken(): string | undefined;
  close(): Promise<void>;
}

interface IssuedCode {
  challenge: string;
  redirectUri: string;
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => {
      body += chunk;
    });
    request.on('end', () => resolve(body));
    request.on('error', reject);
  });
}

function idToken(key: KeyObject, kid: string, issuer: string, clientId: string): string {
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: 'RS256', kid, typ: 'JWT' };
  // The claims of a Cognito ID token that the service reads (and a few it ignores).
  const claims = {
    sub: randomUUID(),
    'cognito:username': 'e2e-admin',
    email: 'e2e-admin@example.test',
    iss: issuer,
    aud: clientId,
    token_use: 'id',
    auth_time: now,
    iat: now,
    exp: now + 3600,
  };
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  const signature = sign('sha256', Buffer.from(input), key); // RSASSA-PKCS1-v1_5: RS256
  return `${input}.${base64url(signature)}`;
}

/** Starts the stub for the app client `clientId`. */
export async function startOidcStub(clientId: string): Promise<OidcStub> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = `e2e-${randomBytes(4).toString('hex')}`;
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  const codes = new Map<string, IssuedCode>();
  const calls: StubCalls = { authorize: 0, tokensIssued: 0, jwks: 0, logout: [], problems: [] };
  let redirect: string | undefined;
  let issued: string | undefined;
  let baseUrl = '';

  const refuse = (response: ServerResponse, status: number, why: string, json = false): void => {
    calls.problems.push(why);
    if (json) {
      response.writeHead(status, { 'content-type': 'application/json', ...cors(redirect) });
      response.end(JSON.stringify({ error: 'invalid_request', error_description: why }));
    } else {
      response.writeHead(status, { 'content-type': 'text/plain' });
      response.end(`${why}\n`);
    }
  };

  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', baseUrl);
    const route = `${request.method ?? 'GET'} ${url.pathname}`;
    if (route === 'GET /oauth2/authorize') {
      calls.authorize += 1;
      const q = url.searchParams;
      if (q.get('client_id') !== clientId) return refuse(response, 400, `authorize: client_id ${q.get('client_id')}`);
      if (redirect === undefined || q.get('redirect_uri') !== redirect) {
        return refuse(response, 400, `authorize: redirect_uri ${q.get('redirect_uri')} (expected ${redirect})`);
      }
      if (q.get('response_type') !== 'code') return refuse(response, 400, `authorize: response_type ${q.get('response_type')}`);
      if (q.get('code_challenge_method') !== 'S256') {
        return refuse(response, 400, `authorize: code_challenge_method ${q.get('code_challenge_method')}`);
      }
      const challenge = q.get('code_challenge') ?? '';
      if (!/^[A-Za-z0-9_-]{43}$/.test(challenge)) return refuse(response, 400, `authorize: code_challenge ${challenge}`);
      if (!(q.get('scope') ?? '').split(' ').includes('openid')) return refuse(response, 400, 'authorize: no openid scope');
      const state = q.get('state');
      if (state === null || state === '') return refuse(response, 400, 'authorize: no state');
      const code = randomBytes(16).toString('hex');
      codes.set(code, { challenge, redirectUri: redirect });
      const back = new URL(redirect);
      back.searchParams.set('code', code);
      back.searchParams.set('state', state);
      response.writeHead(302, { location: back.toString() });
      response.end();
      return;
    }
    if (route === 'OPTIONS /oauth2/token') {
      response.writeHead(204, { ...cors(redirect), 'access-control-allow-methods': 'POST', 'access-control-allow-headers': 'content-type' });
      response.end();
      return;
    }
    if (route === 'POST /oauth2/token') {
      void readBody(request).then((body) => {
        const form = new URLSearchParams(body);
        if (!(request.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
          return refuse(response, 400, `token: content-type ${request.headers['content-type']}`, true);
        }
        if (form.get('grant_type') !== 'authorization_code') return refuse(response, 400, `token: grant_type ${form.get('grant_type')}`, true);
        if (form.get('client_id') !== clientId) return refuse(response, 400, `token: client_id ${form.get('client_id')}`, true);
        const code = form.get('code') ?? '';
        const known = codes.get(code);
        codes.delete(code); // single use, as Cognito's
        if (known === undefined) return refuse(response, 400, 'token: unknown or used code', true);
        if (form.get('redirect_uri') !== known.redirectUri) return refuse(response, 400, `token: redirect_uri ${form.get('redirect_uri')}`, true);
        const verifier = form.get('code_verifier') ?? '';
        const computed = createHash('sha256').update(verifier, 'ascii').digest('base64url');
        if (verifier.length < 43 || computed !== known.challenge) {
          return refuse(response, 400, 'token: code_verifier does not match the code_challenge', true);
        }
        calls.tokensIssued += 1;
        issued = idToken(privateKey, kid, baseUrl, clientId);
        response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', ...cors(redirect) });
        response.end(JSON.stringify({ id_token: issued, access_token: 'opaque-access-token', token_type: 'Bearer', expires_in: 3600 }));
      });
      return;
    }
    if (route === 'GET /.well-known/jwks.json') {
      calls.jwks += 1;
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ keys: [jwk] }));
      return;
    }
    if (route === 'GET /logout') {
      const clientIdSent = url.searchParams.get('client_id') ?? '';
      const logoutUri = url.searchParams.get('logout_uri') ?? '';
      calls.logout.push({ clientId: clientIdSent, logoutUri });
      if (clientIdSent !== clientId || logoutUri !== redirect) {
        return refuse(response, 400, `logout: client_id ${clientIdSent}, logout_uri ${logoutUri}`);
      }
      response.writeHead(302, { location: logoutUri });
      response.end();
      return;
    }
    refuse(response, 404, `no route ${route}`);
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  baseUrl = `http://127.0.0.1:${port}`;
  return {
    baseUrl,
    clientId,
    calls,
    expectRedirect(uri: string) {
      redirect = uri;
    },
    lastIdToken: () => issued,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Cognito's token endpoint answers browsers of the app's origin. */
function cors(redirect: string | undefined): Record<string, string> {
  return redirect === undefined ? {} : { 'access-control-allow-origin': new URL(redirect).origin };
}
