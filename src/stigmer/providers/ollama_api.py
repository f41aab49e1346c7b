"""Ollama's native management API (``/api/version``, ``/api/tags``, ``/api/show``, ``/api/pull``).

Used by ``stigmer llm list|pull|status`` and by the capability preflight. Plain httpx, so it
costs nothing of the LangChain/Ollama SDK import; every connection failure becomes
:func:`errors.ollama_unreachable` (never a bare "Connection refused").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import errors as pe

TIMEOUT_S = 10.0


@dataclass(frozen=True)
class LocalModel:
    """One model the Ollama server has."""

    name: str
    size: int
    family: str = ""
    parameter_size: str = ""


def _client(base_url: str, timeout: float | None = TIMEOUT_S) -> Any:
    import httpx

    return httpx.Client(base_url=base_url.rstrip("/"), timeout=httpx.Timeout(timeout, connect=3.0))


def _request(base_url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    import httpx

    try:
        with _client(base_url) as client:
            response = client.request(method, path, json=body)
    except (httpx.ConnectError, httpx.ConnectTimeout):
        raise pe.ollama_unreachable(base_url) from None
    return response


def _error_text(response: Any) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return str(response.text)


def version(base_url: str) -> str:
    """The server's version; raises ``ollama_unreachable`` when nothing answers."""
    response = _request(base_url, "GET", "/api/version")
    response.raise_for_status()
    return str(response.json().get("version", "?"))


def tags(base_url: str) -> list[LocalModel]:
    """The models the server has pulled."""
    response = _request(base_url, "GET", "/api/tags")
    response.raise_for_status()
    models = []
    for item in response.json().get("models", []):
        details = item.get("details") or {}
        models.append(LocalModel(name=str(item.get("name") or item.get("model")), size=int(item.get("size") or 0),
                                 family=str(details.get("family", "")),
                                 parameter_size=str(details.get("parameter_size", ""))))
    return models


def show(base_url: str, model: str) -> dict[str, Any]:
    """``/api/show`` for ``model``: capabilities and model_info. A missing model raises ``model_not_pulled``."""
    response = _request(base_url, "POST", "/api/show", {"model": model})
    if response.status_code == 404:
        raise pe.model_not_pulled(model)
    if response.status_code >= 400:
        raise pe.bad_request("ollama", response.status_code, _error_text(response))
    return dict(response.json())


def context_length(info: dict[str, Any]) -> int | None:
    """The trained context length from ``/api/show``'s ``model_info`` (``<arch>.context_length``)."""
    for key, value in (info.get("model_info") or {}).items():
        if key.endswith(".context_length") and isinstance(value, int):
            return value
    return None


def supports_tools(info: dict[str, Any]) -> bool:
    """Whether ``/api/show`` lists the ``tools`` capability (older servers: a tools template)."""
    caps = info.get("capabilities")
    if isinstance(caps, list):
        return "tools" in caps
    return ".Tools" in str(info.get("template", ""))


def pull(base_url: str, model: str) -> Iterator[dict[str, Any]]:
    """Stream ``/api/pull`` progress lines (``status``, ``total``, ``completed``); an error line raises."""
    import httpx

    try:
        with _client(base_url, timeout=None) as client, client.stream("POST", "/api/pull",
                                                                      json={"model": model, "stream": True}) as resp:
            if resp.status_code >= 400:
                resp.read()
                raise pe.ProviderError(f"Ollama could not pull {model!r}: {_error_text(resp)}", retryable=False,
                                       kind="model_not_found", hint="check the name on ollama.com/library")
            for line in resp.iter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                if "error" in event:
                    raise pe.ProviderError(f"Ollama could not pull {model!r}: {event['error']}", retryable=False,
                                           kind="model_not_found", hint="check the name on ollama.com/library")
                yield event
    except (httpx.ConnectError, httpx.ConnectTimeout):
        raise pe.ollama_unreachable(base_url) from None
