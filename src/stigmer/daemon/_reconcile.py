"""Bring executions without a terminal event in line with Temporal.

A runner killed after its workflow finished, or an event batch lost on the way, must not leave
an execution "running" for ever: Temporal's record of the workflow is the truth. On each GET of
a live execution, and every few seconds in the background, a pending/running execution whose
workflow has closed gets the terminal event the runner could not post (``completed`` with the
workflow's result, or ``failed`` with its error). A short grace period after the workflow closed
leaves the runner's own last events time to arrive first, so a stream ends with the real ones.

A session's turn is different: its workflow (the session's) stays open when the turn ends, so the
truth about a turn is the session workflow's ``turn(execution_id)`` query (docs/SESSIONS.md): a turn
it reports ended gets the terminal event it implies, once no event of the turn arrived for the grace
period; one it never heard of (``unknown``: the ``send_message`` Update was lost) fails after
``LOST_AFTER_S``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ._state import ApiState

log = logging.getLogger("stigmer.daemon.reconcile")

# Seconds after a workflow closed during which the runner's own terminal event is awaited.
GRACE_S = 2.0
# Seconds a pending execution may be unknown to Temporal before it is declared lost.
LOST_AFTER_S = 30.0
# Seconds one reconciliation may take (Temporal down must not hang a GET).
TIMEOUT_S = 3.0


async def reconcile_many(state: ApiState, executions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reconcile the live ones among ``executions``; return them all, updated."""
    live = [e for e in executions if e["status"] in ("pending", "running")]
    if live:
        await asyncio.gather(*(reconcile(state, e) for e in live))
        fresh = {e["id"]: state.store.get_execution(e["id"]) for e in live}
        executions = [fresh.get(e["id"]) or e for e in executions]
    return executions


async def reconcile(state: ApiState, execution: dict[str, Any]) -> None:
    """Check one execution against Temporal; post the terminal event it is missing, if any. Never raises."""
    try:
        event = await asyncio.wait_for(_missing_terminal_event(state, execution), TIMEOUT_S)
    except Exception as exc:  # Temporal down or slow: keep the stored status, try again later
        log.debug("cannot reconcile %s: %s", execution["id"], exc)
        return
    if event is not None:
        stored = state.store.append_events([event])
        state.hub.publish(stored)


async def _missing_terminal_event(state: ApiState, execution: dict[str, Any]) -> dict[str, Any] | None:
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError, RPCStatusCode

    client = await state.ctx.temporal_client()
    handle = client.get_workflow_handle(execution["workflow_id"])
    if execution.get("session_id"):
        return await _missing_turn_event(state, execution, handle)
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND and time.time() - execution["created_at"] > LOST_AFTER_S:
            return _event(execution, "failed", {"error": f"Temporal has no workflow {execution['workflow_id']} "
                                                         "(its history was lost, e.g. an in-memory server restarted)"})
        return None
    status = description.status
    if status in (None, WorkflowExecutionStatus.RUNNING):
        if execution["status"] == "pending" and description.raw_description.pending_activities:
            state.store.mark_running(execution["id"])
        return None
    closed = description.close_time.timestamp() if description.close_time else time.time()
    if time.time() - closed < GRACE_S:
        return None
    return await outcome_event(execution, handle)


async def outcome_event(execution: dict[str, Any], handle: Any) -> dict[str, Any]:
    """The terminal event Temporal's record implies, marked ``reconciled``.

    Waits for the workflow to close if it has not (``handle.result()`` long-polls the close event, so
    it answers within milliseconds of the close). ``completed`` with the workflow's output and steps;
    ``failed`` with the error the workflow raised; ``failed`` + ``cancelled`` for a workflow that was cancelled
    or completed with status ``cancelled``.
    """
    from temporalio.client import WorkflowFailureError
    from temporalio.exceptions import CancelledError

    try:
        result = await handle.result()
    except WorkflowFailureError as exc:
        if isinstance(exc.cause, CancelledError):
            return _event(execution, "failed", {"error": "cancelled", "cancelled": True})
        failure: BaseException = exc.cause or exc  # what the workflow raised: its message is the runner's error
        return _event(execution, "failed", {"error": getattr(failure, "message", None) or str(failure)
                                            or type(failure).__name__})
    data = _result_data(result)
    if data.get("status") == "cancelled":
        return _event(execution, "failed", {"error": "cancelled", "cancelled": True, "steps": data.get("steps")})
    return _event(execution, "completed", data)


