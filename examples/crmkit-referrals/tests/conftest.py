"""The plugin's tests run on crmkit's test kit (crmkit.testing, a pytest plugin installed with
crmkit): these two fixtures say which plugin the `crm`, `crm_api` and `crm_cli` fixtures
enable, and with which settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest


@pytest.fixture
def crmkit_plugins() -> Sequence[str]:
    """Enable this plugin (migrations, setup) in every test's CRM."""
    return ["referrals"]


@pytest.fixture
def crmkit_settings() -> Mapping[str, Any]:
    """``[plugins.referrals]`` of the tests' CRM."""
    return {"plugin_settings": {"referrals": {"blocked_domains": ["spam.example"]}}}
