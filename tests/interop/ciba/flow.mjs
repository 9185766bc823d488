// openid-client (panva, v6) drives OpenID CIBA against a running Yiwang idp: poll mode, then ping mode.
// Input: one JSON object on argv[2] (issuer, the two clients, the citizen's ID number, the ping port).
// The citizen's approval is done by the Python test in Chromium: this script prints
// {"started": mode, "binding_message": …} and goes on polling (poll) or waits for the ping (ping).
// Output: one JSON line per step on stdout.
import * as client from 'openid-client';
import http from 'node:http';

const cfg = JSON.parse(process.argv[2]);
const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const insecure = { execute: [client.allowInsecureRequests] };  // loopback http in the test

async function configOf(c) {
  return client.discovery(new URL(cfg.issuer), c.client_id, c.client_secret,
                          client.ClientSecretBasic(c.client_secret), insecure);
}

// 0. a bad input reaches the client as the CIBA error code (CIBA 13)
const pollClient = await configOf(cfg.poll);
try {
  await client.initiateBackchannelAuthentication(pollClient, { scope: 'openid profile', login_hint: cfg.unknown_id });
  say({ step: 'unknown', error: null });
} catch (err) {
  say({ step: 'unknown', error: err.error ?? err.code ?? String(err) });
}

// 1. poll mode: initiate, then pollBackchannelAuthenticationGrant until the citizen approves
const pollStart = await client.initiateBackchannelAuthentication(pollClient, {
  scope: 'openid profile', login_hint: cfg.id_number, binding_message: 'A7 柜台', requested_expiry: '300',
});
say({ started: 'poll', binding_message: 'A7 柜台', interval: pollStart.interval, expires_in: pollStart.expires_in });
const polled = await client.pollBackchannelAuthenticationGrant(pollClient, pollStart);
say({ step: 'poll', token_type: polled.token_type, scope: polled.scope, sub: polled.claims().sub,
      sid: polled.claims().sid, aud: polled.claims().aud, access_token: polled.access_token });

// 2. ping mode: our notification endpoint, then one token request after the ping
let pinged;
const gotPing = new Promise((resolve) => { pinged = resolve; });
const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => {
    res.writeHead(204);
    res.end();
    pinged({ authorization: req.headers.authorization, contentType: req.headers['content-type'],
             body: JSON.parse(body || '{}') });
  });
});
await new Promise((resolve) => server.listen(cfg.ping_port, '127.0.0.1', resolve));
const pingClient = await configOf(cfg.ping);
const notificationToken = client.randomState() + client.randomState();
const pingStart = await client.initiateBackchannelAuthentication(pingClient, {
  scope: 'openid profile', login_hint: cfg.id_number, binding_message: 'B9 热线',
  client_notification_token: notificationToken,
});
say({ started: 'ping', binding_message: 'B9 热线' });
const ping = await gotPing;
server.close();
say({ step: 'ping', bearer_ok: ping.authorization === `Bearer ${notificationToken}`,
      id_ok: ping.body.auth_req_id === pingStart.auth_req_id, content_type: ping.contentType });
const fetched = await client.genericGrantRequest(pingClient, 'urn:openid:params:grant-type:ciba',
                                                 { auth_req_id: pingStart.auth_req_id });
say({ step: 'ping_token', token_type: fetched.token_type, sub: fetched.claims().sub, sid: fetched.claims().sid });
// a used auth_req_id cannot be redeemed twice
try {
  await client.genericGrantRequest(pingClient, 'urn:openid:params:grant-type:ciba', { auth_req_id: pingStart.auth_req_id });
  say({ step: 'replay', error: null });
} catch (err) {
  say({ step: 'replay', error: err.error ?? String(err) });
}
