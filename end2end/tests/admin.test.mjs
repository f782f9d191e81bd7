// Generated admin pages: create with a field error, edit, delete with confirmation, for two
// models; and a list that updates when another client changes a row.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, login, api, shot, axeViolations } from './harness.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launchBrowser(); });
after(async () => { await browser?.close(); await server?.stop(); });

async function save(page) {
  await page.getByRole('button', { name: 'Save' }).click();
}

test('slices: create (after a field error), edit, delete', async () => {
  const page = await newPage(browser);
  await login(page, server);
  await page.goto(`${server.url}/admin/core/slice/`);
  await page.getByRole('link', { name: 'Add slice' }).click();
  await page.waitForURL(/\/admin\/core\/slice\/add/);
  await page.locator('#field-name').fill('wrongprefix_x');
  await page.locator('#field-site').selectOption({ label: 'MySite (#1)' });
  await save(page);
  await page.locator('#field-name-error', { hasText: 'must begin with mysite_' }).waitFor();
  await page.locator('#field-name').fill('mysite_fromadmin');
  await save(page);
  await page.waitForURL(/\/admin\/core\/slice\/\d+\/$/);
  const id = page.url().match(/slice\/(\d+)\//)[1];
  await page.locator('#field-description').fill('written in the admin');
  await save(page);
  await page.locator('text=The slice was saved.').waitFor();
  assert.equal((await api(server, `/xos/slices/${id}/`)).body.description, 'written in the admin');
  // The history below the form shows who changed what: the new entry, newest first.
  const history = page.locator('.history-table tbody tr');
  await history.first().filter({ hasText: 'written in the admin' }).waitFor();
  assert.match(await history.first().innerText(), /padmin@vicci\.org\s+update\s+description/);
  assert.match(await history.last().innerText(), /create/);

  await shot(page, 'admin-form');
  await page.getByRole('button', { name: 'Delete', exact: true }).click();
  await page.getByRole('button', { name: 'Yes, delete it' }).click();
  await page.waitForURL(/\/admin\/core\/slice\/$/);
  assert.equal((await api(server, `/xos/slices/${id}/`)).status, 404);
  assert.deepEqual(page.errors.filter((e) => !/status of 400/.test(e)), []);
  await page.context().close();
});

test('dashboard views at the guide\'s path: create (after a field error), edit, delete', async () => {
  const page = await newPage(browser);
  await login(page, server);
  await page.goto(`${server.url}/admin/core/dashboardview/`);
  await page.locator('table[data-testid=admin-list] tbody tr')
    .filter({ has: page.getByRole('link', { name: 'Hello World', exact: true }) }).waitFor();
  await page.getByRole('link', { name: 'Add dashboard view' }).click();
  await page.locator('#field-name').fill('hello, world');
  await page.locator('#field-url').fill('template:helloworld');
  await save(page);
  await page.locator('#field-name-error', { hasText: 'comma' }).waitFor();
  await page.locator('#field-name').fill('hello world');
  await save(page);
  await page.waitForURL(/\/admin\/core\/dashboardview\/\d+\/$/);
  await page.locator('#field-enabled').uncheck();
  await save(page);
  await page.locator('text=The dashboard view was saved.').waitFor();
  const { body } = await api(server, '/xos/dashboardviews/?name=hello%20world');
  assert.equal(body[0].enabled, false);
  await page.getByRole('button', { name: 'Delete', exact: true }).click();
  await page.getByRole('button', { name: 'Yes, delete it' }).click();
  await page.waitForURL(/\/admin\/core\/dashboardview\/$/);
  assert.deepEqual((await api(server, '/xos/dashboardviews/?name=hello%20world')).body, []);
  await page.context().close();
});

test('a list shows a change made by another client', async () => {
  const page = await newPage(browser);
  await login(page, server);
  await page.goto(`${server.url}/admin/core/slice/`);
  const row = page.locator('table[data-testid=admin-list] tbody tr', { hasText: 'mysite_helloworld' });
  await row.waitFor();
  await shot(page, 'admin-list');
  const { body: [s] } = await api(server, '/xos/slices/?name=mysite_helloworld');
  await api(server, `/xos/slices/${s.id}/`, { method: 'PATCH', body: JSON.stringify({ description: 'changed by another client' }) });
  await page.locator('table[data-testid=admin-list] tbody tr', { hasText: 'changed by another client' }).waitFor({ timeout: 5000 });
  // Search, filter and sort reach the server.
  await page.fill('#admin-search', 'public');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.locator('table[data-testid=admin-list] tbody tr').first().waitFor();
  await page.waitForFunction(() => document.querySelectorAll('table[data-testid=admin-list] tbody tr').length === 1);
  await page.context().close();
});

test('a slice page lists its instances, networks and privileges with their status', async () => {
  const page = await newPage(browser);
  await login(page, server);
  const slice = (await api(server, '/xos/slices/?name=mysite_demo')).body[0];
  await page.goto(`${server.url}/admin/core/slice/${slice.id}/`);
  const instances = page.locator('section.inline[data-model="Instance"]');
  const row = instances.locator('tbody tr', { hasText: 'demo-1' });
  await row.waitFor();
  // Its backend status as a mark, the same the list shows.
  await row.locator('.badge').waitFor();
  assert.match(await instances.locator('h2').innerText(), /Instances/);
  await page.locator('section.inline[data-model="Network"]').waitFor();
  await page.locator('section.inline[data-model="SlicePrivilege"]').waitFor();
  // The instance's own page lists its ports.
  await row.getByRole('link', { name: 'demo-1' }).click();
  await page.waitForURL(/\/admin\/core\/instance\/\d+\/$/);
  await page.locator('section.inline[data-model="Port"]').waitFor();
  assert.deepEqual(page.errors, []);
});

test('a synchronized list shows each row\'s status, filters by it, and a form folds its internal flags', async () => {
  const page = await newPage(browser);
  await login(page, server);
  await page.goto(`${server.url}/admin/core/slice/`);
  const rows = page.locator('table[data-testid=admin-list] tbody tr');
  const demo = rows.filter({ hasText: 'mysite_demo' });
  // The local backend made the slice's directory: the list says so, live.
  await demo.locator('.badge.ok', { hasText: 'slice directory' }).waitFor({ timeout: 15000 });
  // In error: none is, so the list empties; OK brings the slices back; Pending shows none.
  await page.selectOption('#filter-status', '2');
  await page.waitForFunction(() => document.querySelectorAll('table[data-testid=admin-list] tbody tr').length === 0);
  await page.selectOption('#filter-status', '1');
  await demo.waitFor();
  const ok = (await api(server, '/xos/slices/?backend_status__startswith=1')).body.length;
  await page.waitForFunction((n) => document.querySelectorAll('table[data-testid=admin-list] tbody tr').length === n, ok);
  assert.ok(ok >= 3, `${ok} slices OK`);
  // The form: the internal flags sit folded under "Advanced", and open on request.
  await demo.getByRole('link', { name: 'mysite_demo' }).click();
  await page.waitForURL(/\/admin\/core\/slice\/\d+\/$/);
  await page.locator('#field-name').waitFor();
  assert.equal(await page.locator('#field-no_sync').isVisible(), false);
  await page.locator('details.advanced summary').click();
  await page.locator('#field-no_sync').waitFor();
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('an inline add on the slice page creates the row (after a field error), and its delete removes it', async () => {
  const page = await newPage(browser);
  await login(page, server);
  const { body: [slice] } = await api(server, '/xos/slices/?name=mysite_public');
  const { body: user } = await api(server, '/xos/users/', {
    method: 'POST',
    body: JSON.stringify({ email: 'inline@mysite.org', password: 'inline-password-1', firstname: 'In', lastname: 'Line', site: 1 }),
  });
  const { body: [access] } = await api(server, '/xos/slice_roles/?role=access');
  await page.goto(`${server.url}/admin/core/slice/${slice.id}/`);
  const privs = page.locator('section.inline[data-model="SlicePrivilege"]');
  await privs.locator('summary', { hasText: 'Add slice privilege' }).click();
  const userSelect = privs.locator('#inline-sliceprivilege-field-user');
  await userSelect.locator(`option[value="${user.id}"]`).waitFor({ state: 'attached' });
  await userSelect.selectOption(String(user.id));
  // No role: the server's field message, under the field; nothing is created.
  await privs.getByRole('button', { name: 'Add slice privilege', exact: true }).click();
  await privs.locator('#inline-sliceprivilege-field-role-error').filter({ hasText: /\S/ }).waitFor();
  assert.equal((await api(server, `/xos/slice_privileges/?slice=${slice.id}&user=${user.id}`)).body.length, 0);
  const roleSelect = privs.locator('#inline-sliceprivilege-field-role');
  await roleSelect.locator(`option[value="${access.id}"]`).waitFor({ state: 'attached' });
  await roleSelect.selectOption(String(access.id));
  await privs.getByRole('button', { name: 'Add slice privilege', exact: true }).click();
  await privs.locator('[role=status]', { hasText: 'The slice privilege was added.' }).waitFor();
  const made = (await api(server, `/xos/slice_privileges/?slice=${slice.id}&user=${user.id}&no_hyperlinks=1`)).body;
  assert.equal(made.length, 1);
  assert.equal(made[0].role, access.id);
  const row = privs.locator('tbody tr', { has: page.locator(`a[href$="/sliceprivilege/${made[0].id}/"]`) });
  await row.waitFor();
  // Change in place: its role becomes admin, in a form under the row.
  const { body: [adminRole] } = await api(server, '/xos/slice_roles/?role=admin');
  await row.getByRole('button', { name: /^Change / }).click();
  const editRole = privs.locator('#inline-sliceprivilege-edit-field-role');
  await editRole.locator(`option[value="${adminRole.id}"]`).waitFor({ state: 'attached' });
  await editRole.selectOption(String(adminRole.id));
  assert.deepEqual(await axeViolations(page), []);
  await privs.locator('tr.inline-edit-row').getByRole('button', { name: 'Save' }).click();
  await privs.locator('[role=status]', { hasText: 'The slice privilege was saved.' }).waitFor();
  await privs.locator('tr.inline-edit-row').waitFor({ state: 'detached' });
  const changed = (await api(server, `/xos/slice_privileges/?slice=${slice.id}&user=${user.id}&no_hyperlinks=1`)).body;
  assert.deepEqual(changed.map((p) => [p.id, p.role]), [[made[0].id, adminRole.id]]);
  // Delete in place.
  await row.getByRole('button', { name: /^Delete / }).click();
  await row.waitFor({ state: 'detached' });
  assert.equal((await api(server, `/xos/slice_privileges/?slice=${slice.id}&user=${user.id}`)).body.length, 0);
  assert.deepEqual(page.errors.filter((e) => !/status of 400/.test(e)), []);
  await page.context().close();
});

test('a many-to-many widget chooses a site\'s deployments, saved with the site', async () => {
  const page = await newPage(browser);
  await login(page, server);
  const { body: dep } = await api(server, '/xos/deployments/', {
    method: 'POST',
    body: JSON.stringify({ name: 'm2m-widget-deployment' }),
  });
  const deploymentsOf = async () => (await api(server, '/xos/sites/1/?no_hyperlinks=1')).body.deployments;
  const before = await deploymentsOf();
  assert.ok(!before.includes(dep.id));
  await page.goto(`${server.url}/admin/core/site/1/`);
  const widget = page.locator('fieldset.m2m[data-relation="deployments"]');
  await widget.locator('legend', { hasText: 'Deployments' }).waitFor();
  // The site page has XOS's inlines: its slices, users and privileges (rows listed).
  await page.locator('section.inline[data-model="Slice"] a', { hasText: 'mysite_public' }).waitFor();
  await page.locator('section.inline[data-model="User"] a', { hasText: 'padmin@vicci.org' }).waitFor();
  await page.locator('section.inline[data-model="SitePrivilege"]').waitFor();
  // The filter narrows the choices; the chosen ones stay.
  await widget.getByRole('searchbox').fill('m2m-widget');
  const box = widget.locator(`#field-deployments-${dep.id}`);
  await box.waitFor();
  for (const id of before) assert.ok(await widget.locator(`#field-deployments-${id}`).isChecked(), `deployment ${id} stays chosen`);
  await box.check();
  await widget.locator('.m2m-summary', { hasText: 'm2m-widget-deployment' }).waitFor();
  assert.deepEqual(await axeViolations(page), []);
  await save(page);
  await page.locator('.ok-message', { hasText: 'was saved' }).waitFor();
  assert.deepEqual((await deploymentsOf()).sort(), [...before, dep.id].sort());
  const links = (await api(server, `/xos/sitedeployments/?site=1&deployment=${dep.id}`)).body;
  assert.equal(links.length, 1, 'the through row exists');
  // Unchosen and saved: the through row goes.
  await page.reload();
  await widget.locator(`#field-deployments-${dep.id}`).uncheck();
  await save(page);
  await page.locator('.ok-message', { hasText: 'was saved' }).waitFor();
  assert.deepEqual((await deploymentsOf()).sort(), [...before].sort());
  assert.equal((await api(server, `/xos/sitedeployments/?site=1&deployment=${dep.id}`)).body.length, 0);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('without any script: log in, the home page\'s tabs, a list\'s rows and their links', async () => {
  // The pages are rendered by the server; only their islands need the wasm bundle.
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await login(page, server);
  const tabs = await page.locator('[role=tablist] [role=tab]').allTextContents();
  assert.ok(tabs.includes('Customize'), `tabs: ${tabs}`);
  await page.goto(`${server.url}/admin/core/slice/`);
  const row = page.locator('table[data-testid=admin-list] tbody tr', { hasText: 'mysite_demo' });
  await row.waitFor();
  const { body: slices } = await api(server, '/xos/slices/');
  assert.equal(await page.locator('table[data-testid=admin-list] tbody tr').count(), Math.min(slices.length, 25));
  await page.getByRole('link', { name: 'Add slice' }).waitFor();
  await row.getByRole('link', { name: 'mysite_demo' }).click();
  await page.waitForURL(/\/admin\/core\/slice\/\d+\/$/);
  await page.locator('nav.breadcrumbs').getByRole('link', { name: 'Slices' }).click();
  await page.waitForURL(/\/admin\/core\/slice\/$/);
  await context.close();
});
