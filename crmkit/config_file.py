"""Where the config file and the database are: the few facts of the config file that are
read before anything else (``crmkit --help`` lists the enabled plugins' commands with them),
without loading the settings' types, which import the entity models."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

DEFAULT_CONFIG_NAME = "crmkit.toml"
DEFAULT_DATABASE_URL = "sqlite:///crmkit.db"
SQLITE_PREFIX = "sqlite:///"


def resolve_sqlite_path(url: str, config_path: Path | None) -> str:
    """A SQLite URL with a relative path made relative to the config file's folder."""
    if not url.startswith(SQLITE_PREFIX) or url == "sqlite:///:memory:":
        return url
    path = Path(url[len(SQLITE_PREFIX) :])
    if not path.is_absolute() and config_path is not None:
        path = config_path.resolve().parent / path
    return SQLITE_PREFIX + str(path)


def configured_database_url(config: str | None, database_url: str | None) -> str | None:
    """The database URL ``Settings.load(config, database_url=...)`` would use, read without
    loading the settings; None when the config file cannot be read (then loading the
    settings says why)."""
    explicit = config or os.environ.get("CRMKIT_CONFIG")
    config_path = Path(explicit) if explicit else Path(DEFAULT_CONFIG_NAME)
    url = database_url or os.environ.get("CRMKIT_DATABASE_URL")
    if config_path.exists():
        try:
            data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return None
        section = data.get("crmkit", {})
        if not isinstance(section, dict):
            return None
        url = url or section.get("database_url")
    elif explicit:
        return None
    else:
        config_path = None  # type: ignore[assignment]
    return resolve_sqlite_path(str(url or DEFAULT_DATABASE_URL), config_path)


__all__ = [
    "DEFAULT_CONFIG_NAME",
    "DEFAULT_DATABASE_URL",
    "configured_database_url",
    "resolve_sqlite_path",
]
