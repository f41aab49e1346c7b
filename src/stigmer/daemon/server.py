"""``stigmer server``: the API alone, for team deployments (issue 12).

The local daemon (``main.py``) binds loopback, writes ``run/token`` and supervises Temporal, an LLM server and the
runners. A server replica does none of that: several of them run behind a load balancer, sharing one database
(``server.database_url``), a Temporal cluster runs elsewhere and so do the runners. What it keeps is the API itself,
and with it the reconcile and retention loops of ``create_app``: they are idempotent (an execution takes one
terminal event, whichever replica records it first; a row retention already deleted is not deleted twice), so every
replica runs them and none has to be elected.

Who may call it: named tokens in the database only (``DaemonContext.token`` is None). The first admin token comes
from ``stigmer server init`` (:func:`init_admin`), which needs the database URL, i.e. the database's own
credentials: whoever can run it could write the tokens table directly anyway, so it grants nothing new.

Reach: loopback needs nothing more; any other address needs TLS (``server.tls.cert``/``key``, served by uvicorn) or
``server.behind_proxy`` (a reverse proxy terminates TLS). Forwarded headers count only with ``behind_proxy`` and only
from ``server.trusted_proxies``, so a client cannot pose as another address by sending X-Forwarded-For itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config.masking import mask_url, scrub
from ..errors import ConfigError, RuntimeFailure, StigmerError, UserError

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger("stigmer.server")

PORT_HINT = "stop the program using it, or choose another with `stigmer server --port N` (env STIGMER_SERVER_PORT)"
# How often the external Temporal is health-checked for /v1/status (and a lost connection logged).
TEMPORAL_CHECK_S = 10.0


@dataclass(frozen=True)
class Database:
    """The store: the shared database's URL, or (None) the SQLite file ``path``, for one replica only."""

    url: str | None
    path: Path

    @classmethod
    def of(cls, cfg: Config) -> Database:
        return cls(cfg.value("server.database_url") or None, cfg.path("data") / "stigmer.db")

    @property
    def shown(self) -> str:
        """As logs and messages name it: the URL without its password, or the SQLite file."""
        return str(mask_url(self.url)) if self.url else str(self.path)

    def open(self) -> Any:
        """The store (schema created or migrated), or a RuntimeFailure that names it without its password."""
        from ..store import open_store

        try:
            return open_store(self.url or self.path)
        except StigmerError:
            raise
        except Exception as exc:  # a driver's own error: its text may quote the URL
            raise self.failure(exc) from None

    def failure(self, exc: BaseException) -> RuntimeFailure:
        reason = scrub(f"{type(exc).__name__}: {exc}", self.url)
        return RuntimeFailure(f"cannot open the database {self.shown}: {reason}",
                              hint="check --database-url / STIGMER_DATABASE_URL (server.database_url): the host, the "
                                   "database, the user and its password, and that the server accepts connections")


@dataclass(frozen=True)
class ServerSettings:
    """What ``stigmer server`` serves, checked before anything binds (see :func:`server_settings`)."""

    host: str
    port: int
    database: Database
    tls: tuple[str, str] | None
    """(certificate file, key file), or None: plain HTTP."""
    behind_proxy: bool
    trusted_proxies: tuple[str, ...]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"


def server_settings(cfg: Config) -> ServerSettings:
    """The server's settings from ``cfg``; a ConfigError naming the flag for anything that cannot work."""
    tls = _tls_files(cfg)
    behind_proxy = bool(cfg.value("server.behind_proxy"))
    return ServerSettings(host=_bind_host(cfg, tls is not None, behind_proxy), port=int(cfg.value("server.port")),
                          database=Database.of(cfg), tls=tls, behind_proxy=behind_proxy,
                          trusted_proxies=tuple(cfg.value("server.trusted_proxies")))


def _origin(cfg: Config, key: str) -> str:
    item = cfg.items[key]
    return {"flag": f"flag {item.origin}", "env": f"environment variable {item.origin}"}.get(item.source, item.origin)


