// Offline QR verification in the browser (issue 6, "Build" 3).
//
// The payload never leaves this device: it is decoded here (Base43, CBOR,
// COSE_Sign1 — the format of signing/qr.py, docs/verifier-guide.md), its
// ES256 signature checked with WebCrypto against the trust list this page
// cached, and its status read from the issuer's status list (IETF Token
// Status List, signed JWT, ZLIB) cached the same way. A service worker
// (sw.js) keeps the page, this script, the trust list and the status lists,
// so it all works with the network cut once the page has been loaded.
//
// CBOR: a minimal decoder of the subset the payload uses (RFC 8949 major
// types 0-7 with definite lengths), written here rather than vendored so the
// page has no third-party code and stays small; anything outside the subset
// is refused as "format".
"use strict";

(function () {
  const B43 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ$*+-./:";
  const USCC = "0123456789ABCDEFGHJKLMNPQRTUWXY";
  const PREFIX = "YW1:";
  const ROOT = "1.2.156.3005.2";
  const $ = (id) => document.getElementById(id);

  class Bad extends Error {}

  function b43decode(text) {
    const out = [];
    const val = (ch) => {
      const v = B43.indexOf(ch);
      if (v < 0) throw new Bad("the payload has a character outside Base43");
      return v;
    };
    let i = 0;
    for (; i + 3 <= text.length; i += 3) {
      const n = val(text[i]) + val(text[i + 1]) * 43 + val(text[i + 2]) * 1849;
      if (n > 0xffff) throw new Bad("a Base43 group is out of range");
      out.push(n >> 8, n & 0xff);
    }
    const rest = text.length - i;
    if (rest === 2) {
      const n = val(text[i]) + val(text[i + 1]) * 43;
      if (n > 0xff) throw new Bad("the last Base43 group is out of range");
      out.push(n);
    } else if (rest === 1) {
      throw new Bad("a dangling Base43 character");
    }
    return new Uint8Array(out);
  }

  // -- CBOR (decode the subset; encode the Sig_structure) ------------------
  function cborDecode(bytes) {
    let pos = 0;
    const need = (n) => {
      if (pos + n > bytes.length) throw new Bad("the CBOR data ends too early");
    };
    const uint = (info) => {
      if (info < 24) return info;
      const len = { 24: 1, 25: 2, 26: 4, 27: 8 }[info];
      if (!len) throw new Bad("indefinite or reserved CBOR length");
      need(len);
      let n = 0;
      for (let k = 0; k < len; k++) n = n * 256 + bytes[pos++];
      return n;
    };
    const item = (depth) => {
      if (depth > 16) throw new Bad("CBOR nested too deeply");
      need(1);
      const ib = bytes[pos++];
      const major = ib >> 5;
      const info = ib & 31;
      if (major === 7) {
        if (info === 20) return false;
        if (info === 21) return true;
        if (info === 22) return null;
        throw new Bad("unsupported CBOR simple value");
      }
      const n = uint(info);
      switch (major) {
        case 0: return n;
        case 1: return -1 - n;
        case 2: need(n); pos += n; return bytes.slice(pos - n, pos);
        case 3: need(n); pos += n; return new TextDecoder("utf-8", { fatal: true }).decode(bytes.slice(pos - n, pos));
        case 4: { const a = []; for (let k = 0; k < n; k++) a.push(item(depth + 1)); return a; }
        case 5: {
          const m = new Map();
          for (let k = 0; k < n; k++) { const key = item(depth + 1); m.set(key, item(depth + 1)); }
          return m;
        }
        case 6: return { tag: n, value: item(depth + 1) };
      }
      throw new Bad("unsupported CBOR item");
    };
    const value = item(0);
    if (pos !== bytes.length) throw new Bad("trailing bytes after the CBOR item");
    return value;
  }

  function cborHead(major, n) {
    if (n < 24) return [(major << 5) | n];
    if (n < 256) return [(major << 5) | 24, n];
    if (n < 65536) return [(major << 5) | 25, n >> 8, n & 0xff];
    return [(major << 5) | 26, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
  }

  function sigStructure(protectedBytes, payload) {
    // RFC 9052 §4.4: ["Signature1", protected, external_aad = h'', payload]
    const ctx = new TextEncoder().encode("Signature1");
    const parts = [
      [0x84],
      cborHead(3, ctx.length), Array.from(ctx),
      cborHead(2, protectedBytes.length), Array.from(protectedBytes),
      [0x40],
      cborHead(2, payload.length), Array.from(payload),
    ];
    return new Uint8Array(parts.flat());
  }

  // -- claims (signing/qr.py, "Claims") -----------------------------------
  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const day = (n) => {
    if (typeof n !== "number") return null;
    return new Date(Date.UTC(1970, 0, 1) + n * 86400000).toISOString().slice(0, 10);
  };

  function unpackCode(v) {
    if (typeof v === "string") return v;
    if (v instanceof Uint8Array && v.length === 12) {
      let n = 0n;
      for (const b of v) n = n * 256n + BigInt(b);
      let s = "";
      for (let k = 0; k < 18; k++) { s = USCC[Number(n % 31n)] + s; n /= 31n; }
      return s;
    }
    throw new Bad("a code claim has the wrong form");
  }

  function unpackText(v) {
    if (typeof v === "string") return v;
    if (v instanceof Uint8Array) return new TextDecoder("gb18030", { fatal: true }).decode(v);
    throw new Bad("a text claim has the wrong form");
  }

  function claimsFrom(m) {
    if (!(m instanceof Map)) throw new Bad("the claim set is not a map");
    for (const k of [1, 2, 3, 4, 5, 6, 7, 8, 9]) if (!m.has(k)) throw new Bad("the claim set lacks claim " + k);
    const type = m.get(1);
    const issuer = unpackCode(m.get(2));
    const ct = m.get(8);
    const c = {
      type,
      issuer,
      identifier: [ROOT, type, issuer, String(m.get(3)), String(m.get(4)), m.get(5)].join("."),
      holder_name: unpackText(m.get(6)),
      holder_code: unpackCode(m.get(7)),
      holder_code_type: typeof ct === "number" ? String(ct).padStart(3, "0") : String(ct),
      valid_from: day(m.get(9)),
      valid_until: m.has(10) ? day(m.get(10)) : null,
      issued_at: m.has(11) ? day(m.get(11)) : day(m.get(9)),
      status_list: m.has(12) ? m.get(12) : null,
      status_index: m.has(13) ? m.get(13) : null,
    };
    return c;
  }

  function decodePayload(text) {
    text = text.trim();
    if (!text.startsWith(PREFIX)) throw new Bad("a Yiwang certificate payload starts with " + PREFIX);
    const msg = cborDecode(b43decode(text.slice(PREFIX.length)));
    const arr = msg && msg.tag === 18 ? msg.value : msg;
    if (!Array.isArray(arr) || arr.length !== 4) throw new Bad("not a COSE_Sign1 message");
    const [prot, unprot, payload, signature] = arr;
    if (!(prot instanceof Uint8Array) || !(payload instanceof Uint8Array) || !(signature instanceof Uint8Array) || signature.length !== 64) {
      throw new Bad("malformed COSE_Sign1");
    }
    const header = prot.length ? cborDecode(prot) : new Map();
    if (!(header instanceof Map) || header.get(1) !== -7) throw new Bad("only ES256 payloads are checked in the browser");
    const kid = unprot instanceof Map ? unprot.get(4) : null;
    if (!(kid instanceof Uint8Array)) throw new Bad("the payload has no key id");
    return { kid: hex(kid), claims: claimsFrom(cborDecode(payload)), signed: sigStructure(prot, payload), signature };
  }

  // -- trust list and status lists ----------------------------------------
  let trust = null;

  async function loadTrust() {
    const resp = await fetch("trust.json", { cache: "no-cache" });
    if (!resp.ok) throw new Error("trust list HTTP " + resp.status);
    trust = await resp.json();
    return trust;
  }

  const keyCache = new Map();
  async function issuerKey(issuer) {
    if (!keyCache.has(issuer.kid)) {
      keyCache.set(issuer.kid, await crypto.subtle.importKey("jwk", issuer.jwk, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]));
    }
    return keyCache.get(issuer.kid);
  }

  const b64url = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4)), (ch) => ch.charCodeAt(0));

  async function inflate(bytes) {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  async function statusOf(claims, issuer, key) {
    if (claims.status_list === null) return { ok: false, code: "status_unknown_here", reason: "the payload names no status list" };
    const uri = issuer.status_base + claims.status_list;
    let resp;
    try {
      resp = await fetch(uri, { cache: "no-cache" });  // the service worker answers from its cache when offline
    } catch (e) {
      return { ok: false, code: "status_unconfirmed", reason: "the status list is not available offline; the status cannot be confirmed" };
    }
    if (!resp.ok) return { ok: false, code: "status_unconfirmed", reason: "the status list answered HTTP " + resp.status };
    const fetchedAt = resp.headers.get("X-Yiwang-Fetched-At") || resp.headers.get("Date");
    const token = (await resp.text()).trim();
    const parts = token.split(".");
    if (parts.length !== 3) return { ok: false, code: "status_list_invalid", reason: "the status list is not a JWT" };
    const header = JSON.parse(new TextDecoder().decode(b64url(parts[0])));
    if (header.typ !== "statuslist+jwt" || header.alg !== "ES256") return { ok: false, code: "status_list_invalid", reason: "the status list has the wrong type" };
    const good = await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, b64url(parts[2]), new TextEncoder().encode(parts[0] + "." + parts[1]));
    if (!good) return { ok: false, code: "status_list_invalid", reason: "the status list's signature does not verify" };
    const body = JSON.parse(new TextDecoder().decode(b64url(parts[1])));
    if (body.sub !== uri) return { ok: false, code: "status_list_invalid", reason: "the status list names another URI" };
    const now = Date.now() / 1000;
    const age = now - body.iat;
    if ((body.exp && now >= body.exp) || age > trust.status_list_max_age) {
      return { ok: false, code: "status_unconfirmed", reason: "the status list is too old (" + Math.round(age / 60) + " minutes); the status cannot be confirmed" };
    }
    const bits = body.status_list.bits;
    const raw = await inflate(b64url(body.status_list.lst));
    const idx = claims.status_index;
    const per = 8 / bits;
    const byte = raw[Math.floor(idx / per)];
    if (byte === undefined) return { ok: false, code: "status_list_invalid", reason: "the position is outside the status list" };
    const value = (byte >> ((idx % per) * bits)) & ((1 << bits) - 1);
    const when = fetchedAt ? " (status list fetched " + Math.max(0, Math.round((Date.now() - Date.parse(fetchedAt)) / 60000)) + " minutes ago)" : "";
    if (value === 0) return { ok: true, code: "status_list_ok", reason: "valid according to the issuer's status list" + when };
    if (value === 2) return { ok: false, code: "status_list_suspended", reason: "suspended according to the issuer's status list" + when };
    return { ok: false, code: "status_list_revoked", reason: "revoked or otherwise no longer valid according to the issuer's status list" + when };
  }

  async function verify(text) {
    const checks = [];
    let d;
    try {
      d = decodePayload(text);
      checks.push({ name: "format", ok: true, code: "format_ok", reason: "a well-formed " + PREFIX + " payload" });
    } catch (e) {
      checks.push({ name: "format", ok: false, code: "format_bad", reason: e instanceof Bad ? e.message : "the payload cannot be read" });
      return { valid: false, checks, claims: null };
    }
    const c = d.claims;
    const issuer = (trust.issuers || []).find((i) => i.kid === d.kid);
    if (!issuer) {
      checks.push({ name: "signature", ok: false, code: "signer_unknown", reason: "key id " + d.kid + " is not in the trust list: unknown signer" });
      return { valid: false, checks, claims: null };
    }
    const key = await issuerKey(issuer);
    const sigOk = await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, d.signature, d.signed);
    checks.push({ name: "signature", ok: sigOk, code: sigOk ? "signature_ok" : "signature_bad", reason: sigOk ? "signed by " + issuer.name : "the signature does not verify" });
    if (!sigOk) return { valid: false, checks, claims: null };
    const sameIssuer = issuer.uscc === c.issuer && c.issued_at >= issuer.not_before && c.issued_at <= issuer.not_after;
    checks.push({ name: "issuer_trusted", ok: sameIssuer, code: sameIssuer ? "issuer_ok" : "issuer_mismatch", reason: sameIssuer ? issuer.name + " (region " + issuer.region + ")" : "the payload's issuer does not match its signing key" });
    const typeOk = issuer.allowed_types.includes(c.type);
    checks.push({ name: "type_allowed", ok: typeOk, code: typeOk ? "type_ok" : "type_bad", reason: typeOk ? "may issue " + c.type : "not allowed to issue " + c.type });
    const today = new Date(Date.now() + 8 * 3600000).toISOString().slice(0, 10);  // China Standard Time
    const inDates = c.valid_from <= today && (c.valid_until === null || today <= c.valid_until);
    const vcode = inDates ? (c.valid_until === null ? "valid_open" : "valid_until") : (today < c.valid_from ? "not_yet_valid" : "expired");
    const values = { start: c.valid_from, end: c.valid_until, date: today < c.valid_from ? c.valid_from : c.valid_until };
    checks.push({ name: "validity", ok: inDates, code: vcode, values, reason: inDates ? "valid from " + c.valid_from + " to " + (c.valid_until || "no end date") : "outside " + c.valid_from + " – " + c.valid_until });
    const st = await statusOf(c, issuer, key);
    checks.push({ name: "status", ok: st.ok, code: st.code, reason: st.reason });
    return { valid: checks.every((x) => x.ok), checks, claims: c };
  }

  function maskName(name) {
    if (name.length <= 1) return "*";
    if (name.length === 2) return name[0] + "*";
    return name[0] + "*".repeat(name.length - 2) + name[name.length - 1];
  }

  // The page's sentences in its one language, from the server's catalog (#messages, data-messages).
  let M = null;
  function msg(key, values) {
    if (M === null) M = JSON.parse($("messages").dataset.messages || "{}");
    const text = M[key] || M.failed || key;
    return text.replace(/%\((\w+)\)s/g, (all, k) => (values && values[k] !== undefined && values[k] !== null ? String(values[k]) : all));
  }

  function say(key, id, values) {
    $(id || "state").textContent = msg(key, values);
  }

  function show(result) {
    const out = $("result");
    out.hidden = false;
    // The same four verdict colours as the server's verify page (certstore/web/public.py verdict_of).
    const failed = result.checks.filter((ch) => !ch.ok).map((ch) => ch.name);
    let kind = "valid";
    if (!result.valid) {
      if (failed.includes("format")) kind = "unreadable";
      else if (failed.length && failed.every((n) => n === "status" || n === "validity")) kind = "revoked";
      else kind = "forged";
    }
    out.className = "verdict " + kind + (result.valid ? " valid" : " invalid");
    say("verdict_" + kind, "verdict");
    const list = $("checks");
    list.textContent = "";
    for (const ch of result.checks) {
      const li = document.createElement("li");
      li.className = ch.ok ? "ok" : "failed";
      li.dataset.check = ch.name;
      li.dataset.code = ch.code || "";
      li.textContent = (ch.ok ? "✓ " : "✗ ") + msg("check_" + ch.name) + msg("colon") + msg(ch.ok ? "passed" : "failed")
        + (ch.code ? " — " + msg("reason_" + ch.code, ch.values) : "");
      list.appendChild(li);
    }
    const c = result.claims;
    $("holder").textContent = c ? (c.holder_code_type === "111" ? maskName(c.holder_name) : c.holder_name) : "";
    $("identifier").textContent = c ? c.identifier : "";
  }

  async function onSubmit(ev) {
    ev.preventDefault();
    if (!trust) {
      try { await loadTrust(); } catch (e) { say("no_trust"); return; }
    }
    show(await verify($("text").value));
  }

  async function readQr(file) {
    const bitmap = await createImageBitmap(file);
    if ("BarcodeDetector" in window) {
      const codes = await new window.BarcodeDetector({ formats: ["qr_code"] }).detect(bitmap);
      if (codes.length) return codes[0].rawValue;
    }
    if (typeof window.jsQR !== "function") return null;
    // Scale large photos down: jsQR's time grows with the pixel count.
    const scale = Math.min(1, 1600 / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(bitmap.width * scale);
    canvas.height = Math.round(bitmap.height * scale);
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const code = window.jsQR(pixels.data, pixels.width, pixels.height, { inversionAttempts: "attemptBoth" });
    return code ? code.data : null;
  }

  async function onImage() {
    const file = $("image").files[0];
    if (!file) return;
    let text = null;
    try { text = await readQr(file); } catch (e) { text = null; }
    if (!text) { say("no_qr"); return; }
    $("text").value = text;
    await onSubmit(new Event("submit"));
  }

  async function prefetch() {
    // Load the page, the trust list and every status list once and keep them in the
    // cache the service worker answers from when the network is gone.
    await loadTrust();
    const cache = "caches" in window ? await caches.open("yiwang-offline-v1") : null;
    const urls = ["./", "verify.js", "vendor/jsQR.js", "verify.css", "trust.json", ...(trust.status_lists || [])];
    for (const url of urls) {
      try {
        const resp = await fetch(url, { cache: "no-cache" });
        if (resp.ok && cache) await cache.put(url, resp.clone());
      } catch (e) { /* offline: keep the cached copy */ }
    }
  }

  async function start() {
    $("form").addEventListener("submit", onSubmit);
    $("image").addEventListener("change", onImage);
    try {
      if ("serviceWorker" in navigator) {
        await navigator.serviceWorker.register("sw.js", { scope: "./" });
        await navigator.serviceWorker.ready;
      }
      await prefetch();
      say("ready", "state", { n: trust.issuers.length });
      $("state").dataset.ready = "yes";
    } catch (e) {
      try { await loadTrust(); } catch (e2) { /* no trust list at all */ }
      if (trust) say("offline"); else say("no_trust");
      if (trust) $("state").dataset.ready = "yes";
    }
  }

  window.yiwangOffline = { decodePayload, verify };
  start();
})();
