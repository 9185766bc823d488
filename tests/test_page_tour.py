"""Issue 18 "The citizen": every citizen page, in zh-CN and en, on a phone (390×844) and a desktop (1280×800).

One module-scoped world: ``idp serve`` and ``certstore serve`` for real on
loopback (the idp registers certstore's wallet as a relying party), a
citizen with two certificates (one revoked), a second citizen with a TOTP
second factor. Chromium walks the pages in a loop, per language, and on
each page checks:

* nothing scrolls sideways: ``document.documentElement.scrollWidth <= innerWidth``
  at both sizes;
* axe-core (``axe-playwright-python``, its bundled ``axe.min.js``) finds no
  serious or critical violation;
* no text of the other language is left (:func:`foreign_text`): on a page
  whose ``<html lang>`` is zh-CN, no Latin word outside elements marked
  ``lang="en"``, ``<code>`` and form fields, other than the words a Chinese
  page legitimately carries (PDF, QR, HTTP, the brand, …), code-like tokens
  (with digits, dots, slashes: identifiers, URLs, masked numbers) and the
  values this test itself created (people's, agencies' and services' names);
  on an ``en`` page, no Chinese character outside elements marked
  ``lang="zh…"`` other than those values;
* and, against the catalogs (:func:`catalog_leftovers`): no English msgid of
  keys/locale's catalog on a zh-CN page, no Chinese translation of one on an
  en page. Every page, the wallet included, is in one language: the browser's
  Accept-Language chooses it (the tour's contexts are zh-CN or en-US);
* no whole ID number in the page's text, and none of the world's ID numbers,
  client secrets, CIBA request ids or device codes anywhere in its HTML
  (:func:`exposed`; a TOTP key and recovery codes are the citizen's own, shown
  on purpose).

:func:`_walk` goes through the pages of issue 18; :func:`_walk_later`, in the same
world, through those of later issues (CIBA, passkey step-up, TOTP set-up, the
device flow's confirmation, the staff sign-in, certstore's presentation pages),
with a CIBA client, a kiosk, a staff portal and a clerk, and a citizen per
language holding a passkey (:func:`_later_parties`).

The shared look is one file: each service serves ``yiwang.css`` byte for byte
as ``keys/web_assets/yiwang.css``.

``make screenshots`` (``DOCS_SCREENSHOTS=1``: not a ``YIWANG_`` name, which the
services would refuse as unknown) also writes the pages named in :data:`SHOTS`
to docs/screenshots (phone; :data:`DESKTOP_SHOTS` on a desktop too); a normal
run writes nothing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pyotp
import pytest
import requests

from keys.web_assets import BASE_TEMPLATE, STYLESHEET
from tests.certstore.conftest import PERSON_ID, PSB, issue_args
from tests.conftest import TEST_REDIS_URL, private_database
from tests.demo.processes import free_port, idp_cli, started
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "docs" / "screenshots"
PASSWORD = "demo-password-for-tests"  # noqa: S105 - a test account
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
SHOTS = {"login", "consent", "wallet", "wallet-qr", "verify-valid", "verify-revoked",
         "verify-not-a-qr", "offline", "logout-done"}
"""Pages ``make screenshots`` writes on a phone, in both languages."""
DESKTOP_SHOTS = {"login", "wallet", "verify-valid"}
PAGES = ["idp-404", "idp-error", "login", "second-factor", "consent", "wallet-id-number", "wallet", "wallet-qr",
         "device", "account", "logout", "verify", "verify-empty", "verify-valid", "verify-not-a-qr",
         "verify-revoked", "offline", "offline-result", "signed-out", "logout-done"]
"""Every page the tour visits, in order."""
LATER_PAGES = ["account-totp", "account-recovery-codes", "account-later", "ciba-approve", "ciba-done",
               "ciba-approve-stronger", "passkey-step-up", "device-confirm", "device-done", "device-wrong-code", "logout-error",
               "staff-login", "staff-logout", "vp-holder", "vp-holder-failed", "vp-counter", "vp-request",
               "vp-present", "vp-request-refused", "vp-present-refused"]
"""The pages of later issues (13 to 15: CIBA, passkeys, staff, TOTP self-enrolment, devices, presentations),
in the same world, in order (:func:`_walk_later`)."""

# Values this test puts on pages itself: names are data, not interface text.
DATA = ["电子证照 certstore", "张三丰", "张*丰", "李四", "北京市公安局朝阳分局", "北京市公安局", "北京市", "朝阳区",
        "市民服务中心", "窗口 A7", "窗口 B2", "窗口受理系统", "政务自助终端", "王五", "王*", "赵六", "赵*"]
LATIN_OK = {"pdf", "qr", "http", "https", "tls", "png", "jpeg", "id", "yiwang", "totp", "x", "xxxx", "ok", "yw"}


def _id_number(first17: str) -> str:
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return first17 + "10X98765432"[sum(int(c) * w for c, w in zip(first17, weights, strict=True)) % 11]


TOTP_ID = _id_number("11010519800101001")
LATER = {"zh-CN": (_id_number("11010519900101002"), "王五"), "en": (_id_number("11010519900101003"), "赵六")}
"""A citizen per language for the later pages: each sets up two-step verification and holds a passkey."""
CIBA = "urn:openid:params:grant-type:ciba"
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
STAFF_PASSWORD = "counter-clerk password 1"  # noqa: S105 - a test account
_ID_NUMBER = re.compile(r"(?<![0-9])[1-9][0-9]{16}[0-9Xx](?![0-9])")


def page_text(page: Any) -> tuple[str, str]:
    """The page's language and its visible text outside elements of the other language, code and fields."""
    lang, text = page.evaluate(
        """() => {
          const lang = (document.documentElement.lang || '').toLowerCase();
          const zh = lang.startsWith('zh');
          const skip = (el) => {
            for (let e = el; e && e !== document.documentElement; e = e.parentElement) {
              const l = (e.getAttribute('lang') || '').toLowerCase();
              if (l && (zh ? !l.startsWith('zh') : !l.startsWith('en'))) return true;
              if (['CODE', 'SCRIPT', 'STYLE', 'TEXTAREA', 'NOSCRIPT'].includes(e.tagName)) return true;
              if (e.hidden || getComputedStyle(e).display === 'none') return true;
            }
            return false;
          };
          const out = [];
          const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
          for (let n = walk.nextNode(); n; n = walk.nextNode()) {
            if (n.textContent.trim() && !skip(n.parentElement)) out.push(n.textContent);
          }
          for (const el of document.querySelectorAll('[placeholder]')) {
            if (!skip(el)) out.push(el.getAttribute('placeholder'));
          }
          out.push(document.title);
          return [lang, out.join('\\n')];
        }"""
    )
    return lang, text


