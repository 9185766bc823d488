"""Checking a wallet's answer at the ``response_uri`` (OpenID4VP 1.0 §8.2, §8.3).

:meth:`ResponseChecker.respond` takes the posted form of ``direct_post``
(``vp_token``, ``state``) or ``direct_post.jwt`` (``response``: a JWE,
``ECDH-ES`` to the request's own key, ``A128GCM`` or ``A256GCM``) and, in
this order:

1. finds the request (expired or unknown: refused), reads the answer (decrypts
   it for ``direct_post.jwt``) and checks its ``state``; only then *claims*
   the request: the first such answer is the only one looked at, so a
   replayed presentation — even a good one — is refused, while noise posted by
   someone who saw the QR code burns nothing;
2. checks the one presentation in ``vp_token`` under the query's credential id, with :func:`signing.sdjwt_verify.verify_presentation`
   against the merged trust list, ``aud`` = this request's client id (a
   presentation made for another verifier fails) and ``nonce`` = this
   request's nonce (one made for an older request fails);
3. that its ``vct`` is one the request named, and that the wallet disclosed
   nothing the request did not ask for (:func:`certstore.vp.dcql.beyond_request`);
4. the status: a local certificate's record (found by its status-list
   position, bound to the issuer whose key verified it), another region's
   from its issuer's status list (:class:`certstore.statuslists.StatusListCache`);
5. writes the presentation into the citizen's read log (local certificates)
   and keeps only the result for the counter page: the requested claims, the
   issuer, the status.

Every refusal is kept as a result too (the counter sees *why*), and answered
to the wallet as ``400 {"error": "invalid_request"}`` (§8.2).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from sqlalchemy.orm import Session

from signing.sdjwt_verify import Presentation, SdJwtError, verify_presentation
from signing.statuslist import INVALID, SUSPENDED, VALID

from ..db import session_scope
from ..models import STATUS_CODES, AccessLog, Certificate
from .dcql import CREDENTIAL_ID, beyond_request, requested_paths
from .store import RequestStore

__all__ = ["VpRefused", "ResponseChecker", "VIA"]

logger = logging.getLogger(__name__)

VIA = "presentation"
"""``cert_access_log.via`` of a presentation to a verifier."""
_JWE_ALGS = ["ECDH-ES", "A128GCM", "A256GCM"]
_MAX_RESPONSE = 64 * 1024


class VpRefused(Exception):
    """A wallet's answer refused; ``reason`` is a stable code, the message is for the counter."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _status_of_record(code: str) -> tuple[str, str]:
    if code == "01":
        return "valid", ""
    zh, en = STATUS_CODES.get(code, ("?", "not valid"))
    return ("suspended" if code == "02" else "revoked"), f"{en} ({zh}, status {code})"


