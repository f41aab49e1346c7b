"""A deterministic scripted chat model, registered as the provider plugin ``scripted``.

Every agent-loop test, the daemon's end-to-end tests and the benchmarks drive the runner with it.
It loads in any process through the plugin hook: ``STIGMER_PLUGINS=scripted=tests.support.scripted_provider``
(with the repo root on ``PYTHONPATH``), and the model name is the path of a JSON script::

    {"steps": [
        {"content": "Let me look.", "tool_calls": [{"name": "list_files", "args": {}}]},
        {"content": "There are two files.", "delay": 5, "delay_attempts": 1,
         "fail": {"status": 429, "message": "slow down", "retry_after": 0.2, "times": 1}},
        {"content": "A reply cut sho", "response_metadata": {"finish_reason": "length"}}
     ],
     "repeat_last": false, "token_size": 1}

The reply is chosen by conversation state alone, the number of AI messages already in the
conversation, so it is the same in every process and on every retry. Each call appends one
JSON line ``{"step", "pid", "attempt"}`` to ``<script>.calls.jsonl`` (or ``"log"``), which
is how tests prove a completed model call was not repeated, and how ``fail.times`` and
``delay_attempts`` count attempts across worker processes; with ``"record_messages": true`` each line also holds
the messages the call was sent (``{"role": "system"|"human"|"ai"|"tool", "content"}``). ``delay`` (seconds, before the
first token) lets a test kill a worker mid model call; with no delay the model has zero latency.
A call asking for a summary (the runner's ``SUMMARY_PROMPT``, when a conversation outgrows the context
window) gets the script's top-level ``"summary"`` and is not logged. ``response_metadata`` is sent on a last
chunk, where real providers put the stop reason (``finish_reason: length`` is a reply cut at the token limit).
``"record": false`` keeps no log (every call is attempt 0): the log is read whole on each call, so a benchmark
that makes thousands of calls with one script would otherwise measure the scripted model's own file I/O, growing
with every call. ``"cache": true`` (long scripts) parses the script once per version of the file.

Usage: a step's ``"usage": {"input_tokens": 120, "output_tokens": 30, "cached_tokens": 100}`` (or the
script's top-level ``"usage"``, for every step without its own) is reported on the last chunk as LangChain's
``usage_metadata``, as a real provider's final usage chunk is; ``cached_tokens`` is part of ``input_tokens``.
A step with ``"usage": null``, or a script with no usage at all, reports none, so the runner estimates it
and marks it ``estimated``. Price: the script's top-level ``"price": {"input": 3.0, "output": 15.0,
"cached": 0.3}`` (USD per million tokens) prices its calls; without it the model is local and costs 0.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, SystemMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from pydantic import Field

from stigmer.providers.base import Capabilities, Provider
from stigmer.worker._context import SUMMARY_PROMPT

PLUGIN = "scripted=tests.support.scripted_provider"
"""The ``STIGMER_PLUGINS`` entry that loads this module."""


class ScriptedFailure(Exception):
    """A failure the script asked for, shaped like an SDK's HTTP error (status and retry-after)."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status_code = status
        self.message = message
        self.retry_after = retry_after


def write_script(path: Path, steps: list[dict[str, Any]], **options: Any) -> str:
    """Write a script file and return its path as the model name to use."""
    path.write_text(json.dumps({"steps": steps, **options}), encoding="utf-8")
    return str(path)


def read_calls(script: str | Path) -> list[dict[str, Any]]:
    """The calls made so far with ``script`` (one dict per model call, in order)."""
    log = _log_path(Path(script), _load(Path(script)))
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]


_LOADED: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}


def _load(path: Path) -> dict[str, Any]:
    """The script. Read on every call (tests rewrite scripts between calls), except a ``"record": false`` or
    ``"cache": true`` script (benchmarks, long runs), parsed once per version of the file."""
    st = path.stat()
    key, version = str(path), (st.st_mtime_ns, st.st_size)
    cached = _LOADED.get(key)
    if cached is not None and cached[0] == version:
        return cached[1]
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if data.get("record", True) is False or data.get("cache"):
        _LOADED[key] = (version, data)
    return data


def _log_path(path: Path, script: dict[str, Any]) -> Path:
    log = script.get("log")
    return (path.parent / log) if log else path.with_name(path.name + ".calls.jsonl")


