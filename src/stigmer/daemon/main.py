"""The daemon process: API + supervisor in one event loop (``python -m stigmer.daemon.main``).

It resolves the configuration once, from the environment ``stigmer local start`` gave it
(``cfg.to_env()``: settings never travel in argv), takes the lock, writes its PID and two fresh
tokens (0600): the admin's (``run/token``) and the runners' (``run/runner-token``, which can only
post events), and binds the API on loopback. Once the API listens it writes ``run/state.json``
(how clients find it), then starts Temporal, the LLM server and the runners in that order,
each behind a real readiness probe, while ``/v1/status`` shows the progress. SIGTERM (or
SIGINT) stops everything in order: runners, LLM, Temporal, and the API last. A startup
failure is written to ``run/startup-error.json`` for the waiting ``start`` and the daemon exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._telemetry import shutdown as shutdown_tracing
from ..config import envvars as ev
from ..errors import ConfigError, RuntimeFailure, StigmerError
from . import files
from .service import Service
from .supervisor import READY, RestartPolicy, StartupFailed, Supervisor
from .temporal import TemporalClientCache, TemporalService

if TYPE_CHECKING:
    import uvicorn

    from ..config import Config

log = logging.getLogger("stigmer.daemon")


def fingerprint(cfg: Config) -> str:
    """A digest of everything that shapes the running stack (secrets only as part of a hash)."""
    env = cfg.to_env()
    return hashlib.sha256(json.dumps(sorted(env.items())).encode()).hexdigest()[:16]


def origins_env(cfg: Config) -> str:
    """The source and origin of every setting, without values: what the daemon's status explains."""
    from ..config.resolve import origins_json

    return origins_json(cfg)


def with_origins(cfg: Config, env: Mapping[str, str]) -> Config:
    """Give ``cfg`` back the sources the CLI resolved (they travelled as env vars, not as what they were)."""
    from ..config.resolve import restore_origins

    return restore_origins(cfg, env)


def loopback_host(cfg: Config) -> str:
    """The API's bind address, refused unless it is loopback: the API must not be reachable from elsewhere."""
    host = str(cfg.value("server.host")).strip()
    if host == "localhost":
        return "127.0.0.1"
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise ConfigError(f"server.host is {host!r} ({cfg.items['server.host'].origin}): the API only binds loopback",
                      hint="use 127.0.0.1 (unset STIGMER_SERVER_HOST or `stigmer config unset server.host`)")


LOCAL_PORT_HINT = ("stop the program using it, or choose another with `stigmer local start --port N` "
                   "(or `stigmer config set server.port N`)")


