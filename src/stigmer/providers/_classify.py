"""Map what an SDK or HTTP client raised to a :class:`ProviderError`, without importing any SDK.

The Anthropic, OpenAI and Ollama SDKs all expose an HTTP status (``status_code``) and the
response (``response.headers``) on their errors, and connection problems surface as httpx or
OS errors somewhere in the ``__cause__`` chain. Duck typing over those attributes keeps this
module import-free, so classifying an error never costs an SDK import.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterator
from typing import Any

from . import errors as pe
from .spec import ModelSpec

_CONTEXT = re.compile(r"context (length|window)|too long|maximum context|exceeds? the context|prompt is too long|"
                      r"requested tokens .* exceed|n_ctx", re.IGNORECASE)
_CONNECT = ("ConnectError", "ConnectionRefusedError", "ConnectTimeout")
_LOST = ("ReadError", "RemoteProtocolError", "ConnectionResetError", "BrokenPipeError", "ReadTimeout",
         "APITimeoutError", "TimeoutException", "WriteError", "IncompleteRead", "ServerDisconnectedError")


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes/contexts, outermost first, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def status_of(exc: BaseException) -> int | None:
    for candidate in ("status_code", "status"):
        value = getattr(exc, candidate, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


def retry_after_of(exc: BaseException) -> float | None:
    """Seconds from a ``retry-after`` (or ``retry-after-ms``) response header, if any."""
    headers: Any = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(raw) if raw else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def detail_of(exc: BaseException) -> str:
    """The server's own words, trimmed: the ``error``/``message`` in a JSON body, else ``str(exc)``."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return str(err.get("message") or err)[:300]
        return str(err)[:300]
    text = str(getattr(exc, "error", "") or exc)
    return text.strip()[:300]


def by_status(status: int, exc: BaseException, spec: ModelSpec) -> pe.ProviderError:
    detail = detail_of(exc)
    after = retry_after_of(exc)
    if status in (401, 403):
        return pe.key_rejected(spec.provider)
    if status == 429:
        return pe.rate_limited(spec.provider, after)
    if status == 529 or "overloaded" in detail.lower():
        return pe.overloaded(spec.provider, after)
    if status >= 500:
        return pe.server_error(spec.provider, status, after, detail)
    if _CONTEXT.search(detail):
        return pe.context_overflow(spec.provider, spec.model, detail)
    if status == 404:
        return pe.model_not_found(spec.provider, spec.model, detail)
    if status == 408:
        return pe.connection_lost(spec.provider, "request timeout")
    return pe.bad_request(spec.provider, status, detail)


def generic(exc: BaseException, spec: ModelSpec, unreachable: pe.ProviderError) -> pe.ProviderError:
    """Classify by duck typing: status codes first, then connection failures anywhere in the chain."""
    for item in chain(exc):
        if isinstance(item, pe.ProviderError):
            return item
        status = status_of(item)
        if status is not None and status >= 400:
            return by_status(status, item, spec)
    names = [type(item).__name__ for item in chain(exc)]
    if any(name in _CONNECT for name in names) or "Failed to connect" in str(exc):
        return unreachable
    lost = [name for name in names if name in _LOST]
    if lost or any("ConnectionError" in name for name in names):
        return pe.connection_lost(spec.provider, lost[-1] if lost else type(exc).__name__)
    if _CONTEXT.search(str(exc)):
        return pe.context_overflow(spec.provider, spec.model, str(exc)[:300])
    return pe.ProviderError(f"{spec.provider} call failed: {type(exc).__name__}: {str(exc)[:300]}", retryable=False,
                            kind="unknown", hint="rerun with STIGMER_DEBUG=1 for details and report it if it persists")
