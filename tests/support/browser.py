"""What the browser tests share: Debian's Chromium (never a downloaded browser), a served idp, the login form.

- :data:`CHROMIUM`, :data:`CHROMIUM_ARGS`, :func:`chromium` and the
  ``browser`` fixture (:func:`browser_fixture`) start the browser;
- :func:`prepared_idp` gives an ``idp`` with its database and citizens, ready
  for ``serving`` (tests/idp/test_e2e_browser.py);
- :func:`local_server` is a little HTTP server beside it (a relying party's
  redirect listener, an attacker's page);
- :func:`sign_in` fills the idp's login form.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"

# Without the background-networking flags Chromium keeps trying hosts this
# closed network refuses; --no-sandbox because the tests run as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A Playwright ``Browser`` on Debian's Chromium, closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(name="browser")
def browser_fixture() -> Iterator[Any]:
    """The ``browser`` fixture: :func:`chromium` for one test (import this name into a test module)."""
    with chromium() as b:
        yield b


def idp_env(yiwang_env: Mapping[str, str], issuer: str) -> dict[str, str]:
    """The environment of the ``idp`` CLI and ``idp serve`` at ``issuer``.

    The test's settings and a cheap password hash; no ``YIWANG_TEST_*``, which
    would make the subprocess think it is the test session.
    """
    env = {**os.environ, **yiwang_env, "YIWANG_ISSUER": issuer, "YIWANG_IDP_PASSWORD_HASH_MEMORY_KIB": "1024"}
    return {k: v for k, v in env.items() if not k.startswith("YIWANG_TEST_")}


def prepared_idp(
    yiwang_env: Mapping[str, str], citizens: Mapping[str, str], *, password: str
) -> tuple[int, str, dict[str, str]]:
    """An idp on a free loopback port, its database migrated and ``citizens`` (ID number → name) added.

    Returns ``(port, issuer, env)``: register clients with ``idp clients add``
    in ``env``, then run it with ``serving(env, port, log)``.
    """
    # Imported here: test_e2e_browser imports this module.
    from tests.idp.test_e2e_browser import _free_port, _idp

    port = _free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = idp_env(yiwang_env, issuer)
    _idp(env, "db", "upgrade")
    for number, name in citizens.items():
        _idp(env, "users", "add", "--id-number", number, "--name", name, "--password-stdin", stdin=password + "\n")
    return port, issuer, env


@contextlib.contextmanager
def local_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    """``handler`` on 127.0.0.1 at a port the system picks, in a daemon thread; shut down on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def sign_in(page: Any, id_number: str, password: str) -> None:
    """Fill the idp's login form on ``page`` and submit it."""
    page.fill("input[name=id_number]", id_number)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
