// The Tenant view end to end on the devel configuration (the local backend runs instances as
// processes): create a slice, run two instances at the site, add a user, watch both run with
// their addresses, download the ssh commands, delete the slice and see its processes stop. By
// keyboard where a user would, with axe-core, and at 360 px.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startServer, launchBrowser, newPage, login, api, axeViolations, shot } from './harness.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launchBrowser(); });
after(async () => { await browser?.close(); await server?.stop(); });

const alive = (pid) => { try { process.kill(pid, 0); return true; } catch { return false; } };
// On the devel configuration instances are local processes (their pids are checked); with
// XOS_E2E_CONFIG=openstack they are Nova servers.
const local = (process.env.XOS_E2E_CONFIG || 'devel') === 'devel';

async function until(what, f, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('a tenant runs a slice from the Tenant view: create, two instances, a user, ssh, delete', async () => {
  const { body: member } = await api(server, '/xos/users/', {
    method: 'POST',
    body: JSON.stringify({ email: 'tenant-member@mysite.org', password: 'member-password-1', firstname: 'Ten', lastname: 'Ant', site: 1 }),
  });
  const page = await newPage(browser);
  await login(page, server);
  await page.goto(`${server.url}/admin/dashboard/Tenant/`);
  await page.locator('#tenant-new-card:not([hidden])').waitFor();
  assert.deepEqual(await axeViolations(page), []);

  // Create, by keyboard: name, Tab on to the Create button, Enter.
  const t0 = Date.now();
  await page.locator('#tenant-new-name').fill('mysite_tenantview');
  await page.locator('#tenant-new-description').fill('made in the Tenant view');
  await page.locator('#tenant-new-flavor').selectOption({ label: 'm1.small' });
  await page.locator('#tenant-new-flavor').focus();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Create');
  await page.keyboard.press('Enter');
  await page.locator('#tenant-slice:not([hidden]) #tenant-slice-title', { hasText: 'mysite_tenantview' }).waitFor();
  const slice = (await api(server, '/xos/slices/?name=mysite_tenantview')).body[0];
  assert.ok(slice, 'the slice exists');

  // Two instances at the site and a member, in one save.
  const alloc = page.locator('#tenant-sites input[data-site="MySite"]');
  await alloc.fill('2');
  await page.locator('#tenant-users label', { hasText: 'tenant-member@mysite.org' }).click();
  await page.locator('#tenant-save').focus();
  await page.keyboard.press('Enter');
  await page.locator('#tenant-edit-ok', { hasText: 'Saved' }).waitFor();

  // Both run, each with its address, as the synchronizer enacts them: shown live.
  const rows = page.locator('#tenant-instances tbody tr[data-instance]');
  // Running: enacted (OK), running (a local process, an ACTIVE Nova server, not one still
  // building) and with an address.
  await until('two instances running in the view', async () =>
    (await rows.count()) === 2 &&
    (await page.locator('#tenant-instances tbody tr[data-instance] .badge.ok')
      .filter({ hasText: local ? /running as pid/ : /: ACTIVE as / }).count()) === 2 &&
    (await page.locator('#tenant-instances tbody tr[data-instance] .address').allInnerTexts())
      .every((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a.trim())), 240000);
  const running = Date.now() - t0;
  for (const r of await rows.all()) {
    const address = (await r.locator('.address').innerText()).trim();
    assert.match(address, local ? /^127\.0\.0\.1$/ : /^\d+\.\d+\.\d+\.\d+$/);
  }
  console.log(`# tenant view: create slice → two instances shown running: ${running} ms`);
  const { body: instances } = await api(server, `/xos/instances/?slice=${slice.id}&no_hyperlinks=1`);
  assert.equal(instances.length, 2);
  const pids = local ? instances.map((i) => Number(i.instance_id)) : [];
  assert.ok(pids.every(alive), `processes ${pids} run`);
  // The member holds its privilege.
  const { body: privs } = await api(server, `/xos/slice_privileges/?slice=${slice.id}&user=${member.id}`);
  assert.equal(privs.length, 1);
  // Its slice role is chosen in the view: made the slice's admin, it holds that role only.
  const { body: [adminRole] } = await api(server, '/xos/slice_roles/?role=admin&no_hyperlinks=1');
  await page.locator('#tenant-users select[aria-label="Slice role of tenant-member@mysite.org"]').selectOption('admin');
  await page.locator('#tenant-save').click();
  await until('the member made the slice admin', async () => {
    const { body: p } = await api(server, `/xos/slice_privileges/?slice=${slice.id}&user=${member.id}&no_hyperlinks=1`);
    return p.length === 1 && p[0].role === adminRole.id;
  });
  await page.locator('#tenant-edit-ok', { hasText: 'Saved' }).waitFor();
  assert.equal(await page.locator('#tenant-users select[aria-label="Slice role of tenant-member@mysite.org"]').inputValue(), 'admin');

  // The ssh commands: one per instance, listed and downloaded.
  await until('two ssh commands', async () => (await page.locator('#tenant-ssh li code').count()) === 2);
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#tenant-ssh-download').click()]);
  const text = readFileSync(await download.path(), 'utf8');
  assert.equal(text.trim().split('\n').length, 2, text);
  for (const i of instances) assert.match(text, new RegExp(`ssh -o "ProxyCommand ssh -q ${i.instance_id}@`));

  // At 360 px the controls stay usable (nothing wider than the screen).
  await page.setViewportSize({ width: 360, height: 800 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  const wide = await page.evaluate(() => [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1 && !e.closest('.table-wrap'))
    .slice(0, 5).map((e) => `${e.tagName}#${e.id}.${e.className}: ${Math.round(e.getBoundingClientRect().right)}`));
  assert.ok(overflow <= 0, `the page is ${overflow} px wider than the screen: ${wide.join(', ')}`);
  await shot(page, 'tenant-360');
  await page.setViewportSize({ width: 1280, height: 800 });
  assert.deepEqual(await axeViolations(page), []);

  // Delete (with a confirmation): the slice goes, and its processes stop.
  await page.locator('#tenant-delete').click();
  await page.locator('#tenant-delete-confirm').click();
  await page.locator('#tenant-status', { hasText: 'The slice was deleted.' }).waitFor();
  assert.equal((await api(server, `/xos/slices/${slice.id}/`)).status, 404);
  await until('the instances\' processes to stop', async () => !pids.some(alive));
  await until('the instances to be gone', async () =>
    (await api(server, `/xos/instances/?slice=${slice.id}`)).body.length === 0, 120000);
  // Following the deletion live asks for the deleted rows once (404s, which remove them).
  const errors = page.errors.filter((e) => !/status of 404/.test(e));
  assert.deepEqual(errors, [], errors.join('\n'));
  await page.context().close();
});

test('the Tenant view refuses a bad slice name with the server\'s message, and creates nothing', async () => {
  const page = await newPage(browser);
  await login(page, server);
  await page.goto(`${server.url}/admin/dashboard/Tenant/`);
  await page.locator('#tenant-new-card:not([hidden])').waitFor();
  await page.locator('#tenant-new-name').fill('wrongprefix_<b>x</b>');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.locator('#tenant-new-error', { hasText: 'mysite_' }).waitFor();
  assert.equal(await page.locator('#tenant-new-error b').count(), 0, 'the name is shown as text');
  assert.equal((await api(server, '/xos/slices/?name__icontains=wrongprefix')).body.length, 0);
  await page.context().close();
});
