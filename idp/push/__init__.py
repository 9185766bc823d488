"""Web Push for the citizen's devices (RFC 8030, RFC 8291, VAPID RFC 8292), no Flask.

- :mod:`idp.push.models` — the ``push_subscription`` table (migration 0007);
- :mod:`idp.push.subscriptions` — a citizen's subscriptions: add (from the account
  page), list, remove (the push service said 404/410);
- :mod:`idp.push.vapid` — the VAPID key pair, kept with the idp's keys.

The CIBA notifier that sends through them is :class:`idp.ciba.webpush.WebPushNotifier`.
This module imports nothing: :mod:`idp.models` imports :mod:`idp.push.models`.
"""
