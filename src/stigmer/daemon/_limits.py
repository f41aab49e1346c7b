"""Bounds on what a client sends the API: the request body (``limits.request_bytes``) and a message's length.

The body limit is an ASGI middleware, so it holds for every route before any parsing: a declared
``Content-Length`` over the limit is answered 413 without reading a byte of the body; a body sent
without one (chunked) is counted while it is read, and answered 413 as soon as it passes the limit.
At most the limit is ever held in memory (the routes would hold the whole body anyway, to parse it).
"""

from __future__ import annotations

import json
from typing import Any

from ._state import ApiError

Scope = dict[str, Any]
Message = dict[str, Any]
# Read and dropped of a body over the limit before answering, so a client still sending it gets the 413 instead
# of a connection reset mid-upload; past this, the connection is closed.
_DRAIN_BYTES = 64 * 1024 * 1024
_HINT = ("send less; a daemon taking more needs limits.request_bytes raised "
         "(`stigmer config set limits.request_bytes BYTES`, then `stigmer local restart`)")


class BodyLimit:
    """ASGI middleware: 413 ``{"detail", "hint"}`` for a request body over ``limit`` bytes."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = _content_length(headers.get(b"content-length"))
        if declared is not None and declared > self.limit:
            await _drain(receive, _DRAIN_BYTES)
            await _too_large(send, f"request body is {declared} bytes; the limit is {self.limit} "
                                   "(limits.request_bytes)")
            return
        if declared is None and b"chunked" not in headers.get(b"transfer-encoding", b"").lower():
            await self.app(scope, receive, send)  # no body to bound (a GET, an event stream)
            return
        body = await _read(receive, self.limit)
        if body is None:
            await _drain(receive, _DRAIN_BYTES)
            await _too_large(send, f"request body is more than {self.limit} bytes; the limit is {self.limit} "
                                   "(limits.request_bytes)")
            return
        await self.app(scope, _replay(body, receive), send)


def _content_length(raw: bytes | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None  # the server refuses a malformed one itself; count the body instead


async def _read(receive: Any, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit`` bytes (the rest is left unread)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: let the app see an empty body
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _drain(receive: Any, most: int) -> None:
    """Read and drop what the client still sends, up to ``most`` bytes."""
    seen = 0
    while seen <= most:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        seen += len(message.get("body", b""))


def _replay(body: bytes, receive: Any) -> Any:
    """A ``receive`` that hands the app the body already read, then the client's own messages (disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        message: Message = await receive()
        return message

    return replay


async def _too_large(send: Any, detail: str) -> None:
    data = json.dumps({"detail": detail, "hint": _HINT}, ensure_ascii=True).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": data})


def check_message(message: str, limit: int) -> None:
    """422 naming ``body.message`` when a message is longer than ``limit`` characters (``limits.message_chars``)."""
    if len(message) > limit:
        msg = f"the message is {len(message)} characters; the limit is {limit} (limits.message_chars)"
        raise ApiError(422, f"invalid request: body.message: {msg}",
                       "send a shorter message (put long material in a file in the workspace and point the agent at "
                       "it), or raise limits.message_chars", errors=[{"loc": "body.message", "msg": msg}])