def foreign_text(page: Any) -> list[str]:
    """Words of the other language on the page (see the module docstring for what counts)."""
    lang, text = page_text(page)
    for value in DATA:
        text = text.replace(value, " ")
    if lang.startswith("zh"):
        words = []
        for token in re.findall(r"\S+", text):
            if re.search(r"[0-9./:@_=*]", token):
                continue  # code-like: identifiers, URLs, masked numbers, dates
            words += [w for w in re.findall(r"[A-Za-z]{2,}", token) if w.lower() not in LATIN_OK]
        return words
    return re.findall(r"[\u3400-\u9fff]+", text)


def _catalog_phrases() -> tuple[list[str], list[str]]:
    """(English msgids, their Chinese) as fragments worth looking for: the pieces between placeholders,
    English of two words or more, Chinese of three characters or more (shorter ones are in names too)."""
    from babel.messages.pofile import read_po

    from keys.locale import CATALOG

    with CATALOG.open("rb") as f:
        catalog = read_po(f, locale="zh_CN")
    english, chinese = set(), set()
    for entry in catalog:
        if not entry.id or not entry.string or isinstance(entry.id, tuple):
            continue
        english |= {p.strip() for p in re.split(r"%\(\w+\)s", entry.id) if len(p.strip().split()) >= 2}
        chinese |= {p.strip(" ：，。") for p in re.split(r"%\(\w+\)s", str(entry.string))
                    if len(re.findall(r"[\u3400-\u9fff]", p)) >= 3}
    return sorted(english), sorted(chinese)


CATALOG_PHRASES = _catalog_phrases()


def catalog_leftovers(page: Any) -> list[str]:
    """Catalog text of the other language on the page: an untranslated msgid, or a translation on an en page."""
    lang, text = page_text(page)
    for value in DATA:
        text = text.replace(value, " ")
    english, chinese = CATALOG_PHRASES
    return [p for p in (english if lang.startswith("zh") else chinese) if p in text]


