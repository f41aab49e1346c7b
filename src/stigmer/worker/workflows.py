"""``AgentWorkflow`` (workflow type ``StigmerAgent``): one execution of an agent, durably.

Deterministic by construction: the conversation lives in workflow state as plain dicts, every
model call and every tool call is an activity (referred to by name, so this module imports no
I/O code), and the only imports are dataclasses. A worker killed at any point resumes at the
step it was on; a tool call whose result Temporal recorded is never run again.

First step, when the input pins no model (every execution the daemon starts): resolve it on the
runner that picked the execution up (``stigmer.resolve_model``: the run's model, else the agent's,
else the runner's own configuration); history records the result, so replays and retries keep it,
and a ``model_resolved`` event says which model won and why. Inputs that pin ``model`` (executions
started before this step existed, whose histories must replay unchanged) skip it.

Loop: model call -> its tool calls (in parallel) -> model call ... until a final answer (an
assistant message without tool calls), ``max_steps`` model calls, a loop (the same tool call
with the same arguments ``loop_repeats`` times) or cancellation (the ``cancel`` signal or a
Temporal cancel request).
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    # ModelSpec is imported here, not only through params: resolving a dataclass's type hints looks its
    # module up in the sandbox's sys.modules, which holds only the modules passed through explicitly.
    from ..providers.spec import ModelSpec
    from .params import (
        CALL_MODEL,
        CALL_TOOL,
        LIST_TOOLS,
        PUBLISH,
        RESOLVE_MODEL,
        WORKFLOW_NAME,
        EventInput,
        ExecutionInput,
        ExecutionResult,
        ModelCallInput,
        ModelRequest,
        ResolvedModel,
        ToolCallInput,
        ToolResult,
        ToolSchema,
        ToolsetInput,
        Tunables,
    )
    from .tools.builtin import builtin_tools


__all__ = ["AgentWorkflow", "ModelSpec"]

# On cancel, wait for the activity to stop: its last events are then posted before the workflow's ``failed``.
_WAIT = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
# Resolving a model and checking it (a round trip to its server) takes well under this.
_RESOLVE_TIMEOUT = timedelta(seconds=120)


class AgentStopped(Exception):
    """The loop ended without a final answer (maxSteps, a loop); the message says why and what to change."""


def _cause(exc: BaseException) -> str:
    """The innermost message of an activity failure: what the provider or tool layer said."""
    while isinstance(exc, ActivityError) and exc.cause is not None:
        exc = exc.cause
    return getattr(exc, "message", None) or str(exc)


@workflow.defn(name=WORKFLOW_NAME)
class AgentWorkflow:
    """One agent execution. Query ``status``; signal ``cancel``."""

    def __init__(self) -> None:
        self._status = "running"
        self._step = 0
        self._messages: list[dict[str, Any]] = []
        self._cancel_requested = False
        self._inflight: list[asyncio.Task[Any]] = []
        self._truncated = False  # the final answer was cut at the token limit

    @workflow.query(name="status")
    def status(self) -> dict[str, Any]:
        """``{status, step, messages}``: where the execution is, and the conversation so far."""
        return {"status": self._status, "step": self._step, "messages": list(self._messages)}

    @workflow.signal(name="cancel")
    def cancel(self) -> None:
        """Stop at once: in-flight activities are cancelled and the execution ends as ``cancelled``."""
        self._cancel_requested = True
        for task in self._inflight:
            task.cancel()

    @workflow.run
    async def run(self, inp: ExecutionInput) -> ExecutionResult:
        try:
            output = await self._loop(inp)
        except (asyncio.CancelledError, CancelledError):
            if not self._cancel_requested:  # a Temporal cancel request: report it, then end as cancelled
                await self._report_cancelled(inp)
                raise
            return await self._cancelled(inp)
        except AgentStopped as exc:
            await self._fail(inp, str(exc))
        except ActivityError as exc:
            if self._cancel_requested:
                return await self._cancelled(inp)
            if isinstance(exc.cause, CancelledError):  # Temporal cancelled the workflow, and so this activity
                await self._report_cancelled(inp)
                raise asyncio.CancelledError() from None
            await self._fail(inp, _cause(exc))
        self._status = "completed"
        done: dict[str, Any] = {"output": output, "steps": self._step}
        if self._truncated:  # only then: the event of every answer that was not cut is as it always was
            done["truncated"] = True
        await self._finish(inp, "completed", done)
        return ExecutionResult(status="completed", output=output, steps=self._step)

    async def _loop(self, inp: ExecutionInput) -> str:
        t = inp.tunables
        # Gated on the input, not workflow.patched(): only inputs without a pinned model take this step, and no
        # history recorded before it existed has such an input, so every saved history replays unchanged.
        model = inp.model if inp.model is not None else await self._resolve_model(inp)
        toolset = ToolsetInput(inp.execution_id, list(inp.agent.get("tools") or []),
                               list(inp.agent.get("mcpServers") or []), inp.workspace)
        # Built-in tools are static data; only MCP servers need an activity to be asked for theirs.
        tools = (await self._list_tools(toolset) if toolset.mcp_servers else
                 [ToolSchema(name, desc, params) for name, desc, params in builtin_tools(toolset.toolsets)])
        by_name = {tool.name: tool for tool in tools}
        self._messages = [{"role": "system", "content": str(inp.agent.get("instructions", ""))},
                          {"role": "user", "content": inp.message}]
        seen: dict[str, int] = {}
        while not self._cancel_requested:
            if self._step >= inp.max_steps:
                raise AgentStopped(f"stopped after {inp.max_steps} steps without a final answer; raise the agent's "
                                   "spec.maxSteps or make its task smaller")
            self._step += 1
            reply: dict[str, Any] = await self._run(workflow.start_activity(
                CALL_MODEL, ModelCallInput(inp.execution_id, self._step, model, list(self._messages), tools,
                                           t.model_stall),
                result_type=dict, start_to_close_timeout=timedelta(seconds=t.model_timeout),
                heartbeat_timeout=timedelta(seconds=t.model_heartbeat),
                retry_policy=self._retry(t, t.model_max_attempts), cancellation_type=_WAIT))
            self._messages.append(reply)
            calls = reply.get("tool_calls") or []
            if not calls:
                self._truncated = bool(reply.get("truncated"))
                return str(reply.get("content") or "")
            self._check_loop(calls, seen, t.loop_repeats)
            results = await self._run_tools(inp, calls, by_name, toolset)
            self._messages.extend({"role": "tool", "tool_call_id": r.call_id, "name": r.name, "content": r.content,
                                   "is_error": r.is_error} for r in results)
        raise asyncio.CancelledError()

    async def _resolve_model(self, inp: ExecutionInput) -> ModelSpec:
        """Pin the execution's model: resolved by a runner, recorded in history, announced as ``model_resolved``."""
        t = inp.tunables
        needs_tools = bool(inp.agent.get("tools") or inp.agent.get("mcpServers"))
        request = ModelRequest(inp.execution_id, inp.agent_name, inp.model_name, inp.model_source, needs_tools)
        resolved: ResolvedModel = await self._run(workflow.start_activity(
            RESOLVE_MODEL, request, result_type=ResolvedModel, start_to_close_timeout=_RESOLVE_TIMEOUT,
            retry_policy=self._retry(t, t.model_max_attempts), cancellation_type=_WAIT))
        # Published from here, after history holds the result: the event always names the model that is used.
        await self._publish(inp, "model_resolved", {"model": resolved.model.to_dict(), "source": resolved.source,
                                                    "origin": resolved.origin})
        return resolved.model

    async def _list_tools(self, toolset: ToolsetInput) -> list[ToolSchema]:
        result: list[ToolSchema] = await workflow.execute_activity(
            LIST_TOOLS, toolset, result_type=list[ToolSchema], start_to_close_timeout=timedelta(seconds=120),
            retry_policy=RetryPolicy(maximum_attempts=3))
        return result

    async def _run_tools(self, inp: ExecutionInput, calls: list[dict[str, Any]], by_name: dict[str, ToolSchema],
                         toolset: ToolsetInput) -> list[ToolResult]:
        t = inp.tunables
        tasks = [workflow.start_activity(
            CALL_TOOL, ToolCallInput(inp.execution_id, self._step, call, by_name.get(call.get("name", "")), toolset),
            result_type=ToolResult, start_to_close_timeout=timedelta(seconds=t.tool_timeout),
            heartbeat_timeout=timedelta(seconds=t.tool_heartbeat), retry_policy=self._retry(t, t.tool_max_attempts),
            cancellation_type=_WAIT) for call in calls]
        self._inflight = list(tasks)
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            self._inflight = []

    async def _run(self, task: asyncio.Task[Any]) -> Any:
        self._inflight = [task]
        try:
            return await task
        finally:
            self._inflight = []

    @staticmethod
    def _retry(t: Tunables, attempts: int) -> RetryPolicy:
        return RetryPolicy(initial_interval=timedelta(seconds=t.retry_initial), backoff_coefficient=2.0,
                           maximum_interval=timedelta(seconds=t.retry_max), maximum_attempts=attempts)

    @staticmethod
    def _check_loop(calls: list[dict[str, Any]], seen: dict[str, int], repeats: int) -> None:
        for call in calls:
            key = json.dumps([call.get("name"), call.get("args")], sort_keys=True)
            seen[key] = seen.get(key, 0) + 1
            if seen[key] >= repeats:
                raise AgentStopped(f"stopped: the model called {call.get('name')!r} with the same arguments "
                                   f"{seen[key]} times (a loop); change the instructions or the model")

    async def _report_cancelled(self, inp: ExecutionInput) -> None:
        self._status = "cancelled"
        await self._finish(inp, "failed", {"error": "cancelled", "cancelled": True, "steps": self._step})

    async def _cancelled(self, inp: ExecutionInput) -> ExecutionResult:
        """The ``cancel`` signal: the workflow completes with status ``cancelled`` (its last event is ``failed``)."""
        await self._report_cancelled(inp)
        return ExecutionResult(status="cancelled", output="", steps=self._step)

    async def _fail(self, inp: ExecutionInput, message: str) -> None:
        self._status = "failed"
        await self._finish(inp, "failed", {"error": message, "steps": self._step})
        raise ApplicationError(message, type="AgentFailed", non_retryable=True)

    async def _finish(self, inp: ExecutionInput, kind: str, data: dict[str, Any]) -> None:
        """Publish the last event (``completed`` or ``failed``); a sink failure never fails the execution."""
        await self._publish(inp, kind, data)

    @staticmethod
    async def _publish(inp: ExecutionInput, kind: str, data: dict[str, Any]) -> None:
        """Publish one event from workflow code (a local activity); a sink failure never fails the execution."""
        try:
            await workflow.execute_local_activity(
                PUBLISH, EventInput(inp.execution_id, kind, data), start_to_close_timeout=timedelta(seconds=15),
                retry_policy=RetryPolicy(maximum_attempts=2))
        except ActivityError:
            workflow.logger.warning("could not publish the %s event of %s", kind, inp.execution_id)
