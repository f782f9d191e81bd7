// Logging in and out; the home page's tabs for a user who chose nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, login, homeTabs, shot } from './harness.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launchBrowser(); });
after(async () => { await browser?.close(); await server?.stop(); });

test('a wrong password keeps you on the login page with a message', async () => {
  const page = await newPage(browser);
  await page.goto(`${server.url}/login`);
  await page.fill('#username', 'padmin@vicci.org');
  await page.fill('#password', 'wrong');
  await Promise.all([page.waitForURL(/error=1/), page.click('button[type=submit]')]);
  assert.match(await page.textContent('[role=alert]'), /Wrong email or password/);
  await shot(page, 'login');
  await page.context().close();
});

test('log in, see the default dashboard and Customize, log out', async () => {
  const page = await newPage(browser);
  await login(page, server);
  assert.equal(await page.textContent('[data-testid=whoami]'), 'padmin@vicci.org');
  assert.deepEqual(await homeTabs(page), ['Tenant', 'Customize'], 'no choice yet: the default view, then Customize');
  const frame = page.frameLocator('iframe.dashboard-frame');
  await frame.locator('text=Welcome, XOS').waitFor();
  assert.deepEqual(page.errors, [], page.errors.join('\n'));
  await Promise.all([page.waitForURL(/\/login/), page.getByRole('button', { name: 'Log out' }).click()]);
  await page.goto(`${server.url}/`);
  await page.waitForURL(/\/login\?next=/);
  await page.context().close();
});
