// Opens the gateway's playground in headless Chromium, pastes an Authorization header,
// runs a query and prints the response panel's text. Fails (exit 1) when the page does
// not load, any request leaves the gateway's origin, or the response lacks `expect`.
// Usage: node playground.mjs <gateway-url> <query> <expect> [bearer-token]
import { launch, openPlayground } from './browser.mjs';

const [url, query, expect, token] = process.argv.slice(2);
if (!url || !query || !expect) {
  console.error('usage: node playground.mjs <url> <query> <expect> [token]');
  process.exit(2);
}
const browser = await launch();
let failed = false;
try {
  const { page, foreign } = await openPlayground(browser, url);
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
