/* The hosted checkout page (/checkout/{token}): the widget on a full page of its own, for
 * mobile WebViews and redirects. With returnUrl, the shopper is sent back with the result. */
(function () {
  'use strict';
  var d = document.body.dataset;
  var outcome = document.getElementById('outcome');
  // The option a card was stored as during this payment (ADD_METHOD_CALLBACK), sent back too.
  var storedReference = null;
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
  var options = {
    checkoutToken: d.token,
    successHandler: function (data) {
      if (data.kind === 'ADD_METHOD_CALLBACK') {
        storedReference = data.storedPaymentOptionReference;
        return;
      }
      outcome.textContent = data.message;
      var params = { transactionId: data.transactionId, transactionStatus: data.transactionStatus };
      if (storedReference) params.storedPaymentOptionReference = storedReference;
      back(params);
    },
    errorHandler: function (code, message) {
      outcome.textContent = message;
      // Storing the card failed but the payment goes on: its result follows.
      if (code === 'ERROR_INIT_STORE_PAYMENT_OPTION') return;
      back({ errorCode: code });
    }
  };
  // Without a culture in the link, the widget takes the checkout's consumer.culture, then the
  // browser's language.
  if (d.culture) options.culture = d.culture;
  window.SmpLibrary.SmartPayAppInstance.renderWidget(options);
})();
