"""Emulated tool calls: a model without native tool calling writes one JSON object per step, decoded under a schema.

Each step the reply must be exactly one of ``{"tool": NAME, "arguments": {...}}`` (the arguments under that tool's
own parameter schema) or ``{"answer": "..."}``. The server enforces it (llama.cpp's grammar, Ollama's ``format``:
``Provider.constrain``), so even a tiny model's call is well formed; a system prompt listing the tools helps it
choose. The reply is then turned into an ordinary assistant message with ``tool_calls``, so the workflow, events and
approvals see what a native call gives. Earlier calls and tool results go back to the model as text: its own calls
as the JSON it wrote, each result as a user message ("Result of get_time: ..."), since a model without tool support
has no ``tool`` role in its chat template.

Activity side only, pure: no I/O, no SDK import.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .params import ToolSchema

ANSWER = "answer"
_ANSWER_START = re.compile(r'^\s*\{\s*"answer"\s*:\s*"')
_ARGS_LIMIT = 500


def schema(tools: list[ToolSchema], *, answer: bool = True, calls: bool = True) -> dict[str, Any]:
    """The JSON schema every emulated reply must match: (``calls``) one call of one of ``tools``, or (``answer``) an
    answer."""
    options: list[dict[str, Any]] = [_call_schema(t) for t in tools] if calls else []
    if answer:
        options.append({"type": "object", "properties": {ANSWER: {"type": "string"}}, "required": [ANSWER]})
    return {"oneOf": options}


def awaits_call(messages: list[dict[str, Any]]) -> bool:
    """True when the conversation ends with the person's message: no tool has run yet in this turn."""
    last = next((m for m in reversed(messages) if m.get("role") != "system"), None)
    return last is not None and last.get("role") == "user"


def _call_schema(tool: ToolSchema) -> dict[str, Any]:
    params = {k: v for k, v in (tool.parameters or {}).items() if k != "$schema"}
    if not params.get("properties") and params.get("additionalProperties") is None:
        params = {"type": "object", "properties": {}}
    return {"type": "object", "properties": {"tool": {"const": tool.name}, "arguments": params},
            "required": ["tool", "arguments"]}


def instructions(tools: list[ToolSchema]) -> str:
    """What the model is told about its tools and the reply format (appended to the system prompt)."""
    lines = ["You can use these tools:"]
    for tool in tools:
        props = (tool.parameters or {}).get("properties") or {}
        args = ", ".join(f"{name}: {spec.get('type', 'any')}" for name, spec in props.items())
        lines.append(f"- {tool.name}({args}): {tool.description or tool.name}")
    lines += ["",
              'Reply with one JSON object. To use a tool: {"tool": "tool name", "arguments": {its arguments}}.',
              'When the task is done, or needs no tool: {"answer": "your reply"}.',
              "Use a tool whenever the request needs one; after a tool's result, answer or use the next tool."]
    return "\n".join(lines)


def render(messages: list[dict[str, Any]], tools: list[ToolSchema]) -> list[dict[str, Any]]:
    """``messages`` for a model without tool support: calls and results as text, the tools in the system prompt."""
    guide = instructions(tools)
    out: list[dict[str, Any]] = []
    if not messages or messages[0].get("role") != "system":
        out.append({"role": "system", "content": guide})
    for m in messages:
        role = m.get("role")
        if role == "system":
            out.append({"role": "system", "content": f"{m.get('content') or ''}\n\n{guide}".strip()})
        elif role == "assistant":
            out.append({"role": "assistant", "content": _as_written(m)})
        elif role == "tool":
            status = " (error)" if m.get("is_error") else ""
            out.append({"role": "user", "content": f"Result of {m.get('name') or 'the tool'}{status}: "
                                                   f"{m.get('content') or ''}"})
        else:
            out.append({"role": role, "content": m.get("content") or ""})
    return out


def _as_written(message: dict[str, Any]) -> str:
    """An earlier assistant turn as the JSON the model would have written for it."""
    calls = message.get("tool_calls") or []
    if not calls:
        return json.dumps({ANSWER: str(message.get("content") or "")})
    return "\n".join(json.dumps({"tool": c.get("name"), "arguments": c.get("args") or {}}) for c in calls)


def parse(text: str, tools: list[ToolSchema], step: int) -> dict[str, Any]:
    """The assistant message for the model's emulated reply ``text``: one tool call, or an answer.

    Never raises. A reply that is not the expected JSON (a server that did not constrain it, a reply cut at the token
    limit) is kept as a text answer; a call naming an unknown tool is kept, so the model hears that the tool does not
    exist; arguments that do not match the tool's schema are marked ``invalid_args``, so the model hears what is wrong.
    """
    try:
        data = json.loads(text)
    except ValueError:
        return {"role": "assistant", "content": text.strip()}
    if not isinstance(data, dict):
        return {"role": "assistant", "content": text.strip()}
    if "tool" in data:
        name = str(data.get("tool") or "")
        args = data.get("arguments", {})
        call: dict[str, Any] = {"id": f"call_{step}_0", "name": name, "args": args if isinstance(args, dict) else {}}
        tool = next((t for t in tools if t.name == name), None)
        problem = _problem(args, tool.parameters if tool is not None else None)
        if problem:
            call["invalid_args"] = f"{problem}: {json.dumps(args)[:_ARGS_LIMIT]}"
        return {"role": "assistant", "content": "", "tool_calls": [call]}
    if ANSWER in data:
        return {"role": "assistant", "content": str(data[ANSWER])}
    return {"role": "assistant", "content": text.strip()}


def _problem(args: Any, params: dict[str, Any] | None) -> str:
    """What is wrong with ``args`` for a tool with parameter schema ``params`` (top level only), or ``""``."""
    if not isinstance(args, dict):
        return "the arguments are not a JSON object"
    if params is None:
        return ""
    missing = [k for k in params.get("required") or [] if k not in args]
    if missing:
        return f"missing required argument{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
    props = params.get("properties") or {}
    extra = [k for k in args if props and k not in props and params.get("additionalProperties") is False]
    if extra:
        return f"unknown argument{'s' if len(extra) > 1 else ''} {', '.join(extra)}"
    return ""


class AnswerStream:
    """The text of an ``{"answer": "..."}`` reply as it streams, so the person sees tokens, not JSON.

    ``feed`` takes each streamed piece of the raw JSON and returns the answer text it adds (``""`` while the reply is
    still its opening, or is a tool call).
    """

    def __init__(self) -> None:
        self.raw = ""
        self.sent = 0

    def feed(self, piece: str) -> str:
        self.raw += piece
        match = _ANSWER_START.match(self.raw)
        if match is None:
            return ""
        decoded = _decode_prefix(self.raw[match.end():])
        delta, self.sent = decoded[self.sent:], max(self.sent, len(decoded))
        return delta


def _decode_prefix(body: str) -> str:
    """The decoded text of a JSON string's body so far (up to its closing quote, or the last complete escape)."""
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == '"':
            break
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        width = 6 if body[i + 1:i + 2] == "u" else 2
        if i + width > len(body):
            break
        try:
            out.append(json.loads(f'"{body[i:i + width]}"'))
        except ValueError:
            break
        i += width
    return "".join(out)
