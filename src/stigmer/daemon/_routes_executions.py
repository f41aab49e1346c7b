"""Routes for executions: start, list, get, cancel, their event stream, and the runners' event intake."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any, Literal, get_args

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from ..errors import UserError
from ..store import STATUSES
from ._reconcile import reconcile, reconcile_many
from ._sse import event_stream
from ._start import prepare_input, start_workflow
from ._state import ApiError, ApiState, StateDep

router = APIRouter()

Status = Literal["pending", "running", "completed", "failed", "cancelled"]
assert set(get_args(Status)) == set(STATUSES)  # one list of statuses: the store's


class StartRequest(BaseModel):
    """``POST /v1/executions``: which agent, what to say, and optionally a model and workspace for this run."""

    agent: str = Field(min_length=1)
    message: str = Field(min_length=1)
    model: str | None = Field(default=None, min_length=1)
    workspace: str | None = Field(default=None, min_length=1)


class EventIn(BaseModel):
    id: str | None = Field(default=None, min_length=1, max_length=64)  # the runner's; duplicates are dropped
    execution_id: str = Field(min_length=1)
    type: str = Field(pattern=r"^[a-z_]{1,40}$")
    data: dict[str, Any] = Field(default_factory=dict)
    ts: float | None = None


class EventBatch(BaseModel):
    """``POST /v1/events``: what a runner's event sink sends."""

    events: list[EventIn]


@router.post("/executions", status_code=201)
async def start_execution(request: StartRequest, state: StateDep) -> dict[str, Any]:
    execution_id = secrets.token_hex(6)
    try:
        params, expected_model = await prepare_input(state, execution_id, request.agent, request.message,
                                                     request.model, request.workspace)
    except UserError as exc:
        raise ApiError(getattr(exc, "status", 400), exc.message, exc.hint) from None
    workflow_id = f"stigmer-exec-{execution_id}"
    state.store.create_execution(execution_id, agent=request.agent, message=request.message,
                                 model=expected_model, workspace=params.workspace, workflow_id=workflow_id)
    try:
        await start_workflow(state, params, workflow_id)
    except ApiError:
        state.store.delete_execution(execution_id)  # nothing half-written: no execution that never ran
        raise
    execution = state.store.get_execution(execution_id)
    assert execution is not None
    return execution


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

    try:
        client = await asyncio.wait_for(state.ctx.temporal_client(), 10)
        handle = client.get_workflow_handle(execution["workflow_id"])
        try:
            await handle.signal("cancel")
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


@router.get("/executions/{execution_id}/events")
async def execution_events(execution_id: str, state: StateDep,
                           after: int = Query(default=0, ge=0), follow: bool = True) -> StreamingResponse:
    execution = _execution(state, execution_id)

    async def on_idle() -> None:
        current = state.store.get_execution(execution_id)
        if current is not None and current["status"] in ("pending", "running"):
            await reconcile(state, current)

    stream: AsyncIterator[str] = event_stream(state, execution["id"], after, follow=follow, on_idle=on_idle)
    return StreamingResponse(stream, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post("/events")
async def post_events(batch: EventBatch, state: StateDep) -> dict[str, int]:
    stored = state.store.append_events([event.model_dump() for event in batch.events])
    state.hub.publish(stored)
    return {"stored": len(stored), "ignored": len(batch.events) - len(stored)}

