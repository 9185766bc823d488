// openid-client (panva) drives DPoP against a running Yiwang idp and certstore.
// Input: one JSON line on argv[2]. The browser part (login) is done by the Python test:
// this script prints {"authorize": url} and reads the callback URL from stdin.
// Output: one JSON line per step on stdout.
import * as client from 'openid-client';
import readline from 'node:readline';

const cfg = JSON.parse(process.argv[2]);
const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const insecure = { execute: [client.allowInsecureRequests] };  // loopback http in the test

async function callbackUrl() {
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) { rl.close(); return line.trim(); }
  throw new Error('no callback URL on stdin');
}

// 1. a portal (confidential): PAR + code flow, every request with a DPoP proof of one key.
const portal = await client.discovery(new URL(cfg.issuer), cfg.portal.client_id, cfg.portal.client_secret,
                                      client.ClientSecretBasic(cfg.portal.client_secret), insecure);
const dpop = client.getDPoPHandle(portal, await client.randomDPoPKeyPair('ES256'));
const verifier = client.randomPKCECodeVerifier();
const state = client.randomState();
const authorize = await client.buildAuthorizationUrlWithPAR(portal, {
  redirect_uri: cfg.portal.redirect_uri, scope: 'openid profile offline_access', state,
  code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
}, { DPoP: dpop });
say({ authorize: authorize.href });
const tokens = await client.authorizationCodeGrant(portal, new URL(await callbackUrl()),
  { pkceCodeVerifier: verifier, expectedState: state }, undefined, { DPoP: dpop });
say({ step: 'code', token_type: tokens.token_type, access_token: tokens.access_token, sub: tokens.claims().sub });

const refreshed = await client.refreshTokenGrant(portal, tokens.refresh_token, undefined, { DPoP: dpop });
say({ step: 'refresh', token_type: refreshed.token_type, access_token: refreshed.access_token });

const info = await client.fetchUserInfo(portal, refreshed.access_token, tokens.claims().sub, { DPoP: dpop });
say({ step: 'userinfo', sub: info.sub, name: info.name });

// 2. an agency: client credentials with DPoP, then certstore's API with the bound token.
const agency = await client.discovery(new URL(cfg.issuer), cfg.agency.client_id, cfg.agency.client_secret,
                                      client.ClientSecretBasic(cfg.agency.client_secret), insecure);
const agencyDpop = client.getDPoPHandle(agency, await client.randomDPoPKeyPair('ES256'));
const machine = await client.clientCredentialsGrant(agency, { scope: 'certs:issue' }, { DPoP: agencyDpop });
say({ step: 'client_credentials', token_type: machine.token_type, access_token: machine.access_token });
const resp = await client.fetchProtectedResource(agency, machine.access_token,
  new URL(cfg.certstore + '/api/v1/certificates'), 'GET', undefined, undefined, { DPoP: agencyDpop });
say({ step: 'certstore', status: resp.status, body: await resp.json() });
