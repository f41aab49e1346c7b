"""The daemon's API served for tests: uvicorn on a free loopback port, in a thread, over a DaemonContext.

``serve_api`` also writes ``run/token`` and ``run/state.json`` and holds ``run/daemon.lock`` the way
the daemon does, so ``stigmer.cli._client`` finds it exactly as it finds a real daemon.
``FakeTemporal`` stands in for the Temporal client where Temporal is not the point of a test
(it records the workflows started, signals and Updates sent, answers the session ``turn`` query from what a
test sets, and can refuse Updates as a workflow's validator does; it is not a server and says so).
The API gets two tokens, as from the daemon: the admin's (``token``) and the runners' (``runner_token``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import uvicorn

from stigmer.config import Config, resolve
from stigmer.daemon.api import create_app
from stigmer.daemon.context import DaemonContext
from stigmer.daemon.files import DaemonLock, DaemonState, new_runner_token, new_token, remove_run_files, write_state
from tests.support.ports import free_port
from tests.support.scripted_provider import PLUGIN


def scripted_config(home: Path, temporal_address: str = "127.0.0.1:1", **env: str) -> Config:
    """A configuration on the scripted provider (plugin), pointing at ``temporal_address``.

    Set ``STIGMER_PLUGINS`` in the test's environment too (``monkeypatch.setenv``): the provider
    registry, like every process stigmer starts, reads the plugins from the environment.
    """
    base = {"STIGMER_HOME": str(home), "STIGMER_PLUGINS": PLUGIN, "STIGMER_LLM_PROVIDER": "scripted",
            "TEMPORAL_ADDRESS": temporal_address}
    return resolve({}, {**base, **env})


@dataclass
class FakeHandle:
    temporal: FakeTemporal
    workflow_id: str

    def _known(self) -> None:
        from temporalio.service import RPCError, RPCStatusCode

        if self.temporal.unreachable is not None:
            raise self.temporal.unreachable
        if self.temporal.lost or self.workflow_id not in {s["id"] for s in self.temporal.started}:
            raise RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")

    async def signal(self, name: str, *args: Any) -> None:
        if self.temporal.lost:
            from temporalio.service import RPCError, RPCStatusCode

            raise RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")
        self.temporal.signals.append((self.workflow_id, name))
        self.temporal.signal_args.append((self.workflow_id, name, args))

    async def describe(self) -> Any:
        """A started workflow is running (no activity yet); any other is unknown, like Temporal says."""
        from temporalio.client import WorkflowExecutionStatus

        self._known()
        return SimpleNamespace(status=WorkflowExecutionStatus.RUNNING, close_time=None,
                               raw_description=SimpleNamespace(pending_activities=[]))

    async def execute_update(self, name: str, arg: Any, *, id: str | None = None, rpc_timeout: Any = None) -> Any:
        """Record the Update; a session's ``send_message`` answers its place, the same again for a repeated id.

        ``reject`` (a message) makes the next Updates fail as a workflow's validator does.
        """
        from temporalio.client import WorkflowUpdateFailedError
        from temporalio.exceptions import ApplicationError

        from stigmer.worker.params import SEND_MESSAGE

        self._known()
        if self.temporal.reject is not None:
            raise WorkflowUpdateFailedError(ApplicationError(self.temporal.reject, type="Refused",
                                                             non_retryable=True))
        self.temporal.updates.append({"workflow_id": self.workflow_id, "name": name, "arg": arg, "id": id})
        if name != SEND_MESSAGE:
            return None
        turns, order = self.temporal.turns, self.temporal.turn_order.setdefault(self.workflow_id, [])
        if arg.execution_id not in order:  # a repeated Update id is the same Update
            waiting = sum(1 for e in order if turns.get(e, {}).get("status") in ("queued", "running"))
            turns.setdefault(arg.execution_id, {"status": "queued" if waiting else "running"})
            order.append(arg.execution_id)
        ahead = order[:order.index(arg.execution_id)]
        position = sum(1 for e in ahead if turns.get(e, {}).get("status") in ("queued", "running"))
        return {"execution_id": arg.execution_id, "queued": position}

    async def query(self, name: str, arg: Any = None) -> Any:
        """``turn(execution_id)``: what ``turns`` says of it (``unknown`` when nothing)."""
        from stigmer.worker.params import TURN

        self._known()
        if name == TURN:
            return dict(self.temporal.turns.get(arg, {"status": "unknown"}))
        return {"status": "idle"}

    async def result(self) -> Any:
        """A session closed by the ``close`` signal has a result; a stand-in runs no other workflow to its end."""
        from stigmer.worker.params import CLOSE

        if (self.workflow_id, CLOSE) not in self.temporal.signals:
            raise RuntimeError("FakeTemporal runs no workflow: it has no result")
        if self.temporal.stuck:  # no runner to run the close: the long poll waits (the caller bounds it)
            await asyncio.Event().wait()
        return {"turns": 0, "usage": None}

    async def terminate(self, reason: str | None = None) -> None:
        self._known()
        self.temporal.terminated.append(self.workflow_id)


@dataclass
class FakeTemporal:
    """A stand-in Temporal client: records ``start_workflow`` calls; ``fail`` makes them raise.

    ``fail_after_start`` makes a start raise *after* the workflow was started (a start whose answer was
    lost: a timeout), and ``unreachable`` makes ``describe`` raise (Temporal cannot be asked). A second
    start of a workflow id raises ``WorkflowAlreadyStartedError``, as Temporal does.
    """

    started: list[dict[str, Any]] = field(default_factory=list)
    signals: list[tuple[str, str]] = field(default_factory=list)
    fail: Exception | None = None
    fail_after_start: Exception | None = None
    unreachable: Exception | None = None
    lost: bool = False  # the workflows are unknown to it (history lost, never started)
    start_delay: float = 0.0  # seconds each start takes (a busy Temporal)
    # Updates and signals of sessions and approvals: ``updates`` records each Update, ``reject`` (a reason) makes
    # them fail as a workflow's validator refuses; ``turns`` is what the ``turn`` query answers per execution id
    # (a test moves a turn along by setting it); ``stuck`` keeps a closed session from completing.
    signal_args: list[tuple[str, str, tuple[Any, ...]]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    reject: str | None = None
    turns: dict[str, dict[str, Any]] = field(default_factory=dict)
    turn_order: dict[str, list[str]] = field(default_factory=dict)  # session workflow id -> its turns, in order
    stuck: bool = False
    terminated: list[str] = field(default_factory=list)

    async def start_workflow(self, workflow: Any, arg: Any, *, id: str, task_queue: str,
                             rpc_timeout: Any = None) -> FakeHandle:
        from temporalio.exceptions import WorkflowAlreadyStartedError

        if self.start_delay:
            await asyncio.sleep(self.start_delay)
        if self.fail is not None:
            raise self.fail
        if id in {s["id"] for s in self.started}:
            raise WorkflowAlreadyStartedError(id, str(workflow))
        self.started.append({"workflow": workflow, "input": arg, "id": id, "task_queue": task_queue})
        if self.fail_after_start is not None:
            raise self.fail_after_start
        return FakeHandle(self, id)

    def get_workflow_handle(self, workflow_id: str) -> FakeHandle:
        return FakeHandle(self, workflow_id)


def fake_client(fake: FakeTemporal) -> Callable[[], Awaitable[Any]]:
    async def get() -> Any:
        return fake

    return get


def real_client(cfg: Config) -> Callable[[], Awaitable[Any]]:
    """Connect once, lazily, in the loop that serves the API (as the daemon does)."""
    from stigmer.worker.client import connect

    cached: list[Any] = []

    async def get() -> Any:
        if not cached:
            cached.append(await connect(cfg))
        return cached[0]

    return get


def make_context(cfg: Config, temporal_client: Callable[[], Awaitable[Any]], token: str = "test-token",
                 runner_token: str = "test-runner-token", **extra: Any) -> DaemonContext:
    return DaemonContext(config=cfg, token=token, runner_token=runner_token, store_path=cfg.path("data") / "stigmer.db",
                         temporal_client=temporal_client, **extra)


@dataclass
class ApiServer:
    url: str
    token: str
    ctx: DaemonContext
    server: uvicorn.Server

    @property
    def runner_token(self) -> str:
        assert self.ctx.runner_token is not None
        return self.ctx.runner_token

    @property
    def state(self) -> Any:
        """The API's live state (store, event hub), for tests that look inside."""
        return self.server.config.app.state.api

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def runner_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.runner_token}"}