async def _missing_turn_event(state: ApiState, execution: dict[str, Any], handle: Any) -> dict[str, Any] | None:
    """The terminal event a session's turn is missing, from the session workflow's ``turn`` query."""
    from temporalio.service import RPCError, RPCStatusCode

    from ..worker.params import TURN

    old = time.time() - execution["created_at"] > LOST_AFTER_S
    try:
        known = await handle.query(TURN, execution["id"])
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND and old:
            return _event(execution, "failed", {"error": f"Temporal has no workflow {execution['workflow_id']} "
                                                         "(the session's history was lost)"})
        return None
    status = known.get("status") if isinstance(known, dict) else None
    if status in ("queued", "running"):
        if status == "running" and execution["status"] == "pending":
            state.store.mark_running(execution["id"])
        return None
    if status in ("completed", "failed", "cancelled"):
        if time.time() - execution["updated_at"] < GRACE_S:  # the runner's own last event may be on its way
            return None
        return turn_event(execution, known)
    if old:  # the session never got the turn (or has forgotten it)
        return _event(execution, "failed", {"error": f"session {execution['session_id']} has no turn "
                                                     f"{execution['id']} (the message never reached it)"})
    return None


def turn_event(execution: dict[str, Any], known: dict[str, Any]) -> dict[str, Any] | None:
    """The terminal event an ended turn implies (the ``turn`` query's answer), marked ``reconciled``; None while
    the turn has not ended."""
    status = known.get("status")
    extra = {key: known[key] for key in ("usage", "turn") if known.get(key) is not None}
    extra["session_id"] = execution["session_id"]
    if status == "completed":
        return _event(execution, "completed", {"output": known.get("output", ""), **extra})
    if status == "cancelled":
        return _event(execution, "failed", {"error": "cancelled", "cancelled": True, **extra})
    if status == "failed":
        return _event(execution, "failed", {"error": str(known.get("error") or "failed"), **extra})
    return None


async def turn_outcome_event(execution: dict[str, Any], handle: Any) -> dict[str, Any]:
    """Wait for a session's turn to end (polling the ``turn`` query) and return the terminal event it implies.

    Used by verification: the session workflow does not close when a turn ends, so there is no close to wait for.
    Raises LookupError when the session does not know the turn; the caller bounds the wait.
    """
    from ..worker.params import TURN

    delay = 0.02
    while True:
        known = await handle.query(TURN, execution["id"])
        if not isinstance(known, dict) or known.get("status") in (None, "unknown"):
            raise LookupError(f"session {execution['session_id']} does not know turn {execution['id']}")
        event = turn_event(execution, known)
        if event is not None:
            return event
        await asyncio.sleep(delay)  # the turn is still running: its last event came just before its end
        delay = min(delay * 2, 0.5)


def _result_data(result: Any) -> dict[str, Any]:
    """The workflow's result as a ``completed`` event's data (``output``, ``steps``)."""
    if isinstance(result, dict):
        return {"output": result.get("output", result.get("answer", "")), "steps": result.get("steps"),
                **{k: v for k, v in result.items() if k not in ("output", "steps")}}
    output = getattr(result, "output", result)
    return {"output": output if isinstance(output, str) else str(output), "steps": getattr(result, "steps", None)}


def _event(execution: dict[str, Any], kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"execution_id": execution["id"], "type": kind, "data": {**data, "reconciled": True}, "ts": time.time()}


async def reconcile_loop(state: ApiState) -> None:
    """Every ``reconcile_interval_s``, reconcile every live execution (runs for the API's lifetime)."""
    while True:
        await asyncio.sleep(state.ctx.reconcile_interval_s)
        try:
            await reconcile_many(state, state.store.active_executions())
        except Exception:
            log.exception("reconciliation failed")
