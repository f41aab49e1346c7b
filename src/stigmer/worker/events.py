"""The event sink: how a runner tells the daemon what an execution is doing.

Every activity publishes typed events ``{id, execution_id, type, data, ts}`` (``step_started``,
``token``, ``tool_started``, ``tool_finished``, ``message``, ``approval_requested``, ``approval_decided``,
``completed``, ``failed``; docs/SESSIONS.md has their data). With
``STIGMER_SERVER_URL`` and ``STIGMER_SERVER_TOKEN`` set (the daemon sets them for its runners),
they are POSTed in batches to ``$STIGMER_SERVER_URL/v1/events``; otherwise they are logged.

Delivery is at least once: a batch whose POST fails (connection refused, timeout, 5xx) stays in a
bounded in-memory queue and is retried in order, with backoff, in the background, also after the
activity that emitted it has finished. The ``id`` each event gets when it is made lets the daemon
store a retried event once. A sink failure never fails or blocks an execution: while a backlog is
being retried, new events join the queue and the activity goes on; a full queue drops its oldest
events (with one warning).

While a backlog waits, it is also kept in a spool file in ``$STIGMER_HOME/data/event-spool/`` (removed
once delivered), which the daemon stores when it starts: a daemon killed with ``kill -9`` ends its
orphaned runners (SIGTERM, then SIGKILL after 5 s) before its API listens again, so their backlog
could not be posted any other way, and a runner killed mid-shutdown keeps nothing in memory. The
token is sent as a bearer header and never logged; the spool holds events only (0600).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from .._aio import cancel_and_wait
from ..config import envvars as ev

log = logging.getLogger("stigmer.events")

SPOOL_DIR = "event-spool"  # under $STIGMER_HOME/data
EVENT_TYPES = ("model_resolved", "step_started", "token", "tool_started", "tool_finished", "message", "truncated",
               "approval_requested", "approval_decided", "completed", "failed")


class _Ids:
    """Event ids: 16 random bytes per process (new after a fork), then a counter. Unique like a uuid4 per event,
    without reading the system's randomness for each (a runner makes several events per model call)."""

    def __init__(self) -> None:
        self.reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self._prefix, self._count = uuid.uuid4().hex, itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._count):x}"


_ids = _Ids()


