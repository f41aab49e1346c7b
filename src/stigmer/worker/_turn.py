"""``Turn``: one execution's work, shared by a plain run (``AgentWorkflow``) and a session (``SessionWorkflow``).

Workflow code: deterministic, no I/O. A turn resolves its model when none is pinned, lists its tools, adds the
person's message to the conversation, then loops: model call -> tool calls (in parallel, each after its
approval when the policy asks for one) -> model call ... until a final answer (an assistant message without
tool calls), ``max_steps`` model calls, a loop (the same tool call with the same arguments ``loop_repeats``
times), a budget, or cancellation. It sums its calls' usage and ends with its execution's last event,
``completed`` or ``failed``, from a local activity; in a plain run started since ``final_in_call``, the model call
that gives the final answer posts ``completed`` itself (one local activity fewer per execution: ~4 ms of runner CPU
in bench/bench_runner.py).

An approval is a durable wait (``wait_condition``: no activity, no worker slot) for the ``decide_approval``
Update, whose handler (:class:`ApprovalHandlers`) records the decision here; the tool activity is scheduled
only after an approval, so a rejected call never runs. For plain runs the wait sits behind
``workflow.patched(APPROVALS_PATCH)``: histories recorded before approvals existed (their write_file and
run_shell calls ran unasked) replay unchanged.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from ..providers import usage as usage_
    from ..providers.spec import ModelSpec
    from . import _approval, _budget
    from ._conversation import Conversation
    from ._plain import decoded, plain
    from .params import (
        CALL_MODEL,
        CALL_TOOL,
        DECIDE_APPROVAL,
        LIST_TOOLS,
        PUBLISH,
        RESOLVE_MODEL,
        ApprovalDecision,
        EventInput,
        ModelCallInput,
        ModelRequest,
        ResolvedModel,
        ToolCallInput,
        ToolResult,
        ToolSchema,
        ToolsetInput,
        Tunables,
    )
    from .tools.builtin import builtin_schemas

APPROVALS_PATCH = "stigmer-approvals-1"
LOOP_MEMORY = 200
"""Distinct tool calls a long run remembers for loop detection (by reference only; earlier runs remember all)."""
# On cancel, wait for the activity to stop: its last events are then posted before the workflow's ``failed``.
_WAIT = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
# Resolving a model and checking it (a round trip to its server) takes well under this.
_RESOLVE_TIMEOUT = timedelta(seconds=120)


def payload_bytes(messages: list[dict[str, Any]], tools: list[ToolSchema]) -> int:
    """About the size of a model call's input as Temporal would carry it: the messages and tool schemas as JSON."""
    size = len(json.dumps(messages, separators=(",", ":"), default=str).encode("utf-8"))
    for tool in tools:
        size += len(tool.name) + len(tool.description) + len(json.dumps(tool.parameters, separators=(",", ":")))
    return size


class ContinueAsNew(Exception):
    """Raised by a plain run's turn between steps when its run should continue as new (the workflow does it)."""


class TurnStopped(Exception):
    """The turn ended without a final answer (maxSteps, a loop, a budget); the message says why and what to change."""

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.data = data or {}


def _cause(exc: BaseException) -> str:
    """The innermost message of an activity failure: what the provider or tool layer said."""
    while isinstance(exc, ActivityError) and exc.cause is not None:
        exc = exc.cause
    return getattr(exc, "message", None) or str(exc)


def retry(t: Tunables, attempts: int) -> RetryPolicy:
    return RetryPolicy(initial_interval=timedelta(seconds=t.retry_initial), backoff_coefficient=2.0,
                       maximum_interval=timedelta(seconds=t.retry_max), maximum_attempts=attempts)


async def publish(execution_id: str, kind: str, data: dict[str, Any]) -> None:
    """Publish one event from workflow code (a local activity); a sink failure never fails the execution."""
    try:
        await workflow.execute_local_activity(
            PUBLISH, EventInput(execution_id, kind, data), start_to_close_timeout=timedelta(seconds=15),
            retry_policy=RetryPolicy(maximum_attempts=2))
    except ActivityError:
        workflow.logger.warning("could not publish the %s event of %s", kind, execution_id)


