"""Staff accounts: the clerks at service counters and the agents on hotlines (issue 13 §1, "acting for").

Separate from citizens, with their own table, sign-in page, cookie and
second factor; no Flask here (the pages are :mod:`idp.web.views_staff`).

- :mod:`idp.staff.models` — the ``staff_account`` table;
- :mod:`idp.staff.accounts` — :class:`~idp.staff.accounts.StaffService`: add, list, disable,
  reset the second factor, sign in (Argon2id password + TOTP, throttled, audited);
- :mod:`idp.staff.portal` — which relying parties are staff portals (client attribute
  ``audience: "staff"``) and the registration check of that attribute;
- :mod:`idp.staff.signin` — a staff portal's authorization request: the staff session
  and the code through the same authorization machinery as a citizen's;
- :mod:`idp.staff.actor` — :func:`~idp.staff.actor.resolve_actor`: the clerk or agent
  behind a CIBA request, from the ID token their sign-in gave the client.

This module imports nothing: :mod:`idp.models` imports :mod:`idp.staff.models`
so the table is in the one metadata.
"""
