// Drives Debian's Chromium for tests/e2e_ui.rs: reads one JSON command a line
// on stdin, answers one JSON line on stdout ({id, ok, value} or {id, ok:false,
// error}). The Rust test changes the cluster and git; this script only looks,
// as a person would, through pages that are never reloaded unless asked.
'use strict';
const fs = require('fs');
const path = require('path');
const readline = require('readline');
const { chromium } = require('playwright-core');

const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const state = { browser: null, contexts: {}, pages: {}, navigations: {}, dialogs: [], errors: [] };

async function browser() {
  if (!state.browser) {
    state.browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }
  return state.browser;
}

function page(name) {
  const p = state.pages[name];
  if (!p) throw new Error(`no page ${name}`);
  return p;
}

const ops = {
  // A new tab `name` at `url`; js:false opens it with JavaScript off.
  // Tabs of one `context` share cookies (one signed-in person each).
  async open({ name, url, js = true, colorScheme = 'light', context = 'default' }) {
    const key = `${context}-${js}-${colorScheme}`;
    if (!state.contexts[key]) {
      state.contexts[key] = await (await browser()).newContext({
        javaScriptEnabled: js, colorScheme, viewport: { width: 1366, height: 768 },
      });
    }
    const p = await state.contexts[key].newPage();
    state.pages[name] = p;
    state.navigations[name] = 0;
    p.on('dialog', async (d) => { state.dialogs.push(`${name}: ${d.type()} ${d.message()}`); await d.dismiss(); });
    p.on('pageerror', (e) => state.errors.push(`${name}: ${e.message}`));
    p.on('console', (m) => { if (m.type() === 'error') state.errors.push(`${name}: ${m.text()}`); });
    p.on('framenavigated', (f) => { if (f === p.mainFrame()) state.navigations[name] += 1; });
    const response = await p.goto(url);
    return { status: response.status(), csp: response.headers()['content-security-policy'] || null };
  },
  async goto({ name, url }) {
    const response = await page(name).goto(url);
    return response.status();
  },
  // Waits until an element matching `selector` contains `text` (without reloading).
  async waitText({ name, selector, text, timeout = 60000 }) {
    await page(name).locator(selector, { hasText: text }).first().waitFor({ timeout });
    return true;
  },
  // Waits until no element matching `selector` contains `text`.
  async waitGone({ name, selector, text, timeout = 60000 }) {
    await page(name).locator(selector, { hasText: text }).first().waitFor({ state: 'detached', timeout });
    return true;
  },
  async fill({ name, selector, value }) {
    await page(name).locator(selector).first().fill(value);
    return true;
  },
  // Clicks a submit button and waits for the page it leads to; returns its URL.
  async submit({ name, selector }) {
    const p = page(name);
    await Promise.all([p.waitForNavigation(), p.locator(selector).first().click()]);
    await p.waitForLoadState('load');
    return p.url();
  },
  async count({ name, selector }) {
    return page(name).locator(selector).count();
  },
  // textContent of every element matching `selector`.
  async texts({ name, selector }) {
    return page(name).locator(selector).allTextContents();
  },
  // The page's HTML as the browser holds it now (after live swaps).
  async html({ name }) {
    return page(name).content();
  },
  async attr({ name, selector, attribute }) {
    return page(name).locator(selector).first().getAttribute(attribute);
  },
  // Follows the first link matching `selector` with the keyboard (focus, Enter).
  async follow({ name, selector }) {
    const p = page(name);
    const link = p.locator(selector).first();
    const before = p.url();
    await link.focus();
    await Promise.all([p.waitForURL((u) => u.toString() !== before), p.keyboard.press('Enter')]);
    await p.waitForLoadState('load');
    return p.url();
  },
  navigations({ name }) { return state.navigations[name]; },
  // Whether a script of the page's own set a global: proves injected markup never ran.
  async global({ name, variable }) {
    return page(name).evaluate((v) => typeof window[v] !== 'undefined', variable);
  },
  dialogs() { return state.dialogs; },
  errors() { return state.errors; },
  // axe-core's serious and critical violations on the page as it is now.
  async axe({ name }) {
    const p = page(name);
    await p.evaluate(AXE);
    const result = await p.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
  },
  async screenshot({ name, file, fullPage = true }) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    await page(name).screenshot({ path: file, fullPage });
    return file;
  },
  async close() {
    if (state.browser) await state.browser.close();
    state.browser = null;
    return true;
  },
};

const rl = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
rl.on('line', (line) => {
  queue = queue.then(async () => {
    let id = null;
    try {
      const command = JSON.parse(line);
      id = command.id;
      const op = ops[command.op];
      if (!op) throw new Error(`unknown op ${command.op}`);
      const value = await op(command);
      process.stdout.write(JSON.stringify({ id, ok: true, value }) + '\n');
    } catch (e) {
      process.stdout.write(JSON.stringify({ id, ok: false, error: String(e && e.stack || e) }) + '\n');
    }
  });
});
rl.on('close', () => { queue.then(() => ops.close()).then(() => process.exit(0)); });
