"""Sessions as the daemon drives them: create (record + workflow), send a turn (an Update), close.

A session is a record in the store and one long-lived ``StigmerSession`` workflow
(``stigmer-session-<id>``, docs/SESSIONS.md). A turn is an execution of the session: the row is
made first (``session_id``, turn n, ``pending``), then the ``send_message`` Update carries
``TurnRequest(execution_id, message, model, max_tokens_total)`` with the execution id as the
Update id (a retried Update is the same Update). The workflow's validator answers at once:

- accepted: the turn runs now or is queued behind the running one (``queued``: its place);
- rejected (the session is closing, the message is empty, 8 turns already wait): the row is deleted
  and the API answers 409 with the workflow's own reason;
- no answer (Temporal slow or down): the row stays ``pending`` with the reason in ``error`` and the API
  answers 503; a retry with the same ``Idempotency-Key`` sends the same Update again, and reconciliation
  fails the turn if the session never heard of it (``turn`` query says ``unknown``) after a while.

Deleting a session signals ``close`` (the workflow cancels its running turn, drops its queued ones and
completes), waits a few seconds for it to complete, terminates it when it does not (no runner to close it),
ends the turns still live in the store, and deletes the records.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..errors import UserError
from ._start import START_TIMEOUT_S, StartUnconfirmed, expected_model, needs_tools, prepare_session, start_workflow
from ._state import ApiError, ApiState, one_at_a_time

log = logging.getLogger("stigmer.daemon.sessions")

# Seconds the session workflow may take to accept or refuse a turn or a decision before the API answers 503.
UPDATE_TIMEOUT_S = 20.0
# Seconds a deleted session's workflow may take to close after the ``close`` signal before it is terminated.
CLOSE_WAIT_S = 5.0

SESSION_ID = re.compile(r"^s-[0-9a-f]{12}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
NAME_RULE = ("1-64 letters, digits, '.', '_' or '-', starting with a letter or digit, and not shaped like a "
             "session id (s- and 12 hex digits)")


def new_session_id() -> str:
    return f"s-{secrets.token_hex(6)}"


def valid_name(name: str) -> bool:
    return bool(NAME.match(name)) and not SESSION_ID.match(name)


@dataclass
class Turn:
    """What a turn asks for (the body of ``POST /v1/sessions/{id}/messages``, or of a run in a session)."""

    message: str
    model: str | None = None
    max_tokens_total: int | None = None


def find(state: ApiState, ref: str) -> dict[str, Any]:
    """The session with id or name ``ref``; 404 with a did-you-mean."""
    from ._state import not_found

    session = state.store.get_session(ref)
    if session is None:
        raise not_found("session", ref, state.store.session_names(), "list them with `stigmer session list`")
    return session


async def create(state: ApiState, agent: str, name: str | None, model: str | None,
                 workspace: str | None) -> dict[str, Any]:
    """A new session: checked as a run would be (agent, grants, workspace, model), recorded, its workflow started.

    409 when ``name`` is taken. When Temporal surely did not get the workflow nothing is kept (503); when it
    cannot tell, the session is kept (503 with ``session_id``) and its first turn starts the workflow if needed.
    """
    from ..worker.params import SESSION_WORKFLOW_NAME, session_workflow_id

    if name is not None and state.store.get_session(name) is not None:
        raise _name_taken(name)
    session_id = new_session_id()
    try:
        params, prepared = await prepare_session(state, session_id, agent, model, workspace)
    except UserError as exc:
        raise ApiError(getattr(exc, "status", 400), exc.message, exc.hint) from None
    workflow_id = session_workflow_id(session_id)
    created = state.store.create_session(session_id, name=name, agent=prepared.agent_name, workflow_id=workflow_id,
                                         workspace=params.workspace, model=prepared.expected,
                                         model_name=prepared.model_name, model_source=prepared.model_source)
    if created is None:
        raise _name_taken(name or "")
    try:
        await start_workflow(state, params, workflow_id, SESSION_WORKFLOW_NAME, what="session")
    except StartUnconfirmed as exc:
        raise ApiError(503, exc.message, "the session is kept: its first message starts it if Temporal did not get "
                       "it; check `stigmer local status`", session_id=session_id) from None
    except ApiError:
        state.store.delete_session(session_id)  # nothing half-made: no session without a workflow
        raise
    return created


async def named_or_created(state: ApiState, ref: str, agent: str, model: str | None,
                           workspace: str | None) -> tuple[dict[str, Any], bool]:
    """The session ``ref`` (id or name) of ``agent``, created (named ``ref``) when no session has that name yet.

    Returns the session and whether it was created now. A run naming an existing session must be of its agent
    and may not move it to another workspace (409).
    """
    session = state.store.get_session(ref)
    if session is None:
        if SESSION_ID.match(ref):
            find(state, ref)  # an id nobody has: 404, not a session named like an id
        if not valid_name(ref):
            raise ApiError(422, f"invalid request: body.session: {ref!r} is not a session name: {NAME_RULE}",
                           "use another name",
                           errors=[{"loc": "body.session", "msg": f"not a session name: {NAME_RULE}"}])
        async with one_at_a_time(state, f"session-name:{ref}"):  # two first runs of one name make one session
            session = state.store.get_session(ref)
            if session is None:
                return await create(state, agent, ref, model, workspace), True
    if session["agent"] != agent:
        raise ApiError(409, f"session {ref!r} is agent {session['agent']!r}'s, not {agent!r}'s",
                       f"run `stigmer run {session['agent']} ... --session {ref}`, or use another session name")
    if workspace is not None and _workspace_of(state, agent, workspace) != session["workspace"]:
        raise ApiError(409, f"session {ref!r} works in {session['workspace']}; a session keeps its workspace",
                       "leave out --workspace, or start another session")
    return session, False


def _workspace_of(state: ApiState, agent: str, workspace: str) -> str:
    from ._start import _workspace

    return _workspace(state.ctx.config, agent, workspace, None)


async def send(state: ApiState, session: dict[str, Any], turn: Turn, key: str | None) -> tuple[dict[str, Any], int]:
    """Send one turn (a new execution of the session); (the execution with ``queued``, 201 or 200 for a repeat)."""
    if session["status"] != "open":
        raise ApiError(409, f"session {_label(session)} is closed", "start a new session")
    if key is None:
        return await _new(state, session, turn, None), 201
    async with one_at_a_time(state, key):
        existing = state.store.find_by_idempotency_key(key)
        if existing is None:
            return await _new(state, session, turn, key), 201
        if (existing["session_id"], existing["message"]) != (session["id"], turn.message):
            raise ApiError(409, f"this Idempotency-Key already sent execution {existing['id']} with another session "
                                "or message", "send a new Idempotency-Key for each new message")
        if existing["status"] == "pending" and existing["error"]:  # the Update's answer was lost: send it again
            await _update(state, session, existing, turn)
        return _record(state, existing["id"]), 200


async def _new(state: ApiState, session: dict[str, Any], turn: Turn, key: str | None) -> dict[str, Any]:
    model = session["model"] if turn.model is None else await _expected(state, session, turn.model)
    created = state.store.create_turn(secrets.token_hex(6), session, message=turn.message, model=model,
                                      idempotency_key=key)
    assert created is not None  # a key is only used under its lock, after checking it is new
    queued = await _update(state, session, created, turn)
    return {**_record(state, created["id"]), "queued": queued}


async def _expected(state: ApiState, session: dict[str, Any], model: str) -> dict[str, Any]:
    """The record's model for a turn that names another one (checked as for a run when the daemon has runners)."""
    found = state.store.get_resource("Agent", session["agent"])
    tools = bool(found) and needs_tools((found or {}).get("document", {}).get("spec", {}))
    try:
        return await asyncio.to_thread(expected_model, state.ctx.config, model, tools)
    except UserError as exc:
        raise ApiError(getattr(exc, "status", 400), exc.message, exc.hint) from None


