"""The tests use crmkit's test kit (installed with crmkit): it enables this plugin in each
test's CRM, on SQLite or (pytest --crmkit-postgres-url=URL) PostgreSQL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest


@pytest.fixture
def crmkit_plugins() -> Sequence[str]:
    return ["tickets"]


@pytest.fixture
def crmkit_settings() -> Mapping[str, Any]:
    return {"plugin_settings": {"tickets": {"max_open_per_contact": 2}}}
