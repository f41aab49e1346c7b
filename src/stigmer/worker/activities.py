"""The activities: all of the runner's I/O (LLM calls, tools, events). One instance per worker process.

Temporal owns retries. A model call that fails is classified by the provider layer: retryable
errors (429, 5xx, overloaded, connection reset) become an ``ApplicationError`` with
``next_retry_delay`` set to the server's ``retry-after``; the rest (bad key, unknown model, no
tool support) are ``non_retryable`` and fail the execution at once with the provider's message.
Tool failures are not exceptions: they are results the model sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from .._aio import cancel_and_wait
from ..blobs import BlobMissing
from ..blobs.codec import SHARED
from ..blobs.store import configured_store
from ..errors import StigmerError, UserError
from ..providers import usage as usage_
from ..providers.usage import measure
from . import _spans, _toolemu
from ._messages import (
    chunk_text,
    from_langchain,
    prompt_chars,
    reply_budget,
    reply_chars,
    to_langchain,
    tool_specs,
)
from ._plain import decoded
from ._transcript import INLINE_CHARS, TAIL_CHARS, Transcripts, preview
from .events import EventBuffer, EventSink, event
from .params import (
    CALL_MODEL,
    CALL_TOOL,
    LIST_TOOLS,
    PUBLISH,
    RESOLVE_MODEL,
    EventInput,
    ModelCallInput,
    ModelRequest,
    ResolvedModel,
    ToolCallInput,
    ToolResult,
    ToolSchema,
    ToolsetInput,
)
from .tools import workspace
from .tools.builtin import builtin_schemas
from .tools.mcp import McpFailure, McpPool

if TYPE_CHECKING:
    from ._prompt import Prompt

log = logging.getLogger("stigmer.worker")
# Chat models kept built (one per distinct model spec); a runner rarely uses more, and each holds HTTP clients.
MODELS_KEPT = 16


@contextlib.asynccontextmanager
async def _heartbeating(every: float) -> AsyncIterator[None]:
    """Heartbeat on a timer while the body runs (a tool, or a model thinking before its first token)."""

    async def beat() -> None:
        while True:  # first beat after one interval: a quick call costs the server no heartbeat RPC at all
            await asyncio.sleep(every)
            activity.heartbeat()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        await cancel_and_wait(task)


def _unstored(messages: list[dict[str, Any]], reply: dict[str, Any]) -> int:
    """About the characters history carries of the messages no transcript holds yet (the call's input after the last
    transcript, and its reply): a stored tool output counts as its preview, the part that is sent again."""
    return sum(len(str(m.get("content") or "")) + len(json.dumps(m.get("tool_calls") or [], default=str))
               for m in (*messages, reply))


def _final_event(inp: ModelCallInput, reply: dict[str, Any]) -> dict[str, Any]:
    """The execution's ``completed`` event, as the workflow would post it after this final answer (``_turn``)."""
    data: dict[str, Any] = {"output": str(reply.get("content") or ""), "steps": inp.step}
    if reply.get("truncated"):
        data["truncated"] = True
    data["usage"] = usage_.add((inp.final or {}).get("usage") or usage_.empty(), reply["usage"])
    return data


def _bounded(content: str, limit: int) -> str:
    """A tool result as kept in the conversation: at most ``limit`` characters, plus a note saying what was cut.

    A result a tool already cut to the limit (ending with its own, more precise note) is kept as it is.
    """
    if len(content) <= limit or (len(content) <= limit + workspace.NOTE_ROOM
                                 and workspace.NOTE in content[-workspace.NOTE_ROOM:]):
        return content
    return workspace.truncate(content, limit)


def _beat_interval() -> float:
    timeout = activity.info().heartbeat_timeout
    return max(0.05, min(5.0, (timeout.total_seconds() if timeout else 30.0) / 4))


