// The SmartPay widget in a real browser: Debian's Chromium driven by playwright-core.
// A merchant page is served from one origin (127.0.0.1), SmartPay from another (127.0.0.2).
// Run by scripts/test.sh; WIDGET_TEST_BINARY names the binary (default: target/debug/smartpay).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BIN = process.env.WIDGET_TEST_BINARY || path.join(ROOT, 'target/debug/smartpay');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.join(ROOT, 'test-artifacts/browser');
const DATA = fs.mkdtempSync(path.join(os.tmpdir(), 'smartpay-browser-'));

let server, merchantPage, strangerPage, browser, merchant, SP, SHOP, STRANGER;

function freePort(host) {
  return new Promise((resolve) => {
    const s = http.createServer().listen(0, host, () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

function cli(...args) {
  return execFileSync(BIN, ['--data-dir', DATA, ...args], { encoding: 'utf8' });
}

/** A merchant page: loads SmartPay's loader and renders the widget with the query's options. */
function pageHtml(spBase, query) {
  const token = query.get('token') || '';
  const culture = query.get('culture');
  const multi = query.get('multi') === '1';
  const opts = query.get('raw') ? query.get('raw') : JSON.stringify({ checkoutToken: token, ...(culture ? { culture } : {}), appearance: { colorPrimary: '#0b5' } });
  return `<!doctype html><html><head><meta charset="utf-8"><title>Shop</title></head><body>
  <h1>Shop</h1>
  ${multi ? '<div id="selection-container"></div><div id="button-container"></div>' : '<div id="selector-container"></div>'}
  <script>
    window.__messages = []; window.__results = []; window.__errors = [];
    window.addEventListener('message', function (e) { try { window.__messages.push(JSON.stringify(e.data)); } catch (x) {} });
  </script>
  <script src="${spBase}/sdk/smp-bundle.js"></script>
  <script>
    var o = ${opts};
    if (o && typeof o === 'object') {
      o.successHandler = function (d) { window.__results.push(d); };
      o.errorHandler = function (c, m) { window.__errors.push({ code: c, message: m }); };
    }
    window.SmpLibrary.SmartPayAppInstance.renderWidget(o);
    setTimeout(function () {
      var frame = document.querySelector('iframe');
      window.__frameDocument = frame ? frame.contentDocument : 'no frame';
      try { window.__frameRead = String(window.frames[0].document.body.innerHTML); }
      catch (e) { window.__frameRead = 'blocked: ' + e.name; }
    }, 1500);
  </script></body></html>`;
}

function serve(host, port) {
  return new Promise((resolve) => {
    const s = http.createServer((req, res) => {
      const url = new URL(req.url, `http://${host}:${port}`);
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(pageHtml(SP, url.searchParams));
    }).listen(port, host, () => resolve(s));
  });
}

async function api(method, p, body) {
  const auth = 'Basic ' + Buffer.from(`${merchant.merchantKey}:${merchant.authenticationKey}`).toString('base64');
  const r = await fetch(SP + p, { method, headers: { Authorization: auth, 'Content-Type': 'application/json' }, body: body && JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}

async function checkout(extra = {}) {
  const r = await api('POST', '/payment/creation', {
    merchantKey: merchant.merchantKey,
    payment: { amount: 10.99, currencyCode: 'EUR', description: extra.description || 'Purchase 1x product ABC' },
    consumer: { firstName: 'Butcher', lastName: 'Hells', emailAddress: 'hells.butcher_001@mail.com' },
    billingAddress: { addressLine1: 'Anystreet', city: 'Anycity', postCode: '12345', countryCode: 'DE' },
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

async function waitFor(page, expr, timeout = 15000) {
  await page.waitForFunction(expr, null, { timeout });
}

// MM/YY three years from today, so the test cards never expire.
function validExpiry() {
  const now = new Date();
  return `${String(now.getUTCMonth() + 1).padStart(2, '0')}/${String((now.getUTCFullYear() + 3) % 100).padStart(2, '0')}`;
}
const EXPIRY = validExpiry();

async function payWith(page, number, { cvc = '737', expiry = EXPIRY } = {}) {
  const f = page.frameLocator('iframe[title="SmartPay payment form"]');
  await f.locator('#number').fill(number);
  await f.locator('#expiry').fill(expiry);
  await f.locator('#cvc').fill(cvc);
  await f.locator('#pay').click();
  return f;
}

async function shot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

before(async () => {
  assert.ok(fs.existsSync(CHROMIUM), `Chromium is required at ${CHROMIUM} (scripts/test.sh installs Debian's chromium)`);
  assert.ok(fs.existsSync(BIN), `the smartpay binary is required at ${BIN}`);
  const spPort = await freePort('127.0.0.2');
  const shopPort = await freePort('127.0.0.1');
  const strangerPort = await freePort('127.0.0.1');
  SP = `http://127.0.0.2:${spPort}`;
  SHOP = `http://127.0.0.1:${shopPort}`;
  STRANGER = `http://127.0.0.1:${strangerPort}`;
  merchant = JSON.parse(cli('merchant', 'create', '--name', 'Browser shop', '--json'));
  cli('merchant', 'origins', 'add', merchant.merchantKey, SHOP);
  server = spawn(BIN, ['--data-dir', DATA, 'serve', '--listen', `127.0.0.2:${spPort}`], {
    env: { ...process.env, SMARTPAY_SANDBOX_PENDING_DELAY_MS: '60000', SMARTPAY_LOG_LEVEL: 'warn', SMARTPAY_BOOTSTRAP_SANDBOX_MERCHANT: 'false', SMARTPAY_ADMIN_LISTEN: '127.0.0.1:0' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (let i = 0; i < 200; i++) {
    try { if ((await fetch(SP + '/health/ready')).ok) break; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  merchantPage = await serve('127.0.0.1', shopPort);
  strangerPage = await serve('127.0.0.1', strangerPort);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  merchantPage?.close();
  strangerPage?.close();
  server?.kill('SIGTERM');
});

async function open(query, origin = SHOP) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const requests = [];
  page.on('request', (r) => requests.push({ url: r.url(), body: r.postData() || '' }));
  await page.goto(`${origin}/?${new URLSearchParams(query)}`);
  return { page, requests, context };
}

const CASES = [
  ['4111 1111 1111 1111', 'CAPTURED', 'approved'],
  ['4000 0000 0000 0002', 'AUTHORIZATION_FAILED', 'declined'],
  ['4000 0000 0000 9995', 'AUTHORIZATION_FAILED', 'insufficient-funds'],
  ['4000 0000 0000 0259', 'AUTHORIZATION_PENDING', 'pending'],
];

for (const [card, expected, name] of CASES) {
  test(`paying with ${name} card ${card} ends in ${expected}`, async () => {
    const c = await checkout();
    const { page, requests, context } = await open({ token: c.checkoutToken });
    await payWith(page, card);
    await waitFor(page, 'window.__results.length > 0');
    const [result] = await page.evaluate('window.__results');
    assert.deepEqual(Object.keys(result).sort(), ['kind', 'message', 'transactionId', 'transactionStatus']);
    assert.equal(result.kind, 'CALLBACK');
    assert.equal(result.transactionId, c.transactionId);
    assert.equal(result.transactionStatus, expected);
    assert.ok(result.message.length > 0);
    const status = await api('GET', `/payment/status/${c.transactionId}`);
    assert.equal(status.body.paymentStatus, expected);
    // I4: card data travels only to SmartPay; nothing the merchant page receives carries it.
    const digits = card.replace(/ /g, '');
    for (const r of requests.filter((r) => r.body.includes(digits) || r.body.includes('737'))) {
      assert.ok(r.url.startsWith(SP + '/'), `card data sent to ${r.url}`);
    }
    const messages = await page.evaluate('window.__messages');
    assert.ok(messages.length > 0);
    for (const m of messages) assert.ok(!m.includes(digits) && !m.includes('"737"'), `card data in a message: ${m}`);
    // I1: the merchant page cannot read the frame.
    await waitFor(page, 'window.__frameRead !== undefined');
    assert.match(await page.evaluate('window.__frameRead'), /^blocked: SecurityError/);
    assert.equal(await page.evaluate('window.__frameDocument'), null);
    await shot(page, name);
    await context.close();
  });
}

for (const [decision, expected] of [['approve', 'CAPTURED'], ['fail', 'AUTHORIZATION_FAILED']]) {
  test(`a 3-D Secure challenge inside the widget can ${decision}`, async () => {
    const c = await checkout();
    const { page, context } = await open({ token: c.checkoutToken });
    const f = await payWith(page, '4000 0000 0000 3220');
    const challenge = f.frameLocator('iframe[title="Confirm with your bank"]');
    await challenge.locator(`#${decision}`).click();
    await waitFor(page, 'window.__results.length > 0');
    const [result] = await page.evaluate('window.__results');
    assert.equal(result.transactionStatus, expected);
    assert.equal((await api('GET', `/payment/status/${c.transactionId}`)).body.paymentStatus, expected);
    await shot(page, `3ds-${decision}`);
    await context.close();
  });
}

test('the widget speaks German and takes the appearance options', async () => {
  const c = await checkout();
  const { page, context } = await open({ token: c.checkoutToken, culture: 'de-DE' });
  const f = page.frameLocator('iframe[title="SmartPay payment form"]');
  await f.locator('#pay').waitFor();
  await waitFor(page, 'window.__messages.some(function (m) { return m.indexOf("smp:ready") >= 0; })');
  assert.equal(await f.locator('#pay').textContent(), '10.99 EUR bezahlen');
  assert.equal(await f.locator('label[for=number]').textContent(), 'Kartennummer');
  const color = await f.locator('#pay').evaluate((b) => getComputedStyle(b).backgroundColor);
  assert.equal(color, 'rgb(0, 187, 85)');
  // Checks as the shopper types, announced to screen readers.
  await f.locator('#number').fill('4111 1111 1111 1112');
  await f.locator('#expiry').focus();
  assert.equal(await f.locator('#number').getAttribute('aria-invalid'), 'true');
  assert.equal(await f.locator('#number-error').textContent(), 'Bitte eine gültige Kartennummer eingeben.');
  await f.locator('#number').fill('3782 822463 10005');
  assert.equal(await f.locator('#brand').textContent(), 'AMEX');
  assert.equal(await f.locator('#number-error').textContent(), '', 'the corrected number clears its message');
  assert.equal(await f.locator('#number').getAttribute('aria-invalid'), 'false');
  await shot(page, 'german');
  await context.close();
});

test('merchant-supplied text is escaped and injected script does not run', async () => {
  const c = await checkout({ description: '<img src=x onerror="parent.__pwned=1"><script>parent.__pwned=1</script>' });
  const { page, context } = await open({ token: c.checkoutToken });
  const f = page.frameLocator('iframe[title="SmartPay payment form"]');
  await f.locator('.smp-description').waitFor();
  assert.equal(await f.locator('.smp-description').textContent(), '<img src=x onerror="parent.__pwned=1"><script>parent.__pwned=1</script>');
  assert.equal(await page.evaluate('window.__pwned'), undefined);
  const r = await fetch(`${SP}/widget/frame?t=${c.checkoutToken}&origin=${encodeURIComponent(SHOP)}`);
  const csp = r.headers.get('content-security-policy');
  assert.match(csp, /script-src 'self';/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.match(csp, new RegExp(`frame-ancestors [^;]*${SHOP.replace(/[.:/]/g, (x) => '\\' + x)}`));
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
  await context.close();
});

test('an unregistered origin cannot embed the widget', async () => {
  const c = await checkout();
  const { page, context } = await open({ token: c.checkoutToken }, STRANGER);
  await waitFor(page, 'window.__errors.length > 0', 20000);
  assert.equal((await page.evaluate('window.__errors'))[0].code, 'ERR_CONFIG');
  assert.equal(await page.evaluate('window.__results.length'), 0);
  await context.close();
});

test('invalid options and unknown tokens reach the errorHandler', async () => {
  const { page, context } = await open({ raw: JSON.stringify({ checkoutToken: 'short' }) });
  await waitFor(page, 'window.__errors.length > 0');
  assert.equal((await page.evaluate('window.__errors'))[0].code, 'ERROR_INVALID_INPUT');
  await context.close();
  const second = await open({ token: 'A'.repeat(64) });
  await waitFor(second.page, 'window.__errors.length > 0');
  assert.equal((await second.page.evaluate('window.__errors'))[0].code, 'ERR_CONFIG');
  await second.context.close();
});

test('a second page shows the selection and an external pay button (multi-page flow)', async () => {
  const c = await checkout();
  const { page, context } = await open({ token: c.checkoutToken, multi: '1' });
  const f = page.frameLocator('iframe[title="SmartPay payment form"]');
  await f.locator('#number').fill('5555 5555 5555 4444');
  await f.locator('#expiry').fill(EXPIRY);
  await f.locator('#cvc').fill('737');
  await page.locator('#button-container button').click();
  await waitFor(page, 'window.__results.length > 0');
  assert.equal((await page.evaluate('window.__results'))[0].transactionStatus, 'CAPTURED');
  assert.equal((await api('GET', `/payment/status/${c.transactionId}`)).body.transactionOverview.paymentMethod, 'MSTRCRD');
  await context.close();
});

test('the hosted checkout pays and returns to the merchant', async () => {
  const c = await checkout();
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${SP}/checkout/${c.checkoutToken}?returnUrl=${encodeURIComponent(SHOP + '/done')}`);
  await payWith(page, '4111 1111 1111 1111');
  await page.waitForURL((u) => u.toString().startsWith(SHOP + '/done'), { timeout: 15000 });
  const url = new URL(page.url());
  assert.equal(url.searchParams.get('transactionId'), c.transactionId);
  assert.equal(url.searchParams.get('transactionStatus'), 'CAPTURED');
  await context.close();
});

test('a finished checkout cannot be paid twice', async () => {
  const c = await checkout();
  const { page, context } = await open({ token: c.checkoutToken });
  await payWith(page, '4111 1111 1111 1111');
  await waitFor(page, 'window.__results.length > 0');
  await context.close();
  const again = await open({ token: c.checkoutToken });
  await waitFor(again.page, 'window.__errors.length > 0');
  assert.equal((await again.page.evaluate('window.__errors'))[0].code, 'ERR_PAYMENT_CALLBACK');
  await again.context.close();
});

test('a newcomer pays in the demo shop and sees CAPTURED from Get Payment Status', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${SP}/demo`);
  await page.locator('#start').click();
  const f = page.frameLocator('iframe[title="SmartPay payment form"]');
  await f.locator('#number').fill('4111 1111 1111 1111');
  await f.locator('#expiry').fill(EXPIRY);
  await f.locator('#cvc').fill('737');
  await f.locator('#pay').click();
  await page.waitForFunction(() => document.getElementById('status').textContent.includes('"paymentStatus"'), null, { timeout: 15000 });
  const status = JSON.parse(await page.locator('#status').textContent());
  assert.equal(status.paymentStatus, 'CAPTURED');
  assert.equal(status.transactionOverview.paymentMethod, 'VISA');
  await shot(page, 'demo');
  await context.close();
});

test('a newcomer refunds a demo payment in part, then in full, and sees a late cancel refused', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${SP}/demo`);
  assert.equal(await page.locator('#manage').isVisible(), false, 'no buttons before a payment exists');
  await page.locator('#start').click();
  const f = page.frameLocator('iframe[title="SmartPay payment form"]');
  await f.locator('#number').fill('4111 1111 1111 1111');
  await f.locator('#expiry').fill(EXPIRY);
  await f.locator('#cvc').fill('737');
  await f.locator('#pay').click();
  await page.waitForFunction(() => document.getElementById('status').textContent.includes('"paymentStatus"'), null, { timeout: 15000 });
  const paid = JSON.parse(await page.locator('#status').textContent());
  assert.equal(paid.paymentStatus, 'CAPTURED');
  const answer = async (button, expected) => {
    await page.locator(button).click();
    await page.waitForFunction((e) => document.getElementById('status').textContent.includes(e), expected, { timeout: 15000 });
    return await page.locator('#status').textContent();
  };
  await page.locator('#mod-amount').fill('4.00');
  const partial = JSON.parse(await answer('#refund', '"modification"'));
  assert.equal(partial.transactionId, paid.transactionId);
  assert.equal(partial.paymentStatus, 'CAPTURED');
  assert.equal(partial.modification.modificationData.type, 'REFUND');
  assert.equal(partial.modification.status, 'REFUNDED');
  assert.equal(partial.amounts.refunded, 4);
  await page.locator('#mod-amount').fill('');
  const full = JSON.parse(await answer('#refund', '"REFUNDED"'));
  assert.equal(full.paymentStatus, 'REFUNDED');
  assert.equal(full.amounts.refunded, 10.99);
  const refused = await answer('#cancel', 'HTTP 409');
  assert.match(refused, /invalid_state/);
  await shot(page, 'demo-refund');
  await context.close();
});
