// Sign-in through Cognito's hosted UI, end to end: a stub OpenID provider (oidc-stub.ts)
// stands in for the user pool, and this test starts its own `provisioner serve` trusting
// it (`--admin-jwt-issuer`, `--admin-jwt-audience`, `--admin-sign-in-domain`). Chromium
// presses "Sign in with Cognito", goes through the authorize redirect and back, the
// dashboard exchanges the code with its PKCE verifier, and the devices page loads with
// the ID token as the bearer, checked by the service against the stub's JWKS. Then
// sign-out through the provider's logout, and a refusal shown in words.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { chromium, type Browser } from 'playwright-core';

import { startOidcStub, type OidcStub } from './oidc-stub';
import { startServe, stopServe, type Serve } from './serve';

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new Error(`${name} is not set: run this through scripts/test-e2e.sh`);
  }
  return value;
}

const BIN = env('E2E_PROVISIONER');
const WORK = env('E2E_WORK');
const SHOTS = env('E2E_SCREENSHOTS');
const DASHBOARD = env('E2E_DASHBOARD_DIR');
const CLIENT_ID = 'e2e-dashboard-client';

// TOOLCHAIN.md: Debian's Chromium, headless, as root.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** `provisioner serve` on a free port trusting the stub; resolves once it is ready. */
function startCognitoServe(stub: OidcStub): Promise<Serve> {
  const dataDir = mkdtempSync(join(WORK, 'cognito-'));
  return startServe(
    BIN,
    [
      '--listen', '127.0.0.1:0',
      '--data-dir', join(dataDir, 'data'),
      '--dashboard-dir', DASHBOARD,
      '--rate-limit', '0',
      '--admin-jwt-issuer', stub.baseUrl,
      '--admin-jwt-audience', CLIENT_ID,
      '--admin-sign-in-domain', stub.baseUrl,
    ],
    {},
    30_000,
  );
}

function claims(jwt: string): Record<string, unknown> {
  const payload = jwt.split('.')[1] ?? '';
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
}

test('sign-in with Cognito: hosted UI, PKCE, ID token as the bearer, sign-out', { timeout: 120_000 }, async () => {
  mkdirSync(SHOTS, { recursive: true });
  const stub = await startOidcStub(CLIENT_ID);
  let serve: Serve | undefined;
  let browser: Browser | undefined;
  try {
    serve = await startCognitoServe(stub);
    const site = serve.url;
    stub.expectRedirect(`${site}/`);

    // What the dashboard reads before sign-in: both ways in, the hosted UI's URLs.
    const options = (await (await fetch(`${site}/admin/sign-in.json`)).json()) as {
      token: boolean;
      oidc: { authorizeUrl: string; tokenUrl: string; logoutUrl: string; clientId: string } | null;
    };
    assert.equal(options.token, true);
    assert.equal(options.oidc?.authorizeUrl, `${stub.baseUrl}/oauth2/authorize`);
    assert.equal(options.oidc?.tokenUrl, `${stub.baseUrl}/oauth2/token`);
    assert.equal(options.oidc?.logoutUrl, `${stub.baseUrl}/logout`);
    assert.equal(options.oidc?.clientId, CLIENT_ID);

    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`${m.text()} (${m.location().url})`);
    });
    page.on('pageerror', (e) => problems.push(e.message));

    // The sign-in page offers the hosted UI beside the admin token form.
    await page.goto(site);
    await page.locator('#sign-in-oidc').waitFor();
    assert.equal(await page.locator('#token').count(), 1);
    await page.screenshot({ path: join(SHOTS, 'sign-in-cognito.png'), fullPage: true });

    // Through the authorize redirect and back: the dashboard opens on its devices page,
    // which the service answered with the ID token as the bearer.
    await page.click('#sign-in-oidc');
    await page.locator('nav').waitFor();
    await page.locator('.state.empty', { hasText: 'No devices yet' }).waitFor();
    assert.equal(stub.calls.authorize, 1);
    assert.equal(stub.calls.tokensIssued, 1);
    assert.deepEqual(stub.calls.problems, []);
    assert.equal(new URL(page.url()).search, '', 'the code is gone from the address bar');
    const bearer = await page.evaluate(() => sessionStorage.getItem('provisioner-admin-token'));
    assert.equal(bearer, stub.lastIdToken());
    const idClaims = claims(bearer ?? '');
    assert.equal(idClaims.iss, stub.baseUrl);
    assert.equal(idClaims.aud, CLIENT_ID);
    assert.equal(idClaims.token_use, 'id');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('provisioner-oidc-pending')), null);
    // The service fetched the stub's keys to check the token.
    assert.ok(stub.calls.jwks >= 1, 'the service read the JWKS');

    // The same token works from anywhere; a forged signature does not.
    const ok = await fetch(`${site}/admin/api/devices`, { headers: { authorization: `Bearer ${bearer}` } });
    assert.equal(ok.status, 200);
    const parts = (bearer ?? '').split('.');
    const forged = `${parts[0]}.${parts[1]}.${Buffer.from('not the signature').toString('base64url')}`;
    const refused = await fetch(`${site}/admin/api/devices`, { headers: { authorization: `Bearer ${forged}` } });
    assert.equal(refused.status, 401);
    assert.equal(((await refused.json()) as { error: string }).error, 'invalid_token');

    // Sign-out also ends the hosted UI's session, and comes back to the sign-in page.
    await page.click('button.sign-out');
    await page.locator('#sign-in-oidc').waitFor();
    assert.deepEqual(stub.calls.logout, [{ clientId: CLIENT_ID, logoutUri: `${site}/` }]);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('provisioner-admin-token')), null);

    // A refusal at the provider is told in words, the address bar cleaned.
    await page.goto(`${site}/?error=access_denied&error_description=User+cancelled+the+sign-in`);
    const failure = page.locator('.sign-in-failure');
    await failure.waitFor();
    assert.match((await failure.textContent()) ?? '', /Cognito did not sign you in.*User cancelled the sign-in/);
    assert.equal(new URL(page.url()).search, '');

    assert.deepEqual(problems, [], 'the page logged errors');
    assert.deepEqual(stub.calls.problems, []);
  } catch (e) {
    if (serve !== undefined) console.error(`--- serve's log ---\n${serve.log.slice(-40).join('\n')}`);
    throw e;
  } finally {
    await browser?.close();
    if (serve !== undefined) await stopServe(serve);
    await stub.close();
  }
});
