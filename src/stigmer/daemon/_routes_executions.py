"""Routes for executions: start, list, get, cancel, delete, prune, their event stream, and the runners' event intake.

``router`` admits the admin token only; ``events_router`` (``POST /v1/events``) admits runners too.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..config.durations import parse_duration
from ..errors import UserError
from ..store import STATUSES
from . import _retention, _sessions, _verify
from ._auth import ADMIN, RUNNER, Principal, require
from ._limits import check_message
from ._reconcile import reconcile, reconcile_many
from ._sse import event_stream
from ._start import StartUnconfirmed, prepare_input, start_workflow
from ._state import ApiError, ApiState, StateDep, one_at_a_time

router = APIRouter()
events_router = APIRouter()

Status = Literal["pending", "running", "completed", "failed", "cancelled"]
assert set(get_args(Status)) == set(STATUSES)  # one list of statuses: the store's


class StartRequest(BaseModel):
    """``POST /v1/executions``: which agent, what to say, and optionally a model and workspace for this run.

    ``session`` (an id or a name; a name not known yet creates the session) or ``continue`` (the agent's most
    recent open session) makes the run a turn of a session; ``max_tokens_total`` bounds its tokens.
    """

    model_config = ConfigDict(populate_by_name=True)

    agent: str = Field(min_length=1)
    message: str = Field(min_length=1)
    model: str | None = Field(default=None, min_length=1)
    workspace: str | None = Field(default=None, min_length=1)
    session: str | None = Field(default=None, min_length=1, max_length=64)
    continue_: bool = Field(default=False, alias="continue")
    max_tokens_total: int | None = Field(default=None, ge=1, le=1_000_000_000)

    @model_validator(mode="after")
    def _one_session(self) -> StartRequest:
        if self.session is not None and self.continue_:
            raise ValueError("give either session or continue, not both")
        return self


class EventIn(BaseModel):
    id: str | None = Field(default=None, min_length=1, max_length=64)  # the runner's; duplicates are dropped
    execution_id: str = Field(min_length=1)
    type: str = Field(pattern=r"^[a-z_]{1,40}$")
    data: dict[str, Any] = Field(default_factory=dict)
    ts: float | None = None


class EventBatch(BaseModel):
    """``POST /v1/events``: what a runner's event sink sends."""

    events: list[EventIn]


class PruneRequest(BaseModel):
    """``POST /v1/executions/prune``: delete the executions that ended more than ``older_than`` ago."""

    older_than: str = Field(min_length=1, max_length=40, examples=["7d"])
    dry_run: bool = False

    @field_validator("older_than")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)  # ValueError -> 422 naming body.older_than
        return value


@router.post("/executions", status_code=201)
async def start_execution(request: StartRequest, state: StateDep, response: Response,
                          idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None
                          ) -> dict[str, Any]:
    """Start an execution (201). With ``Idempotency-Key``, a repeat of the same start answers 200 with the same one.

    In a session (``session``/``continue``) the execution is the session's next turn (see ``_sessions``).
    """
    check_message(request.message, state.ctx.config.value("limits.message_chars"))
    if request.session is not None or request.continue_:
        return await _start_turn(state, request, response, idempotency_key)
    if idempotency_key is None:
        return await _start_new(state, request, None)
    async with one_at_a_time(state, idempotency_key):
        existing = state.store.find_by_idempotency_key(idempotency_key)
        if existing is None:
            return await _start_new(state, request, idempotency_key)
        response.status_code = 200
        return await _start_again(state, request, existing)


async def _start_turn(state: ApiState, request: StartRequest, response: Response, key: str | None) -> dict[str, Any]:
    """A run in a session: the named one (created when the name is new), or the agent's latest open one."""
    model = request.model
    if request.continue_:
        session = state.store.latest_open_session(request.agent)
        if session is None:
            raise ApiError(404, f"agent {request.agent!r} has no open session to continue",
                           f"start one with `stigmer run {request.agent} MESSAGE --session NAME`")
    else:
        assert request.session is not None
        session, created = await _sessions.named_or_created(state, request.session, request.agent, request.model,
                                                            request.workspace)
        model = None if created else model  # a new session was created with the model asked for
    turn = _sessions.Turn(request.message, model, request.max_tokens_total)
    execution, response.status_code = await _sessions.send(state, session, turn, key)
    return execution