@contextlib.contextmanager
def serve_api(ctx: DaemonContext, *, publish: bool = True) -> Iterator[ApiServer]:
    """Serve ``create_app(ctx)`` on a free port until the block ends; ``publish`` writes the run files."""
    port = free_port()
    config = uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:  # uvicorn sets it once the socket listens: a real readiness signal
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API did not start")
        time.sleep(0.01)
    run_dir = ctx.config.path("run")
    lock = DaemonLock(run_dir)
    if publish:
        ctx.token, ctx.runner_token = new_token(run_dir), new_runner_token(run_dir)
        assert lock.acquire()
        write_state(run_dir, DaemonState(0, "127.0.0.1", port, time.time(), "test"))
    try:
        yield ApiServer(f"http://127.0.0.1:{port}", ctx.token, ctx, server)
    finally:
        if publish:
            remove_run_files(run_dir)
            lock.release()
        server.should_exit = True
        thread.join(timeout=30)


class WorkerThread:
    """A real runner (``stigmer.worker.main.run_worker``) in a thread with its own event loop."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="worker", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _run(self) -> None:
        from stigmer.worker.main import run_worker

        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        ready = asyncio.Event()
        task = asyncio.create_task(run_worker(self.cfg, self._stop, ready=ready))
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        self._ready.set()
        await task

    def __enter__(self) -> WorkerThread:
        self._thread.start()
        if not self._ready.wait(60) or self._error is not None:
            raise RuntimeError(f"the worker did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)


def invoke(capsys: Any, *argv: str) -> tuple[int, str, str]:
    """Run ``stigmer ARGV`` in this process (exactly ``main()``, error handling included): (code, out, err)."""
    from stigmer.cli.main import main

    capsys.readouterr()
    try:
        result = main(list(argv))
        code = result if isinstance(result, int) else 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err
