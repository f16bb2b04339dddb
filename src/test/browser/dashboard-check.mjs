// Opens Herald's dashboard in Debian's headless Chromium, signs in with the key given, and prints what a
// person would see as JSON: the chart's totals per series, the totals table, and every console error.
// Usage: node dashboard-check.mjs <baseUrl> <key> <app>   (CHROMIUM overrides /usr/bin/chromium)
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [baseUrl, key, app] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), 'herald-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync']
});
const problems = [];
try {
  const page = browser.pages()[0] || await browser.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push('console: ' + message.text());
  });
  page.on('pageerror', (error) => problems.push('page: ' + error.message));
  page.on('requestfailed', (request) => problems.push('request failed: ' + request.url()));

  const response = await page.goto(baseUrl + '/dashboard');
  if (!response.ok()) throw new Error('GET /dashboard answered ' + response.status());
  await page.fill('#key', key);
  await page.fill('#app', app);
  await page.click('button[type=submit]');
  await page.waitForSelector('body[data-loaded=true]', { timeout: 20000 });

  const chart = await page.evaluate(() => {
    const instance = Chart.getChart(document.getElementById('deliveries-chart'));
    const totals = {};
    for (const set of instance.data.datasets) {
      totals[set.label] = set.data.reduce((a, b) => a + b, 0);
    }
    const box = document.getElementById('deliveries-chart').getBoundingClientRect();
    return { totals, width: box.width, height: box.height, buckets: instance.data.labels.length };
  });
  const table = await page.$$eval('#totals tbody tr[data-series]', (rows) =>
    Object.fromEntries(rows.map((tr) => [tr.dataset.series, Number(tr.querySelector('td.count').textContent)])));
  const who = await page.textContent('#who');
  console.log(JSON.stringify({ who, chart, table, problems }));
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
