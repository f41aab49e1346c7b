"""A stand-in for the daemon's session, approval and usage API (docs/SESSIONS.md), for CLI tests.

It is not the daemon: a small FastAPI app on a free loopback port that serves the documented routes and
answer shapes (``POST /v1/executions`` with ``session``/``continue``/``max_tokens_total``, ``/v1/sessions``,
``/v1/approvals``, ``/v1/usage``, the event stream and cancel) from memory, and records what each request
carried so a test can check what the CLI sent. Its "agent" is a fixed script chosen by the agent's name:

- ``asker``: asks to run ``write_file`` (``approval_requested``) and waits; approved, the call runs and the
  answer follows; rejected, the answer says so. A decision is judged as the workflow's validator does:
  unknown, already decided, ended turn, another hash -> 409 with the reason.
- any other name: answers ``Hello, turn <n>.`` at once (tokens, then ``completed``).

Every ``completed``/``failed`` event carries ``data.usage`` (10 input and 5 output tokens per turn, $0.001).
``serve_double`` publishes the run files (state, token, lock) the way the daemon does, so the CLI finds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from stigmer.daemon.files import DaemonLock, DaemonState, new_token, remove_run_files, write_state
from stigmer.worker._approval import args_hash
from tests.support.ports import free_port

TERMINAL = ("completed", "failed")
TOOL_ARGS = {"path": "notes.txt", "content": "hello"}
TURN_USAGE = {"input_tokens": 10, "output_tokens": 5, "cached_tokens": 0, "cost_usd": 0.001, "estimated": False}


class Refused(Exception):
    def __init__(self, status: int, detail: str, hint: str = "") -> None:
        super().__init__(detail)
        self.status, self.detail, self.hint = status, detail, hint


@dataclass
class Double:
    """The state behind the routes; ``requests`` holds (method, path, body) of every call the CLI made."""

    executions: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)  # event streams waiting for more

    # --- the script -------------------------------------------------------------------------------------
    def publish(self, execution_id: str, kind: str, data: dict[str, Any]) -> None:
        events = self.events[execution_id]
        events.append({"seq": len(events) + 1, "type": kind, "execution_id": execution_id, "data": data,
                       "ts": time.time()})
        record = self.executions[execution_id]
        if kind in TERMINAL:
            record.update(status="completed" if kind == "completed" else "failed", finished_at=time.time(),
                          output=data.get("output"), error=data.get("error"), usage=data.get("usage"))
            session = self.sessions.get(record.get("session_id") or "")
            if session is not None:
                for key in ("input_tokens", "output_tokens", "cost_usd"):
                    session["usage"][key] += TURN_USAGE[key]
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()

    def start(self, agent: str, message: str, session: dict[str, Any] | None) -> dict[str, Any]:
        execution_id = secrets.token_hex(6)
        turn = None
        if session is not None:
            session["turn_count"] += 1
            session["last_turn_at"] = time.time()
            turn = session["turn_count"]
        record = {"id": execution_id, "agent": agent, "message": message, "status": "running",
                  "model": {"provider": "scripted", "model": "double"}, "created_at": time.time(),
                  "finished_at": None, "steps": 1, "output": None, "error": None, "workspace": None,
                  "session_id": session["id"] if session else None, "turn": turn, "usage": None}
        self.executions[execution_id], self.events[execution_id] = record, []
        self.publish(execution_id, "model_resolved", {"model": record["model"], "source": "agent", "origin": "x"})
        if agent == "asker":
            approval_id = f"{execution_id}.1.0"
            data = {"approval_id": approval_id, "kind": "tool", "tool": "write_file", "args": TOOL_ARGS,
                    "args_hash": args_hash("write_file", TOOL_ARGS), "call_id": "c1", "step": 1,
                    "reason": "write_file is not read-only"}
            self.approvals[approval_id] = {"id": approval_id, "execution_id": execution_id,
                                           "session_id": record["session_id"], "kind": "tool", "tool": "write_file",
                                           "args": TOOL_ARGS, "args_hash": data["args_hash"], "call_id": "c1",
                                           "step": 1, "status": "pending", "reason": None, "always": False,
                                           "decided_by": None, "requested_at": time.time(), "decided_at": None}
            self.publish(execution_id, "approval_requested", data)
        elif agent == "sleeper":  # a turn that thinks until it is cancelled
            self.publish(execution_id, "token", {"step": 1, "text": "Thinking"})
        else:
            self._answer(execution_id, f"Hello, turn {turn or 1}.")
        return record

    def _answer(self, execution_id: str, text: str) -> None:
        for piece in text.split(" "):
            self.publish(execution_id, "token", {"step": 1, "text": piece + (" " if not piece.endswith(".") else "")})
        record = self.executions[execution_id]
        session = self.sessions.get(record.get("session_id") or "")
        done: dict[str, Any] = {"output": text, "steps": 1, "usage": TURN_USAGE}
        if session is not None:
            done.update(session_id=session["id"], turn=record["turn"])
        self.publish(execution_id, "completed", done)

    def decide(self, approval_id: str, body: dict[str, Any], approve: bool) -> dict[str, Any]:
        approval = self.approvals.get(approval_id)
        if approval is None:
            raise Refused(404, f"no approval {approval_id!r}", "list them with `stigmer approval list`")
        if approval["status"] != "pending":
            raise Refused(409, f"the decision was refused: approval {approval_id} was already {approval['status']}")
        if body.get("args_hash", approval["args_hash"]) != approval["args_hash"]:
            raise Refused(409, "the decision was refused: these arguments are not the ones awaiting approval")
        approval.update(status="approved" if approve else "rejected", reason=body.get("reason") or None,
                        always=bool(body.get("always")), decided_by=body.get("by") or "admin", decided_at=time.time())
        execution_id = approval["execution_id"]
        self.publish(execution_id, "approval_decided", {"approval_id": approval_id, "decision": approval["status"],
                                                        "reason": approval["reason"] or "",
                                                        "always": approval["always"], "by": approval["decided_by"]})
        if approve:
            self.publish(execution_id, "tool_started", {"step": 1, "call_id": "c1", "name": "write_file",
                                                        "args": TOOL_ARGS})
            self.publish(execution_id, "tool_finished", {"step": 1, "call_id": "c1", "name": "write_file",
                                                         "result": "wrote 5 bytes to notes.txt"})
            self._answer(execution_id, "I wrote notes.txt.")
        else:
            self._answer(execution_id, "I did not write it.")
        return approval

    def session_by(self, ref: str) -> dict[str, Any]:
        for session in self.sessions.values():
            if ref in (session["id"], session["name"]):
                return session
        raise Refused(404, f"no session {ref!r}", "list them with `stigmer session list`")

    def new_session(self, agent: str, name: str | None) -> dict[str, Any]:
        if name is not None and any(s["name"] == name for s in self.sessions.values()):
            raise Refused(409, f"a session is already called {name!r}")
        session_id = f"s-{secrets.token_hex(6)}"
        self.sessions[session_id] = {"id": session_id, "name": name, "agent": agent, "status": "open", "turn_count": 0,
                                     "model": {"provider": "scripted", "model": "double"},
                                     "created_at": time.time(), "last_turn_at": None,
                                     "usage": {"input_tokens": 0, "output_tokens": 0, "cached_tokens": 0,
                                               "cost_usd": 0.0, "estimated": False, "unpriced": False}}
        return self.sessions[session_id]

    def session_view(self, session: dict[str, Any]) -> dict[str, Any]:
        turns = [{**e, "tool_calls": self._calls(e["id"]),
                  "approvals": [a for a in self.approvals.values() if a["execution_id"] == e["id"]]}
                 for e in self.executions.values() if e["session_id"] == session["id"]]
        return {**session, "turns": sorted(turns, key=lambda t: t["turn"])}

    def _calls(self, execution_id: str) -> list[dict[str, Any]]:
        return [{"call_id": e["data"]["call_id"], "step": 1, "name": e["data"]["name"], "args": TOOL_ARGS,
                 "is_error": False, "result": e["data"]["result"]}
                for e in self.events[execution_id] if e["type"] == "tool_finished"]

    def usage(self, by: str | None) -> dict[str, Any]:
        ended = [e for e in self.executions.values() if e["usage"]]
        groups: dict[str, list[dict[str, Any]]] = {}
        for e in ended:
            groups.setdefault({"agent": e["agent"], "session": e["session_id"] or "",
                               "model": "scripted:double"}.get(by or "agent", ""), []).append(e)

        def sums(items: list[dict[str, Any]]) -> dict[str, Any]:
            return {"executions": len(items), "input_tokens": 10 * len(items), "output_tokens": 5 * len(items),
                    "cached_tokens": 0, "cost_usd": round(0.001 * len(items), 8), "unpriced": False,
                    "estimated": False}

        items = [{"key": key, **sums(group)} for key, group in sorted(groups.items())] if by else []
        return {"total": sums(ended), "items": items}


def create_app(double: Double) -> FastAPI:
    app = FastAPI()

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        return JSONResponse({"detail": exc.detail, "hint": exc.hint or None}, status_code=exc.status)

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Any:
        body = await request.body()
        double.requests.append((request.method, request.url.path + (f"?{request.url.query}" if request.url.query
                                                                      else ""), json.loads(body) if body else None))
        return await call_next(request)

    @app.post("/v1/executions", status_code=201)
    async def start(request: Request) -> dict[str, Any]:
        body = await request.json()
        session = None
        if body.get("session"):
            try:
                session = double.session_by(body["session"])
            except Refused:
                session = double.new_session(body["agent"], body["session"])
        elif body.get("continue"):
            mine = [s for s in double.sessions.values() if s["agent"] == body["agent"]]
            if not mine:
                raise Refused(404, f"agent {body['agent']!r} has no open session to continue")
            session = max(mine, key=lambda s: s["created_at"])
        return double.start(body["agent"], body["message"], session)

    @app.get("/v1/executions/{execution_id}")
    async def get_execution(execution_id: str) -> dict[str, Any]:
        if execution_id not in double.executions:
            raise Refused(404, f"no execution {execution_id!r}")
        return double.executions[execution_id]

    @app.post("/v1/executions/{execution_id}/cancel")
    async def cancel(execution_id: str) -> dict[str, Any]:
        record = double.executions[execution_id]
        if record["status"] != "running":
            raise Refused(409, f"execution {execution_id} is already {record['status']}", "nothing to cancel")
        double.publish(execution_id, "failed", {"error": "cancelled", "cancelled": True, "usage": TURN_USAGE})
        return {**record, "cancel_requested": True}

    @app.get("/v1/executions/{execution_id}/events")
    async def events(execution_id: str, after: int = 0) -> StreamingResponse:
        async def stream() -> AsyncIterator[str]:
            sent = after
            while True:
                for event in double.events[execution_id][sent:]:
                    sent = event["seq"]
                    yield f"data: {json.dumps(event)}\n\n"
                    if event["type"] in TERMINAL:
                        return
                if len(double.events[execution_id]) > sent:
                    continue  # published while the last chunk was sent
                waiter = asyncio.get_running_loop().create_future()
                double.waiters.append(waiter)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter, 5)
                yield ": idle\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.post("/v1/sessions", status_code=201)
    async def create_session(request: Request) -> dict[str, Any]:
        body = await request.json()
        return double.new_session(body["agent"], body.get("name"))

    @app.get("/v1/sessions")
    async def list_sessions() -> dict[str, Any]:
        return {"items": sorted(double.sessions.values(), key=lambda s: -s["created_at"])}

    @app.get("/v1/sessions/{ref}")
    async def get_session(ref: str) -> dict[str, Any]:
        return double.session_view(double.session_by(ref))

    @app.post("/v1/sessions/{ref}/messages", status_code=201)
    async def send(ref: str, request: Request) -> dict[str, Any]:
        session = double.session_by(ref)
        body = await request.json()
        return {**double.start(session["agent"], body["message"], session), "queued": 0}

    @app.delete("/v1/sessions/{ref}")
    async def delete_session(ref: str) -> dict[str, Any]:
        session = double.sessions.pop(double.session_by(ref)["id"])
        return {"deleted": {"id": session["id"], "name": session["name"], "turns": session["turn_count"]},
                "workflow": "closed"}

    @app.get("/v1/approvals")
    async def list_approvals(status: str | None = None) -> dict[str, Any]:
        return {"items": [a for a in double.approvals.values() if status in (None, a["status"])]}

    @app.get("/v1/approvals/{approval_id}")
    async def get_approval(approval_id: str) -> dict[str, Any]:
        if approval_id not in double.approvals:
            raise Refused(404, f"no approval {approval_id!r}", "list them with `stigmer approval list`")
        return double.approvals[approval_id]

    @app.post("/v1/approvals/{approval_id}/approve")
    async def approve(approval_id: str, request: Request) -> dict[str, Any]:
        return double.decide(approval_id, await request.json(), True)

    @app.post("/v1/approvals/{approval_id}/reject")
    async def reject(approval_id: str, request: Request) -> dict[str, Any]:
        return double.decide(approval_id, await request.json(), False)

    @app.get("/v1/usage")
    async def usage(since: float | None = None, by: str | None = None) -> dict[str, Any]:
        return {"since": since, "by": by, **double.usage(by)}

    return app


@contextlib.contextmanager
def serve_double(home: Path) -> Iterator[Double]:
    """Serve a fresh :class:`Double` for the daemon of ``home`` (run files published) until the block ends."""
    double = Double()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(double), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="sessions-double", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:  # set once the socket listens
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the sessions double did not start")
        time.sleep(0.01)
    run_dir = home / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = DaemonLock(run_dir)
    new_token(run_dir)
    assert lock.acquire()
    write_state(run_dir, DaemonState(0, "127.0.0.1", port, time.time(), "test"))
    try:
        yield double
    finally:
        remove_run_files(run_dir)
        lock.release()
        server.should_exit = True
        thread.join(timeout=30)
