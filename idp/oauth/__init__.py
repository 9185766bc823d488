"""The OpenID Connect protocol core, free of Flask.

Authlib's grants and endpoints, subclassed and *registered* the Authlib way
(:func:`idp.oauth.server.configure_server`), plus what Authlib does not give a
server: atomic single-use codes with revocation on replay (:mod:`.codes`),
refresh-token rotation with family revocation (:mod:`.tokens`), pairwise
``sub`` (:mod:`.subject`), scope → claims with the ID-number rule
(:mod:`.claims`), pushed authorization requests (:mod:`.par`) and the
discovery document (:mod:`.discovery`). Only ``idp.web`` binds it to HTTP.
"""
