"""Plain-dict messages (what workflow history holds) to LangChain messages and back. Activity side only."""

from __future__ import annotations

import json
from typing import Any

from .params import ToolSchema

MEMO_CHARS = 4096


def to_langchain(messages: list[dict[str, Any]], memo: Any = None) -> list[Any]:
    """LangChain messages for ``messages`` (``memo``: a ``_context.Memo`` that keeps each conversion)."""
    if memo is None:
        converted = [one_to_langchain(m) for m in messages]
    else:  # a long text (a tool output loaded for this call) is not kept: its dict is new on every call
        converted = [one_to_langchain(m) if len(str(m.get("content") or "")) > MEMO_CHARS
                     else memo.converted(m, one_to_langchain) for m in messages]
    return [m for m in converted if m is not None]


def one_to_langchain(m: dict[str, Any]) -> Any:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    role, content = m.get("role"), m.get("content") or ""
    if role == "system":
        return SystemMessage(content=content)
    if role == "user":
        return HumanMessage(content=content)
    if role == "assistant":
        calls = [{"id": c["id"], "name": c["name"], "args": c.get("args") or {}, "type": "tool_call"}
                 for c in m.get("tool_calls") or []]
        return AIMessage(content=content, tool_calls=calls)
    if role == "tool":
        return ToolMessage(content=content, tool_call_id=m["tool_call_id"], name=m.get("name"),
                           status="error" if m.get("is_error") else "success")
    return None


def _text(content: Any) -> str:
    """Text of a message's content (providers return a string or a list of typed blocks)."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "".join(parts)


# Where each LangChain chat model puts a reply's stop reason (``response_metadata``), and the values that mean
# "cut at the token limit", checked against the real clients: ChatAnthropic (``stop_reason``; a reply that filled
# the context window stops with ``model_context_window_exceeded``), ChatOpenAI on OpenAI and on llama.cpp's server
# (``finish_reason``), ChatOllama (``done_reason``).
_CUT: dict[str, tuple[str, ...]] = {"stop_reason": ("max_tokens", "model_context_window_exceeded"),
                                    "finish_reason": ("length",), "done_reason": ("length",)}


def was_cut(message: Any) -> bool:
    """True when the provider says the reply stopped at the token limit, not because the model was done."""
    meta = getattr(message, "response_metadata", None) or {}
    return any(meta.get(key) in values for key, values in _CUT.items())


def from_langchain(message: Any, step: int) -> dict[str, Any]:
    """An AI message as a plain dict; tool-call ids are made unique and stable when a provider omits them.

    A reply cut at the token limit is marked ``"truncated": true`` (the workflow and ``stigmer run`` say so).
    """
    calls = []
    for i, call in enumerate(getattr(message, "tool_calls", None) or []):
        args = call.get("args")
        if isinstance(args, str):
            try:
                args = json.loads(args or "{}")
            except ValueError:
                args = {"_raw": args}
        calls.append({"id": call.get("id") or f"call_{step}_{i}", "name": call.get("name") or "",
                      "args": args if isinstance(args, dict) else {"value": args}})
    for i, bad in enumerate(getattr(message, "invalid_tool_calls", None) or [], start=len(calls)):
        # Arguments that did not parse as a JSON object: keep the call, so the model is told (not ignored).
        calls.append({"id": bad.get("id") or f"call_{step}_{i}", "name": bad.get("name") or "", "args": {},
                      "invalid_args": str(bad.get("args") or "")[:500]})
    reply: dict[str, Any] = {"role": "assistant", "content": _text(message.content)}
    if calls:
        reply["tool_calls"] = calls
    if was_cut(message):
        reply["truncated"] = True
    return reply


def chunk_text(chunk: Any) -> str:
    return _text(getattr(chunk, "content", ""))


def tool_specs(tools: list[ToolSchema]) -> list[dict[str, Any]]:
    """Tools in the OpenAI function format, which every LangChain chat model's bind_tools accepts."""
    return [{"type": "function", "function": {"name": t.name, "description": t.description or t.name,
                                              "parameters": t.parameters or {"type": "object", "properties": {}}}}
            for t in tools]


def _args_chars(message: dict[str, Any]) -> int:
    return sum(len(json.dumps(c.get("args") or {})) for c in message.get("tool_calls") or [])


def reply_budget(params: dict[str, Any]) -> int | None:
    """The reply budget a model is called with (``num_predict`` is Ollama's name for ``max_tokens``)."""
    value = params.get("max_tokens", params.get("num_predict"))
    return value if isinstance(value, int) else None


def prompt_chars(messages: list[dict[str, Any]]) -> int:
    """Characters of everything sent to the model (texts and earlier tool-call arguments): what an estimate counts."""
    return sum(len(str(m.get("content") or "")) + _args_chars(m) for m in messages)


def reply_chars(reply: dict[str, Any]) -> int:
    """Characters of a reply: its text and its tool calls' arguments."""
    return len(str(reply.get("content") or "")) + _args_chars(reply)
