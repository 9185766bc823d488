"""The PKCS#11 key backend (a hardware security module; SoftHSM2 in tests).

The only module that imports ``pkcs11`` (python-pkcs11), as pyHanko keeps
``pyhanko/sign/pkcs11.py`` apart: without the ``pkcs11`` extra installed, the
software backend still works and choosing this one fails with a message that
names the extra.

Keys are generated inside the token, marked sensitive and non-extractable
(PKCS#11 v2.40 §4.9: ``CKA_SENSITIVE``, ``CKA_EXTRACTABLE``), and found again
by ``CKA_ID``: the handle is that id in hex. ECDSA goes through the raw
``CKM_ECDSA`` mechanism over a SHA-256 digest computed here (SoftHSM2 does not
offer ``CKM_ECDSA_SHA256``); the token returns ``r || s`` (PKCS#11 v2.40
§2.3.1), which is what JOSE wants, and DER is made from it for CMS. RS256
uses ``CKM_SHA256_RSA_PKCS``, EdDSA ``CKM_EDDSA`` (PKCS#11 v3.0).

One logged-in session per process is shared under a lock (a PKCS#11 session
runs one operation at a time); after a ``fork`` (pre-forking web servers)
the library is re-initialised, as PKCS#11 requires.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from .backend import check_algorithm, public_jwk, raw_to_der_ecdsa
from .config import KeySettings
from .errors import BackendUnavailable, KeyNotFound, KeysError

try:
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
    from pkcs11 import exceptions as p11_errors
    from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters
except ImportError:  # pragma: no cover - exercised only without the extra
    pkcs11 = None  # type: ignore[assignment]

__all__ = ["Pkcs11Backend", "Pkcs11Signer"]

logger = logging.getLogger(__name__)

_ID_BYTES = 16
_ED25519_OID_PARAMS = bytes.fromhex("06032b6570")  # OID 1.3.101.112 (RFC 8410)


def _require_pkcs11() -> None:
    if pkcs11 is None:
        raise BackendUnavailable(
            "the PKCS#11 backend needs the `pkcs11` extra: pip install 'yiwang[pkcs11]'"
        )


def _unavailable(e: Exception) -> BackendUnavailable:
    """Translate a token error without echoing anything secret."""
    if isinstance(e, p11_errors.PinIncorrect | p11_errors.PinInvalid | p11_errors.PinLenRange):
        return BackendUnavailable("the PKCS#11 token rejected the PIN (check YIWANG_PKCS11_PIN)")
    if isinstance(e, p11_errors.PinLocked):
        return BackendUnavailable("the PKCS#11 token's user PIN is locked")
    if isinstance(e, p11_errors.DeviceRemoved | p11_errors.TokenNotPresent):
        return BackendUnavailable("the PKCS#11 token is not present")
    return BackendUnavailable(f"the PKCS#11 token failed ({type(e).__name__})")


class Pkcs11Signer:
    """A :class:`~keys.backend.Signer` whose private key never leaves the token."""

    def __init__(self, backend: Pkcs11Backend, handle: str, *, algorithm: str, kid: str) -> None:
        self._backend = backend
        self._handle = handle
        self.algorithm = algorithm
        self.kid = kid
        self._public = backend.public_key(handle)
        self._jwk: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"Pkcs11Signer(kid={self.kid!r}, algorithm={self.algorithm!r})"

    def sign(self, data: bytes, *, der: bool = False) -> bytes:
        if self.algorithm == "ES256":
            raw = self._backend._sign(self._handle, hashlib.sha256(data).digest(), "ES256")
            return raw_to_der_ecdsa(raw) if der else raw
        return self._backend._sign(self._handle, data, self.algorithm)

    def public_key(self) -> PublicKeyTypes:
        return self._public

    def public_jwk(self) -> dict[str, str]:
        if self._jwk is None:
            self._jwk = public_jwk(self._public, kid=self.kid, algorithm=self.algorithm)
        return dict(self._jwk)


class Pkcs11Backend:
    """Keys inside a PKCS#11 token chosen by label."""

    name = "pkcs11"
    algorithms = ("ES256", "RS256", "EdDSA")

    def __init__(self, module: Path, token_label: str, pin: str) -> None:
        _require_pkcs11()
        self._module = module
        self._label = token_label
        self._pin = pin
        self._lock = threading.RLock()
        self._session: Any = None
        self._pid = 0
        self._private: dict[str, Any] = {}
        self._public: dict[str, PublicKeyTypes] = {}
        with self._lock:
            self._open()

    def __repr__(self) -> str:  # no PIN
        return f"Pkcs11Backend(module={str(self._module)!r}, token={self._label!r})"

    @classmethod
    def from_settings(cls, settings: KeySettings) -> Pkcs11Backend:
        _require_pkcs11()
        if settings.pkcs11_module is None:
            raise BackendUnavailable("YIWANG_PKCS11_MODULE (the PKCS#11 library) is not set")
        if not settings.pkcs11_token_label:
            raise BackendUnavailable("YIWANG_PKCS11_TOKEN (the token label) is not set")
        if not settings.pkcs11_pin:
            raise BackendUnavailable("YIWANG_PKCS11_PIN (the token's user PIN) is not set")
        return cls(settings.pkcs11_module, settings.pkcs11_token_label, settings.pkcs11_pin)

    # -- session -----------------------------------------------------------

    def _open(self) -> Any:
        """The logged-in session (caller holds the lock), reopened after a fork."""
        if self._session is not None and self._pid == os.getpid():
            return self._session
        forked = self._session is not None
        self._session = None
        self._private.clear()
        if not self._module.is_file():
            raise BackendUnavailable(f"the PKCS#11 library {self._module} does not exist")
        try:
            lib = pkcs11.lib(str(self._module))
            if forked:
                lib.reinitialize()
        except p11_errors.PKCS11Error as e:
            raise BackendUnavailable(
                f"the PKCS#11 library {self._module} cannot be loaded ({type(e).__name__})"
            ) from None
        try:
            token = lib.get_token(token_label=self._label)
        except p11_errors.NoSuchToken:
            raise BackendUnavailable(
                f"no PKCS#11 token labelled {self._label!r} (check YIWANG_PKCS11_TOKEN)"
            ) from None
        except p11_errors.MultipleTokensReturned:
            raise BackendUnavailable(
                f"more than one PKCS#11 token is labelled {self._label!r}"
            ) from None
        try:
            self._session = token.open(rw=True, user_pin=self._pin)
        except p11_errors.UserAlreadyLoggedIn:
            self._session = token.open(rw=True)
        except p11_errors.PKCS11Error as e:
            raise _unavailable(e) from None
        self._pid = os.getpid()
        logger.info("opened PKCS#11 token %r", self._label)
        return self._session

    def _key(self, handle: str, object_class: Any) -> Any:
        try:
            key_id = bytes.fromhex(handle)
        except ValueError:
            raise KeyNotFound("malformed key handle") from None
        if len(key_id) != _ID_BYTES:
            raise KeyNotFound("malformed key handle")
        try:
            return self._open().get_key(object_class=object_class, id=key_id)
        except p11_errors.NoSuchKey:
            raise KeyNotFound(f"no key {handle} in PKCS#11 token {self._label!r}") from None
        except p11_errors.PKCS11Error as e:
            raise _unavailable(e) from None

    # -- KeyBackend ----------------------------------------------------------

    def generate(self, algorithm: str, label: str) -> str:
        check_algorithm(algorithm)
        key_id = secrets.token_bytes(_ID_BYTES)
        handle = key_id.hex()
        private_template: dict[Any, Any] = {
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SIGN: True,
        }
        public_template: dict[Any, Any] = {Attribute.TOKEN: True, Attribute.VERIFY: True}
        common: dict[str, Any] = {
            "id": key_id,
            "label": label[:32],
            "store": True,
            "private_template": private_template,
            "public_template": public_template,
        }
        with self._lock:
            session = self._open()
            try:
                if algorithm == "ES256":
                    params = session.create_domain_parameters(
                        KeyType.EC,
                        {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
                        local=True,
                    )
                    params.generate_keypair(**common)
                elif algorithm == "RS256":
                    public_template[Attribute.PUBLIC_EXPONENT] = b"\x01\x00\x01"
                    session.generate_keypair(KeyType.RSA, 2048, **common)
                else:
                    params = session.create_domain_parameters(
                        KeyType.EC_EDWARDS, {Attribute.EC_PARAMS: _ED25519_OID_PARAMS}, local=True
                    )
                    params.generate_keypair(mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN, **common)
            except p11_errors.MechanismInvalid:
                raise KeysError(f"the PKCS#11 token cannot generate {algorithm} keys") from None
            except p11_errors.PKCS11Error as e:
                raise _unavailable(e) from None
        logger.info("generated %s key %s in PKCS#11 token %r", algorithm, handle, self._label)
        return handle

    def public_key(self, handle: str) -> PublicKeyTypes:
        cached = self._public.get(handle)
        if cached is not None:
            return cached
        with self._lock:
            key = self._key(handle, ObjectClass.PUBLIC_KEY)
            try:
                key_type = key.key_type
                if key_type == KeyType.EC:
                    public: PublicKeyTypes = serialization.load_der_public_key(
                        encode_ec_public_key(key)
                    )
                elif key_type == KeyType.RSA:
                    public = rsa.RSAPublicNumbers(
                        int.from_bytes(key[Attribute.PUBLIC_EXPONENT], "big"),
                        int.from_bytes(key[Attribute.MODULUS], "big"),
                    ).public_key()
                elif key_type == KeyType.EC_EDWARDS:
                    point = bytes(key[Attribute.EC_POINT])
                    if len(point) == 34 and point[0] == 0x04:  # DER OCTET STRING wrapping
                        point = point[2:]
                    public = ed25519.Ed25519PublicKey.from_public_bytes(point)
                else:
                    raise KeysError(f"key {handle} has an unsupported type")
            except p11_errors.PKCS11Error as e:
                raise _unavailable(e) from None
        self._public[handle] = public
        return public

    def signer(self, handle: str, algorithm: str, kid: str) -> Pkcs11Signer:
        check_algorithm(algorithm)
        public = self.public_key(handle)
        expected = {
            "ES256": ec.EllipticCurvePublicKey,
            "RS256": rsa.RSAPublicKey,
            "EdDSA": ed25519.Ed25519PublicKey,
        }[algorithm]
        if not isinstance(public, expected):
            raise KeysError(f"key {handle} cannot sign {algorithm}")
        return Pkcs11Signer(self, handle, algorithm=algorithm, kid=kid)

    def delete(self, handle: str) -> None:
        with self._lock:
            for object_class in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
                try:
                    self._key(handle, object_class).destroy()
                except KeyNotFound:
                    pass
                except p11_errors.PKCS11Error as e:
                    raise _unavailable(e) from None
            self._private.pop(handle, None)
            self._public.pop(handle, None)
        logger.info("deleted key %s from PKCS#11 token %r", handle, self._label)

    # -- signing -------------------------------------------------------------

    def _sign(self, handle: str, data: bytes, algorithm: str) -> bytes:
        mechanism = {
            "ES256": Mechanism.ECDSA,
            "RS256": Mechanism.SHA256_RSA_PKCS,
            "EdDSA": Mechanism.EDDSA,
        }[algorithm]
        with self._lock:
            self._open()
            key = self._private.get(handle)
            if key is None:
                key = self._key(handle, ObjectClass.PRIVATE_KEY)
                self._private[handle] = key
            try:
                signature: bytes = key.sign(data, mechanism=mechanism)
            except p11_errors.PKCS11Error as e:
                raise _unavailable(e) from None
        return bytes(signature)
