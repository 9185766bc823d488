// Our wallet as a holder (issue 15 §2): the holder key, credentials received through OpenID4VCI,
// presentations through OpenID4VP. No inline script (CSP script-src 'self'); no library.
//
// * The holder key is a WebCrypto ECDSA P-256 key made with extractable = false and kept in IndexedDB
//   (a CryptoKey is stored as is: the browser keeps the private key, script can use it, never read it).
// * Receiving (pre-authorized code, OpenID4VCI 1.0 §3.5): offer -> issuer and AS metadata -> token (with
//   the tx_code the citizen got apart) -> c_nonce -> a jwt key proof signed by the holder key -> credential.
// * Presenting (same device): the verifier's request, checked by certstore (/wallet/present/request),
//   is shown item by item; only on "Share" are exactly those disclosures sent, with a key-binding JWT
//   (aud = the verifier's client id, nonce, sd_hash), plain (direct_post) or as an ECDH-ES JWE
//   (direct_post.jwt) made here with WebCrypto (RFC 7518 §4.6: Concat KDF, A128GCM/A256GCM).
(function () {
  "use strict";
  var DB = "yiwang-holder", enc = new TextEncoder();

  function b64u(bytes) {
    var s = "", a = new Uint8Array(bytes);
    for (var i = 0; i < a.length; i++) { s += String.fromCharCode(a[i]); }
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function unb64u(text) {
    var s = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
    var out = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) { out[i] = s.charCodeAt(i); }
    return out;
  }
  function jsonPart(text) { return JSON.parse(new TextDecoder().decode(unb64u(text))); }
  function sha256(data) { return crypto.subtle.digest("SHA-256", typeof data === "string" ? enc.encode(data) : data); }

  // -- IndexedDB ------------------------------------------------------------------------------
  function open() {
    return new Promise(function (resolve, reject) {
      var req = indexedDB.open(DB, 1);
      req.onupgradeneeded = function () {
        req.result.createObjectStore("keys");
        req.result.createObjectStore("credentials", { keyPath: "id" });
      };
      req.onsuccess = function () { resolve(req.result); };
      req.onerror = function () { reject(req.error); };
    });
  }
  function tx(store, mode, fn) {
    return open().then(function (db) {
      return new Promise(function (resolve, reject) {
        var t = db.transaction(store, mode), result;
        Promise.resolve(fn(t.objectStore(store))).then(function (r) { result = r; });
        t.oncomplete = function () { resolve(result); };
        t.onerror = function () { reject(t.error); };
      });
    });
  }
  function req(r) { return new Promise(function (resolve, reject) { r.onsuccess = function () { resolve(r.result); }; r.onerror = function () { reject(r.error); }; }); }

  function holderKey() {
    return tx("keys", "readonly", function (s) { return req(s.get("holder")); }).then(function (found) {
      if (found) { return found; }
      return crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"])
        .then(function (pair) {
          return tx("keys", "readwrite", function (s) { return req(s.put(pair, "holder")); }).then(function () { return pair; });
        });
    });
  }
  function publicJwk(pair) {
    return crypto.subtle.exportKey("jwk", pair.publicKey).then(function (j) { return { kty: j.kty, crv: j.crv, x: j.x, y: j.y }; });
  }
  function signJwt(header, payload) {
    return holderKey().then(function (pair) {
      var input = b64u(enc.encode(JSON.stringify(header))) + "." + b64u(enc.encode(JSON.stringify(payload)));
      return crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, pair.privateKey, enc.encode(input))
        .then(function (sig) { return input + "." + b64u(sig); }); // WebCrypto gives r || s: the JOSE form
    });
  }
  function allCredentials() { return tx("credentials", "readonly", function (s) { return req(s.getAll()); }); }

  // -- SD-JWT ---------------------------------------------------------------------------------
  function parseCredential(text) {
    var parts = text.replace(/~+$/, "").split("~");
    var payload = jsonPart(parts[0].split(".")[1]);
    var disclosures = parts.slice(1).map(function (d) { var v = jsonPart(d); return { raw: d, name: v[1], value: v[2] }; });
    return { jwt: parts[0], payload: payload, disclosures: disclosures };
  }
  function present(credential, names, aud, nonce) {
    var c = parseCredential(credential);
    var kept = c.disclosures.filter(function (d) { return names.indexOf(d.name) >= 0; });
    var body = c.jwt + "~" + kept.map(function (d) { return d.raw + "~"; }).join("");
    return sha256(body).then(function (h) {
      return signJwt({ alg: "ES256", typ: "kb+jwt" },
                     { iat: Math.floor(Date.now() / 1000), aud: aud, nonce: nonce, sd_hash: b64u(h) });
    }).then(function (kb) { return body + kb; });
  }

  // -- JWE ECDH-ES (RFC 7518 §4.6) ------------------------------------------------------------
  function concatKdf(z, algId, bits, apu, apv) {
    function lp(bytes) { var out = new Uint8Array(4 + bytes.length); new DataView(out.buffer).setUint32(0, bytes.length); out.set(bytes, 4); return out; }
    var pieces = [new Uint8Array([0, 0, 0, 1]), new Uint8Array(z), lp(enc.encode(algId)), lp(apu), lp(apv), new Uint8Array([0, 0, 0, 0])];
    new DataView(pieces[5].buffer).setUint32(0, bits);
    var all = new Uint8Array(pieces.reduce(function (n, p) { return n + p.length; }, 0)), at = 0;
    pieces.forEach(function (p) { all.set(p, at); at += p.length; });
    return sha256(all).then(function (d) { return new Uint8Array(d).slice(0, bits / 8); });
  }
  function encrypt(jwk, encAlg, plaintext, apv) {
    var bits = encAlg === "A256GCM" ? 256 : 128;
    var theirs = { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y };
    return Promise.all([
      crypto.subtle.importKey("jwk", theirs, { name: "ECDH", namedCurve: "P-256" }, false, []),
      crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, ["deriveBits"]),
    ]).then(function (keys) {
      return Promise.all([
        crypto.subtle.deriveBits({ name: "ECDH", public: keys[0] }, keys[1].privateKey, 256),
        crypto.subtle.exportKey("jwk", keys[1].publicKey),
      ]);
    }).then(function (r) {
      var epk = { kty: "EC", crv: "P-256", x: r[1].x, y: r[1].y };
      var header = { alg: "ECDH-ES", enc: encAlg, epk: epk, apv: b64u(apv) };
      if (jwk.kid) { header.kid = jwk.kid; }
      var protectedB64 = b64u(enc.encode(JSON.stringify(header)));
      return concatKdf(r[0], encAlg, bits, new Uint8Array(0), apv).then(function (cek) {
        return crypto.subtle.importKey("raw", cek, "AES-GCM", false, ["encrypt"]);
      }).then(function (key) {
        var iv = crypto.getRandomValues(new Uint8Array(12));
        return crypto.subtle.encrypt({ name: "AES-GCM", iv: iv, additionalData: enc.encode(protectedB64), tagLength: 128 },
                                     key, enc.encode(plaintext)).then(function (out) {
          var all = new Uint8Array(out), ct = all.slice(0, all.length - 16), tag = all.slice(all.length - 16);
          return protectedB64 + ".." + b64u(iv) + "." + b64u(ct) + "." + b64u(tag);
        });
      });
    });
  }

  // -- HTTP (this origin only: CSP connect-src 'self') ----------------------------------------
  function sameOrigin(url) { var u = new URL(url, location.href); if (u.origin !== location.origin) { throw new Error("other-origin"); } return u.href; }
  function getJson(url) { return fetch(sameOrigin(url), { cache: "no-store" }).then(check); }
  function postForm(url, data, token) {
    var headers = { "Content-Type": "application/x-www-form-urlencoded" };
    if (token) { headers.Authorization = "Bearer " + token; }
    return fetch(sameOrigin(url), { method: "POST", headers: headers, body: new URLSearchParams(data).toString() }).then(check);
  }
  function check(resp) {
    return resp.json().catch(function () { return {}; }).then(function (body) {
      if (!resp.ok) { var e = new Error(body.error_description || body.detail || body.error || ("HTTP " + resp.status)); e.body = body; throw e; }
      return body;
    });
  }

  // -- receiving (OpenID4VCI, pre-authorized code) --------------------------------------------
  function receive(link, txCode) {
    var offerUri = new URL(link.trim().replace(/^openid-credential-offer:\/\//, "https://x/")).searchParams.get("credential_offer_uri");
    var offer, issuerMeta, token;
    return getJson(offerUri).then(function (o) {
      offer = o;
      return getJson(o.credential_issuer + "/.well-known/openid-credential-issuer");
    }).then(function (meta) {
      issuerMeta = meta;
      return getJson(offer.credential_issuer + "/.well-known/oauth-authorization-server");
    }).then(function (as) {
      var grant = offer.grants["urn:ietf:params:oauth:grant-type:pre-authorized_code"];
      var form = { grant_type: "urn:ietf:params:oauth:grant-type:pre-authorized_code", "pre-authorized_code": grant["pre-authorized_code"] };
      if (grant.tx_code) { form.tx_code = txCode; }
      return postForm(as.token_endpoint, form);
    }).then(function (t) {
      token = t.access_token;
      return fetch(sameOrigin(issuerMeta.nonce_endpoint), { method: "POST" }).then(check);
    }).then(function (n) {
      return holderKey().then(publicJwk).then(function (jwk) {
        return signJwt({ alg: "ES256", typ: "openid4vci-proof+jwt", jwk: jwk },
                       { aud: offer.credential_issuer, iat: Math.floor(Date.now() / 1000), nonce: n.c_nonce });
      });
    }).then(function (proof) {
      var configId = offer.credential_configuration_ids[0];
      return fetch(sameOrigin(issuerMeta.credential_endpoint), {
        method: "POST", headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
        body: JSON.stringify({ credential_configuration_id: configId, proofs: { jwt: [proof] } }),
      }).then(check).then(keep);
    });
  }
  function keep(got) {
    var text = got.credentials[0].credential, c = parseCredential(text);
    var item = { id: b64u(crypto.getRandomValues(new Uint8Array(9))), credential: text, vct: c.payload.vct,
                 iss: c.payload.iss, type: c.payload.vct.split("/vct/").pop(), received: Date.now() };
    return tx("credentials", "readwrite", function (s) { return req(s.put(item)); }).then(function () { return item; });
  }

  // -- receiving after signing in at the idp (OpenID4VCI authorization code flow) ------------------
  // certstore/web/holder_issue.py did the sign-in (PKCE, state, nonce) and keeps the idp's access token;
  // here: a c_nonce, a proof signed by the holder key, sent to /wallet/vci/credential, which forwards it.
  function receiveSignedIn(box) {
    var issuerMeta;
    return getJson("/.well-known/openid-credential-issuer").then(function (meta) {
      issuerMeta = meta;
      return fetch(sameOrigin(meta.nonce_endpoint), { method: "POST" }).then(check);
    }).then(function (n) {
      return holderKey().then(publicJwk).then(function (jwk) {
        var claims = { aud: issuerMeta.credential_issuer, iat: Math.floor(Date.now() / 1000), nonce: n.c_nonce };
        if (box.dataset.client) { claims.iss = box.dataset.client; }
        return signJwt({ alg: "ES256", typ: "openid4vci-proof+jwt", jwk: jwk }, claims);
      });
    }).then(function (proof) {
      return fetch(sameOrigin(box.dataset.credential), {
        method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ proof: proof }),
      }).then(check).then(keep);
    });
  }
  function wireSignedIn() {
    var box = document.getElementById("holder-signin");
    if (!box || new URLSearchParams(location.search).get("vci") !== "signed-in") { return Promise.resolve(); }
    history.replaceState(null, "", location.pathname); // a reload does not try again with a spent handle
    say("holder-receive-status", words().receiving);
    return receiveSignedIn(box).then(function (item) {
      say("holder-receive-status", words().received + " " + typeName(item.type), "notice");
    }).catch(function (e) { failed("holder-receive-status", words().failed, e); });
  }

  // -- the page parts --------------------------------------------------------------------------
  function words() { var t = document.getElementById("holder-words"); return t ? t.dataset : {}; }
  function say(id, text, kind) { var el = document.getElementById(id); if (el) { el.textContent = text; el.className = kind || ""; } }
  // The server's (or the browser's) reason is English and technical: the console gets it, the page its own words.
  function failed(id, text, e) { if (window.console) { console.warn(e); } say(id, text, "error"); }
  function named(kind, key) {
    try { return JSON.parse(words()[kind] || "{}")[key] || key; } catch (e) { return key; }
  }
  function typeName(code) { return named("types", code); }
  // What a page shows of an item's value: a person's ID number masked (110101********123X), as on every
  // page of the service (certstore.types.mask_holder_code; "111" is its holder code type), the kind of
  // holder code by its name; the rest as is.
  function shown(disclosures, d) {
    var value = typeof d.value === "string" ? d.value : JSON.stringify(d.value);
    var kind = disclosures.filter(function (x) { return x.name === "holder_code_type"; })[0];
    if (d.name === "holder_code_type") { return named("kinds", value); }
    if (d.name === "holder_code" && kind && String(kind.value) === "111" && value.length >= 10) {
      return value.slice(0, 6) + "*".repeat(value.length - 10) + value.slice(-4);
    }
    return value;
  }

  function renderHeld() {
    var list = document.getElementById("holder-list");
    if (!list) { return Promise.resolve(); }
    return allCredentials().then(function (items) {
      list.textContent = "";
      if (!items.length) { var p = document.createElement("li"); p.textContent = words().none; list.appendChild(p); return; }
      items.forEach(function (item) {
        var li = document.createElement("li"), c = parseCredential(item.credential);
        li.className = "holder-credential";
        li.dataset.type = item.type;
        var title = document.createElement("strong");
        title.textContent = typeName(item.type);
        li.appendChild(title);
        var dl = document.createElement("dl");
        c.disclosures.forEach(function (d) {
          var dt = document.createElement("dt"), dd = document.createElement("dd");
          dt.textContent = named("claims", d.name); dd.textContent = shown(c.disclosures, d);
          dl.appendChild(dt); dl.appendChild(dd);
        });
        li.appendChild(dl);
        var remove = document.createElement("button");
        remove.type = "button"; remove.className = "secondary"; remove.textContent = words().remove;
        remove.addEventListener("click", function () {
          tx("credentials", "readwrite", function (s) { return req(s.delete(item.id)); }).then(renderHeld);
        });
        li.appendChild(remove);
        list.appendChild(li);
      });
    });
  }

  function wireReceive() {
    var form = document.getElementById("holder-receive");
    if (!form) { return; }
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      say("holder-receive-status", words().receiving);
      receive(form.elements.offer.value, form.elements.tx_code.value).then(function (item) {
        say("holder-receive-status", words().received + " " + typeName(item.type), "notice");
        form.reset();
        return renderHeld();
      }).catch(function (e) { failed("holder-receive-status", words().failed, e); });
    });
  }

  function wirePresent() {
    var box = document.getElementById("present");
    if (!box) { return; }
    var params = new URLSearchParams(location.search), ask, chosen;
    getJson(box.dataset.inspect + "?" + new URLSearchParams({ client_id: params.get("client_id") || "",
                                                             request_uri: params.get("request_uri") || "" }))
      .then(function (r) {
        ask = r;
        return allCredentials();
      }).then(function (items) {
        chosen = items.filter(function (i) { return ask.vct_values.indexOf(i.vct) >= 0; })[0];
        say("present-verifier", ask.verifier_name || ask.verifier.name);
        say("present-type", ask.type_name);
        if (!chosen) { say("present-status", words().nocredential, "error"); return; }
        var c = parseCredential(chosen.credential), list = document.getElementById("present-claims");
        ask.claims.forEach(function (claim) {
          var d = c.disclosures.filter(function (x) { return x.name === claim.name; })[0];
          var dt = document.createElement("dt"), dd = document.createElement("dd");
          dt.textContent = claim.label; dd.dataset.claim = claim.name;
          dd.textContent = d ? shown(c.disclosures, d) : words().missing;
          list.appendChild(dt); list.appendChild(dd);
        });
        document.getElementById("present-actions").classList.remove("yw-hidden");
      }).catch(function (e) { failed("present-status", words().badrequest, e); });

    document.getElementById("present-share").addEventListener("click", function () {
      var names = ask.claims.map(function (c) { return c.name; });
      document.getElementById("present-actions").classList.add("yw-hidden");
      present(chosen.credential, names, ask.client_id, ask.nonce).then(function (text) {
        var payload = { vp_token: {}, state: ask.state };
        payload.vp_token[ask.credential_id] = [text];
        if (ask.response_mode === "direct_post.jwt") {
          return encrypt(ask.encryption_jwk, ask.enc, JSON.stringify(payload), enc.encode(ask.nonce)).then(function (jwe) {
            return postForm(ask.response_uri, { response: jwe });
          });
        }
        return postForm(ask.response_uri, { vp_token: JSON.stringify(payload.vp_token), state: ask.state });
      }).then(function () { say("present-status", words().shared, "notice"); })
        .catch(function (e) { failed("present-status", words().sharefailed, e); });
    });
    document.getElementById("present-decline").addEventListener("click", function () {
      document.getElementById("present-actions").classList.add("yw-hidden");
      say("present-status", words().declined, "notice");
    });
  }

  wireReceive();
  wireSignedIn().then(renderHeld);
  wirePresent();
}());
