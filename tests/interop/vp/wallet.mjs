// Interop (issue 15 "Must show"): libraries no one here wrote, against the Yiwang verifier.
//   node wallet.mjs issue   < {issuer_jwk, kid, payload, disclosable: [names]}      -> prints an SD-JWT VC
//   node wallet.mjs present < {url, credential, holder_jwk}                        -> prints the verifier's answer
// "issue" builds the credential with @sd-jwt/sd-jwt-vc (signer: the issuer's key given in);
// "present" is the wallet: @openid4vc/openid4vp resolves the request by reference (JAR checked with the x5c
// leaf, x509_hash client id), reads the DCQL query, @sd-jwt/sd-jwt-vc presents only the asked claims with a
// key-binding JWT for the verifier's client id and nonce, and the answer goes back as direct_post or as
// direct_post.jwt (ECDH-ES JWE made with jose).
import { X509Certificate, createHash, webcrypto } from "node:crypto";
import { readFileSync } from "node:fs";
import { setGlobalConfig } from "@openid4vc/oauth2";
import {
  createOpenid4vpAuthorizationResponse,
  parseOpenid4vpAuthorizationRequest,
  resolveOpenid4vpAuthorizationRequest,
  submitOpenid4vpAuthorizationResponse,
} from "@openid4vc/openid4vp";
import { SDJwtVcInstance } from "@sd-jwt/sd-jwt-vc";
import { ES256, digest, generateSalt } from "@sd-jwt/crypto-nodejs";
import * as jose from "jose";

setGlobalConfig({ allowInsecureUrls: true }); // the test verifier runs on http://127.0.0.1

const input = JSON.parse(readFileSync(0, "utf8"));
const mode = process.argv[2];

async function issue() {
  const sdjwt = new SDJwtVcInstance({
    signer: await ES256.getSigner(input.issuer_jwk),
    signAlg: ES256.alg,
    hasher: digest,
    hashAlg: "sha-256",
    saltGenerator: generateSalt,
  });
  const credential = await sdjwt.issue(input.payload, { _sd: input.disclosable }, { header: { kid: input.kid, typ: "dc+sd-jwt" } });
  process.stdout.write(JSON.stringify({ credential }));
}

const callbacks = {
  fetch: (...args) => fetch(...args),
  hash: (data, alg) => new Uint8Array(createHash(alg.replace("-", "").toLowerCase()).update(data).digest()),
  verifyJwt: async (signer, jwt) => {
    if (signer.method !== "x5c") return { verified: false };
    const cert = `-----BEGIN CERTIFICATE-----\n${signer.x5c[0]}\n-----END CERTIFICATE-----`;
    const key = await jose.importX509(cert, jwt.header.alg);
    try {
      await jose.compactVerify(jwt.compact, key);
    } catch {
      return { verified: false };
    }
    return { verified: true, signerJwk: await jose.exportJWK(key) };
  },
  getX509CertificateMetadata: (certificate) => {
    const san = new X509Certificate(Buffer.from(certificate, "base64")).subjectAltName ?? "";
    const names = san.split(", ");
    return {
      sanDnsNames: names.filter((n) => n.startsWith("DNS:")).map((n) => n.slice(4)),
      sanUriNames: names.filter((n) => n.startsWith("URI:")).map((n) => n.slice(4)),
    };
  },
  encryptJwe: async (encryptor, data) => {
    const key = await jose.importJWK(encryptor.publicJwk, "ECDH-ES");
    const header = { alg: encryptor.alg, enc: encryptor.enc, kid: encryptor.publicJwk.kid };
    if (encryptor.apu) header.apu = encryptor.apu;
    if (encryptor.apv) header.apv = encryptor.apv;
    const jwe = await new jose.CompactEncrypt(new TextEncoder().encode(data)).setProtectedHeader(header).encrypt(key);
    return { jwe, encryptionJwk: encryptor.publicJwk };
  },
};

async function present() {
  const parsed = parseOpenid4vpAuthorizationRequest({ authorizationRequest: input.url });
  const resolved = await resolveOpenid4vpAuthorizationRequest({ authorizationRequestPayload: parsed.params, callbacks });
  const request = resolved.authorizationRequestPayload;
  const query = resolved.dcql.query.credentials[0];
  // Only what the verifier asked for: the DCQL claims paths become the presentation frame.
  const frame = Object.fromEntries(query.claims.map((c) => [c.path[0], true]));
  const holder = new SDJwtVcInstance({
    hasher: digest,
    hashAlg: "sha-256",
    kbSigner: await ES256.getSigner(input.holder_jwk),
    kbSignAlg: ES256.alg,
  });
  const presentation = await holder.present(input.credential, frame, {
    kb: { payload: { aud: input.aud ?? request.client_id, nonce: input.nonce ?? request.nonce, iat: Math.floor(Date.now() / 1000) } },
  });
  const encrypted = request.response_mode === "direct_post.jwt";
  const response = await createOpenid4vpAuthorizationResponse({
    authorizationRequestPayload: request,
    authorizationResponsePayload: { vp_token: { [query.id]: [presentation] } },
    jarm: encrypted
      ? {
          encryption: { nonce: Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString("base64url") },
          serverMetadata: {
            authorization_signing_alg_values_supported: ["ES256"],
            authorization_encryption_alg_values_supported: ["ECDH-ES"],
            authorization_encryption_enc_values_supported: ["A128GCM", "A256GCM"],
          },
        }
      : undefined,
    callbacks,
  });
  const submitted = await submitOpenid4vpAuthorizationResponse({
    authorizationRequestPayload: request,
    authorizationResponsePayload: response.authorizationResponsePayload,
    jarm: response.jarm ? { responseJwt: response.jarm.responseJwt } : undefined,
    callbacks,
  });
  const body = await submitted.response.text();
  process.stdout.write(JSON.stringify({
    status: submitted.response.status, body, client_id: resolved.client.clientId ?? request.client_id,
    prefix: resolved.client.prefix ?? resolved.client.scheme, asked: Object.keys(frame), version: resolved.version,
    response_mode: request.response_mode,
  }));
}

try {
  await (mode === "issue" ? issue() : present());
} catch (e) {
  process.stderr.write(String(e && e.stack ? e.stack : e) + "\n" + JSON.stringify(e && (e.errorResponse || e.zodError || e.cause) || {}) + "\n");
  process.exit(1);
}
