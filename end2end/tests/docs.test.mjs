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
  // Swagger UI renders sections as they scroll into view; the first proves it is drawing.
  await page.locator('.opblock-tag', { hasText: 'sites' }).first().waitFor();
  const doc = await (await fetch(`${server.url}/openapi.json`)).json();
  assert.equal(doc.openapi, '3.0.3');
  assert.ok(doc.paths['/xos/slices/{id}/'].patch);
  // The UI holds the whole document: every collection's paths.
  const paths = await page.evaluate(() => Object.keys(window.ui.spec().toJS().json.paths));
  for (const p of ['/xos/slices/', '/xos/instances/{id}/', '/xos/dashboardviews/', '/xoslib/slicesplus/']) {
    assert.ok(paths.includes(p), `the docs lack ${p}`);
  }
  assert.deepEqual(outside, []);
  assert.deepEqual(page.errors, [], page.errors.join('\n'));
  await page.context().close();
});
