// A wallet nobody here wrote (@openid4vc/openid4vci, OpenID4VCI 1.0) receives SD-JWT VCs from
// certstore, and @sd-jwt/sd-jwt-vc verifies each credential, its signature and its status.
// Input: one JSON line on argv[2]:
//   {"mode": "pre", "offer": "openid-credential-offer://…", "tx_code": "123456", "issuer_jwk": {…}}
//   {"mode": "auth", "offer": "…", "client_id": "…", "redirect_uri": "…", "issuer_jwk": {…}}
//   {"mode": "verify", "credential": "…", "issuer_jwk": {…}}
// In "auth" mode the script prints {"authorize": url}; the Python test signs the citizen in at the
// idp and writes the callback URL on stdin. Output: one JSON line per step on stdout.
import crypto from 'node:crypto';
import readline from 'node:readline';
import { Openid4vciClient } from '@openid4vc/openid4vci';
import { clientAuthenticationAnonymous, clientAuthenticationNone, setGlobalConfig } from '@openid4vc/oauth2';
import { SDJwtVcInstance } from '@sd-jwt/sd-jwt-vc';
import { digest } from '@sd-jwt/crypto-nodejs';

const cfg = JSON.parse(process.argv[2]);
const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
setGlobalConfig({ allowInsecureUrls: true });  // loopback http in the test

const b64u = (buf) => Buffer.from(buf).toString('base64url');

// Holder keys: one per credential of a batch (P-256 and Ed25519, as the issuer's metadata allows).
function holderKey(alg) {
  const pair = alg === 'EdDSA' ? crypto.generateKeyPairSync('ed25519') : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = pair.publicKey.export({ format: 'jwk' });
  return { alg, privateKey: pair.privateKey, publicJwk: jwk };
}
const keys = new Map();  // every key this wallet signs with, by x coordinate
const holders = [];      // the holder keys' x coordinates (credentials are bound to these)

function sign(alg, privateKey, input) {
  if (alg === 'EdDSA') return crypto.sign(null, Buffer.from(input), privateKey);
  return crypto.sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
}

