// The embedded CIBA notifier's page side (idp.ciba.live): while the citizen's account page is open,
// ask /ciba/pending every few seconds and list the requests waiting for their approval, each with a
// link to its approval page. Text is set with textContent only (nothing from the server becomes HTML).
(function () {
  "use strict";
  var box = document.getElementById("ciba-pending");
  if (!box || !window.fetch) { return; }
  var list = document.getElementById("ciba-pending-list");
  var PERIOD_MS = 3000;

  function actorText(actor) {
    if (!actor) { return ""; }
    var tpl = actor.kind === "agent" ? box.dataset.msgAgent : box.dataset.msgClerk;
    return tpl.replace("{office}", actor.office).replace("{name}", actor.name);
  }

  function show(items) {
    while (list.firstChild) { list.removeChild(list.firstChild); }
    items.forEach(function (p) {
      var li = document.createElement("li");
      li.className = "ciba-item";
      li.dataset.id = p.id;
      var span = document.createElement("span");
      var strong = document.createElement("strong");
      strong.textContent = p.client;
      span.appendChild(strong);
      var who = actorText(p.actor);
      var parts = [who, p.message].filter(function (x) { return x; });
      if (parts.length) {
        span.appendChild(document.createElement("br"));
        var small = document.createElement("small");
        small.textContent = parts.join(" · ");
        span.appendChild(small);
      }
      var a = document.createElement("a");
      a.href = p.url;
      a.className = "button";
      a.textContent = box.dataset.msgOpen;
      li.appendChild(span);
      li.appendChild(a);
      list.appendChild(li);
    });
    box.hidden = items.length === 0;
  }

  function poll() {
    fetch(box.dataset.src, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : { pending: [] }; })
      .then(function (body) { show(body.pending || []); })
      .catch(function () { /* offline for a moment: the next poll tries again */ })
      .then(function () { window.setTimeout(poll, PERIOD_MS); });
  }
  poll();
})();