@dataclass
class TurnContext:
    """What a turn runs with. ``gate_approvals``: a plain run (approvals behind ``workflow.patched``).
    ``session``: ``{"session_id", "turn", "session_usage"}`` for a session's turn (its events carry them).
    ``final_in_call``: the model call that answers posts ``completed`` (``ExecutionInput.final_in_call``)."""

    execution_id: str
    agent_name: str
    agent: dict[str, Any]
    workspace: str
    max_steps: int
    tunables: Tunables
    max_tokens_total: int | None = None
    gate_approvals: bool = False
    session: dict[str, Any] | None = None
    can_continue: bool = False
    final_in_call: bool = False


@dataclass
class ModelChoice:
    """The model of a turn: ``model`` when pinned, else resolved from ``name``/``source`` by the runner."""

    model: ModelSpec | None
    name: str | None = None
    source: str = "runner"
    changed_from: str | None = None


@dataclass
class TurnOutcome:
    status: str  # completed | failed | cancelled
    output: str = ""
    error: str = ""
    steps: int = 0
    usage: dict[str, Any] = field(default_factory=dict)
    model: ModelSpec | None = None


@dataclass
class _Pending:
    request: dict[str, Any]
    decision: str | None = None  # approved | rejected | timed_out | cancelled
    reason: str = ""
    always: bool = False
    by: str = ""


