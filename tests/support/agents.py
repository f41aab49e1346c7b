"""Helpers for runner tests: a worker in this process or as a ``stigmer runner`` child, executions, events.

Workers use the scripted chat model (``tests.support.scripted_provider``) loaded through the
``STIGMER_PLUGINS`` hook, exactly as the daemon's runner children would load a plugin.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.scripted_provider import PLUGIN

REPO = Path(__file__).resolve().parents[2]


def runner_env(temporal_address: str, task_queue: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Variables that make a runner use the scripted model, this Temporal server and this task queue."""
    return {"STIGMER_PLUGINS": PLUGIN, "STIGMER_LLM_PROVIDER": "scripted", "STIGMER_LLM_MODEL": "unused.json",
            "TEMPORAL_ADDRESS": temporal_address, "STIGMER_RUNNER_TASK_QUEUE": task_queue, **(extra or {})}


def resolve_for(env: dict[str, str]) -> Any:
    from stigmer.config import resolve
    from stigmer.providers.names import infer_provider

    return resolve({}, {**os.environ, **env}, infer_provider=infer_provider)


@contextlib.asynccontextmanager
async def worker_in_process(env: dict[str, str], monkeypatch: Any) -> AsyncIterator[Any]:
    """Run ``run_worker`` in this event loop; yields the resolved config."""
    from stigmer.worker.main import run_worker

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cfg = resolve_for(env)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_worker(cfg, stop, ready=ready))
    ready_wait = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, ready_wait}, return_when=asyncio.FIRST_COMPLETED, timeout=60)
    if task in done:
        task.result()
    try:
        yield cfg
    finally:
        ready_wait.cancel()
        stop.set()
        await asyncio.wait_for(task, 30)


