// A single-page app signing in at the Yiwang idp with oidc-client-ts:
// authorization code + PKCE (S256), userinfo, renewal with the rotated
// refresh token, and RP-initiated logout back to this page.
// config.json, served next to this file: {"authority": "https://idp…", "client_id": "…"}
"use strict";

const here = window.location.origin + window.location.pathname;
const statusEl = document.getElementById("status");
const outEl = document.getElementById("out");

function show(status, data) {
  statusEl.textContent = status;
  if (data !== undefined) outEl.textContent = JSON.stringify(data, null, 2);
}

async function main() {
  const config = await (await fetch("config.json")).json();
  const manager = new oidc.UserManager({
    authority: config.authority,
    client_id: config.client_id,            // a public client: no secret in a browser
    redirect_uri: here,
    post_logout_redirect_uri: here,
    response_type: "code",                  // PKCE S256 is always used by oidc-client-ts
    scope: "openid profile",
    loadUserInfo: false,                    // called below, to show the CORS answer
    automaticSilentRenew: false,
    userStore: new oidc.WebStorageStateStore({ store: window.sessionStorage }),
  });

  const params = new URLSearchParams(window.location.search);
  if (params.has("code") || params.has("error")) {
    try {
      const user = await manager.signinRedirectCallback();
      window.history.replaceState({}, "", here);
      show("signed-in", { sub: user.profile.sub, has_refresh_token: !!user.refresh_token });
    } catch (e) {
      show("signin-failed", { error: String(e && e.message || e) });
    }
  } else if (params.has("state") && sessionStorage.getItem("signing-out")) {
    await manager.signoutRedirectCallback();
    sessionStorage.removeItem("signing-out");
    window.history.replaceState({}, "", here);
    show("signed-out");
  } else if (sessionStorage.getItem("signing-out")) {
    sessionStorage.removeItem("signing-out");
    show("signed-out");
  } else {
    const user = await manager.getUser();
    show(user ? "signed-in" : "anonymous");
  }

  document.getElementById("signin").onclick = () => manager.signinRedirect();

  document.getElementById("userinfo").onclick = async () => {
    const user = await manager.getUser();
    const meta = await manager.metadataService.getMetadata();
    try {
      const resp = await fetch(meta.userinfo_endpoint, {
        headers: { Authorization: "Bearer " + user.access_token },
      });
      show("userinfo", await resp.json());
    } catch (e) {
      show("userinfo-failed", { error: String(e) });
    }
  };

  // Renewal uses the refresh token (rotated at every use): a hidden iframe with
  // prompt=none cannot work where third-party cookies are blocked, and the idp
  // refuses to be framed (docs/rp-integration.md, "Single-page browser apps").
  document.getElementById("renew").onclick = async () => {
    const before = await manager.getUser();
    try {
      const user = await manager.signinSilent();
      show("renewed", {
        sub: user.profile.sub,
        new_access_token: user.access_token !== before.access_token,
        new_refresh_token: user.refresh_token !== before.refresh_token,
      });
    } catch (e) {
      show("renew-failed", { error: String(e && e.message || e) });
    }
  };

  document.getElementById("signout").onclick = async () => {
    sessionStorage.setItem("signing-out", "1");
    await manager.signoutRedirect();          // end_session with id_token_hint
  };
}

main().catch((e) => show("error", { error: String(e) }));