class Turn:
    """One execution: see the module docstring. ``conv`` and ``always_allow`` are the caller's, changed in place."""

    def __init__(self, ctx: TurnContext, conv: Conversation, always_allow: set[str]) -> None:
        self.ctx = ctx
        self.execution_id = ctx.execution_id
        self.conv = conv
        self.always_allow = always_allow
        self.status = "running"
        self.step = 0
        self.usage: dict[str, Any] = usage_.empty()
        self.model: ModelSpec | None = None
        self.pending: dict[str, _Pending] = {}
        self.decided: dict[str, str] = {}
        self.cancel_requested = False
        self._inflight: list[asyncio.Future[Any]] = []
        self._truncated = False
        self._final_posted = False
        self._seen: dict[str, int] = {}
        self._resumed = False
        self._run_steps = 0
        self._policy = _approval.policy_of(ctx.agent)
        self._timeout, self._timeout_text = _approval.approval_timeout(ctx.agent)
        self._budget = _budget.budget_of(ctx.agent, ctx.max_tokens_total)
        self._approvals_on: bool | None = None if ctx.gate_approvals else True

    # ----- a run continued as new -----

    def carry(self) -> dict[str, Any]:
        """What the next run of this execution goes on with (``ExecutionInput.carry``)."""
        return {"conversation": self.conv.carry(), "step": self.step, "usage": self.usage, "seen": self._seen,
                "budget": asdict(self._budget), "approvals_on": self._approvals_on}

    def resume(self, carry: dict[str, Any]) -> None:
        self.step = int(carry.get("step", 0))
        self.usage = dict(carry.get("usage") or usage_.empty())
        self._seen = dict(carry.get("seen") or {})
        self._budget = _budget.Budget(**carry["budget"]) if carry.get("budget") else self._budget
        self._approvals_on = carry.get("approvals_on", self._approvals_on)
        self._resumed = True

    # ----- what handlers and queries see -----

    def cancel(self) -> None:
        """Stop at once: in-flight activities and approval waits are cancelled; the turn ends as cancelled."""
        self.cancel_requested = True
        for task in self._inflight:
            task.cancel()

    def pending_approvals(self) -> list[dict[str, Any]]:
        return [dict(p.request) for p in self.pending.values()]

    def decision_problem(self, d: ApprovalDecision) -> str | None:
        """Why ``d`` is refused (unknown, decided, ended, other arguments), or None when it can be applied."""
        if d.approval_id in self.decided:
            return f"approval {d.approval_id} was already decided ({self.decided[d.approval_id]})"
        if self.status != "running":
            return f"approval {d.approval_id} belongs to execution {self.execution_id}, which has ended ({self.status})"
        pending = self.pending.get(d.approval_id)
        if pending is None:
            return f"no approval {d.approval_id!r} is waiting in execution {self.execution_id}"
        if d.args_hash != pending.request["args_hash"]:
            return ("these arguments are not the ones awaiting approval (args_hash does not match the pending call's; "
                    "look at the approval again and decide on what it shows)")
        return None

    def decide(self, d: ApprovalDecision) -> str:
        """Record a validated decision (the Update handler); the waiting call goes on from its next step."""
        pending = self.pending.pop(d.approval_id)
        pending.decision = "approved" if d.approve else "rejected"
        pending.reason, pending.always, pending.by = d.reason, bool(d.always and d.approve), d.by
        self.decided[d.approval_id] = pending.decision
        tool = pending.request.get("tool")
        if pending.always and tool:
            self.always_allow.add(str(tool))
        return pending.decision

    # ----- the turn -----

    async def run(self, message: str, choice: ModelChoice) -> TurnOutcome:
        """Run the turn to its end; its last event is published. A Temporal cancel is reported, then re-raised."""
        try:
            output = await self._loop(message, choice)
        except (asyncio.CancelledError, CancelledError):
            if not self.cancel_requested:  # a Temporal cancel request: report it, then end as cancelled
                await self._cancelled()
                raise
            return await self._cancelled()
        except TurnStopped as exc:
            return await self._failed(str(exc), exc.data)
        except ActivityError as exc:
            if self.cancel_requested:
                return await self._cancelled()
            if isinstance(exc.cause, CancelledError):  # Temporal cancelled the workflow, and so this activity
                await self._cancelled()
                raise asyncio.CancelledError() from None
            return await self._failed(_cause(exc))
        return await self._completed(output)

    async def _loop(self, message: str, choice: ModelChoice) -> str:
        t = self.ctx.tunables
        self.model = choice.model if choice.model is not None else await self._resolve(choice)
        agent = self.ctx.agent
        toolset = ToolsetInput(self.execution_id, list(agent.get("tools") or []), list(agent.get("mcpServers") or []),
                               self.ctx.workspace)
        # Built-in tools are static data; only MCP servers need an activity to be asked for theirs.
        tools = await self._list_tools(toolset) if toolset.mcp_servers else builtin_schemas(toolset.toolsets)
        by_name = {tool.name: tool for tool in tools}
        # Built-in schemas are the runner's own static data: a model call names their toolsets (ModelCallInput).
        sent, toolsets = (tools, None) if toolset.mcp_servers else ([], list(toolset.toolsets))
        if not self._resumed:
            self.conv.add({"role": "user", "content": message})
        conv = self.conv
        while not self.cancel_requested:
            if self.step >= self.ctx.max_steps:
                raise TurnStopped(f"stopped after {self.ctx.max_steps} steps without a final answer; raise the "
                                  "agent's spec.maxSteps or make its task smaller")
            if self.ctx.can_continue and conv.by_ref and self._run_steps > 0 and (
                    self._run_steps >= t.can_after_steps or workflow.info().is_continue_as_new_suggested()):
                raise ContinueAsNew()
            self._check_payload(tools)
            self.step += 1
            self._run_steps += 1
            reply: dict[str, Any] = await self._run(workflow.start_activity(
                CALL_MODEL, plain(ModelCallInput(self.execution_id, self.step, self.model, list(conv.tail), sent,
                                                 t.model_stall, conversation=conv.ref, by_ref=conv.by_ref,
                                                 context_tokens=t.context_tokens, toolsets=toolsets,
                                                 final={"usage": self.usage} if self.ctx.final_in_call else None)),
                result_type=dict, start_to_close_timeout=timedelta(seconds=t.model_timeout),
                heartbeat_timeout=timedelta(seconds=t.model_heartbeat),
                retry_policy=retry(t, t.model_max_attempts), cancellation_type=_WAIT))
            self.usage = usage_.add(self.usage, reply.pop("usage", None) or {})
            conv.committed(reply.pop("conversation", None))
            posted = bool(reply.pop("final_posted", False))
            conv.add(reply)
            calls = reply.get("tool_calls") or []
            if not calls:
                self._truncated, self._final_posted = bool(reply.get("truncated")), posted
                return str(reply.get("content") or "")
            self._check_loop(calls, self._seen, t.loop_repeats, hashed=conv.by_ref)
            await self._check_budget()
            results = await self._run_tools(calls, by_name, toolset)
            for r in results:
                conv.add(_tool_message(r))
        raise asyncio.CancelledError()

    async def _resolve(self, choice: ModelChoice) -> ModelSpec:
        """Pin the model: resolved by a runner, recorded in history, announced as ``model_resolved``."""
        t, agent = self.ctx.tunables, self.ctx.agent
        needs_tools = bool(agent.get("tools") or agent.get("mcpServers"))
        request = ModelRequest(self.execution_id, self.ctx.agent_name, choice.name, choice.source, needs_tools,
                               str(agent.get("toolCalls") or "auto"))
        resolved: ResolvedModel = await self._run(workflow.start_activity(
            RESOLVE_MODEL, request, result_type=ResolvedModel, start_to_close_timeout=_RESOLVE_TIMEOUT,
            retry_policy=retry(t, t.model_max_attempts), cancellation_type=_WAIT))
        data: dict[str, Any] = {"model": resolved.model.to_dict(), "source": resolved.source,
                                "origin": resolved.origin}
        if resolved.tool_calls_why:
            data["tool_calls"] = {"mode": resolved.model.tool_calls, "why": resolved.tool_calls_why}
        if choice.changed_from is not None and choice.changed_from != resolved.model.id:
            data["changed_from"] = choice.changed_from
        # Published from here, after history holds the result: the event always names the model that is used.
        await publish(self.execution_id, "model_resolved", data)
        return resolved.model

    async def _list_tools(self, toolset: ToolsetInput) -> list[ToolSchema]:
        result: list[ToolSchema] = await workflow.execute_activity(
            LIST_TOOLS, toolset, result_type=list[ToolSchema], start_to_close_timeout=timedelta(seconds=120),
            retry_policy=RetryPolicy(maximum_attempts=3))
        return result

    async def _run_tools(self, calls: list[dict[str, Any]], by_name: dict[str, ToolSchema],
                         toolset: ToolsetInput) -> list[ToolResult]:
        # One task per call, started in order: calls that need no approval schedule their activity at once (the
        # same commands, in the same order, as before approvals existed); the others wait for their decision.
        tasks = [asyncio.ensure_future(self._call(i, call, by_name.get(call.get("name", "")), toolset))
                 for i, call in enumerate(calls)]
        self._inflight = list(tasks)
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            self._inflight = []

    async def _call(self, index: int, call: dict[str, Any], tool: ToolSchema | None,
                    toolset: ToolsetInput) -> ToolResult:
        step, t = self.step, self.ctx.tunables
        asks, why = self._asks(call, tool)
        if asks:
            name, args = str(call.get("name", "")), call.get("args") or {}
            pending = await self._ask(f"{self.execution_id}.{step}.{index}", "tool", name, args,
                                      str(call.get("id", "")), why)
            if pending.decision != "approved":
                return ToolResult(str(call.get("id", "")), name, _approval.refusal(str(pending.decision),
                                                                                   pending.reason), is_error=True)
        result = await workflow.start_activity(
            CALL_TOOL, plain(ToolCallInput(self.execution_id, step, call, tool, toolset, by_ref=self.conv.by_ref)),
            result_type=dict, start_to_close_timeout=timedelta(seconds=t.tool_timeout),
            heartbeat_timeout=timedelta(seconds=t.tool_heartbeat), retry_policy=retry(t, t.tool_max_attempts),
            cancellation_type=_WAIT)
        return decoded(ToolResult, result)  # as the SDK would, faster (_plain)

    def _asks(self, call: dict[str, Any], tool: ToolSchema | None) -> tuple[bool, str]:
        """Whether the call waits for a person (a call that cannot run, unknown tool or bad arguments, never does)."""
        if tool is None or "invalid_args" in call or not isinstance(call.get("args") or {}, dict):
            return False, ""
        asks, why = _approval.needs_approval(tool, self._policy, self.always_allow)
        if asks and self._approvals_on is None:
            self._approvals_on = workflow.patched(APPROVALS_PATCH)
        return asks and bool(self._approvals_on), why

    async def _ask(self, approval_id: str, kind: str, tool: str | None, args: dict[str, Any], call_id: str,
                   why: str) -> _Pending:
        """Publish ``approval_requested`` and wait (durably) for the decision, or for ``approvalTimeout``."""
        pending = _Pending({"approval_id": approval_id, "kind": kind, "tool": tool, "args": args,
                            "args_hash": _approval.args_hash(tool, args), "call_id": call_id, "step": self.step,
                            "reason": why})
        self.pending[approval_id] = pending
        await publish(self.execution_id, "approval_requested", pending.request)
        try:
            await workflow.wait_condition(lambda: pending.decision is not None or self.cancel_requested,
                                          timeout=self._timeout)
        except TimeoutError:
            if pending.decision is None:
                self.pending.pop(approval_id, None)
                pending.decision = self.decided[approval_id] = "timed_out"
                pending.reason = f"no decision within {self._timeout_text} (approvalTimeout)"
        if pending.decision is None:  # the turn was cancelled while it waited (its end announces the approval)
            raise asyncio.CancelledError()
        if pending.decision != "cancelled":  # a cancelled one was announced by whoever ended the turn
            await publish(self.execution_id, "approval_decided", {
                "approval_id": approval_id, "decision": pending.decision, "reason": pending.reason,
                "always": pending.always, "by": pending.by})
        return pending

    def _check_payload(self, tools: list[ToolSchema]) -> None:
        """Fail the turn, naming the cause, before a model call whose input Temporal would refuse.

        No saved history is affected: a history that passed this size never completed the step that follows.
        """
        limit = self.ctx.tunables.max_payload_bytes
        size = payload_bytes(self.conv.tail, tools)
        if size <= limit:
            return
        where = ("; this session's conversation is that large: start a new one (stigmer chat: /new)"
                 if self.ctx.session else "")
        raise TurnStopped(f"stopped: the conversation is {size / 1e6:.1f} MB, more than one model call may carry "
                          f"({limit / 1e6:.1f} MB; Temporal refuses a payload over 2 MB); keep tool outputs smaller "
                          f"(limits.tool_output_chars) or give the agent a smaller task{where}",
                          {"payload_bytes": size, "limit": limit})

    async def _check_budget(self) -> None:
        """After a model call that asks for more work: stop at a reached limit, or ask a person to go on."""
        over = _budget.overrun(self._budget, self.usage)
        if over is None:
            return
        if self._budget.on_exceeded == "ask":
            pending = await self._ask(f"{self.execution_id}.{self.step}.budget", "budget", None, over.data(), "",
                                      over.message)
            if pending.decision == "approved":
                self._budget = _budget.raised(self._budget, over.limit)
                return
        raise TurnStopped(f"{over.message}; raise the budget or make the task smaller", {"budget": over.data()})

    async def _run(self, task: asyncio.Future[Any]) -> Any:
        self._inflight = [task]
        try:
            return await task
        finally:
            self._inflight = []

    @staticmethod
    def _check_loop(calls: list[dict[str, Any]], seen: dict[str, int], repeats: int, hashed: bool = False) -> None:
        for call in calls:
            key = json.dumps([call.get("name"), call.get("args")], sort_keys=True)
            if hashed:  # carried over a continue-as-new: a digest, not the arguments (a file's content can be large)
                key = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
            seen[key] = seen.pop(key, 0) + 1
            if hashed and len(seen) > LOOP_MEMORY:  # a call last seen LOOP_MEMORY distinct calls ago is forgotten
                del seen[next(iter(seen))]
            if seen[key] >= repeats:
                raise TurnStopped(f"stopped: the model called {call.get('name')!r} with the same arguments "
                                  f"{seen[key]} times (a loop); change the instructions or the model")

    # ----- the end -----

    async def _completed(self, output: str) -> TurnOutcome:
        self.status = "completed"
        data: dict[str, Any] = {"output": output, "steps": self.step}
        if self._truncated:  # only then: the event of every answer that was not cut is as it always was
            data["truncated"] = True
        await self._end("completed", data)
        return TurnOutcome("completed", output=output, steps=self.step, usage=self.usage, model=self.model)

    async def _failed(self, message: str, extra: dict[str, Any] | None = None) -> TurnOutcome:
        self.status = "failed"
        await self._end("failed", {"error": message, "steps": self.step, **(extra or {})})
        return TurnOutcome("failed", error=message, steps=self.step, usage=self.usage, model=self.model)

    async def _cancelled(self) -> TurnOutcome:
        self.status = "cancelled"
        await self._end("failed", {"error": "cancelled", "cancelled": True, "steps": self.step})
        return TurnOutcome("cancelled", error="cancelled", steps=self.step, usage=self.usage, model=self.model)

    async def _end(self, kind: str, data: dict[str, Any]) -> None:
        """Close what is left (approvals still waiting, a conversation cut mid step), then the last event."""
        for approval_id, pending in list(self.pending.items()):
            del self.pending[approval_id]
            pending.decision = self.decided[approval_id] = "cancelled"
            await publish(self.execution_id, "approval_decided", {
                "approval_id": approval_id, "decision": "cancelled", "reason": f"the execution ended ({self.status})",
                "always": False, "by": ""})
        data["usage"] = self.usage
        if self.ctx.session is not None:
            self._answer_dangling_calls()
            data.update(session_id=self.ctx.session.get("session_id"), turn=self.ctx.session.get("turn"),
                        session_usage=usage_.add(self.ctx.session.get("session_usage") or usage_.empty(), self.usage))
        if kind == "completed" and self._final_posted:
            return  # the model call that answered posted it, with these data (ModelCallInput.final)
        await publish(self.execution_id, kind, data)

    def _answer_dangling_calls(self) -> None:
        """A session's next turn sends the conversation again: every tool call in it needs a result."""
        step = self.conv.last_assistant_and_after()
        answered = {m.get("tool_call_id") for m in step if m.get("role") == "tool"}
        last = step[0] if step else None
        for call in (last or {}).get("tool_calls") or []:
            if call.get("id") not in answered:
                self.conv.add({"role": "tool", "tool_call_id": call.get("id"), "name": call.get("name"),
                                      "content": f"this call was not run: the turn ended ({self.status})",
                                      "is_error": True})


