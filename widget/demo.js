/* The demo shop: plays both the merchant's server (via /demo/api, which calls SmartPay's own
 * use cases for the sandbox merchant) and its page (the widget). */
(function () {
  'use strict';
  var statusBox = document.getElementById('status');
  var manage = document.getElementById('manage');
  var modAmount = document.getElementById('mod-amount');
  // Each checkout's status is readable (and its money movable) only with the demoSession it was
  // created with.
  var sessions = {};
  // The payment the buttons act on: the last one paid on this page.
  var current = null;
  function show(body) { statusBox.textContent = JSON.stringify(body, null, 2); }
  function showStatus(id) {
    fetch('/demo/api/status/' + encodeURIComponent(id), { headers: { 'X-Demo-Session': sessions[id] || '' } }).then(function (r) { return r.json(); }).then(show);
  }
  function modify(operation) {
    if (!current) { return; }
    var headers = { 'X-Demo-Session': sessions[current] || '' };
    var request = { method: 'POST', headers: headers };
    var amount = modAmount.value.trim();
    // Cancellations release everything; only captures and refunds take a partial amount.
    if (amount && operation !== 'cancel') {
      headers['Content-Type'] = 'application/json';
      request.body = JSON.stringify({ amount: amount });
    }
    statusBox.textContent = '…';
    fetch('/demo/api/' + operation + '/' + encodeURIComponent(current), request).then(function (r) {
      return r.json().then(function (b) { return { status: r.status, body: b }; });
    }).then(function (r) {
      // Refusals (409 invalid_state, 422 amount_exceeds_…) are shown as SmartPay answered them.
      statusBox.textContent = (r.status === 200 ? '' : 'HTTP ' + r.status + '\n') + JSON.stringify(r.body, null, 2);
    }, function (e) { statusBox.textContent = String(e); });
  }
  document.getElementById('refresh').addEventListener('click', function () { if (current) showStatus(current); });
  ['capture', 'refund', 'cancel'].forEach(function (operation) {
    document.getElementById(operation).addEventListener('click', function () { modify(operation); });
  });
  document.getElementById('order').addEventListener('submit', function (e) {
    e.preventDefault();
    statusBox.textContent = '–';
    current = null;
    manage.hidden = true;
    var culture = document.getElementById('culture').value;
    fetch('/demo/api/checkouts', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ amount: document.getElementById('amount').value, currency: document.getElementById('currency').value, culture: culture })
    }).then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); }).then(function (r) {
      if (!r.ok) { statusBox.textContent = JSON.stringify(r.body, null, 2); return; }
      sessions[r.body.transactionId] = r.body.demoSession;
      window.SmpLibrary.SmartPayAppInstance.renderWidget({
        checkoutToken: r.body.checkoutToken,
        culture: culture,
        successHandler: function (data) {
          current = data.transactionId;
          manage.hidden = false;
          showStatus(data.transactionId);
        },
        errorHandler: function (code, message) { statusBox.textContent = code + ': ' + message; }
      });
    });
  });
})();
