// User views: the guide's helloworld view unmodified (context variables, the table, live
// updates, save), an iframe view, the standalone view URL, unknown views and template errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, login, loginAs, api, homeTabs, shot } from './harness.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launchBrowser(); });
after(async () => { await browser?.close(); await server?.stop(); });

const rows = (scope) => scope.locator('#dynamicTableOfInterestingThings tr');

test('the guide\'s helloworld view works unmodified: context, table, live update, save', async () => {
  const page = await newPage(browser);
  await login(page, server);
  await page.goto(`${server.url}/admin/dashboard/Hello%20World/`);
  assert.match(await page.textContent('main'), /Hello, XOS admin\./);
  assert.match(await page.textContent('main'), /The value of foobar is value_of_foobar\./);
  await page.locator('nav[aria-label=Main]').waitFor(); // the navigation around a standalone view
  await rows(page).nth(2).waitFor();
  assert.equal(await rows(page).count(), 3);
  assert.match(await rows(page).nth(0).textContent(), /mysite_demo/);
  await shot(page, 'helloworld');

  // A change made elsewhere shows up (pushed by /xos/events, well before the 10 s poll).
  const { body: [pub] } = await api(server, '/xos/slices/?name=mysite_public');
  const stamp = `changed elsewhere ${Date.now()}`;
  const t0 = Date.now();
  await api(server, `/xos/slices/${pub.id}/`, { method: 'PATCH', body: JSON.stringify({ description: stamp }) });
  await page.locator('#dynamicTableOfInterestingThings', { hasText: stamp }).waitFor({ timeout: 5000 });
  assert.ok(Date.now() - t0 < 5000);

  // The submit button changes the first slice's description through models[0].set + save().
  const description = `saved by helloworld ${Date.now()}`;
  await page.fill('#newDescription', description);
  await page.click('#submitNewDescription');
  const deadline = Date.now() + 5000;
  let saved;
  do {
    saved = (await api(server, '/xos/slices/?name=mysite_demo')).body[0].description;
    if (saved === description) break;
    await new Promise((r) => setTimeout(r, 100));
  } while (Date.now() < deadline);
  assert.equal(saved, description);
  assert.deepEqual(page.errors, [], page.errors.join('\n'));
  await page.context().close();
});

test('a chosen template view runs in its home tab', async () => {
  await api(server, '/xoslib/dashboards/', { method: 'POST', body: JSON.stringify({ dashboards: ['Hello World', 'Developer'] }) });
  const page = await newPage(browser);
  await login(page, server);
  assert.deepEqual(await homeTabs(page), ['Hello World', 'Developer', 'Customize']);
  const frame = page.frameLocator('iframe.dashboard-frame');
  await rows(frame).nth(2).waitFor();
  await page.getByRole('tab', { name: 'Developer' }).click();
  await page.frameLocator('iframe.dashboard-frame').locator('#developer-slices tbody tr[data-slice=mysite_demo]').waitFor();
  await shot(page, 'home');
  assert.deepEqual(page.errors, [], page.errors.join('\n'));
  await page.context().close();
});

test('an http view is a sandboxed iframe, at home and alone', async () => {
  const url = `${server.url}/docs/`;
  const { status } = await api(server, '/xos/dashboardviews/', { method: 'POST', body: JSON.stringify({ name: 'API docs', url }) });
  assert.equal(status, 201);
  await api(server, '/xoslib/dashboards/', { method: 'POST', body: JSON.stringify({ dashboards: ['API docs'] }) });
  const page = await newPage(browser);
  await login(page, server);
  assert.deepEqual(await homeTabs(page), ['API docs', 'Customize']);
  const frame = page.locator('iframe.dashboard-frame');
  assert.equal(await frame.getAttribute('src'), url);
  assert.equal(await frame.getAttribute('sandbox'), 'allow-scripts allow-forms allow-popups');
  await page.goto(`${server.url}/admin/dashboard/API%20docs/`);
  assert.equal(await page.locator('iframe.view-frame').getAttribute('sandbox'), 'allow-scripts allow-forms allow-popups');
  await page.context().close();
  // The admin's home page goes back to the default tab: the next tests' home pages (whose first
  // tab is in the page the server sends, so it loads at once) would otherwise open the API docs
  // in a sandbox, where their own requests are cross-origin and fail in the console.
  await api(server, '/xoslib/dashboards/', { method: 'POST', body: JSON.stringify({ dashboards: [] }) });
});

test('unknown views are a 404 page; a failing template shows its error to admins only', async () => {
  const page = await newPage(browser);
  await login(page, server);
  const resp = await page.goto(`${server.url}/admin/dashboard/Nowhere/`);
  assert.equal(resp.status(), 404);
  assert.match(await page.textContent('main'), /no dashboard view named Nowhere/);
  await api(server, '/xos/dashboardviews/', { method: 'POST', body: JSON.stringify({ name: 'Broken', url: 'template:no_such_template' }) });
  await page.goto(`${server.url}/admin/dashboard/Broken/`);
  assert.match(await page.textContent('.template-error'), /no_such_template/);
  await page.context().close();
  const { status } = await api(server, '/xos/users/', {
    method: 'POST',
    body: JSON.stringify({ email: 'viewer@mysite.org', password: 'viewer-password', firstname: 'V', lastname: 'U', site: 1 }),
  });
  assert.equal(status, 201);
  const other = await newPage(browser);
  await loginAs(other, server, 'viewer@mysite.org', 'viewer-password');
  await other.goto(`${server.url}/admin/dashboard/Broken/`);
  assert.match(await other.textContent('main'), /could not be shown/);
  assert.equal(await other.locator('.template-error').count(), 0, 'no details for non-admins');
  await other.context().close();
});

test('the HelloWorld service dashboard shows where each tenant serves and changes its message', async () => {
  const page = await newPage(browser);
  await login(page, server);
  await page.goto(`${server.url}/admin/dashboard/Hello%20World%20Service/`);
  const row = page.locator('#hello-tenants tr[data-tenant="hello-tenant"]');
  // The synchronizer starts the tenant's server and records its port; the row links to it.
  const link = row.locator('a[href^="http://127.0.0.1:"]');
  await link.waitFor({ timeout: 20000 });
  const url = await link.getAttribute('href');
  assert.equal((await (await fetch(url)).text()).trim(), 'Hello World!');
  await row.locator('.badge.ok').waitFor();
  await shot(page, 'helloworld-service');

  // Saving a new message: the same address serves it once the synchronizer restarted the server.
  const message = `Bonjour ${Date.now()}`;
  await row.locator('input').fill(message);
  await row.locator('button[type=submit]').click();
  const deadline = Date.now() + 15000;
  let served;
  do {
    served = await fetch(url).then((r) => r.text()).then((t) => t.trim()).catch(() => '');
    if (served === message) break;
    await new Promise((r) => setTimeout(r, 200));
  } while (Date.now() < deadline);
  assert.equal(served, message);

  // A message that is too long is refused with the field's error, and nothing changes.
  await row.locator('input').evaluate((el) => { el.removeAttribute('maxlength'); });
  await row.locator('input').fill('x'.repeat(300));
  await row.locator('button[type=submit]').click();
  await page.locator('#hello-error', { hasText: /254/ }).waitFor();
  assert.equal((await (await fetch(url)).text()).trim(), message);
  assert.deepEqual(page.errors.filter((e) => !/status of 400/.test(e)), [], page.errors.join('\n'));
  await page.context().close();
});
