// Web Push on the account page (issue 13 §1): subscribe this browser with the idp's VAPID key and
// hand the subscription to /account/push/subscribe (a form with the page's CSRF token).
(function () {
  "use strict";
  var box = document.getElementById("push");
  if (!box) { return; }
  var status = document.getElementById("push-status");
  var on = document.getElementById("push-on");
  var off = document.getElementById("push-off");
  function say(name) { status.textContent = box.getAttribute("data-msg-" + name) || ""; }
  function show(subscribed) { on.hidden = subscribed; off.hidden = !subscribed; say(subscribed ? "on" : "off"); }
  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    say("unsupported");
    return;
  }
  function key(text) {
    var padded = (text + "===".slice((text.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(padded), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out;
  }
  function post(url, fields) {
    var body = new URLSearchParams(fields);
    body.set("csrf_token", box.getAttribute("data-csrf"));
    return fetch(url, { method: "POST", body: body, credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error("status " + r.status); }
      return r.json();
    });
  }
  function sameKey(sub, current) {
    var used = sub.options && sub.options.applicationServerKey;
    if (!used) { return true; }
    var a = new Uint8Array(used), b = key(current);
    if (a.length !== b.length) { return false; }
    for (var i = 0; i < a.length; i++) { if (a[i] !== b[i]) { return false; } }
    return true;
  }
  // Scope "/" (the idp allows it with Service-Worker-Allowed): ready resolves on every idp page.
  var ready = navigator.serviceWorker.register(box.getAttribute("data-sw"), { scope: "/" })
    .then(function () { return navigator.serviceWorker.ready; });
  var serverKey = fetch(box.getAttribute("data-key-url"), { credentials: "same-origin" })
    .then(function (r) { return r.json(); }).then(function (j) { return j.applicationServerKey; });
  Promise.all([ready, serverKey]).then(function (both) {
    return both[0].pushManager.getSubscription().then(function (sub) {
      if (sub && !sameKey(sub, both[1])) {  // the idp's key changed: subscribe again
        return sub.unsubscribe().then(function () { show(false); });
      }
      show(!!sub);
    });
  }).catch(function () { say("failed"); });
  on.addEventListener("click", function () {
    Notification.requestPermission().then(function (permission) {
      if (permission !== "granted") { say("denied"); return null; }
      return Promise.all([ready, serverKey]).then(function (both) {
        return both[0].pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key(both[1]) });
      }).then(function (sub) {
        return post(box.getAttribute("data-subscribe-url"), { subscription: JSON.stringify(sub.toJSON()) });
      }).then(function () { show(true); });
    }).catch(function () { say("failed"); });
  });
  off.addEventListener("click", function () {
    ready.then(function (reg) { return reg.pushManager.getSubscription(); }).then(function (sub) {
      if (!sub) { show(false); return null; }
      var endpoint = sub.endpoint;
      return sub.unsubscribe().then(function () {
        return post(box.getAttribute("data-unsubscribe-url"), { endpoint: endpoint });
      }).then(function () { show(false); });
    }).catch(function () { say("failed"); });
  });
})();
