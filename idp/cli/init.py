"""``idp init [--demo]``: everything a fresh idp needs, idempotently.

Without ``--demo``: the database schema (Alembic upgrade), the signing key
sets (``idp-token`` ES256 and ``idp-token-rs256``) and the keyring secrets
(cookie, pairwise salt, PII). With ``--demo`` (``make demo``): a demo citizen
and the two demo portals' clients, with fixed client ids; their secrets and the
citizen's password are generated once and kept in ``YIWANG_HOME/demo-clients.json``
(mode 0600) for ``python -m demo.serve``, which prints how to sign in.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import click

from keys.identifiers import mask_resident_id

from ..settings import IdpSettings

__all__ = ["register", "DEMO_ID_NUMBER", "DEMO_PORTALS", "DEMO_FILE", "demo_file"]

DEMO_ID_NUMBER = "11010519491231002X"
DEMO_NAME = "张三"
DEMO_FILE = "demo-clients.json"
DEMO_PORTALS = (
    # (client id, display name, port, device grant)
    ("demo-portal-a", "示范门户 A · 办事大厅", 5201, False),
    ("demo-portal-b", "示范门户 B · 社保服务", 5202, True),
)
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


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
    for client_id, name, port, device in DEMO_PORTALS:
        base = f"http://127.0.0.1:{port}"
        known = clients.get(client_id, {}).get("client_secret")
        if services.clients.get(client_id) is None:
            grants = ["authorization_code", "refresh_token"] + ([DEVICE_GRANT] if device else [])
            _client, secret = services.clients.add(
                ClientSpec(
                    name=name,
                    client_id=client_id,
                    redirect_uris=[f"{base}/callback"],
                    post_logout_redirect_uris=[f"{base}/"],
                    backchannel_logout_uri=f"{base}/backchannel-logout",
                    grant_types=grants,
                    scopes=["openid", "profile"],
                    first_party=True,
                ),
                actor="idp init --demo",
            )
        elif known:
            secret = known
        else:
            secret = services.clients.rotate_secret(client_id, actor="idp init --demo")
        clients[client_id] = {"client_id": client_id, "client_secret": secret, "name": name, "port": port}
    data["issuer"] = settings.issuer
    _write(path, data)
    return data


def register(group: click.Group) -> None:
    @group.command("init")
    @click.option("--demo", is_flag=True, help="also a demo citizen and the two demo portals' clients")
    @click.pass_obj
    def init(settings: IdpSettings, demo: bool) -> None:
        """Upgrade the schema, create keys and secrets, optionally add demo data."""
        from ..db import upgrade
        from ..services import Services

        services = Services.from_settings(settings)
        try:
            upgrade(services.db)
            click.echo("database schema up to date")
            keyring = services.keyring
            keyring.keyset("idp-token")
            keyring.keyset("idp-token-rs256", algorithm="RS256")
            for name in ("idp-cookie", "pairwise-salt"):
                keyring.secret(name)
            click.echo("signing keys and secrets present")
            if demo:
                data = _seed_demo(settings, services)
                click.echo(
                    f"demo citizen {mask_resident_id(DEMO_ID_NUMBER)} and clients "
                    f"{', '.join(sorted(data['clients']))} ready ({demo_file(settings)})"
                )
        finally:
            services.close()