def exposed(page: Any, never: list[str]) -> list[str]:
    """What a page must not carry: a whole ID number in its text (only masked ones), or, anywhere in its
    HTML, one of ``never`` (the world's ID numbers, client secrets, request ids)."""
    text = page.evaluate("document.title + '\\n' + document.body.innerText")
    found = [f"an ID number ({m[:3]}…)" for m in _ID_NUMBER.findall(text)
             if m[-1].upper() == _id_number(m[:17])[-1]]
    html = page.content()
    return found + [f"{value[:3]}… ({len(value)} characters)" for value in never if value and value in html]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not Path(CHROMIUM).exists():
        pytest.skip("needs /usr/bin/chromium")
    tmp = tmp_path_factory.mktemp("tour")
    prefix = "t" + uuid.uuid4().hex[:12] + ":"
    with private_database(tmp) as database_url:
        idp_port, cs_port = free_port(), free_port()
        issuer, cs = f"http://127.0.0.1:{idp_port}", f"http://127.0.0.1:{cs_port}"
        env = {
            "YIWANG_HOME": str(tmp / "home"), "YIWANG_DATABASE_URL": database_url, "YIWANG_REDIS_PREFIX": prefix,
            "YIWANG_ALLOW_INSECURE_HTTP": "1", "YIWANG_CERTSTORE_PADES_LEVEL": "B-B", "YIWANG_ISSUER": issuer,
        }
        if TEST_REDIS_URL:
            env["YIWANG_REDIS_URL"] = TEST_REDIS_URL
        idp_cli(env, "init")
        idp_cli(env, "users", "add", "--id-number", PERSON_ID, "--name", "张三丰", "--password-stdin", stdin=PASSWORD)
        idp_cli(env, "users", "add", "--id-number", TOTP_ID, "--name", "李四", "--password-stdin", stdin=PASSWORD)
        idp_cli(env, "users", "totp-enrol", "--id-number", TOTP_ID)
        secret = json.loads(idp_cli(
            env, "clients", "add", "--name", "电子证照 certstore", "--client-id", "certstore",
            "--redirect-uri", f"{cs}/wallet/callback", "--scope", "openid", "--scope", "profile",
            "--scope", "id_number", "--may-receive-id-number", "--json",
            "--backchannel-logout-uri", f"{cs}/wallet/backchannel-logout",
            "--post-logout-redirect-uri", f"{cs}/verify",
        ))["client_secret"]
        later = _later_parties(env, database_url, cs)
        cs_env = {**env, "YIWANG_CERTSTORE_PUBLIC_URL": cs, "YIWANG_CERTSTORE_CLIENT_ID": "certstore",
                  "YIWANG_CERTSTORE_CLIENT_SECRET": secret, "YIWANG_CERTSTORE_VP_COUNTER_AGENCY": PSB}
        certstore = [str(Path(sys.executable).parent / "certstore")]

        def run(*args: str) -> str:
            res = subprocess.run([*certstore, *args], env={**os.environ, **cs_env},  # noqa: S603 - our own command
                                 capture_output=True, text=True, timeout=120, check=False)
            assert res.returncode == 0, res.stderr[-2000:]
            return res.stdout

        run("init", "--demo")
        pdfs, ids = [], []
        for n in range(2):
            pdf = tmp / f"c{n}.pdf"
            out = run(*issue_args("JZZM", pdf))
            ids.append(next(w for w in out.split() if w.startswith("1.2.156.3005.2.")))
            pdfs.append(pdf)
        run("revoke", ids[1], "--reason", "信息有误，已补发新证")
        bin_dir = Path(sys.executable).parent
        specs = [
            ("idp", [str(bin_dir / "idp"), "serve", "--port", str(idp_port)], env, f"{issuer}/healthz"),
            ("certstore", [*certstore, "serve", "--port", str(cs_port)], cs_env, f"{cs}/verify"),
        ]
        try:
            with started(specs, tmp) as procs:
                yield {"issuer": issuer, "cs": cs, "valid": ids[0], "revoked": ids[1], "pdfs": pdfs, "procs": procs,
                       **later, "never": [PERSON_ID, TOTP_ID, secret, *later["never"]]}
        finally:
            if TEST_REDIS_URL:
                import redis

                client = redis.Redis.from_url(TEST_REDIS_URL)
                keys = list(client.scan_iter(match=prefix + "*", count=1000))
                if keys:
                    client.delete(*keys)


