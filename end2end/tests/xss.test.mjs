// Nothing a tenant writes runs in an admin's browser: a site PI writes markup into every text
// field it may write (through the REST API, as a tenant would), then an admin opens every page,
// admin list, changed object and dashboard view in Chromium. A payload that ran would call the
// binding `__xss`; none may. The payload reaching the pages as text is checked too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, login, api } from './harness.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launchBrowser(); });
after(async () => { await browser?.close(); await server?.stop(); });

const PI = { email: 'xsspi@mysite.org', password: 'xss-pi-password' };
const PAYLOADS = [
  '"><img src=x onerror="__xss(\'img\')"><script>__xss(\'script\')</script><svg onload="__xss(\'svg\')">',
  '<img src=x onerror=__xss(1)>',
  '<script>__xss(2)</script>',
];

async function as(who, path, init = {}) {
  const auth = Buffer.from(`${who.email}:${who.password}`).toString('base64');
  const r = await fetch(`${server.url}${path}`, {
    ...init,
    headers: { Authorization: `Basic ${auth}`, 'Content-Type': 'application/json', ...(init.headers || {}) },
  });
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  return { status: r.status, body };
}

test('markup a tenant stores never runs in an admin\'s pages or views', { timeout: 600_000 }, async () => {
  // A PI of MySite, as in the issue.
  const { body: [site] } = await api(server, '/xos/sites/?login_base=mysite');
  let r = await api(server, '/xos/users/', {
    method: 'POST',
    body: JSON.stringify({ email: PI.email, password: PI.password, firstname: 'P', lastname: 'I', site: site.id }),
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const { body: [pi] } = await api(server, '/xos/site_roles/?role=pi');
  r = await api(server, '/xos/siteprivileges/', { method: 'POST', body: JSON.stringify({ user: r.body.id, site: site.id, role: pi.id }) });
  assert.equal(r.status, 201, JSON.stringify(r.body));

  // Every text field of every object the PI sees, written with the longest payload it takes.
  const doc = (await api(server, '/openapi.json')).body;
  const schemas = doc.components.schemas;
  const written = []; // [plural, id, field]
  for (const [path, ops] of Object.entries(doc.paths)) {
    const m = path.match(/^\/xos\/([a-z_]+)\/\{id\}\/$/);
    if (!m || !ops.patch) continue;
    const plural = m[1];
    const ref = ops.patch.requestBody?.content['application/json'].schema.$ref;
    const schema = ref && schemas[ref.split('/').pop()];
    const texts = Object.entries(schema?.properties || {})
      .filter(([, p]) => p.type === 'string' && !p.format && !p.enum)
      .map(([name, p]) => [name, p.maxLength || 100000]);
    if (!texts.length) continue;
    const list = await as(PI, `/xos/${plural}/?no_hyperlinks=1`);
    if (list.status !== 200 || !Array.isArray(list.body)) continue;
    for (const obj of list.body.slice(0, 5)) {
      for (const [field, max] of texts) {
        for (const payload of PAYLOADS.filter((p) => p.length <= max)) {
          const w = await as(PI, `/xos/${plural}/${obj.id}/`, { method: 'PATCH', body: JSON.stringify({ [field]: payload }) });
          if (w.status === 200) { written.push([plural, obj.id, field]); break; }
        }
      }
    }
  }
  const fields = new Set(written.map(([p, , f]) => `${p}.${f}`));
  for (const must of ['slices.description', 'users.firstname', 'users.lastname', 'sites.name', 'instances.name', 'instances.userData']) {
    assert.ok(fields.has(must), `the PI could not write ${must}: wrote ${[...fields].join(', ')}`);
  }

  // The admin's browser: every page, list and changed object, and every dashboard view.
  const page = await newPage(browser);
  const ran = [];
  await page.context().exposeBinding('__xss', ({ frame }, what) => { ran.push(`${what} in ${frame.url()}`); });
  await login(page, server);
  const { body: models } = await api(server, '/xos/dashboardviews/?no_hyperlinks=1');
  const urls = ['/', '/admin/'];
  // Admin pages are at /admin/<app>/<model>/: the index links to each list.
  await page.goto(`${server.url}/admin/`);
  const lists = await page.$$eval('main a[href^="/admin/"]', (as) => [...new Set(as.map((a) => a.getAttribute('href')))]);
  assert.ok(lists.length > 10, `admin index lists: ${lists}`);
  urls.push(...lists);
  const byPlural = new Map();
  for (const href of lists) {
    const model = href.split('/').filter(Boolean).pop();
    byPlural.set(model, href);
  }
  for (const [plural, id] of written) {
    const name = plural.replace(/_/g, '').replace(/s$/, '');
    const href = [...byPlural.entries()].find(([m]) => m === name || `${m}s` === plural || m === plural)?.[1];
    if (href) urls.push(`${href}${id}/`);
  }
  for (const v of models) urls.push(`/admin/dashboard/${encodeURIComponent(v.name)}/`);
  const seen = new Set();
  for (const u of urls) {
    if (seen.has(u)) continue;
    seen.add(u);
    await page.goto(`${server.url}${u}`, { waitUntil: 'networkidle' });
    await page.waitForTimeout(150);
  }
  // The Hello World view builds its table from the descriptions.
  await page.goto(`${server.url}/admin/dashboard/Hello%20World/`, { waitUntil: 'networkidle' });
  await page.locator('#dynamicTableOfInterestingThings tr').nth(2).waitFor({ timeout: 10000 });
  await page.waitForTimeout(300);
  assert.deepEqual(ran, [], `payloads ran:\n${ran.join('\n')}`);
  // …where the payload is text, not markup.
  await page.locator('#dynamicTableOfInterestingThings td', { hasText: '__xss' }).first().waitFor({ timeout: 10000 });
  // The binding works: a script of the page itself reaches it.
  await page.evaluate(() => window.__xss('control'));
  assert.equal(ran.length, 1);
  assert.ok(seen.size > 20, `pages opened: ${seen.size}`);
  await page.context().close();
});
