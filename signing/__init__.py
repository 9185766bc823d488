"""Signatures on certificates: the signed QR payload and the PAdES-signed PDF.

A plain library (no web framework, no database), between ``keys`` (which
holds the private keys) and ``certstore`` (which issues certificates):

* :mod:`signing.qr` — the ``YW1:`` QR payload (CBOR claims in COSE_Sign1):
  ``claims`` (the claim map), ``codec`` (the signed text), ``trust`` (issuer
  keys a verifier accepts), ``verify`` (offline checks), ``draw`` (the code);
* :mod:`signing.pdf` — the certificate PDF (reportlab, embedded CJK font,
  vector QR);
* :mod:`signing.pades` — PAdES signing and validation through pyHanko;
* :mod:`signing.errors` — the package's error hierarchy.

Submodules are imported on demand: ``import signing.qr`` does not load
reportlab or pyHanko.
"""
