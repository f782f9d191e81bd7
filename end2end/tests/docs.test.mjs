// The API reference at /docs/ renders the generated OpenAPI document with the vendored Swagger UI.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage } from './harness.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launchBrowser(); });
after(async () => { await browser?.close(); await server?.stop(); });

test('the docs page lists every collection and loads nothing from outside', async () => {
  const page = await newPage(browser);
  const outside = [];
  page.on('request', (r) => { if (!r.url().startsWith(server.url)) outside.push(r.url()); });
  await page.goto(`${server.url}/docs/`);
  await page.locator('.opblock-tag', { hasText: 'slices' }).first().waitFor();
  const doc = await (await fetch(`${server.url}/openapi.json`)).json();
  assert.equal(doc.openapi, '3.0.3');
  assert.ok(doc.paths['/xos/slices/{id}/'].patch);
  for (const tag of ['sites', 'users', 'instances', 'dashboard views']) {
    assert.ok(await page.locator('.opblock-tag', { hasText: tag }).count() > 0, `no section for ${tag}`);
  }
  assert.deepEqual(outside, []);
  assert.deepEqual(page.errors, [], page.errors.join('\n'));
  await page.context().close();
});
