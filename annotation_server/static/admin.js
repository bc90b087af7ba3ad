/*
 * subjlab admin dashboard: the "Live" switch reloads the page every data-refresh seconds while it is
 * on (remembered per browser in localStorage). No data is written into the page by this script.
 */
(function () {
  "use strict";
  var box = document.getElementById("live");
  if (!box) { return; }
  var KEY = "subjlab-admin-live";
  var seconds = Math.max(2, Number(box.dataset.refresh) || 10);
  var timer = null;

  function schedule() {
    if (timer) { window.clearTimeout(timer); timer = null; }
    if (box.checked) {
      timer = window.setTimeout(function () { window.location.reload(); }, seconds * 1000);
    }
  }

  try { box.checked = window.localStorage.getItem(KEY) === "1"; } catch (e) { box.checked = false; }
  box.addEventListener("change", function () {
    try { window.localStorage.setItem(KEY, box.checked ? "1" : "0"); } catch (e) { /* private mode */ }
    schedule();
  });
  schedule();
}());
