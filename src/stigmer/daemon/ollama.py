"""Ollama (provider ``ollama``): use a running server, or start ``ollama serve``; pull a missing model.

An Ollama that already answers at the base URL is the user's: it is used and never stopped
(``managed = False``). When nothing answers and the ``ollama`` binary is installed, the daemon
runs ``ollama serve`` on that address as a supervised child. A missing model is pulled through
Ollama's own ``/api/pull`` with progress shown by the start spinner, unless ``--no-pull``.
"""

from __future__ import annotations

import json
import logging
import shutil
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..errors import ConfigError, RuntimeFailure
from .service import Service, http_ok, port_free, server_env

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger("stigmer.daemon.ollama")

NOT_INSTALLED_HINT = ("install Ollama from https://ollama.com/download and rerun `stigmer local start`; or use an "
                      "Anthropic key (export ANTHROPIC_API_KEY=...), or the embedded model "
                      "(`stigmer local start --llm-provider llamacpp`)")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class OllamaService(Service):
    """``ollama serve`` when we must start it; otherwise a health-checked, never-stopped external server."""

    name = "ollama"
    ready_timeout_s = 30.0
    stop_timeout_s = 10.0

    def __init__(self, cfg: Config, model: str, *, pull: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = model
        self.pull = pull
        self.base_url = (cfg.llm.base_url or "http://127.0.0.1:11434").rstrip("/")
        self.address = self.base_url
        parts = urlsplit(self.base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 11434

    async def prepare(self) -> None:
        if await http_ok(self.base_url + "/api/version"):
            self.managed = False
            log.info("ollama: a server already answers at %s; using it (never stopped by stigmer)", self.base_url)
            return
        binary = shutil.which("ollama")
        if binary is None:
            raise ConfigError(f"Ollama does not answer at {self.base_url} and is not installed",
                              hint=NOT_INSTALLED_HINT)
        if self.host not in LOOPBACK_HOSTS:
            raise RuntimeFailure(f"Ollama does not answer at {self.base_url}",
                                 hint="start it on that machine, or point --llm-base-url at a running Ollama")
        if not port_free(self.host, self.port):
            raise RuntimeFailure(f"port {self.port} is taken by a program that is not Ollama",
                                 hint="stop that program, or set OLLAMA_HOST to a free address")
        self.detail = f"starting ollama serve on {self.host}:{self.port}"

    def command(self) -> tuple[list[str], dict[str, str]]:
        env = server_env()
        env["OLLAMA_HOST"] = f"{self.host}:{self.port}"
        return [shutil.which("ollama") or "ollama", "serve"], env

    async def ready(self) -> bool:
        return await http_ok(self.base_url + "/api/version")

    async def after_ready(self) -> None:
        if await self._has_model():
            return
        if not self.pull:
            raise ConfigError(f"the Ollama model {self.model!r} is not pulled (and --no-pull was given)",
                              hint=f"run `ollama pull {self.model}`, or start without --no-pull")
        await self._pull()

    async def _has_model(self) -> bool:
        import httpx

        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            try:
                response = await client.post(self.base_url + "/api/show", json={"model": self.model})
            except httpx.HTTPError as exc:
                raise RuntimeFailure(f"Ollama at {self.base_url} stopped answering: {exc}") from None
        return response.status_code == 200

    async def _pull(self) -> None:
        import httpx

        self.detail = f"pulling {self.model}"
        log.info("ollama: pulling %s", self.model)
        async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=600), trust_env=False) as client:
            try:
                async with client.stream("POST", self.base_url + "/api/pull", json={"model": self.model}) as resp:
                    if resp.status_code != 200:
                        body = (await resp.aread()).decode(errors="replace")[:300]
                        raise ConfigError(f"Ollama could not pull {self.model!r}: {body}",
                                          hint="check the model name with `ollama list` or on ollama.com/library")
                    async for line in resp.aiter_lines():
                        self._progress(line)
            except httpx.HTTPError as exc:
                raise RuntimeFailure(f"pulling {self.model!r} from Ollama failed: {exc}",
                                     hint=f"run `ollama pull {self.model}` yourself and start again") from None

    def _progress(self, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        if event.get("error"):
            raise ConfigError(f"Ollama could not pull {self.model!r}: {event['error']}",
                              hint="check the model name with `ollama list` or on ollama.com/library")
        total, done = event.get("total"), event.get("completed")
        percent = f" {100 * done // total}%" if total and done else ""
        self.detail = f"pulling {self.model}: {event.get('status', '')}{percent}"
