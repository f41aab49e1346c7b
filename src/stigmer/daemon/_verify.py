"""A runner's terminal event is stored only once Temporal confirms it: a forged ``completed`` cannot stick.

Runners hold a token that can post events, so a compromised runner (or anything that read its
environment) could end any execution with a made-up answer. Middle events (tokens, tool calls)
are stored at once; a terminal one (``completed``, ``failed``, ``cancelled``) posted with the runner
token waits here in the background. An execution's last event is posted just *before* its workflow
closes (by the model call that gave a plain run's final answer, else by the workflow from a local
activity), so the POST cannot wait for the close (the workflow cannot close until that activity
returns): the answer says ``verifying`` and a task waits, bounded by
``verify_timeout_s``, for the workflow to close (``handle.result()``, a long poll that returns
within milliseconds of the close), then:

- Temporal agrees (same status; for ``completed`` the same output and steps, for ``failed`` the
  same error): the runner's event is stored and published, keeping its id and data;
- Temporal disagrees: the event is dropped with a warning and Temporal's own outcome is stored
  instead (marked ``reconciled``), so the stream still ends at once;
- the workflow does not close in time, or Temporal cannot be asked: the event is dropped with a
  warning; reconciliation records what Temporal says once it knows.

A session's turn (``session_id`` set) is confirmed the same way, except that the session's workflow
stays open after the turn: the task polls its ``turn(execution_id)`` query until the turn has ended
(``_reconcile.turn_outcome_event``), within the same bound.

The warnings name the execution and the event type, never the event's data. Work is bounded:
at most ``MAX_PENDING`` verifications at once and ``MAX_PER_EXECUTION`` per execution; an event
beyond that is ignored (reconciliation still ends the execution right).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from ..store import terminal_status
from ._reconcile import outcome_event, turn_outcome_event
from ._state import ApiState

log = logging.getLogger("stigmer.daemon.verify")

MAX_PENDING = 256
MAX_PER_EXECUTION = 4


def is_terminal(event: dict[str, Any]) -> bool:
    return terminal_status(str(event["type"]), event.get("data") or {}) is not None


def submit(state: ApiState, event: dict[str, Any]) -> bool:
    """Verify ``event`` in the background; False when it is ignored (unknown, ended, duplicate, over a bound)."""
    execution = state.store.get_execution(str(event["execution_id"]))
    key = str(event.get("id") or uuid.uuid4().hex)
    if execution is None or execution["status"] not in ("pending", "running") or key in state.verifying:
        return False
    pending = sum(1 for execution_id, _ in state.verifying.values() if execution_id == execution["id"])
    if len(state.verifying) >= MAX_PENDING or pending >= MAX_PER_EXECUTION:
        log.warning("ignored a %s event of execution %s: %d verification(s) already pending", event["type"],
                    execution["id"], pending if pending >= MAX_PER_EXECUTION else len(state.verifying))
        return False
    task = asyncio.create_task(_verify(state, execution, event), name=f"verify-{execution['id']}")
    state.verifying[key] = (execution["id"], task)
    task.add_done_callback(lambda _: state.verifying.pop(key, None))
    return True


async def _verify(state: ApiState, execution: dict[str, Any], event: dict[str, Any]) -> None:
    kind, timeout = event["type"], state.ctx.verify_timeout_s
    deadline = time.monotonic() + timeout
    try:
        client = await asyncio.wait_for(state.ctx.temporal_client(), timeout)
        handle = client.get_workflow_handle(execution["workflow_id"])
        outcome = turn_outcome_event if execution.get("session_id") else outcome_event
        truth = await asyncio.wait_for(outcome(execution, handle), max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        log.warning("dropped the %s event of execution %s: its workflow did not close within %.0f s, so Temporal "
                    "could not confirm it (reconciliation will record how it ends)", kind, execution["id"], timeout)
        return
    except Exception as exc:  # Temporal down, workflow unknown: reconciliation decides later
        log.warning("dropped the %s event of execution %s: Temporal could not confirm it (%s); reconciliation will "
                    "record how it ends", kind, execution["id"], type(exc).__name__)
        return
    if not agrees(event, truth):
        log.warning("dropped the %s event of execution %s: Temporal says the workflow ended %s (%s); recorded "
                    "Temporal's outcome instead", kind, execution["id"], truth["type"],
                    "a different answer" if truth["type"] == kind else "another status")
        event = truth
    elif truth["data"].get("usage") is not None:  # the usage recorded is Temporal's, not what the runner said
        event = {**event, "data": {**(event.get("data") or {}), "usage": truth["data"]["usage"]}}
    try:
        state.hub.publish(state.store.append_events([event]))
    except Exception as exc:  # a full disk: reconciliation stores the end once it can
        log.error("could not store the %s event of execution %s: %s", event["type"], execution["id"], exc)


def agrees(posted: dict[str, Any], truth: dict[str, Any]) -> bool:
    """True when a posted terminal event says what Temporal's record says (status, and the answer or error)."""
    data, known = posted.get("data") or {}, truth["data"]
    status = terminal_status(str(posted["type"]), data)
    if status != terminal_status(truth["type"], known):
        return False
    if status == "completed":
        return bool(data.get("output") == known.get("output")
                    and ("steps" not in known or data.get("steps") == known.get("steps")))
    if status == "failed":
        return bool(data.get("error") == known.get("error"))
    return True


async def stop_all(state: ApiState) -> None:
    """Cancel the verifications still waiting (the daemon stops; reconciliation finishes their job next start)."""
    from .._aio import cancel_and_wait

    for _, task in list(state.verifying.values()):
        await cancel_and_wait(task)
