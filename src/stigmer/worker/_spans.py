"""The spans of a model call and a tool call (OpenTelemetry's GenAI conventions), when tracing is on.

Each runs inside the activity's own span (the SDK's ``RunActivity:...``), so it joins the execution's trace.
Attributes are names, ids and counts: provider, model, server, step, token counts, cost, the tool's name and
whether it failed. Never a key, a message, a reply, a tool's arguments or its output (the secret-sentinel
suite exports real spans and looks for them). Off, :func:`stigmer._telemetry.span` costs one attribute check.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from .._telemetry import set_attributes, span
from ._messages import reply_budget
from .params import ModelCallInput, ToolCallInput


@contextlib.contextmanager
def model_call(inp: ModelCallInput, attempt: int) -> Iterator[Any]:
    """The span ``chat MODEL`` around one model call; fill in the reply with :func:`model_reply`."""
    spec = inp.model
    server = urlsplit(spec.base_url).hostname if spec.base_url else None
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": spec.provider,
                  "gen_ai.system": spec.provider, "gen_ai.request.model": spec.model,
                  "gen_ai.request.max_tokens": reply_budget(spec.params),
                  "gen_ai.request.temperature": spec.params.get("temperature"), "server.address": server,
                  "stigmer.execution_id": inp.execution_id, "stigmer.step": inp.step, "stigmer.attempt": attempt,
                  "stigmer.tools": len(inp.tools)}
    with span(f"chat {spec.model}", attributes, client=True) as current:
        yield current


def model_reply(current: Any, reply: dict[str, Any]) -> None:
    """The reply's counts on a :func:`model_call` span: tokens, cost, tool calls asked for, cut at the limit."""
    usage = reply.get("usage") or {}
    set_attributes(current, {"gen_ai.usage.input_tokens": usage.get("input_tokens"),
                             "gen_ai.usage.output_tokens": usage.get("output_tokens"),
                             "gen_ai.usage.cache_read.input_tokens": usage.get("cached_tokens"),
                             "stigmer.usage.estimated": usage.get("estimated"),
                             "stigmer.usage.cost_usd": usage.get("cost_usd"),
                             "stigmer.reply.tool_calls": len(reply.get("tool_calls") or []),
                             "stigmer.reply.truncated": bool(reply.get("truncated"))})


@contextlib.contextmanager
def tool_call(inp: ToolCallInput, name: str, call_id: str) -> Iterator[Any]:
    """The span ``execute_tool NAME`` around one tool call (no arguments); fill in with :func:`tool_result`."""
    attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.call.id": call_id,
                  "stigmer.tool.server": (inp.tool.server or None) if inp.tool is not None else None,
                  "stigmer.execution_id": inp.execution_id, "stigmer.step": inp.step}
    with span(f"execute_tool {name}", attributes) as current:
        yield current


def tool_result(current: Any, content: str, is_error: bool) -> None:
    """Whether the tool failed and how long its output was (not the output)."""
    set_attributes(current, {"stigmer.tool.is_error": is_error, "stigmer.tool.output_chars": len(content)})
