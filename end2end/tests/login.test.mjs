// Log in, see the slices, edit one in the hydrated page, and find the change through the API.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { startServer, launchBrowser, newPage, login, api } from './harness.mjs';

const SHOTS = resolve(import.meta.dirname, '..', 'screenshots');
let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('a wrong password keeps you on the login page with a message', async () => {
  const page = await newPage(browser);
  await page.goto(`${server.url}/login`);
  await page.fill('#username', 'padmin@vicci.org');
  await page.fill('#password', 'wrong');
  await Promise.all([page.waitForURL(/error=1/), page.click('button[type=submit]')]);
  assert.match(await page.textContent('[role=alert]'), /Wrong email or password/);
  await page.screenshot({ path: `${SHOTS}/login.png` });
  await page.context().close();
});

test('log in, see the slices, edit a description, and the API has it', async () => {
  const page = await newPage(browser);
  await login(page, server);
  assert.equal(await page.textContent('[data-testid=whoami]'), 'padmin@vicci.org');

  const row = page.locator('tr[data-slice="mysite_demo"]');
  await row.waitFor();
  assert.equal(await page.locator('table[data-testid=slices] tbody tr').count(), 3);

  const description = `Edited in Chromium at ${Date.now()}`;
  await row.getByRole('button', { name: /Edit the description/ }).click();
  await row.locator('input[type=text]').fill(description);
  await row.getByRole('button', { name: 'Save' }).click();
  await page.locator('tr[data-slice="mysite_demo"] .text', { hasText: description }).waitFor();
  await page.screenshot({ path: `${SHOTS}/home.png` });

  const { status, body } = await api(server, '/xos/slices/?name=mysite_demo');
  assert.equal(status, 200);
  assert.equal(body[0].description, description);

  // Still there after a reload (persisted, rendered by the server and hydrated again).
  await page.reload();
  await page.locator('tr[data-slice="mysite_demo"] .text', { hasText: description }).waitFor();

  assert.deepEqual(page.errors, [], `browser errors: ${page.errors.join('\n')}`);

  // A value the server refuses shows its field message next to the input (the 400 is expected).
  await page.locator('tr[data-slice="mysite_demo"]').getByRole('button', { name: /Edit the description/ }).click();
  await page.locator('tr[data-slice="mysite_demo"] input[type=text]').fill('x'.repeat(1100));
  await page.locator('tr[data-slice="mysite_demo"]').getByRole('button', { name: 'Save' }).click();
  assert.match(await page.locator('tr[data-slice="mysite_demo"] .field-error').textContent(), /no more than 1024/);
  const unexpected = page.errors.filter((e) => !/status of 400/.test(e));
  assert.deepEqual(unexpected, [], `browser errors: ${unexpected.join('\n')}`);

  await Promise.all([page.waitForURL(/\/login/), page.getByRole('button', { name: 'Log out' }).click()]);
  await page.context().close();
});
