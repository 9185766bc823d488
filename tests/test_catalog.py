"""The one Chinese catalog (keys/locale/zh_CN/LC_MESSAGES/messages.po) covers every page string of both services.

Babel extracts, as ``make messages`` (``pybabel extract -F keys/locale/babel.cfg -k N_``) does, every
``_()``, ``gettext``, ``ngettext`` and ``N_()`` of idp, certstore and keys, templates included; each must
have a Chinese translation with the same placeholders. The idp's older keyed messages
(``idp.web.i18n.register``) must be in the catalog too.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from keys.locale import CATALOG, format_time, gettext, ngettext, pick_language

ROOT = Path(__file__).resolve().parents[1]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
METHODS = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _catalog():  # type: ignore[no-untyped-def]
    with CATALOG.open("rb") as f:
        return read_po(f, locale="zh_CN")


def _extracted() -> dict[str, list[str]]:
    """msgid → where it is used."""
    found: dict[str, list[str]] = {}
    for package in ("idp", "certstore", "keys"):
        for filename, line, message, _comments, _context in extract_from_dir(
            ROOT / package, method_map=METHODS, options_map={}, keywords=KEYWORDS
        ):
            msgid = message[0] if isinstance(message, tuple) else message  # a plural is filed under its singular
            if msgid:
                found.setdefault(msgid, []).append(f"{package}/{filename}:{line}")
    return found


def test_every_page_string_has_a_chinese_translation() -> None:
    catalog = _catalog()
    used = _extracted()
    assert len(used) > 200, "the extraction found too little: is babel.cfg's mapping still right?"
    def translated(msgid: str) -> bool:
        entry = catalog.get(msgid)
        strings = entry.string if entry is not None and isinstance(entry.string, tuple) else (entry and entry.string,)
        return entry is not None and all(strings)

    missing = {m: where[0] for m, where in used.items() if not translated(m)}
    assert not missing, "no zh translation in keys/locale/zh_CN/LC_MESSAGES/messages.po (make messages, then fill in):\n" + \
        "\n".join(f"  {where}: {m!r}" for m, where in sorted(missing.items(), key=lambda kv: kv[1]))


def test_python_marks_what_it_translates() -> None:
    """``keys.locale.gettext(lang, "…")`` is invisible to extraction (the text is its second argument):
    write ``gettext(lang, N_("…"))`` so the catalog check sees it."""
    unmarked = []
    for package in ("idp", "certstore", "keys"):
        for path in (ROOT / package).rglob("*.py"):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if re.search(r"\bn?gettext\(\s*[A-Za-z_.]+\s*,\s*f?[\"']", line):
                    unmarked.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not unmarked, "\n".join(unmarked)


def test_the_translations_keep_their_placeholders_and_nothing_is_fuzzy() -> None:
    catalog = _catalog()
    wrong, fuzzy = [], []
    for entry in catalog:
        if not entry.id:
            continue
        if entry.fuzzy:
            fuzzy.append(entry.id)
        ids = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        want = set(PLACEHOLDER.findall(ids[0]))
        for s in strings:
            if s and set(PLACEHOLDER.findall(s)) != want:
                wrong.append(f"{ids[0]!r} → {s!r}")
            if s and re.search(r"%[^(]", s.replace("%%", "")):
                wrong.append(f"a bare % in {s!r}")
    assert not wrong, "\n".join(wrong)
    assert not fuzzy, f"fuzzy entries are not used (keys.locale): {fuzzy}"


def test_no_msgid_is_in_the_file_twice() -> None:
    """Helpers append their entries: the same English twice would silently keep only one translation."""
    text = CATALOG.read_text(encoding="utf-8")
    seen: dict[str, int] = {}
    for m in re.finditer(r'^msgid ((?:".*"\n)+)', text, flags=re.M):
        msgid = "".join(re.findall(r'"(.*)"', m.group(1)))
        seen[msgid] = seen.get(msgid, 0) + 1
    twice = sorted(m for m, n in seen.items() if n > 1)
    assert not twice, f"in the catalog twice (keep one entry): {twice}"


def test_the_idps_keyed_messages_are_in_the_catalog() -> None:
    import idp.web

    for info in pkgutil.iter_modules(idp.web.__path__, "idp.web."):
        if info.name != "idp.web.wsgi":
            importlib.import_module(info.name)  # each page area registers its keys on import
    from idp.web.i18n import _MESSAGES, translate

    catalog = _catalog()
    missing = [f"{key}: {msgid!r}" for key, msgid in _MESSAGES.items()
               if not (catalog.get(msgid) and catalog.get(msgid).string)]
    assert not missing, "\n".join(missing)
    assert translate("zh-CN", "login_for", client="X") == "登录以继续访问 X"
    assert translate("en", "login_for", client="X") == "Sign in to continue to X"


def test_the_loader_language_switch_and_times() -> None:
    assert gettext("zh-CN", "Sign in") == "登录" and gettext("en", "Sign in") == "Sign in"
    assert gettext("zh", "Sign in") == "登录"
    assert ngettext("en", "%(num)s issuer", "%(num)s issuers", 2) == "2 issuers"
    # the switch first, then ui_locales in order, then Accept-Language; Chinese by default
    assert pick_language("en", "zh-CN", ["zh"]) == "en"
    assert pick_language(None, "fr en", ["zh-CN"]) == "en"
    assert pick_language(None, None, ["de", "zh-TW"]) == "zh-CN"
    assert pick_language(None, None, []) == "zh-CN"
    # 2026-12-06 12:15 UTC is 20:15 in Beijing, labelled as such
    assert format_time(1796559300, "zh-CN") == "2026-12-06 20:15（北京时间）"
    assert format_time(1796559300, "en") == "2026-12-06 20:15 (China Standard Time)"


def test_a_broken_catalog_stops_the_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import keys.locale as locale

    bad = tmp_path / "messages.po"
    bad.write_text('msgid "Sign in"\nmsgstr "登录"\n\nmsgid "Sign out"\n', encoding="utf-8")  # no msgstr
    monkeypatch.setattr(locale, "CATALOG", bad)
    locale.translations.cache_clear()
    try:
        with pytest.raises(Exception):  # noqa: B017 - babel's parse error, whatever its class
            locale.translations("zh-CN")
    finally:
        monkeypatch.undo()
        locale.translations.cache_clear()