async def _start_new(state: ApiState, request: StartRequest, key: str | None) -> dict[str, Any]:
    execution_id = secrets.token_hex(6)
    params, expected_model = await _prepared(state, execution_id, request)
    workflow_id = f"stigmer-exec-{execution_id}"
    created = state.store.create_execution(execution_id, agent=request.agent, message=request.message,
                                           model=expected_model, workspace=params.workspace,
                                           workflow_id=workflow_id, idempotency_key=key)
    assert created is not None  # a key is only used under its lock, after checking it is new
    await _start(state, params, created)
    execution = state.store.get_execution(execution_id)
    assert execution is not None
    return execution


async def _start_again(state: ApiState, request: StartRequest, existing: dict[str, Any]) -> dict[str, Any]:
    """A retried start: the same execution; its workflow is started again only if that was left unconfirmed."""
    if (existing["agent"], existing["message"]) != (request.agent, request.message):
        raise ApiError(409, f"this Idempotency-Key already started execution {existing['id']} with another agent "
                            "or message", "send a new Idempotency-Key for each new run")
    if existing["status"] == "pending" and existing["error"]:
        params, _ = await _prepared(state, existing["id"], request)
        await _start(state, params, existing)
    execution = state.store.get_execution(existing["id"])
    assert execution is not None
    return execution


async def _prepared(state: ApiState, execution_id: str, request: StartRequest) -> Any:
    try:
        return await prepare_input(state, execution_id, request.agent, request.message, request.model,
                                   request.workspace, request.max_tokens_total)
    except UserError as exc:
        raise ApiError(getattr(exc, "status", 400), exc.message, exc.hint) from None


async def _start(state: ApiState, params: Any, execution: dict[str, Any]) -> None:
    """Start the workflow. A row is deleted only when Temporal surely has no workflow for it."""
    try:
        await start_workflow(state, params, execution["workflow_id"])
    except StartUnconfirmed as exc:
        state.store.note_start_error(execution["id"], exc.message)  # reconciliation decides (LOST_AFTER_S)
        raise ApiError(exc.status, exc.message, exc.hint, execution_id=execution["id"]) from None
    except ApiError:
        state.store.delete_execution(execution["id"])  # nothing half-written: no execution that never ran
        raise
    state.store.note_start_error(execution["id"], None)


@router.get("/executions")
async def list_executions(state: StateDep, status: Status | None = None, agent: str | None = None,
                          limit: int = Query(default=50, ge=1, le=1000)) -> dict[str, Any]:
    items = await reconcile_many(state, state.store.list_executions(status=status, agent=agent, limit=limit))
    return {"items": items}


def _execution(state: ApiState, execution_id: str) -> dict[str, Any]:
    execution = state.store.get_execution(execution_id)
    if execution is None:
        raise ApiError(404, f"no execution {execution_id!r}", "list them with `stigmer execution list`")
    return execution


@router.get("/executions/{execution_id}")
async def get_execution(execution_id: str, state: StateDep) -> dict[str, Any]:
    return (await reconcile_many(state, [_execution(state, execution_id)]))[0]


@router.post("/executions/{execution_id}/cancel")
async def cancel_execution(execution_id: str, state: StateDep) -> dict[str, Any]:
    execution = _execution(state, execution_id)
    if execution["status"] in ("completed", "failed", "cancelled"):
        raise ApiError(409, f"execution {execution_id} is already {execution['status']}", "nothing to cancel")
    from temporalio.service import RPCError, RPCStatusCode

    from ..worker.params import CANCEL, CANCEL_TURN

    try:
        client = await asyncio.wait_for(state.ctx.temporal_client(), 10)
        handle = client.get_workflow_handle(execution["workflow_id"])
        try:
            if execution["session_id"]:  # a session's turn: cancel that turn, the session stays
                await handle.signal(CANCEL_TURN, execution_id)
            else:
                await handle.signal(CANCEL)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            await _cancel_closed_or_lost(state, handle, execution_id)
    except ApiError:
        raise
    except Exception as exc:  # Temporal down or slow (RuntimeFailure, timeout, connection errors)
        reason = str(exc) or type(exc).__name__
        raise ApiError(503, f"could not reach Temporal to cancel: {reason}", "check `stigmer local status`") from None
    return {**_execution(state, execution_id), "cancel_requested": True}


