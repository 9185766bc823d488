"""Languages through gettext, shared by idp and certstore (issue 18 "The citizen").

Every page string is written in English in the code (``_('Sign in')`` in a
template, :func:`gettext` in Python) and translated to Simplified Chinese by
one catalog, ``keys/locale/zh_CN/LC_MESSAGES/messages.po``. The ``.po`` file is
read with Babel when a service starts (no compiled ``.mo`` is committed or
built): :func:`translations` turns it into a :class:`gettext.GNUTranslations`
in memory. Fuzzy entries are not used.

The language is one per page, chosen by :func:`pick_language` in the same
order on both services: an explicit switch (``?lang=``, then the
``yw_lang`` cookie that keeps it), the OIDC ``ui_locales`` of the request,
``Accept-Language``; Simplified Chinese by default.

Times a citizen sees are in China Standard Time, labelled
(:func:`format_time`). Nothing here imports Flask; the web layers plug
:func:`gettext` / :func:`ngettext` into their Jinja environments
(:func:`install_jinja`).

Adding a string: write it in English with ``_()``, then ``make messages``
(``pybabel extract`` + ``pybabel update``) and fill in its ``msgstr``;
``tests/test_catalog.py`` fails on any msgid without a translation.
"""

from __future__ import annotations

import gettext as _gettext
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

__all__ = [
    "LANGUAGES", "DEFAULT", "LANG_COOKIE", "LOCALE_DIR", "CATALOG", "CST",
    "pick_language", "translations", "gettext", "ngettext", "N_", "format_time", "install_jinja",
    "other_language", "normalise",
]

LANGUAGES = ("zh-CN", "en")
DEFAULT = "zh-CN"
LANG_COOKIE = "yw_lang"
"""The cookie both services keep an explicit ``?lang=`` switch in."""
LOCALE_DIR = Path(__file__).resolve().parent
CATALOG = LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "messages.po"
CST = timezone(timedelta(hours=8), "CST")
"""China Standard Time: UTC+8 all year (no daylight saving), so no tz database is needed."""


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark for extraction only"
    """Mark ``message`` for the catalog without translating it here (translated where it is shown)."""
    return message


def normalise(candidate: str | None) -> str | None:
    """``zh``, ``zh-CN``, ``zh_Hans``… → ``zh-CN``; ``en…`` → ``en``; anything else → None."""
    if not candidate:
        return None
    c = candidate.strip().lower()
    if c.startswith("zh"):
        return "zh-CN"
    if c.startswith("en"):
        return "en"
    return None


def pick_language(switch: str | None, ui_locales: str | None, accept: Iterable[str]) -> str:
    """The page's one language: the switch, then ``ui_locales`` (in order), then Accept-Language."""
    for candidate in [switch, *(ui_locales or "").split(), *accept]:
        chosen = normalise(candidate)
        if chosen:
            return chosen
    return DEFAULT


def other_language(lang: str) -> str:
    return "en" if lang == "zh-CN" else "zh-CN"


@cache
def translations(lang: str) -> _gettext.NullTranslations:
    """The catalog of ``lang`` (English: the msgids themselves), read once per process with Babel."""
    if normalise(lang) != "zh-CN":
        return _gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with CATALOG.open("rb") as f:
        catalog = read_po(f, locale="zh_CN", abort_invalid=True)  # a broken line stops the start
    buf = BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return _gettext.GNUTranslations(buf)


def gettext(lang: str, message: str, **values: Any) -> str:
    text = translations(lang).gettext(message)
    return text % values if values else text


def ngettext(lang: str, singular: str, plural: str, n: int, **values: Any) -> str:
    text = translations(lang).ngettext(singular, plural, n)
    return text % {"num": n, **values}


def format_time(value: datetime | int | float | None, lang: str) -> str:
    """``2026-12-06 20:15（北京时间）`` / ``2026-12-06 20:15 (China Standard Time)``; naive datetimes are UTC."""
    if value is None:
        return ""
    if isinstance(value, int | float):
        moment = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, date):
        return value.isoformat()
    else:
        raise TypeError(f"not a time: {type(value).__name__}")
    shown = moment.astimezone(CST).strftime("%Y-%m-%d %H:%M")
    return gettext(lang, N_("%(time)s (China Standard Time)"), time=shown)


def install_jinja(env: Any, current_language: Callable[[], str]) -> None:
    """``_``, ``gettext``, ``ngettext`` (new style: ``_('Hello %(name)s', name=x)``, autoescaped) and the
    ``cst`` filter in a Jinja environment; ``current_language`` says the page's language at render time."""
    env.add_extension("jinja2.ext.i18n")

    def _g(message: str) -> str:
        return translations(current_language()).gettext(message)

    def _n(singular: str, plural: str, n: int) -> str:
        return translations(current_language()).ngettext(singular, plural, n)

    env.install_gettext_callables(_g, _n, newstyle=True)
    env.filters["cst"] = lambda value: format_time(value, current_language())
