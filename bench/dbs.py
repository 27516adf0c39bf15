"""Throwaway databases for the benchmarks: a migrated template per engine, copied per run.

SQLite databases are files in a temporary folder; PostgreSQL databases are created through an
admin URL (``CRMKIT_BENCH_POSTGRES_URL``) from a migrated template and dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

import crmkit

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BACKENDS = ("sqlite", "postgresql")


def postgres_admin_url() -> str:
    """The admin URL the benchmarks create their databases through."""
    return os.environ.get("CRMKIT_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def _admin_engine() -> sa.Engine:
    return sa.create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")


def _postgres_url(name: str) -> str:
    url = sa.make_url(postgres_admin_url()).set(database=name)
    return url.render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """``url`` (an SQLAlchemy URL) as psycopg's ``connect()`` takes it."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def sqlite_path(url: str) -> str:
    """The file of an ``sqlite:///`` URL."""
    return str(sa.make_url(url).database)


class Databases:
    """Fresh, migrated databases of one engine, each from the same template.

    Use as a context manager; every database it made is removed on exit.
    """

    def __init__(self, backend: str) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}")
        self.backend = backend
        self.run_id = uuid.uuid4().hex[:8]
        self._folder = Path(tempfile.mkdtemp(prefix="crmkit-bench-"))
        self._created: list[str] = []
        self._template: str | None = None

    def __enter__(self) -> Databases:
        if self.backend == "sqlite":
            path = self._folder / "template.db"
            crmkit.open(f"sqlite:///{path}", discover=False, upgrade=True).close()
            self._template = str(path)
        else:
            name = f"crmkit_bench_tmpl_{self.run_id}"
            self._create(name)
            crmkit.open(_postgres_url(name), discover=False, upgrade=True).close()
            self._template = name
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.backend == "postgresql" and self._created:
            admin = _admin_engine()
            with admin.connect() as connection:
                for name in reversed(self._created):
                    connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
        shutil.rmtree(self._folder, ignore_errors=True)

    def _create(self, name: str, template: str | None = None) -> None:
        admin = _admin_engine()
        with admin.connect() as connection:
            clause = f' TEMPLATE "{template}"' if template else ""
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"{clause}')
        admin.dispose()
        self._created.append(name)

    def fresh(self) -> str:
        """The URL of a new database holding the core schema and nothing else."""
        assert self._template is not None, "use Databases as a context manager"
        label = uuid.uuid4().hex[:8]
        if self.backend == "sqlite":
            path = self._folder / f"{label}.db"
            shutil.copyfile(self._template, path)
            return f"sqlite:///{path}"
        name = f"crmkit_bench_{self.run_id}_{label}"
        self._create(name, template=self._template)
        return _postgres_url(name)

    def clone(self, url: str) -> str:
        """A new database holding a copy of ``url``'s (which nobody may be connected to)."""
        label = uuid.uuid4().hex[:8]
        if self.backend == "sqlite":
            path = self._folder / f"{label}.db"
            shutil.copyfile(sqlite_path(url), path)
            return f"sqlite:///{path}"
        name = f"crmkit_bench_{self.run_id}_{label}"
        self._create(name, template=str(sa.make_url(url).database))
        return _postgres_url(name)

    def drop(self, url: str) -> None:
        """Remove one database made by :meth:`fresh` (frees disk between runs)."""
        if self.backend == "sqlite":
            path = Path(sqlite_path(url))
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
            return
        name = str(sa.make_url(url).database)
        admin = _admin_engine()
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
        if name in self._created:
            self._created.remove(name)


@contextmanager
def databases(backend: str) -> Iterator[Databases]:
    """``with databases("sqlite") as dbs: url = dbs.fresh()``."""
    with Databases(backend) as made:
        yield made
