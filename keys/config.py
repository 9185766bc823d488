"""Reading ``YIWANG_*`` environment variables into frozen settings objects.

Only entry points (the ``idp`` and ``certstore`` command lines, WSGI
factories) call :func:`read_environment`; library code receives settings
objects and never looks at ``os.environ``.

Every variable a service understands is declared once as a :class:`Variable`
with its parser. A malformed value or an unknown ``YIWANG_*`` name stops
start-up with a :class:`~keys.errors.ConfigurationError` naming the variable,
because a typo such as ``YIWANG_DATABSE_URL`` would otherwise silently fall
back to the embedded default.

Two checks stop a deployment that would run but leak (issue 19 §8, §9):

* ``YIWANG_HOME`` is created ``0700`` whatever the umask, and a home, key
  directory or key-encryption key file that another local user may write to
  (group- or world-writable, or owned by someone other than this user or
  root) is refused: that user could swap the KEK or move the database.
* A plain-http URL (the issuer, certstore's public URL) on a host that is not
  loopback is refused unless ``YIWANG_ALLOW_INSECURE_HTTP`` says so: cookies
  would lose ``Secure`` and client secrets and ID numbers travel in clear.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError

__all__ = [
    "PREFIX",
    "Variable",
    "read_environment",
    "parse_bool",
    "parse_int",
    "parse_url",
    "parse_path",
    "parse_choice",
    "KeySettings",
    "KEY_VARIABLES",
    "COMMON_VARIABLES",
    "CommonSettings",
    "is_loopback_host",
    "check_transport",
    "secure_home",
    "resolve_home",
    "require_home",
]

logger = logging.getLogger(__name__)

PREFIX = "YIWANG_"
# Each service ignores the other service's own namespace; test-only variables
# are read by the test suite, not by the services.
_FOREIGN_NAMESPACES = ("IDP_", "CERTSTORE_", "PORTAL_", "TEST_")


@dataclass(frozen=True)
class Variable:
    """One ``YIWANG_*`` variable."""

    name: str
    """Name without the ``YIWANG_`` prefix, e.g. ``DATABASE_URL``."""
    parse: Callable[[str], Any]
    """Turns the text into the typed value or raises ``ValueError`` saying why."""
    help: str = ""


def parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def parse_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError("expected a whole number") from None


def parse_url(*schemes: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        parts = urlsplit(text.strip())
        scheme = parts.scheme.split("+", 1)[0]
        if scheme not in schemes:
            raise ValueError(f"expected a URL starting with one of {', '.join(schemes)}")
        if scheme in ("http", "https") and not parts.netloc:
            raise ValueError("the URL has no host")
        return text.strip()

    return parse


def _parse_redis_url(text: str) -> str:
    """One server, a Sentinel set or a Cluster (keys.redis_urls, docs/redis-ha.md); malformed refused at start."""
    from .redis_urls import parse_redis_url

    return parse_redis_url(text).url


def parse_path(text: str) -> Path:
    if not text.strip():
        raise ValueError("expected a path")
    return Path(text.strip()).expanduser()


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        t = text.strip().lower()
        if t not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return t

    return parse


def read_environment(
    environ: Mapping[str, str],
    variables: Iterable[Variable],
    *,
    own_namespace: str | None = None,
) -> dict[str, Any]:
    """Parse the declared variables present in ``environ``.

    Returns ``{name: value}`` for the variables that are set (unset ones are
    absent, so the caller applies its defaults). ``own_namespace`` (``"IDP_"``)
    is the service's own sub-prefix: names in it must be declared, names in
    another service's namespace are left to that service.
    """
    declared = {v.name: v for v in variables}
    values: dict[str, Any] = {}
    for full, text in environ.items():
        if not full.startswith(PREFIX):
            continue
        name = full[len(PREFIX) :]
        var = declared.get(name)
        if var is None:
            foreign = any(
                name.startswith(ns) for ns in _FOREIGN_NAMESPACES if ns != own_namespace
            )
            if foreign:
                continue
            raise ConfigurationError(f"{full} is not a setting Yiwang knows", variable=full)
        try:
            values[name] = var.parse(text)
        except ValueError as e:
            raise ConfigurationError(f"{full} is malformed: {e}", variable=full) from None
    return values


@dataclass(frozen=True)
class KeySettings:
    """Where private keys live."""

    home: Path
    """Base directory; software keys go under ``home/keys``."""
    kek_file: Path
    """32-byte key-encryption key; generated on first use in the embedded default."""
    backend: str = "software"
    """``software`` (encrypted files) or ``pkcs11``."""
    pkcs11_module: Path | None = None
    """The PKCS#11 library, e.g. ``/usr/lib/softhsm/libsofthsm2.so``."""
    pkcs11_token_label: str | None = None
    pkcs11_pin: str | None = None

    @property
    def key_dir(self) -> Path:
        return self.home / "keys"

    def __repr__(self) -> str:  # the PIN stays out of logs and tracebacks
        return (
            f"KeySettings(home={str(self.home)!r}, backend={self.backend!r}, "
            f"token={self.pkcs11_token_label!r})"
        )


