"""Passkeys (WebAuthn Level 3) for citizens, without Flask (issue 13 §2).

- :mod:`.models`: the credential table (migration ``0006``);
- :mod:`.policy`: relying-party id, origins, attestation policy (from settings);
- :mod:`.challenges`: single-use challenges in Redis, bound to the browser;
- :mod:`.service`: registration, sign-in (discoverable credentials, user
  verification required), clone detection, the account page's list, rename, remove;
- :mod:`.amr`: what a passkey sign-in says in ``amr`` (RFC 8176).

Kept import-light: :mod:`idp.models` imports :mod:`.models` at its end.
"""
