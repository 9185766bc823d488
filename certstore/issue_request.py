"""What an agency asks to issue, and the rules it must pass before anything is signed.

Owns :class:`IssueRequest` (built from untrusted JSON), :class:`IssueResult`,
and :func:`prepare`: the issuer's rights, the type's schema, the holder's
code and name, the paper serial, the validity period, and the keyed
fingerprint of the normalised request that ``Idempotency-Key`` compares
(an HMAC: the request holds an ID number, whose small space a plain hash
would not protect).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from keys.keyring import Keyring

from .dates import china_date
from .errors import Forbidden, InvalidInput, NotFound
from .registry import IssuerInfo, Registry
from .types import CertificateType, validate_holder_code, validate_holder_name
from .views import CertificateView

__all__ = ["IssueRequest", "IssueResult", "Prepared", "prepare"]

IDEMPOTENCY_PURPOSE = "certstore-idempotency"
MAX_IDEMPOTENCY_KEY = 200
PAPER_SERIAL_MAX = 64


@dataclass(frozen=True)
class IssueRequest:
    """What an agency asks for. Build it with :meth:`from_json` from untrusted input."""

    type_code: str
    holder_code: str
    holder_name: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    paper_serial: str | None = None
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    issuer: str | None = None
    """The issuer named in the body; when given it must be the caller's."""
    idempotency_key: str | None = None
    external_ref: str | None = None
    """Batch issuance's idempotency (issue 6): unique per issuer (``certstore.batch``)."""
    supersedes: str | None = None
    """Identifier of the certificate this one replaces (issue 6): same serial, next version;
    the old one is cancelled (04, action ``supersede``) in the same transaction."""

    def __repr__(self) -> str:  # the holder code stays out of logs
        return f"IssueRequest(type={self.type_code!r}, issuer={self.issuer!r})"

    @classmethod
    def from_json(cls, body: Any, *, idempotency_key: str | None = None) -> IssueRequest:
        if not isinstance(body, Mapping):
            raise InvalidInput("the request body must be a JSON object", field="body")
        allowed = {
            "type", "issuer", "holder_code", "holder_name", "fields", "paper_serial",
            "valid_from", "valid_until",
        }
        extra = sorted(str(k) for k in body if k not in allowed)
        if extra:
            raise InvalidInput(f"unknown member {extra[0][:40]!r}", field=extra[0][:40])
        for name in ("type", "holder_code", "holder_name"):
            if not isinstance(body.get(name), str) or not body[name].strip():
                raise InvalidInput(f"{name} is required (text)", field=name)
        fields = body.get("fields", {})
        if not isinstance(fields, Mapping):
            raise InvalidInput("fields must be an object", field="fields")
        paper = body.get("paper_serial")
        if paper is not None and not isinstance(paper, str):
            raise InvalidInput("paper_serial must be text", field="paper_serial")
        issuer = body.get("issuer")
        if issuer is not None and not isinstance(issuer, str):
            raise InvalidInput("issuer must be text", field="issuer")
        return cls(
            type_code=body["type"].strip(),
            holder_code=body["holder_code"],
            holder_name=body["holder_name"],
            fields=dict(fields),
            paper_serial=paper,
            valid_from=_date(body.get("valid_from"), "valid_from"),
            valid_until=_date(body.get("valid_until"), "valid_until"),
            issuer=issuer.strip().upper() if issuer else None,
            idempotency_key=idempotency_key,
        )


def _date(value: Any, name: str) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InvalidInput(f"{name} must be a date written YYYY-MM-DD", field=name)


@dataclass(frozen=True)
class IssueResult:
    certificate: CertificateView
    replayed: bool = False
    """``True`` when an earlier request with the same ``Idempotency-Key`` made it."""


@dataclass(frozen=True)
class Prepared:
    """A request that passed every rule: what issuance signs and stores."""

    spec: CertificateType
    issuer: IssuerInfo
    holder_code: str = field(repr=False)  # an ID number stays out of reprs and logs
    holder_name: str
    fields: dict[str, Any]
    paper_serial: str | None
    valid_from: dt.date
    valid_until: dt.date | None
    fingerprint: str | None


def prepare(
    request: IssueRequest, agency_uscc: str, *, registry: Registry, keyring: Keyring, now: dt.datetime
) -> Prepared:
    """Check ``request`` for the agency ``agency_uscc`` (the authenticated caller)."""
    if request.issuer is not None and request.issuer != agency_uscc:
        raise Forbidden("a client may only issue for its own agency", field="issuer")
    try:
        issuer = registry.get_issuer(agency_uscc)
    except NotFound:
        raise Forbidden("the caller is not a registered issuer", field="issuer") from None
    try:
        spec = registry.get_type(request.type_code)
    except NotFound as e:
        raise InvalidInput(str(e), field="type") from None
    if spec.code not in issuer.allowed_types:
        raise Forbidden(f"issuer {agency_uscc} may not issue certificates of type {spec.code}", field="type")
    holder_code = validate_holder_code(spec.holder_code_type, request.holder_code)
    holder_name = validate_holder_name(request.holder_name, spec.holder_name_max_length)
    fields = spec.validate_fields(request.fields)
    paper = request.paper_serial.strip() if request.paper_serial else None
    if paper is not None and (len(paper) > PAPER_SERIAL_MAX or not paper.isprintable()):
        raise InvalidInput(
            f"paper_serial must be printable text of at most {PAPER_SERIAL_MAX} characters",
            field="paper_serial",
        )
    valid_from = request.valid_from or china_date(now)
    valid_until = spec.validity.valid_until(valid_from, request.valid_until)
    key = request.idempotency_key
    fingerprint = None
    if key is not None:
        if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
            raise InvalidInput(
                f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters",
                field="Idempotency-Key",
            )
        canonical = json.dumps(
            {
                "type": spec.code,
                "holder_code": holder_code,
                "holder_name": holder_name,
                "fields": fields,
                "paper_serial": paper,
                "valid_from": request.valid_from.isoformat() if request.valid_from else None,
                "valid_until": request.valid_until.isoformat() if request.valid_until else None,
            },
            sort_keys=True,
            ensure_ascii=False,
        )
        fingerprint = keyring.pii().blind_index(canonical, purpose=IDEMPOTENCY_PURPOSE)
    return Prepared(spec, issuer, holder_code, holder_name, fields, paper, valid_from, valid_until, fingerprint)
