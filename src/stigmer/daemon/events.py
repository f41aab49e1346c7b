"""Live fan-out of execution events to server-sent-event subscribers.

Events are stored first (they get their ``seq`` there), then published here. A subscriber
registers *before* it replays from the store, and skips any live event whose ``seq`` it already
replayed: no event is lost in the gap between replay and live, and none is shown twice.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from typing import Any


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
