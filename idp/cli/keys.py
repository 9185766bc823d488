"""``idp keys list`` and ``idp keys rotate``: the idp's token-signing keys.

A key set is created (with an active and a next key) when the idp first
needs it; ``rotate`` moves every key one step through next → active →
retiring → retired (see ``keys.lifecycle``) and is atomic. The JWKS the idp
serves lists next, active and retiring keys, so rotating once per JWKS cache
lifetime (or more rarely) never breaks a relying party.
"""

from __future__ import annotations

import json
from typing import Any

import click

from keys.keyring import KeyInfo, open_keyring

from ..errors import NotFound
from ..settings import IdpSettings

__all__ = ["register"]

_DEFAULT_PURPOSE = "idp-token"


def _time(value: Any) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def _as_json(info: KeyInfo) -> dict[str, Any]:
    return {
        "kid": info.kid,
        "algorithm": info.algorithm,
        "state": info.state.value,
        "backend": info.backend,
        "created_at": _time(info.created_at),
        "activated_at": _time(info.activated_at),
        "retired_at": _time(info.retired_at),
    }


def _print_table(purpose: str, infos: list[KeyInfo]) -> None:
    click.echo(f"key set {purpose}")
    click.echo(f"{'state':<9} {'alg':<6} {'kid':<44} {'created':<20} {'activated':<20} retired")
    for i in infos:
        click.echo(
            f"{i.state.value:<9} {i.algorithm:<6} {i.kid:<44} {_time(i.created_at) or '-':<20} "
            f"{_time(i.activated_at) or '-':<20} {_time(i.retired_at) or '-'}"
        )


@click.group("keys")
def keys_group() -> None:
    """Token-signing keys: list them, rotate them."""


@keys_group.command("list")
@click.option("--purpose", default=_DEFAULT_PURPOSE, show_default=True, help="Key set to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def list_keys(settings: IdpSettings, purpose: str, as_json: bool) -> None:
    """Show every key of a key set with its state (retired keys included)."""
    keyring = open_keyring(settings.common.keys)
    if purpose not in keyring.purposes():
        raise NotFound(f"there is no key set {purpose!r} yet (it is created on first use)")
    infos = keyring.keyset(purpose).list()
    if as_json:
        click.echo(json.dumps({"purpose": purpose, "keys": [_as_json(i) for i in infos]}, indent=2))
    else:
        _print_table(purpose, infos)


@keys_group.command("rotate")
@click.option("--purpose", default=_DEFAULT_PURPOSE, show_default=True, help="Key set to rotate.")
@click.pass_obj
def rotate_keys(settings: IdpSettings, purpose: str) -> None:
    """Promote the next key to active and make a new next key (atomic)."""
    keyset = open_keyring(settings.common.keys).keyset(purpose)
    before = keyset.active().kid
    keyset.rotate()
    click.echo(f"rotated {purpose}: {before} is retiring, {keyset.active().kid} is active")
    _print_table(purpose, keyset.list())


def register(group: click.Group) -> None:
    group.add_command(keys_group)