def _bind_host(cfg: Config, tls: bool, behind_proxy: bool) -> str:
    """``server.host``: loopback as is; any other address only with TLS or behind a proxy (no token in clear)."""
    host = str(cfg.value("server.host")).strip()
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ConfigError(f"server.host {host!r} ({_origin(cfg, 'server.host')}) is not an IP address",
                          hint="give --host an address of this machine: 127.0.0.1, 0.0.0.0 (every IPv4 interface), "
                               ":: (every interface) or one interface's address") from None
    if address.is_loopback or tls or behind_proxy:
        return str(address)
    raise ConfigError(f"server.host {host} ({_origin(cfg, 'server.host')}) is not a loopback address, and the API "
                      "would take bearer tokens over plain HTTP from the network",
                      hint="serve HTTPS with --tls-cert FILE --tls-key FILE, or, when a reverse proxy in front "
                           "terminates TLS, add --behind-proxy (and --trusted-proxy ADDRESS for the proxy)")


def _tls_files(cfg: Config) -> tuple[str, str] | None:
    """``server.tls.cert`` and ``.key``: both or neither, readable, and a matching pair (checked now, not at the
    first handshake)."""
    cert, key = cfg.value("server.tls.cert"), cfg.value("server.tls.key")
    if not cert and not key:
        return None
    if not cert or not key:
        given, missing = ("--tls-cert", "--tls-key") if cert else ("--tls-key", "--tls-cert")
        raise ConfigError(f"{given} was given without {missing}", hint="HTTPS needs both the certificate and its key")
    for name, path in (("server.tls.cert", cert), ("server.tls.key", key)):
        if not os.access(path, os.R_OK) or not os.path.isfile(path):
            why = "does not exist" if not os.path.exists(path) else "is not a readable file"
            raise ConfigError(f"{name} ({_origin(cfg, name)}): {path} {why}",
                              hint="point --tls-cert/--tls-key at PEM files this user may read")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"--tls-cert {cert} and --tls-key {key} are not a PEM certificate and its private key "
                          f"({exc.__class__.__name__}: {getattr(exc, 'reason', None) or exc})",
                          hint="give the certificate (chain) file and the unencrypted private key it was made "
                               "with") from None
    return str(cert), str(key)


def init_admin(database: Database, name: str, out: Path) -> dict[str, Any]:
    """Open (creating and migrating) the database and make its first admin token, written to the new file ``out``
    (0600). Refused when the database has an active admin token already: from then on admins make tokens through
    the API (``stigmer token create``), which records who could. A database whose admin tokens were all revoked or
    have expired may be initialised again: otherwise nobody could ever administer it."""
    import re

    from ._routes_tokens import NAME_MAX, NAME_PATTERN

    if len(name) > NAME_MAX or not re.match(NAME_PATTERN, name):
        raise UserError(f"--name {name!r} is not a token name", hint="letters, digits, . _ - (64 at most), e.g. admin")
    store = database.open()
    try:
        admins = [t["name"] for t in store.list_tokens() if t["role"] == "admin" and t["state"] == "active"]
        if admins:
            raise UserError(f"the database {database.shown} has an admin token already ({', '.join(admins)}): "
                            "nothing was created",
                            hint="an admin makes more with `stigmer --server URL --token-file FILE token create "
                                 "--role admin --name NAME --out FILE`")
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise UserError(f"--out {out}: {exc.strerror}: nothing was created", hint="name a new file") from None
        try:
            record, token = store.create_token(name, "admin", None)
            with os.fdopen(fd, "w") as handle:
                handle.write(token + "\n")
        except BaseException:
            with contextlib.suppress(OSError):
                out.unlink()  # ours: made above with O_EXCL
            raise
    except ValueError as exc:  # the name is taken (by a revoked token)
        raise UserError(f"--name: {exc}", hint="pick another name") from None
    finally:
        store.close()
    log.info("database %s ready (schema migrated); admin token %r written to %s", database.shown, name, out)
    return record


