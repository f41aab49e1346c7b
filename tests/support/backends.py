"""``both_backends``: the ``database_url`` fixture of a module whose API tests run on both stores.

Imported by such a module (``from tests.support.backends import both_backends``), never a plugin: as a plugin it
would run every API test of the suite twice.
"""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "postgresql"], name="database_url")
def both_backends(request: pytest.FixtureRequest) -> str | None:
    """The store the API opens: None (SQLite in the test's home), then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("pg_url"))
