/*
 * subjlab worker unit page.
 *
 * Asks the JSON API for the first assignment (GET {api}/studies/{study}/next), renders it, and posts
 * the worker's answer with the worker token as a Bearer token, asking for the next assignment in the
 * same reply (POST {api}/assignments/{id}?next=1: one round trip per unit), until nothing is left
 * (`"next": null`, or 204 from GET .../next), then opens the completion page.
 *
 * Every text from the server is put on the page with textContent (never innerHTML), so task
 * descriptions, example texts and item texts always show as plain text.
 */
(function () {
  "use strict";

  var app = document.getElementById("unit-app");
  if (!app) { return; }
  var tokenMeta = document.querySelector('meta[name="subjlab-worker-token"]');
  var token = tokenMeta ? tokenMeta.getAttribute("content") : "";
  var apiBase = app.dataset.apiBase;
  var study = app.dataset.study;
  var doneUrl = app.dataset.doneUrl;
  var startUrl = app.dataset.startUrl;

  var el = function (id) { return document.getElementById(id); };
  var pairwise = el("pairwise");
  var labeling = el("labeling");
  var statusBox = el("status");
  var retryBox = el("retry-box");

  var current = null;     // the assignment on screen
  var busy = false;       // true while a request is in flight (buttons disabled)
  var pendingRetry = null;

  function api(method, path, body) {
    var init = {
      method: method,
      headers: { "Authorization": "Bearer " + token, "Accept": "application/json" },
      credentials: "same-origin",
      cache: "no-store"
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(apiBase + path, init).then(function (resp) {
      if (resp.status === 204) { return { status: 204, data: null }; }
      return resp.json().then(
        function (data) { return { status: resp.status, data: data }; },
        function () { return { status: resp.status, data: null }; }
      );
    });
  }

  function errorMessage(result) {
    if (result && result.data && result.data.error && result.data.error.message) {
      return result.data.error.message;
    }
    return "The server answered with status " + (result ? result.status : "unknown") + ".";
  }

  function setStatus(text, isError) {
    statusBox.textContent = text || "";
    statusBox.classList.toggle("error", Boolean(isError));
  }

  function showRetry(fn) {
    pendingRetry = fn;
    retryBox.classList.toggle("hidden", !fn);
  }

  function setBusy(value) {
    busy = value;
    var buttons = app.querySelectorAll("button.choose, #label-buttons button");
    for (var i = 0; i < buttons.length; i++) { buttons[i].disabled = value; }
  }

  function clear(node) {
    while (node.firstChild) { node.removeChild(node.firstChild); }
  }

  function textNode(tag, text, className) {
    var node = document.createElement(tag);
    node.textContent = text == null ? "" : String(text);
    if (className) { node.className = className; }
    return node;
  }

  function showProgress(progress) {
    var text = el("progress-text");
    var bar = el("progress-bar");
    if (!progress) { text.textContent = ""; return; }
    var answered = Number(progress.answered) || 0;
    var target = progress.target == null ? null : Number(progress.target);
    if (target && target > 0) {
      text.textContent = "Unit " + Math.min(answered + 1, target) + " of " + target +
        " (" + answered + " answered)";
      bar.max = target;
      bar.value = Math.min(answered, target);
      bar.classList.remove("hidden");
    } else {
      text.textContent = answered + " answered so far";
      bar.classList.add("hidden");
    }
  }

  function fillTaskCard(side, card) {
    el(side + "-title").textContent = card.title || card.task;
    el(side + "-description").textContent = card.description || "";
    var labels = el(side + "-labels");
    clear(labels);
    var descriptions = card.label_descriptions || {};
    (card.labels || []).forEach(function (label) {
      labels.appendChild(textNode("dt", label));
      labels.appendChild(textNode("dd", descriptions[label] || ""));
    });
    var examples = el(side + "-examples");
    clear(examples);
    (card.examples || []).forEach(function (text) {
      examples.appendChild(textNode("li", text));
    });
    var button = el("choose-" + side);
    button.dataset.task = card.task;
    button.setAttribute("aria-label", (side === "left" ? "Task A" : "Task B") + " (" +
      (card.title || card.task) + ") is more objective");
  }

  function renderPairwise(a) {
    if (a.definition) { el("pair-definition").textContent = a.definition; }
    if (a.question) { el("pair-question").textContent = a.question; }
    fillTaskCard("left", a.left);
    fillTaskCard("right", a.right);
    pairwise.classList.remove("hidden");
    el("pair-question").focus({ preventScroll: false });
  }

  function renderLabeling(a) {
    el("item-task").textContent = a.task && a.task.description ? a.task.description : "";
    el("item-text").textContent = a.item.text;
    var buttons = el("label-buttons");
    var help = el("label-help");
    clear(buttons);
    clear(help);
    var descriptions = a.label_descriptions || {};
    (a.labels || []).forEach(function (label, i) {
      var button = document.createElement("button");
      button.type = "button";
      button.dataset.label = label;
      button.appendChild(document.createTextNode(label));
      if (i < 9) {
        button.appendChild(document.createTextNode(" "));
        button.appendChild(textNode("kbd", String(i + 1)));
      }
      if (descriptions[label]) { button.title = descriptions[label]; }
      button.addEventListener("click", function () { answer({ label: label }); });
      buttons.appendChild(button);
      if (descriptions[label]) {
        help.appendChild(textNode("dt", label));
        help.appendChild(textNode("dd", descriptions[label]));
      }
    });
    labeling.classList.remove("hidden");
    el("item-question").focus({ preventScroll: false });
  }

  function render(a) {
    current = a;
    showProgress(a.progress);
    if (a.kind === "pairwise" && pairwise) {
      renderPairwise(a);
    } else if (a.kind === "labeling" && labeling) {
      renderLabeling(a);
    } else {
      setStatus("This page cannot show a unit of kind " + a.kind + ".", true);
      return;
    }
    setBusy(false);
    setStatus("");
  }

  function sessionLost() {
    setStatus("Your session has ended. Please start again from the instructions page.", true);
    var link = textNode("a", "Back to the instructions");
    link.href = startUrl;
    statusBox.appendChild(document.createTextNode(" "));
    statusBox.appendChild(link);
  }

  function finished() {
    setStatus("All done. Opening your completion code…");
    window.location.assign(doneUrl);
  }

  function loadNext() {
    setBusy(true);
    showRetry(null);
    setStatus("Loading the next unit…");
    api("GET", "/studies/" + encodeURIComponent(study) + "/next").then(function (result) {
      if (result.status === 200 && result.data) {
        render(result.data);
      } else if (result.status === 204) {
        finished();
      } else if (result.status === 401 || result.status === 403) {
        sessionLost();
      } else {
        setStatus(errorMessage(result), true);
        showRetry(loadNext);
      }
    }, function () {
      setStatus("Could not reach the server. Check your connection and try again.", true);
      showRetry(loadNext);
    });
  }

  function answer(body) {
    if (busy || !current) { return; }
    var assignment = current.assignment;
    setBusy(true);
    showRetry(null);
    setStatus("Saving…");
    api("POST", "/assignments/" + encodeURIComponent(assignment) + "?next=1", body).then(function (result) {
      if (result.status === 201 || result.status === 200) {
        if (current && current.progress) {
          current.progress.answered = (Number(current.progress.answered) || 0) + 1;
          showProgress(current.progress);
        }
        current = null;
        var next = result.data ? result.data.next : undefined;
        if (next) {
          render(next);
        } else if (next === null) {
          finished();
        } else {
          loadNext();  // a reply without "next" (an older server): ask for it
        }
      } else if (result.status === 409 || result.status === 410) {
        // The lease ran out (or the unit was filled meanwhile): this answer was not kept.
        current = null;
        setStatus(errorMessage(result) + " Loading a new unit…", true);
        window.setTimeout(loadNext, 800);
      } else if (result.status === 401 || result.status === 403) {
        sessionLost();
      } else {
        setStatus(errorMessage(result), true);
        setBusy(false);
      }
    }, function () {
      // Answers are idempotent: sending the same one again cannot count twice.
      setStatus("Could not reach the server; your answer was not confirmed.", true);
      showRetry(function () { setBusy(false); answer(body); });
    });
  }

  if (pairwise) {
    el("choose-left").addEventListener("click", function () {
      if (current) { answer({ winner: current.left.task }); }
    });
    el("choose-right").addEventListener("click", function () {
      if (current) { answer({ winner: current.right.task }); }
    });
  }
  el("retry").addEventListener("click", function () {
    if (pendingRetry) { var fn = pendingRetry; showRetry(null); fn(); }
  });

  document.addEventListener("keydown", function (event) {
    if (busy || !current || event.altKey || event.ctrlKey || event.metaKey) { return; }
    var target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA")) { return; }
    if (current.kind === "pairwise") {
      if (event.key === "1") { event.preventDefault(); answer({ winner: current.left.task }); }
      else if (event.key === "2") { event.preventDefault(); answer({ winner: current.right.task }); }
    } else if (/^[1-9]$/.test(event.key)) {
      var label = (current.labels || [])[Number(event.key) - 1];
      if (label !== undefined) { event.preventDefault(); answer({ label: label }); }
    }
  });

  loadNext();
}());
