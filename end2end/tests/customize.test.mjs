// The Customize tab: add, reorder (buttons and drag), remove, save; the choice persists.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, login, homeTabs, shot } from './harness.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launchBrowser(); });
after(async () => { await browser?.close(); await server?.stop(); });

async function openCustomize(page) {
  await homeTabs(page);
  await page.getByRole('tab', { name: 'Customize' }).click();
  await page.locator('[data-testid=available]').waitFor();
}

const selected = (page) => page.locator('[data-testid=selected] li > span:not(.drag-handle)').allTextContents();

test('choose, order and remove dashboards; the home page keeps the choice across reloads', async () => {
  const page = await newPage(browser);
  await login(page, server);
  await openCustomize(page);
  await page.getByRole('button', { name: 'Add Developer' }).click();
  await page.getByRole('button', { name: 'Add Hello World', exact: true }).click();
  await page.getByRole('button', { name: 'Add Tenant' }).click();
  assert.deepEqual(await selected(page), ['Developer', 'Hello World', 'Tenant']);
  await page.getByRole('button', { name: 'Move Hello World up' }).click();
  assert.deepEqual(await selected(page), ['Hello World', 'Developer', 'Tenant']);
  // Drag Tenant to the top.
  const items = page.locator('[data-testid=selected] li');
  await items.nth(2).dragTo(items.nth(0));
  assert.deepEqual(await selected(page), ['Tenant', 'Hello World', 'Developer']);
  await page.getByRole('button', { name: 'Remove Developer' }).click();
  assert.deepEqual(await selected(page), ['Tenant', 'Hello World']);
  await shot(page, 'customize');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('text=Saved.').waitFor({ timeout: 5000 }).catch(async (e) => { console.log('MAIN:', await page.locator('main').textContent()); throw e; });
  assert.deepEqual(await homeTabs(page), ['Tenant', 'Hello World', 'Customize']);
  await page.reload();
  assert.deepEqual(await homeTabs(page), ['Tenant', 'Hello World', 'Customize'], 'persisted');
  await openCustomize(page);
  assert.deepEqual(await selected(page), ['Tenant', 'Hello World']);
  assert.deepEqual(page.errors, [], page.errors.join('\n'));
  await page.context().close();
});
