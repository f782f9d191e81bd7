// Shared set-up for the browser tests: start a real `xos serve` on a fresh SQLite database and
// a free loopback port, and launch Debian's Chromium through playwright-core.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

export const ADMIN = { email: 'padmin@vicci.org', password: 'letmein' };
const ROOT = resolve(import.meta.dirname, '..', '..');

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** Start the server with the devel configuration (its recipes: sample slices, an instance, the
 * HelloWorld service) on its own database and backend state directory. */
export async function startServer() {
  const bin = process.env.XOS_BIN;
  if (!bin) throw new Error('XOS_BIN must name the xos binary');
  const dir = mkdtempSync(join(tmpdir(), 'xos-e2e-'));
  const port = await freePort();
  const log = [];
  // XOS_E2E_CONFIG runs them on another configuration (the Tenant view's timing on openstack).
  const config = join(ROOT, `configurations/${process.env.XOS_E2E_CONFIG || 'devel'}/xos.toml`);
  const env = {
    ...process.env,
    DATABASE_URL: `sqlite://${join(dir, 'xos.db')}`,
    XOS_STATE_DIR: dir,
    PORT: String(port),
    RUST_LOG: 'warn',
  };
  const child = spawn(bin, ['--config', config, 'serve'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (d) => log.push(String(d)));
  child.stderr.on('data', (d) => log.push(String(d)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`xos exited early:\n${log.join('')}`);
    try {
      const r = await fetch(`${url}/login`);
      if (r.ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error(`xos did not answer within 30 s:\n${log.join('')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    log,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
      // The local backend's processes (the instance, the HelloWorld tenant) outlive the server.
      spawnSync(bin, ['--config', config, 'backend-stop'], { cwd: ROOT, env, stdio: 'ignore' });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Launch headless Chromium; every console error or page error is collected in `errors`. */
export async function launchBrowser() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  return browser;
}

/** A page that records console errors and uncaught exceptions. */
export async function newPage(browser, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.errors = [];
  page.on('console', (m) => { if (m.type() === 'error') page.errors.push(m.text()); });
  page.on('pageerror', (e) => page.errors.push(String(e)));
  return page;
}

/** Basic-auth fetch of the REST API as the admin. */
export async function api(server, path, init = {}) {
  const auth = Buffer.from(`${ADMIN.email}:${ADMIN.password}`).toString('base64');
  const r = await fetch(`${server.url}${path}`, {
    ...init,
    headers: { Authorization: `Basic ${auth}`, 'Content-Type': 'application/json', ...(init.headers || {}) },
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

/** Log in through the form. */
export async function login(page, server, who = ADMIN) {
  await page.goto(`${server.url}/`);
  await page.waitForURL(/\/login/);
  await page.fill('#username', who.email);
  await page.fill('#password', who.password);
  await Promise.all([page.waitForURL(`${server.url}/`), page.click('button[type=submit]')]);
}

/** Run axe-core on the page; returns the serious and critical violations. */
export async function axeViolations(page) {
  // Evaluated through the DevTools protocol: the page's policy allows no inline script, and
  // rightly so (addScriptTag would add one).
  const { readFileSync } = await import('node:fs');
  await page.evaluate(readFileSync(resolve(import.meta.dirname, '..', 'node_modules', 'axe-core', 'axe.min.js'), 'utf8'));
  const result = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`);
}

/** Save a screenshot under end2end/screenshots/. */
export async function shot(page, name) {
  const dir = resolve(import.meta.dirname, '..', 'screenshots');
  await import('node:fs').then((fs) => fs.mkdirSync(dir, { recursive: true }));
  await page.screenshot({ path: `${dir}/${name}.png`, fullPage: true });
}

/** Log in through the form as someone else than the admin. */
export async function loginAs(page, server, email, password) {
  await page.goto(`${server.url}/login`);
  await page.fill('#username', email);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL(`${server.url}/`), page.click('button[type=submit]')]);
}

/** The home page's tab panel, once the dashboards are loaded. */
export async function homeTabs(page) {
  const tabs = page.locator('[role=tablist] [role=tab]');
  await tabs.first().waitFor();
  // The tabs arrive in more than one render (the user's choice, then Customize): read until
  // two reads 300 ms apart agree.
  let last = await tabs.allTextContents();
  for (let i = 0; i < 20; i++) {
    await page.waitForTimeout(300);
    const now = await tabs.allTextContents();
    if (JSON.stringify(now) === JSON.stringify(last)) return now;
    last = now;
  }
  return last;
}