def _later_parties(env: dict[str, str], database_url: str, cs: str) -> dict[str, Any]:
    """The later pages' parties: a CIBA client, a kiosk (device flow), a staff portal and a clerk, and a
    citizen per language (:data:`LATER`) holding a passkey.

    The passkey is a row, not a ceremony: the step-up page only asks whether the account has one, and
    WebAuthn would not take the tour's 127.0.0.1 as a relying party id (tests/idp/test_passkeys_browser.py
    does the ceremonies on localhost).
    """
    import sqlalchemy as sa

    ciba = json.loads(idp_cli(env, "clients", "add", "--name", "市民服务中心", "--grant-type", CIBA,
                              "--scope", "openid", "--scope", "profile", "--json"))
    kiosk = json.loads(idp_cli(env, "clients", "add", "--name", "政务自助终端", "--grant-type", DEVICE,
                               "--scope", "openid", "--scope", "profile", "--first-party", "--json"))
    staff_portal = json.loads(idp_cli(
        env, "clients", "add", "--name", "窗口受理系统", "--redirect-uri", f"{cs}/verify", "--grant-type",
        "authorization_code", "--scope", "openid", "--scope", "profile", "--first-party", "--audience", "staff",
        "--json"))
    out = idp_cli(env, "staff", "add", "--username", "clerk.wang", "--name", "王芳", "--kind", "clerk",
                  "--office", "朝阳区政务服务中心 3 号窗口", "--password-stdin", stdin=STAFF_PASSWORD + "\n")
    staff_secret = re.search(r"secret: ([A-Z2-7]+)", out)
    assert staff_secret
    for number, name in LATER.values():
        idp_cli(env, "users", "add", "--id-number", number, "--name", name, "--password-stdin", stdin=PASSWORD)
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            for n, (lang, (_number, name)) in enumerate(LATER.items()):
                conn.execute(sa.text(
                    "INSERT INTO passkey_credential (citizen_id, credential_id, user_handle, public_key, sign_count,"
                    " transports, aaguid, attestation_format, backup_eligible, backed_up, name, created_at)"
                    " SELECT id, :cid, :handle, :key, 0, :transports, :aaguid, 'none', false, false, :pname,"
                    " CURRENT_TIMESTAMP FROM citizen WHERE name = :name"),
                    {"cid": f"tour-passkey-{n}", "handle": f"tour-handle-{n}", "key": b"\xa0",
                     "transports": '["internal"]', "aaguid": "00000000-0000-0000-0000-000000000000",
                     "pname": "我的手机" if lang == "zh-CN" else "My phone", "name": name})
    finally:
        engine.dispose()
    return {"ciba": ciba, "kiosk": kiosk, "staff_portal": staff_portal, "staff_totp": pyotp.TOTP(staff_secret.group(1)),
            "never": [*(number for number, _name in LATER.values()), ciba["client_secret"],
                      kiosk["client_secret"], staff_portal["client_secret"], staff_secret.group(1)]}


class Tour:
    """Checks each page it is shown and collects what is wrong, to report all at once."""

    def __init__(self, lang: str) -> None:
        from axe_playwright_python.sync_playwright import Axe

        self.lang = lang
        self.axe = Axe()
        self.problems: list[str] = []
        self.seen: list[str] = []
        self.shots = os.environ.get("DOCS_SCREENSHOTS") == "1"
        self.never: list[str] = []
        """Values no page may carry (see :func:`exposed`); the tour's own secrets and ID numbers."""

    def check(self, page: Any, name: str) -> None:
        page.wait_for_load_state("load")
        self.seen.append(name)
        where = f"{name} [{self.lang}]"
        for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
            page.set_viewport_size(size)
            wide = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            if wide[0] > wide[1]:
                self.problems.append(f"{where} {label}: scrolls sideways ({wide[0]} > {wide[1]} px)")
            if self.shots and name in (SHOTS if label == "phone" else DESKTOP_SHOTS):
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOTS / f"{name}-{self.lang}-{label}.png"), full_page=True)
        page.set_viewport_size(PHONE)
        results = self.axe.run(page)
        for v in results.response["violations"]:
            if v.get("impact") in ("serious", "critical"):
                targets = [n.get("target") for n in v["nodes"]][:3]
                self.problems.append(f"{where}: axe {v['id']} ({v['impact']}) at {targets}")
        foreign = foreign_text(page)
        if foreign:
            self.problems.append(f"{where}: words of the other language: {foreign[:8]}")
        leftovers = catalog_leftovers(page)
        if leftovers:
            self.problems.append(f"{where}: catalog text of the other language: {leftovers[:5]}")
        shown = exposed(page, self.never)
        if shown:
            self.problems.append(f"{where}: shows what it must not: {shown[:5]}")


