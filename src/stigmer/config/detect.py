"""Detection behind the smart default: which LLM can this machine use right now?

Kept cheap: an Ollama probe is one HTTP GET with a ~200 ms timeout over ``http.client``
(no httpx import on the CLI's path), and the embedded provider is found with ``find_spec``.
"""

from __future__ import annotations

import http.client
import importlib.util
import shutil
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

PROBE_TIMEOUT_S = 0.2


class Detector(Protocol):
    """What resolve() asks about the machine; tests inject their own."""

    def ollama_answers(self, base_url: str) -> bool: ...

    def ollama_binary(self) -> str | None: ...

    def embedded_installed(self) -> bool: ...


def http_get_ok(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when ``GET url`` answers 2xx within ``timeout`` seconds."""
    parts = urlsplit(url)
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    try:
        conn = conn_cls(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
        try:
            conn.request("GET", parts.path or "/")
            return 200 <= conn.getresponse().status < 300
        finally:
            conn.close()
    except (OSError, http.client.HTTPException):
        return False


@dataclass(frozen=True)
class MachineDetector:
    """The real machine."""

    def ollama_answers(self, base_url: str) -> bool:
        return http_get_ok(base_url.rstrip("/") + "/api/version")

    def ollama_binary(self) -> str | None:
        return shutil.which("ollama")

    def embedded_installed(self) -> bool:
        return importlib.util.find_spec("llama_cpp") is not None


def normalize_ollama_host(raw: str) -> str:
    """``OLLAMA_HOST`` may be ``host``, ``host:port`` or a URL; return a URL (Ollama's own rules)."""
    text = raw.strip().rstrip("/")
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    host = parts.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 11434)
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{port}{parts.path}"
