"""Fixtures shared by the runner tests (registered in conftest): a Temporal client, a fresh task queue, an event sink.

A test module that needs other versions (a client that waits for its own worker) defines its own, which wins.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.client import Client

from tests.support.agents import EventCollector
from tests.support.codec import codec_client


@pytest.fixture
async def client(temporal_server: Any, stigmer_home: Any) -> Client:
    """A client of the session's real Temporal dev server, with the runners' claim-check codec."""
    return await codec_client(temporal_server.address)


@pytest.fixture
def queue() -> str:
    """A task queue of this test's own, so no other test's worker takes its work."""
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def collector() -> Iterator[EventCollector]:
    """The events the runner publishes, collected over HTTP as the daemon would receive them."""
    with EventCollector() as c:
        yield c