def _login(page: Any, issuer: str, who: str) -> None:
    page.wait_for_url(f"{issuer}/authorize*")
    page.fill("input[name=id_number]", who)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def _walk(browser: Any, world: dict[str, Any], lang: str) -> Tour:
    issuer, cs = world["issuer"], world["cs"]
    q = "?lang=en" if lang == "en" else ""
    tour = Tour(lang)
    tour.never = world["never"]
    locale = "zh-CN" if lang == "zh-CN" else "en-US"

    # idp: 404, an invalid request, the second factor (a citizen with TOTP)
    ctx = browser.new_context(locale=locale, viewport=PHONE)
    page = ctx.new_page()
    resp = page.goto(f"{issuer}/no-such-page")
    assert resp is not None and resp.status == 404
    assert page.locator("#error-title").inner_text() == ("找不到此页面" if lang == "zh-CN" else "Page not found")
    tour.check(page, "idp-404")
    page.goto(f"{issuer}/authorize?client_id=nobody&response_type=code")
    tour.check(page, "idp-error")
    page.goto(f"{cs}/wallet")
    page.wait_for_url(f"{issuer}/authorize*")
    tour.check(page, "login")
    _login(page, issuer, TOTP_ID)
    page.wait_for_selector("input[name=code]")
    tour.check(page, "second-factor")
    ctx.close()

    ctx = browser.new_context(locale=locale, viewport=PHONE)
    page = ctx.new_page()
    # a signed-out deep link: sign-in, consent (declined ID number), the page explaining why, again
    page.goto(f"{cs}/wallet/certificates/{world['valid']}/qr")
    _login(page, issuer, PERSON_ID)
    page.wait_for_url(f"{issuer}/consent*")
    tour.check(page, "consent")
    page.click("#allow")
    page.wait_for_selector("#needs-id-number")
    tour.check(page, "wallet-id-number")
    page.click("#ask-again")
    page.wait_for_url(f"{issuer}/consent*")
    page.check("#share_id_number")
    page.click("#allow")
    page.wait_for_url(f"{cs}/wallet")
    tour.check(page, "wallet")
    revoked = page.locator(f"li.cert[data-identifier='{world['revoked']}']")
    assert revoked.locator("a.qr").count() == 0 and "信息有误" in revoked.inner_text()
    page.goto(f"{cs}/wallet/certificates/{world['valid']}/qr")
    page.wait_for_selector("img#qr")
    tour.check(page, "wallet-qr")

    # idp: device, account, the sign-out confirmation
    page.goto(f"{issuer}/device")
    tour.check(page, "device")
    page.goto(f"{issuer}/account")
    tour.check(page, "account")
    page.locator("form[action$='/consents/certstore/revoke'] button").click()  # the next tour asks afresh
    page.wait_for_load_state("load")
    page.goto(f"{issuer}/logout")
    page.wait_for_selector("#confirm-logout")
    tour.check(page, "logout")

    # the verify page: empty, valid, not a QR, revoked; the offline verifier
    page.goto(f"{cs}/verify{q}")
    tour.check(page, "verify")
    page.click("#submit")
    page.wait_for_selector("#error")
    tour.check(page, "verify-empty")
    page.set_input_files("#file", str(world["pdfs"][0]))
    page.click("#submit")
    page.wait_for_selector("#result.verdict.valid")
    tour.check(page, "verify-valid")
    page.fill("#text", "https://example.org/not-a-certificate")
    page.click("#submit")
    page.wait_for_selector("#result.verdict.unreadable")
    tour.check(page, "verify-not-a-qr")
    page.set_input_files("#file", str(world["pdfs"][1]))
    page.click("#submit")
    page.wait_for_selector("#result.verdict.revoked")
    tour.check(page, "verify-revoked")
    page.goto(f"{cs}/verify/offline/")
    page.wait_for_selector("#state[data-ready=yes]", timeout=20_000)
    tour.check(page, "offline")
    page.fill("#text", "https://example.org/not-a-certificate")  # the script's verdict and check line, translated
    page.click("#verify")
    page.wait_for_selector("#result.unreadable li[data-code=format_bad]")
    tour.check(page, "offline-result")

    # signing out of the wallet ends everywhere and says so
    page.goto(f"{cs}/wallet")
    page.click("#logout")
    page.wait_for_url(f"{cs}/verify?*state=signed-out*", timeout=15_000)
    page.wait_for_selector("#signed-out")
    if lang == "en":
        page.goto(f"{cs}/verify?state=signed-out&lang=en")
    tour.check(page, "signed-out")
    page.goto(f"{issuer}/logout")
    page.wait_for_selector("#logout-message")
    tour.check(page, "logout-done")
    ctx.close()
    return tour


def _ciba_request(world: dict[str, Any], who: str, message: str, **extra: str) -> None:
    c = world["ciba"]
    resp = requests.post(world["issuer"] + "/bc-authorize", auth=(c["client_id"], c["client_secret"]), timeout=10,
                         data={"scope": "openid profile", "login_hint": who, "binding_message": message, **extra})
    assert resp.status_code == 200, resp.text
    world["never"].append(resp.json()["auth_req_id"])


