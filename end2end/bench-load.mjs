// First-page load time for `make bench`: a release server, a fresh browser (empty cache), the
// time until the home page's dashboard tabs are on screen after login (they are in the server's
// HTML), the time until the wasm bundle made them live (loaded, islands hydrated), and what the
// page transferred.
import { startServer, launchBrowser, newPage, login } from './tests/harness.mjs';

const server = await startServer();
const browser = await launchBrowser();
const runs = [];
const live = [];
let transferred = 0;
for (let i = 0; i < 5; i++) {
  const page = await newPage(browser);
  await login(page, server);
  const client = await page.context().newCDPSession(page);
  await client.send('Network.enable');
  await client.send('Network.clearBrowserCache');
  let wasm = 0;
  client.on('Network.loadingFinished', (e) => { wasm += e.encodedDataLength; });
  const t0 = Date.now();
  await page.goto(`${server.url}/`, { waitUntil: 'commit' });
  await page.locator('[role=tablist] [role=tab]').first().waitFor();
  runs.push(Date.now() - t0);
  await page.locator('.home[data-live]').waitFor();
  live.push(Date.now() - t0);
  transferred = Math.max(transferred, wasm);
  await page.context().close();
}
runs.sort((a, b) => a - b);
live.sort((a, b) => a - b);
console.log(`first page (home, empty cache, until the tabs show): median ${runs[2]} ms (runs: ${runs.join(', ')} ms); until live: median ${live[2]} ms (runs: ${live.join(', ')} ms); ${Math.round(transferred / 1024)} KB transferred`);
await browser.close();
await server.stop();
