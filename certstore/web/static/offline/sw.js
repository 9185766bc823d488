// Service worker of the offline verify page: network first, the cache when offline.
// The page itself also stores the trust list and the status lists in the same cache.
"use strict";
const CACHE = "yiwang-offline-v1";
const SHELL = ["./", "verify.js", "vendor/jsQR.js", "verify.css", "trust.json"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener("fetch", (event) => {
  if (event.request.method !== "GET") return;
  event.respondWith(
    fetch(event.request)
      .then((resp) => {
        if (resp.ok) {
          const copy = resp.clone();
          caches.open(CACHE).then((c) => c.put(event.request, copy));
        }
        return resp;
      })
      .catch(() => caches.match(event.request).then((hit) => hit || Response.error()))
  );
});
