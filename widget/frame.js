/* SmartPay card frame. Runs on SmartPay's origin inside the merchant's page. Card data is sent
 * only to this origin's API; messages to the merchant page carry status only, and go to, and
 * are accepted from, exactly the parent origin the merchant registered. */
(function () {
  'use strict';
  var body = document.body;
  var cfg = {
    token: body.dataset.token,
    parentOrigin: body.dataset.parentOrigin,
    culture: body.dataset.culture === 'de-DE' ? 'de-DE' : 'en-US',
    amount: body.dataset.amount,
    currency: body.dataset.currency,
    status: body.dataset.status,
    mode: body.dataset.mode,
    error: body.dataset.error,
    // The payment methods this checkout offers (the server adds PAYU where it is available).
    methods: String(body.dataset.methods || 'CARDS').split(' ')
  };
  var TEXTS = {
    'en-US': {
      'main-panel-registration:instruction': 'Please select your payment method',
      'method:CARDS': 'Credit or debit card',
      'field:number': 'Card number', 'field:expiry': 'Expiry date (MM/YY)', 'field:cvc': 'Security code', 'field:holder': 'Name on card',
      'button:payment': 'Pay ${amount} ${currencyCode}',
      'error:number': 'Enter a valid card number.', 'error:brand': 'This card brand is not accepted.',
      'error:expiry': 'Enter a valid expiry date.', 'error:expired': 'This card has expired.',
      'error:cvc': 'Enter the security code from your card.', 'error:holder': 'Enter the name as printed on the card.',
      'result:authorized': 'Payment successful.', 'result:declined': 'The payment was not successful. Please use another payment method.',
      'result:pending': 'Your payment is being processed.', 'result:challenge': 'Please confirm the payment with your bank.',
      'result:processing': 'Processing…', 'result:locked': 'Too many attempts. Please start a new checkout.',
      'result:expired': 'This checkout has expired.', 'result:failed': 'The payment could not be processed.',
      'challenge:title': 'Confirm with your bank',
      'method:PAYU': 'PayU (pay by link)',
      'payment:payu': 'You will approve the payment on PayU\'s page, then return here.',
      'payment:payu-title': 'Approve with PayU', 'result:payu': 'Please approve the payment with PayU.'
    },
    'de-DE': {
      'main-panel-registration:instruction': 'Bitte wählen Sie Ihre Zahlungsart',
      'method:CARDS': 'Kredit- oder Debitkarte',
      'field:number': 'Kartennummer', 'field:expiry': 'Gültig bis (MM/JJ)', 'field:cvc': 'Prüfnummer', 'field:holder': 'Name auf der Karte',
      'button:payment': '${amount} ${currencyCode} bezahlen',
      'error:number': 'Bitte eine gültige Kartennummer eingeben.', 'error:brand': 'Diese Kartenmarke wird nicht akzeptiert.',
      'error:expiry': 'Bitte ein gültiges Ablaufdatum eingeben.', 'error:expired': 'Diese Karte ist abgelaufen.',
      'error:cvc': 'Bitte die Prüfnummer Ihrer Karte eingeben.', 'error:holder': 'Bitte den Namen wie auf der Karte eingeben.',
      'result:authorized': 'Zahlung erfolgreich.', 'result:declined': 'Die Zahlung war nicht erfolgreich. Bitte eine andere Zahlungsart wählen.',
      'result:pending': 'Ihre Zahlung wird bearbeitet.', 'result:challenge': 'Bitte bestätigen Sie die Zahlung bei Ihrer Bank.',
      'result:processing': 'Wird bearbeitet…', 'result:locked': 'Zu viele Versuche. Bitte einen neuen Checkout starten.',
      'result:expired': 'Dieser Checkout ist abgelaufen.', 'result:failed': 'Die Zahlung konnte nicht verarbeitet werden.',
      'challenge:title': 'Bei Ihrer Bank bestätigen',
      'method:PAYU': 'PayU (Zahlung per Link)',
      'payment:payu': 'Sie bestätigen die Zahlung auf der Seite von PayU und kehren dann hierher zurück.',
      'payment:payu-title': 'Bei PayU bestätigen', 'result:payu': 'Bitte bestätigen Sie die Zahlung bei PayU.'
    }
  };
  var SIGNS = { EUR: '€', USD: '$', GBP: '£', PLN: 'zł', CHF: 'CHF', JPY: '¥' };
  function t(id) {
    var text = (TEXTS[cfg.culture] && TEXTS[cfg.culture][id]) || TEXTS['en-US'][id] || id;
    return text.replace('${amount}', cfg.amount).replace('${currencyCode}', cfg.currency).replace('${currencySign}', SIGNS[cfg.currency] || cfg.currency);
  }
  function $(id) { return document.getElementById(id); }
  function toParent(msg) {
    if (cfg.parentOrigin && window.parent !== window) window.parent.postMessage(msg, cfg.parentOrigin);
  }

  var bins = [];
  var externalButton = false;
  var busy = false;
  var done = false;
  // The method of the submission in flight (its approval or challenge page is titled after it),
  // and the payment it started once SmartPay named it.
  var submitted = 'CARDS';
  var transactionId = null;

  // Payment methods. CARDS is always offered; a redirect method only where the server says so.
  var REDIRECT = { PAYU: { title: 'payment:payu-title', waiting: 'result:payu' } };
  function offered(method) { return method === 'CARDS' || (REDIRECT[method] && cfg.methods.indexOf(method) >= 0); }
  function chosen() {
    var checked = document.querySelector('input[name=method]:checked');
    return checked && offered(checked.value) ? checked.value : 'CARDS';
  }
  function showMethod() {
    var method = chosen();
    $('card-fields').hidden = method !== 'CARDS';
    $('payu-note').hidden = method !== 'PAYU';
    resize();
  }
  function select(method) {
    if (!offered(method)) return;
    var radios = document.querySelectorAll('input[name=method]');
    for (var i = 0; i < radios.length; i++) radios[i].checked = radios[i].value === method;
    showMethod();
  }

  function digits(s) { return String(s).replace(/[\s\-]/g, ''); }
  function luhn(n) {
    var sum = 0;
    for (var i = 0; i < n.length; i++) {
      var d = n.charCodeAt(n.length - 1 - i) - 48;
      if (d < 0 || d > 9) return false;
      if (i % 2 === 1) { d *= 2; if (d > 9) d -= 9; }
      sum += d;
    }
    return n.length > 0 && sum % 10 === 0;
  }
  function brandOf(n) {
    for (var i = 0; i < bins.length; i++) {
      var r = bins[i];
      if (n.length >= r.digits) {
        var p = parseInt(n.slice(0, r.digits), 10);
        if (p >= r.from && p <= r.to) return r;
      }
    }
    return null;
  }
  function checkNumber() {
    var n = digits($('number').value);
    var r = brandOf(n);
    if (!/^[0-9]{12,19}$/.test(n) || !luhn(n)) return 'error:number';
    if (!r) return 'error:brand';
    if (r.lengths.indexOf(n.length) < 0) return 'error:number';
    return null;
  }
  function checkExpiry() {
    var m = /^\s*([0-9]{1,2})\s*[\/\-]\s*([0-9]{2}|[0-9]{4})\s*$/.exec($('expiry').value);
    if (!m) return 'error:expiry';
    var month = parseInt(m[1], 10);
    var year = m[2].length === 2 ? 2000 + parseInt(m[2], 10) : parseInt(m[2], 10);
    if (month < 1 || month > 12) return 'error:expiry';
    var now = new Date();
    if (year < now.getFullYear() || (year === now.getFullYear() && month < now.getMonth() + 1)) return 'error:expired';
    if (year > now.getFullYear() + 30) return 'error:expiry';
    return null;
  }
  function checkCvc() {
    var r = brandOf(digits($('number').value));
    var len = r ? r.cvcLength : 3;
    return new RegExp('^[0-9]{' + len + '}$').test($('cvc').value) ? null : 'error:cvc';
  }
  var CHECKS = { number: checkNumber, expiry: checkExpiry, cvc: checkCvc };
  function show(field, problem) {
    var input = $(field);
    input.setAttribute('aria-invalid', problem ? 'true' : 'false');
    $(field + '-error').textContent = problem ? t(problem) : '';
  }
  function validateAll() {
    var ok = true;
    for (var f in CHECKS) {
      var p = CHECKS[f]();
      show(f, p);
      if (p) ok = false;
    }
    return ok;
  }
  function formatNumber() {
    var input = $('number');
    var n = digits(input.value).replace(/[^0-9]/g, '').slice(0, 19);
    var r = brandOf(n);
    var groups = r && r.brand === 'AMEX' ? [4, 6, 5] : [4, 4, 4, 4, 3];
    var out = [], i = 0;
    for (var g = 0; g < groups.length && i < n.length; g++) { out.push(n.slice(i, i + groups[g])); i += groups[g]; }
    input.value = out.join(' ');
    $('brand').textContent = r ? r.brand : '';
    $('cvc').maxLength = r ? r.cvcLength : 4;
  }
  function resize() { toParent({ type: 'smp:resize', height: document.documentElement.scrollHeight }); }
  function setBusy(b) {
    busy = b;
    $('pay').disabled = b || done;
    toParent({ type: 'smp:button', label: t('button:payment'), enabled: !b && !done });
  }
  function result(messageId) {
    $('result').textContent = t(messageId);
    resize();
  }
  function finish(answer) {
    done = true;
    setBusy(false);
    $('card-form').hidden = true;
    $('methods').hidden = true;
    $('challenge').hidden = true;
    $('challenge').innerHTML = '';
    result(answer.message);
    toParent({ type: 'smp:result', transactionId: answer.transactionId, transactionStatus: answer.transactionStatus, message: t(answer.message) });
  }
  function fail(code, messageId) {
    done = code !== 'RETRY';
    setBusy(false);
    result(messageId);
    if (code !== 'RETRY') toParent({ type: 'smp:error', errorCode: code, message: t(messageId) });
  }
  function call(path, payload) {
    return fetch(path, {
      method: 'POST',
      credentials: 'omit',
      headers: { 'Content-Type': 'application/json', 'X-Checkout-Token': cfg.token },
      body: JSON.stringify(payload || {})
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (b) { return { status: r.status, body: b }; });
    });
  }
  function handle(r) {
    if (r.status === 200 && r.body.transactionId) transactionId = r.body.transactionId;
    if (r.status === 200 && r.body.challengeUrl) return challenge(r.body.challengeUrl);
    if (r.status === 200) return finish(r.body);
    if (r.status === 400) {
      (r.body.errors || []).forEach(function (e) {
        var field = String(e.property || '').replace('card.', '');
        if (CHECKS[field]) show(field, e.code === 'card_expired' ? 'error:expired' : e.code === 'unsupported_card_brand' ? 'error:brand' : 'error:' + field);
      });
      return fail('RETRY', 'result:failed');
    }
    if (r.status === 401) return fail('ERR_CONFIG', 'result:expired');
    if (r.status === 409 && r.body.errors && r.body.errors[0] && r.body.errors[0].code === 'checkout_locked') return fail('ERR_PAYMENT_CALLBACK', 'result:locked');
    if (r.status === 429) return fail('RETRY', 'result:locked');
    return fail('ERR_PAYMENT_CALLBACK', 'result:failed');
  }
  // The provider's page — a 3-D Secure challenge or a redirect method's approval page — shown
  // inside the widget; it returns to /widget/challenge-return, which reports back.
  function challenge(url) {
    var box = $('challenge');
    var frame = document.createElement('iframe');
    var redirect = REDIRECT[submitted];
    frame.title = t(redirect ? redirect.title : 'challenge:title');
    frame.src = url;
    box.innerHTML = '';
    box.appendChild(frame);
    box.hidden = false;
    $('card-form').hidden = true;
    $('methods').hidden = true;
    result(redirect ? redirect.waiting : 'result:challenge');
    // The pay button just disappeared: keyboard and screen-reader users continue in the page.
    frame.focus();
  }
  function failed() { fail('ERROR_INIT_PAYMENT', 'result:failed'); }
  // What a decided payment's status means for the shopper.
  var DECIDED = {
    AUTHORIZATION_FAILED: 'result:declined', AUTHORIZATION_COMPLETED: 'result:authorized',
    CAPTURE_PENDING: 'result:authorized', CAPTURED: 'result:authorized'
  };
  // After the provider's page: the provider may have told SmartPay the outcome (a PayU
  // notification) before the shopper's return arrived, so SmartPay answers that the payment is no
  // longer pending, with its status — the journey ends with that status.
  function completed(r) {
    var e = r.status === 409 && r.body.errors && r.body.errors[0];
    var status = e && e.code === 'invalid_state' && e.context && e.context.paymentStatus;
    if (transactionId && DECIDED[status]) return finish({ transactionId: transactionId, transactionStatus: status, message: DECIDED[status] });
    return handle(r);
  }
  function submit(event) {
    if (event) event.preventDefault();
    if (busy || done) return;
    submitted = chosen();
    if (REDIRECT[submitted]) {
      setBusy(true);
      result('result:processing');
      call('/widget/api/payments/redirect', { paymentMethod: submitted }).then(handle, failed);
      return;
    }
    if (!validateAll()) { resize(); setBusy(false); return; }
    setBusy(true);
    result('result:processing');
    call('/widget/api/payments', {
      number: digits($('number').value), expiry: $('expiry').value.trim(), cvc: $('cvc').value,
      holderName: $('holder').value.trim() || undefined
    }).then(handle, failed);
  }

  window.addEventListener('message', function (event) {
    var data = event.data || {};
    if (event.origin === cfg.parentOrigin && event.source === window.parent) {
      if (data.type === 'smp:init') {
        var a = data.appearance || {};
        var root = document.documentElement.style;
        if (typeof a.colorPrimary === 'string') root.setProperty('--smp-primary', a.colorPrimary);
        if (typeof a.borderRadius === 'string') root.setProperty('--smp-radius', a.borderRadius);
        if (typeof a.fontFamily === 'string') root.setProperty('--smp-font', a.fontFamily);
        externalButton = !!data.externalButton;
        // Multi-page: the loader remembers the choice made on the selector page (this frame's
        // storage may be blocked as third-party) and hands it back to the later page.
        if (typeof data.method === 'string' && !busy && !done) select(data.method);
        $('pay').hidden = externalButton;
        setBusy(false);
        resize();
      } else if (data.type === 'smp:pay') {
        submit();
      }
    } else if (event.origin === window.location.origin && data.type === 'smp:challenge-done') {
      var frame = $('challenge').querySelector('iframe');
      if (!frame || event.source !== frame.contentWindow) return;
      call('/widget/api/payments/complete').then(completed, failed);
    }
  });

  // Texts and labels.
  $('methods-legend').textContent = t('main-panel-registration:instruction');
  $('method-cards').textContent = t('method:CARDS');
  $('method-payu').textContent = t('method:PAYU');
  $('payu-note').textContent = t('payment:payu');
  $('option-payu').hidden = !offered('PAYU');
  ['number', 'expiry', 'cvc', 'holder'].forEach(function (f) { $(f + '-label').textContent = t('field:' + f); });
  $('pay').textContent = t('button:payment');
  if (cfg.mode === 'confirm') $('methods').hidden = true;

  if (cfg.error || !cfg.token) {
    $('card-form').hidden = true;
    $('methods').hidden = true;
    toParent({ type: 'smp:error', errorCode: 'ERR_CONFIG', message: 'the checkout cannot be paid here' });
    return;
  }
  if (cfg.status !== 'CREATED') {
    $('card-form').hidden = true;
    toParent({ type: 'smp:error', errorCode: 'ERR_PAYMENT_CALLBACK', message: 'this checkout was already submitted' });
    return;
  }
  $('number').addEventListener('input', formatNumber);
  Object.keys(CHECKS).forEach(function (f) {
    $(f).addEventListener('blur', function () { if ($(f).value) show(f, CHECKS[f]()); });
    // A field marked wrong is re-checked as the shopper corrects it.
    $(f).addEventListener('input', function () { if ($(f).getAttribute('aria-invalid') === 'true') show(f, CHECKS[f]()); });
  });
  $('card-form').addEventListener('submit', submit);
  $('methods').addEventListener('change', function () {
    showMethod();
    toParent({ type: 'smp:method', method: chosen() });
  });
  fetch('/sdk/bins.json').then(function (r) { return r.json(); }).then(function (b) { bins = b; }).finally(function () {
    toParent({ type: 'smp:ready' });
  });
  if (window.ResizeObserver) new ResizeObserver(resize).observe(document.body);
})();
