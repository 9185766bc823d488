"""Issue 6's status-list figure for ``make bench``: fetch + check of a 1,000,000-entry list.

``python -m benchmarks.statuslist [--entries N] [--revoked-share F] [--rounds R]``

Builds an IETF Token Status List of one million 2-bit entries with 1 % of them
set (random positions, as certstore allocates them), signs it with an ES256
key through ``keys.jws``, serves it from a local HTTP server, and measures
what a verifier does on a cache miss — HTTP GET of the whole list, signature
check, ZLIB inflate, max-age check, one lookup — and on a cache hit (lookup
only). Prints the token's size too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import secrets
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.statuslist")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--revoked-share", type=float, default=0.01)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)

    from werkzeug.serving import WSGIRequestHandler, make_server
    from werkzeug.wrappers import Response

    from certstore.statuslists import StatusListCache, requests_fetch
    from keys.config import CommonSettings
    from keys.keyring import open_keyring
    from signing.statuslist import INVALID, StatusList, sign_status_list

    with tempfile.TemporaryDirectory() as tmp:
        ring = open_keyring(CommonSettings.from_values({"HOME": Path(tmp)}, default_issuer="http://x").keys)
        signer = ring.keyset("bench-status").active()
        lst = StatusList(size=args.entries, bits=2)
        revoked = {secrets.randbelow(args.entries) for _ in range(int(args.entries * args.revoked_share))}
        for i in revoked:
            lst.set(i, INVALID)
        holder: dict[str, Any] = {}

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            return Response(holder["token"], mimetype="application/statuslist+jwt")(environ, start_response)

        class _Quiet(WSGIRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass

        server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
        uri = f"http://127.0.0.1:{server.port}/status-lists/1"
        t0 = time.perf_counter()
        holder["token"] = sign_status_list(lst, signer, uri=uri, issued_at=dt.datetime.now(dt.UTC))
        sign_ms = (time.perf_counter() - t0) * 1000
        threading.Thread(target=server.serve_forever, daemon=True).start()
        keys = [signer.public_key()]
        probe = next(iter(revoked)) if revoked else 0
        misses = []
        try:
            for _ in range(args.rounds):
                # empty cache: a full fetch each time; the bench's list server is on loopback
                cache = StatusListCache(functools.partial(requests_fetch, allow_loopback=True))
                t0 = time.perf_counter()
                answer = cache.lookup(uri, probe, keys)
                misses.append((time.perf_counter() - t0) * 1000)
                assert answer.value == INVALID, answer
            t0 = time.perf_counter()
            n = 2000
            for _ in range(n):
                cache.lookup(uri, probe, keys)
            hit_us = (time.perf_counter() - t0) / n * 1e6
        finally:
            server.shutdown()
    print(
        f"status list: {args.entries:,} entries x 2 bits, {len(revoked):,} set; token {len(holder['token']) / 1024:.0f} KiB; "
        f"signing it {sign_ms:.0f} ms"
    )
    print(
        f"fetch + verify + inflate + check (cache miss): median {statistics.median(misses):.1f} ms, "
        f"min {min(misses):.1f} ms over {len(misses)} rounds"
    )
    print(f"check from the cached list (cache hit: age check + lookup): {hit_us:.0f} us")


if __name__ == "__main__":
    main()
