"""Live fan-out of execution events to server-sent-event subscribers.

Events are stored first (they get their ``seq`` there), then published here. A subscriber
registers *before* it replays from the store, and skips any live event whose ``seq`` it already
replayed: no event is lost in the gap between replay and live, and none is shown twice.

``ingest_spool`` stores, at start, the events runners could not post before they were stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..store import Store

log = logging.getLogger("stigmer.daemon.events")


class EventHub:
    """Per-execution subscriber queues. Used from the API's event loop only."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)

    def subscribe(self, execution_id: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._subscribers[execution_id].add(queue)
        return queue

    def unsubscribe(self, execution_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        queues = self._subscribers.get(execution_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._subscribers[execution_id]

    def publish(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            for queue in self._subscribers.get(event["execution_id"], ()):
                queue.put_nowait(event)

    def subscriber_count(self, execution_id: str) -> int:
        return len(self._subscribers.get(execution_id, ()))


def ingest_spool(store: Store, directory: Path) -> int:
    """Store the events runners spooled when they stopped unable to reach a daemon; return how many were new.

    Called when the daemon starts, before it serves and before reconciliation: a killed daemon's
    orphaned runners are ended before the new API listens, so what they could not post waits here.
    Each file is removed once its events are stored; event ids make a second pass (a crash mid-way)
    harmless. Events of executions already ended are ignored, like any late event.
    """
    from ..worker.events import read_spool

    stored = 0
    for path, events in read_spool(directory):
        try:
            for start in range(0, len(events), 500):
                stored += len(store.append_events(events[start:start + 500]))
            path.unlink(missing_ok=True)
        except Exception as exc:  # a bad spool file must not stop the daemon from starting
            log.warning("could not store the spooled events of %s: %s", path, exc)
    if stored:
        log.info("stored %d event(s) runners had kept while no daemon listened", stored)
    return stored
