"""``AgentWorkflow`` (workflow type ``StigmerAgent``): one execution of an agent, durably.

Deterministic by construction: the conversation lives in workflow state as plain dicts, every
model call and every tool call is an activity (referred to by name, so this module imports no
I/O code), and the only imports are dataclasses. A worker killed at any point resumes at the
step it was on; a tool call whose result Temporal recorded is never run again.

A plain run is a one-turn conversation of its own: its work is one :class:`~._turn.Turn` (shared with
``SessionWorkflow``), which resolves the model when the input pins none (``stigmer.resolve_model``
on the runner that picked the execution up, announced as ``model_resolved``; inputs that pin
``model``, as executions started before that step existed, skip it), then loops: model call ->
tool calls (each after its approval, when the agent's policy asks for one) -> model call ... until
a final answer, ``max_steps`` model calls, a loop, a budget, or cancellation (the ``cancel`` signal
or a Temporal cancel request). Approvals are decided with the ``decide_approval`` Update.

A long run continues as new between steps (``Tunables.can_after_steps``, or when Temporal suggests it) with
``ExecutionInput.carry``: the same workflow id, so the same execution, going on from the step it was on with
its conversation by reference (docs/LONG_RUNS.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from ._turn import ApprovalHandlers, ContinueAsNew, ModelChoice, Turn, TurnContext

with workflow.unsafe.imports_passed_through():
    # ModelSpec is imported here, not only through params: resolving a dataclass's type hints looks its
    # module up in the sandbox's sys.modules, which holds only the modules passed through explicitly.
    from ..providers.spec import ModelSpec
    from ._conversation import Conversation
    from .params import CANCEL, STATUS, WORKFLOW_NAME, ExecutionInput, ExecutionResult


__all__ = ["AgentWorkflow", "ModelSpec"]


@workflow.defn(name=WORKFLOW_NAME)
class AgentWorkflow(ApprovalHandlers):
    """One agent execution. Query ``status``; signal ``cancel``; Update ``decide_approval``."""

    def __init__(self) -> None:
        self._turn: Turn | None = None
        self._always_allow: set[str] = set()
        self._cancel_requested = False

    @workflow.query(name=STATUS)
    def status(self) -> dict[str, Any]:
        """``{status, step, messages, pending_approvals, usage}``: where the execution is, and the conversation."""
        turn = self._turn
        if turn is None:
            return {"status": "running", "step": 0, "messages": [], "pending_approvals": [], "usage": None}
        return {"status": turn.status, "step": turn.step, "messages": list(turn.conv.log),
                "pending_approvals": turn.pending_approvals(), "usage": turn.usage}

    @workflow.signal(name=CANCEL)
    def cancel(self) -> None:
        """Stop at once: in-flight activities are cancelled and the execution ends as ``cancelled``."""
        self._cancel_requested = True
        if self._turn is not None:
            self._turn.cancel()

    def _approval_turn(self, approval_id: str) -> tuple[Turn | None, str | None]:
        turn = self._turn
        if turn is not None and approval_id.startswith(f"{turn.execution_id}."):
            return turn, None
        return None, None

    @workflow.run
    async def run(self, inp: ExecutionInput) -> ExecutionResult:
        ctx = TurnContext(inp.execution_id, inp.agent_name, inp.agent, inp.workspace, inp.max_steps, inp.tunables,
                          max_tokens_total=inp.max_tokens_total, gate_approvals=True, can_continue=True,
                          final_in_call=inp.final_in_call)
        if inp.carry is not None:  # this run continues an earlier one of the same execution
            conv = Conversation.carried(inp.carry["conversation"])
            self._always_allow.update(inp.carry.get("always_allow") or [])
            self._cancel_requested = self._cancel_requested or bool(inp.carry.get("cancel_requested"))
        else:
            conv = Conversation.start(str(inp.agent.get("instructions", "")), inp.by_ref)
        turn = self._turn = Turn(ctx, conv, self._always_allow)
        if inp.carry is not None:
            turn.resume(inp.carry)
        if self._cancel_requested:
            turn.cancel()
        try:
            out = await turn.run(inp.message, ModelChoice(inp.model, inp.model_name, inp.model_source))
        except ContinueAsNew:
            await workflow.wait_condition(workflow.all_handlers_finished)
            # A cancel that came while handlers finished goes with it: the next run ends at once, as cancelled.
            carry = {**turn.carry(), "always_allow": sorted(self._always_allow),
                     "cancel_requested": self._cancel_requested}
            workflow.continue_as_new(dataclasses.replace(inp, model=turn.model, carry=carry))
        if out.status == "failed":
            raise ApplicationError(out.error, type="AgentFailed", non_retryable=True)
        return ExecutionResult(status=out.status, output=out.output, steps=out.steps, usage=out.usage)
