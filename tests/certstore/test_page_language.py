"""certstore's pages choose their one language like the idp's (issue 18): ?lang=, the yw_lang cookie, Accept-Language.

The wallet asks the idp for its pages in the same language (``ui_locales``).
"""

from __future__ import annotations

from typing import Any

from keys.locale import LANG_COOKIE

from .test_wallet_pages_errors import _declined, wallet  # noqa: F401 - the fixture

HTML = {"Accept": "text/html"}


def _lang_of(html: str) -> str:
    return html.split('<html lang="', 1)[1].split('"', 1)[0]


def test_the_switch_the_cookie_and_accept_language(client: Any) -> None:
    assert _lang_of(client.get("/verify").get_data(as_text=True)) == "zh-CN"  # nothing said: Chinese
    page = client.get("/verify", headers={"Accept-Language": "en-GB,en;q=0.8"}).get_data(as_text=True)
    assert _lang_of(page) == "en" and "Verify an electronic certificate" in page and "电子证照核验" not in page
    # an explicit switch wins over Accept-Language and is kept in the cookie both services read
    resp = client.get("/verify?lang=zh-CN", headers={"Accept-Language": "en"})
    assert _lang_of(resp.get_data(as_text=True)) == "zh-CN"
    assert any(c.startswith(f"{LANG_COOKIE}=zh-CN;") for c in resp.headers.getlist("Set-Cookie"))
    assert _lang_of(client.get("/verify", headers={"Accept-Language": "en"}).get_data(as_text=True)) == "zh-CN"
    client.get("/verify?lang=en")
    offline = client.get("/verify/offline/").get_data(as_text=True)
    assert _lang_of(offline) == "en" and "Verify offline" in offline and "离线核验" not in offline
    # the switch link goes to the same page in the other language
    assert 'href="/verify?lang=zh-CN"' in client.get("/verify").get_data(as_text=True)


def test_an_error_page_is_in_the_pages_language(client: Any) -> None:
    zh = client.get("/wallet/no-such-page", headers={**HTML, "Accept-Language": "zh-CN"})
    en = client.get("/wallet/no-such-page", headers={**HTML, "Accept-Language": "en"})
    assert zh.status_code == en.status_code == 404
    assert "未找到" in zh.get_data(as_text=True) and "Not found" not in zh.get_data(as_text=True)
    assert "Not found" in en.get_data(as_text=True) and "未找到" not in en.get_data(as_text=True)


def test_the_wallet_asks_the_idp_for_its_language(app: Any, client: Any, wallet: Any) -> None:  # noqa: F811
    idp = _declined(app)
    client.get("/wallet/login", headers={"Accept-Language": "en-US"})
    client.get("/wallet/login?lang=zh-CN&again=1")
    assert [s.get("ui_locales") for s in idp.started] == ["en", "zh-CN"]
    assert idp.started[1]["prompt"] == "consent"
