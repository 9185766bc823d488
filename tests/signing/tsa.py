"""A real RFC 3161 time-stamping authority for tests: certomancer's Animator
(a WSGI app) served by werkzeug on 127.0.0.1 in a thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True)
class Tsa:
    url: str
    root: x509.Certificate


def _config() -> dict[str, object]:
    validity = {"valid-from": "2020-01-01T00:00:00+0000", "valid-to": "2045-01-01T00:00:00+0000"}
    return {
        "external-url-prefix": "http://127.0.0.1",
        "keysets": {
            "tsa-keys": {"keys": {"root": {"path": "root.key.pem"}, "tsa": {"path": "tsa.key.pem"}}}
        },
        "pki-architectures": {
            "yiwang-tsa": {
                "keyset": "tsa-keys",
                "entity-defaults": {"country-name": "CN", "organization-name": "Yiwang Test TSA"},
                "entities": {
                    "root": {"common-name": "Test TSA Root"},
                    "tsa": {"common-name": "Test Time Stamping Authority"},
                },
                "certs": {
                    "root": {
                        "subject": "root",
                        "issuer": "root",
                        "validity": validity,
                        "extensions": [
                            {"id": "basic_constraints", "critical": True, "value": {"ca": True}},
                            {
                                "id": "key_usage",
                                "critical": True,
                                "smart-value": {
                                    "schema": "key-usage",
                                    "params": ["digital_signature", "key_cert_sign", "crl_sign"],
                                },
                            },
                        ],
                    },
                    "tsa": {
                        "issuer": "root",
                        "validity": validity,
                        "extensions": [
                            {
                                "id": "key_usage",
                                "critical": True,
                                "smart-value": {
                                    "schema": "key-usage",
                                    "params": ["digital_signature"],
                                },
                            },
                            {
                                "id": "extended_key_usage",
                                "critical": True,
                                "value": ["time_stamping"],
                            },
                        ],
                    },
                },
                "services": {
                    "time-stamping": {"tsa": {"signing-key": "tsa", "signing-cert": "tsa"}}
                },
            }
        },
    }


@contextmanager
def running_tsa(workdir: Path) -> Iterator[Tsa]:
    from certomancer.integrations.animator import Animator, AnimatorArchStore
    from certomancer.registry import CertomancerConfig
    from werkzeug.serving import make_server

    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("root", "tsa"):
        key = ec.generate_private_key(ec.SECP256R1())
        (workdir / f"{name}.key.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cfg = CertomancerConfig(_config(), key_search_dir=str(workdir))
    arch = cfg.get_pki_arch("yiwang-tsa")  # type: ignore[arg-type]
    root = x509.load_der_x509_certificate(arch.get_cert("root").dump())  # type: ignore[arg-type]
    app = Animator(AnimatorArchStore(cfg.pki_archs), with_web_ui=False)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Tsa(url=f"http://127.0.0.1:{server.server_port}/yiwang-tsa/tsa/tsa", root=root)
    finally:
        server.shutdown()
        thread.join(5)
