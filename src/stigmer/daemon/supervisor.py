"""The supervisor: start services in order behind real readiness probes, watch them, restart, stop.

Health is liveness plus a stable-start window plus a restart budget (jupyter_client's
``restarter.py``): a child that exits is restarted, but one that keeps dying within the
stable window of its launch is given up on after ``max_restarts`` tries and reported as
``failed`` in status, with the reason and the end of its log. A child that ran longer than
the window has its budget reset, so a single crash a day later is simply restarted.

Shutdown goes in reverse start order (runners, then the LLM, then Temporal), each child's
whole process group, SIGTERM then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._aio import cancel_and_wait
from ..errors import RuntimeFailure, StigmerError
from . import logs
from .service import Service

log = logging.getLogger("stigmer.daemon.supervisor")

# Component states, as shown by `stigmer local status`.
PENDING, STARTING, READY, RESTARTING, FAILED, STOPPING, STOPPED = (
    "pending", "starting", "ready", "restarting", "failed", "stopping", "stopped")


@dataclass(frozen=True)
class RestartPolicy:
    """How hard the supervisor tries to keep a child alive.

    Attributes:
        max_restarts: restarts allowed in a row (each within the stable window) before giving up.
        stable_window_s: a child up this long counts as having started well; its budget resets.
        backoff_s: pause before a restart, doubled for each restart in a row.
        poll_interval_s: how often children are polled for exit and probed for readiness.
    """

    max_restarts: int = 3
    stable_window_s: float = 10.0
    backoff_s: float = 0.5
    poll_interval_s: float = 0.1


class StartupFailed(RuntimeFailure):
    """A component could not be made ready; carries its name and the end of its log."""

    def __init__(self, component: str, message: str, log_tail: list[str], hint: str | None = None,
                 retryable: bool = True) -> None:
        super().__init__(f"{component}: {message}", hint=hint)
        self.reason = message
        self.component = component
        self.log_tail = log_tail
        self.retryable = retryable


@dataclass
class Component:
    """A service and what the supervisor knows about it."""

    service: Service
    state: str = PENDING
    restarts: int = 0
    in_a_row: int = 0
    launched_at: float | None = None
    ready_at: float | None = None
    last_error: str | None = None
    prepared: bool = False
    ready_once: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.service.name

    def snapshot(self) -> dict[str, Any]:
        svc = self.service
        uptime = round(time.monotonic() - self.ready_at, 1) if self.ready_at and self.state == READY else None
        return {"name": self.name, "state": self.state, "pid": svc.pid if svc.managed else None,
                "address": svc.address, "uptime_s": uptime, "restarts": self.restarts,
                "last_error": self.last_error, "managed": svc.managed, "detail": svc.detail or None,
                "log": str(svc.log_path) if svc.log_path else None}


class Supervisor:
    """Runs a fixed, ordered list of services.

    Args:
        services: in start order; stopped in reverse.
        log_dir: where children's logs go.
        policy: the restart budget.
        on_change: called with the live children (name, pid) whenever one starts or stops,
            so the daemon can keep its ledger of children for crash recovery.
    """

    def __init__(self, services: list[Service], log_dir: Path, policy: RestartPolicy | None = None,
                 on_change: Callable[[list[tuple[str, int]]], None] | None = None) -> None:
        self.components = [Component(s) for s in services]
        self.log_dir = log_dir
        self.policy = policy or RestartPolicy()
        self.on_change = on_change
        self._stopping = False
        self._watcher: asyncio.Task[None] | None = None

    def snapshot(self) -> list[dict[str, Any]]:
        """Every component's state, pid, address, uptime, restarts and last error (for /v1/status)."""
        return [c.snapshot() for c in self.components]

    def get(self, name: str) -> Component:
        return next(c for c in self.components if c.name == name)

    async def start(self) -> None:
        """Start every service as soon as the ones it ``needs`` are ready; raise StartupFailed on the first failure.

        Independent services boot side by side (Temporal and the LLM server), so a start costs the
        longest chain of dependencies, not the sum of every service.
        """
        self.log_dir.mkdir(parents=True, exist_ok=True)
        ready = {c.name: asyncio.Event() for c in self.components}
        tasks = [asyncio.create_task(self._start_after(c, ready), name=f"start-{c.name}") for c in self.components]
        try:
            await self._first_failure(tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if not self._stopping:
            self._watcher = asyncio.create_task(self._watch(), name="supervisor-watch")

    @staticmethod
    async def _first_failure(tasks: list[asyncio.Task[None]]) -> None:
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                error = None if task.cancelled() else task.exception()
                if error is not None:
                    raise error

    async def _start_after(self, comp: Component, ready: dict[str, asyncio.Event]) -> None:
        for name in comp.service.needs:
            if name in ready:
                await ready[name].wait()
        if not self._stopping:
            await self._bring_up(comp)
            ready[comp.name].set()

    async def _bring_up(self, comp: Component) -> None:
        while True:
            try:
                await self._start_once(comp)
                return
            except StartupFailed as exc:
                if not self._may_retry(comp, exc):
                    comp.state, comp.last_error = FAILED, exc.reason
                    raise
                await self._backoff(comp)

    def _may_retry(self, comp: Component, exc: StartupFailed) -> bool:
        retryable = comp.prepared and comp.service.managed and exc.retryable
        return retryable and not self._stopping and comp.in_a_row < self.policy.max_restarts

    async def _backoff(self, comp: Component) -> None:
        comp.in_a_row += 1
        comp.restarts += 1
        comp.state = RESTARTING
        await asyncio.sleep(self.policy.backoff_s * 2 ** (comp.in_a_row - 1))

    async def _start_once(self, comp: Component) -> None:
        svc = comp.service
        comp.state, comp.last_error, comp.ready_at = STARTING, None, None
        if not comp.prepared:
            await self._prepare(comp)
        if svc.managed:
            svc.launch(self.log_dir)
            comp.launched_at = time.monotonic()
            self._changed()
            log.info("%s: launched pid %s", comp.name, svc.pid)
        await self._wait_ready(comp)
        if not comp.ready_once:
            await self._after_ready(comp)
        comp.state, comp.ready_at, comp.ready_once = READY, time.monotonic(), True
        svc.detail = ""
        log.info("%s: ready at %s", comp.name, svc.address)

    async def _after_ready(self, comp: Component) -> None:
        try:
            await comp.service.after_ready()
        except StigmerError as exc:
            await comp.service.stop()
            raise StartupFailed(comp.name, exc.message, [], hint=exc.hint, retryable=False) from None

    async def _prepare(self, comp: Component) -> None:
        try:
            await comp.service.prepare()
        except StigmerError as exc:
            raise StartupFailed(comp.name, exc.message, [], hint=exc.hint, retryable=False) from None
        comp.prepared = True

    async def _wait_ready(self, comp: Component) -> None:
        svc = comp.service
        deadline = time.monotonic() + svc.ready_timeout_s
        while not self._stopping:
            code = svc.poll()
            if code is not None:
                raise StartupFailed(comp.name, f"exited with code {code} while starting", self._tail(comp),
                                    hint=f"see its log: {svc.log_path}")
            if await svc.ready():
                return
            if time.monotonic() > deadline:
                await svc.stop()
                raise self._unready(comp)
            await asyncio.sleep(self.policy.poll_interval_s)

    def _unready(self, comp: Component) -> StartupFailed:
        svc = comp.service
        custom = svc.unready_message()
        if custom is not None:
            return StartupFailed(comp.name, custom[0], [], hint=custom[1], retryable=False)
        where = f" at {svc.address}" if svc.address else ""
        return StartupFailed(comp.name, f"not ready{where} after {svc.ready_timeout_s:g}s", self._tail(comp),
                             hint=f"see its log: {svc.log_path}" if svc.log_path else None)

    def _tail(self, comp: Component, lines: int = 15) -> list[str]:
        return logs.tail(comp.service.log_path, lines) if comp.service.log_path else []

    async def _watch(self) -> None:
        """Poll children; restart the ones that exit, within the budget."""
        while not self._stopping:
            for comp in self.components:
                if comp.state == READY and comp.service.managed and comp.task is None:
                    code = comp.service.poll()
                    if code is not None:
                        comp.task = asyncio.create_task(self._recover(comp, code), name=f"recover-{comp.name}")
            await asyncio.sleep(self.policy.poll_interval_s)

    async def _recover(self, comp: Component, code: int) -> None:
        try:
            self._changed()
            up = time.monotonic() - (comp.launched_at or 0.0)
            if up >= self.policy.stable_window_s:
                comp.in_a_row = 0
            comp.last_error = f"exited with code {code} after {up:.1f}s"
            log.warning("%s: %s", comp.name, comp.last_error)
            if comp.in_a_row >= self.policy.max_restarts:
                self._give_up(comp)
                return
            await self._backoff(comp)
            if not self._stopping:
                await self._bring_up(comp)
        except StartupFailed as exc:
            log.error("%s: %s", comp.name, exc)
            self._give_up(comp, exc.reason)
        finally:
            comp.task = None

    def _give_up(self, comp: Component, reason: str | None = None) -> None:
        comp.state = FAILED
        comp.last_error = (f"{reason or comp.last_error}; gave up after {comp.restarts} restarts "
                           f"(see `stigmer local logs {comp.name}`)")
        log.error("%s: %s", comp.name, comp.last_error)

    async def stop(self) -> None:
        """Stop every managed child, in reverse start order. Safe to call more than once."""
        self._stopping = True
        if self._watcher is not None:
            await cancel_and_wait(self._watcher)
        for comp in self.components:
            if comp.task is not None:
                comp.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, StigmerError):
                    await comp.task
        for comp in reversed(self.components):
            await self._stop_one(comp)

    async def _stop_one(self, comp: Component) -> None:
        final = FAILED if comp.state == FAILED else STOPPED
        if not comp.service.managed or comp.service.process is None:
            comp.state = final
            return
        comp.state = STOPPING
        log.info("%s: stopping pid %s", comp.name, comp.service.pid)
        try:
            await comp.service.stop()
        finally:
            comp.state = final
            self._changed()

    def live_children(self) -> list[tuple[str, int]]:
        return [(c.name, c.service.process.pid) for c in self.components
                if c.service.managed and c.service.process is not None and c.service.process.poll() is None]

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change(self.live_children())
            except OSError as exc:  # the ledger is a safety net; never let it stop supervision
                log.warning("could not record children: %s", exc)