def _record(state: ApiState, execution_id: str) -> dict[str, Any]:
    execution = state.store.get_execution(execution_id)
    assert execution is not None
    return execution


async def _update(state: ApiState, session: dict[str, Any], execution: dict[str, Any], turn: Turn,
                  *, restarted: bool = False) -> int | None:
    """The ``send_message`` Update for ``execution``; its place in the queue. Deletes the row when surely refused."""
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.service import RPCError, RPCStatusCode

    from ..worker.params import SEND_MESSAGE, TurnRequest

    request = TurnRequest(execution_id=execution["id"], message=turn.message, model=turn.model,
                          max_tokens_total=turn.max_tokens_total)
    try:
        client = await asyncio.wait_for(state.ctx.temporal_client(), START_TIMEOUT_S)
    except Exception as exc:  # nothing was sent
        state.store.discard_turn(execution["id"])
        raise ApiError(503, f"could not reach Temporal to send the message: {_reason(exc)}",
                       "check the stack with `stigmer local status`") from None
    handle = client.get_workflow_handle(session["workflow_id"])
    try:
        result = await asyncio.wait_for(
            handle.execute_update(SEND_MESSAGE, request, id=execution["id"],
                                  rpc_timeout=timedelta(seconds=UPDATE_TIMEOUT_S)), UPDATE_TIMEOUT_S + 1)
    except WorkflowUpdateFailedError as exc:
        state.store.discard_turn(execution["id"])
        raise ApiError(409, f"session {_label(session)} refused the message: {refusal(exc)}",
                       "wait for the running turns to end, or start a new session") from None
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            return _unconfirmed(state, execution, exc)
        if not restarted and execution["turn"] == 1 and await _start_again(state, session):
            return await _update(state, session, execution, turn, restarted=True)
        state.store.discard_turn(execution["id"])
        state.store.mark_session_closed(session["id"])
        raise ApiError(409, f"session {_label(session)} has ended: its workflow is closed or gone",
                       "delete it (`stigmer session delete ...`) and start a new one") from None
    except Exception as exc:  # timed out, connection lost: the Update may have reached the session
        return _unconfirmed(state, execution, exc)
    state.store.note_start_error(execution["id"], None)
    return _queued(result)


