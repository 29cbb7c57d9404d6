// The dashboard's AWS views end to end: Chromium against `provisioner serve --backend aws`
// over moto's server (ACM Private CA, IoT Core in two regions, DynamoDB), started by
// scripts/test-e2e.sh, which passes its address (E2E_AWS_ENDPOINT) and a binary built
// with the `aws` feature (E2E_AWS_PROVISIONER). Everything else this test makes itself,
// with the operator's commands as server/tests/it/aws/cli.rs runs them: an offline root
// (openssl), the issuing CA created, installed and registered in both regions, `serve`
// with its tables, a fleet imported, two devices provisioned over HTTP, then a second CA
// created and installed for the rotation. In the browser: the CA page names the current
// CA by its ARN; the Regions section has nothing waiting; a certificate's details list its
// registration DONE in both regions; the rotation to the second CA's ARN, through the
// form, runs to its end (after the settle wait, shortened here to 8 s) and revokes
// both certificates.
//
// A FAILED registration is not made here: it needs one region's IoT endpoint to fail,
// which `serve` cannot be told (store-aws/tests/it/aws_admin.rs does it with an unreachable
// client); the fixture test admin-ui/tests/browser/aws.rs covers its rendering.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { chromium, type Browser, type Page } from 'playwright-core';

import { startServe, stopServe, type Serve } from './serve';

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new Error(`${name} is not set: run this through scripts/test-e2e.sh`);
  }
  return value;
}

const BIN = env('E2E_AWS_PROVISIONER');
const ENDPOINT = env('E2E_AWS_ENDPOINT');
const WORK = env('E2E_WORK');
const SHOTS = env('E2E_SCREENSHOTS');
const DASHBOARD = env('E2E_DASHBOARD_DIR');
const REGIONS = 'us-east-1,eu-west-1';
// A rotation waits --rotation-settle-secs after switching CAs before it revokes: 8 s here
// (no other issuer shares the tables), long enough for the page to show the running step.
const ROTATION_TIMEOUT_MS = 150_000;

// Never create CAs in a real account by accident.
assert.match(ENDPOINT, /^http:\/\/(127\.0\.0\.1|localhost):\d+$/, `E2E_AWS_ENDPOINT=${ENDPOINT} is not a local stand-in`);

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

/** The deployment's environment: moto, dummy credentials, this run's own tables. */
function deployment(prefix: string): NodeJS.ProcessEnv {
  const vars: NodeJS.ProcessEnv = {
    ...process.env,
    AWS_ENDPOINT_URL: ENDPOINT,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_SESSION_TOKEN: 'testing',
    AWS_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
    PROVISIONER_LOG: 'warn',
    PROVISIONER_TABLE_PREFIX: prefix,
    PROVISIONER_REGIONS: REGIONS,
    PROVISIONER_MQTT_ENDPOINT: 'iot.example:8883',
  };
  // The issuing CA is the one the commands record in the config table.
  delete vars.PROVISIONER_PCA_CA_ARN;
  return vars;
}

