"""The embedded model (provider ``llamacpp``): llama.cpp's OpenAI-compatible server as a supervised child.

The model file comes from :func:`stigmer.providers.embedded.model_file` (the bundled Gemma 3
270M GGUF, assembled once under ``$STIGMER_HOME/models/``, or a ``.gguf`` path) and the command line from
``server_command``, so there is one way to start it. The server binds loopback only. When the
base URL points elsewhere, or a llama.cpp server already answers there, it is only health-checked.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..errors import RuntimeFailure
from .service import Service, http_ok, port_free, server_env
from .temporal import port_taken_error

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger("stigmer.daemon.embedded")

LOOPBACK = "127.0.0.1"


class EmbeddedService(Service):
    """``python -m llama_cpp.server`` on the GGUF model, at the host and port of ``llm.base_url``."""

    name = "llamacpp"
    ready_timeout_s = 120.0
    stop_timeout_s = 5.0

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.base_url = (cfg.llm.base_url or "http://127.0.0.1:18434/v1").rstrip("/")
        parts = urlsplit(self.base_url)
        self.host, self.port = parts.hostname or LOOPBACK, parts.port or 80
        self.address = self.base_url
        self.model_path: Path | None = None
        self.model = ""

    async def prepare(self) -> None:
        if self.host not in (LOOPBACK, "localhost"):
            self.managed = False
            return
        if not port_free(LOOPBACK, self.port):
            if await self.ready():
                self.managed = False
                log.info("llamacpp: a server already answers at %s; using it", self.base_url)
                return
            raise port_taken_error("The embedded model server's", self.port, "--llm-base-url http://127.0.0.1:PORT/v1",
                                   "llm.base_url")
        from ..providers.embedded import model_file
        from ..providers.registry import resolve_model

        self.model = resolve_model(self.cfg).model
        self.detail = "preparing the embedded model"
        self.model_path = await asyncio.to_thread(model_file, self.model, self.cfg, self._progress)
        self.detail = "loading the embedded model"

    def _progress(self, done: int, total: int) -> None:
        self.detail = f"assembling the embedded model (first run) {100 * done // max(total, 1)}%"

    def command(self) -> tuple[list[str], dict[str, str]]:
        from ..providers.embedded import server_command

        if self.model_path is None:
            raise RuntimeFailure("the embedded model was not prepared")
        argv = server_command(self.model_path, LOOPBACK, self.port, n_ctx=self.cfg.llm.num_ctx, alias=self.model)
        return argv, server_env()

    async def ready(self) -> bool:
        return await http_ok(self.base_url + "/models")

    def unready_message(self) -> tuple[str, str] | None:
        if self.managed:
            return None
        return (f"the llama.cpp server at {self.base_url} does not answer",
                "start it, or drop --llm-base-url to let stigmer run the embedded model itself")
