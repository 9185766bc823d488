"""Issue 13's CIBA figure for ``make bench``: pending polls per second at the token endpoint.

``python -m benchmarks.ciba [--requests N] [--duration S] [--concurrency C]`` (``python -m benchmarks --only ciba``)

Starts ``idp serve`` (one granian worker, PostgreSQL and Redis as in
production) pinned to core 0, registers a CIBA client and a citizen, opens
``N`` backchannel authentication requests, then polls them round-robin from
core 1 (a small Node load generator: keep-alive fetch, ``C`` requests in
flight) for ``S`` seconds, in slices alternating with discovery. Nobody approves, so every answer is a pending
poll: ``authorization_pending``, or ``slow_down`` for a request polled again
within its interval. Such a poll is one Lua script in Redis and no SQL (the
client comes from the provider's cache; tests/idp/test_ciba.py::
test_a_pending_poll_costs_no_sql proves it statement by statement). For
scale, the same load generator measures discovery (no Redis, no SQL) on the
same server.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from ._proc import REDIS_URL, free_port, pg_schema, pinned, started, wait_http

__all__ = ["main"]

CIBA = "urn:openid:params:grant-type:ciba"
CITIZEN = ("11010519491231002X", "bench-password-0123")

_LOAD = r"""
const cfg = JSON.parse(process.argv[2]);
const auth = 'Basic ' + Buffer.from(`${cfg.client_id}:${cfg.client_secret}`).toString('base64');
const form = (o) => new URLSearchParams(o).toString();
async function post(path, body) {
  const r = await fetch(cfg.issuer + path, { method: 'POST', body: form(body),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: auth } });
  return [r.status, await r.json()];
}
const ids = [];
for (let i = 0; i < cfg.requests; i += cfg.concurrency) {
  const batch = [];
  for (let j = i; j < Math.min(cfg.requests, i + cfg.concurrency); j++) {
    batch.push(post('/bc-authorize', { scope: 'openid profile', login_hint: cfg.id_number,
                                       binding_message: `bench ${j}`, requested_expiry: '1800' }));
  }
  for (const [status, body] of await Promise.all(batch)) {
    if (status !== 200) throw new Error(`bc-authorize ${status} ${JSON.stringify(body)}`);
    ids.push(body.auth_req_id);
  }
}
async function measure(one, seconds) {
  const counts = {};
  let n = 0, next = 0;
  const stop = Date.now() + seconds * 1000;
  const worker = async () => {
    while (Date.now() < stop) {
      const answer = await one(next++);
      counts[answer] = (counts[answer] || 0) + 1;
      n++;
    }
  };
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: cfg.concurrency }, worker));
  return { per_s: n / (Number(process.hrtime.bigint() - t0) / 1e9), n, counts };
}
const pollOnce = async (i) => {
  const [, body] = await post('/token', { grant_type: cfg.grant_type, auth_req_id: ids[i % ids.length] });
  return body.error || 'tokens';
};
const discoveryOnce = async () => {
  const r = await fetch(cfg.issuer + '/.well-known/openid-configuration');
  await r.arrayBuffer();
  return String(r.status);
};
// Alternating slices (poll, discovery, poll, …): a busy neighbour slows both sides alike.
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pollRates = [], discoveryRates = [], counts = {};
for (let round = 0; round < cfg.rounds; round++) {
  const p = await measure(pollOnce, cfg.duration / cfg.rounds);
  for (const [k, v] of Object.entries(p.counts)) counts[k] = (counts[k] || 0) + v;
  pollRates.push(p.per_s);
  discoveryRates.push((await measure(discoveryOnce, cfg.duration / cfg.rounds)).per_s);
}
const polls = { per_s: median(pollRates), rounds: pollRates, counts };
const discovery = { per_s: median(discoveryRates), rounds: discoveryRates };
process.stdout.write(JSON.stringify({ polls, discovery, pending: ids.length }) + '\n');
"""


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    idp = str(Path(sys.executable).with_name("idp"))
    done = subprocess.run([idp, *args], env=env, input=stdin, capture_output=True, text=True,  # noqa: S603
                          timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"idp {' '.join(args[:2])}: {done.stderr[-500:]}")
    return done.stdout


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ciba")
    parser.add_argument("--requests", type=int, default=2000, help="pending CIBA requests polled round-robin")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of polling")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--rounds", type=int, default=3, help="alternating poll / discovery slices (medians)")
    args = parser.parse_args(argv)

    prefix = f"benchciba{uuid.uuid4().hex[:8]}:"
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as home, pg_schema("bench_ciba") as db_url:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("YIWANG_")},
            "YIWANG_HOME": str(Path(home) / "home"), "YIWANG_DATABASE_URL": db_url, "YIWANG_REDIS_PREFIX": prefix,
            "YIWANG_REDIS_URL": REDIS_URL, "YIWANG_ISSUER": issuer, "YIWANG_LOG_LEVEL": "warning",
            "YIWANG_IDP_CIBA_INTERVAL_SECONDS": "1", "YIWANG_ACCESS_LOG": "false",
        }
        _cli(env, "db", "upgrade")
        _cli(env, "users", "add", "--id-number", CITIZEN[0], "--name", "压测", "--password-stdin",
             stdin=CITIZEN[1] + "\n")
        client = json.loads(_cli(env, "clients", "add", "--name", "压测窗口", "--grant-type", CIBA,
                                 "--scope", "openid", "--scope", "profile", "--json"))
        serve = [str(Path(sys.executable).with_name("idp")), "serve", "--port", str(port), "--workers", "1"]
        script = Path(home) / "ciba_load.mjs"
        script.write_text(_LOAD)
        config = {"issuer": issuer, "client_id": client["client_id"], "client_secret": client["client_secret"],
                  "id_number": CITIZEN[0], "grant_type": CIBA, "requests": args.requests,
                  "duration": args.duration, "concurrency": args.concurrency, "rounds": args.rounds}
        try:
            with started(pinned(serve, 0), env=env, log=Path(home) / "idp.log"):
                wait_http(issuer + "/healthz")
                done = subprocess.run(pinned(["node", str(script), json.dumps(config)], 1),  # noqa: S603
                                      capture_output=True, text=True, timeout=600)
                if done.returncode != 0:
                    raise RuntimeError(done.stderr[-1000:] + (Path(home) / "idp.log").read_text()[-1000:])
                result = json.loads(done.stdout)
        finally:
            import redis

            r = redis.Redis.from_url(REDIS_URL)
            keys = list(r.scan_iter(match=prefix + "*", count=1000))
            if keys:
                r.delete(*keys)
    polls, disc = result["polls"], result["discovery"]
    print(f"CIBA: {result['pending']} pending requests polled round-robin, {args.concurrency} in flight, "
          f"one idp worker on core 0; medians of {args.rounds} alternating slices")
    print(f"  pending polls     {polls['per_s']:8.0f} /s   ({', '.join(f'{k} {v}' for k, v in sorted(polls['counts'].items()))})")
    print(f"  discovery (scale) {disc['per_s']:8.0f} /s")
    print(f"  polls / discovery {polls['per_s'] / disc['per_s']:8.2f}")
    print("  a pending poll: one Redis script, no SQL (tests/idp/test_ciba.py::test_a_pending_poll_costs_no_sql)")
    return {"ciba_polls_per_s": polls["per_s"], "discovery_per_s": disc["per_s"], "counts": polls["counts"]}


if __name__ == "__main__":
    main()
