"""What the served OpenAPI document adds for readers: an example for each input, the OAuth 2.0 scheme.

:func:`certstore.web.openapi.openapi_document` applies them; the reference page
at ``/api/docs`` (:mod:`.apidocs`) shows them. The examples are the demo's
(docs/agency-guide.md, "Try it on the demo"), so a reader on the demo can send
them as they are.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["add_examples", "add_client_credentials"]

_SCOPES = {
    "certs:issue": "issue, read and change the status of the agency's own certificates",
    "certs:lookup": "look up a citizen's certificates by ID number (clients on certstore's allow-list)",
    "certs:read": "read the signed-in citizen's certificates, with their consent (a citizen's token)",
}


def add_client_credentials(doc: dict[str, Any], token_url: str) -> None:
    """RFC 6749 §4.4 at the idp's token endpoint, as an alternative to a Bearer token already in hand."""
    doc["components"]["securitySchemes"]["agencyClientCredentials"] = {
        "type": "oauth2",
        "description": "A client-credentials token from the Yiwang identity provider "
        "(client_secret_basic; the client is linked to the agency with `certstore issuers add --client-id`).",
        "flows": {"clientCredentials": {"tokenUrl": token_url, "scopes": dict(_SCOPES)}},
    }
    for ops in doc["paths"].values():
        for op in ops.values():
            if not isinstance(op, dict):
                continue
            for requirement in list(op.get("security") or []):
                scopes = requirement.get("bearer")
                if scopes and "certs:read" not in scopes:
                    op["security"].append({"agencyClientCredentials": list(scopes)})


_ISSUE_EXAMPLE = {
    "type": "JZZM",
    "holder_code": "11010519491231002X",
    "holder_name": "张三丰",
    "paper_serial": "京朝居 2026 000123",
    "fields": {"address": "北京市朝阳区建国门外大街1号院3号楼1502室", "residence_since": "2019-03-01", "purpose": "入学"},
}
_BODY_EXAMPLES: dict[tuple[str, str], Any] = {
    ("/api/v1/certificates", "post"): _ISSUE_EXAMPLE,
    ("/api/v1/verify", "post"): {"text": "YW1:…the text of the certificate's QR code…"},
    ("/api/v1/certificates/{identifier}/status", "post"): {"action": "suspend", "reason": "holder moved away"},
    ("/api/v1/certificates/{identifier}/versions", "post"): {**_ISSUE_EXAMPLE, "fields": {
        **_ISSUE_EXAMPLE["fields"], "address": "北京市朝阳区建国路88号"}},
    ("/api/v1/lookup", "post"): {"id_number": "11010519491231002X", "purpose": "school enrolment check", "type": "JZZM"},
}
_QUERY_EXAMPLES = {"type": "JZZM", "limit": 20, "offset": 0, "purpose": "school enrolment check"}


def add_examples(paths: dict[str, Any], *, identifier: str) -> None:
    """An example for each input of each operation (what the reference page pre-fills)."""
    for (path, method), example in _BODY_EXAMPLES.items():
        content = paths.get(path, {}).get(method, {}).get("requestBody", {}).get("content", {})
        if "application/json" in content:
            content["application/json"]["example"] = copy.deepcopy(example)
    for ops in paths.values():
        for op in ops.values():
            if not isinstance(op, dict):
                continue
            for param in op.get("parameters", []):
                if param.get("in") == "query" and param.get("name") in _QUERY_EXAMPLES and "example" not in param:
                    param["example"] = _QUERY_EXAMPLES[param["name"]]
                if param.get("in") == "path" and param.get("name") == "identifier":
                    param.setdefault("example", identifier)
