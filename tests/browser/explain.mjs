// The playground's Sign in and Explain plugins in headless Chromium, as a user would use
// them: open "Sign in", type a username and password, sign in (the token must land in
// the Headers tab), run `query`, open "Explain" and read the plan and the cost; then sign
// out (the Authorization header must go). Prints one JSON line with what it saw; exits 1
// when a step fails or a request leaves the gateway's origin.
// Usage: node explain.mjs <gateway-url> <username> <password> <query> <expect>
// EXPLAIN_SCREENSHOT=path saves the page with the Explain panel open.
import { launch, openPlayground } from './browser.mjs';

const [url, username, password, query, expect] = process.argv.slice(2);
if (!url || !username || !password || !query || !expect) {
  console.error('usage: node explain.mjs <url> <username> <password> <query> <expect>');
  process.exit(2);
}
const browser = await launch();
let failed = false;
// The Headers tab is the one open (`defaultEditorToolsVisibility: "headers"`): the
// visible editor of the tools section.
const headersText = (page) => page.evaluate(() => {
  const e = [...document.querySelectorAll('.graphiql-editor-tool .CodeMirror')]
    .find((el) => !el.closest('.graphiql-editor').classList.contains('hidden'));
  return e ? e.CodeMirror.getValue() : '(no visible headers editor)';
});
try {
  const { page, foreign, errors } = await openPlayground(browser, url, { viewport: { width: 1400, height: 1300 } });

  // Sign in.
  await page.click('[aria-label="Show Sign in"]');
  await page.fill('.portico-sign-in input[name="username"]', username);
  await page.fill('.portico-sign-in input[name="password"]', password);
  await page.click('.portico-sign-in button[type="submit"]');
  await page.waitForFunction(() => {
    const s = document.querySelector('.portico-sign-in .portico-status');
    return s && /^(Signed in|Sign-in failed)/.test(s.textContent);
  }, null, { timeout: 30000 });
  const status = await page.textContent('.portico-sign-in .portico-status');
  const signedInHeaders = await headersText(page);

  // Run the query.
  await page.evaluate((q) => {
    document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(q);
  }, query);
  await page.click('.graphiql-execute-button');
  await page.waitForFunction((e) => {
    const r = document.querySelector('.graphiql-response .CodeMirror');
    return r && r.CodeMirror.getValue().includes(e);
  }, expect, { timeout: 30000 });
  const response = await page.evaluate(() => document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue());

  // Explain.
  await page.click('[aria-label="Show Explain"]');
  await page.waitForSelector('.portico-explain .portico-fetch', { timeout: 30000 });
  const explained = await page.evaluate(() => ({
    fetches: [...document.querySelectorAll('.portico-explain .portico-fetch')].map((f) => ({
      subgraph: f.querySelector('.portico-subgraph').textContent,
      operation: f.querySelector('.portico-operation').textContent,
    })),
    kinds: [...document.querySelectorAll('.portico-explain .portico-kind')].map((k) => k.textContent),
    estimated: document.querySelector('.portico-explain [data-cost="estimated"]').textContent,
    actual: document.querySelector('.portico-explain [data-cost="actual"]').textContent,
    breakdown: [...document.querySelectorAll('.portico-cost-breakdown tbody tr')].map((tr) =>
      [...tr.querySelectorAll('td')].map((td) => td.textContent.trim())),
  }));
  if (process.env.EXPLAIN_SCREENSHOT) await page.screenshot({ path: process.env.EXPLAIN_SCREENSHOT });

  // Sign out.
  await page.click('[aria-label="Show Sign in"]');
  await page.click('.portico-sign-in button[type="button"]');
  await page.waitForFunction(() => {
    const s = document.querySelector('.portico-sign-in .portico-status');
    return s && s.textContent.startsWith('Signed out');
  }, null, { timeout: 10000 });
  const signedOutHeaders = await headersText(page);

  console.log(JSON.stringify({ status, signedInHeaders, response, explained, signedOutHeaders, foreign }));
  if (errors.length) failed = true;
  if (foreign.length) {
    console.error('requests left the gateway origin:', foreign);
    failed = true;
  }
} catch (e) {
  console.error('explain test failed:', e.message);
  try {
    const [page] = browser.contexts()[0].pages();
    await page.screenshot({ path: "/tmp/portico-explain-failed.png" });
  } catch (_) {}
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
