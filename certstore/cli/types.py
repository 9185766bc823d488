"""``certstore types add FILE`` / ``types list`` / ``types show CODE``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..types import load_type_file
from ._common import get_services

__all__ = ["register"]


def register(group: click.Group) -> None:
    @group.group("types")
    def types() -> None:
        """Certificate types (schemas)."""

    @types.command("add")
    @click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
    @click.pass_context
    def types_add(ctx: click.Context, files: tuple[Path, ...]) -> None:
        """Add or update certificate types from JSON or TOML files."""
        specs = [load_type_file(f) for f in files]  # all checked before any is stored
        reg = get_services(ctx).registry
        for spec in specs:
            created = reg.add_type(spec)
            click.echo(f"{'added' if created else 'updated'} type {spec.code} {spec.name_zh} / {spec.name_en}")

    @types.command("list")
    @click.pass_context
    def types_list(ctx: click.Context) -> None:
        """List certificate types."""
        for t in get_services(ctx).registry.types():
            click.echo(
                f"{t.code}\t{t.holder_code_type}\t{t.validity.describe()}\t{t.name_zh} / {t.name_en}"
            )

    @types.command("show")
    @click.argument("code")
    @click.pass_context
    def types_show(ctx: click.Context, code: str) -> None:
        """Print a type's spec as JSON."""
        spec = get_services(ctx).registry.get_type(code)
        click.echo(json.dumps(spec.to_dict(), ensure_ascii=False, indent=2))
