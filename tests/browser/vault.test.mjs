// The vault's journeys in the widget, in a real browser (Debian's Chromium driven by
// playwright-core): a guest; a registered shopper without stored options who stores a card; the
// same shopper paying the next checkout with the stored card in two clicks; deleting an option
// and choosing the default; "expires soon" and expired options; paying as a guest with an
// account; the language taken from the checkout's consumer.culture; the optional continue
// containers; and a server whose vault has no usable key, where the widget still takes cards.
// What the widget shows is checked against what the merchant's server sees through the API.
// A merchant page is served from one origin (127.0.0.1), SmartPay from another (127.0.0.2).
// Run by scripts/test.sh; WIDGET_TEST_BINARY names the binary (default: target/debug/smartpay).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BIN = process.env.WIDGET_TEST_BINARY || path.join(ROOT, 'target/debug/smartpay');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.join(ROOT, 'test-artifacts/browser');
const FORM = 'iframe[title="SmartPay payment form"]';
const VISA = '4111111111111111';
const MASTERCARD = '5555555555554444';

let browser, main, shop, SHOP;
const servers = [];

function freePort(host) {
  return new Promise((resolve) => {
    const s = http.createServer().listen(0, host, () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

/**
 * A SmartPay server of its own (data directory, merchant registered for the shop's origin)
 * listening on 127.0.0.2; `env` adds to its environment.
 */
async function startServer(name, env = {}) {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), `smartpay-browser-${name}-`));
  const cli = (...args) => execFileSync(BIN, ['--data-dir', data, ...args], { encoding: 'utf8' });
  const merchant = JSON.parse(cli('merchant', 'create', '--name', 'Vault shop', '--json'));
  cli('merchant', 'origins', 'add', merchant.merchantKey, SHOP);
  const port = await freePort('127.0.0.2');
  const base = `http://127.0.0.2:${port}`;
  const proc = spawn(BIN, ['--data-dir', data, 'serve', '--listen', `127.0.0.2:${port}`], {
    env: { ...process.env, SMARTPAY_LOG_LEVEL: 'warn', SMARTPAY_BOOTSTRAP_SANDBOX_MERCHANT: 'false', SMARTPAY_ADMIN_LISTEN: '127.0.0.1:0', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  servers.push(proc);
  for (let i = 0; i < 200; i++) {
    try { if ((await fetch(base + '/health/ready')).ok) break; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  const auth = 'Basic ' + Buffer.from(`${merchant.merchantKey}:${merchant.authenticationKey}`).toString('base64');
  async function api(method, p, body) {
    const r = await fetch(base + p, { method, headers: { Authorization: auth, 'Content-Type': 'application/json' }, body: body && JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, text, body: text ? JSON.parse(text) : null };
  }
  return { base, merchant, api };
}

/**
 * A merchant page rendering the widget of SmartPay at `sp` with the query's options:
 * `token`, `culture`, and `continue` (1: the optional continue containers, by their default
 * ids; `keys`: named in `containers` by key; `ids`: named by the reference's ids as keys).
 * `/confirm` is the second page of a multi-page flow (selection and button containers).
 */
function pageHtml(pathname, query) {
  const culture = query.get('culture');
  const cont = query.get('continue');
  const containers = cont === 'keys'
    ? { registrationContinueButton: 'guest-here', paymentContinueButton: 'register-here' }
    : cont === 'ids' ? { 'registration-continue-button-container': 'guest-here', 'payment-continue-button-container': 'register-here' } : undefined;
  const opts = JSON.stringify({ checkoutToken: query.get('token') || '', ...(culture ? { culture } : {}), ...(containers ? { containers } : {}) });
  const hosts = cont === '1'
    ? '<div id="registration-continue-button-container"></div><div id="payment-continue-button-container"></div>'
    : cont ? '<div id="guest-here"></div><div id="register-here"></div>' : '';
  return `<!doctype html><html><head><meta charset="utf-8"><title>Shop</title></head><body>
  ${pathname === '/confirm' ? '<div id="selection-container"></div><div id="button-container"></div>' : '<div id="selector-container"></div>'}${hosts}
  <script>
    window.__messages = []; window.__results = []; window.__errors = [];
    window.addEventListener('message', function (e) { try { window.__messages.push(JSON.stringify(e.data)); } catch (x) {} });
    var o = ${opts};
    o.successHandler = function (d) { window.__results.push(d); };
    o.errorHandler = function (c, m) { window.__errors.push({ code: c, message: m }); };
  </script>
  <script src="${query.get('sp')}/sdk/smp-bundle.js"></script>
  <script>window.SmpLibrary.SmartPayAppInstance.renderWidget(o);</script></body></html>`;
}

function serveShop(port) {
  return new Promise((resolve) => {
    const s = http.createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      const url = new URL(req.url, SHOP);
      res.end(pageHtml(url.pathname, url.searchParams));
    }).listen(port, '127.0.0.1', () => resolve(s));
  });
}

/** A new customerAccountId: every test has shoppers of its own. */
function account() { return 'CUST-' + crypto.randomBytes(6).toString('hex'); }

async function checkout(sp, { customerAccountId, culture } = {}) {
  const r = await sp.api('POST', '/payment/creation', {
    merchantKey: sp.merchant.merchantKey,
    ...(customerAccountId ? { customerAccountId } : {}),
    payment: { amount: 10.99, currencyCode: 'EUR', description: 'Purchase 1x product ABC' },
    consumer: { firstName: 'Butcher', lastName: 'Hells', emailAddress: 'hells.butcher_001@mail.com', ...(culture ? { culture } : {}) },
    billingAddress: { addressLine1: 'Anystreet', city: 'Anycity', postCode: '12345', countryCode: 'DE' },
  });
  assert.equal(r.status, 200, r.text);
  return r.body;
}

/** Stores a card through the API (Store Payment Option, an authenticated card); its reference. */
async function storeViaApi(sp, customerAccountId, number, month, year) {
  const r = await sp.api('POST', `/accounts/${customerAccountId}/paymentOptions`, {
    paymentOption: { card: {
      '3DS': { '3DS2': { acsEci: '05', authenticationToken: 'AAABBBCCCDDDEEEFFF00112233', transactionStatus: 'Y' } },
      cardDetails: { cardNumber: number, cardExpiryMonth: month, cardExpiryYear: year, cardHolderName: 'Hells Butcher' },
    } },
    billingAddress: { addressLine1: 'Anystreet', city: 'Anycity', postCode: '12345', countryCode: 'DEU' },
  });
  assert.equal(r.status, 201, r.text);
  return r.body.storedPaymentOptionReference;
}

async function options(sp, customerAccountId) {
  const r = await sp.api('GET', `/accounts/${customerAccountId}/paymentOptions`);
  assert.equal(r.status, 200, r.text);
  return r;
}

async function paymentStatus(sp, transactionId) {
  const r = await sp.api('GET', `/payment/status/${transactionId}`);
  assert.equal(r.status, 200, r.text);
  return r.body;
}

// Card expiries: MM/YY three years ahead (the form), and this month (expires soon).
const now = new Date();
const MM = String(now.getUTCMonth() + 1).padStart(2, '0');
const EXPIRY = `${MM}/${String((now.getUTCFullYear() + 3) % 100).padStart(2, '0')}`;
const LATER = { month: MM, year: String(now.getUTCFullYear() + 3) };

async function shot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** The merchant's page in a fresh browser context; records what the browser sends. */
async function open(sp, query, contextOptions = {}) {
  const context = await browser.newContext(contextOptions);
  const page = await context.newPage();
  const requests = [];
  page.on('request', (r) => requests.push({ url: r.url(), body: r.postData() || '' }));
  await page.goto(`${SHOP}/?${new URLSearchParams({ sp: sp.base, ...query })}`);
  return { page, context, requests, f: page.frameLocator(FORM) };
}

async function fillCard(f, number, { cvc = '737', expiry = EXPIRY } = {}) {
  await f.locator('#number').fill(number);
  await f.locator('#expiry').fill(expiry);
  await f.locator('#cvc').fill(cvc);
}

/** Waits for the payment's result (`CALLBACK`); every successHandler call and error so far. */
async function finished(page) {
  await page.waitForFunction('window.__results.some(function (r) { return r.kind === "CALLBACK"; }) || window.__errors.some(function (e) { return e.code !== "ERROR_INIT_STORE_PAYMENT_OPTION"; })', null, { timeout: 15000 });
  return { results: await page.evaluate('window.__results'), errors: await page.evaluate('window.__errors') };
}

/** No card number or CVC in any message the merchant's page received, and sent only to SmartPay. */
async function noCardDataLeaves(page, requests, sp, number) {
  const messages = await page.evaluate('window.__messages');
  assert.ok(messages.length > 0);
  for (const m of messages) assert.ok(!m.includes(number) && !m.includes('"737"'), `card data in a message: ${m}`);
  for (const r of requests.filter((r) => r.body.includes(number) || r.body.includes('737'))) {
    assert.ok(r.url.startsWith(sp.base + '/'), `card data sent to ${r.url}`);
  }
}

function masked(number) { return `${number.slice(0, 6)}****${number.slice(-4)}`; }

before(async () => {
  assert.ok(fs.existsSync(CHROMIUM), `Chromium is required at ${CHROMIUM} (scripts/test.sh installs Debian's chromium)`);
  assert.ok(fs.existsSync(BIN), `the smartpay binary is required at ${BIN}`);
  const shopPort = await freePort('127.0.0.1');
  SHOP = `http://127.0.0.1:${shopPort}`;
  shop = await serveShop(shopPort);
  main = await startServer('vault');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  shop?.close();
  for (const s of servers) s.kill('SIGTERM');
});

test('a guest sees no stored options and no choice to store the card', async () => {
  const c = await checkout(main);
  const { page, context, f } = await open(main, { token: c.checkoutToken });
  await f.locator('#number').waitFor();
  assert.equal(await f.locator('#stored').isVisible(), false);
  assert.equal(await f.locator('#stored-empty').isVisible(), false);
  assert.equal(await f.locator('#store').isVisible(), false);
  assert.equal(await f.locator('#as-guest').isVisible(), false);
  await fillCard(f, VISA);
  await f.locator('#pay').click();
  const { results, errors } = await finished(page);
  assert.deepEqual(errors, []);
  assert.deepEqual(results.map((r) => Object.keys(r).sort()), [['kind', 'message', 'transactionId', 'transactionStatus']]);
  assert.equal(results[0].transactionStatus, 'CAPTURED');
  await context.close();
});

test('a shopper stores a card, then pays the next checkout with it in two clicks', async () => {
  const customer = account();
  const first = await checkout(main, { customerAccountId: customer });
  const one = await open(main, { token: first.checkoutToken });
  const empty = one.f.locator('#stored-empty');
  await empty.waitFor();
  assert.equal(await empty.textContent(), 'No stored payments available. Please add a new payment method.');
  const store = one.f.getByRole('checkbox', { name: 'Save this card for my next payments' });
  assert.equal(await store.isChecked(), false, 'storing is an explicit choice');
  await fillCard(one.f, VISA);
  await store.check();
  await shot(one.page, 'vault-store');
  await one.f.locator('#pay').click();
  const { results, errors } = await finished(one.page);
  assert.deepEqual(errors, []);
  assert.equal(results.length, 2, JSON.stringify(results));
  const [added, paid] = results;
  assert.equal(added.kind, 'ADD_METHOD_CALLBACK', 'the stored card is reported first');
  assert.match(added.storedPaymentOptionReference, /^[A-Za-z0-9]{1,64}$/);
  assert.equal(added.transactionId, first.transactionId);
  assert.equal(added.transactionStatus, 'CAPTURED');
  assert.equal(added.message, 'Your card was saved for your next payments.');
  assert.deepEqual(paid, {
    kind: 'CALLBACK', transactionId: first.transactionId, transactionStatus: 'CAPTURED',
    message: 'Payment successful.', storedPaymentOptionReference: added.storedPaymentOptionReference,
  });
  await noCardDataLeaves(one.page, one.requests, main, VISA);
  await one.context.close();

  // The merchant's server sees the card, masked, as the account's default.
  const listed = await options(main, customer);
  assert.ok(!listed.text.includes(VISA), 'no clear number in the API');
  assert.equal(listed.body.result.length, 1);
  assert.equal(listed.body.result[0].reference, added.storedPaymentOptionReference);
  assert.equal(listed.body.result[0].carrierNumber, masked(VISA));
  assert.equal(listed.body.result[0].isDefault, true);
  const firstStatus = await paymentStatus(main, first.transactionId);
  assert.equal(firstStatus.paymentStatus, 'CAPTURED');
  assert.equal(firstStatus.transactionOverview.customerAccountId, customer);

  // The next checkout of the same customer: the stored card, preselected as the default.
  const next = await checkout(main, { customerAccountId: customer });
  const two = await open(main, { token: next.checkoutToken });
  const option = two.f.locator(`#stored-list li[data-reference="${added.storedPaymentOptionReference}"]`);
  await option.waitFor();
  assert.equal(await two.f.locator('#stored-legend').textContent(), 'Choose a payment method');
  assert.equal(await option.locator('.smp-stored-brand').textContent(), 'VISA');
  assert.equal(await option.locator('.smp-stored-number').textContent(), masked(VISA));
  assert.equal(await option.locator('.smp-stored-expiry').textContent(), `Expires ${LATER.month}/${LATER.year}`);
  assert.equal(await option.locator('.smp-badge-default').textContent(), 'default');
  const radio = two.f.getByRole('radio', { name: new RegExp(`VISA ${masked(VISA).replace(/\*/g, '\\*')}`) });
  assert.equal(await radio.isChecked(), true, 'the default is preselected');
  assert.equal(await two.f.locator('#card-fields').isVisible(), false, 'no card fields to fill');
  await shot(two.page, 'vault-stored-list');
  // Two clicks: the option, then pay.
  await radio.click();
  await two.f.locator('#pay').click();
  const second = await finished(two.page);
  assert.deepEqual(second.errors, []);
  assert.deepEqual(second.results, [{
    kind: 'CALLBACK', transactionId: next.transactionId, transactionStatus: 'CAPTURED',
    message: 'Payment successful.', storedPaymentOptionReference: added.storedPaymentOptionReference,
  }]);
  const paidWith = two.requests.filter((r) => r.url.endsWith('/widget/api/payments'));
  assert.deepEqual(paidWith.map((r) => JSON.parse(r.body)), [{ storedPaymentOptionReference: added.storedPaymentOptionReference }]);
  const status = await paymentStatus(main, next.transactionId);
  assert.equal(status.paymentStatus, 'CAPTURED');
  assert.equal(status.transactionOverview.customerAccountId, customer);
  assert.equal(status.transactionOverview.paymentMethod, 'VISA');
  assert.equal((await options(main, customer)).body.result.length, 1, 'paying again stores nothing new');
  await two.context.close();
});

test('the shopper chooses another default and deletes an option, with the keyboard', async () => {
  const customer = account();
  const c = await checkout(main, { customerAccountId: customer });
  const visa = await storeViaApi(main, customer, VISA, LATER.month, LATER.year);
  const mastercard = await storeViaApi(main, customer, MASTERCARD, LATER.month, LATER.year);
  const { page, context, f } = await open(main, { token: c.checkoutToken });
  const item = (ref) => f.locator(`#stored-list li[data-reference="${ref}"]`);
  await item(mastercard).waitFor();
  assert.equal(await f.locator('#stored-list li').count(), 2);
  assert.equal(await item(visa).locator('input').isChecked(), true, 'the first stored card is the default');
  assert.equal(await item(visa).getByRole('button', { name: /set as default/ }).isVisible(), false, 'the default is not offered as default again');
  const makeDefault = item(mastercard).getByRole('button', { name: `set as default: Mastercard ${masked(MASTERCARD)}` });
  await makeDefault.focus();
  await page.keyboard.press('Enter');
  await item(mastercard).locator('.smp-badge-default').waitFor();
  assert.equal(await item(visa).locator('.smp-badge-default').count(), 0);
  assert.equal(await item(mastercard).locator('input').isChecked(), true, 'the new default is chosen');
  const afterDefault = (await options(main, customer)).body.result;
  assert.deepEqual(afterDefault.map((o) => [o.reference, o.isDefault]).sort(), [[visa, false], [mastercard, true]].sort());

  const remove = item(visa).getByRole('button', { name: `delete: VISA ${masked(VISA)}` });
  await remove.focus();
  await page.keyboard.press('Enter');
  await item(visa).waitFor({ state: 'detached' });
  assert.equal(await f.locator('#stored-list li').count(), 1);
  const left = (await options(main, customer)).body.result;
  assert.deepEqual(left.map((o) => o.reference), [mastercard], 'the deleted option is gone from the API');
  assert.equal((await main.api('GET', `/accounts/${customer}/paymentOptions/${visa}`)).status, 404);
  await shot(page, 'vault-after-delete');

  // Deleting the last one leaves the card form with the choice to store.
  await item(mastercard).getByRole('button', { name: /^delete/ }).click();
  await f.locator('#stored-empty').waitFor();
  assert.equal(await f.locator('#stored').isVisible(), false);
  assert.equal(await f.locator('#store').isVisible(), true);
  assert.deepEqual((await options(main, customer)).body.result, []);
  await context.close();
});

test('an option expiring this month is marked "expires soon" and can be paid with', async () => {
  const customer = account();
  const c = await checkout(main, { customerAccountId: customer });
  const year = String(now.getUTCFullYear());
  const ref = await storeViaApi(main, customer, MASTERCARD, MM, year);
  const [listed] = (await options(main, customer)).body.result;
  assert.equal(listed.expiresSoon, true);
  const { page, context, f } = await open(main, { token: c.checkoutToken });
  const item = f.locator(`#stored-list li[data-reference="${ref}"]`);
  await item.waitFor();
  assert.equal(await item.locator('.smp-badge-soon').textContent(), 'expires soon');
  assert.equal(await item.locator('.smp-stored-expiry').textContent(), `Expires ${MM}/${year}`);
  assert.equal(await item.locator('input').isDisabled(), false);
  await shot(page, 'vault-expires-soon');
  await f.locator('#pay').click();
  const { results } = await finished(page);
  assert.equal(results[0].transactionStatus, 'CAPTURED');
  assert.equal(results[0].storedPaymentOptionReference, ref);
  await context.close();
});

test('an expired option is shown with a warning but cannot be chosen', async () => {
  // The API refuses to store expired cards, so the list the widget gets is the account's real
  // one (as the merchant API lists it) with one card marked expired (and the default).
  const customer = account();
  const c = await checkout(main, { customerAccountId: customer });
  const gone = await storeViaApi(main, customer, VISA, LATER.month, LATER.year);
  const valid = await storeViaApi(main, customer, MASTERCARD, LATER.month, LATER.year);
  const listed = (await options(main, customer)).body.result;
  for (const o of listed) if (o.reference === gone) Object.assign(o, { isExpired: true, expiresSoon: false, expiryDate: '01/2020' });
  const context = await browser.newContext();
  await context.route('**/widget/api/options', (route) => route.fulfill({
    json: { journey: 'REGISTERED', options: listed, canStore: true, vaultUnavailable: false },
  }));
  const page = await context.newPage();
  await page.goto(`${SHOP}/?${new URLSearchParams({ sp: main.base, token: c.checkoutToken })}`);
  const f = page.frameLocator(FORM);
  const expired = f.locator(`#stored-list li[data-reference="${gone}"]`);
  await expired.waitFor();
  assert.equal(await expired.locator('input').isDisabled(), true);
  assert.equal(await expired.locator('.smp-badge-expired').textContent(), 'expired');
  assert.equal(await expired.locator('button[data-action=default]').isVisible(), false, 'an expired option cannot become the default');
  assert.equal(await expired.locator('button[data-action=remove]').isVisible(), true, 'but can be deleted');
  assert.equal(await f.locator('#stored-warning').textContent(), 'An expired method can not be used for payment.');
  assert.equal(await f.locator('#stored-warning').isVisible(), true);
  assert.equal(await f.locator(`#stored-list li[data-reference="${valid}"] input`).isChecked(), true, 'the usable option is preselected, not the expired default');
  await shot(page, 'vault-expired');
  await f.locator('#pay').click();
  const { results } = await finished(page);
  assert.equal(results[0].storedPaymentOptionReference, valid);
  await context.close();
});

test('paying as a guest with an account hides the stored options and stores nothing', async () => {
  const customer = account();
  const c = await checkout(main, { customerAccountId: customer });
  const ref = await storeViaApi(main, customer, VISA, LATER.month, LATER.year);
  const { page, context, f, requests } = await open(main, { token: c.checkoutToken });
  await f.locator(`#stored-list li[data-reference="${ref}"]`).waitFor();
  await f.getByRole('button', { name: 'Pay as a guest' }).click();
  assert.equal(await f.locator('#stored').isVisible(), false);
  assert.equal(await f.locator('#store').isVisible(), false, 'a guest cannot store');
  assert.equal(await f.locator('#as-guest').isVisible(), false);
  await fillCard(f, MASTERCARD);
  await f.locator('#pay').click();
  const { results, errors } = await finished(page);
  assert.deepEqual(errors, []);
  assert.deepEqual(results.map((r) => Object.keys(r).sort()), [['kind', 'message', 'transactionId', 'transactionStatus']]);
  assert.equal(results[0].transactionStatus, 'CAPTURED');
  const sent = JSON.parse(requests.find((r) => r.url.endsWith('/widget/api/payments')).body);
  assert.equal(sent.storeCard, undefined);
  assert.deepEqual((await options(main, customer)).body.result.map((o) => o.reference), [ref]);
  assert.equal((await paymentStatus(main, c.transactionId)).transactionOverview.paymentMethod, 'MSTRCRD');
  await context.close();
});

test('"Add new payment method" stores a second card; "Back" returns to the list', async () => {
  const customer = account();
  const c = await checkout(main, { customerAccountId: customer });
  const ref = await storeViaApi(main, customer, VISA, LATER.month, LATER.year);
  const { page, context, f } = await open(main, { token: c.checkoutToken });
  await f.locator(`#stored-list li[data-reference="${ref}"]`).waitFor();
  await f.getByRole('button', { name: 'Add new payment method' }).click();
  assert.equal(await f.locator('#stored').isVisible(), false);
  assert.equal(await f.locator('#number').evaluate((e) => e === document.activeElement), true, 'the focus moves to the card number');
  await f.getByRole('button', { name: 'Back to stored payments' }).click();
  assert.equal(await f.locator(`#stored-list li[data-reference="${ref}"] input`).isChecked(), true);
  await f.getByRole('button', { name: 'Add new payment method' }).click();
  await fillCard(f, MASTERCARD);
  await f.getByRole('checkbox', { name: 'Save this card for my next payments' }).check();
  await f.locator('#pay').click();
  const { results } = await finished(page);
  assert.deepEqual(results.map((r) => r.kind), ['ADD_METHOD_CALLBACK', 'CALLBACK']);
  const listed = (await options(main, customer)).body.result;
  assert.equal(listed.length, 2);
  const added = listed.find((o) => o.reference === results[0].storedPaymentOptionReference);
  assert.equal(added.carrierNumber, masked(MASTERCARD));
  assert.equal(added.isDefault, false, 'the default stays');
  await context.close();
});

test('a card SmartPay could not store is reported to the errorHandler and the payment goes on', async () => {
  // SmartPay answers `storeError` when storing failed and it paid with the card as a guest; the
  // sandbox stores every valid card, so this answer is made here from the real payment's.
  const customer = account();
  const c = await checkout(main, { customerAccountId: customer });
  const context = await browser.newContext();
  await context.route('**/widget/api/payments', async (route) => {
    const sent = JSON.parse(route.request().postData());
    assert.equal(sent.storeCard, true);
    delete sent.storeCard;
    const response = await route.fetch({ postData: JSON.stringify(sent) });
    await route.fulfill({ response, json: { ...(await response.json()), storeError: 'ERROR_INIT_STORE_PAYMENT_OPTION' } });
  });
  const page = await context.newPage();
  await page.goto(`${SHOP}/?${new URLSearchParams({ sp: main.base, token: c.checkoutToken })}`);
  const f = page.frameLocator(FORM);
  await f.locator('#stored-empty').waitFor();
  await fillCard(f, VISA);
  await f.locator('#store').check();
  await f.locator('#pay').click();
  const { results, errors } = await finished(page);
  assert.deepEqual(errors, [{ code: 'ERROR_INIT_STORE_PAYMENT_OPTION', message: 'Your card could not be saved. The payment was made without saving it.' }]);
  assert.deepEqual(results.map((r) => r.kind), ['CALLBACK'], 'no ADD_METHOD_CALLBACK');
  assert.equal(results[0].transactionStatus, 'CAPTURED');
  assert.equal(results[0].storedPaymentOptionReference, undefined);
  assert.deepEqual((await options(main, customer)).body.result, []);
  await context.close();
});

test('a declined card the shopper wanted to store is not stored', async () => {
  const customer = account();
  const c = await checkout(main, { customerAccountId: customer });
  const { page, context, f } = await open(main, { token: c.checkoutToken });
  await f.locator('#stored-empty').waitFor();
  await fillCard(f, '4000000000000002');
  await f.locator('#store').check();
  await f.locator('#pay').click();
  const { results, errors } = await finished(page);
  assert.deepEqual(errors, []);
  assert.deepEqual(results.map((r) => [r.kind, r.transactionStatus, r.storedPaymentOptionReference]), [['CALLBACK', 'AUTHORIZATION_FAILED', undefined]]);
  assert.deepEqual((await options(main, customer)).body.result, []);
  await context.close();
});

test('the widget speaks the checkout\'s consumer.culture when the page names none', async () => {
  const customer = account();
  const c = await checkout(main, { customerAccountId: customer, culture: 'de-DE' });
  const ref = await storeViaApi(main, customer, VISA, MM, String(now.getUTCFullYear()));
  const { page, context, f } = await open(main, { token: c.checkoutToken });
  const item = f.locator(`#stored-list li[data-reference="${ref}"]`);
  await item.waitFor();
  assert.equal(await f.locator('html').getAttribute('lang'), 'de');
  assert.equal(await f.locator('#stored-legend').textContent(), 'Wählen Sie eine Zahlungsart');
  assert.equal(await item.locator('.smp-stored-expiry').textContent(), `Gültig bis ${MM}/${now.getUTCFullYear()}`);
  assert.equal(await item.locator('.smp-badge-default').textContent(), 'Standard');
  assert.equal(await item.locator('.smp-badge-soon').textContent(), 'läuft bald ab');
  assert.equal(await item.getByRole('button', { name: /^löschen/ }).textContent(), 'löschen');
  assert.equal(await f.locator('#add-new').textContent(), 'Neue Zahlungsart hinzufügen');
  assert.equal(await f.locator('#as-guest').textContent(), 'Als Gast bezahlen');
  assert.equal(await f.locator('#pay').textContent(), '10.99 EUR bezahlen');
  await f.locator('#add-new').click();
  assert.equal(await f.locator('label[for=number]').textContent(), 'Kartennummer');
  assert.equal(await f.locator('label[for=store]').textContent(), 'Diese Karte für meine nächsten Zahlungen speichern');
  assert.equal(await f.locator('#back').textContent(), 'Zurück zu den gespeicherten Zahlungsarten');
  await shot(page, 'vault-german');
  await context.close();

  // The culture the page passes wins; without either, the browser's language; else English.
  const english = await open(main, { token: c.checkoutToken, culture: 'en-US' });
  await english.f.locator('#stored-legend').waitFor();
  assert.equal(await english.f.locator('#pay').textContent(), 'Pay 10.99 EUR');
  await english.context.close();
  const guest = await checkout(main);
  const browserGerman = await open(main, { token: guest.checkoutToken }, { locale: 'de-DE' });
  await browserGerman.f.locator('#pay').waitFor();
  assert.equal(await browserGerman.f.locator('#pay').textContent(), '10.99 EUR bezahlen');
  await browserGerman.context.close();
  const plain = await open(main, { token: guest.checkoutToken }, { locale: 'en-GB' });
  await plain.f.locator('#pay').waitFor();
  assert.equal(await plain.f.locator('#pay').textContent(), 'Pay 10.99 EUR');
  await plain.context.close();
});

test('the hosted checkout speaks the consumer.culture and returns the stored option', async () => {
  const customer = account();
  const c = await checkout(main, { customerAccountId: customer, culture: 'de-DE' });
  const context = await browser.newContext({ locale: 'en-US' });
  const page = await context.newPage();
  await page.goto(`${main.base}/checkout/${c.checkoutToken}?returnUrl=${encodeURIComponent(SHOP + '/done')}`);
  const f = page.frameLocator(FORM);
  await f.locator('#stored-empty').waitFor();
  assert.equal(await f.locator('#pay').textContent(), '10.99 EUR bezahlen');
  await fillCard(f, VISA);
  await f.locator('#store').check();
  await f.locator('#pay').click();
  await page.waitForURL((u) => u.toString().startsWith(SHOP + '/done'), { timeout: 15000 });
  const url = new URL(page.url());
  assert.equal(url.searchParams.get('transactionStatus'), 'CAPTURED');
  const [listed] = (await options(main, customer)).body.result;
  assert.equal(url.searchParams.get('storedPaymentOptionReference'), listed.reference);
  await context.close();
});

for (const variant of ['1', 'keys', 'ids']) {
  test(`the optional continue containers are accepted and hold the continue buttons (${variant})`, async () => {
    const customer = account();
    const c = await checkout(main, { customerAccountId: customer });
    const ref = await storeViaApi(main, customer, VISA, LATER.month, LATER.year);
    const { page, context, f } = await open(main, { token: c.checkoutToken, continue: variant });
    await f.locator(`#stored-list li[data-reference="${ref}"]`).waitFor();
    const asGuest = page.getByRole('button', { name: 'Continue as a guest' });
    const register = page.getByRole('button', { name: 'Continue with registration' });
    await asGuest.waitFor();
    await register.waitFor();
    const guestHost = variant === '1' ? '#registration-continue-button-container' : '#guest-here';
    const registerHost = variant === '1' ? '#payment-continue-button-container' : '#register-here';
    assert.equal(await page.locator(`${guestHost} button`).textContent(), 'Continue as a guest');
    assert.equal(await page.locator(`${registerHost} button`).textContent(), 'Continue with registration');
    assert.deepEqual(await page.evaluate('window.__errors'), []);
    await shot(page, `vault-continue-${variant}`);
    // "Continue with registration": a new card, to be stored.
    await register.click();
    await f.locator('#number').waitFor();
    assert.equal(await f.locator('#stored').isVisible(), false);
    assert.equal(await f.locator('#store').isChecked(), true);
    // "Continue as a guest": nothing stored, and the guest button goes away.
    await asGuest.click();
    await f.locator('#store-row').waitFor({ state: 'hidden' });
    assert.equal(await asGuest.isVisible(), false);
    await fillCard(f, VISA);
    await f.locator('#pay').click();
    const { results, errors } = await finished(page);
    assert.deepEqual(errors, []);
    assert.deepEqual(results.map((r) => r.kind), ['CALLBACK']);
    assert.deepEqual((await options(main, customer)).body.result.map((o) => o.reference), [ref]);
    assert.equal(await register.isVisible(), false, 'no continue buttons after the payment');
    await context.close();
  });
}

test('a guest checkout leaves the optional continue containers empty', async () => {
  const c = await checkout(main);
  const { page, context, f } = await open(main, { token: c.checkoutToken, continue: '1' });
  await f.locator('#number').waitFor();
  await page.waitForFunction('window.__messages.some(function (m) { return m.indexOf("smp:ready") >= 0; })');
  assert.equal(await page.locator('#registration-continue-button-container button').isVisible(), false);
  assert.equal(await page.locator('#payment-continue-button-container button').isVisible(), false);
  assert.deepEqual(await page.evaluate('window.__errors'), []);
  await context.close();
});

test('with the vault unavailable the widget still takes a card, as a guest payment', async () => {
  // A server whose vault key cannot be loaded: vault routes answer 503, the rest serves.
  // Its log would only repeat that the vault is unavailable.
  const broken = await startServer('novault', { SMARTPAY_VAULT_KEK: 'not a key', SMARTPAY_LOG_LEVEL: 'off' });
  const customer = account();
  const c = await checkout(broken, { customerAccountId: customer });
  assert.equal((await broken.api('GET', `/accounts/${customer}/paymentOptions`)).status, 503);
  const { page, context, f } = await open(broken, { token: c.checkoutToken });
  const note = f.locator('#vault-note');
  await note.waitFor();
  assert.equal(await note.textContent(), 'Stored payment methods are not available at the moment. You can pay with a card.');
  assert.equal(await f.locator('#stored').isVisible(), false);
  assert.equal(await f.locator('#store').isVisible(), false, 'nothing can be stored');
  assert.equal(await f.locator('#stored-empty').isVisible(), false);
  await shot(page, 'vault-unavailable');
  await fillCard(f, VISA);
  await f.locator('#pay').click();
  const { results, errors } = await finished(page);
  assert.deepEqual(errors, []);
  assert.deepEqual(results.map((r) => [r.kind, r.transactionStatus]), [['CALLBACK', 'CAPTURED']]);
  assert.equal((await paymentStatus(broken, c.transactionId)).paymentStatus, 'CAPTURED');
  await context.close();
});

test('a stored option chosen on the first page is paid with the second page\'s button (multi-page flow)', async () => {
  const customer = account();
  const c = await checkout(main, { customerAccountId: customer });
  const visa = await storeViaApi(main, customer, VISA, LATER.month, LATER.year);
  const mastercard = await storeViaApi(main, customer, MASTERCARD, LATER.month, LATER.year);
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${SHOP}/?${new URLSearchParams({ sp: main.base, token: c.checkoutToken })}`);
  const f = page.frameLocator(FORM);
  await f.locator(`#stored-list li[data-reference="${mastercard}"] input`).check();
  // The second page: selection and button only.
  await page.goto(`${SHOP}/confirm?${new URLSearchParams({ sp: main.base, token: c.checkoutToken })}`);
  const chosen = f.locator(`#stored-list li[data-reference="${mastercard}"]`);
  await chosen.waitFor();
  assert.equal(await f.locator(`#stored-list li[data-reference="${visa}"]`).isVisible(), false, 'only the chosen option');
  assert.equal(await chosen.locator('button').count(), 2);
  assert.equal(await chosen.locator('button[data-action=remove]').isVisible(), false, 'no actions on the confirmation page');
  await page.waitForFunction(() => !document.querySelector('#button-container button').disabled, null, { timeout: 15000 });
  await page.locator('#button-container button').click();
  const { results } = await finished(page);
  assert.equal(results[0].storedPaymentOptionReference, mastercard);
  assert.equal((await paymentStatus(main, c.transactionId)).transactionOverview.paymentMethod, 'MSTRCRD');
  await context.close();
});

/** A new account's shopper stores the 3-D Secure test card, answering the challenge with `button`. */
async function storeThroughChallenge(button) {
  const customer = account();
  const c = await checkout(main, { customerAccountId: customer });
  const { page, context, f } = await open(main, { token: c.checkoutToken });
  await f.locator('#stored-empty').waitFor();
  await fillCard(f, '4000000000003220');
  await f.locator('#store').check();
  await f.locator('#pay').click();
  await f.frameLocator('iframe[title="Confirm with your bank"]').locator(button).click();
  const { results, errors } = await finished(page);
  return { customer, context, results, errors };
}

test('a card stored with a 3-D Secure challenge is reported once the challenge is approved', async () => {
  const { customer, context, results, errors } = await storeThroughChallenge('#approve');
  assert.deepEqual(errors, []);
  const [listed] = (await options(main, customer)).body.result;
  assert.equal(listed.carrierNumber, masked('4000000000003220'));
  assert.deepEqual(results.map((r) => [r.kind, r.transactionStatus, r.storedPaymentOptionReference]), [
    ['ADD_METHOD_CALLBACK', 'CAPTURED', listed.reference],
    ['CALLBACK', 'CAPTURED', listed.reference],
  ]);
  await context.close();
});

test('a card whose 3-D Secure challenge fails is not reported as stored', async () => {
  const { customer, context, results, errors } = await storeThroughChallenge('#fail');
  assert.deepEqual(errors, []);
  assert.deepEqual((await options(main, customer)).body.result, [], 'nothing stored');
  assert.deepEqual(results.map((r) => [r.kind, r.transactionStatus, r.storedPaymentOptionReference]), [
    ['CALLBACK', 'AUTHORIZATION_FAILED', undefined],
  ]);
  await context.close();
});

test('a stored option is chosen and paid with the keyboard alone', async () => {
  const customer = account();
  const c = await checkout(main, { customerAccountId: customer });
  const visa = await storeViaApi(main, customer, VISA, LATER.month, LATER.year);
  const mastercard = await storeViaApi(main, customer, MASTERCARD, LATER.month, LATER.year);
  const { page, context, f } = await open(main, { token: c.checkoutToken });
  await f.locator(`#stored-list li[data-reference="${mastercard}"]`).waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await f.locator(':focus').getAttribute('value'), visa, 'the preselected default is the first stop');
  await page.keyboard.press('ArrowDown');
  assert.equal(await f.locator('input[name=stored]:checked').getAttribute('value'), mastercard);
  const stops = [];
  for (let i = 0; i < 10 && (await f.locator(':focus').getAttribute('id')) !== 'pay'; i++) {
    await page.keyboard.press('Tab');
    stops.push((await f.locator(':focus').evaluate((e) => e.getAttribute('aria-label') || e.textContent)).trim());
  }
  // The chosen option's own actions, "Add new payment method", then the pay button.
  assert.deepEqual(stops, [`set as default: Mastercard ${masked(MASTERCARD)}`, `delete: Mastercard ${masked(MASTERCARD)}`, 'Add new payment method', 'Pay 10.99 EUR']);
  await page.keyboard.press('Enter');
  const { results } = await finished(page);
  assert.equal(results[0].storedPaymentOptionReference, mastercard);
  assert.equal(results[0].transactionStatus, 'CAPTURED');
  await context.close();
});