class ResponseChecker:
    """Checks wallet answers for the requests in ``store``, with the service's trust and status sources."""

    def __init__(self, store: RequestStore, certificates: Any, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.store = store
        self.certificates = certificates
        self.clock = clock or certificates.clock

    # -- the answer -----------------------------------------------------------

    def respond(self, request_id: str, form: Mapping[str, str]) -> dict[str, Any]:
        """Check a posted answer; returns the kept result, raises :class:`VpRefused` (also kept)."""
        data = self.store.get(request_id)
        if data is None:
            raise VpRefused("this request has expired or never existed", reason="unknown_request")
        # Only an answer that carries this request's state (decrypted, for direct_post.jwt) may claim it:
        # a bystander who saw the QR code cannot burn the request by posting noise first.
        payload = self._payload(data, form)
        state = payload.get("state")
        if not isinstance(state, str) or not hmac.compare_digest(state.encode(), str(data["state"]).encode()):
            raise VpRefused("the answer's state is not this request's", reason="state")
        if not self.store.claim(request_id):
            raise VpRefused("this request was already answered; a second answer is refused", reason="replay")
        try:
            result = self._check(data, payload)
        except VpRefused as e:
            logger.info("verifier request %s: presentation refused (%s)", request_id[:8], e.reason)
            self.store.put_result(request_id, {"outcome": "refused", "reason": e.reason, "message": str(e),
                                               "view": data["view"]})
            raise
        result["view"] = data["view"]
        self.store.put_result(request_id, result)
        logger.info("verifier request %s: presentation of type %s by issuer %s, status %s", request_id[:8],
                    result["type"], result["issuer"]["uscc"], result["status"])
        return result

    def result(self, request_id: str, view_key: str) -> dict[str, Any] | None:
        """The result for the page holding the view key (``None``: no such request or not this page's)."""
        got = self.store.result(request_id)
        stored = got or self.store.get(request_id)
        if stored is None or not view_key:
            return None
        if not hmac.compare_digest(hashlib.sha256(view_key.encode()).hexdigest(), str(stored.get("view", ""))):
            return None
        if got is None:
            return {"outcome": "pending", "fetched": self.store.fetched(request_id)}
        return {k: v for k, v in got.items() if k != "view"}

    def _payload(self, data: dict[str, Any], form: Mapping[str, str]) -> dict[str, Any]:
        if data["response_mode"] == "direct_post.jwt":
            token = form.get("response")
            if not isinstance(token, str) or not token or len(token) > _MAX_RESPONSE or "vp_token" in form:
                raise VpRefused("direct_post.jwt: the answer is one encrypted 'response'", reason="format")
            try:
                key = ECKey.import_key(data["enc_key"])
                plain = jwe.decrypt_compact(token, key, algorithms=_JWE_ALGS).plaintext or b""
                payload = json.loads(plain)
            except (JoseError, ValueError, RecursionError):
                raise VpRefused("the encrypted response cannot be decrypted with this request's key",
                                reason="encryption") from None
            if not isinstance(payload, dict):
                raise VpRefused("the decrypted response is not a JSON object", reason="format")
            return payload
        if "response" in form:
            raise VpRefused("this request asked for direct_post, not an encrypted response", reason="format")
        return dict(form)

    def _check(self, data: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        if "error" in payload:
            raise VpRefused(f"the wallet declined: {str(payload.get('error'))[:60]}", reason="wallet_error")
        token = payload.get("vp_token")
        if isinstance(token, str):
            try:
                token = json.loads(token)
            except (ValueError, RecursionError):
                raise VpRefused("vp_token is not JSON", reason="format") from None
        entries = token.get(CREDENTIAL_ID) if isinstance(token, dict) else None
        if isinstance(entries, str):
            entries = [entries]
        if not isinstance(token, dict) or set(token) != {CREDENTIAL_ID} or not isinstance(entries, list) \
                or len(entries) != 1 or not isinstance(entries[0], str):
            raise VpRefused(f"vp_token holds one presentation under {CREDENTIAL_ID!r}", reason="format")
        # One transaction for the imported lists' stamp, the record's status and the read log.
        with session_scope(self.certificates.sessions) as s:
            local = self.certificates.verifier.trust_list()
            merged = self.certificates.trust_store.merged(local, session=s)
            try:
                p = verify_presentation(entries[0], merged.trust_list, audience=data["client_id"],
                                        nonce=data["nonce"], now=self.clock())
            except SdJwtError as e:
                raise VpRefused(str(e), reason=e.reason) from None
            asked_vct = data["dcql"]["credentials"][0]["meta"]["vct_values"]
            if p.vct not in asked_vct:
                raise VpRefused("the credential is not of the type the request asked for", reason="vct")
            asked = requested_paths(data["dcql"])
            extra = beyond_request(p.disclosed, asked)
            if extra:
                raise VpRefused("the wallet disclosed claims the request did not ask for: "
                                + ", ".join(".".join(str(x) for x in path) for path in extra), reason="over_disclosed")
            status, reason, row = self._status(s, p, local, merged)
            if row is not None:
                self._log(s, data, row)
        names = {path[0] for path in asked}
        return {
            "outcome": "verified",
            "type": p.type_code,
            "claims": {k: v for k, v in p.claims.items() if k in names},
            "issuer": {"uscc": p.issuer.uscc, "name": p.issuer.name, "region": p.issuer.region},
            "status": status,
            "status_reason": reason,
            "issued_at": p.issued_at.isoformat(),
            "expires_at": p.expires_at.isoformat() if p.expires_at else None,
        }

    # -- status and the read log ---------------------------------------------

    def _status(self, s: Session, p: Presentation, local: Any, merged: Any) -> tuple[str, str, Certificate | None]:
        if p.status_uri is None or p.status_index is None:
            return "unknown", "the credential names no status list", None
        if local.get(p.issuer.kid) is p.issuer:
            base = self.certificates.status_lists.base_url
            list_id = p.status_uri[len(base):] if p.status_uri.startswith(base) else ""
            if not list_id or "/" in list_id:
                return "unknown", "a local credential pointing outside this registry's status lists", None
            row = s.scalar(sa.select(Certificate).where(
                Certificate.status_list == list_id, Certificate.status_index == p.status_index,
                Certificate.issuer_uscc == p.issuer.uscc))
            if row is None:
                return "unknown", "no certificate of that issuer at that status position", None
            status, reason = _status_of_record(row.status)
            return status, reason, row
        base = merged.status_base.get(p.issuer.kid)
        if not base or not p.status_uri.startswith(base) or "/" in p.status_uri[len(base):]:
            return "unknown", "the status list is not on the issuer region's registered host; not fetched", None
        keys = [p.issuer.public_key] + [i.public_key for i in merged.trust_list
                                        if i.uscc == p.issuer.uscc and i.region == p.issuer.region and i.kid != p.issuer.kid]
        answer = self.certificates.status_cache.lookup(p.status_uri, p.status_index, keys)
        if answer.value == VALID and answer.ok:
            return "valid", answer.reason, None
        if answer.value == SUSPENDED:
            return "suspended", answer.reason, None
        if answer.value == INVALID:
            return "revoked", answer.reason, None
        return "unknown", answer.reason, None

    def _log(self, s: Session, data: dict[str, Any], row: Certificate) -> None:
        """The citizen's read log: who saw which certificate through a presentation, for what."""
        try:
            name = self.certificates.registry.get_issuer(data["agency"]).name_zh
        except Exception:  # noqa: BLE001 — the agency left the registry meanwhile: log without its name
            name = None
        s.add(AccessLog(holder_code_index=row.holder_code_index, client_id=data["client_id"][:200], client_name=name,
                        via=VIA, purpose=data.get("purpose") or None, identifiers=[row.identifier], at=self.clock()))
