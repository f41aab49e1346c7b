"""Shared fixtures for API tests over a stand-in Temporal (a pytest plugin, loaded by ``tests/conftest.py``).

``cfg`` (the scripted provider in this test's home), ``temporal`` (a :class:`FakeTemporal`), ``api``
(``create_app`` served on a free loopback port, run files published) and ``http`` (an httpx client with
the admin token). A test module overrides any of them by defining a fixture of the same name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stigmer.config import Config
from tests.support.daemon_api import ApiServer, FakeTemporal, fake_client, make_context, scripted_config, serve_api
from tests.support.scripted_provider import PLUGIN


@pytest.fixture
def cfg(stigmer_home: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("STIGMER_PLUGINS", PLUGIN)
    return scripted_config(stigmer_home)


@pytest.fixture
def temporal() -> FakeTemporal:
    return FakeTemporal()


@pytest.fixture
def database_url() -> str | None:
    """The store the ``api`` opens: None is SQLite in the test's home (``tests.support.postgres.both_backends``
    runs a module on PostgreSQL too)."""
    return None


@pytest.fixture
def api(cfg: Config, temporal: FakeTemporal, database_url: str | None) -> Iterator[ApiServer]:
    with serve_api(make_context(cfg, fake_client(temporal), database_url=database_url)) as served:
        yield served


@pytest.fixture
def http(api: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, headers=api.headers(), timeout=30) as client:
        yield client
