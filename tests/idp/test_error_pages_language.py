"""Issue 18: the idp's error pages say what happened in the page's language, from the catalog.

Authlib explains a refused authorization request in English (``error_description``);
that text goes to the log and, for an API, into the JSON answer, never onto a
page. Each request below is refused on a page (it cannot be sent back to a
registered redirect URI); the page's message is a catalog entry: Chinese on a
zh-CN page, the msgid on an en page, and none of Authlib's words.
"""

from __future__ import annotations

import re
from html import unescape

import pytest
from babel.messages.pofile import read_po

from keys.locale import CATALOG
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import RP

HTML = {"Accept": "text/html"}


def _catalog() -> dict[str, str]:
    with CATALOG.open("rb") as f:
        return {e.id: e.string for e in read_po(f, locale="zh_CN") if e.id and isinstance(e.id, str)}


def _refusals(rp: RP) -> dict[str, str]:
    good = f"client_id={rp.client_id}&response_type=code&scope=openid&state=s&code_challenge_method=S256" \
           "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    return {
        "unknown client": "/authorize?client_id=nobody&response_type=code&scope=openid",
        "unregistered redirect": f"/authorize?{good}&redirect_uri=https://evil.example/cb",
        "no client id": "/authorize?response_type=code&scope=openid",
        "unknown request_uri": f"/authorize?client_id={rp.client_id}&request_uri=urn:ietf:params:oauth:request_uri:nope",
        "control character": f"/authorize?{good}&redirect_uri=https://portal.example.cn/cb%00",
    }


def _message(html: str) -> str:
    found = re.search(r'id="error-message">(.*?)</p>', html, re.S)
    assert found, html[:500]
    return unescape(found.group(1)).strip()


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_refused_request_is_explained_from_the_catalog(web, rp, lang):
    catalog = _catalog()
    chinese = set(catalog.values())
    for what, url in _refusals(rp).items():
        resp = web.get(url, headers={**HTML, "Accept-Language": lang})
        assert resp.status_code >= 400 and resp.mimetype == "text/html", (what, resp.status_code)
        html = resp.get_data(as_text=True)
        assert f'<html lang="{lang}">' in html, what
        message = _message(html)
        if lang == "zh-CN":
            assert message in chinese and not re.search(r"[A-Za-z]{3,}", message), (what, message)
        else:
            assert message in catalog and catalog[message], (what, message)
        for authlib_word in ("invalid_", "is missing", "Invalid", "not supported", "redirect_uri", "client_id"):
            assert authlib_word not in html.split("<main", 1)[-1], (what, authlib_word)


def test_the_api_still_gets_authlibs_description(web, rp):
    resp = web.post("/token", data={"grant_type": "authorization_code", "code": "nope", "redirect_uri": rp.redirect_uri},
                    headers=rp.basic())
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"


def test_free_text_never_reaches_the_error_page(app):
    """A message that is neither a key nor a catalog msgid (an Authlib description passed by mistake) is not shown."""
    from idp.web.common import render

    with app.test_request_context("/authorize", headers={"Accept-Language": "en"}):
        html, status = render("error.html", 400, message="invalid_request: Missing \"client_id\" in request.")
    assert status == 400 and "Missing" not in html and "client_id" not in html
    assert "Something went wrong on our side." in html
