"""The app factory uvicorn imports in each worker process (``crmkit serve --workers N``)."""

from __future__ import annotations

from litestar import Litestar

from crmkit.api.app import create_app
from crmkit.app import open_crm


def app_from_environment() -> Litestar:
    """Open the CRM named by ``$CRMKIT_CONFIG`` / ``$CRMKIT_DATABASE_URL`` and serve it."""
    return create_app(open_crm())
