"""The API's shared state and its error type (private to the API modules)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from ..blobs import BlobStore, configured_store
from ..config._suggest import did_you_mean
from ..store import Store
from .context import DaemonContext
from .events import EventHub


class ApiError(Exception):
    """An error the API answers with: status code, a message that says what is wrong, and what to do."""

    def __init__(self, status: int, message: str, hint: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.hint = hint
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"detail": self.message, "hint": self.hint, **self.extra}


@dataclass
class KeyLock:
    """One lock per Idempotency-Key in use, dropped when its last user leaves."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


@dataclass
class ApiState:
    """Everything a route needs: the daemon context, the open store, the live event hub, the blob store.

    ``verifying`` holds the runners' terminal events waiting for Temporal's confirmation (event id ->
    execution id, task); ``starting`` serialises starts that share an ``Idempotency-Key`` (or a new session's name).
    """

    ctx: DaemonContext
    store: Store
    hub: EventHub
    verifying: dict[str, tuple[str, asyncio.Task[None]]] = field(default_factory=dict)
    starting: dict[str, KeyLock] = field(default_factory=dict)
    metrics: Any = None
    """``_metrics.Metrics`` (set by ``create_app``)."""
    _blobs: BlobStore | None = None

    @property
    def blobs(self) -> BlobStore:
        """The blob store the configuration names (``blobs.url``): the runners' own, shared by the codec server."""
        if self._blobs is None:
            self._blobs = configured_store(self.ctx.config)
        return self._blobs


def api_state(request: Request) -> ApiState:
    state = request.app.state.api
    assert isinstance(state, ApiState)
    return state


def not_found(what: str, name: str, known: list[str], hint: str) -> ApiError:
    """404 naming the missing thing, with a did-you-mean when a close name exists."""
    return ApiError(404, f"no {what} named {name!r}{did_you_mean(name, known)}", hint)


StateDep = Annotated[ApiState, Depends(api_state)]


@contextlib.asynccontextmanager
async def one_at_a_time(state: ApiState, key: str) -> AsyncIterator[None]:
    """Requests sharing ``key`` (an Idempotency-Key, a new session's name) run one at a time: a retry waits for the
    first attempt to settle."""
    entry = state.starting.setdefault(key, KeyLock())
    entry.users += 1
    try:
        async with entry.lock:
            yield
    finally:
        entry.users -= 1
        if entry.users == 0:
            state.starting.pop(key, None)