def event(execution_id: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    """One event in the wire shape the daemon stores; ``id`` makes a retried delivery recognisable."""
    return {"id": _ids.next(), "execution_id": execution_id, "type": type_, "data": data, "ts": time.time()}


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


# How the daemon's answer to a POST is handled: delivered, keep for a retry, or dropped for good.
_SENT, _RETRY, _DROP = "sent", "retry", "drop"


class HttpSink:
    """POST ``{"events": [...]}`` to the daemon with the bearer token, at least once, in order.

    Events go into one FIFO queue (all executions of this runner). ``publish`` posts it directly
    when nothing is waiting; once a POST fails, a background task owns the queue and retries it
    with backoff (``backoff`` = first and longest pause), and ``publish`` only enqueues, so an
    activity never waits for a daemon that is down. What the daemon refuses for good (4xx, or 5xx
    answers to the same batch ``max_refusals`` times) is dropped: retrying cannot help it. While a
    backlog waits it is also kept in ``spool_dir`` (see the module docstring), and ``aclose`` tries
    once more for at most ``close_timeout`` seconds before leaving the rest there.
    """

    def __init__(self, url: str, token: str, timeout: float = 5.0, *, max_queued: int = 10_000,
                 max_batch: int = 256, backoff: tuple[float, float] = (0.1, 2.0), max_refusals: int = 5,
                 close_timeout: float = 2.0, spool_dir: Path | None = None) -> None:
        import httpx

        self._url = url.rstrip("/") + "/v1/events"
        self._client = httpx.AsyncClient(timeout=timeout, headers={"Authorization": f"Bearer {token}"})
        self._queue: deque[dict[str, Any]] = deque()
        self._max_queued, self._max_batch = max_queued, max_batch
        self._backoff, self._max_refusals, self._close_timeout = backoff, max_refusals, close_timeout
        self._spool = _Spool(spool_dir) if spool_dir is not None else None
        self._in_flight: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()
        self._retrier: asyncio.Task[None] | None = None
        self._refusals = 0
        self._last_warning = 0.0
        self._overflow_warned = False
        self.failures = 0  # failed POSTs
        self.dropped = 0  # events given up on (queue full, refused by the daemon, unsent at shutdown)

    @property
    def queued(self) -> int:
        """Events waiting for delivery."""
        return len(self._queue)

    async def publish(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        self._queue.extend(events)
        self._trim()
        if self._retrying():
            self._keep(events)
            return  # the background retry keeps the order; do not block the activity behind it
        if not await self._drain(direct=True):
            self._start_retrying()

    def _retrying(self) -> bool:
        return self._retrier is not None and not self._retrier.done()

    def _trim(self) -> None:
        """Bound the memory a long outage can take: drop the oldest events beyond ``max_queued``."""
        excess = len(self._queue) - self._max_queued
        if excess <= 0:
            return
        for _ in range(excess):
            self._queue.popleft()
        self.dropped += excess
        if not self._overflow_warned:
            self._overflow_warned = True
            log.warning("more than %d events wait for %s: dropping the oldest (the executions go on)",
                        self._max_queued, self._url)

    async def _drain(self, *, direct: bool = False) -> bool:
        """Post the queue in order until it is empty; False when a POST failed (its batch is kept)."""
        async with self._lock:
            while self._queue:
                if direct and self._retrying():
                    return True  # a failure meanwhile handed the queue to the background retry
                batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
                self._in_flight = batch
                try:
                    outcome = await self._post(batch)
                except BaseException:  # cancelled mid-POST: the batch goes back, nothing is lost
                    self._requeue(batch)
                    raise
                finally:
                    self._in_flight = []
                if outcome == _RETRY:
                    self._requeue(batch)
                    return False
        return True

    def _requeue(self, batch: list[dict[str, Any]]) -> None:
        self._queue.extendleft(reversed(batch))
        self._trim()

    async def _post(self, batch: list[dict[str, Any]]) -> str:
        import httpx

        try:
            # ASCII-escaped JSON: text a model produced may hold lone surrogates, which UTF-8 cannot carry.
            body = json.dumps({"events": batch}, default=str).encode()
            response = await self._client.post(self._url, content=body, headers={"content-type": "application/json"})
        except httpx.TransportError as exc:  # refused, reset, timed out: the daemon is down or busy
            return self._failed(batch, exc)
        except Exception as exc:  # a sink failure never fails an execution
            return self._refused(batch, f"{type(exc).__name__}: {exc}")
        if response.status_code < 300:
            self._refusals = 0
            return _SENT
        if response.status_code >= 500 or response.status_code in (408, 429):
            self._refusals += 1
            if self._refusals < self._max_refusals:
                return self._failed(batch, f"HTTP {response.status_code}")
        return self._refused(batch, f"HTTP {response.status_code}")

    def _failed(self, batch: list[dict[str, Any]], reason: object) -> str:
        self.failures += 1
        self._warn("could not post %d event(s) to %s: %s (kept, retrying in the background; the execution goes on)",
                   len(batch), self._url, reason if str(reason) else type(reason).__name__)
        return _RETRY

    def _refused(self, batch: list[dict[str, Any]], reason: str) -> str:
        self.failures += 1
        self._refusals = 0
        self.dropped += len(batch)
        log.warning("the daemon at %s refused %d event(s) (%s): dropped, retrying cannot help", self._url,
                    len(batch), reason)
        return _DROP

    def _warn(self, message: str, *args: object) -> None:
        """At most one warning per 30 s: an outage must not flood the runner's log."""
        if time.monotonic() - self._last_warning > 30:
            self._last_warning = time.monotonic()
            log.warning(message, *args)

    def _start_retrying(self) -> None:
        if not self._retrying():
            self._snapshot()
            self._retrier = asyncio.create_task(self._retry(), name="stigmer-events-retry")

    async def _retry(self) -> None:
        first, longest = self._backoff
        delay = first
        while self._queue:
            await asyncio.sleep(delay)
            delay = first if await self._drain() else min(delay * 2, longest)
        if self._spool is not None:
            self._spool.clear()
        log.info("events delivered to %s again", self._url)

    def _snapshot(self) -> None:
        """Write the whole backlog (the batch being posted included) to the spool file."""
        if self._spool is not None:
            try:
                self._spool.snapshot([*self._in_flight, *self._queue])
            except OSError as exc:
                self._warn("could not keep unsent events in %s: %s", self._spool.directory, exc)

    def _keep(self, events: list[dict[str, Any]]) -> None:
        """Add ``events`` to the spool file (rewritten whole when appends made it twice the queue's bound)."""
        if self._spool is None:
            return
        if self._spool.lines + len(events) > 2 * self._max_queued:
            self._snapshot()
            return
        try:
            self._spool.append(events)
        except OSError as exc:
            self._warn("could not keep unsent events in %s: %s", self._spool.directory, exc)

    async def aclose(self) -> None:
        """Stop retrying, try once more to deliver what is queued (at most ``close_timeout`` s), close."""
        if self._retrier is not None:
            await cancel_and_wait(self._retrier)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._drain(), self._close_timeout)
        if self._spool is not None and not self._queue:
            self._spool.clear()
        elif self._spool is not None:
            try:
                self._spool.snapshot(list(self._queue))
                log.warning("%d event(s) could not be posted to %s before the runner stopped: kept in %s for the "
                            "daemon to store when it starts", len(self._queue), self._url, self._spool.path)
                self._queue.clear()
            except OSError as exc:
                log.warning("could not keep unsent events in %s: %s", self._spool.directory, exc)
        if self._queue:
            self.dropped += len(self._queue)
            log.warning("%d event(s) could not be posted to %s before the runner stopped: dropped",
                        len(self._queue), self._url)
            self._queue.clear()
        await self._client.aclose()


class _Spool:
    """One sink's backlog on disk: JSON lines (0600) in one file, named so files sort oldest first."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / f"events-{time.time_ns()}-{os.getpid()}.jsonl"
        self.lines = 0

    def snapshot(self, events: list[dict[str, Any]]) -> None:
        """Replace the file with ``events``, atomically (a reader sees the old file or the new one)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        self._write(partial, os.O_EXCL, events)
        os.replace(partial, self.path)
        self.lines = len(events)

    def append(self, events: list[dict[str, Any]]) -> None:
        """Add ``events``; a line cut short by a kill is skipped by :func:`read_spool`."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write(self.path, os.O_APPEND, events)
        self.lines += len(events)

    def clear(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)
        self.lines = 0

    @staticmethod
    def _write(path: Path, flag: int, events: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(item, default=str) + "\n" for item in events)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | flag, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(text)


def read_spool(directory: Path) -> Iterator[tuple[Path, list[dict[str, Any]]]]:
    """Each spool file in ``directory``, oldest first, with its events (unreadable lines are skipped)."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob("events-*.jsonl")):
        try:
            lines = path.read_text(encoding="ascii", errors="replace").splitlines()
        except OSError as exc:
            log.warning("cannot read the event spool %s: %s", path, exc)
            continue
        events: list[dict[str, Any]] = []
        for line in lines:
            with contextlib.suppress(ValueError):
                item = json.loads(line)
                if isinstance(item, dict) and "execution_id" in item and "type" in item:
                    events.append(item)
        yield path, events

def make_sink(env: Mapping[str, str] | None = None, spool_dir: Path | None = None) -> EventSink:
    """The HTTP sink when ``STIGMER_SERVER_URL`` and ``STIGMER_SERVER_TOKEN`` are set, else the log sink.

    ``spool_dir`` (``$STIGMER_HOME/data/event-spool``) is where the HTTP sink leaves what it could not
    post before the runner stopped.
    """
    env = os.environ if env is None else env
    url, token = env.get(ev.SERVER_URL, ""), env.get(ev.SERVER_TOKEN, "")
    if url and token:
        return HttpSink(url, token, spool_dir=spool_dir)
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
            await cancel_and_wait(self._ticker)
            self._ticker = None
        await self.flush()
