// The idp's service worker (issue 13 §1): shows a Web Push notice that a counter or hotline
// request waits for the citizen, and opens the approval page when it is tapped. The push
// carries only {v, kind, url}; the words are chosen here, in the device's language, from
// TEXTS = {zh: {title, counter, hotline, request}, en: {…}}, which idp.web.views_push adds
// at the end of this file, from the catalog (keys/locale), when it serves it.
"use strict";
function localPath(url) {
  return typeof url === "string" && url.charAt(0) === "/" && url.charAt(1) !== "/" && url.indexOf("\\") < 0;
}
self.addEventListener("push", function (event) {
  var data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = {}; }
  var lang = ((self.navigator && self.navigator.language) || "zh").toLowerCase().indexOf("zh") === 0 ? "zh" : "en";
  var t = TEXTS[lang];
  var kind = data.kind === "counter" || data.kind === "hotline" ? data.kind : "request";
  event.waitUntil(self.registration.showNotification(t.title, {
    body: t[kind], tag: "yiwang-ciba", renotify: true,
    data: { url: localPath(data.url) ? data.url : "/account" }
  }));
});
self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = (event.notification.data && event.notification.data.url) || "/account";
  if (!localPath(url)) { url = "/account"; }
  event.waitUntil(self.clients.openWindow(url));
});
