"""Routes for approvals: list, get, approve, reject.

The workflow judges a decision, not the API: approve/reject send the ``decide_approval`` Update
(``ApprovalDecision``) to the workflow of the approval's execution (the session's for a turn,
``stigmer-exec-<id>`` for a plain run), bound to the arguments' hash (the body's ``args_hash``, else
the one recorded from ``approval_requested``). Its validator refuses an unknown approval, a second
decision, one for a turn that ended, and another hash: the API passes its message on as a 409. Once
the workflow accepted it, the decision is recorded in the store at once (who: the body's ``by``, else
the token's role; when), before the workflow's ``approval_decided`` event confirms it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ..store.approvals import APPROVAL_STATUSES
from ._auth import ADMIN, Principal, require
from ._sessions import START_TIMEOUT_S, UPDATE_TIMEOUT_S, refusal
from ._state import ApiError, ApiState, StateDep

router = APIRouter()

ApprovalStatus = Literal["pending", "approved", "rejected", "timed_out", "cancelled"]
assert set(get_args(ApprovalStatus)) == set(APPROVAL_STATUSES)  # one list of statuses: the store's


class Decision(BaseModel):
    """What approve and reject take: the arguments' hash the person saw (default: the recorded one), and who."""

    args_hash: str | None = Field(default=None, min_length=1, max_length=200)
    by: str | None = Field(default=None, min_length=1, max_length=200)


class Approve(Decision):
    always: bool = False  # also allow this tool unasked for the rest of the session (or run)


class Reject(Decision):
    reason: str = Field(default="", max_length=4000)  # told to the model


@router.get("/approvals")
async def list_approvals(state: StateDep, status: ApprovalStatus | None = None, execution: str | None = None,
                         session: str | None = None, limit: int = Query(default=100, ge=1, le=1000)
                         ) -> dict[str, Any]:
    """Newest first; ``session`` is a session's id or name."""
    if session is not None:
        found = state.store.get_session(session)
        session = found["id"] if found else session
    return {"items": state.store.list_approvals(status=status, execution=execution, session=session, limit=limit)}


@router.get("/approvals/{approval_id}")
async def get_approval(approval_id: str, state: StateDep) -> dict[str, Any]:
    return _approval(state, approval_id)


@router.post("/approvals/{approval_id}/approve")
async def approve(approval_id: str, body: Approve, state: StateDep,
                  principal: Annotated[Principal, require(ADMIN)]) -> dict[str, Any]:
    """Approve the call (it runs, once); 409 with the workflow's reason when it refuses the decision."""
    return await _decide(state, approval_id, body, principal, approve=True, reason="", always=body.always)


@router.post("/approvals/{approval_id}/reject")
async def reject(approval_id: str, body: Reject, state: StateDep,
                 principal: Annotated[Principal, require(ADMIN)]) -> dict[str, Any]:
    """Reject the call (it never runs; the model is told ``reason``); 409 as for approve."""
    return await _decide(state, approval_id, body, principal, approve=False, reason=body.reason, always=False)


def _approval(state: ApiState, approval_id: str) -> dict[str, Any]:
    approval = state.store.get_approval(approval_id)
    if approval is None:
        raise ApiError(404, f"no approval {approval_id!r}", "list them with `stigmer approval list`")
    return approval


async def _decide(state: ApiState, approval_id: str, body: Decision, principal: Principal, *, approve: bool,
                  reason: str, always: bool) -> dict[str, Any]:
    from ..worker.params import ApprovalDecision

    approval = _approval(state, approval_id)
    # No check of the stored status here: the workflow's validator is the authority (a second decision, or one for
    # an ended turn, is refused there with its reason). The stored status may come from a runner's event, which a
    # runner's token could forge: it must not stand between a person and their decision.
    execution = state.store.get_execution(approval["execution_id"])
    assert execution is not None  # an approval goes with its execution
    by = body.by or principal.role
    decision = ApprovalDecision(approval_id=approval_id, args_hash=body.args_hash or approval["args_hash"],
                                approve=approve, reason=reason, always=always, by=by)
    await _send(state, execution, decision)
    decided = state.store.decide_approval(approval_id, status="approved" if approve else "rejected",
                                          reason=reason or None, always=always, by=by, at=time.time())
    assert decided is not None
    return decided


async def _send(state: ApiState, execution: dict[str, Any], decision: Any) -> None:
    """The ``decide_approval`` Update on the execution's workflow; 409 refused, 503 no answer."""
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.service import RPCError, RPCStatusCode

    from ..worker.params import DECIDE_APPROVAL

    try:
        client = await asyncio.wait_for(state.ctx.temporal_client(), START_TIMEOUT_S)
        handle = client.get_workflow_handle(execution["workflow_id"])
        await asyncio.wait_for(handle.execute_update(DECIDE_APPROVAL, decision,
                                                     rpc_timeout=timedelta(seconds=UPDATE_TIMEOUT_S)),
                               UPDATE_TIMEOUT_S + 1)
    except WorkflowUpdateFailedError as exc:
        raise ApiError(409, f"the decision was refused: {refusal(exc)}",
                       f"see the approval with `stigmer approval get {decision.approval_id}`") from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(409, f"the decision was refused: execution {execution['id']} has ended (its workflow is "
                                "closed or gone)", f"see how it ended with `stigmer execution get {execution['id']}`"
                           ) from None
        raise _unreachable(exc) from None
    except Exception as exc:  # Temporal down or slow: the decision may or may not have reached the workflow
        raise _unreachable(exc) from None


def _unreachable(exc: BaseException) -> ApiError:
    return ApiError(503, f"could not confirm the decision with Temporal: {str(exc) or type(exc).__name__}",
                    "check `stigmer approval get ID`: if it is still pending, decide again (a second decision of an "
                    "already decided approval is refused, never applied twice)")
