/*
 * Hands an MTurk assignment in: submits the form (to <turkSubmitTo>/mturk/externalSubmit) once the page
 * has loaded. The visible "Submit HIT" button does the same if scripts are slow or blocked; a second
 * submission is prevented either way.
 */
(function () {
  "use strict";

  var form = document.getElementById("mturk-submit");
  if (!form) { return; }
  var button = document.getElementById("submit-hit");
  var sent = false;

  function send() {
    if (sent) { return; }
    sent = true;
    if (button) { button.disabled = true; }
    form.submit();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    send();
  });
  window.setTimeout(send, 250);
}());
