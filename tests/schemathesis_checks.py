"""The Schemathesis checks both services' contract tests run (tests/*/test_schemathesis.py).

Each service passes its own ``beyond_schema``: the refusals of a schema-valid
request that the server makes on purpose, by a rule no JSON Schema can state
(``"METHOD /path" -> {status: why}``). Any other refusal of a schema-valid
request is the schema and the server disagreeing, and fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

__all__ = ["MAX_EXAMPLES", "checks"]

MAX_EXAMPLES = int(os.environ.get("YIWANG_FUZZ_EXAMPLES", "25"))
"""Examples per operation: bounded so that `make test` stays quick; YIWANG_FUZZ_EXAMPLES=500
fuzzes harder (with the same seed)."""

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _negative_data_rejection_or_too_large(ctx: Any, response: Any, case: Any) -> bool | None:
    """``negative_data_rejection``, with 413 counted as a rejection (the size cap answers before any parsing)."""
    if response.status_code == 413:
        return None
    if case.media_type in _FORM_TYPES and isinstance(case.body, dict) and any(
        not isinstance(v, str | bytes) for v in case.body.values()
    ):
        # On the wire every form value is text: a number, null or list becomes a valid string, and a
        # nested object goes as a multipart file part (werkzeug's test client), so the server never
        # sees the invalid form that the case describes.
        return None
    return negative_data_rejection(ctx, response, case)


def checks(beyond_schema: Mapping[str, Mapping[int, str]]) -> list[Callable[..., Any]]:
    """The checks, with ``positive_data_acceptance`` excusing only the refusals in ``beyond_schema``."""

    def positive_data_acceptance_beyond_schema(ctx: Any, response: Any, case: Any) -> bool | None:
        if response.status_code in beyond_schema.get(case.operation.label, {}):
            return None
        return positive_data_acceptance(ctx, response, case)

    return [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        positive_data_acceptance_beyond_schema,
        _negative_data_rejection_or_too_large,
    ]
