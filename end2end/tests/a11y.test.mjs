// Accessibility (axe-core: no serious or critical violation) and layout at 1280 and 360 px on
// each main page. (The guide's helloworld view is left out of the axe check: it is the guide's
// template, unmodified, and its input has no label.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, login, axeViolations, homeTabs, shot } from './harness.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launchBrowser(); });
after(async () => { await browser?.close(); await server?.stop(); });

const PAGES = [
  ['home', '/', (p) => homeTabs(p)],
  ['customize', '/', async (p) => {
    await homeTabs(p);
    await p.getByRole('tab', { name: 'Customize' }).click();
    await p.locator('[data-testid=available]').waitFor();
  }],
  ['admin-index', '/admin/', (p) => p.locator('.model-index').waitFor()],
  ['admin-slices', '/admin/core/slice/', (p) => p.locator('table[data-testid=admin-list] tbody tr').first().waitFor()],
  ['admin-slice', '/admin/core/slice/1/', (p) => p.locator('#field-name').waitFor()],

  ['view-developer', '/admin/dashboard/Developer/', (p) => p.locator('#developer-slices tbody tr').first().waitFor()],
  ['view-helloworld-service', '/admin/dashboard/Hello%20World%20Service/', (p) => p.locator('#hello-tenants tbody tr').first().waitFor()],
  ['admin-helloworld-tenants', '/admin/helloworld/helloworldtenant/', (p) => p.locator('table[data-testid=admin-list] tbody tr').first().waitFor()],
];

for (const [width, height] of [[1280, 800], [360, 740]]) {
  test(`main pages at ${width} px: no serious accessibility problem, every control reachable`, async () => {
    const page = await newPage(browser, { width, height });
    await login(page, server);
    const problems = [];
    for (const [name, path, ready] of PAGES) {
      await page.goto(`${server.url}${path}`);
      await ready(page);
      for (const v of await axeViolations(page)) problems.push(`${name}: ${v}`);
      // Nothing wider than the screen except inside scrollable tables.
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      if (overflow > 1) problems.push(`${name}: the page is ${overflow}px wider than the screen`);
      await shot(page, `${name}-${width}`);
    }
    await page.goto(`${server.url}/login`);
    for (const v of await axeViolations(page)) problems.push(`login: ${v}`);
    await shot(page, `login-${width}`);
    assert.deepEqual(problems, []);
  });
}
