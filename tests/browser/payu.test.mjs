// The PAYU journey in a real browser (Debian's Chromium driven by playwright-core): the shopper
// picks PayU in the widget, approves or declines on sandbox PayU's approval page shown inside the
// widget, and returns; an approved payment then reaches its final status on its own (the
// gateway's pending resolution polls PayU) while nobody asks Get Payment Status from the page.
// A merchant page is served from one origin (127.0.0.1), SmartPay from another (127.0.0.2); the
// server runs with small PayU and polling delays so each journey takes a few seconds.
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
const DATA = fs.mkdtempSync(path.join(os.tmpdir(), 'smartpay-browser-payu-'));
// The bound within which an approved PayU payment must be final without anyone asking.
const FINAL_WITHIN_MS = 20000;
const FORM = 'iframe[title="SmartPay payment form"]';

let server, merchantPage, browser, merchant, SP, SHOP;

function freePort(host) {
  return new Promise((resolve) => {
    const s = http.createServer().listen(0, host, () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

function cli(...args) {
  return execFileSync(BIN, ['--data-dir', DATA, ...args], { encoding: 'utf8' });
}

/** A merchant page: the selector (`/`) or the second page of a multi-page flow (`/confirm`). */
function pageHtml(pathname, query) {
  const confirm = pathname === '/confirm';
  const culture = query.get('culture');
  const opts = JSON.stringify({ checkoutToken: query.get('token') || '', ...(culture ? { culture } : {}) });
  return `<!doctype html><html><head><meta charset="utf-8"><title>Shop</title></head><body>
  ${confirm ? '<div id="selection-container"></div><div id="button-container"></div>' : '<div id="selector-container"></div>'}
  <script>
    window.__results = []; window.__errors = [];
    var o = ${opts};
    o.successHandler = function (d) { window.__results.push(d); };
    o.errorHandler = function (c, m) { window.__errors.push({ code: c, message: m }); };
  </script>
  <script src="${SP}/sdk/smp-bundle.js"></script>
  <script>window.SmpLibrary.SmartPayAppInstance.renderWidget(o);</script></body></html>`;
}

function serve(host, port) {
  return new Promise((resolve) => {
    const s = http.createServer((req, res) => {
      const url = new URL(req.url, `http://${host}:${port}`);
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(pageHtml(url.pathname, url.searchParams));
    }).listen(port, host, () => resolve(s));
  });
}

async function api(method, p, body) {
  const auth = 'Basic ' + Buffer.from(`${merchant.merchantKey}:${merchant.authenticationKey}`).toString('base64');
  const r = await fetch(SP + p, { method, headers: { Authorization: auth, 'Content-Type': 'application/json' }, body: body && JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}

async function checkout() {
  const r = await api('POST', '/payment/creation', {
    merchantKey: merchant.merchantKey,
    payment: { amount: 10.99, currencyCode: 'EUR', description: 'Purchase 1x product ABC' },
    consumer: { firstName: 'Butcher', lastName: 'Hells', emailAddress: 'hells.butcher_001@mail.com' },
    billingAddress: { addressLine1: 'Anystreet', city: 'Anycity', postCode: '12345', countryCode: 'DE' },
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

/** The payment's status as the merchant's server sees it (Get Payment Status, from Node). */
async function paymentStatus(transactionId) {
  const r = await api('GET', `/payment/status/${transactionId}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

async function shot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** A fresh browser context on the merchant's page; records every request the browser makes. */
async function open(query, pathname = '/') {
  const context = await browser.newContext();
  const page = await context.newPage();
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(`${SHOP}${pathname}?${new URLSearchParams(query)}`);
  return { page, context, requests };
}

async function firstResult(page) {
  await page.waitForFunction('window.__results.length > 0 || window.__errors.length > 0', null, { timeout: 15000 });
  assert.deepEqual(await page.evaluate('window.__errors'), []);
  const results = await page.evaluate('window.__results');
  assert.equal(results.length, 1);
  return results[0];
}

before(async () => {
  assert.ok(fs.existsSync(CHROMIUM), `Chromium is required at ${CHROMIUM} (scripts/test.sh installs Debian's chromium)`);
  assert.ok(fs.existsSync(BIN), `the smartpay binary is required at ${BIN}`);
  const spPort = await freePort('127.0.0.2');
  const shopPort = await freePort('127.0.0.1');
  SP = `http://127.0.0.2:${spPort}`;
  SHOP = `http://127.0.0.1:${shopPort}`;
  merchant = JSON.parse(cli('merchant', 'create', '--name', 'PayU shop', '--json'));
  cli('merchant', 'origins', 'add', merchant.merchantKey, SHOP);
  server = spawn(BIN, ['--data-dir', DATA, 'serve', '--listen', `127.0.0.2:${spPort}`], {
    env: {
      ...process.env,
      SMARTPAY_LOG_LEVEL: 'warn',
      SMARTPAY_BOOTSTRAP_SANDBOX_MERCHANT: 'false',
      SMARTPAY_ADMIN_LISTEN: '127.0.0.1:0',
      // PayU decides 1.5 s after the shopper's approval; the gateway looks 200 ms after a
      // payment became pending, then backs off from 200 ms to at most 1 s.
      SMARTPAY_SANDBOX_PAYU_CONFIRM_DELAY_MS: '1500',
      SMARTPAY_PENDING_FIRST_POLL_MS: '200',
      SMARTPAY_PENDING_POLL_INITIAL_MS: '200',
      SMARTPAY_PENDING_POLL_MAX_MS: '1000',
      SMARTPAY_SWEEP_INTERVAL_MS: '100',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (let i = 0; i < 200; i++) {
    try { if ((await fetch(SP + '/health/ready')).ok) break; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  merchantPage = await serve('127.0.0.1', shopPort);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  merchantPage?.close();
  server?.kill('SIGTERM');
});

test('PAYU approved in the widget is pending for the shopper, then final on its own', async () => {
  const c = await checkout();
  const { page, context, requests } = await open({ token: c.checkoutToken });
  const f = page.frameLocator(FORM);
  const payu = f.getByRole('radio', { name: 'PayU (pay by link)' });
  await payu.check();
  assert.equal(await f.locator('#number').isVisible(), false, 'no card fields for PayU');
  assert.equal(await f.locator('#payu-note').textContent(), "You will approve the payment on PayU's page, then return here.");
  await f.locator('#pay').click();
  // The approval page opens inside the widget, where the 3-D Secure challenge would.
  const approval = f.frameLocator('#challenge iframe[title="Approve with PayU"]');
  await approval.locator('#approve').click();
  const result = await firstResult(page);
  assert.deepEqual(result, {
    kind: 'CALLBACK',
    transactionId: c.transactionId,
    transactionStatus: 'AUTHORIZATION_PENDING',
    message: 'Your payment is being processed.',
  });
  assert.equal(await f.locator('#result').textContent(), 'Your payment is being processed.');
  await shot(page, 'payu-approved');
  await context.close();

  // Nobody asks from the page (it never called Get Payment Status); the merchant's server only
  // watches, and the payment becomes final because the gateway polls PayU by itself.
  assert.deepEqual(requests.filter((u) => u.includes('/payment/status')), []);
  const seen = [];
  const deadline = Date.now() + FINAL_WITHIN_MS;
  let status;
  for (;;) {
    status = await paymentStatus(c.transactionId);
    if (seen.at(-1) !== status.paymentStatus) seen.push(status.paymentStatus);
    if (['AUTHORIZATION_COMPLETED', 'CAPTURED'].includes(status.paymentStatus) || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  // The sandbox merchant captures automatically.
  assert.equal(status.paymentStatus, 'CAPTURED', `statuses seen: ${seen.join(' → ')}`);
  assert.equal(status.transactionOverview.paymentMethod, 'PAYU');
});

test('PAYU declined on the approval page ends like a declined card', async () => {
  const c = await checkout();
  const { page, context } = await open({ token: c.checkoutToken });
  const f = page.frameLocator(FORM);
  await f.getByRole('radio', { name: 'PayU (pay by link)' }).check();
  await f.locator('#pay').click();
  await f.frameLocator('#challenge iframe[title="Approve with PayU"]').locator('#decline').click();
  const result = await firstResult(page);
  assert.equal(result.transactionId, c.transactionId);
  assert.equal(result.transactionStatus, 'AUTHORIZATION_FAILED');
  assert.equal(result.message, 'The payment was not successful. Please use another payment method.');
  assert.equal((await paymentStatus(c.transactionId)).paymentStatus, 'AUTHORIZATION_FAILED');
  await shot(page, 'payu-declined');
  await context.close();
});

test('a decline SmartPay learned before the shopper returned ends the journey with that status', async () => {
  const c = await checkout();
  const { page, context } = await open({ token: c.checkoutToken });
  // The shopper's way back is held until PayU's notification has made SmartPay record the decline.
  let release;
  const held = new Promise((r) => { release = r; });
  await context.route('**/widget/challenge-return', async (route) => { await held; await route.continue(); });
  const f = page.frameLocator(FORM);
  await f.getByRole('radio', { name: 'PayU (pay by link)' }).check();
  await f.locator('#pay').click();
  await f.frameLocator('#challenge iframe[title="Approve with PayU"]').locator('#decline').click();
  const deadline = Date.now() + FINAL_WITHIN_MS;
  while ((await paymentStatus(c.transactionId)).paymentStatus !== 'AUTHORIZATION_FAILED' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal((await paymentStatus(c.transactionId)).paymentStatus, 'AUTHORIZATION_FAILED');
  release();
  const result = await firstResult(page);
  assert.equal(result.transactionId, c.transactionId);
  assert.equal(result.transactionStatus, 'AUTHORIZATION_FAILED');
  assert.equal(result.message, 'The payment was not successful. Please use another payment method.');
  await context.close();
});

test('PAYU is chosen, paid and approved with the keyboard alone', async () => {
  const c = await checkout();
  const { page, context } = await open({ token: c.checkoutToken });
  const f = page.frameLocator(FORM);
  await f.getByRole('radio', { name: 'PayU (pay by link)' }).waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await f.locator(':focus').getAttribute('value'), 'CARDS', 'the method group is the first stop');
  await page.keyboard.press('ArrowDown');
  assert.equal(await f.locator('input[name=method]:checked').getAttribute('value'), 'PAYU');
  assert.equal(await f.locator('#number').isVisible(), false);
  await page.keyboard.press('Tab');
  assert.equal(await f.locator(':focus').getAttribute('id'), 'pay', 'the card fields are skipped');
  await page.keyboard.press('Enter');
  // The approval page takes the focus; its first button approves.
  const approval = f.frameLocator('#challenge iframe[title="Approve with PayU"]');
  await approval.locator('#approve').waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await approval.locator(':focus').getAttribute('id'), 'approve');
  await page.keyboard.press('Enter');
  const result = await firstResult(page);
  assert.equal(result.transactionStatus, 'AUTHORIZATION_PENDING');
  await context.close();
});

test('the widget offers PayU in German', async () => {
  const c = await checkout();
  const { page, context } = await open({ token: c.checkoutToken, culture: 'de-DE' });
  const f = page.frameLocator(FORM);
  const payu = f.getByRole('radio', { name: 'PayU (Zahlung per Link)' });
  await payu.check();
  assert.equal(await f.locator('#methods-legend').textContent(), 'Bitte wählen Sie Ihre Zahlungsart');
  assert.equal(await f.locator('#payu-note').textContent(), 'Sie bestätigen die Zahlung auf der Seite von PayU und kehren dann hierher zurück.');
  assert.equal(await f.locator('#pay').textContent(), '10.99 EUR bezahlen');
  await shot(page, 'payu-german-choice');
  await f.locator('#pay').click();
  await f.frameLocator('#challenge iframe[title="Bei PayU bestätigen"]').locator('#approve').click();
  const result = await firstResult(page);
  assert.equal(result.transactionStatus, 'AUTHORIZATION_PENDING');
  assert.equal(result.message, 'Ihre Zahlung wird bearbeitet.');
  await shot(page, 'payu-german');
  await context.close();
});

test('PayU chosen on the first page is paid with the second page\'s button (multi-page flow)', async () => {
  const c = await checkout();
  const { page, context } = await open({ token: c.checkoutToken });
  await page.frameLocator(FORM).getByRole('radio', { name: 'PayU (pay by link)' }).check();
  await page.goto(`${SHOP}/confirm?${new URLSearchParams({ token: c.checkoutToken })}`);
  const f = page.frameLocator(FORM);
  await f.locator('#payu-note').waitFor();
  assert.equal(await f.locator('#methods').isVisible(), false, 'the second page shows the selection only');
  assert.equal(await f.locator('#number').isVisible(), false);
  const button = page.locator('#button-container button');
  await page.waitForFunction(() => !document.querySelector('#button-container button').disabled, null, { timeout: 15000 });
  await button.click();
  await f.frameLocator('#challenge iframe[title="Approve with PayU"]').locator('#approve').click();
  const result = await firstResult(page);
  assert.equal(result.transactionStatus, 'AUTHORIZATION_PENDING');
  await context.close();
});

test('the payment form offers PayU only for a checkout that can still be paid', async () => {
  const c = await checkout();
  const frame = (token) => fetch(`${SP}/widget/frame?t=${token}&origin=${encodeURIComponent(SHOP)}`).then((r) => r.text());
  assert.match(await frame(c.checkoutToken), /data-methods="CARDS PAYU"/);
  assert.match(await frame('A'.repeat(64)), /data-methods="CARDS"/);
});

test('the hosted checkout pays with PayU and returns to the merchant with the pending status', async () => {
  const c = await checkout();
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${SP}/checkout/${c.checkoutToken}?returnUrl=${encodeURIComponent(SHOP + '/done')}`);
  const f = page.frameLocator(FORM);
  await f.getByRole('radio', { name: 'PayU (pay by link)' }).check();
  await f.locator('#pay').click();
  await f.frameLocator('#challenge iframe[title="Approve with PayU"]').locator('#approve').click();
  await page.waitForURL((u) => u.toString().startsWith(SHOP + '/done'), { timeout: 15000 });
  const url = new URL(page.url());
  assert.equal(url.searchParams.get('transactionId'), c.transactionId);
  assert.equal(url.searchParams.get('transactionStatus'), 'AUTHORIZATION_PENDING');
  await context.close();
});
