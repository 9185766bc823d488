"""A CAS 3.0 front end on the idp's single sign-on session (issue 21 §3), without Flask.

Apereo CAS Protocol 3.0 for the agency systems that speak CAS rather than
OpenID Connect. The web layer (:mod:`idp.web.cas`) only translates HTTP:

- :mod:`.services`: what a CAS service registration is (``Client.attributes["cas"]``),
  its checks, and matching a ``service`` parameter to one (exact string match);
- :mod:`.tickets`: service tickets (``ST-``, single-use, a few seconds, bound to the service);
- :mod:`.login`: what ``/cas/login`` does for a request and a session;
- :mod:`.validation`: ``/serviceValidate`` and ``/p3/serviceValidate``, the attributes
  released and the XML / JSON answers;
- :mod:`.slo`: the SAML ``LogoutRequest`` of CAS single logout (delivered through the
  back-channel logout queue, :mod:`idp.logout.delivery`).

Proxy tickets are not offered (``pgtUrl`` is ignored): no service is registered for them.
"""

from __future__ import annotations

from .services import CAS_ATTRIBUTE, CasService, cas_registration, find_service, service_of

__all__ = ["CAS_ATTRIBUTE", "CasService", "cas_registration", "find_service", "service_of"]