KEY_VARIABLES = (
    Variable("HOME", parse_path, "data directory (default ./instance)"),
    Variable("KEK_FILE", parse_path, "key-encryption key file (default HOME/kek.bin)"),
    Variable("KEY_BACKEND", parse_choice("software", "pkcs11"), "software or pkcs11"),
    Variable("PKCS11_MODULE", parse_path, "PKCS#11 library path"),
    Variable("PKCS11_TOKEN", str, "PKCS#11 token label"),
    Variable("PKCS11_PIN", str, "PKCS#11 user PIN"),
)

COMMON_VARIABLES = (
    *KEY_VARIABLES,
    Variable("DATABASE_URL", parse_url("sqlite", "postgresql"), "SQLAlchemy URL"),
    Variable("REDIS_URL", _parse_redis_url, "Redis URL: redis://, rediss://, unix://, redis+sentinel://, redis+cluster://"),
    Variable("REDIS_PREFIX", str, "prefix of every Redis key (default yw:)"),
    Variable("ISSUER", parse_url("http", "https"), "the idp's issuer URL"),
    Variable("LOG_LEVEL", parse_choice("debug", "info", "warning", "error"), "log level"),
    Variable("LOG_FORMAT", parse_choice("text", "json"), "log lines as text (default) or one JSON object each"),
    Variable("ACCESS_LOG", parse_bool, "one yiwang.access line per request (default true)"),
    Variable("TRUST_REQUEST_ID", parse_bool,
             "take X-Request-Id from the request (only behind a proxy that sets or overwrites it)"),
    Variable("METRICS_TOKEN", lambda t: _parse_metrics_token(t),
             "bearer token /metrics requires (unset: /metrics answers loopback callers only)"),
    Variable("ALLOW_INSECURE_HTTP", parse_bool,
             "accept plain-http URLs on hosts other than loopback (a closed test network, never production)"),
)


def _parse_metrics_token(text: str) -> str:
    token = text.strip()
    if len(token) < 32 or not token.isascii() or not token.isprintable() or " " in token:
        raise ValueError("expected at least 32 printable ASCII characters without spaces")
    return token


def resolve_home(environ: Mapping[str, str], cwd: Path | None = None) -> Path:
    """The data directory: ``YIWANG_HOME``, else the nearest ``instance`` home from ``cwd`` upwards.

    Without ``YIWANG_HOME`` the first ``instance`` directory holding a key
    directory found in ``cwd`` or one of its parents is the home (as git finds
    ``.git``), so a command gives the same answer from any directory of a
    checkout; when there is none, ``cwd/instance`` (where ``init`` creates it).
    """
    value = environ.get(PREFIX + "HOME", "").strip()
    if value:
        return parse_path(value).resolve()
    start = (cwd or Path.cwd()).resolve()
    for directory in (start, *start.parents):
        candidate = directory / "instance"
        if (candidate / "keys").is_dir():
            return candidate
    return start / "instance"


