/* The demo shop: plays both the merchant's server (via /demo/api, which calls SmartPay's own
 * use cases for the sandbox merchant) and its page (the widget). */
(function () {
  'use strict';
  var statusBox = document.getElementById('status');
  // Each checkout's status is readable only with the demoSession it was created with.
  var sessions = {};
  function showStatus(id) {
    fetch('/demo/api/status/' + encodeURIComponent(id), { headers: { 'X-Demo-Session': sessions[id] || '' } }).then(function (r) { return r.json(); }).then(function (s) {
      statusBox.textContent = JSON.stringify(s, null, 2);
    });
  }
  document.getElementById('order').addEventListener('submit', function (e) {
    e.preventDefault();
    statusBox.textContent = '–';
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
        successHandler: function (data) { showStatus(data.transactionId); },
        errorHandler: function (code, message) { statusBox.textContent = code + ': ' + message; }
      });
    });
  });
})();
