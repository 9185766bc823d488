"""What the command modules share: building services from the settings in ``ctx.obj``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..settings import CertstoreSettings

if TYPE_CHECKING:
    from ..wiring import Services

__all__ = ["get_services", "settings_of"]


def settings_of(ctx: click.Context) -> CertstoreSettings:
    obj = ctx.find_object(CertstoreSettings)
    if obj is None:  # pragma: no cover - the group always sets it
        raise click.UsageError("certstore settings are missing")
    return obj


def get_services(ctx: click.Context) -> Services:
    """One :class:`Services` per command invocation, closed when the command ends."""
    from ..wiring import build_services  # imported late: ``--help`` needs no PDF stack

    root = ctx.find_root()
    svc = root.meta.get("certstore.services")
    if svc is None:
        svc = build_services(settings_of(ctx))
        root.meta["certstore.services"] = svc
        root.call_on_close(svc.close)
    return svc
