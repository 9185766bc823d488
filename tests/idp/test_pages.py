"""Login pages: languages, ID-number messages, throttling, CSRF, CSP, input limits, no 500s."""

from __future__ import annotations

from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import ID_NUMBER, PASSWORD, csrf_of, make_id


def _login_page(web, **headers):
    return web.get("/login", headers=headers)


def test_login_page_is_chinese_by_default_and_english_on_request(web):
    zh = _login_page(web).get_data(as_text=True)
    assert 'lang="zh-CN"' in zh and "居民身份证号码" in zh
    assert 'name="id_number"' in zh and 'name="password"' in zh
    en = _login_page(web, **{"Accept-Language": "en-GB,en;q=0.9"}).get_data(as_text=True)
    assert 'lang="en"' in en and "Resident ID number" in en
    switched = web.get("/login?lang=en")
    assert "Resident ID number" in switched.get_data(as_text=True)
    assert "yw_lang=en" in switched.headers.get("Set-Cookie", "") or any(
        "yw_lang=en" in c for c in switched.headers.getlist("Set-Cookie"))
    assert "Resident ID number" in web.get("/login").get_data(as_text=True)  # remembered


def test_ui_locales_picks_english(web, rp):
    resp = web.get("/authorize", query_string={"response_type": "code", "client_id": rp.client_id,
                                               "redirect_uri": rp.redirect_uri, "scope": "openid",
                                               "ui_locales": "en", "code_challenge": "a" * 43,
                                               "code_challenge_method": "S256"})
    assert resp.status_code == 200 and "Sign in" in resp.get_data(as_text=True)  # the login form, in English
    assert 'lang="en"' in resp.get_data(as_text=True)


def test_security_headers_on_pages(web):
    resp = _login_page(web)
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert resp.headers["Cache-Control"] == "no-store"
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "<script>" not in resp.get_data(as_text=True)  # no inline script


def _post_login(web, id_number, password=PASSWORD, csrf=None):
    page = _login_page(web)
    token = csrf if csrf is not None else csrf_of(page.get_data(as_text=True))
    return web.post("/login", data={"csrf_token": token, "id_number": id_number, "password": password},
                    headers={"Accept-Language": "en"})


def test_check_character_message(web):
    wrong = ID_NUMBER[:17] + ("1" if ID_NUMBER[17] != "1" else "2")
    resp = _post_login(web, wrong)
    assert resp.status_code == 400
    assert "check character does not match" in resp.get_data(as_text=True)
    assert "has 18 characters; you entered 5" in _post_login(web, "12345").get_data(as_text=True)
    assert "real date of birth" in _post_login(web, make_id("11010519491332002")).get_data(as_text=True)


def test_one_message_for_wrong_number_or_password(web, citizen):
    unknown = _post_login(web, make_id("11010519800101001"))
    wrong_pw = _post_login(web, ID_NUMBER, "not the password")
    assert unknown.status_code == wrong_pw.status_code == 401
    msg = "The ID number or the password is wrong."
    assert msg in unknown.get_data(as_text=True) and msg in wrong_pw.get_data(as_text=True)


def test_throttle_lock_message_does_not_reveal_account(web, citizen):
    texts = []
    for number in (ID_NUMBER, make_id("11010519800101001")):
        resp = None
        for _ in range(12):
            resp = _post_login(web, number, "bad password")
            if resp.status_code == 429:
                break
        assert resp.status_code == 429
        texts.append(resp.get_data(as_text=True))
        assert "Too many attempts, try again in" in texts[-1]


def test_csrf_rejected(web, citizen):
    assert _post_login(web, ID_NUMBER, csrf="0" * 64).status_code == 400
    fresh = web.application.test_client()  # no CSRF cookie at all
    resp = fresh.post("/login", data={"csrf_token": "x", "id_number": ID_NUMBER, "password": PASSWORD})
    assert resp.status_code == 400


def test_successful_login_sets_secure_session_cookie_and_goes_to_account(web, citizen):
    resp = _post_login(web, ID_NUMBER)
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/account")
    cookies = resp.headers.getlist("Set-Cookie")
    sso = [c for c in cookies if c.startswith("yw_sso=")]
    assert sso and "HttpOnly" in sso[0] and "SameSite=Lax" in sso[0]
    page = web.get("/account")
    assert page.status_code == 200 and "Active sessions" in page.get_data(as_text=True) or "登录设备" in page.get_data(as_text=True)


def test_oversized_and_non_utf8_inputs(web, rp):
    big = web.post("/token", data={"grant_type": "client_credentials", "x": "a" * 3000}, headers=rp.basic())
    assert big.status_code == 400 and big.get_json()["error"] == "invalid_request"
    huge = web.post("/token", data=b"a=" + b"b" * 70000, content_type="application/x-www-form-urlencoded")
    assert huge.status_code == 413
    latin = web.post("/token", data=b"grant_type=client_credentials&x=%ff%fe",
                     content_type="application/x-www-form-urlencoded", headers=rp.basic())
    assert latin.status_code == 400 and latin.get_json()["error"] == "invalid_request"
    q = web.get("/authorize?client_id=%ff%fe")
    assert q.status_code == 400


def test_unexpected_error_is_a_clean_500(app, web, monkeypatch):
    runtime = app.extensions["yiwang"]

    def boom(*a, **k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(runtime.provider.tokens, "jwks", boom)
    resp = web.get("/jwks.json")
    assert resp.status_code == 500
    assert b"secret internals" not in resp.data and b"Traceback" not in resp.data


def test_redis_outage_is_503(app, web, rp, monkeypatch):
    import redis

    runtime = app.extensions["yiwang"]

    def down(*a, **k):
        raise redis.exceptions.ConnectionError("down")

    monkeypatch.setattr(runtime.provider.par, "push", down)
    resp = web.post("/par", data={"response_type": "code", "redirect_uri": rp.redirect_uri,
                                  "code_challenge": "a" * 43, "code_challenge_method": "S256"},
                    headers=rp.basic())
    assert resp.status_code == 503 and resp.mimetype == "application/problem+json"
