"""Single sign-out: logout tokens, durable back-channel deliveries, RP-initiated logout.

Issue 4 §3–§6. The pieces, each in its own module:

- :mod:`idp.logout.tokens` — the back-channel ``logout_token`` (OIDC Back-Channel Logout 1.0 §2.4);
- :mod:`idp.logout.queue` — the Dramatiq broker and actors (delivery, recovery, expiry sweep);
- :mod:`idp.logout.delivery` — what happens when a session ends: durable rows first,
  then jobs; the POST itself and how its outcome is recorded;
- :mod:`idp.logout.rp` — RP-initiated logout request validation (RP-Initiated Logout 1.0 §2–§3);
- :mod:`idp.logout.frontchannel` — the front-channel iframe URIs (Front-Channel Logout 1.0 §2–§3).
"""
