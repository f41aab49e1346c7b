"""A protocol double of OpenAI's Chat Completions API: a small real HTTP server on loopback.

OpenAI's API cannot be reached from here, so this follows the published one (platform.openai.com,
"Chat Completions" and "Streaming") closely enough for the real ``ChatOpenAI``: ``POST /v1/chat/completions``
with a bearer key, a JSON reply or a server-sent event stream of ``chat.completion.chunk`` objects
(``delta.content`` pieces, or ``delta.tool_calls`` when the request offers tools and :attr:`OpenAIDouble.tool_call`
is set; a last choice chunk with ``finish_reason``; then, only when the request asks with
``stream_options: {"include_usage": true}``, a chunk with empty ``choices`` and the ``usage``, as OpenAI
sends it), and ``{"error": {...}}`` bodies. llama.cpp's real server covers the OpenAI-compatible path
otherwise; this double exists for what it does not send: usage in a stream, and cached prompt tokens.
"""

from __future__ import annotations

import json
from typing import Any

from .http_double import HttpDouble, Request


class OpenAIDouble(HttpDouble):
    """Answers with ``reply`` (or ``tool_call``), reporting ``usage`` (``prompt_tokens`` includes the cached ones)."""

    def __init__(self, api_key: str | None = "sk-test-0000") -> None:
        super().__init__()
        self.api_key = api_key
        """The bearer key every request must carry; None: any (a local server such as llama.cpp's checks none)."""
        self.reply = "Hello from the OpenAI double."
        self.tool_call: dict[str, Any] | None = None
        """``{"name": ..., "arguments": {...}}`` answered when the request offers tools."""
        self.usage: dict[str, Any] = {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30,
                                      "prompt_tokens_details": {"cached_tokens": 0}}
        """What every reply reports, in the API's terms: ``prompt_tokens`` includes the cached ones."""
        self.stream_usage = True
        """False: a stream never ends with a usage chunk, even when asked (as llama-cpp-python's server)."""

    def error_payload(self, status: int, message: str) -> Any:
        return {"error": {"message": message or f"error {status}", "type": "api_error", "code": None}}

    def route(self, request: Request) -> None:
        if request.path != "/v1/chat/completions" or request.method != "POST":
            request.json(404, self.error_payload(404, f"no route {request.path}"))
            return
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            request.json(401, self.error_payload(401, "Incorrect API key provided"))
            return
        body = request.body or {}
        calls = [{"index": 0, "id": "call_01", "type": "function",
                  "function": {"name": self.tool_call["name"], "arguments": json.dumps(self.tool_call["arguments"])}}
                 ] if body.get("tools") and self.tool_call else []
        finish = "tool_calls" if calls else "stop"
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": None if calls else self.reply}
            if calls:
                message["tool_calls"] = calls
            request.json(200, {**_head(body, "chat.completion"), "usage": self.usage,
                               "choices": [{"index": 0, "message": message, "finish_reason": finish}]})
            return
        request.start_stream("text/event-stream")

        def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            request.write(f"data: {json.dumps({**_head(body, 'chat.completion.chunk'), 'choices': choices, **extra})}"
                          "\n\n")

        send([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        for delta in ([{"tool_calls": calls}] if calls else [{"content": w} for w in _words(self.reply)]):
            send([{"index": 0, "delta": delta, "finish_reason": None}])
        send([{"index": 0, "delta": {}, "finish_reason": finish}])
        if self.stream_usage and (body.get("stream_options") or {}).get("include_usage"):
            send([], usage=self.usage)
        request.write("data: [DONE]\n\n")


def _head(body: dict[str, Any], kind: str) -> dict[str, Any]:
    return {"id": "chatcmpl-double", "object": kind, "created": 1_800_000_000, "model": body.get("model", "")}


def _words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p if i == 0 else " " + p for i, p in enumerate(parts)]


def start_openai_double(api_key: str | None = "sk-test-0000") -> OpenAIDouble:
    """Start the double on a free loopback port; its ``url`` + ``/v1`` is the base URL to give ``ChatOpenAI``."""
    return OpenAIDouble(api_key)