def _unconfirmed(state: ApiState, execution: dict[str, Any], exc: BaseException) -> int | None:
    message = f"could not confirm that the session got the message: {_reason(exc)}"
    state.store.note_start_error(execution["id"], message)
    raise ApiError(503, message, "it stays pending: it runs if the session got it, else it is marked failed within "
                   "a minute; retry with the same Idempotency-Key, check `stigmer local status`",
                   execution_id=execution["id"])


async def _start_again(state: ApiState, session: dict[str, Any]) -> bool:
    """Start the workflow of a session whose creation Temporal could not confirm (no turn yet: nothing to lose).

    False when it exists (so it has closed: it is not started again) or when it cannot be started now.
    """
    from temporalio.service import RPCError, RPCStatusCode

    from ..worker.params import SESSION_WORKFLOW_NAME

    client = await state.ctx.temporal_client()
    try:
        await client.get_workflow_handle(session["workflow_id"]).describe()
        return False
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            return False
    asked = session["model_name"] if session["model_source"] == "run" else None  # else the agent's, or the runner's
    try:
        params, _ = await prepare_session(state, session["id"], session["agent"], asked, session["workspace"])
        await start_workflow(state, params, session["workflow_id"], SESSION_WORKFLOW_NAME, what="session")
    except (ApiError, UserError) as exc:
        log.warning("could not start the workflow of session %s again: %s", session["id"], exc)
        return False
    log.info("started the workflow of session %s, which Temporal did not have", session["id"])
    return True


def _queued(result: Any) -> int | None:
    queued = result.get("queued") if isinstance(result, dict) else getattr(result, "queued", None)
    return queued if isinstance(queued, int) else None


def refusal(exc: BaseException) -> str:
    """The reason a workflow gave for refusing an Update (its validator's or handler's message)."""
    cause = getattr(exc, "cause", None) or exc
    return str(getattr(cause, "message", None) or cause) or "refused"


async def close(state: ApiState, session: dict[str, Any]) -> str:
    """Close the session's workflow: ``closed`` (it completed), ``terminated`` (it did not in time) or ``gone``."""
    from temporalio.client import WorkflowFailureError
    from temporalio.service import RPCError, RPCStatusCode

    from ..worker.params import CLOSE

    try:
        client = await asyncio.wait_for(state.ctx.temporal_client(), START_TIMEOUT_S)
        handle = client.get_workflow_handle(session["workflow_id"])
        try:
            await asyncio.wait_for(handle.signal(CLOSE), START_TIMEOUT_S)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return "gone"  # closed already, or never started
            raise
        try:
            await asyncio.wait_for(handle.result(), CLOSE_WAIT_S)
        except WorkflowFailureError:
            pass  # it ended, one way or another
        except TimeoutError:
            await _terminate(handle)
            return "terminated"
    except Exception as exc:
        raise ApiError(503, f"could not reach Temporal to close session {_label(session)}: {_reason(exc)}",
                       "nothing was deleted; check `stigmer local status` and retry") from None
    return "closed"


async def _terminate(handle: Any) -> None:
    from temporalio.service import RPCError, RPCStatusCode

    try:
        await asyncio.wait_for(handle.terminate(reason="session deleted"), START_TIMEOUT_S)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:  # it closed in the meantime
            raise


def end_live_turns(state: ApiState, session: dict[str, Any]) -> None:
    """End (``failed``, ``cancelled``) the turns of a deleted session still live in the store, so their streams end."""
    events = [{"execution_id": turn["id"], "type": "failed",
               "data": {"error": "the session was deleted", "cancelled": True, "session_id": session["id"],
                        "turn": turn["turn"]}}
              for turn in state.store.session_turns(session["id"]) if turn["status"] in ("pending", "running")]
    if events:
        state.hub.publish(state.store.append_events(events))


def _label(session: dict[str, Any]) -> str:
    return repr(session["name"]) if session["name"] else str(session["id"])


def _name_taken(name: str) -> ApiError:
    return ApiError(409, f"a session named {name!r} already exists",
                    f"continue it (`stigmer run AGENT MESSAGE --session {name}`), delete it, or pick another name")


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
