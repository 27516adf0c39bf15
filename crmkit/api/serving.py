"""The app factory uvicorn imports in each worker process (``crmkit serve --workers N``)."""

from __future__ import annotations

import os

from litestar import Litestar

from crmkit.api.app import create_app
from crmkit.app import open_crm

#: The variable ``crmkit serve --trusted-proxy`` hands its addresses over in (comma-separated).
TRUSTED_PROXIES_VARIABLE = "CRMKIT_TRUSTED_PROXIES"


def app_from_environment() -> Litestar:
    """Open the CRM named by ``$CRMKIT_CONFIG`` / ``$CRMKIT_DATABASE_URL`` and serve it."""
    proxies = os.environ.get(TRUSTED_PROXIES_VARIABLE)
    trusted = [p.strip() for p in proxies.split(",") if p.strip()] if proxies is not None else None
    return create_app(open_crm(), trusted_proxies=trusted)