const callbacks = (clientAuthentication) => ({
  hash: (data, alg) => crypto.createHash(alg.replace('-', '').toLowerCase()).update(data).digest(),
  generateRandom: (n) => crypto.randomBytes(n),
  clientAuthentication,
  signJwt: async (signer, { header, payload }) => {
    const key = keys.get(signer.publicJwk.x);
    const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}`;
    return { jwt: `${input}.${b64u(sign(key.alg, key.privateKey, input))}`, signerJwk: signer.publicJwk };
  },
  verifyJwt: async () => { throw new Error('not used'); },
});

function sdjwtVerifier() {
  const issuerKey = crypto.createPublicKey({ key: cfg.issuer_jwk, format: 'jwk' });
  return new SDJwtVcInstance({
    hasher: digest,
    verifier: async (data, sig) =>
      crypto.verify('sha256', Buffer.from(data), { key: issuerKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(sig, 'base64url')),
    // statusListFetcher and statusValidator: the library's own (fetch with Accept
    // application/statuslist+jwt, content type checked, status 0 = valid)
  });
}

async function verified(credential) {
  const result = await sdjwtVerifier().verify(credential);
  const claims = await sdjwtVerifier().getClaims(credential);
  return { header: result.header, payload: result.payload, claims };
}

async function receive(client, issuerMetadata, offer, accessToken, clientId, count, dpop) {
  const configurationId = offer.credential_configuration_ids[0];
  const { c_nonce } = await client.requestNonce({ issuerMetadata });
  const proofs = [];
  for (let i = 0; i < count; i++) {
    const key = holderKey(i % 2 ? 'EdDSA' : 'ES256');
    keys.set(key.publicJwk.x, key);
    holders.push(key.publicJwk.x);
    const { jwt } = await client.createCredentialRequestJwtProof({
      issuerMetadata, credentialConfigurationId: configurationId, nonce: c_nonce, clientId,
      signer: { method: 'jwk', alg: key.alg, publicJwk: key.publicJwk },
    });
    proofs.push(jwt);
  }
  const response = await client.retrieveCredentials({
    issuerMetadata, accessToken, credentialConfigurationId: configurationId, proofs: { jwt: proofs }, dpop,
  });
  const credentials = response.credentialResponse.credentials.map((c) => c.credential);
  for (const credential of credentials) {
    const v = await verified(credential);
    say({ step: 'credential', credential, typ: v.header.typ, kid: v.header.kid, claims: v.claims,
          cnf_x: v.payload.cnf.jwk.x, holder_xs: holders });
  }
  return credentials;
}

async function callbackUrl() {
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) { rl.close(); return line.trim(); }
  throw new Error('no callback URL on stdin');
}

if (cfg.mode === 'verify') {
  try {
    const v = await verified(cfg.credential);
    say({ step: 'verify', ok: true, identifier: v.claims.identifier });
  } catch (e) {
    say({ step: 'verify', ok: false, error: String(e.message || e) });
  }
} else if (cfg.mode === 'pre') {
  const client = new Openid4vciClient({ callbacks: callbacks(clientAuthenticationAnonymous()) });
  const offer = await client.resolveCredentialOffer(cfg.offer);
  const issuerMetadata = await client.resolveIssuerMetadata(offer.credential_issuer);
  say({ step: 'metadata', version: issuerMetadata.originalDraftVersion,
        authorization_servers: issuerMetadata.authorizationServers.map((a) => a.issuer) });
  // certstore's authorization server offers DPoP (RFC 9449): the token is bound to a key of the wallet's
  const as = issuerMetadata.authorizationServers.find((a) => a.issuer === offer.credential_issuer);
  const dpopKey = holderKey('ES256');
  keys.set(dpopKey.publicJwk.x, dpopKey);
  const dpopOption = as.dpop_signing_alg_values_supported?.includes('ES256')
    ? { signer: { method: 'jwk', alg: 'ES256', publicJwk: dpopKey.publicJwk } } : undefined;
  const { accessTokenResponse, dpop } = await client.retrievePreAuthorizedCodeAccessTokenFromOffer({
    credentialOffer: offer, issuerMetadata, txCode: cfg.tx_code, dpop: dpopOption,
  });
  say({ step: 'token', token_type: accessTokenResponse.token_type });
  await receive(client, issuerMetadata, offer, accessTokenResponse.access_token, undefined, 2, dpop);
} else if (cfg.mode === 'auth') {
  const client = new Openid4vciClient({ callbacks: callbacks(clientAuthenticationNone({ clientId: cfg.client_id })) });
  const offer = await client.resolveCredentialOffer(cfg.offer);
  const issuerMetadata = await client.resolveIssuerMetadata(offer.credential_issuer);
  const configuration = issuerMetadata.credentialIssuer.credential_configurations_supported[offer.credential_configuration_ids[0]];
  const { authorizationRequestUrl, pkce } = await client.createAuthorizationRequestUrlFromOffer({
    credentialOffer: offer, issuerMetadata, clientId: cfg.client_id, redirectUri: cfg.redirect_uri,
    scope: configuration.scope,
  });
  say({ authorize: authorizationRequestUrl });
  const callback = await callbackUrl();
  const code = new URL(callback).searchParams.get('code');
  const { accessTokenResponse } = await client.retrieveAuthorizationCodeAccessTokenFromOffer({
    credentialOffer: offer, issuerMetadata, authorizationCode: code, pkceCodeVerifier: pkce?.codeVerifier,
    redirectUri: cfg.redirect_uri,
  });
  say({ step: 'token', token_type: accessTokenResponse.token_type, scope: accessTokenResponse.scope });
  await receive(client, issuerMetadata, offer, accessTokenResponse.access_token, cfg.client_id, 1);
}
