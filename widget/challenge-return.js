/* Loaded where the provider's 3-D Secure page returns to, inside the card frame's challenge
 * iframe (same origin as the frame): tells the frame that the challenge is over. */
(function () {
  'use strict';
  if (window.parent && window.parent !== window) {
    window.parent.postMessage({ type: 'smp:challenge-done' }, window.location.origin);
  }
})();
