"""Routes for sessions: create, list, get (with its turns), send a message (a turn), delete.

Admin only for now (a viewer token may read them later). The session logic (workflow, Updates,
closing) is in ``_sessions``; here are the request shapes and how a session is shown.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, Field, field_validator

from . import _retention, _sessions
from ._limits import check_message
from ._reconcile import reconcile_many
from ._state import ApiState, StateDep

router = APIRouter()

# Characters of a tool's result shown per call in a session's turns (the whole result is in the events).
RESULT_CHARS = 200
TOOL_EVENTS = ("tool_started", "tool_finished")


class SessionCreate(BaseModel):
    """``POST /v1/sessions``: which agent, and optionally a unique name, a model and a workspace for every turn."""

    agent: str = Field(min_length=1)
    name: str | None = Field(default=None, min_length=1, max_length=64)
    model: str | None = Field(default=None, min_length=1)
    workspace: str | None = Field(default=None, min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _sessions.valid_name(value):
            raise ValueError(f"not a session name: {_sessions.NAME_RULE}")
        return value


class MessageRequest(BaseModel):
    """``POST /v1/sessions/{id}/messages``: one turn; ``model`` changes the session's model from this turn on."""

    message: str = Field(min_length=1)
    model: str | None = Field(default=None, min_length=1)
    max_tokens_total: int | None = Field(default=None, ge=1, le=1_000_000_000)


@router.post("/sessions", status_code=201)
async def create_session(request: SessionCreate, state: StateDep) -> dict[str, Any]:
    """A new session (201), its workflow started and idle; 409 when the name is taken."""
    return await _sessions.create(state, request.agent, request.name, request.model, request.workspace)


@router.get("/sessions")
async def list_sessions(state: StateDep, agent: str | None = None,
                        limit: int = Query(default=50, ge=1, le=1000)) -> dict[str, Any]:
    """Newest first."""
    return {"items": state.store.list_sessions(agent=agent, limit=limit)}


@router.get("/sessions/{ref}")
async def get_session(ref: str, state: StateDep, turns: int = Query(default=100, ge=0, le=10_000)) -> dict[str, Any]:
    """The session (by id or name) with its last ``turns`` turns: each its execution, tool calls and approvals."""
    session = _sessions.find(state, ref)
    shown = state.store.session_turns(session["id"])[-turns:] if turns else []
    shown = await reconcile_many(state, shown)
    return {**_sessions.find(state, session["id"]), "turns": [turn_view(state, turn) for turn in shown]}


@router.post("/sessions/{ref}/messages", status_code=201)
async def send_message(ref: str, request: MessageRequest, state: StateDep, response: Response,
                       idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None
                       ) -> dict[str, Any]:
    """Send a turn: its execution (201; stream its events), ``queued`` its place (0: it runs now). With
    ``Idempotency-Key`` a repeat answers 200 with the same execution. 409 with the session's reason if it refuses."""
    check_message(request.message, state.ctx.config.value("limits.message_chars"))
    session = _sessions.find(state, ref)
    turn = _sessions.Turn(request.message, request.model, request.max_tokens_total)
    execution, response.status_code = await _sessions.send(state, session, turn, idempotency_key)
    return execution


@router.delete("/sessions/{ref}")
async def delete_session(ref: str, state: StateDep) -> dict[str, Any]:
    """Close the session's workflow and delete the session, its turns, their events and approvals, and its blobs."""
    session = _sessions.find(state, ref)
    workflow = await _sessions.close(state, session)
    _sessions.end_live_turns(state, session)
    turns = state.store.delete_session(session["id"])
    await _retention.forget_blobs(state, [session["workflow_id"]])
    return {"deleted": {"id": session["id"], "name": session["name"], "turns": turns}, "workflow": workflow}


def turn_view(state: ApiState, execution: dict[str, Any]) -> dict[str, Any]:
    """A turn as ``session get`` shows it: the execution record, its tool calls (from its events), its approvals."""
    calls: dict[str, dict[str, Any]] = {}
    for event in state.store.events_of(execution["id"], TOOL_EVENTS):
        data = event["data"]
        key = str(data.get("call_id") or f"{data.get('step')}:{data.get('name')}")
        call = calls.setdefault(key, {"call_id": data.get("call_id"), "step": data.get("step"),
                                      "name": data.get("name"), "args": data.get("args"), "is_error": None,
                                      "result": None})
        if event["type"] == "tool_finished":  # a retried call's start comes again: the call is listed once
            result = data.get("result")
            call["is_error"] = bool(data.get("is_error"))
            call["result"] = result[:RESULT_CHARS] if isinstance(result, str) else result
    return {**execution, "tool_calls": list(calls.values()),
            "approvals": state.store.list_approvals(execution=execution["id"])}
