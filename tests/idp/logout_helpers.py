"""Shared pieces of the single sign-out tests: a local relying party and an idp stack.

:class:`LocalRP` is a tiny HTTP server on 127.0.0.1 that records the logout
tokens POSTed to it; it can be down (not listening), answer 503 or 400, and
come back on the same port. :func:`make_stack` builds what one idp process
holds (database, Redis, keyring, session store, logout runtime) so that a test
can build a second one on the same database and Redis to play a restart.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import redis as redis_lib

from idp.db import Database
from idp.logout.runtime import LogoutRuntime, install_logout
from idp.models import Citizen, Client
from idp.redis import Keyspace
from idp.sessions import SessionStore
from idp.settings import IdpSettings
from keys.keyring import open_keyring

__all__ = ["LocalRP", "Stack", "make_stack", "wait_until", "verify_logout_token", "seed"]


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalRP:
    """A back-channel logout receiver on a fixed local port."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.tokens: list[str] = []
        self.status = 200
        self.requests = 0
        self.content_types: list[str] = []
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/backchannel-logout"

    def start(self) -> LocalRP:
        rp = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                rp.requests += 1
                rp.content_types.append(self.headers.get("Content-Type", ""))
                if rp.status == 200:
                    rp.tokens.extend(parse_qs(body).get("logout_token", []))
                self.send_response(rp.status)
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@dataclass
class Stack:
    settings: IdpSettings
    database: Database
    redis: Any
    prefix: str
    keyring: Any
    sessions: SessionStore
    logout: LogoutRuntime

    def close(self) -> None:
        self.logout.close()


def make_stack(
    env: dict[str, str],
    *,
    redis_client: Any | None = None,
    create_schema: bool = False,
) -> Stack:
    settings = IdpSettings.from_env(env)
    database = Database(settings.database_url)
    if create_schema:
        database.create_all()
    if redis_client is None:
        if settings.common.redis_url:
            redis_client = redis_lib.Redis.from_url(settings.common.redis_url)
        else:
            import fakeredis

            redis_client = fakeredis.FakeRedis()
    keyspace = Keyspace(settings.common.redis_prefix)
    keyring = open_keyring(settings.common.keys)
    sessions = SessionStore(
        redis_client, keyspace, settings.session_idle_seconds, settings.session_max_seconds
    )
    runtime = install_logout(
        settings,
        database=database,
        redis=redis_client,
        prefix=keyspace.base,
        keyring=keyring,
        sessions=sessions,
    )
    return Stack(settings, database, redis_client, keyspace.base, keyring, sessions, runtime)


def seed(database: Database, *, backchannel: dict[str, str | None]) -> int:
    """A citizen and one client per ``{client_id: backchannel_logout_uri}``; returns the citizen id."""
    with database.session() as db:
        citizen = Citizen(
            id_number_index="ix-" + str(time.monotonic_ns()),
            id_number_enc=b"x",
            id_number_masked="110101********002X",
            name="Test",
        )
        db.add(citizen)
        for client_id, uri in backchannel.items():
            db.add(
                Client(
                    client_id=client_id,
                    name=client_id,
                    redirect_uris=[f"https://{client_id}.example/cb"],
                    backchannel_logout_uri=uri,
                    grant_types=["authorization_code"],
                    response_types=["code"],
                    scopes=["openid"],
                )
            )
        db.flush()
        return citizen.id


def verify_logout_token(token: str, jwks: dict[str, Any], *, issuer: str, client_id: str) -> dict[str, Any]:
    """Validate a logout token as an RP does (Back-Channel Logout 1.0 §2.6); returns its claims."""
    with warnings.catch_warnings():  # authlib.jose announces its move to joserfc
        warnings.simplefilter("ignore")
        from authlib.jose import JsonWebKey, JsonWebToken

    jwt = JsonWebToken(["ES256", "RS256", "EdDSA"])
    claims = jwt.decode(
        token,
        JsonWebKey.import_key_set(jwks),
        claims_options={
            "iss": {"essential": True, "value": issuer},
            "aud": {"essential": True, "value": client_id},
            "iat": {"essential": True},
            "exp": {"essential": True},
            "jti": {"essential": True},
        },
    )
    claims.validate(leeway=5)
    assert claims.header["typ"] == "logout+jwt"
    assert claims["events"] == {"http://schemas.openid.net/event/backchannel-logout": {}}
    assert "nonce" not in claims
    assert claims.get("sid") or claims.get("sub")
    return dict(claims)
