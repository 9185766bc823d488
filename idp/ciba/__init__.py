"""OpenID Connect Client-Initiated Backchannel Authentication (CIBA Core 1.0), no Flask.

- :mod:`idp.ciba.notify` — the notifier interface (:class:`Notifier`, :class:`PendingApproval`).
"""
