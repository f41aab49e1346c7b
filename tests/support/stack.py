"""A real stack in-process for a test module: the API on loopback over a real Temporal dev server, with a real
runner in a thread on the scripted model (``stack``'s ``Stack``: its home, the served API, a folder for scripts)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.daemon_api import ApiServer, WorkerThread, make_context, real_client, scripted_config, serve_api
from tests.support.scripted_provider import PLUGIN
from tests.support.temporal import TemporalServer


@dataclass
class Stack:
    home: Path
    api: ApiServer
    scripts: Path


@contextlib.contextmanager
def scripted_stack(temporal_server: TemporalServer, tmp_path_factory: pytest.TempPathFactory,
                   name: str = "stack") -> Iterator[Stack]:
    """The API and one runner on a fresh home and task queue; the runner gets the runner token as the daemon's do."""
    home = tmp_path_factory.mktemp(f"{name}-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STIGMER_HOME", str(home))
        mp.setenv("STIGMER_PLUGINS", PLUGIN)
        cfg = scripted_config(home, temporal_server.address, STIGMER_RUNNER_TASK_QUEUE=f"test-{uuid.uuid4().hex[:8]}")
        with serve_api(make_context(cfg, real_client(cfg))) as api:
            mp.setenv("STIGMER_SERVER_URL", api.url)
            mp.setenv("STIGMER_SERVER_TOKEN", api.runner_token)
            with WorkerThread(cfg):
                yield Stack(home, api, tmp_path_factory.mktemp(f"{name}-scripts"))
