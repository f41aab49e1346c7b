"""Server-sent events for one execution: replay from the store after ``seq`` N, then live, then close.

The subscriber registers with the hub *before* reading the store, so an event stored between
the replay and the first live read is in the queue too; events whose ``seq`` was already sent
are skipped. The stream closes right after the execution's terminal event (``completed`` or
``failed``). While idle it sends a comment every few seconds (noticing a gone client) and asks
for a reconciliation (noticing an execution whose runner died before posting its end).
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
    """One event in the ``text/event-stream`` wire format (``id`` is the seq, for ``?after=``)."""
    return f"id: {event['seq']}\nevent: {event['type']}\ndata: {json.dumps(event, default=str)}\n\n"


def _terminal(event: dict[str, Any]) -> bool:
    return terminal_status(event["type"], event.get("data") or {}) is not None


async def event_stream(state: ApiState, execution_id: str, after: int, *, follow: bool,
                       on_idle: Callable[[], Awaitable[None]]) -> AsyncIterator[str]:
    queue = state.hub.subscribe(execution_id)
    try:
        last = after
        for event in state.store.events_after(execution_id, after):
            yield sse(event)
            last = event["seq"]
            if _terminal(event):
                return
        if not follow:
            return
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), IDLE_S)
            except TimeoutError:
                yield ": idle\n\n"
                await on_idle()
                continue
            if event["seq"] <= last:
                continue
            yield sse(event)
            last = event["seq"]
            if _terminal(event):
                return
    finally:
        state.hub.unsubscribe(execution_id, queue)
