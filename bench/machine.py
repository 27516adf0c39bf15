"""What the benchmarks ran on: CPU, cores, memory, OS, Python and database versions."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import sqlite3
from pathlib import Path

import sqlalchemy as sa
from dbs import postgres_admin_url


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                kib = int(line.split()[1])
                return f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError):
        pass
    return "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip(chr(34))} (Linux {platform.release()})"
    except OSError:
        pass
    return platform.platform()


def _postgres_version() -> str:
    try:
        engine = sa.create_engine(postgres_admin_url())
        with engine.connect() as connection:
            version = str(connection.exec_driver_sql("SHOW server_version").scalar())
        engine.dispose()
        return version
    except sa.exc.SQLAlchemyError as error:
        return f"unavailable ({type(error).__name__})"


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, str]:
    """The machine and software the numbers come from, as label → value."""
    return {
        "Date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": _cpu_model(),
        "Cores": str(os.cpu_count() or "unknown"),
        "RAM": _memory(),
        "OS": _os_name(),
        "Python": f"{platform.python_version()} ({platform.python_implementation()})",
        "SQLite": sqlite3.sqlite_version,
        "PostgreSQL": _postgres_version(),
        "Libraries": ", ".join(
            f"{name} {_version(name)}"
            for name in ("crmkit", "SQLAlchemy", "psycopg", "phonenumbers", "pluggy")
        ),
        "Load average at start": " ".join(f"{value:.2f}" for value in os.getloadavg()),
    }
