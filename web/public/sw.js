// Nishati's service worker: the app opens offline with the last data it saw.
// The shell (index.html and the hashed assets it names) is cached at install; assets are
// served from the cache first (their names change with their content). Page loads and the
// API's GETs go to the network first and fall back to the cache, which keeps the last answer
// of each; an answer from the cache carries X-Nishati-Offline so the app can say so.
// A signed-in household's page comes with its first answers (the nishati-preload script): the
// app keeps those in the data cache itself, and the page is kept without them, so the shell
// holds nobody's data.
const SHELL = "nishati-shell-v1";
const DATA = "nishati-data-v1";
const OFFLINE_HEADER = "X-Nishati-Offline";
const PRELOAD = /<script type="application\/json" id="nishati-preload">.*?<\/script>/s;

async function withoutPreload(page) {
  const html = (await page.text()).replace(PRELOAD, "");
  return new Response(html, { status: page.status, headers: { "Content-Type": "text/html" } });
}

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(SHELL);
      const index = await withoutPreload(await fetch("/", { cache: "no-cache" }));
      const html = await index.clone().text();
      const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
      await cache.put("/", index);
      await cache.addAll(["/manifest.webmanifest", "/icon.svg", ...assets]);
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name !== SHELL && name !== DATA) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

function offline(response) {
  const headers = new Headers(response.headers);
  headers.set(OFFLINE_HEADER, "1");
  return new Response(response.body, { status: response.status, headers });
}

async function networkFirst(request, cacheName, key, kept = (response) => response.clone()) {
  const cache = await caches.open(cacheName);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(key, await kept(response));
    return response;
  } catch (error) {
    const cached = await cache.match(key);
    if (cached) return offline(cached);
    throw error;
  }
}

async function cacheFirst(request) {
  const cache = await caches.open(SHELL);
  const cached = await cache.match(request);
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) await cache.put(request, response.clone());
  return response;
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  // An event stream goes straight to the network: caching it would hold it until it ends.
  if (request.headers.get("Accept") === "text/event-stream") return;
  if (url.pathname.startsWith("/api/")) {
    event.respondWith(networkFirst(request, DATA, request));
  } else if (url.pathname.startsWith("/assets/")) {
    event.respondWith(cacheFirst(request));
  } else if (request.mode === "navigate") {
    // Every app route is index.html: the last one fetched opens the app offline.
    event.respondWith(networkFirst(request, SHELL, "/", (page) => withoutPreload(page.clone())));
  }
});
