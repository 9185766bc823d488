// Passkeys (WebAuthn Level 3): sign-in (button and autofill), step-up, and adding one on the account page.
// The server (idp/web/views_passkeys.py) makes the options and checks the answers; this only carries them.
(function () {
  "use strict";
  if (window.__ywPasskeys) { return; }
  window.__ywPasskeys = true;

  function b64urlToBuf(s) {
    var b = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
    var out = new Uint8Array(b.length);
    for (var i = 0; i < b.length; i++) { out[i] = b.charCodeAt(i); }
    return out.buffer;
  }
  function bufToB64url(buf) {
    var bytes = new Uint8Array(buf), s = "";
    for (var i = 0; i < bytes.length; i++) { s += String.fromCharCode(bytes[i]); }
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function requestOptions(json) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) { return PublicKeyCredential.parseRequestOptionsFromJSON(json); }
    var o = Object.assign({}, json, { challenge: b64urlToBuf(json.challenge) });
    o.allowCredentials = (json.allowCredentials || []).map(function (c) { return Object.assign({}, c, { id: b64urlToBuf(c.id) }); });
    return o;
  }
  function creationOptions(json) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) { return PublicKeyCredential.parseCreationOptionsFromJSON(json); }
    var o = Object.assign({}, json, { challenge: b64urlToBuf(json.challenge) });
    o.user = Object.assign({}, json.user, { id: b64urlToBuf(json.user.id) });
    o.excludeCredentials = (json.excludeCredentials || []).map(function (c) { return Object.assign({}, c, { id: b64urlToBuf(c.id) }); });
    return o;
  }
  function credentialJSON(cred) {
    if (typeof cred.toJSON === "function") { return cred.toJSON(); }
    var r = cred.response, out = { id: cred.id, rawId: bufToB64url(cred.rawId), type: cred.type, response: {},
      authenticatorAttachment: cred.authenticatorAttachment || null, clientExtensionResults: {} };
    out.response.clientDataJSON = bufToB64url(r.clientDataJSON);
    if (r.attestationObject) {
      out.response.attestationObject = bufToB64url(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = bufToB64url(r.authenticatorData);
      out.response.signature = bufToB64url(r.signature);
      if (r.userHandle) { out.response.userHandle = bufToB64url(r.userHandle); }
    }
    return out;
  }
  function post(url, body) {
    return fetch(url, { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body) }).then(function (resp) {
      return resp.json().then(function (data) { data.status = resp.status; return data; },
        function () { return { error: "failed", status: resp.status }; });
    });
  }

  function show(el, text) { el.textContent = text; el.hidden = !text; }

  // ------------------------------------------------------------ sign-in and step-up
  function setUpSignIn(box) {
    var button = document.getElementById("passkey-button");
    var errorEl = document.getElementById("passkey-error");
    var csrf = box.dataset.csrf;
    var pending = null; // the autofill request, aborted when the button is used
    box.hidden = false;

    function finish(cred) {
      return post(box.dataset.submitUrl, { csrf_token: csrf, credential: credentialJSON(cred) }).then(function (data) {
        if (data.next) { window.location.assign(data.next); return; }
        show(errorEl, data.message || box.dataset.msgFailed);
        if (button) { button.disabled = false; }
      });
    }
    function options() {
      return post(box.dataset.optionsUrl, { csrf_token: csrf }).then(function (data) {
        if (data.error) { throw { server: data }; }
        return data;
      });
    }
    function failed(err) {
      if (button) { button.disabled = false; }
      if (err && err.server) { show(errorEl, err.server.message || box.dataset.msgFailed); return; }
      if (err && err.name === "AbortError") { return; }
      show(errorEl, err && err.name === "NotAllowedError" ? box.dataset.msgCancelled : box.dataset.msgFailed);
    }
    if (button) {
      button.addEventListener("click", function () {
        if (pending) { pending.abort(); pending = null; }
        button.disabled = true;
        show(errorEl, "");
        options().then(function (json) {
          return navigator.credentials.get({ publicKey: requestOptions(json) });
        }).then(finish).catch(failed);
      });
    }
    // Autofill (conditional mediation) on the login form's ID number field, where the browser offers it.
    var field = document.getElementById("id_number");
    if (box.dataset.mode === "sign-in" && field && PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (yes) {
        if (!yes) { return; }
        if (!/webauthn/.test(field.getAttribute("autocomplete") || "")) {
          field.setAttribute("autocomplete", ((field.getAttribute("autocomplete") || "username") + " webauthn").trim());
        }
        pending = new AbortController();
        var signal = pending.signal;
        options().then(function (json) {
          return navigator.credentials.get({ publicKey: requestOptions(json), mediation: "conditional", signal: signal });
        }).then(function (cred) { if (cred) { return finish(cred); } }).catch(function (err) {
          if (!(err && err.name === "AbortError")) { failed(err); }
        });
      }).catch(function () {});
    }
  }

  // ------------------------------------------------------------ adding a passkey
  function setUpRegister(box) {
    var button = document.getElementById("passkey-add-button");
    var errorEl = document.getElementById("passkey-add-error");
    var csrf = box.dataset.csrf;
    box.hidden = false;
    button.addEventListener("click", function () {
      button.disabled = true;
      show(errorEl, "");
      var password = document.getElementById("passkey_password").value;
      post(box.dataset.optionsUrl, { csrf_token: csrf, current_password: password }).then(function (data) {
        if (data.error) { throw { server: data }; }
        return navigator.credentials.create({ publicKey: creationOptions(data) });
      }).then(function (cred) {
        return post(box.dataset.submitUrl, { csrf_token: csrf, credential: credentialJSON(cred),
          name: document.getElementById("passkey_name").value });
      }).then(function (data) {
        if (data.next) { window.location.assign(data.next); return; }
        button.disabled = false;
        show(errorEl, data.message || box.dataset.msgFailed);
      }).catch(function (err) {
        button.disabled = false;
        if (err && err.server) { show(errorEl, err.server.message || box.dataset.msgFailed); return; }
        show(errorEl, err && err.name === "NotAllowedError" ? box.dataset.msgCancelled : box.dataset.msgFailed);
      });
    });
  }

  function start() {
    var supported = !!(window.PublicKeyCredential && navigator.credentials);
    var signIn = document.getElementById("passkey-sign-in");
    var add = document.getElementById("passkey-add");
    if (!supported) {
      var note = document.getElementById("passkey-unsupported");
      if (note) { note.hidden = false; }
      return;
    }
    if (signIn) { setUpSignIn(signIn); }
    if (add) { setUpRegister(add); }
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
