/*! SmartPay widget loader. Creates window.SmpLibrary.SmartPayAppInstance.renderWidget(options).
 * Card fields live in an iframe served from SmartPay's origin; this page never sees card data.
 * Messages are exchanged with that iframe only, checked against SmartPay's exact origin. */
(function () {
  'use strict';
  var script = document.currentScript;
  var BASE = new URL(script && script.src ? script.src : '/sdk/smp-bundle.js', window.location.href).origin;
  var LOAD_TIMEOUT_MS = 8000;
  var DEFAULT_CONTAINERS = {
    selector: 'selector-container', selection: 'selection-container', button: 'button-container',
    // Optional (reference §5.2): buttons on the merchant's page for a registered shopper.
    registrationContinueButton: 'registration-continue-button-container',
    paymentContinueButton: 'payment-continue-button-container'
  };
  // The reference names containers by their element ids: those are accepted as keys too.
  var CONTAINER_ALIASES = {
    'selector-container': 'selector', 'selection-container': 'selection', 'button-container': 'button',
    'registration-continue-button-container': 'registrationContinueButton',
    'payment-continue-button-container': 'paymentContinueButton'
  };
  function containerKey(k) {
    if (Object.prototype.hasOwnProperty.call(DEFAULT_CONTAINERS, k)) return k;
    return Object.prototype.hasOwnProperty.call(CONTAINER_ALIASES, k) ? CONTAINER_ALIASES[k] : null;
  }
  // What the optional containers' buttons start in the frame (reference §5.2, as documented:
  // `registration-continue-button-container` holds `button:continue-guest`, the guest payment
  // flow; `payment-continue-button-container` holds `button:continue-registration`, storing a
  // new option).
  var CONTINUE = {
    registrationContinueButton: { flow: 'GUEST', state: 'guest' },
    paymentContinueButton: { flow: 'REGISTRATION', state: 'registration' }
  };
  var REFERENCE = /^[A-Za-z0-9]{1,64}$/;
  var APPEARANCE_RULES = {
    colorPrimary: /^(#[0-9a-fA-F]{3,8}|[a-zA-Z]{3,20}|rgba?\([0-9.,\s%]{5,40}\))$/,
    borderRadius: /^[0-9]{1,2}(\.[0-9])?(px|rem|em)$/,
    fontFamily: /^[A-Za-z0-9 ,\-"']{1,80}$/
  };

  function report(handler, code, message) {
    if (typeof handler === 'function') {
      try { handler(code, message); } catch (e) { /* the merchant's handler failed */ }
    } else if (window.console) {
      window.console.error('SmartPay widget: ' + code + ': ' + message);
    }
  }

  function validate(options) {
    if (!options || typeof options !== 'object') return 'options must be an object';
    if (typeof options.checkoutToken !== 'string' || !/^[A-Za-z0-9]{64}$/.test(options.checkoutToken)) return 'checkoutToken must be the 64-character token from Create Checkout';
    if (options.culture !== undefined && (typeof options.culture !== 'string' || !/^[a-zA-Z]{2}-[a-zA-Z]{2}$/.test(options.culture))) return 'culture must look like de-DE';
    if (options.successHandler !== undefined && typeof options.successHandler !== 'function') return 'successHandler must be a function';
    if (options.errorHandler !== undefined && typeof options.errorHandler !== 'function') return 'errorHandler must be a function';
    if (options.containers !== undefined) {
      if (!options.containers || typeof options.containers !== 'object') return 'containers must be an object';
      for (var k in options.containers) {
        if (!containerKey(k)) return 'unknown container ' + k;
        if (typeof options.containers[k] !== 'string' || !/^[A-Za-z][\w\-]{0,99}$/.test(options.containers[k])) return 'container ids must be element ids';
      }
    }
    if (options.appearance !== undefined) {
      if (!options.appearance || typeof options.appearance !== 'object') return 'appearance must be an object';
      for (var a in options.appearance) {
        var rule = APPEARANCE_RULES[a];
        if (!rule) return 'unknown appearance option ' + a;
        if (typeof options.appearance[a] !== 'string' || !rule.test(options.appearance[a])) return 'appearance.' + a + ' is not valid';
      }
    }
    return null;
  }

  // The payment method chosen for a checkout, remembered in this page's own session storage so
  // that the later page of a multi-page flow shows it. Only the method code, a stored option's
  // reference and the guest choice are kept.
  function methodKey(token) { return 'smp:method:' + token.slice(-16); }
  function choiceOf(data) {
    if (!data || typeof data.method !== 'string' || !/^[A-Z]{2,12}$/.test(data.method)) return null;
    var choice = { method: data.method };
    if (data.method === 'STORED') {
      if (typeof data.reference !== 'string' || !REFERENCE.test(data.reference)) return null;
      choice.reference = data.reference;
    } else if (data.guest === true) {
      choice.guest = true;
    }
    return choice;
  }
  function rememberMethod(token, choice) {
    try { window.sessionStorage.setItem(methodKey(token), JSON.stringify(choice)); } catch (e) { /* no storage */ }
  }
  function rememberedMethod(token) {
    try { return choiceOf(JSON.parse(window.sessionStorage.getItem(methodKey(token)) || 'null')) || undefined; } catch (e) { return undefined; }
  }
  function forgetMethod(token) {
    try { window.sessionStorage.removeItem(methodKey(token)); } catch (e) { /* no storage */ }
  }

  function renderWidget(options) {
    var problem = validate(options);
    if (problem) {
      report(options && options.errorHandler, 'ERROR_INVALID_INPUT', problem);
      return;
    }
    var ids = {};
    for (var key in DEFAULT_CONTAINERS) ids[key] = DEFAULT_CONTAINERS[key];
    for (var given in options.containers || {}) ids[containerKey(given)] = options.containers[given];
    var selector = document.getElementById(ids.selector);
    var selection = document.getElementById(ids.selection);
    var buttonHost = document.getElementById(ids.button);
    // Multi-page: the first page has the selector; a later one only selection and button.
    var host = selector || selection;
    var mode = selector ? 'full' : 'confirm';
    if (!host) {
      report(options.errorHandler, 'ERROR_INVALID_INPUT', 'no container element found (' + ids.selector + ' or ' + ids.selection + ')');
      return;
    }
    // The language (CONTRACT §9): the culture passed here, else the checkout's consumer.culture,
    // else the browser's, else en-US — SmartPay decides, knowing the checkout.
    var lang = typeof navigator.language === 'string' && /^[A-Za-z]{2,3}([\-_][A-Za-z0-9]{1,8})*$/.test(navigator.language) ? navigator.language : '';
    var frame = document.createElement('iframe');
    frame.src = BASE + '/widget/frame?t=' + encodeURIComponent(options.checkoutToken) +
      '&origin=' + encodeURIComponent(window.location.origin) +
      (options.culture ? '&culture=' + encodeURIComponent(options.culture) : '') +
      (lang ? '&lang=' + encodeURIComponent(lang) : '') + '&mode=' + mode;
    frame.title = 'SmartPay payment form';
    frame.setAttribute('allow', 'payment');
    frame.style.border = '0';
    frame.style.width = '100%';
    frame.style.minHeight = '320px';
    host.innerHTML = '';
    host.appendChild(frame);

    var payButton = null;
    if (mode === 'confirm' && buttonHost) {
      payButton = document.createElement('button');
      payButton.type = 'button';
      payButton.className = 'smp-pay-button';
      payButton.disabled = true;
      payButton.textContent = '…';
      payButton.addEventListener('click', function () {
        payButton.disabled = true;
        frame.contentWindow.postMessage({ type: 'smp:pay' }, BASE);
      });
      buttonHost.innerHTML = '';
      buttonHost.appendChild(payButton);
    }

    // The optional continue buttons: created now, shown only while the frame offers their flow.
    var continueButtons = {};
    if (mode === 'full') {
      Object.keys(CONTINUE).forEach(function (k) {
        var hostElement = document.getElementById(ids[k]);
        if (!hostElement) return;
        var b = document.createElement('button');
        b.type = 'button';
        b.className = 'smp-continue-button';
        b.hidden = true;
        b.addEventListener('click', function () {
          frame.contentWindow.postMessage({ type: 'smp:continue', flow: CONTINUE[k].flow }, BASE);
        });
        hostElement.innerHTML = '';
        hostElement.appendChild(b);
        continueButtons[k] = b;
      });
    }

    var ready = false;
    var finished = false;
    var added = false;
    var timer = window.setTimeout(function () {
      if (!ready) report(options.errorHandler, 'ERR_CONFIG', 'the payment form did not load');
    }, LOAD_TIMEOUT_MS);

    window.addEventListener('message', function (event) {
      if (event.origin !== BASE || event.source !== frame.contentWindow) return;
      var data = event.data || {};
      switch (data.type) {
        case 'smp:ready':
          ready = true;
          window.clearTimeout(timer);
          frame.contentWindow.postMessage({ type: 'smp:init', appearance: options.appearance || {}, externalButton: !!payButton, choice: rememberedMethod(options.checkoutToken) }, BASE);
          break;
        case 'smp:resize':
          if (typeof data.height === 'number' && data.height > 0 && data.height < 5000) frame.style.height = Math.ceil(data.height) + 'px';
          break;
        case 'smp:button':
          if (payButton) {
            payButton.textContent = String(data.label || '');
            payButton.disabled = !data.enabled;
          }
          break;
        case 'smp:continue-buttons':
          Object.keys(continueButtons).forEach(function (k) {
            var state = data[CONTINUE[k].state] || {};
            continueButtons[k].textContent = String(state.label || '');
            continueButtons[k].hidden = state.shown !== true;
          });
          break;
        case 'smp:method':
          var choice = choiceOf(data);
          if (choice) rememberMethod(options.checkoutToken, choice);
          break;
        case 'smp:stored':
          // A card stored with this payment: reported before the payment's own result.
          if (added || finished || typeof data.storedPaymentOptionReference !== 'string' || !REFERENCE.test(data.storedPaymentOptionReference)) return;
          added = true;
          if (typeof options.successHandler === 'function') {
            try {
              options.successHandler({
                kind: 'ADD_METHOD_CALLBACK',
                transactionId: String(data.transactionId),
                transactionStatus: String(data.transactionStatus),
                message: String(data.message),
                storedPaymentOptionReference: data.storedPaymentOptionReference
              });
            } catch (e) { /* the merchant's handler failed: the payment's result still follows */ }
          }
          break;
        case 'smp:result':
          if (finished) return;
          finished = true;
          forgetMethod(options.checkoutToken);
          Object.keys(continueButtons).forEach(function (k) { continueButtons[k].hidden = true; });
          if (typeof options.successHandler === 'function') {
            var result = {
              kind: 'CALLBACK',
              transactionId: String(data.transactionId),
              transactionStatus: String(data.transactionStatus),
              message: String(data.message)
            };
            // The stored option the payment was made with (a stored one, or the card just stored).
            if (typeof data.storedPaymentOptionReference === 'string' && REFERENCE.test(data.storedPaymentOptionReference)) {
              result.storedPaymentOptionReference = data.storedPaymentOptionReference;
            }
            options.successHandler(result);
          }
          break;
        case 'smp:error':
          ready = true;
          window.clearTimeout(timer);
          report(options.errorHandler, String(data.errorCode), String(data.message));
          break;
      }
    });
  }

  window.SmpLibrary = window.SmpLibrary || {};
  window.SmpLibrary.SmartPayAppInstance = { renderWidget: renderWidget, version: '1' };
})();