def _tool_message(r: ToolResult) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "tool", "tool_call_id": r.call_id, "name": r.name, "content": r.content,
                               "is_error": r.is_error}
    if r.content_ref:  # the whole output is in the blob store; content is a preview
        message.update(content_ref=r.content_ref, chars=r.chars)
    return message


class ApprovalHandlers:
    """The ``decide_approval`` Update of both workflow types: a validator that refuses with a reason, then the
    decision recorded in the turn that waits for it. A subclass says which turn holds an approval."""

    def _approval_turn(self, approval_id: str) -> tuple[Turn | None, str | None]:
        """The running turn holding ``approval_id``, or a reason to refuse (the approval's execution ended)."""
        raise NotImplementedError

    def _decision_problem(self, d: ApprovalDecision) -> tuple[Turn | None, str | None]:
        turn, problem = self._approval_turn(d.approval_id)
        if problem is None and turn is not None:
            problem = turn.decision_problem(d)
        if problem is None and turn is None:
            problem = f"no approval {d.approval_id!r} is waiting here"
        return turn, problem

    @workflow.update(name=DECIDE_APPROVAL)
    def decide_approval(self, d: ApprovalDecision) -> dict[str, Any]:
        """Approve or reject one waiting call (or budget); the decision is in history before anything uses it."""
        turn, problem = self._decision_problem(d)
        if problem is not None or turn is None:  # validated already; checked again for decisions in the same task
            raise ApplicationError(problem or "unknown approval", type="ApprovalRefused", non_retryable=True)
        return {"approval_id": d.approval_id, "decision": turn.decide(d)}

    @decide_approval.validator
    def _validate_decision(self, d: ApprovalDecision) -> None:
        _, problem = self._decision_problem(d)
        if problem is not None:
            raise ApplicationError(problem, type="ApprovalRefused", non_retryable=True)
