// The counter page: polls the verifier's result for this request (issue 15 §2) and shows it.
// No inline script (CSP script-src 'self'); only the disclosed claims, the issuer and the status are shown.
(function () {
  "use strict";
  var box = document.getElementById("vp-request");
  if (!box) { return; }
  var words = document.getElementById("vp-words").dataset;
  var url = box.dataset.result;
  var view = box.dataset.view;
  var labels = JSON.parse(box.dataset.labels || "{}");
  var tries = 0;

  function text(id, value) { document.getElementById(id).textContent = value; }

  function show(result) {
    var section = document.getElementById("vp-result");
    section.classList.remove("yw-hidden");
    document.getElementById("vp-qr").classList.add("yw-hidden");
    document.getElementById("same-device").classList.add("yw-hidden");
    var waiting = document.getElementById("vp-waiting");
    waiting.classList.add("yw-hidden");
    // The page's own words for the reason; the verifier's English message and status reason go to the console.
    if (window.console && (result.message || result.status_reason)) { console.info(result.message || result.status_reason); }
    if (result.outcome !== "verified") {
      var refusals = JSON.parse(words.refusals || "{}");
      section.className = "verdict forged";
      text("vp-verdict", words.refused);
      text("vp-status", refusals[result.reason] || refusals["*"] || "");
      return;
    }
    var kind = result.status === "valid" ? "valid" : (result.status === "unknown" ? "unreadable" : "revoked");
    section.className = "verdict " + kind;
    section.dataset.status = result.status;
    text("vp-verdict", words[result.status] || result.status);
    text("vp-status", "");
    var list = document.getElementById("vp-claims");
    list.textContent = "";
    Object.keys(result.claims).forEach(function (name) {
      var dt = document.createElement("dt");
      dt.textContent = labels[name] || name;
      var dd = document.createElement("dd");
      var value = result.claims[name];
      dd.textContent = typeof value === "string" ? value : JSON.stringify(value);
      dd.dataset.claim = name;
      list.appendChild(dt);
      list.appendChild(dd);
    });
    text("vp-issuer", words.issuer + " " + (result.issuer_name || result.issuer.name) + " (" + result.issuer.region + ")");
  }

  function poll() {
    tries += 1;
    fetch(url, { headers: { "X-VP-View": view }, cache: "no-store", credentials: "same-origin" })
      .then(function (resp) {
        if (resp.status === 404) { text("vp-waiting", words.expired); return null; }
        return resp.json();
      })
      .then(function (result) {
        if (!result) { return; }
        if (result.outcome === "pending") {
          if (result.fetched) { text("vp-waiting", words.fetched); }
          if (tries < 600) { setTimeout(poll, 1000); }
          return;
        }
        show(result);
      })
      .catch(function () { if (tries < 600) { setTimeout(poll, 2000); } });
  }
  poll();
}());