async def _cancel_closed_or_lost(state: ApiState, handle: Any, execution_id: str) -> None:
    """The workflow takes no signal: it has finished (409; reconciliation records how) or never existed (cancelled)."""
    from temporalio.service import RPCError, RPCStatusCode

    try:
        await handle.describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        event = {"execution_id": execution_id, "type": "failed", "data": {"error": "cancelled", "cancelled": True}}
        state.hub.publish(state.store.append_events([event]))
        return
    raise ApiError(409, f"execution {execution_id} has already finished",
                   f"see how it ended with `stigmer execution get {execution_id}`")


@router.delete("/executions/{execution_id}")
async def delete_execution(execution_id: str, state: StateDep) -> dict[str, Any]:
    """Delete a finished execution, its events and its blobs (409 while it is pending or running, or when it is a
    session's turn: the session's conversation holds it, so it goes with the session)."""
    execution = (await reconcile_many(state, [_execution(state, execution_id)]))[0]
    if execution["session_id"]:
        raise ApiError(409, f"execution {execution_id} is turn {execution['turn']} of session "
                            f"{execution['session_id']}: a turn is deleted with its session",
                       f"delete the session: `stigmer session delete {execution['session_id']}`")
    if not state.store.delete_execution(execution_id, finished_only=True):
        raise ApiError(409, f"execution {execution_id} is {execution['status']}: cancel it first",
                       f"`stigmer execution cancel {execution_id}`, then delete it once it has ended")
    await _retention.forget_blobs(state, [execution["workflow_id"]])
    return {"deleted": {"id": execution_id, "status": execution["status"]}}


@router.post("/executions/prune")
async def prune_executions(request: PruneRequest, state: StateDep) -> dict[str, Any]:
    """Delete (or with ``dry_run`` count) the executions that ended more than ``older_than`` ago."""
    count = await _retention.prune(state, parse_duration(request.older_than), dry_run=request.dry_run)
    return {"deleted": 0 if request.dry_run else count, "matched": count, "older_than": request.older_than,
            "dry_run": request.dry_run}


@router.get("/executions/{execution_id}/events")
async def execution_events(execution_id: str, state: StateDep, after: int = Query(default=0, ge=0),
                           follow: bool = True,
                           last_event_id: Annotated[int | None, Header(ge=0)] = None) -> StreamingResponse:
    """Server-sent events after ``seq`` N: ``Last-Event-ID`` (a reconnecting client's) wins over ``?after=``."""
    execution = _execution(state, execution_id)
    if last_event_id is not None:
        after = last_event_id

    async def on_idle() -> None:
        current = state.store.get_execution(execution_id)
        if current is not None and current["status"] in ("pending", "running"):
            await reconcile(state, current)

    stream: AsyncIterator[str] = event_stream(state, execution["id"], after, follow=follow, on_idle=on_idle)
    return StreamingResponse(stream, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@events_router.post("/events")
async def post_events(batch: EventBatch, state: StateDep,
                      principal: Annotated[Principal, require(ADMIN, RUNNER)]) -> dict[str, int]:
    """Store a runner's events. A runner's terminal events wait for Temporal's confirmation (``verifying``)."""
    events = [event.model_dump() for event in batch.events]
    now: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    for event in events:
        (held if not principal.trusted and _verify.is_terminal(event) else now).append(event)
    stored = await state.store.off_loop(state.store.append_events, now)
    state.hub.publish(stored)
    if state.metrics is not None:
        state.metrics.stored(stored)
    verifying = sum(_verify.submit(state, e) for e in held)
    return {"stored": len(stored), "verifying": verifying, "ignored": len(events) - len(stored) - verifying}
