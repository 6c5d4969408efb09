// What the browser tests share: headless Chromium (the system's, no download) with the
// flags the brief asks for, and the playground opened at `url` with every request that
// leaves the gateway's origin (http or ws) recorded in `foreign`.
import { chromium } from 'playwright-core';

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
           '--no-first-run', '--disable-quic', '--disable-component-update', '--disable-sync'],
  });
}

export async function openPlayground(browser, url, pageOptions = {}) {
  const origin = new URL(url).origin;
  const wsOrigin = origin.replace(/^http/, 'ws');
  const page = await browser.newPage(pageOptions);
  const foreign = [];
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(origin) && !u.startsWith(wsOrigin) && !u.startsWith('data:')) foreign.push(u);
  });
  const errors = [];
  page.on('pageerror', (e) => { console.error('page error:', e.message); errors.push(e.message); });
  await page.goto(url, { waitUntil: 'load', headers: { accept: 'text/html' } });
  await page.waitForSelector('.graphiql-query-editor .CodeMirror', { timeout: 30000 });
  return { page, foreign, errors };
}