def _record_call(log: Path, step: int, messages: list[dict[str, Any]] | None = None) -> int:
    """Append this call to the log under an exclusive lock; return its attempt number for ``step`` (0-based)."""
    with open(log, "a+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        prefix = f'{{"step": {step}, '  # each line starts so (json.dumps of the entry below, step first)
        attempt = sum(1 for line in fh if line.startswith(prefix))
        entry: dict[str, Any] = {"step": step, "pid": os.getpid(), "attempt": attempt}
        if messages is not None:
            entry["messages"] = messages
        fh.write(json.dumps(entry) + "\n")
    return attempt


def _plain(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    return [{"role": m.type, "content": m.content if isinstance(m.content, str) else str(m.content)}
            for m in messages]


def _usage_metadata(usage: dict[str, Any]) -> UsageMetadata:
    """A script's usage as LangChain's ``usage_metadata`` (what chat models fill from a provider's usage)."""
    input_tokens, output_tokens = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    metadata = UsageMetadata(input_tokens=input_tokens, output_tokens=output_tokens,
                             total_tokens=input_tokens + output_tokens)
    if usage.get("cached_tokens"):
        metadata["input_token_details"] = {"cache_read": int(usage["cached_tokens"])}
    return metadata


class ScriptedChatModel(BaseChatModel):
    """Replies from a JSON script; see the module docstring."""

    script: str
    tools: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | None = None,
                   **kwargs: Any) -> Runnable[Any, AIMessage]:
        # Bound as real providers bind them (a RunnableBinding around this model, so LangChain's per-model
        # caches hold); a copy per call would cost each call a fresh serialization of the model.
        return self.bind(tools=[t if isinstance(t, dict) else {"tool": str(t)} for t in tools])

    def _plan(self, messages: list[BaseMessage]) -> tuple[dict[str, Any], float, dict[str, Any], int]:
        path = Path(self.script)
        script = _load(path)
        if messages and isinstance(messages[0], SystemMessage) and messages[0].content == SUMMARY_PROMPT:
            # The runner asks for a summary to fit the context window: the script's "summary" (not logged as a call).
            return {"content": script.get("summary", "(a summary)")}, 0.0, script, -1
        steps: list[dict[str, Any]] = script["steps"]
        index = sum(1 for m in messages if isinstance(m, AIMessage))
        if index >= len(steps):
            step = steps[-1] if script.get("repeat_last") else {"content": "(the script has no more replies)"}
        else:
            step = steps[index]
        attempt = (_record_call(_log_path(path, script), index,
                                _plain(messages) if script.get("record_messages") else None)
                   if script.get("record", True) else 0)
        fail = step.get("fail")
        if fail and attempt < int(fail.get("times", 1)):
            raise ScriptedFailure(int(fail.get("status", 500)), str(fail.get("message", "scripted failure")),
                                  fail.get("retry_after"))
        delay = float(step.get("delay", 0)) if attempt < int(step.get("delay_attempts", 1 << 30)) else 0.0
        return step, delay, script, index

    def _chunks(self, step: dict[str, Any], script: dict[str, Any], index: int) -> Iterator[AIMessageChunk]:
        content = str(step.get("content", ""))
        size = max(1, int(script.get("token_size", 8)))
        for start in range(0, len(content), size):
            yield AIMessageChunk(content=content[start:start + size])
        calls = step.get("tool_calls") or []
        if calls:
            yield AIMessageChunk(content="", tool_call_chunks=[
                {"name": c["name"], "args": json.dumps(c.get("args", {})), "id": c.get("id") or f"call_{index}_{i}",
                 "index": i} for i, c in enumerate(calls)])
        usage = step["usage"] if "usage" in step else script.get("usage")
        if usage:  # the usage chunk a real stream ends with
            yield AIMessageChunk(content="", usage_metadata=_usage_metadata(usage))
        if step.get("response_metadata"):  # last, as real providers send a stop reason
            yield AIMessageChunk(content="", response_metadata=dict(step["response_metadata"]))

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        step, delay, script, index = self._plan(messages)
        if delay:
            time.sleep(delay)
        merged: AIMessageChunk = AIMessageChunk(content="")
        for chunk in self._chunks(step, script, index):
            merged = merged + chunk
        message = AIMessage(content=merged.content, tool_calls=merged.tool_calls,
                            response_metadata=merged.response_metadata, usage_metadata=merged.usage_metadata)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        step, delay, script, index = self._plan(messages)
        if delay:
            time.sleep(delay)
        for chunk in self._chunks(step, script, index):
            yield ChatGenerationChunk(message=chunk)

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        step, delay, script, index = self._plan(messages)
        if delay:
            await asyncio.sleep(delay)
        for chunk in self._chunks(step, script, index):
            yield ChatGenerationChunk(message=chunk)


class ScriptedProvider(Provider):
    """The ``scripted`` provider: model name = path of a script file."""

    name = "scripted"
    default_model = ""

    def base_url(self, cfg: Any) -> str | None:
        return None

    def native_params(self, common: dict[str, Any]) -> dict[str, Any]:
        return {}

    def build(self, spec: Any, cfg: Any) -> BaseChatModel:
        return ScriptedChatModel(script=spec.model)

    def classify(self, exc: BaseException, spec: Any) -> Any:
        from stigmer.providers import errors

        if not isinstance(exc, ScriptedFailure):
            return None
        if exc.status_code == 429:
            return errors.rate_limited("scripted", exc.retry_after)
        if exc.status_code >= 500:
            return errors.server_error("scripted", exc.status_code, exc.retry_after, exc.message)
        if exc.status_code == 401:
            return errors.key_rejected("scripted")
        return errors.bad_request("scripted", exc.status_code, exc.message)

    def capabilities(self, spec: Any, cfg: Any) -> Capabilities:
        return Capabilities(tools=True, context_length=1 << 20, source="scripted")

    def price(self, spec: Any) -> Any:
        """The script's ``price``, else a local model's (0); a missing script is local too (it fails at the call)."""
        from stigmer.providers.pricing import LOCAL, Price

        try:
            price = _load(Path(spec.model)).get("price")
        except (OSError, ValueError):
            return LOCAL
        if not price:
            return LOCAL
        return Price(float(price["input"]), float(price["output"]),
                     None if price.get("cached") is None else float(price["cached"]), match="script")


def register(registry: Any) -> None:
    """The plugin hook: ``STIGMER_PLUGINS=scripted=tests.support.scripted_provider``."""
    registry.register(ScriptedProvider())
