"""Server-sent events for one execution: replay from the store after ``seq`` N, then live, then close.

The subscriber registers with the hub *before* reading the store, so an event stored between
the replay and the first live read is in the queue too; events whose ``seq`` was already sent
are skipped. The replay reads the store a page at a time, so a stream of any length is sent
whole without being held in memory. Each event's SSE ``id:`` is its ``seq``: a client that lost
the stream reconnects with ``Last-Event-ID`` (or ``?after=``) and gets exactly what follows.

The stream closes right after the execution's terminal event (``completed`` or ``failed``).
While idle it sends a comment every few seconds (noticing a gone client) and asks for a
reconciliation (noticing an execution whose runner died before posting its end). A reader too
slow for the live events falls behind (see :mod:`stigmer.daemon.events`): it is told so in a
comment line (``: fell behind at event N, resuming from the store``), which SSE clients ignore,
and the stream carries on from the store after event N, then live again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ..store import terminal_status
from ._state import ApiState

IDLE_S = 5.0


def sse(event: dict[str, Any]) -> str:
    """One event in the ``text/event-stream`` wire format (``id`` is the seq, for ``Last-Event-ID``)."""
    return f"id: {event['seq']}\nevent: {event['type']}\ndata: {json.dumps(event, default=str)}\n\n"


def _terminal(event: dict[str, Any]) -> bool:
    return terminal_status(event["type"], event.get("data") or {}) is not None


class _Cursor:
    """What the stream has sent so far: the last seq, and whether the terminal event was among it."""

    def __init__(self, after: int) -> None:
        self.last = after
        self.ended = False

    def send(self, event: dict[str, Any]) -> str:
        self.last = event["seq"]
        self.ended = _terminal(event)
        return sse(event)


async def _replay(state: ApiState, execution_id: str, cursor: _Cursor) -> AsyncIterator[str]:
    """Every stored event after the cursor, a page at a time, up to and including the terminal one."""
    for event in state.store.iter_events(execution_id, cursor.last):
        yield cursor.send(event)
        if cursor.ended:
            return


async def event_stream(state: ApiState, execution_id: str, after: int, *, follow: bool,
                       on_idle: Callable[[], Awaitable[None]]) -> AsyncIterator[str]:
    subscriber = state.hub.subscribe(execution_id)
    cursor = _Cursor(after)
    try:
        async for chunk in _replay(state, execution_id, cursor):
            yield chunk
        if cursor.ended or not follow:
            return
        while True:
            if subscriber.lagged:
                subscriber.catch_up()
                yield f": fell behind at event {cursor.last}, resuming from the store\n\n"
                async for chunk in _replay(state, execution_id, cursor):
                    yield chunk
                if cursor.ended:
                    return
                continue
            try:
                event = await asyncio.wait_for(subscriber.queue.get(), IDLE_S)
            except TimeoutError:
                yield ": idle\n\n"
                await on_idle()
                continue
            if event["seq"] <= cursor.last:
                continue
            if event["seq"] > cursor.last + 1:  # stored before one this reader has not seen (another replica's,
                async for chunk in _replay(state, execution_id, cursor):  # announced later): the store has both
                    yield chunk
                if cursor.ended:
                    return
                continue
            yield cursor.send(event)
            if cursor.ended:
                return
    finally:
        state.hub.unsubscribe(execution_id, subscriber)
