"""OpenID Connect Client-Initiated Backchannel Authentication (CIBA Core 1.0), no Flask.

- :mod:`.notify` — the notifier interface (:class:`~.notify.Notifier`, :class:`~.notify.PendingApproval`);
  :mod:`.live` the embedded notifier (the citizen's idp pages), ``webpush`` the Web Push one;
- :mod:`.request` — the backchannel request and its validation (§7.1, §13); :mod:`.signed` signed
  requests (§7.1.1); :mod:`.acting` the clerk's or agent's ``actor_token`` (RFC 8693 ``act``);
- :mod:`.store` — pending requests in Redis (one-script polls, single redemption);
- :mod:`.service` — request in, citizen told, decision recorded; :mod:`.grant` the endpoint and
  the token grant on the Authlib server; :mod:`.ping` ping-mode callbacks on the job queue;
- :mod:`.registration` — the client's CIBA attributes and ``idp clients add`` options;
  :mod:`.runtime` — building it all for one process (:class:`idp.container.Container`).
"""