/** Runs a command in `dir`; its stdout, or a thrown error with its stderr. */
function run(dir: string, vars: NodeJS.ProcessEnv, file: string, args: string[]): string {
  try {
    return execFileSync(file, args, { cwd: dir, env: vars, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const failure = e as { stdout?: string; stderr?: string };
    throw new Error(`${file} ${args.join(' ')} failed:\n${failure.stdout ?? ''}\n${failure.stderr ?? ''}`);
  }
}

/** `provisioner aws --regions ... --table-prefix PREFIX ARGS`, as JSON. */
function aws(dir: string, vars: NodeJS.ProcessEnv, args: string[]): Record<string, unknown> {
  const prefix = vars.PROVISIONER_TABLE_PREFIX ?? '';
  return JSON.parse(run(dir, vars, BIN, ['aws', '--regions', REGIONS, '--table-prefix', prefix, ...args])) as Record<
    string,
    unknown
  >;
}

/** An offline root made by openssl (`root.pem`, `root.key`), as the README's PKI admin keeps one. */
function offlineRoot(dir: string, vars: NodeJS.ProcessEnv): void {
  run(dir, vars, 'openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', 'root.key', '-out', 'root.pem', '-days', '3650', '-subj', '/CN=E2E Offline Root',
  ]);
  writeFileSync(
    join(dir, 'ext.cnf'),
    'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,digitalSignature,keyCertSign,cRLSign\n',
  );
}

/** `aws ca create`, the root signs its CSR, `aws ca install`: the CA's ARN and whether it issues. */
function createAndInstall(dir: string, vars: NodeJS.ProcessEnv, name: string): { arn: string; issuing: boolean } {
  const subject = `CN=E2E ${name} ${randomBytes(4).toString('hex')},O=provisioner e2e`;
  const created = aws(dir, vars, ['ca', 'create', '--subject', subject, '--out', `${name}.csr`]);
  const arn = String(created.caArn);
  run(dir, vars, 'openssl', [
    'x509', '-req', '-in', `${name}.csr`, '-CA', 'root.pem', '-CAkey', 'root.key', '-CAcreateserial',
    '-days', '365', '-extfile', 'ext.cnf', '-out', `${name}.pem`,
  ]);
  // No --arn: the CA `create` recorded as pending.
  const installed = aws(dir, vars, ['ca', 'install', `${name}.pem`, '--chain', 'root.pem']);
  assert.equal(installed.caArn, arn);
  return { arn, issuing: installed.issuing === true };
}

/** `serve --backend aws --create-tables` on a free port; resolves once its tables are ready. */
function startAwsServe(dir: string, vars: NodeJS.ProcessEnv): Promise<Serve> {
  return startServe(
    BIN,
    [
      '--backend', 'aws', '--create-tables',
      '--listen', '127.0.0.1:0',
      '--data-dir', join(dir, 'data'),
      '--dashboard-dir', DASHBOARD,
      '--rate-limit', '0',
      // The rotation's steps and the registrations' retries run every second.
      '--maintenance-every-secs', '1',
      '--rotation-settle-secs', '8',
    ],
    { cwd: dir, env: vars },
    60_000,
  );
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function openTab(page: Page, title: string): Promise<void> {
  await page.click(`button.tab[data-tab="${title}"]`);
  await page.locator('button.tab.active', { hasText: title }).waitFor();
}

/** Asks `GET /admin/api/PATH` until `done` says yes (the other region registers in the background). */
async function until<T>(site: string, token: string, path: string, done: (body: T) => boolean): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const answer = await fetch(`${site}/admin/api/${path}`, { headers: { authorization: `Bearer ${token}` } });
    const body = (await answer.json()) as T;
    if (answer.status === 200 && done(body)) return body;
    if (Date.now() > deadline) throw new Error(`GET ${path} never got there: ${answer.status} ${JSON.stringify(body)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

interface Registration {
  region: string;
  status: string;
}

test('on AWS: the CA by its ARN, the regions, and a rotation to a named ACM Private CA', { timeout: 300_000 }, async () => {
  mkdirSync(SHOTS, { recursive: true });
  const dir = mkdtempSync(join(WORK, 'aws-'));
  const vars = deployment(`e2e-${randomBytes(8).toString('hex')}-`);
  let serve: Serve | undefined;
  let browser: Browser | undefined;
  try {
    // The PKI admin: the issuing CA, registered in both regions.
    offlineRoot(dir, vars);
    const first = createAndInstall(dir, vars, 'issuing');
    assert.equal(first.issuing, true);
    const registered = aws(dir, vars, ['ca', 'register']) as { regions: { region: string; status: string }[] };
    assert.deepEqual(
      registered.regions.map((r) => [r.region, r.status]),
      [['us-east-1', 'ACTIVE'], ['eu-west-1', 'ACTIVE']],
    );

    // The operator: the service (which creates the tables), the manifest, two devices.
    serve = await startAwsServe(dir, vars);
    const site = serve.url;
    run(dir, vars, BIN, ['device', 'fleet', '--count', '3', '--out', 'fleet']);
    const imported = JSON.parse(run(dir, vars, BIN, ['import', '--backend', 'aws', '--json', 'fleet/manifest.csv'])) as {
      imported: number;
    };
    assert.equal(imported.imported, 3);
    const ids = readFileSync(join(dir, 'fleet', 'manifest.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => line.split(',')[0] ?? '');
    const provisioned = ids.slice(0, 2);
    const certificates = provisioned.map((id) => {
      const answer = JSON.parse(
        run(dir, vars, BIN, [
          'device', 'provision', '--url', site, '--key', join('fleet', `${id}.key.pem`),
          '--device-id', id, '--out', 'devices',
        ]),
      ) as { certificateId: string };
      return answer.certificateId;
    });

    // The rotation's target: a second CA, installed, not issuing yet.
    const second = createAndInstall(dir, vars, 'next');
    assert.equal(second.issuing, false);

    // The data directory's token, as the operator reads it again.
    const token = run(dir, vars, BIN, ['admin', 'token', '--data-dir', join(dir, 'data')]).trim();
    // Registered in both regions before the browser looks: the other region may lag
    // behind the issuance by a maintenance run.
    for (const id of certificates) {
      await until<{ registrations: Registration[] }>(site, token, `certificates/${id}`, (c) =>
        c.registrations.length === 2 && c.registrations.every((r) => r.status === 'DONE'),
      );
    }
    await until<{ items: unknown[] }>(site, token, 'registrations', (page) => page.items.length === 0);

    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    // Anything the page logs as an error (a CSP violation, a panic) fails the test.
    // Each problem is told with the step it happened in.
    const problems: string[] = [];
    let phase = 'sign-in';
    page.on('console', (m) => {
      // GET ca/rotation answers 404 `no_rotation` until a rotation ran: the CA page asks.
      const expected = m.location().url.endsWith('/admin/api/ca/rotation') && m.text().includes('404');
      if (m.type() === 'error' && !expected) problems.push(`${phase}: ${m.text()} (${m.location().url})`);
    });
    page.on('pageerror', (e) => problems.push(`${phase}: ${e.message}\n${e.stack ?? ''}`));

    await page.goto(site);
    await page.locator('#token').waitFor();
    await page.fill('#token', token);
    await page.click('form button[type=submit]');
    await page.locator('nav').waitFor();
    // The devices page has loaded (the imported fleet is listed) before another tab opens.
    await page.locator('table.devices tbody tr').nth(2).waitFor();

    phase = 'certificate details';
    // A certificate's details: its registration with IoT Core in each region, both done.
    await openTab(page, 'Certificates');
    await page.locator('table.certificates tbody tr').nth(1).waitFor();
    await page.locator('table.certificates tbody tr', { hasText: provisioned[0] ?? '' }).click();
    await page.locator('table.certificate-regions').waitFor();
    assert.equal(await page.locator('table.certificate-regions tbody tr').count(), 2);
    for (const region of REGIONS.split(',')) {
      await page.locator(`table.certificate-regions tr[data-region="${region}"] .badge-done`).waitFor();
    }
    await shot(page, 'certificates-aws');

    phase = 'CA page';
    // The CA page names the backend's issuing CA by its ARN.
    await openTab(page, 'CA');
    await page.locator('.current-ca dd', { hasText: first.arn }).waitFor();
    // The Regions section: nothing waits, and "Retry now" says so.
    await page.locator('.regions .state.empty', { hasText: 'Every certificate is registered in every region' }).waitFor();
    await page.click('#retry-registrations');
    await page.locator('.regions .retried', { hasText: 'Nothing was due for a retry.' }).waitFor();

    phase = 'rotation form';
    // Rotation: the button stays disabled until both the confirmation and an ARN are typed.
    const rotate = page.locator('#rotate');
    await page.fill('#rotate-confirm', 'rotate');
    assert.equal(await rotate.isDisabled(), true);
    await page.fill('#rotate-target', second.arn);
    await page.waitForFunction(() => !(document.querySelector('#rotate') as HTMLButtonElement | null)?.disabled);
    await shot(page, 'ca-aws');
    await rotate.click();
    phase = 'rotation running';
    // Running: its step shown while the service settles, then revokes.
    await page.locator('.rotation[data-state="running"] .step').waitFor();
    await shot(page, 'ca-aws-rotating');
    await page.locator('.rotation[data-state="finished"]').waitFor({ timeout: ROTATION_TIMEOUT_MS });
    const progress = (await page.locator('.rotation').textContent()) ?? '';
    assert.match(progress, /2 of 2 certificates of the previous CA revoked/, progress);
    assert.equal(await page.locator('progress.revocations').getAttribute('value'), '2');
    assert.equal(await page.locator('progress.revocations').getAttribute('max'), '2');
    // The offline parent is not ACM PCA: what is left to do by hand is said.
    await page.locator('.rotation .admin-action').waitFor();
    // The CA page now names the second CA, the first among the earlier ones.
    await page.locator('.current-ca dd', { hasText: second.arn }).waitFor();
    await page.locator(`table.previous-cas tbody tr td[title="${first.arn}"]`).waitFor();
    await shot(page, 'ca-aws-rotated');

    phase = 'certificates after the rotation';
    // Both certificates of the first CA are REVOKED.
    await openTab(page, 'Certificates');
    await page.waitForFunction(
      (devices) => {
        const rows = [...document.querySelectorAll('table.certificates tbody tr')];
        return devices.every((id) =>
          rows.some((tr) => tr.children[0]?.textContent === id && tr.children[1]?.textContent === 'REVOKED'));
      },
      provisioned,
    );

    assert.deepEqual(problems, [], 'the page logged errors');
  } catch (e) {
    if (serve !== undefined) console.error(`--- serve's log (aws) ---\n${serve.log.slice(-40).join('\n')}`);
    throw e;
  } finally {
    await browser?.close();
    if (serve !== undefined) await stopServe(serve);
  }
});
