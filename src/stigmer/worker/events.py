"""The event sink: how a runner tells the daemon what an execution is doing.

Every activity publishes typed events ``{execution_id, type, data, ts}`` (``step_started``,
``token``, ``tool_started``, ``tool_finished``, ``message``, ``completed``, ``failed``). With
``STIGMER_SERVER_URL`` and ``STIGMER_SERVER_TOKEN`` set (the daemon sets them for its runners),
they are POSTed in batches to ``$STIGMER_SERVER_URL/v1/events``; otherwise they are logged.

A sink failure never fails an execution: the daemon being down must not stop an agent, so
posting errors are logged (once in a while, not per event) and the events dropped. The token
is sent as a bearer header and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Any, Protocol

from ..config import envvars as ev

log = logging.getLogger("stigmer.events")

EVENT_TYPES = ("step_started", "token", "tool_started", "tool_finished", "message", "completed", "failed")


def event(execution_id: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    """One event in the wire shape the daemon stores."""
    return {"execution_id": execution_id, "type": type_, "data": data, "ts": time.time()}


class EventSink(Protocol):
    async def publish(self, events: list[dict[str, Any]]) -> None:
        """Deliver ``events`` (in order); never raise."""

    async def aclose(self) -> None:
        """Release connections."""


class LogSink:
    """No daemon to post to: log each event (tokens at debug level, the rest at info)."""

    async def publish(self, events: list[dict[str, Any]]) -> None:
        for item in events:
            level = logging.DEBUG if item["type"] == "token" else logging.INFO
            if log.isEnabledFor(level):
                log.log(level, "event %s %s %s", item["execution_id"], item["type"], _short(item["data"]))

    async def aclose(self) -> None:
        return None


def _short(data: dict[str, Any], limit: int = 200) -> str:
    text = repr(data)
    return text if len(text) <= limit else text[:limit] + "…"


class HttpSink:
    """POST ``{"events": [...]}`` to the daemon with the bearer token; failures are logged and dropped."""

    def __init__(self, url: str, token: str, timeout: float = 5.0) -> None:
        import httpx

        self._url = url.rstrip("/") + "/v1/events"
        self._client = httpx.AsyncClient(timeout=timeout, headers={"Authorization": f"Bearer {token}"})
        self._last_warning = 0.0
        self.failures = 0

    async def publish(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        try:
            # ASCII-escaped JSON: text a model produced may hold lone surrogates, which UTF-8 cannot carry.
            body = json.dumps({"events": events}, default=str).encode()
            response = await self._client.post(self._url, content=body, headers={"content-type": "application/json"})
            response.raise_for_status()
        except Exception as exc:  # a sink failure never fails an execution
            self.failures += 1
            if time.monotonic() - self._last_warning > 30:
                self._last_warning = time.monotonic()
                log.warning("could not post %d event(s) to %s: %s (events are dropped; the execution goes on)",
                            len(events), self._url, type(exc).__name__ if not str(exc) else exc)

    async def aclose(self) -> None:
        await self._client.aclose()


def make_sink(env: Mapping[str, str] | None = None) -> EventSink:
    """The HTTP sink when ``STIGMER_SERVER_URL`` and ``STIGMER_SERVER_TOKEN`` are set, else the log sink."""
    env = os.environ if env is None else env
    url, token = env.get(ev.SERVER_URL, ""), env.get(ev.SERVER_TOKEN, "")
    if url and token:
        return HttpSink(url, token)
    if url:
        log.warning("%s is set but %s is not: logging events instead of posting them", ev.SERVER_URL, ev.SERVER_TOKEN)
    return LogSink()


class EventBuffer:
    """Events of one activity: buffered, flushed at most every ``interval`` seconds and at the end, in order.

    Tokens arrive many per second; batching them keeps the daemon's load (and the activity's
    overhead) low while ``stigmer run`` still streams live. The flush is leading-edge: the first
    event after a quiet spell goes out at once (the first token is what a person waits for), and
    only the rest of a burst waits, at most ``interval``.
    """

    def __init__(self, sink: EventSink, execution_id: str, interval: float = 0.025, max_batch: int = 64) -> None:
        self._sink, self._execution_id = sink, execution_id
        self._interval, self._max_batch = interval, max_batch
        self._pending: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()
        self._ticker: asyncio.Task[None] | None = None

    def emit(self, type_: str, data: dict[str, Any]) -> None:
        self._pending.append(event(self._execution_id, type_, data))
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        # Runs while events keep coming; ends after one quiet interval (the next emit starts it again).
        while self._pending:
            # shielded: cancelling the ticker must not drop a batch already taken off the queue
            await asyncio.shield(self.flush())
            await asyncio.sleep(self._interval)

    async def flush(self) -> None:
        async with self._lock:
            while self._pending:
                batch, self._pending = self._pending[:self._max_batch], self._pending[self._max_batch:]
                await self._sink.publish(batch)

    async def aclose(self) -> None:
        """Flush what is left (so an activity's events are posted before its result is recorded)."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self.flush()