def require_home(home: Path, *, command: str, existed: bool | None = None) -> None:
    """Refuse (one line) a command other than ``init`` when the home or its keys are not there.

    Such a command never creates a home or keys: it would sign with keys
    nobody trusts, next to the real ones it did not find (issue 18).
    """
    if not (home / "keys").is_dir():
        there = home.exists() if existed is None else existed
        what = "no keys in the Yiwang home" if there else "no Yiwang home"
        raise ConfigurationError(
            f"{what} at {home}: run `{command} init` first, or set YIWANG_HOME to the directory init made",
            variable=PREFIX + "HOME",
        )


def is_loopback_host(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ``::1``: traffic that never leaves the machine."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_transport(url: str, *, variable: str, allow_insecure: bool) -> None:
    """Refuse a plain-http ``url`` on a real host, unless ``allow_insecure`` (then warn once, at start)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or is_loopback_host(parts.hostname or ""):
        return
    if allow_insecure:
        logger.warning(
            "%s is plain http on %s (allowed by YIWANG_ALLOW_INSECURE_HTTP): cookies are not Secure "
            "and secrets travel in clear", variable, parts.hostname,
        )
        return
    raise ConfigurationError(
        f"{variable} is plain http on {parts.hostname}: use https (plain http is for loopback only, "
        "or set YIWANG_ALLOW_INSECURE_HTTP=1 on a closed test network)",
        variable=variable,
    )


def _refuse_if_others_may_write(path: Path, what: str, *, variable: str) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    except OSError as e:
        raise ConfigurationError(f"{what} {path} cannot be read ({e.strerror})", variable=variable) from None
    if st.st_uid not in (os.geteuid(), 0):
        raise ConfigurationError(
            f"{what} {path} belongs to another user (uid {st.st_uid}); it must be this user's", variable=variable
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        fix = "700" if stat.S_ISDIR(st.st_mode) else "600"
        raise ConfigurationError(
            f"{what} {path} is writable by other users (mode {stat.S_IMODE(st.st_mode):o}); chmod {fix} it",
            variable=variable,
        )


def _refuse_open_parent(path: Path, what: str, *, variable: str, owner: bool = False) -> None:
    """Whoever may write to the parent of ``path`` can rename it away and put their own in its place.

    The sticky bit (``/tmp``) keeps others from renaming what is ours; with
    ``owner`` the parent must also belong to this user or root.
    """
    parent = path.parent
    try:
        st = parent.stat()
    except OSError:
        return
    if owner and st.st_uid not in (os.geteuid(), 0):
        raise ConfigurationError(
            f"{what} {path} is in {parent}, which belongs to another user (uid {st.st_uid})", variable=variable
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
        raise ConfigurationError(
            f"{what} {path} is in {parent}, which other users may write to (mode {stat.S_IMODE(st.st_mode):o}); "
            "move it or chmod go-w the directory",
            variable=variable,
        )


def secure_home(home: Path, kek_file: Path | None = None) -> None:
    """Create ``home`` (mode 0700 whatever the umask); refuse it, its key directory or the KEK file if others may write them."""
    if not home.exists():
        missing = [home, *(p for p in home.parents if not p.exists())]
        try:
            for directory in reversed(missing):
                try:
                    os.mkdir(directory, 0o700 if directory == home else 0o755)
                except FileExistsError:
                    continue
                # os.mkdir's mode is filtered by the umask, which may be 000 (issue 19 §8).
                os.chmod(directory, 0o700 if directory == home else 0o755)
        except OSError as e:
            raise ConfigurationError(
                f"YIWANG_HOME {home} cannot be created ({e.strerror})", variable=PREFIX + "HOME"
            ) from None
    _refuse_open_parent(home, "YIWANG_HOME", variable=PREFIX + "HOME")
    _refuse_if_others_may_write(home, "YIWANG_HOME", variable=PREFIX + "HOME")
    _refuse_if_others_may_write(home / "keys", "the key directory", variable=PREFIX + "HOME")
    if kek_file is not None:
        _refuse_open_parent(kek_file, "the key-encryption key file", variable=PREFIX + "KEK_FILE", owner=True)
        _refuse_if_others_may_write(kek_file, "the key-encryption key file", variable=PREFIX + "KEK_FILE")


@dataclass(frozen=True)
class CommonSettings:
    """Settings every Yiwang service shares."""

    home: Path
    keys: KeySettings
    database_url: str | None
    """``None`` means the embedded SQLite file under ``home``."""
    redis_url: str | None
    """``None`` means the in-process stand-in (fakeredis)."""
    redis_prefix: str
    issuer: str
    log_level: str
    allow_insecure_http: bool = False
    """Plain-http URLs on hosts other than loopback are accepted (``YIWANG_ALLOW_INSECURE_HTTP``)."""
    log_format: str = "text"
    """``text`` or ``json`` (``YIWANG_LOG_FORMAT``; :mod:`keys.logs`)."""
    access_log: bool = True
    """One ``yiwang.access`` line per request (``YIWANG_ACCESS_LOG``; a proxy's log may do instead)."""
    trust_request_id: bool = False
    """Take ``X-Request-Id`` from the request instead of making one (``YIWANG_TRUST_REQUEST_ID``)."""
    metrics_token: str | None = None
    """The bearer token ``/metrics`` requires; ``None``: loopback callers only (``YIWANG_METRICS_TOKEN``)."""

    @classmethod
    def from_values(cls, values: Mapping[str, Any], *, default_issuer: str) -> CommonSettings:
        home = Path(values["HOME"]).resolve() if values.get("HOME") else resolve_home({})
        backend = values.get("KEY_BACKEND", "software")
        keys = KeySettings(
            home=home,
            kek_file=values.get("KEK_FILE") or home / "kek.bin",
            backend=backend,
            pkcs11_module=values.get("PKCS11_MODULE"),
            pkcs11_token_label=values.get("PKCS11_TOKEN"),
            pkcs11_pin=values.get("PKCS11_PIN"),
        )
        if backend == "pkcs11":
            for name, value in (
                ("PKCS11_MODULE", keys.pkcs11_module),
                ("PKCS11_TOKEN", keys.pkcs11_token_label),
                ("PKCS11_PIN", keys.pkcs11_pin),
            ):
                if not value:
                    raise ConfigurationError(
                        f"YIWANG_{name} must be set when YIWANG_KEY_BACKEND=pkcs11",
                        variable=PREFIX + name,
                    )
        secure_home(home, keys.kek_file)
        return cls(
            home=home,
            keys=keys,
            database_url=values.get("DATABASE_URL"),
            redis_url=values.get("REDIS_URL"),
            redis_prefix=values.get("REDIS_PREFIX", "yw:"),
            issuer=(values.get("ISSUER") or default_issuer).rstrip("/"),
            log_level=values.get("LOG_LEVEL", "info"),
            allow_insecure_http=bool(values.get("ALLOW_INSECURE_HTTP", False)),
            log_format=values.get("LOG_FORMAT", "text"),
            access_log=bool(values.get("ACCESS_LOG", True)),
            trust_request_id=bool(values.get("TRUST_REQUEST_ID", False)),
            metrics_token=values.get("METRICS_TOKEN"),
        )

    def check_issuer(self, values: Mapping[str, Any]) -> None:
        """At a service's start: a configured plain-http issuer must be on loopback (or allowed)."""
        if values.get("ISSUER"):
            check_transport(self.issuer, variable=PREFIX + "ISSUER", allow_insecure=self.allow_insecure_http)

    def __repr__(self) -> str:
        return f"CommonSettings(home={str(self.home)!r}, backend={self.keys.backend!r})"
