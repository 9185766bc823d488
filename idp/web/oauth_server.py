"""Authlib's Flask authorization server, with a lighter request adapter.

Authlib's ``FlaskOAuth2Request`` computes ``request.url`` up front and
refuses plain ``http`` unless an environment variable is set; Yiwang decides
transport security by its issuer setting instead, and builds the request
from a parameter mapping so that a pushed (RFC 9126) or resumed
authorization request goes through the same validation as a direct one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer as _FlaskServer
from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request
from flask import Response, json
from flask import request as flask_request

from ..oauth.client_auth import ClientAuthentication, authenticate_client_secret_basic
from ..oauth.endpoints import NO_STORE, Reply

__all__ = ["YiwangAuthorizationServer", "ParamsRequest", "NO_STORE", "flask_request_params", "to_response"]


class _Payload(OAuth2Payload):
    def __init__(self, data: Mapping[str, str], datalist: Mapping[str, list[str]]) -> None:
        self._data = data
        self._datalist = datalist

    @property
    def data(self) -> Mapping[str, str]:
        return self._data

    @property
    def datalist(self) -> Mapping[str, list[str]]:
        return self._datalist


class ParamsRequest(OAuth2Request):
    """An OAuth2Request over explicit parameters (no transport check, lazy URL)."""

    def __init__(self, method: str, params: Mapping[str, str], *, form: Mapping[str, str] | None = None,
                 headers: Any = None, datalist: Mapping[str, list[str]] | None = None) -> None:
        # Not calling OAuth2Request.__init__: it checks the transport and wants the URL now.
        self.method = method
        self.uri = ""
        self.headers = headers if headers is not None else {}
        self._body = None
        dl = datalist if datalist is not None else {k: [v] for k, v in params.items()}
        self.payload = _Payload(params, dl)
        self._form = form if form is not None else params
        self.client = None
        self.auth_method = None
        self.user = None
        self.authorization_code = None
        self.refresh_token = None
        self.credential = None
        self._scope = None

    @property
    def args(self) -> Mapping[str, str]:
        return self.payload.data

    @property
    def form(self) -> Mapping[str, str]:
        return self._form


def flask_request_params() -> ParamsRequest:
    """The current Flask request as an ``OAuth2Request`` (query and form values, all repeats kept)."""
    values = flask_request.values
    datalist: dict[str, list[str]] = defaultdict(list)
    for k in values:
        datalist[k].extend(values.getlist(k))
    return ParamsRequest(
        flask_request.method, values.to_dict(), form=flask_request.form,
        headers=flask_request.headers, datalist=datalist,
    )


class YiwangAuthorizationServer(_FlaskServer):
    def __init__(self) -> None:
        super().__init__()
        self.provider: Any = None
        # Every endpoint that authenticates clients (token, introspection, revocation,
        # PAR, device authorization) goes through this registry: a malformed Basic
        # header is invalid_client (401), never an exception (RFC 6749 §5.2).
        self._client_auth = ClientAuthentication(self.query_client)
        self._client_auth.register("client_secret_basic", authenticate_client_secret_basic)

    def load_config(self, config: Any) -> None:  # token generator comes from the provider
        self.scopes_supported = None
        self._error_uris = None

    def query_client(self, client_id: str) -> Any:
        return self.provider.query_client(client_id)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        self.provider.save_token(token, request)

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        return flask_request_params()

    def handle_response(self, status_code: int, payload: Any, headers: Any) -> Response:
        if isinstance(payload, dict):
            payload.pop("_rows", None)
            payload = json.dumps(payload)
        resp = Response(payload, status=status_code, headers=headers)
        resp.headers.update(NO_STORE)
        return resp


def to_response(reply: Reply) -> Response:
    """A framework-free answer (:mod:`idp.oauth.endpoints`) as a Flask response."""
    status, headers, body = reply
    return Response(body, status=status, headers=headers)
