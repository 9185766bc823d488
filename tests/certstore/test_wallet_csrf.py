"""Issue 19 §1, the wallet: its form token is held in the server-side wallet session, not in a cookie.

A same-site page can plant cookies, but the wallet's token is compared with
the one stored in the session the browser's cookie names: the attacker's own
token (from their own wallet session) does nothing to the citizen's session.
"""

from __future__ import annotations

import re
from typing import Any

from certstore.wallet import StaticResolver, WalletService
from keys.identifiers import resident_id_check_character

from .conftest import PERSON_ID
from .test_wallet import _FakeOAuth

OTHER_ID = "11010519800101001" + resident_id_check_character("11010519800101001")


def _sign_in(app: Any, browser: Any, number: str) -> str:
    app.extensions["certstore.oauth"] = _FakeOAuth({"sub": "pw-" + number[-4:], "id_number": number, "name": "x"})
    assert browser.get("/wallet/callback?code=c&state=s").status_code == 302
    page = browser.get("/wallet").get_data(as_text=True)
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


def test_wallet_sign_out_refuses_another_sessions_token(app: Any, services: Any) -> None:
    app.extensions["certstore.wallet"] = WalletService(services.certificates, StaticResolver())
    victim, attacker = app.test_client(), app.test_client()
    _sign_in(app, victim, PERSON_ID)
    attackers_token = _sign_in(app, attacker, OTHER_ID)
    victims_cookie = victim.get_cookie("yw_wallet", path="/wallet").value

    assert victim.post("/wallet/logout", data={"csrf": attackers_token}).status_code == 400
    assert victim.get("/wallet").status_code == 200
    assert app.extensions["certstore.wallet_sessions"].get(victims_cookie) is not None

    # The attacker's own cookie planted beside the citizen's (a longer path is sent first) only
    # reaches the attacker's own session: the citizen's stays.
    victim.set_cookie("yw_wallet", attacker.get_cookie("yw_wallet", path="/wallet").value, path="/wallet/logout")
    victim.post("/wallet/logout", data={"csrf": attackers_token})
    assert app.extensions["certstore.wallet_sessions"].get(victims_cookie) is not None


def test_on_https_the_wallet_cookies_are_host_prefixed(tmp_path: Any, database_url: str, jwks_source: Any) -> None:
    """``__Host-``: Secure, ``Path=/``, no ``Domain``, so no sibling subdomain can set or shadow them."""
    from certstore.web import create_app
    from certstore.wiring import build_services

    from .conftest import make_settings, populate

    svc = build_services(make_settings(tmp_path, database_url, public_url="https://certs.example.gov.cn"),
                         jwks_source=jwks_source)
    try:
        populate(svc)
        app = create_app(services=svc)
        app.extensions["certstore.wallet"] = WalletService(svc.certificates, StaticResolver())
        app.extensions["certstore.oauth"] = _FakeOAuth({"sub": "pw", "id_number": PERSON_ID, "name": "x"})
        browser = app.test_client()
        base = "https://certs.example.gov.cn"
        resp = browser.get("/wallet/callback?code=c&state=s", base_url=base)
        cookies = resp.headers.getlist("Set-Cookie")
        wallet = [c for c in cookies if c.startswith("__Host-yw_wallet=")]
        assert wallet and "Secure" in wallet[0] and "Path=/;" in wallet[0] + ";" and "Domain" not in wallet[0]
        assert browser.get("/wallet", base_url=base).status_code == 200
        # The bare name (what a sibling could set with Domain=) is not the wallet session.
        value = wallet[0].split(";", 1)[0].split("=", 1)[1]
        other = app.test_client()
        other.set_cookie("yw_wallet", value, domain="certs.example.gov.cn", path="/wallet")
        assert other.get("/wallet", base_url=base).status_code == 302
        assert app.config["SESSION_COOKIE_NAME"] == "__Host-session"
    finally:
        svc.close()
