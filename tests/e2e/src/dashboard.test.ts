// The dashboard end to end: Debian's Chromium, driven by playwright-core, against a real
// `provisioner serve` (started by scripts/test-e2e.sh, which passes its address, token and
// a fleet of simulated devices in the environment). One story, in order: sign in, import
// a manifest with a bad row, provision devices over HTTP, revoke a certificate, rotate
// the CA, read the audit feed. A screenshot of each page goes to docs/screenshots/.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { chromium, type Browser, type Page } from 'playwright-core';

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new Error(`${name} is not set: run this through scripts/test-e2e.sh`);
  }
  return value;
}

const URL = env('E2E_URL');
const TOKEN = env('E2E_TOKEN');
const BIN = env('E2E_PROVISIONER');
const FLEET = env('E2E_FLEET');
const MANIFEST = env('E2E_MANIFEST');
const WORK = env('E2E_WORK');
const SHOTS = env('E2E_SCREENSHOTS');

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

/** The fleet's device ids, in manifest order (the first line is the header). */
function fleetIds(): string[] {
  return readFileSync(join(FLEET, 'manifest.csv'), 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => line.split(',')[0] ?? '');
}

/** `provisioner device provision` for one device: a CSR to POST /new over HTTP. */
function provision(deviceId: string, keyFile: string): { status: number; certificateId?: string; error?: string } {
  try {
    const out = execFileSync(
      BIN,
      ['device', 'provision', '--url', URL, '--key', keyFile, '--device-id', deviceId, '--out', join(WORK, 'devices')],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const answer = JSON.parse(out) as { certificateId: string };
    return { status: 200, certificateId: answer.certificateId };
  } catch (e) {
    const failure = JSON.parse(String((e as { stdout?: string }).stdout ?? '{}')) as { status?: number; error?: string };
    return { status: failure.status ?? 0, ...(failure.error === undefined ? {} : { error: failure.error }) };
  }
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function openTab(page: Page, title: string): Promise<void> {
  await page.click(`button.tab[data-tab="${title}"]`);
  await page.locator('button.tab.active', { hasText: title }).waitFor();
}

/** The status badges of the certificate table's rows, by device id. */
async function certificateStatuses(page: Page): Promise<Map<string, string>> {
  const rows = await page.locator('table.certificates tbody tr').evaluateAll((trs) =>
    trs.map((tr) => [tr.children[0]?.textContent ?? '', tr.children[1]?.textContent ?? '']),
  );
  const statuses = new Map<string, string>();
  for (const [device, status] of rows) {
    if (device !== undefined && status !== undefined) statuses.set(device, status);
  }
  return statuses;
}

test('the dashboard, from sign-in to CA rotation', { timeout: 180_000 }, async () => {
  mkdirSync(SHOTS, { recursive: true });
  const ids = fleetIds();
  assert.equal(ids.length, 3);
  const browser: Browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    // Anything the page logs as an error (a CSP violation, a panic) fails the test.
    const problems: string[] = [];
    page.on('console', (m) => {
      // GET ca/rotation answers 404 `no_rotation` until a rotation ran: the CA page asks.
      const expected = m.location().url.endsWith('/admin/api/ca/rotation') && m.text().includes('404');
      if (m.type() === 'error' && !expected) problems.push(`${m.text()} (${m.location().url})`);
    });
    page.on('pageerror', (e) => problems.push(e.message));

    // Sign in: the page runs under the served CSP (the wasm loader allowed by hash).
    await page.goto(URL);
    await page.locator('#token').waitFor();
    await shot(page, 'sign-in');
    await page.fill('#token', TOKEN);
    await page.click('form button[type=submit]');
    await page.locator('nav').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('provisioner-admin-token')), TOKEN);

    // Import: the bad row is shown invalid before anything is sent; the dry run, then the
    // import with its progress, then the summary.
    await page.locator('.state.empty', { hasText: 'No devices yet' }).waitFor();
    await page.setInputFiles('#manifest-file', MANIFEST);
    const invalid = page.locator('tr.row-invalid');
    await invalid.first().waitFor();
    assert.equal(await invalid.count(), 1);
    assert.match((await invalid.first().textContent()) ?? '', /\(invalid_device_id\)/);
    assert.equal(await page.locator('tr.row-valid').count(), 3);
    await page.locator('.dry-run').waitFor();
    assert.match((await page.locator('.dry-run ul.summary').textContent()) ?? '', /3 new/);
    await page.click('#run-import');
    await page.locator('.done', { hasText: 'Import finished' }).waitFor();
    assert.match((await page.locator('.done').textContent()) ?? '', /3 new/);
    await page.locator('table.devices tbody tr').nth(2).waitFor();
    assert.equal(await page.locator('table.devices tbody tr').count(), 3);
    await shot(page, 'devices');

    // Three devices provision over HTTP; one unknown device is refused (a deny).
    const issued = ids.map((id) => provision(id, join(FLEET, `${id}.key.pem`)));
    for (const answer of issued) assert.equal(answer.status, 200, JSON.stringify(answer));
    const firstKey = join(FLEET, `${ids[0] ?? ''}.key.pem`);
    const refused = provision('UNKNOWN-DEVICE-1', firstKey);
    assert.equal(refused.status, 404);

    // Their certificates appear; the first is opened and revoked.
    await openTab(page, 'Certificates');
    await page.locator('table.certificates tbody tr').nth(2).waitFor();
    let statuses = await certificateStatuses(page);
    for (const id of ids) assert.equal(statuses.get(id), 'ACTIVE', id);
    await page.locator('table.certificates tbody tr', { hasText: ids[0] ?? '' }).click();
    await page.locator('aside.details dd', { hasText: `CN=${ids[0] ?? ''}` }).waitFor();
    await shot(page, 'certificates');
    await page.click('aside.details button.danger');
    await page.selectOption('#revoke-reason', 'keyCompromise');
    await shot(page, 'certificates-revoke');
    await page.click('#confirm-revoke');
    await page.locator('aside.details .badge-revoked').waitFor();
    await page.waitForFunction(
      (id) => [...document.querySelectorAll('table.certificates tbody tr')].some(
        (tr) => tr.children[0]?.textContent === id && tr.children[1]?.textContent === 'REVOKED'),
      ids[0],
    );

    // Rotate the CA: the typed confirmation, then the cascading revocation watched live.
    await openTab(page, 'CA');
    await page.locator('ol.chain li').nth(1).waitFor();
    const rotate = page.locator('#rotate');
    assert.equal(await rotate.isDisabled(), true);
    await page.fill('#rotate-confirm', 'rotate');
    await rotate.click();
    await page.locator('.rotation[data-state="finished"]').waitFor();
    // "2 certificates …", or "2 of 2 certificates …" when the service counted them first.
    assert.match((await page.locator('.rotation .revoked-count').textContent()) ?? '', /^2 (of 2 )?certificates/);
    await page.locator('table.previous-cas tbody tr').first().waitFor();
    await shot(page, 'ca');

    // Every certificate of the previous CA is now REVOKED.
    await openTab(page, 'Certificates');
    await page.locator('table.certificates tbody tr').nth(2).waitFor();
    statuses = await certificateStatuses(page);
    for (const id of ids) assert.equal(statuses.get(id), 'REVOKED', id);

    // The audit feed shows each decision: three allows, the unknown device's deny.
    await openTab(page, 'Activity');
    await page.locator('table.audit tbody tr').nth(3).waitFor();
    const decisions = await page.locator('table.audit tbody tr').evaluateAll((trs) =>
      trs.map((tr) => [...tr.children].map((td) => td.textContent ?? '')),
    );
    for (const id of ids) {
      assert.ok(decisions.some((d) => d[1] === 'allow' && d[3] === id), `allow for ${id}`);
    }
    assert.ok(
      decisions.some((d) => d[1] === 'deny' && d[2] === 'unknown_device' && d[3] === 'UNKNOWN-DEVICE-1'),
      JSON.stringify(decisions),
    );
    const bars = await page.locator('figure.chart g.bar').count();
    assert.equal(bars, 24);
    assert.match((await page.locator('figure.chart figcaption').textContent()) ?? '', /3 allowed.*1 denied/);
    await shot(page, 'activity');

    assert.deepEqual(problems, [], 'the page logged errors');
  } finally {
    await browser.close();
  }
});
