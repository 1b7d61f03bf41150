/* SmartPay card frame. Runs on SmartPay's origin inside the merchant's page. Card data is sent
 * only to this origin's API; messages to the merchant page carry status only, and go to, and
 * are accepted from, exactly the parent origin the merchant registered.
 *
 * Vault journeys (reference §1.2): a GUEST checkout shows the card form. A REGISTERED one (the
 * checkout names a customerAccountId) loads the account's stored options: with none, the card
 * form offers to store the card (an explicit choice, unchecked); with some, their list comes
 * first (the default preselected) with "Add new payment method" and "Pay as a guest". */
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
    registered: body.dataset.journey === 'REGISTERED',
    // The payment methods this checkout offers (the server adds PAYU where it is available).
    methods: String(body.dataset.methods || 'CARDS').split(' ')
  };
  var TEXTS = {
    'en-US': {
      'main-panel-registration:instruction': 'Please select your payment method',
      'main-panel-registered:instruction': 'Choose a payment method',
      'main-panel-registered:instruction_detail': 'Continue with one of your saved payments or add a new one',
      'method:CARDS': 'Credit or debit card',
      'method:VISA': 'VISA', 'method:MSTRCRD': 'Mastercard', 'method:AMEX': 'AMEX',
      'field:number': 'Card number', 'field:expiry': 'Expiry date (MM/YY)', 'field:cvc': 'Security code', 'field:holder': 'Name on card',
      'field:store': 'Save this card for my next payments',
      'button:payment': 'Pay ${amount} ${currencyCode}',
      'button:as-guest': 'Pay as a guest',
      'button:continue-guest': 'Continue as a guest',
      'button:continue-registration': 'Continue with registration',
      'stored-method:empty': 'No stored payments available. Please add a new payment method.',
      'stored-method:add': 'Add new payment method',
      'stored-method:remove': 'delete',
      'stored-method:set_default': 'set as default',
      'stored-method:default': 'default',
      'stored-method:expiry_date': 'Expires',
      'stored-method:expires-soon': 'expires soon',
      'stored-method:expired': 'expired',
      'stored-method:expired-warning': 'An expired method can not be used for payment.',
      'stored-method:back': 'Back to stored payments',
      'stored-method:unavailable': 'Stored payment methods are not available at the moment. You can pay with a card.',
      'stored-method:change-failed': 'This could not be changed. Please try again.',
      'error:number': 'Enter a valid card number.', 'error:brand': 'This card brand is not accepted.',
      'error:expiry': 'Enter a valid expiry date.', 'error:expired': 'This card has expired.',
      'error:cvc': 'Enter the security code from your card.', 'error:holder': 'Enter the name as printed on the card.',
      'result:authorized': 'Payment successful.', 'result:declined': 'The payment was not successful. Please use another payment method.',
      'result:pending': 'Your payment is being processed.', 'result:challenge': 'Please confirm the payment with your bank.',
      'result:processing': 'Processing…', 'result:locked': 'Too many attempts. Please start a new checkout.',
      'result:expired': 'This checkout has expired.', 'result:failed': 'The payment could not be processed.',
      'result:stored': 'Your card was saved for your next payments.',
      'result:store-failed': 'Your card could not be saved. The payment was made without saving it.',
      'challenge:title': 'Confirm with your bank',
      'method:PAYU': 'PayU (pay by link)',
      'payment:payu': 'You will approve the payment on PayU\'s page, then return here.',
      'payment:payu-title': 'Approve with PayU', 'result:payu': 'Please approve the payment with PayU.'
    },
    'de-DE': {
      'main-panel-registration:instruction': 'Bitte wählen Sie Ihre Zahlungsart',
      'main-panel-registered:instruction': 'Wählen Sie eine Zahlungsart',
      'main-panel-registered:instruction_detail': 'Fahren Sie mit einer gespeicherten Zahlungsart fort oder fügen Sie eine neue hinzu',
      'method:CARDS': 'Kredit- oder Debitkarte',
      'method:VISA': 'VISA', 'method:MSTRCRD': 'Mastercard', 'method:AMEX': 'AMEX',
      'field:number': 'Kartennummer', 'field:expiry': 'Gültig bis (MM/JJ)', 'field:cvc': 'Prüfnummer', 'field:holder': 'Name auf der Karte',
      'field:store': 'Diese Karte für meine nächsten Zahlungen speichern',
      'button:payment': '${amount} ${currencyCode} bezahlen',
      'button:as-guest': 'Als Gast bezahlen',
      'button:continue-guest': 'Weiter als Gast',
      'button:continue-registration': 'Weiter mit Registrierung',
      'stored-method:empty': 'Keine gespeicherten Zahlungsarten vorhanden. Bitte fügen Sie eine neue Zahlungsart hinzu.',
      'stored-method:add': 'Neue Zahlungsart hinzufügen',
      'stored-method:remove': 'löschen',
      'stored-method:set_default': 'als Standard festlegen',
      'stored-method:default': 'Standard',
      'stored-method:expiry_date': 'Gültig bis',
      'stored-method:expires-soon': 'läuft bald ab',
      'stored-method:expired': 'abgelaufen',
      'stored-method:expired-warning': 'Eine abgelaufene Zahlungsart kann nicht zum Bezahlen verwendet werden.',
      'stored-method:back': 'Zurück zu den gespeicherten Zahlungsarten',
      'stored-method:unavailable': 'Gespeicherte Zahlungsarten sind im Moment nicht verfügbar. Sie können mit einer Karte bezahlen.',
      'stored-method:change-failed': 'Das konnte nicht geändert werden. Bitte versuchen Sie es erneut.',
      'error:number': 'Bitte eine gültige Kartennummer eingeben.', 'error:brand': 'Diese Kartenmarke wird nicht akzeptiert.',
      'error:expiry': 'Bitte ein gültiges Ablaufdatum eingeben.', 'error:expired': 'Diese Karte ist abgelaufen.',
      'error:cvc': 'Bitte die Prüfnummer Ihrer Karte eingeben.', 'error:holder': 'Bitte den Namen wie auf der Karte eingeben.',
      'result:authorized': 'Zahlung erfolgreich.', 'result:declined': 'Die Zahlung war nicht erfolgreich. Bitte eine andere Zahlungsart wählen.',
      'result:pending': 'Ihre Zahlung wird bearbeitet.', 'result:challenge': 'Bitte bestätigen Sie die Zahlung bei Ihrer Bank.',
      'result:processing': 'Wird bearbeitet…', 'result:locked': 'Zu viele Versuche. Bitte einen neuen Checkout starten.',
      'result:expired': 'Dieser Checkout ist abgelaufen.', 'result:failed': 'Die Zahlung konnte nicht verarbeitet werden.',
      'result:stored': 'Ihre Karte wurde für Ihre nächsten Zahlungen gespeichert.',
      'result:store-failed': 'Ihre Karte konnte nicht gespeichert werden. Die Zahlung wurde ohne Speichern ausgeführt.',
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
  var started = false;
  // The method of the submission in flight (its approval or challenge page is titled after it),
  // and the payment it started once SmartPay named it.
  var submitted = 'CARDS';
  var transactionId = null;

  // The vault. `options` as /widget/api/options lists them; `view` is `stored` (the list of
  // stored options) or `new` (the method selector and card form); `guest` once the shopper
  // chose "Pay as a guest" (nothing is stored then). `storedReference` is the option the
  // payment in flight uses (a stored one, or the card it stored), `stored` whether that card
  // was stored by this payment.
  var vault = { options: [], canStore: false, unavailable: false };
  var view = 'new';
  var guest = !cfg.registered;
  var selectedReference = null;
  var storedReference = null;
  var stored = false;

  // Payment methods. CARDS is always offered; a redirect method only where the server says so.
  var REDIRECT = { PAYU: { title: 'payment:payu-title', waiting: 'result:payu' } };
  function offered(method) { return method === 'CARDS' || (REDIRECT[method] && cfg.methods.indexOf(method) >= 0); }
  function chosen() {
    var checked = document.querySelector('input[name=method]:checked');
    return checked && offered(checked.value) ? checked.value : 'CARDS';
  }
  function select(method) {
    if (!offered(method)) return;
    var radios = document.querySelectorAll('input[name=method]');
    for (var i = 0; i < radios.length; i++) radios[i].checked = radios[i].value === method;
    render();
  }
  function usable(option) { return option && !option.isExpired; }
  function optionOf(reference) {
    for (var i = 0; i < vault.options.length; i++) if (vault.options[i].reference === reference) return vault.options[i];
    return null;
  }
  function canStoreHere() { return cfg.registered && vault.canStore && !guest; }
  // What the pay button pays with now.
  function payingWithStored() { return view === 'stored' && usable(optionOf(selectedReference)); }

  // Shows what the current state calls for.
  function render() {
    var confirm = cfg.mode === 'confirm';
    // Nothing to choose before the options are known, after the end, or while the provider's
    // page is shown.
    var open = started && !done && cfg.status === 'CREATED' && !cfg.error && !!cfg.token && $('challenge').hidden;
    var storedView = open && view === 'stored';
    var method = chosen();
    $('stored').hidden = !storedView;
    $('add-new').hidden = confirm;
    $('methods').hidden = !open || storedView || confirm;
    $('card-form').hidden = !open;
    $('card-fields').hidden = storedView || method !== 'CARDS';
    $('payu-note').hidden = storedView || method !== 'PAYU';
    $('store-row').hidden = !canStoreHere();
    if ($('store-row').hidden) $('store').checked = false;
    $('stored-empty').hidden = !open || storedView || confirm || !canStoreHere() || vault.options.length > 0;
    $('vault-note').hidden = !(open && cfg.registered && vault.unavailable);
    $('back').hidden = !open || confirm || storedView || vault.options.length === 0;
    $('as-guest').hidden = !open || confirm || guest || !cfg.registered;
    var items = $('stored-list').children;
    for (var i = 0; i < items.length; i++) {
      // On a confirmation page (multi-page flow) only the chosen option is shown, without actions.
      items[i].hidden = confirm && items[i].dataset.reference !== selectedReference;
      var actions = items[i].querySelectorAll('button');
      // An expired option can only be deleted; the default is not offered as default again.
      var noDefault = items[i].dataset.isDefault === 'true' || items[i].dataset.expired === 'true';
      for (var j = 0; j < actions.length; j++) actions[j].hidden = confirm || (actions[j].dataset.action === 'default' && noDefault);
    }
    setBusy(busy);
    continueButtons();
    resize();
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
    var blocked = view === 'stored' && !payingWithStored();
    $('pay').disabled = b || done || blocked;
    toParent({ type: 'smp:button', label: t('button:payment'), enabled: !b && !done && !blocked });
  }
  // The optional buttons on the merchant's page (reference §5.2): "continue as a guest" and
  // "continue with registration", offered while a registered shopper can still choose.
  function continueButtons() {
    var choosing = started && !busy && !done && cfg.registered && cfg.mode !== 'confirm' && !transactionId;
    toParent({
      type: 'smp:continue-buttons',
      guest: { label: t('button:continue-guest'), shown: choosing && !guest },
      registration: { label: t('button:continue-registration'), shown: choosing && vault.canStore }
    });
  }
  function result(messageId) {
    $('result').textContent = t(messageId);
    resize();
  }
  function finish(answer) {
    done = true;
    busy = false;
    $('challenge').hidden = true;
    $('challenge').innerHTML = '';
    result(answer.message);
    render();
    var reference = answer.storedPaymentOptionReference || storedReference;
    var failed = answer.transactionStatus === 'AUTHORIZATION_FAILED';
    // A card stored by this payment is announced first (ADD_METHOD_CALLBACK), then the payment.
    if (stored && reference && !failed) {
      toParent({ type: 'smp:stored', transactionId: answer.transactionId, transactionStatus: answer.transactionStatus, message: t('result:stored'), storedPaymentOptionReference: reference });
    }
    var msg = { type: 'smp:result', transactionId: answer.transactionId, transactionStatus: answer.transactionStatus, message: t(answer.message) };
    if (reference && !failed) msg.storedPaymentOptionReference = reference;
    toParent(msg);
  }
  function fail(code, messageId) {
    done = code !== 'RETRY';
    setBusy(false);
    result(messageId);
    render();
    if (code !== 'RETRY') toParent({ type: 'smp:error', errorCode: code, message: t(messageId) });
  }
  function request(method, path, payload) {
    var init = { method: method, credentials: 'omit', headers: { 'X-Checkout-Token': cfg.token } };
    if (payload !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(payload);
    }
    return fetch(path, init).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (b) { return { status: r.status, body: b }; });
    });
  }
  function call(path, payload) { return request('POST', path, payload || {}); }
  function handle(r) {
    if (r.status === 200 && r.body.transactionId) transactionId = r.body.transactionId;
    if (r.status === 200 && r.body.storedPaymentOptionReference) storedReference = r.body.storedPaymentOptionReference;
    if (r.status === 200 && r.body.storeError === 'ERROR_INIT_STORE_PAYMENT_OPTION') {
      // The card could not be stored; the payment went ahead without storing it.
      stored = false;
      toParent({ type: 'smp:error', errorCode: 'ERROR_INIT_STORE_PAYMENT_OPTION', message: t('result:store-failed') });
    }
    if (r.status === 200 && r.body.challengeUrl) return challenge(r.body.challengeUrl);
    if (r.status === 200) return finish(r.body);
    if (r.status === 400) {
      (r.body.errors || []).forEach(function (e) {
        var property = String(e.property || '');
        if (property === 'storedPaymentOptionReference') {
          $('stored-error').textContent = t('stored-method:expired-warning');
          return;
        }
        var field = property.replace('card.', '');
        if (CHECKS[field]) show(field, e.code === 'card_expired' ? 'error:expired' : e.code === 'unsupported_card_brand' ? 'error:brand' : 'error:' + field);
      });
      if (submitted === 'STORED') loadOptions().then(render);
      return fail('RETRY', 'result:failed');
    }
    if (r.status === 404 && submitted === 'STORED') {
      // The option is gone (deleted elsewhere): the list is shown as it is now.
      loadOptions().then(render);
      return fail('RETRY', 'result:failed');
    }
    if (r.status === 401) return fail('ERR_CONFIG', 'result:expired');
    if (r.status === 409 && r.body.errors && r.body.errors[0] && r.body.errors[0].code === 'checkout_locked') return fail('ERR_PAYMENT_CALLBACK', 'result:locked');
    if (r.status === 429) return fail('RETRY', 'result:locked');
    if (r.status === 503 && submitted === 'STORED') return fail('RETRY', 'result:failed');
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
    $('stored').hidden = true;
    $('stored-empty').hidden = true;
    $('vault-actions').hidden = true;
    result(redirect ? redirect.waiting : 'result:challenge');
    continueButtons();
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
    $('stored-error').textContent = '';
    if (view === 'stored') {
      if (!payingWithStored()) return;
      submitted = 'STORED';
      storedReference = selectedReference;
      stored = false;
      setBusy(true);
      render();
      result('result:processing');
      call('/widget/api/payments', { storedPaymentOptionReference: selectedReference }).then(handle, failed);
      return;
    }
    submitted = chosen();
    if (REDIRECT[submitted]) {
      setBusy(true);
      render();
      result('result:processing');
      call('/widget/api/payments/redirect', { paymentMethod: submitted }).then(handle, failed);
      return;
    }
    if (!validateAll()) { resize(); setBusy(false); return; }
    var store = canStoreHere() && $('store').checked;
    stored = store;
    storedReference = null;
    setBusy(true);
    render();
    result('result:processing');
    var payload = {
      number: digits($('number').value), expiry: $('expiry').value.trim(), cvc: $('cvc').value,
      holderName: $('holder').value.trim() || undefined
    };
    if (store) payload.storeCard = true;
    call('/widget/api/payments', payload).then(handle, failed);
  }

  // The list of stored options, built from the server's answer with text nodes only.
  function badge(text, kind) {
    var b = document.createElement('span');
    b.className = 'smp-badge smp-badge-' + kind;
    b.textContent = text;
    return b;
  }
  function describe(option) {
    return t('method:' + option.code) + ' ' + option.carrierNumber;
  }
  function item(option, index) {
    var li = document.createElement('li');
    li.className = 'smp-stored-item' + (option.isExpired ? ' smp-stored-expired' : '');
    li.dataset.reference = option.reference;
    li.dataset.isDefault = option.isDefault ? 'true' : 'false';
    li.dataset.expired = option.isExpired ? 'true' : 'false';
    var label = document.createElement('label');
    label.className = 'smp-stored-choice';
    var radio = document.createElement('input');
    radio.type = 'radio';
    radio.name = 'stored';
    radio.value = option.reference;
    radio.id = 'stored-' + index;
    radio.disabled = !!option.isExpired;
    radio.checked = option.reference === selectedReference;
    if (option.isExpired) radio.setAttribute('aria-describedby', 'stored-warning');
    label.appendChild(radio);
    var brand = document.createElement('span');
    brand.className = 'smp-stored-brand';
    brand.textContent = t('method:' + option.code);
    label.appendChild(brand);
    var number = document.createElement('span');
    number.className = 'smp-stored-number';
    number.textContent = option.carrierNumber;
    label.appendChild(number);
    var expiry = document.createElement('span');
    expiry.className = 'smp-stored-expiry';
    expiry.textContent = t('stored-method:expiry_date') + ' ' + option.expiryDate;
    label.appendChild(expiry);
    if (option.isDefault) label.appendChild(badge(t('stored-method:default'), 'default'));
    if (option.isExpired) label.appendChild(badge(t('stored-method:expired'), 'expired'));
    else if (option.expiresSoon) label.appendChild(badge(t('stored-method:expires-soon'), 'soon'));
    li.appendChild(label);
    [['default', 'stored-method:set_default'], ['remove', 'stored-method:remove']].forEach(function (a) {
      var button = document.createElement('button');
      button.type = 'button';
      button.className = 'smp-link';
      button.dataset.action = a[0];
      button.textContent = t(a[1]);
      // Screen readers hear which option the action is for.
      button.setAttribute('aria-label', t(a[1]) + ': ' + describe(option));
      li.appendChild(button);
    });
    return li;
  }
  // The preselected option: the one chosen before if still usable, else the default, else the
  // first usable one.
  function preselect() {
    if (usable(optionOf(selectedReference))) return;
    selectedReference = null;
    for (var i = 0; i < vault.options.length; i++) if (vault.options[i].isDefault && usable(vault.options[i])) selectedReference = vault.options[i].reference;
    for (var k = 0; k < vault.options.length && !selectedReference; k++) if (usable(vault.options[k])) selectedReference = vault.options[k].reference;
  }
  function buildList() {
    preselect();
    var list = $('stored-list');
    list.innerHTML = '';
    vault.options.forEach(function (o, i) { list.appendChild(item(o, i)); });
    var anyExpired = vault.options.some(function (o) { return o.isExpired; });
    $('stored-warning').hidden = !anyExpired;
    if (vault.options.length === 0 && view === 'stored') view = 'new';
  }
  function loadOptions() {
    return request('GET', '/widget/api/options').then(function (r) {
      var b = r.status === 200 ? r.body : {};
      vault.options = Array.isArray(b.options) ? b.options.filter(function (o) { return o && /^[A-Za-z0-9]{1,64}$/.test(String(o.reference)); }) : [];
      vault.canStore = b.canStore === true;
      vault.unavailable = r.status !== 200 || b.vaultUnavailable === true;
      buildList();
    }, function () {
      vault.options = [];
      vault.canStore = false;
      vault.unavailable = true;
      buildList();
    });
  }
  // Tells the merchant's page which option is chosen (multi-page flow): a method code, or a
  // stored option's reference, and whether the shopper pays as a guest. Never card data.
  function announceChoice() {
    if (view === 'stored') toParent({ type: 'smp:method', method: 'STORED', reference: selectedReference });
    else toParent({ type: 'smp:method', method: chosen(), guest: guest });
  }
  function showStored() {
    if (busy || done || vault.options.length === 0) return;
    view = 'stored';
    guest = false;
    render();
    announceChoice();
  }
  // "Add new payment method" (and the page's "continue with registration"): the card form, with
  // the choice to store the card.
  function addNew(store) {
    if (busy || done) return;
    view = 'new';
    guest = !cfg.registered;
    select('CARDS');
    if (store && canStoreHere()) $('store').checked = true;
    render();
    announceChoice();
    $('number').focus();
  }
  // "Pay as a guest": the stored options are hidden and nothing is stored.
  function asGuest() {
    if (busy || done) return;
    view = 'new';
    guest = true;
    render();
    announceChoice();
    var first = document.querySelector('input[name=method]:checked');
    if (first && !$('methods').hidden) first.focus(); else $('number').focus();
  }
  function changeOption(action, reference) {
    if (busy || done) return;
    $('stored-error').textContent = '';
    setBusy(true);
    var path = '/widget/api/options/' + encodeURIComponent(reference) + (action === 'default' ? '/default' : '');
    request(action === 'default' ? 'POST' : 'DELETE', path).then(function (r) {
      if (r.status !== 200) $('stored-error').textContent = t('stored-method:change-failed');
      if (action === 'default' && r.status === 200) selectedReference = reference;
      return loadOptions();
    }, function () {
      $('stored-error').textContent = t('stored-method:change-failed');
    }).then(function () {
      setBusy(false);
      render();
      announceChoice();
      // The focus stays in the list (the button it was on may be gone).
      var again = document.querySelector('#stored-list li[data-reference="' + reference + '"] button[data-action=' + action + ']');
      var target = again && !again.hidden ? again : document.querySelector('input[name=stored]:checked') || $('add-new');
      if (view === 'stored') target.focus(); else $('number').focus();
    });
  }
  // A choice the merchant's page remembered from the first page of a multi-page flow.
  function restore(choice) {
    if (!choice || typeof choice !== 'object' || busy || done) return;
    if (choice.method === 'STORED' && usable(optionOf(choice.reference))) {
      selectedReference = choice.reference;
      view = 'stored';
      guest = false;
      buildList();
    } else if (typeof choice.method === 'string' && offered(choice.method)) {
      view = 'new';
      guest = !cfg.registered || choice.guest === true;
      select(choice.method);
    }
    render();
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
        if (data.choice) restore(data.choice);
        else if (typeof data.method === 'string') restore({ method: data.method });
        $('pay').hidden = externalButton;
        setBusy(busy);
        render();
      } else if (data.type === 'smp:pay') {
        submit();
      } else if (data.type === 'smp:continue') {
        if (data.flow === 'GUEST') asGuest();
        else if (data.flow === 'REGISTRATION' && vault.canStore) addNew(true);
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
  ['number', 'expiry', 'cvc', 'holder', 'store'].forEach(function (f) { $(f + '-label').textContent = t('field:' + f); });
  $('stored-legend').textContent = t('main-panel-registered:instruction');
  $('stored-detail').textContent = t('main-panel-registered:instruction_detail');
  $('stored-warning').textContent = t('stored-method:expired-warning');
  $('stored-empty').textContent = t('stored-method:empty');
  $('vault-note').textContent = t('stored-method:unavailable');
  $('add-new').textContent = t('stored-method:add');
  $('back').textContent = t('stored-method:back');
  $('as-guest').textContent = t('button:as-guest');
  $('pay').textContent = t('button:payment');

  if (cfg.error || !cfg.token) {
    render();
    toParent({ type: 'smp:error', errorCode: 'ERR_CONFIG', message: 'the checkout cannot be paid here' });
    return;
  }
  if (cfg.status !== 'CREATED') {
    render();
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
    render();
    announceChoice();
  });
  $('stored-list').addEventListener('change', function (e) {
    if (e.target && e.target.name === 'stored' && usable(optionOf(e.target.value))) {
      selectedReference = e.target.value;
      $('stored-error').textContent = '';
      render();
      announceChoice();
    }
  });
  $('stored-list').addEventListener('click', function (e) {
    var button = e.target && e.target.closest ? e.target.closest('button[data-action]') : null;
    var li = button && button.closest('li');
    if (li) changeOption(button.dataset.action, li.dataset.reference);
  });
  $('add-new').addEventListener('click', function () { addNew(false); });
  $('back').addEventListener('click', showStored);
  $('as-guest').addEventListener('click', asGuest);

  // A guest checkout shows the card form at once; a registered one once its options are known.
  started = !cfg.registered;
  render();
  var options = cfg.registered ? loadOptions().then(function () {
    view = vault.options.length > 0 ? 'stored' : 'new';
    started = true;
    render();
  }) : Promise.resolve();
  var table = fetch('/sdk/bins.json').then(function (r) { return r.json(); }).then(function (b) { bins = b; }, function () { /* brand detection off */ });
  Promise.all([options, table]).then(function () {
    toParent({ type: 'smp:ready' });
  });
  if (window.ResizeObserver) new ResizeObserver(resize).observe(document.body);
})();
