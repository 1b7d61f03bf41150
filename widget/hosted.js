/* The hosted checkout page (/checkout/{token}): the widget on a full page of its own, for
 * mobile WebViews and redirects. With returnUrl, the shopper is sent back with the result. */
(function () {
  'use strict';
  var d = document.body.dataset;
  var outcome = document.getElementById('outcome');
  function back(params) {
    if (!d.returnUrl) return;
    var url = new URL(d.returnUrl);
    Object.keys(params).forEach(function (k) { url.searchParams.set(k, params[k]); });
    window.location.assign(url.toString());
  }
  if (!d.token) {
    outcome.textContent = 'This checkout does not exist or has expired.';
    back({ errorCode: 'ERR_CONFIG' });
    return;
  }
  window.SmpLibrary.SmartPayAppInstance.renderWidget({
    checkoutToken: d.token,
    culture: d.culture,
    successHandler: function (data) {
      outcome.textContent = data.message;
      back({ transactionId: data.transactionId, transactionStatus: data.transactionStatus });
    },
    errorHandler: function (code, message) {
      outcome.textContent = message;
      back({ errorCode: code });
    }
  });
})();
