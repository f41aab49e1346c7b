"""The event sink: how a runner tells the daemon what an execution is doing.

Every activity publishes typed events ``{id, execution_id, type, data, ts}`` (``step_started``,
``token``, ``tool_started``, ``tool_finished``, ``message``, ``approval_requested``, ``approval_decided``,
``completed``, ``failed``; docs/SESSIONS.md has their data). With
``STIGMER_SERVER_URL`` and ``STIGMER_SERVER_TOKEN`` set (the daemon sets them for its runners),
they are POSTed in batches to ``$STIGMER_SERVER_URL/v1/events``; otherwise they are logged.

Delivery is at least once: a batch whose POST fails (connection refused, timeout, 5xx) stays in the
backlog and is retried in order, with backoff, in the background, also after the activity that
emitted it has finished. The ``id`` each event gets when it is made lets the server store a retried
event once. A sink failure never fails or blocks an execution: while a backlog is being retried, new
events join it and the activity goes on.

While a backlog waits it is written through to a spool file (``spool.py``; removed once delivered):
every event is on disk before ``publish`` returns, so a runner killed with ``kill -9`` during an
outage loses only what was not handed to the sink yet (an activity's events of the last 25 ms, see
:class:`EventBuffer`) and a batch whose POST was still waiting for its answer (at most ``timeout``,
5 s, when the server hangs instead of refusing). No ``fsync``: the file survives the process, not a
power cut, and an outage does not turn every token into a disk flush. Memory holds the oldest 10,000
events of the backlog; past that the file alone keeps them (read back in order as memory empties),
up to 200,000 events (~30 MB of token events; ``tool_finished`` carries 2,000 characters at most),
beyond which the oldest are dropped with one warning: a runner cut off for hours keeps the newest
events, which say how its executions ended, and cannot fill its disk.

Who delivers a spool file after the runner stops: the local daemon stores the files of its own
runners when it starts (a daemon killed with ``kill -9`` ends its orphaned runners before its API
listens again, so their backlog could not be posted any other way); any other runner
(``stigmer runner --server URL``) re-sends its own when it starts again, before its new events
(``HttpSink.start``; docs/RELIABILITY.md, "Runners on other machines"). The token is sent as a
bearer header and never logged; the spool holds events only (0600).
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
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from .._aio import cancel_and_wait
from ..config import envvars as ev
from .spool import SPOOL_DIR, Leftovers, SpoolFile, read_spool, server_spool_dir

__all__ = ["EVENT_TYPES", "SPOOL_DIR", "EventBuffer", "EventSink", "HttpSink", "LogSink", "event", "make_sink",
           "read_spool"]

log = logging.getLogger("stigmer.events")

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

    def start(self) -> None:
        """Begin background work (re-sending what an earlier life spooled); called once, in the event loop."""


class LogSink:
    """No daemon to post to: log each event (tokens at debug level, the rest at info)."""

    def start(self) -> None:
        return None

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


# How the server's answer to a POST is handled: delivered, keep for a retry, dropped for good, or refused because of
# the token (401/403): dropped like any refusal, except that what an earlier life spooled stays for a later start.
_SENT, _RETRY, _DROP, _DENIED = "sent", "retry", "drop", "denied"


class HttpSink:
    """POST ``{"events": [...]}`` to the server with the bearer token, at least once, in order.

    Events go into one FIFO backlog (all executions of this runner). ``publish`` posts it directly
    when nothing is waiting; once a POST fails, a background task owns the backlog and retries it
    with backoff (``backoff`` = first and longest pause), and ``publish`` only enqueues, so an
    activity never waits for a server that is down. What the server refuses for good (4xx, or 5xx
    answers to the same batch ``max_refusals`` times) is dropped: retrying cannot help it.

    With ``spool_dir``, a waiting backlog is written through to a spool file as it grows: memory holds
    its oldest ``max_queued`` events, the file all of it, up to ``max_spooled`` events (beyond that the
    oldest are dropped); see the module docstring for why. ``aclose`` tries once more for at most
    ``close_timeout`` seconds, then leaves the rest in the file. With ``resend`` (a runner that is not the
    local daemon's child), :meth:`start` first delivers the files an earlier life left in ``spool_dir``.
    """

    def __init__(self, url: str, token: str, timeout: float = 5.0, *, max_queued: int = 10_000,
                 max_spooled: int = 200_000, max_batch: int = 256, backoff: tuple[float, float] = (0.1, 2.0),
                 max_refusals: int = 5, close_timeout: float = 2.0, spool_dir: Path | None = None,
                 resend: bool = False) -> None:
        import httpx

        self._url = url.rstrip("/") + "/v1/events"
        self._client = httpx.AsyncClient(timeout=timeout, headers={"Authorization": f"Bearer {token}"})
        self._queue: deque[dict[str, Any]] = deque()
        self._max_queued, self._max_spooled = max_queued, max(max_spooled, max_queued)
        self._max_batch = max_batch
        self._backoff, self._max_refusals, self._close_timeout = backoff, max_refusals, close_timeout
        self._resend = resend and spool_dir is not None
        self._spool = SpoolFile(spool_dir, lock=self._resend) if spool_dir is not None else None
        self._leftovers = Leftovers(spool_dir, max_batch) if spool_dir is not None and self._resend else None
        self._on_disk = 0  # backlog events kept in the spool file only (they come after those in memory)
        self._disk_at = 0  # the spool file offset of the first of them
        self._in_flight: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()
        self._retrier: asyncio.Task[None] | None = None
        self._refusals = 0
        self._reason = ""
        self._last_warning = self._last_report = float("-inf")
        self._overflow_warned = False
        self._outage_began: int | None = None  # self.delivered when the current outage began
        self.failures = 0  # failed POSTs
        self.delivered = 0  # events the server took
        self.dropped = 0  # events given up on (over a bound, refused by the server, unsent at shutdown)

    @property
    def queued(self) -> int:
        """Events waiting for delivery (in memory, or in the spool file only)."""
        return len(self._queue) + self._on_disk

    def start(self) -> None:
        """Deliver, in the background and before any new event, what an earlier life left in the spool directory."""
        if self._leftovers is None or not self._leftovers.pending() or self._retrying():
            return
        log.info("%d event(s) a runner kept while it could not reach %s are in %s: delivering them before new ones",
                 self._leftovers.count(), self._url, self._leftovers.directory)
        self._retrier = asyncio.create_task(self._retry(), name="stigmer-events-retry")

    async def publish(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        if self._retrying():
            self._hold(events)
            return  # the background retry keeps the order; do not block the activity behind it
        self._queue.extend(events)
        self._trim()
        if not await self._drain(direct=True):
            self._start_retrying()

    def _retrying(self) -> bool:
        return self._retrier is not None and not self._retrier.done()

    def _backlog(self) -> bool:
        return bool(self._queue or self._on_disk or (self._leftovers is not None and self._leftovers.pending()))

    def _trim(self) -> None:
        """Bound the memory a backlog without a spool file takes: drop the oldest events beyond ``max_queued``."""
        excess = len(self._queue) - self._max_queued
        if excess > 0:
            for _ in range(excess):
                self._queue.popleft()
            self._overflowed(excess, self._max_queued)

    def _hold(self, events: list[dict[str, Any]]) -> None:
        """While a backlog waits: each event goes to the spool file, and to memory while memory has room.

        Memory holds the oldest part of the backlog, the file all of it: once an event did not fit in
        memory, every later one stays in the file only (read back in order when memory empties).
        """
        starts = self._append(events)
        if starts is None:  # no spool (or it cannot be written): memory alone, as long as the order allows
            if self._on_disk:
                self.dropped += len(events)
                return
            self._queue.extend(events)
            self._trim()
            return
        room = 0 if self._on_disk else max(0, self._max_queued - len(self._queue) - len(self._in_flight))
        self._queue.extend(events[:room])
        if room < len(events):
            if not self._on_disk:
                self._disk_at = starts[room]
            self._on_disk += len(events) - room
        self._bound()
        self._compact()

    def _bound(self) -> None:
        """Bound the disk a long outage takes: drop the oldest events beyond ``max_spooled``."""
        excess = self.queued - self._max_spooled
        while excess > 0 and (self._queue or self._reload()):
            dropped = min(excess, len(self._queue))
            for _ in range(dropped):
                self._queue.popleft()
            excess -= dropped
            self._overflowed(dropped, self._max_spooled)

    def _overflowed(self, count: int, bound: int) -> None:
        self.dropped += count
        if not self._overflow_warned:
            self._overflow_warned = True
            log.warning("more than %d events wait for %s: dropping the oldest (the executions go on)", bound,
                        self._url)

    def _reload(self) -> bool:
        """Memory is empty: read the next events kept in the spool file only into it. False when there are none."""
        while self._on_disk and not self._queue and self._spool is not None:
            try:
                events, at, read = self._spool.read_from(self._disk_at, min(self._on_disk, self._max_queued))
            except OSError as exc:
                self._warn("cannot read the unsent events back from %s: %s", self._spool.path, exc)
                events, at, read = [], self._disk_at, 0
            if not read:  # the file lost them (removed by hand, a disk error)
                self.dropped += self._on_disk
                self._on_disk = 0
                break
            self._disk_at, self._on_disk = at, self._on_disk - read
            self.dropped += read - len(events)
            self._queue.extend(events)
        return bool(self._queue)

    def _append(self, events: list[dict[str, Any]]) -> list[int] | None:
        if self._spool is None:
            return None
        try:
            return self._spool.append(events)
        except OSError as exc:
            self._warn("could not keep unsent events in %s: %s", self._spool.directory, exc)
            return None

    def _compact(self) -> None:
        """Rewrite the spool file without the events already delivered, once they are most of it."""
        spool, backlog = self._spool, len(self._in_flight) + self.queued
        if spool is None or spool.lines <= 2 * max(backlog, self._max_queued):
            return
        try:
            start = spool.rewrite([*self._in_flight, *self._queue], self._disk_at if self._on_disk else None)
        except OSError as exc:
            self._warn("could not rewrite %s: %s", spool.path, exc)
            return
        self._disk_at = start

    def _snapshot(self) -> None:
        """Write the whole backlog (the batch being posted included) to the spool file."""
        if self._spool is not None:
            try:
                self._spool.rewrite([*self._in_flight, *self._queue])
            except OSError as exc:
                self._warn("could not keep unsent events in %s: %s", self._spool.directory, exc)

    async def _drain(self, *, direct: bool = False) -> bool:
        """Post the backlog in order until it is empty; False when a POST failed (its batch is kept)."""
        async with self._lock:
            if not direct and not await self._drain_leftovers():
                return False
            while self._queue or self._reload():
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
                self._count(batch, outcome)
        return True

    async def _drain_leftovers(self) -> bool:
        """Post what an earlier life spooled, file by file; False when a POST failed (the batch is kept)."""
        left = self._leftovers
        while left is not None:
            try:
                batch = left.next_batch()
            except OSError as exc:
                log.warning("cannot read the event spool in %s: %s (left there)", left.directory, exc)
                left.stop()
                batch = None
            if batch is None:
                if left.delivered:
                    log.info("delivered %d spooled event(s) to %s", left.delivered, self._url)
                self._leftovers = None
                break
            outcome = await self._post(batch)
            if outcome == _RETRY:
                return False
            if outcome == _DENIED:
                log.warning("%s refuses this runner's token (%s): the spooled events in %s stay there for a start "
                            "with a token it takes", self._url, self._reason, left.directory)
                left.stop()
                continue
            self._count(batch, outcome)
            left.ack()
        return True

    def _requeue(self, batch: list[dict[str, Any]]) -> None:
        self._queue.extendleft(reversed(batch))
        self._trim()

    def _count(self, batch: list[dict[str, Any]], outcome: str) -> None:
        if outcome == _SENT:
            self.delivered += len(batch)
            return
        self.dropped += len(batch)
        log.warning("the server at %s refused %d event(s) (%s): dropped, retrying cannot help", self._url,
                    len(batch), self._reason)

    async def _post(self, batch: list[dict[str, Any]]) -> str:
        import httpx

        try:
            # ASCII-escaped JSON: text a model produced may hold lone surrogates, which UTF-8 cannot carry.
            body = json.dumps({"events": batch}, default=str).encode()
            response = await self._client.post(self._url, content=body, headers={"content-type": "application/json"})
        except httpx.TransportError as exc:  # refused, reset, timed out: the server is down or busy
            return self._failed(str(exc) or type(exc).__name__)
        except Exception as exc:  # a sink failure never fails an execution
            return self._refused(f"{type(exc).__name__}: {exc}")
        if response.status_code < 300:
            self._refusals = 0
            return _SENT
        if response.status_code >= 500 or response.status_code in (408, 429):
            self._refusals += 1
            if self._refusals < self._max_refusals:
                return self._failed(f"HTTP {response.status_code}")
        outcome = self._refused(f"HTTP {response.status_code}")
        return _DENIED if response.status_code in (401, 403) else outcome

    def _failed(self, reason: str) -> str:
        self.failures += 1
        self._reason = reason
        return _RETRY

    def _refused(self, reason: str) -> str:
        self.failures += 1
        self._refusals = 0
        self._reason = reason
        return _DROP

    def _warn(self, message: str, *args: object) -> None:
        """At most one warning per 30 s: an outage must not flood the runner's log."""
        if time.monotonic() - self._last_warning > 30:
            self._last_warning = time.monotonic()
            log.warning(message, *args)

    def _report(self) -> None:
        """Say (at most every 30 s) that the server cannot be reached, and where the backlog waits."""
        if time.monotonic() - self._last_report < 30:
            return
        self._last_report = time.monotonic()
        where = "in memory" if self._spool is None else f"on disk in {self._spool.directory}"
        if self._leftovers is not None and self._leftovers.pending():
            where += ", after the spool an earlier runner left there"
        log.warning("could not post events to %s (%s): server unreachable, %d event(s) kept %s; retrying in the "
                    "background, the executions go on", self._url, self._reason, self.queued, where)

    def _start_retrying(self) -> None:
        if not self._retrying():
            self._snapshot()
            self._outage_began = self.delivered
            self._report()
            self._retrier = asyncio.create_task(self._retry(), name="stigmer-events-retry")

    async def _retry(self) -> None:
        first, longest = self._backoff
        delay = first
        while self._backlog():
            await asyncio.sleep(delay)
            if await self._drain():
                delay = first
            else:
                if self._outage_began is None:  # (re-sending an earlier life's spool when the server was down)
                    self._outage_began = self.delivered
                self._report()
                delay = min(delay * 2, longest)
        if self._spool is not None:
            self._spool.clear()
        if self._outage_began is not None:
            where = "" if self._spool is None else f" (kept in {self._spool.directory} meanwhile)"
            log.info("%s reachable again: delivered %d spooled event(s)%s", self._url,
                     self.delivered - self._outage_began, where)
            self._outage_began = None

    async def aclose(self) -> None:
        """Stop retrying, try once more to deliver the backlog (at most ``close_timeout`` s), close."""
        if self._retrier is not None:
            await cancel_and_wait(self._retrier)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._drain(), self._close_timeout)
        if self._leftovers is not None:
            self._leftovers.stop()  # what is left of them stays on disk for the next start
        if self._spool is not None:
            self._keep_on_stop(self._spool)
        if self.queued:
            self.dropped += self.queued
            log.warning("%d event(s) could not be posted to %s before the runner stopped: dropped", self.queued,
                        self._url)
            self._queue.clear()
            self._on_disk = 0
        await self._client.aclose()

    def _keep_on_stop(self, spool: SpoolFile) -> None:
        """Leave the backlog (memory's part, then the file's) alone in the spool file; remove it when there is none."""
        try:
            if not self.queued:
                spool.clear()
                return
            spool.rewrite(list(self._queue), self._disk_at if self._on_disk else None)
            who = "this runner delivers them when it starts again" if self._resend else \
                "the daemon stores them when it starts"
            log.warning("%d event(s) could not be posted to %s before the runner stopped: kept in %s (%s)",
                        self.queued, self._url, spool.path, who)
            self._queue.clear()
            self._on_disk = 0
        except OSError as exc:
            log.warning("could not keep unsent events in %s: %s", spool.directory, exc)
        finally:
            spool.release()


def make_sink(env: Mapping[str, str] | None = None, spool_dir: Path | None = None) -> EventSink:
    """The HTTP sink when ``STIGMER_SERVER_URL`` and ``STIGMER_SERVER_TOKEN`` are set, else the log sink.

    ``spool_dir`` (``$STIGMER_HOME/data/event-spool``) is where the HTTP sink keeps a backlog. A runner the
    local daemon started (``STIGMER_MANAGED_RUNNER=1``) uses it as it is, for the daemon to store at its
    start; any other runner uses its server's own directory under it and re-sends that itself (``spool``).
    """
    env = os.environ if env is None else env
    url, token = env.get(ev.SERVER_URL, ""), env.get(ev.SERVER_TOKEN, "")
    if url and token:
        resend = spool_dir is not None and env.get(ev.MANAGED_RUNNER) != "1"
        if resend and spool_dir is not None:
            spool_dir = server_spool_dir(spool_dir, url)
        return HttpSink(url, token, spool_dir=spool_dir, resend=resend)
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