class Activities:
    """The runner's activities, bound to one worker's configuration, event sink and MCP sessions.

    Args:
        cfg: the worker's configuration (API keys come from here, never from workflow input).
        sink: where events go.
    """

    def __init__(self, cfg: Any, sink: EventSink) -> None:
        self.cfg = cfg
        self.sink = sink
        self.mcp = McpPool(home=cfg.home, allow_env=cfg.value("mcp.allow_env"))
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._modes: dict[str, str] = {}  # tool-call mode per model not pinned in its spec (decided once per runner)
        self.limits = workspace.Limits(output_chars=cfg.value("limits.tool_output_chars"),
                                       write_bytes=cfg.value("limits.write_file_bytes"))
        self.transcripts = Transcripts(configured_store(cfg))  # the same store as the payload codec's

    def all(self) -> list[Any]:
        return [self.resolve_model, self.list_tools, self.call_model, self.call_tool, self.publish]

    async def aclose(self) -> None:
        await self.mcp.aclose()
        await self.transcripts.store.aclose()

    @activity.defn(name=RESOLVE_MODEL)
    async def resolve_model(self, inp: ModelRequest) -> ResolvedModel:
        """Decide the execution's model on this runner (run > agent > this runner's configuration); see ``_resolve``."""
        from ._resolve import resolve_request

        return await resolve_request(self.cfg, inp)

    @activity.defn(name=LIST_TOOLS)
    async def list_tools(self, inp: ToolsetInput) -> list[ToolSchema]:
        """The tools an execution may call: its built-in tool sets, then each MCP server's (filtered) tools."""
        tools = builtin_schemas(inp.toolsets)
        taken = {t.name for t in tools}
        for server in inp.mcp_servers:
            try:
                tools += await self.mcp.list_tools(server, taken)
            except McpFailure as exc:
                final = activity.info().attempt >= 3
                raise ApplicationError(str(exc), type="McpFailure", non_retryable=final) from None
        return tools

    async def _chat_model(self, inp: ModelCallInput) -> Any:
        from ..providers.registry import get_chat_model

        key = json.dumps(inp.model.to_dict(), sort_keys=True, default=str)
        if key not in self._models:
            # In a thread: the first build imports the provider's SDK (up to ~1.5 s), which must not stall the
            # event loop, or other activities would miss their heartbeats and be retried for nothing.
            self._models[key] = await asyncio.to_thread(get_chat_model, inp.model, self.cfg)
            while len(self._models) > MODELS_KEPT:  # the least recently used model is built again if needed
                self._models.popitem(last=False)
        self._models.move_to_end(key)
        return self._models[key]

    @activity.defn(name=CALL_MODEL)
    async def call_model(self, payload: dict[str, Any]) -> dict[str, Any]:
        """One model call: stream tokens out as events, heartbeat while streaming, return the final message.

        The message carries the call's ``usage`` (``providers.usage.measure``: the provider's own token counts,
        else an estimate marked so, the call's duration and cost), so history, the ``message`` event and the
        workflow's sums all see the same numbers. The input is a ``ModelCallInput`` (taken as a dict and built by
        ``_plain.decoded``, faster than the SDK's converter).
        """
        inp = decoded(ModelCallInput, payload)
        if inp.toolsets is not None:  # every tool is built in: their schemas are this runner's own
            inp.tools = builtin_schemas(inp.toolsets)
        attempt = activity.info().attempt
        with _spans.model_call(inp, attempt) as current:
            reply = await self._call_model(inp, attempt)
            _spans.model_reply(current, reply)
        return reply

    async def _call_model(self, inp: ModelCallInput, attempt: int) -> dict[str, Any]:
        events = EventBuffer(self.sink, inp.execution_id)
        events.emit("step_started", {"step": inp.step, "attempt": attempt, "model": inp.model.id})
        try:
            started = time.monotonic()
            prompt = (await self._prompt(inp, events)) if inp.by_ref else None
            messages = prompt.messages if prompt is not None else inp.messages
            merged, reply = await self._stream(inp, messages, events)
            reply["usage"] = measure(merged, inp.model, self.cfg, duration_s=time.monotonic() - started,
                                     prompt_chars=prompt_chars(messages), reply_chars=reply_chars(reply))
            if prompt is not None and prompt.extra is not None:  # a summary was written for this call: it counts
                reply["usage"] = usage_.add(reply["usage"], prompt.extra)
            events.emit("message", {"step": inp.step, **reply})
            if reply.get("truncated"):
                events.emit("truncated", {"step": inp.step, "max_tokens": reply_budget(inp.model.params)})
            final = inp.final is not None and not reply.get("tool_calls")
            if prompt is not None and not final and (prompt.must_store or _unstored(inp.messages, reply) > TAIL_CHARS):
                reply["conversation"] = await prompt.store()
            if final:
                events.emit("completed", _final_event(inp, reply))
                reply["final_posted"] = True
            return reply
        except Exception as exc:
            raise self._model_failure(exc, inp) from None
        finally:  # even when cancelled: this attempt's events go out before the workflow's last one
            await asyncio.shield(events.aclose())

    async def _prompt(self, inp: ModelCallInput, events: EventBuffer) -> Prompt:
        """What the model is sent, how to store its transcript, and a summary's usage (see ``_context``)."""
        from ._prompt import build_prompt

        try:
            return await build_prompt(self, inp, events)
        except BlobMissing as exc:
            raise ApplicationError(f"{exc}: this execution's conversation is gone (its blobs were deleted, or the "
                                   "runners do not share blobs.url); start it again", type="BlobMissing",
                                   non_retryable=True) from None

    async def _stream(self, inp: ModelCallInput, messages: list[dict[str, Any]],
                      events: EventBuffer) -> tuple[Any, dict[str, Any]]:
        """The merged reply as the provider sent it (its ``usage_metadata`` is read from it) and as a plain dict."""
        model = await self._chat_model(inp)
        mode = await self._tool_mode(inp) if inp.tools else "none"
        answer: _toolemu.AnswerStream | None = None
        memo = self.transcripts.memo if inp.by_ref else None
        if mode == "native":
            model = model.bind_tools(tool_specs(inp.tools))
        elif mode == "emulated":
            model, messages, memo = self._emulated(inp, model, messages), _toolemu.render(messages, inp.tools), None
            answer = _toolemu.AnswerStream()
        merged: Any = None
        async with _heartbeating(_beat_interval()):
            stream = model.astream(to_langchain(messages, memo)).__aiter__()
            while True:
                try:
                    async with asyncio.timeout(inp.stall_timeout):
                        chunk = await stream.__anext__()
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise ApplicationError(f"the model sent nothing for {inp.stall_timeout:g} s (stream stalled); "
                                           "retrying", type="StreamStalled") from None
                text = chunk_text(chunk)
                if answer is not None:  # emulated: the person sees the answer's text, not the JSON around it
                    text = answer.feed(text)
                if text:
                    events.emit("token", {"step": inp.step, "text": text})
                merged = chunk if merged is None else merged + chunk
        if merged is None:
            raise ApplicationError("the model returned an empty stream", type="EmptyReply")
        reply = from_langchain(merged, inp.step)
        if answer is not None:
            reply = {**reply, **_toolemu.parse(str(reply.get("content") or ""), inp.tools, inp.step)}
        return merged, reply

    async def _tool_mode(self, inp: ModelCallInput) -> str:
        """The model's tool-call mode: pinned in its spec when a runner resolved it, else decided here once (auto)."""
        if inp.model.tool_calls:
            return inp.model.tool_calls
        key = inp.model.id + "@" + str(inp.model.base_url)
        if key not in self._modes:
            from ..providers.registry import get_provider, tool_mode

            try:
                caps = await asyncio.to_thread(get_provider(inp.model.provider).capabilities, inp.model, self.cfg)
                self._modes[key] = tool_mode(inp.model, self.cfg, caps).mode
            except Exception as exc:  # the call itself will say what is wrong with the server; tools as before
                log.warning("could not ask %s how it calls tools (%s); calling them natively", inp.model.id, exc)
                return "native"
        return self._modes[key]

    def _emulated(self, inp: ModelCallInput, model: Any, messages: list[dict[str, Any]]) -> Any:
        from ..providers.registry import constrain, one_call_per_turn

        schema = _toolemu.schema(inp.tools)
        if one_call_per_turn(inp.model):  # a call while the turn has none, then the answer
            first = _toolemu.awaits_call(messages)
            schema = _toolemu.schema(inp.tools, answer=not first, calls=first)
        constrained = constrain(inp.model, model, schema)
        if constrained is None:
            raise ApplicationError(f"{inp.model.id}: emulated tool calls need a server that constrains replies to a "
                                   "JSON schema (llama.cpp, Ollama); set spec.toolCalls or llm.tool_calls to native "
                                   "or none", type="ConfigError", non_retryable=True)
        return constrained

    @staticmethod
    def _model_failure(exc: BaseException, inp: ModelCallInput) -> ApplicationError:
        if isinstance(exc, ApplicationError):
            return exc
        if isinstance(exc, UserError):  # e.g. a provider this runner does not know: retrying cannot help
            return ApplicationError(str(exc), type="ConfigError", non_retryable=True)
        from ..providers.registry import classify_error

        try:
            err = classify_error(exc, inp.model)
        except StigmerError as failed:
            return ApplicationError(str(failed), type="ConfigError", non_retryable=True)
        message = str(err)
        if not err.retryable:
            return ApplicationError(message, type="ProviderError", non_retryable=True)
        delay = timedelta(seconds=err.retry_after) if err.retry_after is not None else None
        log.warning("model call for %s step %d failed (attempt %d, will retry): %s", inp.execution_id, inp.step,
                    activity.info().attempt, err.message)
        return ApplicationError(message, type="ProviderError", next_retry_delay=delay)

    @activity.defn(name=CALL_TOOL)
    async def call_tool(self, payload: dict[str, Any]) -> ToolResult:
        """One tool call (a ``ToolCallInput``, built as ``call_model``'s); any failure is an error result for the
        model, never an exception."""
        inp = decoded(ToolCallInput, payload)
        call = inp.call
        call_id, name, args = str(call.get("id", "")), str(call.get("name", "")), call.get("args") or {}
        events = EventBuffer(self.sink, inp.execution_id)
        events.emit("tool_started", {"step": inp.step, "call_id": call_id, "name": name, "args": args})
        try:
            with _spans.tool_call(inp, name, call_id) as current:
                async with _heartbeating(_beat_interval()):
                    content, is_error = await self._dispatch(inp, name, args)
                _spans.tool_result(current, content, is_error)
            content = _bounded(content, self.limits.output_chars)
            events.emit("tool_finished", {"step": inp.step, "call_id": call_id, "name": name, "is_error": is_error,
                                          "result": workspace.truncate(content, 2000)})
        finally:
            await asyncio.shield(events.aclose())
        if inp.by_ref and len(content) > INLINE_CHARS:  # history keeps a preview; the model call reads the rest
            key = await self.transcripts.store_output((activity.info().workflow_id or SHARED), content)
            return ToolResult(call_id=call_id, name=name, content=preview(content, key), is_error=is_error,
                              content_ref=key, chars=len(content))
        return ToolResult(call_id=call_id, name=name, content=content, is_error=is_error)

    async def _dispatch(self, inp: ToolCallInput, name: str, args: Any) -> tuple[str, bool]:
        tool = inp.tool
        if tool is None:
            return f"unknown tool {name!r}; the tools you can call are listed in your tool definitions", True
        if "invalid_args" in inp.call:
            return (f"the arguments of this call are not valid ({inp.call['invalid_args']!r}); call {name} "
                    "again with a JSON object that matches its parameters"), True
        if not isinstance(args, dict):
            return "tool arguments must be a JSON object", True
        try:
            if tool.server:
                server = next((s for s in inp.toolset.mcp_servers if s.get("name") == tool.server), None)
                if server is None:
                    return f"MCP server {tool.server!r} is not available to this agent", True
                return await self.mcp.call_tool(server, tool.remote_name or tool.name, args, self.limits.output_chars)
            if not inp.toolset.workspace:
                return "this execution has no workspace", True
            tls_key = self.cfg.temporal.tls.client_key  # the shell sees neither stigmer's home nor this key
            return await workspace.call(tool.name, Path(inp.toolset.workspace), args, self.limits,
                                        home=self.cfg.home, hidden=[Path(tls_key)] if tls_key else []), False
        except (workspace.ToolFailure, McpFailure) as exc:
            return str(exc), True

    @activity.defn(name=PUBLISH)
    async def publish(self, inp: EventInput) -> None:
        """Publish one event from workflow code (the last one: ``completed`` or ``failed``)."""
        await self.sink.publish([event(inp.execution_id, inp.type, inp.data)])
