/* The field app's service worker: keeps the app shell so that the page opens offline.
 *
 * Shell files are answered from the cache first (the app starts without a network)
 * and refreshed from the network behind the answer, so a new version reaches the
 * device at its next online load. Nothing under /v1/ is touched: API calls always
 * go to the network, and events wait in the page's IndexedDB outbox instead.
 * Bump VERSION when the list of shell files changes.
 */
"use strict";

const VERSION = "jiahe-field-v1";
const SHELL = [
  "/field/",
  "/field/app.js",
  "/field/i18n.js",
  "/field/outbox.js",
  "/field/app.css",
  "/field/manifest.webmanifest",
  "/field/icon.svg",
  "/field/icon-192.png",
  "/field/icon-512.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(VERSION).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== VERSION).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  const key = url.pathname === "/field" ? "/field/" : url.pathname;
  if (!SHELL.includes(key)) return;  // the API and anything else: the network, untouched
  event.respondWith((async () => {
    const cache = await caches.open(VERSION);
    const cached = await cache.match(key);
    const refresh = fetch(request).then((response) => {
      if (response.ok) return cache.put(key, response.clone()).then(() => response);
      return response;
    });
    if (cached) {
      event.waitUntil(refresh.catch(() => undefined));  // offline: the cached copy stands
      return cached;
    }
    return refresh;
  })());
});
