"""Live fan-out of execution events to server-sent-event subscribers.

Events are stored first (they get their ``seq`` there), then published here. A subscriber
registers *before* it replays from the store, and skips any live event whose ``seq`` it already
replayed: no event is lost in the gap between replay and live, and none is shown twice.

Each subscriber's queue holds at most ``limits.subscriber_queue`` events. A reader slower than
the events (a stalled client, a full socket) does not make the daemon's memory grow: when its
queue is full it is marked *lagged* and gets nothing more; its stream notices, tells the client
it fell behind, replays from the store after the last event it sent, and goes live again.

``ingest_spool`` stores, at start, the events runners could not post before they were stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..store import Store

log = logging.getLogger("stigmer.daemon.events")


class Subscriber:
    """One live reader of one execution: a bounded queue, and whether it overflowed since it caught up."""

    def __init__(self, limit: int) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=limit)
        self.lagged = False
        self.lags = 0  # how often it fell behind (for tests and logs)

    def offer(self, event: dict[str, Any]) -> None:
        """Queue ``event``, or mark the reader lagged when its queue is full (the store has the event)."""
        if self.lagged:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True
            self.lags += 1

    def catch_up(self) -> None:
        """Forget what is queued (it is in the store) and take live events again: the reader replays first."""
        self.lagged = False
        while not self.queue.empty():
            self.queue.get_nowait()


class EventHub:
    """Per-execution subscribers, each with a queue bounded by ``limit``. Used from the API's event loop only."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._subscribers: dict[str, set[Subscriber]] = defaultdict(set)

    def subscribe(self, execution_id: str) -> Subscriber:
        subscriber = Subscriber(self.limit)
        self._subscribers[execution_id].add(subscriber)
        return subscriber

    def unsubscribe(self, execution_id: str, subscriber: Subscriber) -> None:
        subscribers = self._subscribers.get(execution_id)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._subscribers[execution_id]

    def publish(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            for subscriber in self._subscribers.get(event["execution_id"], ()):
                subscriber.offer(event)

    def wake_all(self) -> None:
        """Make every reader replay from the store (events may have been stored that this hub never heard of)."""
        for subscribers in self._subscribers.values():
            for subscriber in subscribers:
                subscriber.lagged = True
                with contextlib.suppress(asyncio.QueueFull):  # wakes a reader waiting on its queue
                    subscriber.queue.put_nowait({"execution_id": "", "seq": 0, "type": "wake", "data": {}})

    def subscribers(self, execution_id: str) -> list[Subscriber]:
        return list(self._subscribers.get(execution_id, ()))

    def subscriber_count(self, execution_id: str) -> int:
        return len(self._subscribers.get(execution_id, ()))


def ingest_spool(store: Store, directory: Path) -> list[dict[str, Any]]:
    """Store the events runners spooled when they stopped unable to reach a daemon; return the terminal ones.

    Called when the daemon starts, before it serves and before reconciliation: a killed daemon's
    orphaned runners are ended before the new API listens, so what they could not post waits here.
    Each file is removed once its events are stored; event ids make a second pass (a crash mid-way)
    harmless. Events of executions already ended are ignored, like any late event. Terminal events
    are not stored but returned: they come from runners, so Temporal confirms them first (``_verify``).
    """
    from ..store import terminal_status
    from ..worker.events import read_spool

    stored, held = 0, []
    for path, events in read_spool(directory):
        try:
            middle = [e for e in events if terminal_status(str(e["type"]), e.get("data") or {}) is None]
            for start in range(0, len(middle), 500):
                stored += len(store.append_events(middle[start:start + 500]))
            held += [e for e in events if terminal_status(str(e["type"]), e.get("data") or {}) is not None]
            path.unlink(missing_ok=True)
        except Exception as exc:  # a bad spool file must not stop the daemon from starting
            log.warning("could not store the spooled events of %s: %s", path, exc)
    if stored or held:
        log.info("stored %d event(s) runners had kept while no daemon listened (%d terminal, to verify)", stored,
                 len(held))
    return held
