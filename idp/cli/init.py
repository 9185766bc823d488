"""``idp init [--demo]``: everything a fresh idp needs, idempotently.

Without ``--demo``: the database schema (Alembic upgrade), the signing key
sets (``idp-token`` ES256 and ``idp-token-rs256``) and the keyring secrets
(cookie, pairwise salt, PII). With ``--demo`` (``make demo``): a demo citizen,
the two demo portals' clients, certstore's own client (the citizen's wallet
signs in through it and certstore introspects citizens' tokens with it) and
the three demo agencies' machine clients (``client_credentials``,
``certs:issue``), all with fixed client ids; and the counter channel
(issue 13, docs/counter-guide.md): a staff account (a clerk at a named
counter, password and TOTP secret) and the counter system's client
``demo-counter`` — a staff portal (``audience: "staff"``, the clerk signs in
through it) that asks citizens through CIBA (poll mode, acting ``clerk``); one
client, because an actor token is accepted only from the client it was issued
to. Their secrets, the citizen's and the clerk's passwords and the clerk's
TOTP secret are generated once and kept in ``YIWANG_HOME/demo-clients.json``
(mode 0600) for ``python -m demo.serve``, which hands certstore its client
credentials and prints how to sign in and how to issue with curl.

idp never imports certstore: the agency client ids below are the ones
``certstore init --demo`` links its demo issuers to (a test checks they agree).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from keys.identifiers import mask_resident_id

from ..settings import IdpSettings

__all__ = [
    "register",
    "DEMO_ID_NUMBER",
    "DEMO_NAME",
    "DEMO_PORTALS",
    "DEMO_AGENCIES",
    "DEMO_STAFF",
    "COUNTER_CLIENT_ID",
    "COUNTER_REDIRECT_URI",
    "CERTSTORE_CLIENT_ID",
    "CERTSTORE_URL",
    "DEMO_FILE",
    "demo_file",
    "owner_only_sqlite",
]

DEMO_ID_NUMBER = "11010519491231002X"
DEMO_NAME = "张三"
DEMO_FILE = "demo-clients.json"
DEMO_PORTALS = (
    # (client id, display name, port, device grant, scopes, first party). Portal B is
    # another agency's portal: the idp asks the citizen's consent once for their name
    # and again before it may read their certificates from certstore (certs:read).
    ("demo-portal-a", "示范门户 A · 办事大厅", 5201, False, ("openid", "profile"), True),
    ("demo-portal-b", "示范门户 B · 社保服务", 5202, True, ("openid", "profile", "certs:read"), False),
)
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CERTSTORE_CLIENT_ID = "certstore"
"""Also the ``aud`` of ``certs:*`` tokens (the provider's ``scope_audiences``), so
certstore may introspect the citizens' tokens it is handed."""
CERTSTORE_URL = "http://127.0.0.1:5100"
WALLET_ISSUANCE_CLIENT_ID = "demo-wallet"
"""The public client a wallet uses to receive credentials from certstore (OpenID4VCI, issue 15)."""
DEMO_AGENCIES = (
    # (client id, display name): certstore's demo issuers are linked to these ids
    ("demo-psb", "北京市公安局朝阳分局 (demo)"),
    ("demo-amr", "北京市朝阳区市场监督管理局 (demo)"),
    ("demo-university", "北京示范大学 (demo)"),
)
DEMO_STAFF = ("clerk.wang", "王芳", "clerk", "朝阳区政务服务中心 3 号窗口")
"""(username, display name, kind, office) of the demo clerk."""
COUNTER_CLIENT_ID = "demo-counter"
COUNTER_REDIRECT_URI = "http://127.0.0.1:5203/callback"
"""Nothing listens there: the clerk's browser shows the code in its address bar, for curl."""
CIBA_GRANT = "urn:openid:params:grant-type:ciba"


@contextlib.contextmanager
def owner_only_sqlite(url: str) -> Iterator[None]:
    """A SQLite database file (it holds password hashes) is created 0600, and tightened if it exists."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    path = Path(u.database) if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:") else None
    old = os.umask(0o077) if path is not None else None
    try:
        yield
    finally:
        if old is not None:
            os.umask(old)
        if path is not None and path.exists():
            os.chmod(path, 0o600)


def demo_file(settings: IdpSettings) -> Path:
    return settings.home / DEMO_FILE


def _read(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, ensure_ascii=False, indent=2)
    os.replace(tmp, path)


def _ensure_client(services: Any, spec: Any, known: str | None) -> str:
    """The client's secret: registered now, as kept in the demo file, or rotated if lost.

    A demo client registered by an older ``init --demo`` with other grants or
    scopes is registered afresh (demo data only: its consents and tokens go).
    """
    existing = services.clients.get(spec.client_id)
    if existing is not None and (
        not set(spec.scopes) <= set(existing.scopes)
        or not set(spec.grant_types or ()) <= set(existing.grant_types)
        or bool(existing.first_party) != spec.first_party
    ):
        services.clients.delete(spec.client_id, actor="idp init --demo")
        existing = None
    if existing is None:
        _client, secret = services.clients.add(spec, actor="idp init --demo")
        return str(secret)
    if known:
        return known
    return str(services.clients.rotate_secret(spec.client_id, actor="idp init --demo"))


def _seed_demo(settings: IdpSettings, services: Any) -> dict[str, Any]:
    from ..clients import ClientSpec

    path = demo_file(settings)
    data = _read(path)
    citizen = services.accounts.find_by_id_number(DEMO_ID_NUMBER)
    password = data.get("citizen", {}).get("password")
    if citizen is None:
        password = password or secrets.token_urlsafe(9)
        services.accounts.add(DEMO_ID_NUMBER, DEMO_NAME, password, actor="idp init --demo")
    elif not password:
        password = secrets.token_urlsafe(9)
        services.accounts.set_password(DEMO_ID_NUMBER, password, actor="idp init --demo")
    data["citizen"] = {"id_number": DEMO_ID_NUMBER, "name": DEMO_NAME, "password": password}
    clients = data.setdefault("clients", {})
    for client_id, name, port, device, scopes, first_party in DEMO_PORTALS:
        base = f"http://127.0.0.1:{port}"
        grants = ["authorization_code", "refresh_token"] + ([DEVICE_GRANT] if device else [])
        spec = ClientSpec(
            name=name,
            client_id=client_id,
            redirect_uris=[f"{base}/callback"],
            post_logout_redirect_uris=[f"{base}/"],
            backchannel_logout_uri=f"{base}/backchannel-logout",
            grant_types=grants,
            scopes=list(scopes),
            first_party=first_party,
        )
        secret = _ensure_client(services, spec, clients.get(client_id, {}).get("client_secret"))
        clients[client_id] = {"client_id": client_id, "client_secret": secret, "name": name, "port": port}
    # certstore: a relying party (the wallet) that may receive the ID number and,
    # being the audience of certs:* tokens, may introspect the citizens' tokens.
    spec = ClientSpec(
        name="电子证照库 · 我的证照 (certstore)",
        client_id=CERTSTORE_CLIENT_ID,
        redirect_uris=[f"{CERTSTORE_URL}/wallet/callback"],
        post_logout_redirect_uris=[f"{CERTSTORE_URL}/verify"],
        backchannel_logout_uri=f"{CERTSTORE_URL}/wallet/backchannel-logout",
        grant_types=["authorization_code"],
        scopes=["openid", "profile", "id_number"],
        first_party=True,
        may_receive_id_number=True,
    )
    secret = _ensure_client(services, spec, data.get("certstore", {}).get("client_secret"))
    data["certstore"] = {"client_id": CERTSTORE_CLIENT_ID, "client_secret": secret, "url": CERTSTORE_URL}
    # The wallet's OpenID4VCI client (issue 15 §1): public (PKCE), it signs the citizen in for
    # certstore's credential endpoint with the scope of a credential configuration (certs:read:<TYPE>).
    wallet = ClientSpec(
        name="电子证照钱包 · 领取凭证 (OpenID4VCI)", client_id=WALLET_ISSUANCE_CLIENT_ID, public=True,
        redirect_uris=[f"{CERTSTORE_URL}/wallet/vci/callback"], grant_types=["authorization_code"],
        scopes=["openid", *(f"certs:read:{t}" for t in ("JZZM", "YYZZ", "BYZS"))], first_party=True,
    )
    if services.clients.get(WALLET_ISSUANCE_CLIENT_ID) is None:
        services.clients.add(wallet, actor="idp init --demo")
    data["wallet_issuance"] = {"client_id": WALLET_ISSUANCE_CLIENT_ID, "redirect_uri": wallet.redirect_uris[0]}
    agencies = data.setdefault("agencies", {})
    for client_id, name in DEMO_AGENCIES:
        spec = ClientSpec(
            name=name,
            client_id=client_id,
            grant_types=["client_credentials"],
            scopes=["certs:issue"],
        )
        secret = _ensure_client(services, spec, agencies.get(client_id, {}).get("client_secret"))
        agencies[client_id] = {"client_id": client_id, "client_secret": secret, "name": name}
    _seed_counter(services, data)
    data["issuer"] = settings.issuer
    _write(path, data)
    return data


def _seed_counter(services: Any, data: dict[str, Any]) -> None:
    """The demo clerk (kept, or given a new password and TOTP secret if the file lost them) and the counter client."""
    import pyotp
    import sqlalchemy as sa

    from ..ciba.registration import CibaRegistration
    from ..clients import ClientSpec
    from ..staff.accounts import StaffService
    from ..staff.models import StaffAccount

    username, name, kind, office = DEMO_STAFF
    staff = StaffService.of(services)
    known = data.get("staff") or {}
    exists = any(v.username == username for v in staff.list())
    password, secret = known.get("password"), known.get("totp_secret")
    if not exists:
        password = secrets.token_urlsafe(9)
        _view, enrolment = staff.add(username, name, kind, office, password, actor="idp init --demo")
        secret = enrolment.secret
    elif not (password and secret):
        password = secrets.token_urlsafe(9)
        secret = staff.reset_second_factor(username, reason="demo file lost it", actor="idp init --demo").secret
        with services.db.session() as s:
            s.execute(sa.update(StaffAccount).where(StaffAccount.username == username)
                      .values(password_hash=services.hasher.hash(password)))
    uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=staff.totp_issuer)
    data["staff"] = {"username": username, "name": name, "kind": kind, "office": office,
                     "password": password, "totp_secret": secret, "totp_uri": uri}
    spec = ClientSpec(
        name="示范窗口受理系统 · 朝阳区政务服务中心", client_id=COUNTER_CLIENT_ID,
        redirect_uris=[COUNTER_REDIRECT_URI], grant_types=["authorization_code", CIBA_GRANT],
        scopes=["openid", "profile"], first_party=True, audience="staff",
        ciba=CibaRegistration(mode="poll", acting="clerk"),
    )
    secret = _ensure_client(services, spec, (data.get("counter") or {}).get("client_secret"))
    data["counter"] = {"client_id": COUNTER_CLIENT_ID, "client_secret": secret, "name": spec.name,
                       "redirect_uri": COUNTER_REDIRECT_URI}


def register(group: click.Group) -> None:
    @group.command("init")
    @click.option("--demo", is_flag=True, help="also a demo citizen, a demo clerk and the demo clients (portals, certstore, agencies, counter)")
    @click.pass_obj
    def init(settings: IdpSettings, demo: bool) -> None:
        """Upgrade the schema, create keys and secrets, optionally add demo data."""
        from ..db import upgrade
        from ..services import Services

        services = Services.from_settings(settings)
        try:
            with owner_only_sqlite(settings.database_url):
                upgrade(services.db)
            click.echo("database schema up to date")
            keyring = services.keyring
            keyring.keyset("idp-token")
            keyring.keyset("idp-token-rs256", algorithm="RS256")
            keyring.keyset("idp-vapid", algorithm="ES256")  # Web Push application server key (idp.push.vapid)
            for name in ("idp-cookie", "pairwise-salt"):
                keyring.secret(name)
            click.echo("signing keys and secrets present")
            if demo:
                data = _seed_demo(settings, services)
                ids = [*sorted(data["clients"]), data["certstore"]["client_id"], *sorted(data["agencies"]),
                       data["counter"]["client_id"]]
                click.echo(
                    f"demo citizen {mask_resident_id(DEMO_ID_NUMBER)}, clerk {DEMO_STAFF[0]} and clients "
                    f"{', '.join(ids)} ready ({demo_file(settings)})"
                )
        finally:
            services.close()
