"""``certstore trust export --out FILE | import FILE --anchor ROOT.pem | list | remove REGION`` (issue 6)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InvalidInput
from ..remote import FetchFailed, TooLarge, fetch_capped, loopback_allowed
from ._common import get_services, settings_of

__all__ = ["register"]


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"cannot read the {what} {path}: {e.strerror}", field=what) from None


TRUST_LIST_MAX_BYTES = 4 * 1024 * 1024
"""A signed trust list is far smaller; a larger answer is refused, not truncated."""


def _fetch(url: str, *, allow_loopback: bool) -> bytes:
    """Download a trust list (https; loopback only in the demo); its signature, not the transport, is what is trusted."""
    try:
        got = fetch_capped(url, TRUST_LIST_MAX_BYTES, timeout=(5.0, 15.0), allow_loopback=allow_loopback)
    except FetchFailed as e:
        raise InvalidInput(f"cannot fetch the trust list ({e})", field="file") from None
    except TooLarge:
        raise InvalidInput(
            f"the trust list at that URL is larger than {TRUST_LIST_MAX_BYTES // (1024 * 1024)} MiB; refused", field="file"
        ) from None
    if got.status != 200:
        raise InvalidInput(f"fetching the trust list answered HTTP {got.status} (redirects are not followed)", field="file")
    return got.body


def register(group: click.Group) -> None:
    @group.group("trust")
    def trust() -> None:
        """Regional trust lists: export this region's, import other regions'."""

    @trust.command("export")
    @click.option("--out", "out", required=True, type=click.Path(path_type=Path, dir_okay=False), help="file to write ('-' for stdout)")
    @click.pass_context
    def export(ctx: click.Context, out: Path) -> None:
        """Write this region's trust list, signed by the region root."""
        store = get_services(ctx).certificates.trust_store
        text = store.export()
        if str(out) == "-":
            click.echo(text)
            return
        tmp = out.with_name(out.name + ".tmp")
        try:
            tmp.write_text(text + "\n")
            tmp.replace(out)
        except OSError as e:
            raise InvalidInput(f"cannot write {out}: {e.strerror}", field="out") from None
        doc = store.local_document()
        click.echo(f"wrote the trust list of region {doc.region} ({len(doc.issuers)} issuers) to {out}")

    @trust.command("import")
    @click.argument("file")
    @click.option("--anchor", required=True, type=click.Path(path_type=Path, dir_okay=False), help="the other region's root certificate (PEM), obtained out of band")
    @click.option("--types", "types", default="", help="the certificate types agreed with that region, comma-separated (required)")
    @click.option(
        "--uscc-area", "areas", multiple=True,
        help="division-code prefix its agencies may be registered under (repeatable; default: the region's own code)",
    )
    @click.pass_context
    def import_(ctx: click.Context, file: str, anchor: Path, types: str, areas: tuple[str, ...]) -> None:
        """Verify and import another region's trust list (a file, or the URL of its /trust-list.jwt).

        Refused whole if any issuer in it vouches for a type not agreed, was
        registered outside the agreed area, or carries a credit code of this
        region's agencies or of another imported region's.
        """
        agreed = [t for t in types.split(",") if t.strip()]
        text = (
            _fetch(file, allow_loopback=loopback_allowed(settings_of(ctx)))
            if file.startswith(("https://", "http://"))
            else _read(Path(file), "file")
        )
        try:
            decoded = text.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidInput(f"{file} is not a trust list (not ASCII text)", field="file") from None
        doc = get_services(ctx).certificates.trust_store.import_(
            decoded, _read(anchor, "anchor"), types=agreed, uscc_areas=areas or None
        )
        click.echo(
            f"imported the trust list of region {doc.region} {doc.region_name}: {len(doc.issuers)} issuers, "
            f"valid until {doc.next_update.date().isoformat()}"
        )

    @trust.command("list")
    @click.pass_context
    def list_(ctx: click.Context) -> None:
        """The merged trust list verifiers here use: local issuers and imported regions."""
        svc = get_services(ctx).certificates
        merged = svc.trust_store.merged(svc.trust_list())
        for issuer in sorted(merged.trust_list, key=lambda i: (i.region, i.uscc)):
            where = merged.status_base.get(issuer.kid, "-")
            click.echo(
                f"{issuer.region} {issuer.uscc} {issuer.name} types={','.join(sorted(issuer.allowed_types))} "
                f"kid={issuer.kid.hex()} until={issuer.not_after.date().isoformat()} status-lists={where}"
            )
        rows = svc.trust_store.import_rows()
        for r in rows:
            click.echo(f"imported region {r.region} {r.region_name}: next update {r.next_update.date().isoformat()}")

    @trust.command("remove")
    @click.argument("region")
    @click.pass_context
    def remove(ctx: click.Context, region: str) -> None:
        """Stop trusting an imported region."""
        if not get_services(ctx).certificates.trust_store.remove(region.strip()):
            raise InvalidInput(f"no trust list of region {region[:12]} is imported", field="region")
        click.echo(f"removed region {region}")
