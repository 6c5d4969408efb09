// Opens the gateway's playground in headless Chromium, pastes an Authorization header,
// runs a query and prints the response panel's text. Fails (exit 1) when the page does
// not load, any request leaves the gateway's origin, or the response lacks `expect`.
// Usage: node playground.mjs <gateway-url> <query> <expect> [bearer-token]
import { chromium } from 'playwright-core';

const [url, query, expect, token] = process.argv.slice(2);
if (!url || !query || !expect) {
  console.error('usage: node playground.mjs <url> <query> <expect> [token]');
  process.exit(2);
}
const origin = new URL(url).origin;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--no-first-run', '--disable-quic', '--disable-component-update', '--disable-sync'],
});
let failed = false;
try {
  const page = await browser.newPage();
  const foreign = [];
  page.on('request', (r) => { if (!r.url().startsWith(origin) && !r.url().startsWith('data:')) foreign.push(r.url()); });
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.goto(url, { waitUntil: 'load', headers: { accept: 'text/html' } });
  await page.waitForSelector('.graphiql-query-editor .CodeMirror', { timeout: 30000 });
  await page.evaluate((q) => {
    document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(q);
  }, query);
  if (token) {
    // Open the Headers tab (unless open) and type the Authorization header, as a user would.
    const tab = page.locator('.graphiql-editor-tools').getByText('Headers', { exact: true }).first();
    const cls = (await tab.getAttribute('class')) || '';
    if (!cls.includes('active')) await tab.click();
    const editor = page.locator('.graphiql-editor-tool .CodeMirror:visible').first();
    await editor.click();
    await page.keyboard.press('Control+A');
    await page.keyboard.insertText(JSON.stringify({ Authorization: `Bearer ${token}` }));
  }
  await page.click('.graphiql-execute-button');
  await page.waitForFunction((e) => {
    const r = document.querySelector('.graphiql-response .CodeMirror');
    return r && r.CodeMirror.getValue().includes(e);
  }, expect, { timeout: 30000 });
  const text = await page.evaluate(() => document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue());
  console.log(text);
  await page.screenshot({ path: process.env.SCREENSHOT || '/tmp/portico-playground.png' });
  if (foreign.length) {
    console.error('requests left the gateway origin:', foreign);
    failed = true;
  }
} catch (e) {
  console.error('playground test failed:', e.message);
  try {
    const [page] = browser.contexts()[0].pages();
    const r = await page.evaluate(() => { const el = document.querySelector('.graphiql-response .CodeMirror'); return el ? el.CodeMirror.getValue() : '(no response panel)'; });
    console.error('response panel:', r);
    await page.screenshot({ path: process.env.SCREENSHOT || '/tmp/portico-playground.png' });
  } catch (_) {}
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
