"""``SessionWorkflow`` (workflow type ``StigmerSession``): a conversation, one long-lived workflow per session.

A turn arrives as the ``send_message`` Update (a :class:`TurnRequest`; the Update id is the turn's
execution id). Its validator rejects at once, with a reason, a turn when the session is closing, an
empty message, or one more when ``MAX_QUEUED`` turns already wait; its handler only appends the turn
to a FIFO queue and returns its place, so the caller answers at once and streams the execution's events.
The main loop waits (``wait_condition``: no activity, no worker slot) for a queued turn or a close, and
runs each turn with the same :class:`~._turn.Turn` a plain run uses, over the whole conversation.

The model is pinned by the first turn and changes only when a turn names one (``TurnRequest.model``;
that turn's ``model_resolved`` says ``changed_from``). Signals: ``cancel_turn(execution_id)`` (the
running turn or a queued one; the session stays), ``close`` (cancel the running turn, drop the queued
ones, complete). Queries: ``state`` and ``turn(execution_id)``. Between turns the workflow continues as
new when Temporal suggests it or after ``can_after_turns`` turns, carrying the conversation, the usage,
the turn count, the tools always allowed, the queued turns, the recent results and the model.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from ._turn import ApprovalHandlers, ModelChoice, Turn, TurnContext, publish

with workflow.unsafe.imports_passed_through():
    from ..providers import usage as usage_
    from ..providers.spec import ModelSpec
    from ._approval import execution_of
    from ._conversation import Conversation
    from .params import (
        CANCEL_TURN,
        CLOSE,
        MAX_QUEUED,
        SEND_MESSAGE,
        SESSION_WORKFLOW_NAME,
        STATE,
        TURN,
        SessionInput,
        SessionResult,
        TurnRequest,
    )

__all__ = ["ModelSpec", "SessionWorkflow"]

RECENT_TURNS = 32
"""Results of the last turns kept for the ``turn`` query (and carried over a continue-as-new)."""


@workflow.defn(name=SESSION_WORKFLOW_NAME)
class SessionWorkflow(ApprovalHandlers):
    """One session. Updates ``send_message``, ``decide_approval``; signals ``cancel_turn``, ``close``; queries
    ``state``, ``turn``."""

    @workflow.init
    def __init__(self, inp: SessionInput) -> None:
        self._inp = inp
        if inp.conversation is not None:
            self._conv = Conversation.carried(inp.conversation)
        elif inp.messages:  # carried over by a run from before conversations went by reference
            self._conv = Conversation.of_messages(list(inp.messages), by_ref=False)
        else:
            self._conv = Conversation.start(str(inp.agent.get("instructions", "")), by_ref=False)
        self._usage: dict[str, Any] = dict(inp.usage or usage_.empty())
        self._turns = inp.turns
        self._run_turns = 0
        self._always_allow: set[str] = set(inp.always_allow)
        self._queue: list[TurnRequest] = list(inp.queued)
        self._recent: dict[str, dict[str, Any]] = dict(inp.recent)
        self._model: ModelSpec | None = inp.model
        self._closing = False
        self._turn: Turn | None = None

    # ----- handlers -----

    @workflow.update(name=SEND_MESSAGE)
    def send_message(self, req: TurnRequest) -> dict[str, Any]:
        """Queue a turn; ``queued`` is how many turns run before it (0: it runs now)."""
        if self._known(req.execution_id) is None:
            self._queue.append(req)
        return {"execution_id": req.execution_id, "queued": self._position(req.execution_id)}

    @send_message.validator
    def _validate_message(self, req: TurnRequest) -> None:
        if self._known(req.execution_id) is not None:
            return  # the same turn sent again (a retried Update across a continue-as-new): answered as before
        problem = None
        if not req.execution_id:
            problem = "the turn has no execution_id"
        elif self._closing:
            problem = "the session is closing: start a new one"
        elif not req.message.strip():
            problem = "the message is empty: say something"
        elif len(self._queue) >= MAX_QUEUED:
            problem = f"{MAX_QUEUED} turns are already waiting in this session: send this one when one has run"
        if problem is not None:
            raise ApplicationError(problem, type="TurnRefused", non_retryable=True)

    @workflow.signal(name=CANCEL_TURN)
    async def cancel_turn(self, execution_id: str) -> None:
        """Cancel the running turn or drop a queued one (it ends ``failed`` with ``cancelled: true``)."""
        if self._turn is not None and self._turn.execution_id == execution_id:
            self._turn.cancel()
            return
        req = next((r for r in self._queue if r.execution_id == execution_id), None)
        if req is not None:
            self._queue.remove(req)
            await self._drop(req)

    @workflow.signal(name=CLOSE)
    def close(self) -> None:
        """End the session: the running turn is cancelled, the queued ones dropped, then the workflow completes."""
        self._closing = True
        if self._turn is not None:
            self._turn.cancel()

    @workflow.query(name=STATE)
    def state(self) -> dict[str, Any]:
        turn = self._turn
        status = "closing" if self._closing else "running" if turn is not None else "idle"
        return {"status": status, "turns": self._turns, "current": turn.execution_id if turn else None,
                "queued": [r.execution_id for r in self._queue],
                "pending_approvals": turn.pending_approvals() if turn else [], "usage": self._usage,
                "model": self._model.to_dict() if self._model else None, "messages": self._conv.count}

    @workflow.query(name=TURN)
    def turn(self, execution_id: str) -> dict[str, Any]:
        """``{status, ...}`` of one turn: queued, running (with its step), or its result; else ``unknown``."""
        return self._known(execution_id) or {"status": "unknown"}

    def _known(self, execution_id: str) -> dict[str, Any] | None:
        if self._turn is not None and self._turn.execution_id == execution_id:
            return {"status": "running", "step": self._turn.step, "usage": self._turn.usage}
        if any(r.execution_id == execution_id for r in self._queue):
            return {"status": "queued", "position": self._position(execution_id)}
        return self._recent.get(execution_id)

    def _position(self, execution_id: str) -> int:
        ids = [r.execution_id for r in self._queue]
        if execution_id not in ids:
            return 0
        return ids.index(execution_id) + (1 if self._turn is not None else 0)

    def _approval_turn(self, approval_id: str) -> tuple[Turn | None, str | None]:
        execution_id = execution_of(approval_id)
        if self._turn is not None and self._turn.execution_id == execution_id:
            return self._turn, None
        ended = self._recent.get(execution_id)
        if ended is not None:
            return None, (f"approval {approval_id} belongs to execution {execution_id}, which has ended "
                          f"({ended['status']})")
        return None, None

    # ----- the main loop -----

    @workflow.run
    async def run(self, inp: SessionInput) -> SessionResult:
        # From the input: sessions started before references (no such field) replay and go on as they ran.
        self._conv.by_ref = inp.by_ref
        try:
            while True:
                await workflow.wait_condition(lambda: bool(self._queue) or self._closing)
                if self._closing:
                    break
                await self._run_turn(self._queue.pop(0))
                if self._closing:
                    break
                if self._run_turns >= inp.can_after_turns or workflow.info().is_continue_as_new_suggested():
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    if not self._closing:
                        workflow.continue_as_new(self._carried())
        except asyncio.CancelledError:  # a Temporal cancel request: the queued turns still get their last event
            await self._drop_queued()
            raise
        await self._drop_queued()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return SessionResult(turns=self._turns, usage=self._usage)

    async def _run_turn(self, req: TurnRequest) -> None:
        self._turns += 1
        self._run_turns += 1
        inp = self._inp
        ctx = TurnContext(req.execution_id, inp.agent_name, inp.agent, inp.workspace, inp.max_steps, inp.tunables,
                          max_tokens_total=req.max_tokens_total,
                          session={"session_id": inp.session_id, "turn": self._turns, "session_usage": self._usage})
        if req.model:
            choice = ModelChoice(None, req.model, "run", self._model.id if self._model else None)
        elif self._model is None:
            choice = ModelChoice(None, inp.model_name, inp.model_source)
        else:
            choice = ModelChoice(self._model)
        turn = self._turn = Turn(ctx, self._conv, self._always_allow)
        try:
            out = await turn.run(req.message, choice)
        finally:
            self._turn = None
            self._usage = usage_.add(self._usage, turn.usage)
            self._model = turn.model or self._model
            self._remember(req.execution_id, {"status": turn.status, "turn": self._turns, "usage": turn.usage})
        result = self._recent[req.execution_id]
        if out.status == "completed":
            result["output"] = out.output
        else:
            result["error"] = out.error

    async def _drop_queued(self) -> None:
        while self._queue:
            await self._drop(self._queue.pop(0))

    async def _drop(self, req: TurnRequest) -> None:
        """A queued turn that will not run: its execution ends ``failed`` with ``cancelled: true``."""
        self._remember(req.execution_id, {"status": "cancelled", "error": "cancelled", "usage": usage_.empty()})
        await publish(req.execution_id, "failed", {"error": "cancelled", "cancelled": True, "steps": 0,
                                                   "usage": usage_.empty(), "session_id": self._inp.session_id,
                                                   "session_usage": self._usage})

    def _remember(self, execution_id: str, result: dict[str, Any]) -> None:
        self._recent[execution_id] = result
        while len(self._recent) > RECENT_TURNS:
            del self._recent[next(iter(self._recent))]

    def _carried(self) -> SessionInput:
        inp = self._inp
        return SessionInput(session_id=inp.session_id, agent_name=inp.agent_name, agent=inp.agent,
                            workspace=inp.workspace, max_steps=inp.max_steps, tunables=inp.tunables, model=self._model,
                            model_name=inp.model_name, model_source=inp.model_source, by_ref=self._conv.by_ref,
                            conversation=self._conv.carry(), usage=self._usage, turns=self._turns,
                            always_allow=sorted(self._always_allow), queued=list(self._queue), recent=self._recent,
                            can_after_turns=inp.can_after_turns)
