"""The REST API (Litestar): :func:`create_app` and the pieces plugins and tests use."""

from crmkit.api.app import PLUGIN_PREFIX, create_app
from crmkit.api.contract import untyped_operations
from crmkit.api.problems import PROBLEM_MEDIA_TYPE, Problem
from crmkit.api.schemas import MatchedRecord

__all__ = [
    "PLUGIN_PREFIX",
    "PROBLEM_MEDIA_TYPE",
    "MatchedRecord",
    "Problem",
    "create_app",
    "untyped_operations",
]