def bind_api(host: str, port: int, hint: str = LOCAL_PORT_HINT) -> socket.socket:
    """Bind the API's socket ourselves, so a port in use is a clear error (not uvicorn's exit)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on such sockets; without it every response
    # body waits ~40 ms for the client's delayed ACK of the headers (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:  # e.g. an address this machine does not have
            raise ConfigError(f"cannot bind the API to {host}:{port} ({exc.strerror})",
                              hint="server.host must be an address of this machine (or 0.0.0.0 / :: for all)") from None
        raise ConfigError(f"the API port {port} on {host} is already in use ({exc.strerror})", hint=hint) from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def llm_service(cfg: Config, pull: bool) -> Service | None:
    """The LLM server to supervise for the active provider (none for cloud providers)."""
    provider = cfg.require_provider()
    if provider == "llamacpp":
        from .embedded import EmbeddedService

        return EmbeddedService(cfg)
    if provider == "ollama":
        from ..providers.registry import resolve_model
        from .ollama import OllamaService

        return OllamaService(cfg, resolve_model(cfg).model, pull=pull)
    return None


class Daemon:
    """One run of the daemon. ``serve()`` returns the process exit code."""

    def __init__(self, cfg: Config, *, pull: bool = True, policy: RestartPolicy | None = None,
                 on_ready: Callable[[Daemon], None] | None = None) -> None:
        self.cfg = cfg
        self.pull = pull
        self.policy = policy
        self.on_ready = on_ready
        self.run_dir, self.log_dir = cfg.path("run"), cfg.path("logs")
        self.started = time.time()
        self.stop_event = asyncio.Event()
        self.lock = files.DaemonLock(self.run_dir)
        self.clients = TemporalClientCache(cfg)
        self.supervisor: Supervisor | None = None
        self.temporal: TemporalService | None = None
        self.url = ""
        self.ready = False

    def components(self) -> list[dict[str, Any]]:
        """Status of the API itself plus every supervised component (for ``/v1/status``)."""
        api = {"name": "api", "state": READY, "pid": os.getpid(), "address": self.url,
               "uptime_s": round(time.time() - self.started, 1), "restarts": 0, "last_error": None, "managed": True,
               "detail": None, "log": str(self.log_dir / "daemon.log")}
        return [api, *(self.supervisor.snapshot() if self.supervisor else [])]

    async def serve(self) -> int:
        if not self.lock.acquire():
            raise RuntimeFailure("another stigmer daemon is already running for this STIGMER_HOME",
                                 hint="see `stigmer local status`, or stop it with `stigmer local stop`")
        try:
            return await self._serve_locked()
        finally:
            files.remove_run_files(self.run_dir)
            self.lock.release()

    async def _serve_locked(self) -> int:
        orphans = files.reap_orphans(self.run_dir)
        if orphans:
            log.warning("ended %d process(es) left behind by a daemon that crashed: %s", len(orphans), orphans)
        files.remove_run_files(self.run_dir)
        files.clear_failure(self.run_dir)
        self._install_signals()
        files.write_pid(self.run_dir)
        token, runner_token = files.new_token(self.run_dir), files.new_runner_token(self.run_dir)
        host, port = loopback_host(self.cfg), int(self.cfg.value("server.port"))
        sock = bind_api(host, port)
        self.url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        self.supervisor = self._build_supervisor(runner_token)
        # Children boot while the API's imports load: the start costs the slowest of them, not the sum.
        starting = asyncio.create_task(self.supervisor.start(), name="supervisor-start")
        try:
            server, api_task = await self._start_api(sock, token, runner_token)
        except BaseException:
            await self._abort_start(starting)
            raise
        files.write_state(self.run_dir, files.DaemonState(os.getpid(), host, port, self.started,
                                                          fingerprint(self.cfg)))
        code = await self._run_components(starting)
        await self._shutdown(server, api_task)
        return code

    def _build_supervisor(self, runner_token: str) -> Supervisor:
        """Temporal, the LLM server and the runners; the runners get only the runner token, never the admin's."""
        from .runner import RunnerService

        self.temporal = TemporalService(self.cfg, self.clients)
        services: list[Service] = [self.temporal]
        llm = llm_service(self.cfg, self.pull)
        if llm is not None:
            services.append(llm)
        workers = int(self.cfg.value("runner.workers"))
        services += [RunnerService(i, self.cfg, self.clients, self.url, runner_token) for i in range(1, workers + 1)]
        return Supervisor(services, self.log_dir, self.policy, on_change=self._record_children)

    def _record_children(self, children: list[tuple[str, int]]) -> None:
        files.record_children(self.run_dir, [files.child_entry(name, pid) for name, pid in children])

    async def _start_api(self, sock: socket.socket, token: str,
                         runner_token: str) -> tuple[uvicorn.Server, asyncio.Task[None]]:
        import uvicorn

        from .api import create_app
        from .context import DaemonContext

        ctx = DaemonContext(config=self.cfg, token=token, runner_token=runner_token,
                            store_path=self.cfg.path("data") / "stigmer.db", temporal_client=self.clients.get,
                            components=self.components)
        app = create_app(ctx)
        server = _quiet_server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
        task = asyncio.create_task(server.serve(sockets=[sock]), name="api")
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeFailure("the API stopped while starting", hint=f"see {self.log_dir / 'daemon.log'}")
            await asyncio.sleep(0.01)
        log.info("api: listening on %s", self.url)
        return server, task

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self.stop_event.set)

    async def _run_components(self, starting: asyncio.Task[None]) -> int:
        assert self.supervisor is not None
        stopped = asyncio.create_task(self.stop_event.wait())
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            log.info("stop requested while starting")
            await self._abort_start(starting)
            return 0
        try:
            starting.result()
        except StartupFailed as exc:
            return self._startup_failed(exc, stopped)
        self.ready = True
        log.info("ready: %s", ", ".join(f"{c['name']}={c['address']}" for c in self.components()))
        if self.on_ready is not None:
            self.on_ready(self)
        await stopped
        return 0

    async def _abort_start(self, starting: asyncio.Task[None]) -> None:
        """Cancel a start in progress, then stop whatever it had launched."""
        assert self.supervisor is not None
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, StigmerError):
            await starting
        await self.supervisor.stop()

    def _startup_failed(self, exc: StartupFailed, stopped: asyncio.Task[Any]) -> int:
        log.error("startup failed: %s", exc)
        for line in exc.log_tail:
            log.error("  %s | %s", exc.component, line)
        files.write_failure(self.run_dir, {"component": exc.component, "message": exc.reason, "hint": exc.hint,
                                           "log_tail": exc.log_tail})
        stopped.cancel()
        return 1

    async def _shutdown(self, server: uvicorn.Server, api_task: asyncio.Task[None]) -> None:
        """Runners, LLM, Temporal (the supervisor, in reverse order), then the API."""
        log.info("stopping")
        assert self.supervisor is not None
        await self.supervisor.stop()
        with contextlib.suppress(OSError):
            (self.run_dir / files.STATE_FILE).unlink()
        server.should_exit = True
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(api_task, timeout=10)
        log.info("stopped")