def _walk_later(browser: Any, world: dict[str, Any], lang: str) -> Tour:
    issuer, cs = world["issuer"], world["cs"]
    tour = Tour(lang)
    tour.never = world["never"]
    locale = "zh-CN" if lang == "zh-CN" else "en-US"
    who, _name = LATER[lang]

    # the account: two-step verification set up by the citizen, then the recovery codes
    ctx = browser.new_context(locale=locale, viewport=PHONE)
    page = ctx.new_page()
    _ciba_request(world, who, "窗口 A7")
    _ciba_request(world, who, "窗口 B2", acr_values="urn:yiwang:acr:passkey")
    page.goto(f"{issuer}/account")
    page.wait_for_selector("input[name=id_number]")
    sign_in(page, who, PASSWORD)
    page.wait_for_url(f"{issuer}/account*")
    page.fill("#totp_current_password", PASSWORD)
    page.click("#totp-start button[type=submit]")
    page.wait_for_selector("#totp-secret")
    tour.check(page, "account-totp")
    page.fill("#code", pyotp.TOTP(page.locator("#totp-secret").inner_text()).now())
    page.click("#totp-form button[type=submit]")
    page.wait_for_selector("#recovery-codes")
    tour.check(page, "account-recovery-codes")

    # CIBA: a counter's request approved; one that needs a passkey, and the passkey step-up it leads to
    page.goto(f"{issuer}/account")
    page.locator("#ciba-pending-list li a").first.wait_for(timeout=15_000)
    tour.check(page, "account-later")  # with two-step verification on, a passkey and two waiting requests
    links = {text: page.locator("#ciba-pending-list li", has_text=text).locator("a").get_attribute("href")
             for text in ("窗口 A7", "窗口 B2")}
    page.goto(issuer + links["窗口 A7"] if links["窗口 A7"].startswith("/") else links["窗口 A7"])
    page.wait_for_selector("#ciba-binding-message")
    tour.check(page, "ciba-approve")
    page.click("#approve")
    page.wait_for_selector('#ciba-result[data-outcome="approved"]')
    tour.check(page, "ciba-done")
    page.goto(issuer + links["窗口 B2"] if links["窗口 B2"].startswith("/") else links["窗口 B2"])
    page.wait_for_selector("#ciba-needs-sign-in")
    tour.check(page, "ciba-approve-stronger")
    page.click("#ciba-sign-in")
    page.wait_for_url(f"{issuer}/login/passkey*")
    page.wait_for_selector("#passkey-button", state="visible")
    tour.check(page, "passkey-step-up")

    # a kiosk's device code: confirmed and approved; a wrong one
    k = world["kiosk"]
    started = requests.post(f"{issuer}/device/authorize", auth=(k["client_id"], k["client_secret"]),
                            data={"scope": "openid profile"}, timeout=10)
    assert started.status_code == 200, started.text
    world["never"].append(started.json()["device_code"])
    page.goto(f"{issuer}/device")
    page.fill("#user_code", started.json()["user_code"])
    page.click("button[name=decision][value=enter]")
    page.wait_for_selector("#user-code")
    tour.check(page, "device-confirm")
    page.click("#approve")
    page.wait_for_selector("#device-result")
    tour.check(page, "device-done")
    page.goto(f"{issuer}/device?user_code=BCDF-GHJK")
    page.wait_for_selector("#device-error")
    tour.check(page, "device-wrong-code")
    page.goto(f"{issuer}/logout?client_id=nobody")
    page.wait_for_selector("#logout-error")
    tour.check(page, "logout-error")
    ctx.close()

    # the staff sign-in a counter system sends its clerk to, and the staff sign-out
    ctx = browser.new_context(locale=locale, viewport=PHONE)
    page = ctx.new_page()
    portal = world["staff_portal"]
    page.goto(f"{issuer}/authorize?" + urlencode({
        "response_type": "code", "client_id": portal["client_id"], "redirect_uri": f"{cs}/verify",
        "scope": "openid profile", "state": "st-9", "nonce": "n-9", "code_challenge_method": "S256",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}))
    page.wait_for_url(f"{issuer}/staff/login*")
    tour.check(page, "staff-login")
    page.goto(f"{issuer}/staff/logout")
    page.wait_for_selector("#staff-logout-message")
    tour.check(page, "staff-logout")
    ctx.close()

    # certstore: the credentials in this browser (an offer that does not work); the counter asks a
    # wallet, the wallet on the same device shows who asks and what; a link whose request cannot be trusted
    ctx = browser.new_context(locale=locale, viewport=PHONE)
    page = ctx.new_page()
    page.goto(f"{cs}/wallet/holder")
    page.evaluate(SEED_CREDENTIAL, {"credential": _held_credential(cs, who), "vct": f"{cs}/vct/JZZM", "iss": cs})
    page.reload()
    page.wait_for_selector("#holder-list li.holder-credential")
    tour.check(page, "vp-holder")
    page.fill("#holder-offer", f"openid-credential-offer://?credential_offer_uri={cs}/no-such-offer")
    page.fill("#holder-tx", "123456")
    page.click("#holder-add")
    page.wait_for_selector("#holder-receive-status.error")
    tour.check(page, "vp-holder-failed")
    page.goto(f"{cs}/vp/counter?type=JZZM")
    page.wait_for_selector("#create")
    tour.check(page, "vp-counter")
    page.check("input[name=claim][value=address]")
    page.check("input[name=claim][value=holder_code]")
    page.fill("#purpose", "租房" if lang == "zh-CN" else "tenancy")
    page.click("#create")
    page.wait_for_selector("#vp-qr svg")
    tour.check(page, "vp-request")
    link = page.get_attribute("#same-device", "href") or ""
    counter, page = page, ctx.new_page()
    page.goto(link)
    page.wait_for_selector("#present-actions:not(.yw-hidden)", timeout=10_000)
    # the agency's own name in the page's language (DATA lets its Chinese name pass on an en page)
    assert page.inner_text("#present-verifier") == ("北京市公安局朝阳分局" if lang == "zh-CN"
                                                    else "Beijing Public Security Bureau, Chaoyang Branch")
    assert "request_uri=" in (page.get_attribute("a.lang", "href") or "")  # the other language, same request
    tour.check(page, "vp-present")
    page.click("#present-share")  # the tour's credential is not signed by anybody: the counter refuses it
    page.wait_for_selector("#present-status.notice, #present-status.error", timeout=10_000)
    counter.wait_for_selector("#vp-result:not(.yw-hidden)", timeout=10_000)
    tour.check(counter, "vp-request-refused")
    asked = dict(parse_qsl(urlsplit(link).query))
    page.goto(f"{cs}/wallet/present?" + urlencode({**asked, "client_id": "x509_hash:forged"}))
    page.wait_for_selector("#present-status.error", timeout=10_000)
    tour.check(page, "vp-present-refused")
    ctx.close()
    return tour


