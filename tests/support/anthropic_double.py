"""A protocol double of the Anthropic Messages API: a small real HTTP server on loopback.

The real API cannot be reached from here, so this follows the published one
(docs.anthropic.com, "Messages" and "Streaming Messages") closely enough for the real
``ChatAnthropic``: ``POST /v1/messages`` with ``x-api-key`` (or a bearer token, as newer SDKs
send), a JSON reply or a server-sent event stream (``message_start``,
``content_block_start/delta/stop`` with ``text_delta`` or ``input_json_delta`` for ``tool_use``,
``message_delta`` with the ``stop_reason``, ``message_stop``), ``usage`` as the API reports it (see
:attr:`AnthropicDouble.usage`), a fresh ``tool_use`` id per reply and, as the API, a 400 for a conversation whose
``tool_use`` ids are not unique (a conversation of several turns must keep them apart), and error bodies
``{"type": "error", "error": {"type": ..., "message": ...}}`` for 401, 429 (with ``retry-after``),
500 and 529. Queue failures with :meth:`HttpDouble.fail_next` / ``reset_next`` / ``stall_next``.
"""

from __future__ import annotations

import json
from typing import Any

from .http_double import HttpDouble, Request

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               529: "overloaded_error"}


class AnthropicDouble(HttpDouble):
    """Answers with ``reply`` text, or with ``tool_use`` of ``tool_call`` when the request offers tools."""

    def __init__(self, api_key: str = "sk-ant-test-0000") -> None:
        super().__init__()
        self.api_key = api_key
        self.reply = "Hello from the Anthropic double."
        self.tool_call: dict[str, Any] | None = None
        self.stop_reason: str | None = None
        """Overrides the ``stop_reason`` (``"max_tokens"``: a reply cut at the token limit)."""
        self.usage: dict[str, int] = {"input_tokens": 12, "output_tokens": 7, "cache_read_input_tokens": 0,
                                      "cache_creation_input_tokens": 0}
        """What every reply reports, in the API's terms: ``input_tokens`` excludes the tokens read from the prompt
        cache (``cache_read_input_tokens``) and written to it (``cache_creation_input_tokens``). A stream reports
        it as the API does: ``message_start`` with the input counts and a first output token, then the final
        ``message_delta`` with the cumulative counts."""
        self.delta_input_usage = True
        """False: ``message_delta`` carries only ``output_tokens``, as the API's streams did before it added the
        cumulative input counts there."""

    def error_payload(self, status: int, message: str) -> Any:
        return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"),
                                           "message": message or ERROR_TYPES.get(status, "error")}}

    def route(self, request: Request) -> None:
        if request.path != "/v1/messages" or request.method != "POST":
            request.json(404, self.error_payload(404, f"no route {request.path}"))
            return
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.api_key not in (request.headers.get("x-api-key"), bearer):
            request.json(401, self.error_payload(401, "invalid x-api-key"))
            return
        body = request.body or {}
        duplicate = _duplicate_tool_use(body)
        if duplicate:
            request.json(400, self.error_payload(400, f"{duplicate}: `tool_use` ids must be unique"))
            return
        blocks = self._blocks(body)
        if body.get("stream"):
            self._stream(request, body, blocks)
        else:
            stop = self.stop_reason or ("tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn")
            request.json(200, {**_message(body), "content": blocks, "stop_reason": stop, "usage": dict(self.usage)})

    def _blocks(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        if body.get("tools") and self.tool_call:
            return [{"type": "tool_use", "id": f"toolu_{len(self.requests):04d}", "name": self.tool_call["name"],
                     "input": self.tool_call["input"]}]
        return [{"type": "text", "text": self.reply}]

    def _stream(self, request: Request, body: dict[str, Any], blocks: list[dict[str, Any]]) -> None:
        request.start_stream("text/event-stream")

        def event(name: str, data: dict[str, Any]) -> None:
            request.write(f"event: {name}\ndata: {json.dumps(data)}\n\n")

        event("message_start", {"type": "message_start", "message": {**_message(body), "content": [],
                                "stop_reason": None, "usage": {**self.usage, "output_tokens": 1}}})
        event("ping", {"type": "ping"})
        block = blocks[0]
        if block["type"] == "text":
            event("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "text", "text": ""}})
            for word in _words(block["text"]):
                event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                              "delta": {"type": "text_delta", "text": word}})
        else:
            event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
                "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})
            args = json.dumps(block["input"])
            for piece in (args[: len(args) // 2], args[len(args) // 2:]):
                event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                              "delta": {"type": "input_json_delta", "partial_json": piece}})
        event("content_block_stop", {"type": "content_block_stop", "index": 0})
        stop = self.stop_reason or ("tool_use" if block["type"] == "tool_use" else "end_turn")
        delta_usage = dict(self.usage) if self.delta_input_usage else {"output_tokens": self.usage["output_tokens"]}
        event("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                "usage": delta_usage})
        event("message_stop", {"type": "message_stop"})


def _message(body: dict[str, Any]) -> dict[str, Any]:
    return {"id": "msg_01double", "type": "message", "role": "assistant", "model": body.get("model", ""),
            "stop_sequence": None}


def _duplicate_tool_use(body: dict[str, Any]) -> str | None:
    """Where a request repeats a ``tool_use`` id (``messages.N.content.M``), as the API's 400 names it; else None."""
    seen: set[str] = set()
    for n, message in enumerate(body.get("messages") or []):
        content = message.get("content")
        for m, block in enumerate(content if isinstance(content, list) else []):
            if isinstance(block, dict) and block.get("type") == "tool_use":
                if block.get("id") in seen:
                    return f"messages.{n}.content.{m}"
                seen.add(block.get("id"))
    return None


def _words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p if i == 0 else " " + p for i, p in enumerate(parts)]


def start_anthropic_double(api_key: str = "sk-ant-test-0000") -> AnthropicDouble:
    """Start the double on a free loopback port; pass its ``url`` as the Anthropic base URL."""
    return AnthropicDouble(api_key)