def _quiet_server(config: Any) -> uvicorn.Server:
    """uvicorn without its own signal handling: the daemon owns SIGTERM and the shutdown order."""
    import uvicorn

    class QuietServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Any:
            yield

    return QuietServer(config)


def llm_line(cfg: Config) -> str:
    """What the daemon's LLM is and why, as the banner and status say it (never a key)."""
    from ..config.resolve import explain

    items = cfg.items
    base_url = (f"{cfg.llm.base_url} ({explain(items['llm.base_url'])})" if cfg.llm.base_url
                else "the provider's own")
    line = (f"llm: provider {cfg.llm.provider} ({explain(items['llm.provider'])}), model {cfg.llm.model} "
            f"({explain(items['llm.model'])}), base URL {base_url}")
    if cfg.llm.provider == "llamacpp":
        from ..providers.embedded import note

        line += f"; note: {note(str(cfg.llm.model))}"
    return line


def resolve_from_env(env: Mapping[str, str] | None = None) -> Config:
    """The daemon's configuration: resolved once from the environment its parent prepared."""
    from ..config import resolve
    from ..providers.names import infer_provider

    env = os.environ if env is None else env
    return with_origins(resolve(env=env, infer_provider=infer_provider), env)


def run(cfg: Config, *, pull: bool = True, echo_logs: bool = False, policy: RestartPolicy | None = None,
        on_ready: Callable[[Daemon], None] | None = None) -> int:
    """Run the daemon in this process until SIGTERM/SIGINT; returns the exit code."""
    from .._hardening import make_undumpable
    from .._telemetry import setup_tracing
    from ..worker.main import forward_core_logs
    from .logs import setup_daemon_logging

    make_undumpable()  # its environment holds the keys, its memory the API token: closed to same-user processes

    cfg.require_provider()
    setup_daemon_logging(cfg.path("logs"), echo=echo_logs)
    forward_core_logs()
    setup_tracing("stigmer-api")  # before any Temporal client: each gets the tracing interceptor
    log.info("%s", llm_line(cfg))
    for warning in cfg.warnings:
        log.warning("%s", warning)
    return asyncio.run(Daemon(cfg, pull=pull, policy=policy, on_ready=on_ready).serve())


def main() -> None:
    """Entry point of the background daemon started by ``stigmer local start``."""
    code = 1
    try:
        cfg = resolve_from_env()
        code = run(cfg, pull=os.environ.get(ev.DAEMON_NO_PULL, "") not in ("1", "true"))
    except StigmerError as exc:
        logging.getLogger("stigmer.daemon").error("%s", exc)
        print(f"error: {exc}", file=sys.stderr, flush=True)
        with contextlib.suppress(Exception):
            _leave_failure(exc)
    finally:
        shutdown_tracing()  # spans still batched: os._exit below skips every exit hook
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    # Skip interpreter teardown: the Temporal SDK can abort there (sdk-python#300) after a clean stop.
    os._exit(code)


def _leave_failure(exc: StigmerError) -> None:
    from ..config.resolve import default_home

    run_dir = Path(default_home(os.environ)) / "run"
    if not files.daemon_alive(run_dir):
        files.write_failure(run_dir, {"component": "daemon", "message": exc.message, "hint": exc.hint,
                                      "log_tail": []})


if __name__ == "__main__":
    main()
