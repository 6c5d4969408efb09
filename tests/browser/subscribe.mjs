// A subscription in the playground, in headless Chromium: paste alice's token into the
// Headers tab, run `subscription`, then like her post as bob (over HTTP from here, again
// and again: when the subscription becomes live is not observable) until the
// notification shows in the response panel. Prints the panel's text; exits 1 when the
// event does not arrive or a request leaves the gateway's origin.
// Usage: node subscribe.mjs <gateway-url> <alice-token> <bob-token> <post-id> <expect>
import { launch, openPlayground } from './browser.mjs';

const [url, alice, bob, post, expect] = process.argv.slice(2);
if (!url || !alice || !bob || !post || !expect) {
  console.error('usage: node subscribe.mjs <url> <alice-token> <bob-token> <post-id> <expect>');
  process.exit(2);
}
const browser = await launch();
const gql = (token, query, variables) => fetch(url, {
  method: 'POST',
  headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
  body: JSON.stringify({ query, variables }),
}).then((r) => r.json());
let failed = false;
try {
  const { page, foreign, errors } = await openPlayground(browser, url);
  await page.evaluate((q) => {
    document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(q);
  }, 'subscription Live { notificationAdded { kind actor { username } post { caption likeCount } } }');
  const tab = page.locator('.graphiql-editor-tools').getByText('Headers', { exact: true }).first();
  const cls = (await tab.getAttribute('class')) || '';
  if (!cls.includes('active')) await tab.click();
  const editor = page.locator('.graphiql-editor-tool .CodeMirror:visible').first();
  await editor.click();
  await page.keyboard.press('Control+A');
  await page.keyboard.insertText(JSON.stringify({ Authorization: `Bearer ${alice}` }));
  await page.click('.graphiql-execute-button');
  const panel = () => page.evaluate(() => {
    const r = document.querySelector('.graphiql-response .CodeMirror');
    return r ? r.CodeMirror.getValue() : '';
  });
  let text = '';
  for (let i = 0; i < 60 && !text.includes(expect); i++) {
    await gql(bob, 'mutation($p: ID!) { unlikePost(postId: $p) { id } }', { p: post });
    await gql(bob, 'mutation($p: ID!) { likePost(postId: $p) { id } }', { p: post });
    await new Promise((r) => setTimeout(r, 300));
    text = await panel();
  }
  console.log(text);
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT });
  if (!text.includes(expect)) {
    console.error('the event did not reach the response panel');
    failed = true;
  }
  if (errors.length) failed = true;
  if (foreign.length) {
    console.error('requests left the gateway origin:', foreign);
    failed = true;
  }
} catch (e) {
  console.error('subscribe test failed:', e.message);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