def spawn_runner(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """``stigmer runner ARGS`` as a child process (own session, so a test can kill -9 it)."""
    child_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = open(log, "ab")  # noqa: SIM115 - handed to the child
    return subprocess.Popen([sys.executable, "-m", "stigmer", "runner", *args], env=child_env, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True, cwd=str(REPO))


def agent(tools: list[str] | None = None, mcp: list[dict[str, Any]] | None = None, name: str = "tester",
          instructions: str = "You are a test agent.", **spec: Any) -> dict[str, Any]:
    """An agent snapshot as the daemon would pin it. No person watches these runs: tools run unasked
    (``approvals: {mode: never}``) unless ``spec`` says otherwise (``approvals=...``, ``budget=...``)."""
    return {"name": name, "instructions": instructions, "tools": tools or [], "mcpServers": mcp or [],
            "maxSteps": 20, "approvals": {"mode": "never"}, **spec}


def execution(script: str, message: str = "go", *, workspace: Path | None = None, tools: list[str] | None = None,
              mcp: list[dict[str, Any]] | None = None, max_steps: int = 20, **tunables: Any) -> Any:
    from stigmer.providers.spec import ModelSpec
    from stigmer.worker.params import ExecutionInput, Tunables

    return ExecutionInput(execution_id=uuid.uuid4().hex[:12], agent_name="tester", agent=agent(tools, mcp),
                          model=ModelSpec(provider="scripted", model=script, reason="test"), message=message,
                          workspace=str(workspace or ""), max_steps=max_steps, tunables=Tunables(**tunables),
                          by_ref=True, final_in_call=True)


async def start(client: Any, inp: Any, task_queue: str) -> Any:
    from stigmer.worker.params import WORKFLOW_NAME, ExecutionResult, workflow_id

    return await client.start_workflow(WORKFLOW_NAME, inp, id=workflow_id(inp.execution_id), task_queue=task_queue,
                                       result_type=ExecutionResult)


class EventCollector:
    """A tiny stand-in for the daemon's ``POST /v1/events``: records batches and the bearer tokens seen.

    ``port``: listen there (a server that comes back where runners were told to post), else on a free one.
    """

    def __init__(self, token: str = "test-token", port: int = 0) -> None:
        self.token = token
        self.events: list[dict[str, Any]] = []
        self.rejected = 0
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/v1/events" or self.headers.get("Authorization") != f"Bearer {collector.token}":
                    collector.rejected += 1
                    self.send_response(401)
                else:
                    collector.events.extend(json.loads(body)["events"])
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> EventCollector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def env(self) -> dict[str, str]:
        return {"STIGMER_SERVER_URL": self.url, "STIGMER_SERVER_TOKEN": self.token}

    def of(self, execution_id: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e["execution_id"] == execution_id]


def wait_for(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``predicate`` (a real state check) until true."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached after {timeout}s")
        time.sleep(0.05)


@contextlib.contextmanager
def running(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=10)


async def until(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    """Like :func:`wait_for`, without blocking the event loop (an in-process worker runs on it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"{what} not reached after {timeout}s")
        await asyncio.sleep(0.05)


def session_input(script: str, *, workspace: Path | None = None, tools: list[str] | None = None,
                  mcp: list[dict[str, Any]] | None = None, can_after_turns: int | None = None,
                  **spec: Any) -> Any:
    """A session's input with the model pinned to ``script`` (``spec`` goes into the agent snapshot)."""
    from stigmer.providers.spec import ModelSpec
    from stigmer.worker.params import SessionInput

    model = ModelSpec(provider="scripted", model=script, reason="test")
    inp = SessionInput(session_id=f"s-{uuid.uuid4().hex[:12]}", agent_name="tester", agent=agent(tools, mcp, **spec),
                       workspace=str(workspace or ""), model=model, by_ref=True)
    if can_after_turns is not None:
        inp.can_after_turns = can_after_turns
    return inp


async def start_session(client: Any, inp: Any, task_queue: str) -> Any:
    from stigmer.worker.params import SESSION_WORKFLOW_NAME, SessionResult, session_workflow_id

    return await client.start_workflow(SESSION_WORKFLOW_NAME, inp, id=session_workflow_id(inp.session_id),
                                       task_queue=task_queue, result_type=SessionResult)


async def send(handle: Any, message: str, execution_id: str | None = None, **request: Any) -> tuple[str, Any]:
    """One ``send_message`` Update (its id is the turn's execution id): ``(execution_id, {"queued": n, ...})``."""
    from stigmer.worker.params import SEND_MESSAGE, TurnRequest

    execution_id = execution_id or uuid.uuid4().hex[:12]
    answer = await handle.execute_update(SEND_MESSAGE, TurnRequest(execution_id, message, **request),
                                         id=execution_id, result_type=dict)
    return execution_id, answer


async def decide(handle: Any, approval: dict[str, Any], approve: bool = True, **decision: Any) -> Any:
    """The ``decide_approval`` Update for one ``approval_requested`` event's data (its hash unless given)."""
    from stigmer.worker.params import DECIDE_APPROVAL, ApprovalDecision

    decision.setdefault("args_hash", approval["args_hash"])
    decision.setdefault("by", "tester")
    return await handle.execute_update(DECIDE_APPROVAL, ApprovalDecision(approval["approval_id"], approve=approve,
                                                                         **decision), result_type=dict)


async def last_event(collector: EventCollector, execution_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """The execution's last event (``completed`` or ``failed``), once it arrived."""
    ends = ("completed", "failed")
    await until(lambda: any(e["type"] in ends for e in collector.of(execution_id)), timeout, f"end of {execution_id}")
    return next(e for e in collector.of(execution_id) if e["type"] in ends)


async def event_of(collector: EventCollector, execution_id: str, type_: str, n: int = 1,
                   timeout: float = 60.0) -> dict[str, Any]:
    """The ``n``-th event of ``type_`` of an execution, once it arrived."""
    def found() -> list[dict[str, Any]]:
        return [e for e in collector.of(execution_id) if e["type"] == type_]

    await until(lambda: len(found()) >= n, timeout, f"{type_} #{n} of {execution_id}")
    return found()[n - 1]


async def sent_to_model(home: Path, workflow_id: str, call: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages a model call was sent, from its recorded input (a transcript reference plus what came after)."""
    from stigmer.blobs import LocalBlobStore
    from stigmer.worker._transcript import Transcripts

    transcripts = Transcripts(LocalBlobStore(Path(home) / "blobs"))
    earlier, _, _ = await transcripts.read(workflow_id, call.get("conversation"))
    return await transcripts.contents(workflow_id, earlier + list(call["messages"]))


async def runs_of(client: Any, workflow_id: str) -> list[Any]:
    """Every run's history of a workflow that continued as new, oldest first (each run's first event names the run
    it continued)."""
    newest_first = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        newest_first.append(history)
        started = history.events[0].workflow_execution_started_event_attributes
        if not started.continued_execution_run_id:
            return newest_first[::-1]
        run_id = started.continued_execution_run_id