SEED_CREDENTIAL = """(item) => new Promise((ok, ko) => {
  const r = indexedDB.open("yiwang-holder", 1);
  r.onupgradeneeded = () => { r.result.createObjectStore("keys"); r.result.createObjectStore("credentials", { keyPath: "id" }); };
  r.onerror = ko;
  r.onsuccess = () => {
    const t = r.result.transaction("credentials", "readwrite");
    t.objectStore("credentials").put({ id: "tour", credential: item.credential, vct: item.vct, iss: item.iss,
                                        type: item.vct.split("/vct/").pop(), received: Date.now() });
    t.oncomplete = () => { r.result.close(); ok(true); };
    t.onerror = ko;
  };
})"""
"""A credential put in this browser's wallet as wallet_holder.js keeps one (what the pages show of it is
under test here; receiving one is tests/certstore/test_vp_holder_browser.py's)."""


def _held_credential(cs: str, id_number: str) -> str:
    import base64

    def part(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value, ensure_ascii=False).encode()).rstrip(b"=").decode()

    claims = {"holder_name": "张三丰", "holder_code": id_number, "holder_code_type": "111",
              "address": "北京市朝阳区", "residence_since": "2020-03-01"}
    disclosures = [part([f"salt{n}", name, value]) for n, (name, value) in enumerate(claims.items())]
    jwt = ".".join([part({"alg": "ES256", "typ": "dc+sd-jwt"}), part({"iss": cs, "vct": f"{cs}/vct/JZZM"}), "c2ln"])
    return jwt + "~" + "".join(d + "~" for d in disclosures)


def test_the_shared_look_is_one_file(world: dict[str, Any]) -> None:
    canonical = STYLESHEET.read_bytes()
    for url in (f"{world['issuer']}/static/yiwang.css", f"{world['cs']}/static/yiwang.css",
                f"{world['cs']}/verify/offline/verify.css"):
        resp = requests.get(url, timeout=10)
        assert resp.status_code == 200 and resp.content == canonical, url
    for linked in (ROOT / "idp/web/templates/yiwang_base.html", ROOT / "certstore/web/templates/yiwang_base.html"):
        assert linked.read_bytes() == BASE_TEMPLATE.read_bytes(), linked


def test_the_service_workers_words_are_the_catalogs(world: dict[str, Any]) -> None:
    """The idp's worker words a push notice when no page is open: its words come with it, from the catalog."""
    from keys.locale import gettext

    resp = requests.get(f"{world['issuer']}/static/sw.js", timeout=10)
    assert resp.status_code == 200 and "javascript" in resp.headers["Content-Type"]
    assert resp.headers["Service-Worker-Allowed"] == "/"
    texts = json.loads(re.search(r"^var TEXTS = (.*);$", resp.text, flags=re.M).group(1))  # type: ignore[union-attr]
    for short, lang in (("zh", "zh-CN"), ("en", "en")):
        assert texts[short]["hotline"] == gettext(lang, "A hotline request is waiting for your approval.")
        assert texts[short]["title"] == gettext(lang, "Yiwang")
    assert texts["zh"]["request"] == "有一项请求等待您确认。"