class ApiReplica:
    """One ``stigmer server`` process: the API over the shared store, until SIGTERM/SIGINT. ``serve()`` -> exit code."""

    def __init__(self, cfg: Config, settings: ServerSettings, *, access_log: bool = True) -> None:
        from .temporal import TemporalClientCache

        self.cfg, self.settings, self.access_log = cfg, settings, access_log
        self.started = time.time()
        self.stop_event = asyncio.Event()
        self.clients = TemporalClientCache(cfg)
        self.temporal_state: str = "connecting"
        self.temporal_error: str | None = None

    def components(self) -> list[dict[str, Any]]:
        """``/v1/status``: this replica, and Temporal as what it is here: external, not started nor stopped by us."""
        t = self.cfg.temporal
        api = {"name": "api", "state": "ready", "pid": os.getpid(), "address": self.settings.url,
               "uptime_s": round(time.time() - self.started, 1), "restarts": 0, "last_error": None, "managed": False,
               "detail": f"stigmer server replica; store {self.settings.database.shown}", "log": None}
        temporal = {"name": "temporal", "state": self.temporal_state, "pid": None, "address": t.address,
                    "uptime_s": None, "restarts": 0, "last_error": self.temporal_error, "managed": False,
                    "detail": f"external (namespace {t.namespace})", "log": None}
        return [api, temporal]

    async def serve(self) -> int:
        from .main import bind_api

        sock = bind_api(self.settings.host, self.settings.port, hint=PORT_HINT)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_event.set)
        server, api_task = await self._start_api(sock)
        watch = asyncio.create_task(self._watch_temporal(), name="temporal-health")
        stopped = asyncio.create_task(self.stop_event.wait())
        await asyncio.wait({api_task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        log.info("stopping")
        watch.cancel()
        stopped.cancel()
        server.should_exit = True
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(api_task, timeout=10)
        log.info("stopped")
        return 0 if self.stop_event.is_set() else 1

    def _context(self) -> Any:
        from .context import DaemonContext

        return DaemonContext(config=self.cfg, token=None, runner_token=None, store_path=self.settings.database.path,
                             database_url=self.settings.database.url, temporal_client=self.clients.get,
                             components=self.components)

    async def _start_api(self, sock: Any) -> tuple[Any, asyncio.Task[None]]:
        import uvicorn

        from .api import create_app
        from .main import _quiet_server

        try:
            app = create_app(self._context())  # opens (creating and migrating) the store
        except (StigmerError, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise self.settings.database.failure(exc) from None
        s = self.settings
        config = uvicorn.Config(app, log_config=None, access_log=self.access_log, lifespan="on",
                                proxy_headers=s.behind_proxy, forwarded_allow_ips=list(s.trusted_proxies),
                                ssl_certfile=s.tls[0] if s.tls else None, ssl_keyfile=s.tls[1] if s.tls else None,
                                server_header=False)
        server = _quiet_server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name="api")
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeFailure("the API stopped while starting", hint="see the lines above")
            await asyncio.sleep(0.01)
        proxies = f"; forwarded headers trusted from {', '.join(s.trusted_proxies)}" if s.behind_proxy else ""
        log.info("listening on %s (store %s; temporal %s, namespace %s%s)", s.url, s.database.shown,
                 self.cfg.temporal.address, self.cfg.temporal.namespace, proxies)
        return server, task

    async def _watch_temporal(self) -> None:
        """Health-check the external Temporal for ``/v1/status``, and log when it is reached or lost."""
        while True:
            healthy = await self.clients.healthy()
            state = "ready" if healthy else "unreachable"
            if state != self.temporal_state:
                address = self.cfg.temporal.address
                if healthy:
                    log.info("temporal: connected to %s", address)
                else:
                    log.warning("temporal: cannot reach %s (check --temporal-address, TLS and the API key); "
                                "the API answers, starting executions fails until it is back", address)
            self.temporal_state = state
            self.temporal_error = None if healthy else f"cannot reach {self.cfg.temporal.address}"
            await asyncio.sleep(TEMPORAL_CHECK_S)


def run(cfg: Config, settings: ServerSettings, *, access_log: bool = True) -> int:
    """Serve until SIGTERM/SIGINT in this process; returns the exit code."""
    assert not cfg.temporal.managed, "stigmer server never starts Temporal"
    if not settings.database.url:
        log.info("no --database-url (STIGMER_DATABASE_URL): using the SQLite file %s, which only one replica may "
                 "use; set server.database_url to postgresql://... for several", settings.database.path)
    if cfg.items["temporal.address"].source == "default":
        log.warning("no --temporal-address (TEMPORAL_ADDRESS): using %s", cfg.temporal.address)
    from .._telemetry import setup_tracing

    setup_tracing("stigmer-api")  # before any Temporal client: each gets the tracing interceptor
    return asyncio.run(ApiReplica(cfg, settings, access_log=access_log).serve())
