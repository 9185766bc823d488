"""``idp clients …``: relying-party registration (issue 3 §2).

``add`` and ``rotate-secret`` print the client secret once; only its SHA-256
is kept, so a lost secret is replaced, never recovered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..audit import AuditLog
from ..ciba.registration import ciba_options
from ..clients import ClientService, ClientSpec, client_to_dict
from ..db import Database
from ..errors import InvalidInput
from ..models import AUTH_METHODS, GRANT_TYPES
from ..oauth.mtls import MTLS_AUTH_METHODS
from ..settings import IdpSettings
from .db import cli_actor, open_database

__all__ = ["register"]


def _audit_log(settings: IdpSettings, db: Database) -> AuditLog:
    # Keyed and anchored like the running idp's, or the records break the chain (issue 11 §6).
    from keys.keyring import open_keyring

    return AuditLog(db, keyring=open_keyring(settings.common.keys), anchor_path=settings.audit_anchor_path)


def _service(settings: IdpSettings) -> ClientService:
    db = open_database(settings)
    return ClientService(db, audit=_audit_log(settings, db), allow_loopback_callbacks=settings.loopback_callbacks_allowed)


def _load_jwks(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidInput(f"--jwks: cannot read {path.name} as JSON ({e})") from None
    if not isinstance(data, dict):
        raise InvalidInput("--jwks: the file must hold a JWKS object")
    return data


def _read_text(path: Path, option: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{option}: cannot read {path.name} ({e})") from None


def _print_secret(client_id: str, secret: str | None) -> None:
    click.echo(f"client_id:     {client_id}")
    if secret is not None:
        click.echo(f"client_secret: {secret}")
        click.echo("store the secret now: it is not shown again", err=True)


def register(group: click.Group) -> None:
    @group.group("clients")
    def clients() -> None:
        """Relying parties (OAuth 2.0 / OpenID Connect clients)."""

    @clients.command("add")
    @click.option("--name", required=True)
    @click.option("--redirect-uri", "redirect_uris", multiple=True, help="repeat for several")
    @click.option("--post-logout-redirect-uri", "post_logout", multiple=True)
    @click.option("--backchannel-logout-uri")
    @click.option("--frontchannel-logout-uri")
    @click.option("--public", is_flag=True, help="no secret (mobile app, SPA, kiosk); PKCE required")
    @click.option("--grant-type", "grant_types", multiple=True, type=click.Choice(GRANT_TYPES))
    @click.option("--scope", "scopes", multiple=True, help="allowed scope; repeat for several")
    @click.option("--subject-type", type=click.Choice(["pairwise", "public"]), default="pairwise", show_default=True)
    @click.option("--sector-identifier", help="host the pairwise sub is computed for")
    @click.option("--first-party", is_flag=True, help="skip the consent page")
    @click.option("--may-receive-id-number", is_flag=True, help="may be granted the id_number scope")
    @click.option("--id-token-alg", type=click.Choice(["ES256", "RS256"]), default="ES256", show_default=True)
    @click.option("--auth-method", type=click.Choice((*AUTH_METHODS, *MTLS_AUTH_METHODS)),
                  help="token endpoint authentication")
    @click.option("--jwks", "jwks_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="public keys for private_key_jwt")
    @click.option("--jwks-uri", help="not supported yet (refused): register the keys with --jwks")
    @click.option("--client-id", help="use this id instead of a random one (demos)")
    @click.option("--cas-service", "cas_service_url", help="register a CAS 3.0 service with this exact service URL")
    @click.option("--cas-logout-url", help="where CAS single logout is POSTed (with --cas-service)")
    @click.option("--json", "as_json", is_flag=True, help="print one JSON document")
    @click.option("--web-origin", "web_origins", multiple=True,
                  help="origin a browser app calls the token/userinfo endpoints from (CORS); repeat for several")
    @click.option("--refresh-idle-seconds", type=int, help="refuse a refresh token unused this long")
    @click.option("--refresh-absolute-seconds", type=int, help="no refresh this long after the first sign-in's tokens")
    @click.option("--tls-subject-dn", help="tls_client_auth: the certificate's subject DN (RFC 4514)")
    @click.option("--tls-san-dns", help="tls_client_auth: a DNS name in the certificate instead of the DN")
    @click.option("--tls-san-uri", help="tls_client_auth: a URI in the certificate instead of the DN")
    @click.option("--tls-san-email", help="tls_client_auth: an e-mail address in the certificate instead of the DN")
    @click.option("--tls-certificate", "tls_certificate_files", multiple=True,
                  type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  help="self_signed_tls_client_auth: the client's certificate (PEM); repeat for several")
    @click.option("--tls-bound-tokens", is_flag=True,
                  help="bind this client's tokens to its TLS client certificate (RFC 8705 section 3)")
    @click.option("--profile", type=click.Choice(["fapi2"]), help="apply the FAPI 2.0 Security Profile")
    @click.option("--dpop-bound", "dpop_bound", is_flag=True,
                  help="issue this client DPoP-bound tokens only (RFC 9449 dpop_bound_access_tokens)")
    @click.option("--audience", type=click.Choice(["staff"]),
                  help="staff: a counter or hotline system, whose sign-in is the staff sign-in (idp.staff)")
    @click.option("--require-acr", type=click.Choice(["urn:yiwang:acr:pwd", "urn:yiwang:acr:2fa",
                                                      "urn:yiwang:acr:passkey"]),
                  help="the lowest authentication level this client accepts (idp.oauth.acr; issue 13)")
    @click.option("--default-acr", "default_acr_values", multiple=True,
                  help="acr values asked for when a request names none (OIDC Registration default_acr_values)")
    @ciba_options  # --ciba-mode, --ciba-notification-endpoint, --ciba-signing-alg, --ciba-user-code, --acting
    @click.pass_obj
    def add(
        settings: IdpSettings,
        name: str,
        redirect_uris: tuple[str, ...],
        post_logout: tuple[str, ...],
        backchannel_logout_uri: str | None,
        frontchannel_logout_uri: str | None,
        public: bool,
        grant_types: tuple[str, ...],
        scopes: tuple[str, ...],
        subject_type: str,
        sector_identifier: str | None,
        first_party: bool,
        may_receive_id_number: bool,
        id_token_alg: str,
        auth_method: str | None,
        jwks_file: Path | None,
        jwks_uri: str | None,
        client_id: str | None,
        cas_service_url: str | None,
        cas_logout_url: str | None,
        as_json: bool,
        web_origins: tuple[str, ...] = (),
        refresh_idle_seconds: int | None = None,
        refresh_absolute_seconds: int | None = None,
        tls_subject_dn: str | None = None,
        tls_san_dns: str | None = None,
        tls_san_uri: str | None = None,
        tls_san_email: str | None = None,
        tls_certificate_files: tuple[Path, ...] = (),
        tls_bound_tokens: bool = False,
        profile: str | None = None,
        dpop_bound: bool = False,
        ciba: Any = None,
        audience: str | None = None,
        require_acr: str | None = None,
        default_acr_values: tuple[str, ...] = (),
    ) -> None:
        """Register a relying party; prints its client id and (once) its secret."""
        spec = ClientSpec(
            name=name,
            redirect_uris=redirect_uris,
            post_logout_redirect_uris=post_logout,
            backchannel_logout_uri=backchannel_logout_uri,
            frontchannel_logout_uri=frontchannel_logout_uri,
            public=public,
            grant_types=grant_types,
            scopes=scopes,
            subject_type=subject_type,
            sector_identifier=sector_identifier,
            first_party=first_party,
            may_receive_id_number=may_receive_id_number,
            id_token_alg=id_token_alg,
            auth_method=auth_method,
            jwks=_load_jwks(jwks_file),
            jwks_uri=jwks_uri,
            client_id=client_id,
            cas_service_url=cas_service_url,
            cas_logout_url=cas_logout_url,
            web_origins=web_origins,
            refresh_idle_seconds=refresh_idle_seconds,
            refresh_absolute_seconds=refresh_absolute_seconds,
            tls_subject_dn=tls_subject_dn,
            tls_san_dns=tls_san_dns,
            tls_san_uri=tls_san_uri,
            tls_san_email=tls_san_email,
            tls_certificates=tuple(_read_text(p, "--tls-certificate") for p in tls_certificate_files),
            tls_bound_tokens=tls_bound_tokens,
            profile=profile,
            dpop_bound_access_tokens=dpop_bound,
            ciba=ciba,
            audience=audience,
            require_acr=require_acr,
            default_acr_values=default_acr_values,
        )
        service = _service(settings)
        try:
            client, secret = service.add(spec, actor=cli_actor())
        finally:
            service.db.dispose()
        if as_json:
            click.echo(json.dumps({**client_to_dict(client), "client_secret": secret}, indent=2))
        else:
            _print_secret(client.client_id, secret)

    @clients.command("list")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def list_(settings: IdpSettings, as_json: bool) -> None:
        """List the registered clients."""
        service = _service(settings)
        try:
            rows = service.list()
        finally:
            service.db.dispose()
        if as_json:
            click.echo(json.dumps([client_to_dict(c) for c in rows], indent=2))
            return
        for c in rows:
            kind = "public" if c.is_public else "confidential"
            flags = [f for f, on in (("first-party", c.first_party), ("id-number", c.may_receive_id_number),
                                     ("cas-service", c.attribute("cas") is not None)) if on]
            click.echo(
                f"{c.client_id}\t{c.name}\t{kind}\t{','.join(c.grant_types)}"
                + (f"\t{','.join(flags)}" if flags else "")
            )

    @clients.command("show")
    @click.argument("client_id")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def show(settings: IdpSettings, client_id: str, as_json: bool) -> None:
        """Show one client's registration."""
        service = _service(settings)
        try:
            client = service.show(client_id)
        finally:
            service.db.dispose()
        data = client_to_dict(client)
        if as_json:
            click.echo(json.dumps(data, indent=2))
            return
        for key, value in data.items():
            if isinstance(value, list):
                value = " ".join(value) or "-"
            click.echo(f"{key}: {'-' if value is None else value}")

    @clients.command("rotate-secret")
    @click.argument("client_id")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def rotate_secret(settings: IdpSettings, client_id: str, as_json: bool) -> None:
        """Replace a client's secret; the old one stops working at once."""
        service = _service(settings)
        try:
            secret = service.rotate_secret(client_id, actor=cli_actor())
        finally:
            service.db.dispose()
        if as_json:
            click.echo(json.dumps({"client_id": client_id, "client_secret": secret}))
        else:
            _print_secret(client_id, secret)

    @clients.command("delete")
    @click.argument("client_id")
    @click.option("--yes", is_flag=True, help="do not ask")
    @click.pass_obj
    def delete(settings: IdpSettings, client_id: str, yes: bool) -> None:
        """Remove a client with its consents and tokens."""
        service = _service(settings)
        try:
            service.show(client_id)
            if not yes:
                click.confirm(f"delete client {client_id} and its consents and tokens?", abort=True)
            service.delete(client_id, actor=cli_actor())
        finally:
            service.db.dispose()
        click.echo(f"deleted {client_id}")