def _tour(world: dict[str, Any], lang: str, walk: Any, pages: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tour = walk(browser, world, lang)
        finally:
            browser.close()
    assert not tour.problems, "\n".join(tour.problems)
    assert tour.seen == pages


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_every_citizen_page(world: dict[str, Any], lang: str) -> None:
    _tour(world, lang, _walk, PAGES)


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_every_later_page(world: dict[str, Any], lang: str) -> None:
    _tour(world, lang, _walk_later, LATER_PAGES)


def test_the_read_log_is_cards_on_a_phone() -> None:
    """The wallet's read log (five columns of Chinese) does not squeeze to one word per line at 390 px."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip("needs /usr/bin/chromium")
    row = ('<tr><td data-label="时间">2026-12-06 10:00</td><td data-label="机构">住房保障门户 Housing portal</td>'
           '<td data-label="方式">经您授权 · with your consent</td><td data-label="用途">住房保障申请材料审核</td>'
           '<td data-label="证照数">2</td></tr>')
    html = ('<html lang="zh-CN"><body><main class="yw-main yw-wide"><table class="reads"><thead><tr>'
            + "<th>时间</th><th>机构</th><th>方式</th><th>用途</th><th>证照数</th></tr></thead><tbody>"
            + row * 3 + "</tbody></table></main></body></html>")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=PHONE)
            page.set_content(html)
            page.add_style_tag(content=STYLESHEET.read_text())
            wide = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert wide[0] <= wide[1], wide
            widths = page.evaluate("[...document.querySelectorAll('.reads td')].map(td => td.getBoundingClientRect().width)")
            assert min(widths) > 250, widths  # each cell a full-width line of its card
            page.set_viewport_size(DESKTOP)
            assert page.evaluate("getComputedStyle(document.querySelector('.reads tr')).display") == "table-row"
        finally:
            browser.close()


def test_the_foreign_text_heuristic_finds_what_it_should() -> None:
    """The heuristic itself: a Latin phrase on a zh-CN page and Chinese on an en page are caught."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip("needs /usr/bin/chromium")
    pages = {
        '<html lang="zh-CN"><body><p>登录 Sign in</p><code>1.2.156</code></body></html>': ["Sign", "in"],
        '<html lang="zh-CN"><body><p>下载 PDF · <span lang="en">Download</span> 1.2.156.3005.2.1</p></body></html>': [],
        '<html lang="en"><body><p>Sign in 登录</p><p>张三丰</p></body></html>': ["登录"],
        '<html lang="en"><body><p>Sign in <a lang="zh-CN">中文</a></p></body></html>': [],
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            for html, expected in pages.items():
                page.set_content(html)
                assert foreign_text(page) == expected, html
            # and the catalogs: an untranslated msgid on a zh-CN page, a translation on an en page
            page.set_content('<html lang="zh-CN"><body><p>登录以继续访问 X：Too many attempts, try again later.</p></body></html>')
            assert "Too many attempts, try again later." in catalog_leftovers(page)
            page.set_content('<html lang="en"><body><p>My certificates: 二维码不可出示</p></body></html>')
            assert "二维码不可出示" in catalog_leftovers(page)
            page.set_content('<html lang="en"><body><p>My certificates</p></body></html>')
            assert catalog_leftovers(page) == []
            # and a whole ID number (not a masked one), or a value the world keeps secret, is caught
            page.set_content(f'<html lang="zh-CN"><body><p>{TOTP_ID}</p><p>110105********0029</p>'
                             '<input type="hidden" value="s3cret-value"></body></html>')
            assert exposed(page, ["s3cret-value"]) == ["an ID number (110…)", "s3c… (12 characters)"]
            page.set_content('<html lang="zh-CN"><body><p>110105********0029 1.2.156.3005.2.1</p></body></html>')
            assert exposed(page, ["s3cret-value"]) == []
            # and axe-core does run: an unlabelled field and an image without text are caught
            from axe_playwright_python.sync_playwright import Axe

            page.set_content('<html lang="en"><body><main><input type="text"><img src="data:,"></main></body></html>')
            found = {v["id"] for v in Axe().run(page).response["violations"] if v["impact"] in ("serious", "critical")}
            assert {"label", "image-alt"} <= found, found
        finally:
            browser.close()
