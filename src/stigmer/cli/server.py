"""``stigmer server [init]``: the API without the local stack, for a team (docs/ARCHITECTURE.md, "stigmer server").

Configured like every command (flags > env > ``config.yaml`` > defaults, each value with its provenance in ``stigmer
config show``). Secrets never come from the command line, where every user of the machine can read them (``ps``,
``/proc``) and the shell keeps them: a ``--database-url`` with a password is refused (the same URL may come from
``STIGMER_DATABASE_URL`` or the file), and the Temporal API key comes from ``TEMPORAL_API_KEY``, the file or
``--temporal-api-key-file``. Heavy modules (uvicorn, FastAPI, the store) load only when a command runs.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError, StigmerError
from ._options import load_config, read_key_file

EPILOG = """\b
Examples:
  # first, once per database: its schema, and the first admin token (a new 0600 file)
  STIGMER_DATABASE_URL=postgresql://stigmer:PASSWORD@db:5432/stigmer \\
    stigmer server init --name alice --out alice.token
  # then each replica (as many as you like, behind your load balancer)
  STIGMER_DATABASE_URL=postgresql://stigmer:PASSWORD@db:5432/stigmer TEMPORAL_API_KEY=... \\
    stigmer server --host 0.0.0.0 --tls-cert cert.pem --tls-key key.pem \\
    --temporal-address ns.acct.tmprl.cloud:7233 --temporal-namespace ns.acct --temporal-tls
  # behind a reverse proxy that terminates TLS, at 10.0.0.5
  stigmer server --host 0.0.0.0 --behind-proxy --trusted-proxy 10.0.0.5
  # from a laptop
  stigmer --server https://stigmer.example.com --token-file alice.token get agents
"""


def _database_url(value: str | None, flags: dict[str, tuple[Any, str]]) -> None:
    """``--database-url``, refused when it holds a password (it would be on the command line)."""
    from ..config.masking import url_password

    if value is None:
        return
    if url_password(value):
        raise ConfigError("--database-url holds a password, and a command line is visible to every user of this "
                          "machine (ps, /proc) and kept in the shell's history: nothing was started",
                          hint="put the URL in the environment variable STIGMER_DATABASE_URL, or in the config file "
                               "(`stigmer config set server.database_url`, which asks for it without echo)")
    flags["server.database_url"] = (value, "--database-url")


def _serve_flags(kw: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    """The command's options as resolve()'s flags (secrets refused on argv; read from files)."""
    flags: dict[str, tuple[Any, str]] = {
        # never the local dev server: the codec's tokenless access for its web UI must not exist here
        "temporal.managed": (False, "stigmer server (never starts Temporal)"),
        # its runners are elsewhere, with their own models and secret stores: a replica must not check either
        "runner.workers": (0, "stigmer server (starts no runners)")}
    _database_url(kw.pop("database_url"), flags)
    for option, key in (("host", "server.host"), ("port", "server.port"), ("tls_cert", "server.tls.cert"),
                        ("tls_key", "server.tls.key"), ("temporal_address", "temporal.address"),
                        ("temporal_namespace", "temporal.namespace"),
                        ("temporal_tls_cert", "temporal.tls.client_cert"),
                        ("temporal_tls_key", "temporal.tls.client_key"), ("temporal_tls_ca", "temporal.tls.server_ca"),
                        ("temporal_tls_server_name", "temporal.tls.server_name")):
        if kw.get(option) is not None:
            flags[key] = (kw[option], "--" + option.replace("_", "-"))
    if kw.get("behind_proxy"):
        flags["server.behind_proxy"] = (True, "--behind-proxy")
    if kw.get("trusted_proxy"):
        flags["server.trusted_proxies"] = (list(kw["trusted_proxy"]), "--trusted-proxy")
    if kw.get("temporal_tls"):
        flags["temporal.tls.enabled"] = (True, "--temporal-tls")
    if kw.get("temporal_api_key_file"):
        flags["temporal.api_key"] = (read_key_file(kw["temporal_api_key_file"], "--temporal-api-key-file"),
                                     f"--temporal-api-key-file {kw['temporal_api_key_file']}")
    return flags


class _Scrubbed(logging.Filter):
    """Takes the server's secrets out of every log line (a driver's error may quote the database URL)."""

    def __init__(self, secrets: list[str], database_url: str | None) -> None:
        super().__init__()
        self.secrets, self.database_url = [s for s in secrets if s], database_url

    def filter(self, record: logging.LogRecord) -> bool:
        from ..config.masking import scrub

        text = record.getMessage()
        clean = scrub(text, self.database_url)
        for secret in self.secrets:
            clean = clean.replace(secret, "***")
        if clean != text:
            record.msg, record.args = clean, None
        return True


def _setup_logging(level: str, cfg: Any) -> None:
    """Plain lines on stderr, one per request (uvicorn's access log: the client address, after a trusted proxy's
    X-Forwarded-For), never a secret."""
    from ..worker.main import forward_core_logs

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s server %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_Scrubbed([cfg.value("temporal.api_key") or ""], cfg.value("server.database_url") or None))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for noisy in ("httpx", "httpcore", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    forward_core_logs()


def _exit(code: int) -> None:
    """Leave without interpreter finalisation: the Temporal SDK can abort there after a clean stop (sdk-python#300)."""
    from .._telemetry import shutdown

    shutdown()  # spans still batched: os._exit skips every exit hook
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@click.group("server", invoke_without_command=True, epilog=EPILOG)
@click.option("--host", default=None, help="Address to bind (server.host; default 127.0.0.1). Any non-loopback "
              "address needs --tls-cert/--tls-key or --behind-proxy.")
@click.option("--port", type=int, default=None, help="Port (server.port; default 7780).")
@click.option("--database-url", metavar="URL", default=None,
              help="postgresql://USER@HOST:5432/DB, shared by every replica, or sqlite:///ABSOLUTE/PATH (one replica "
                   "only). Default: $STIGMER_HOME/data/stigmer.db. A URL with a password is refused here: give it in "
                   "STIGMER_DATABASE_URL or the config file (server.database_url). Shown with the password masked.")
@click.option("--tls-cert", metavar="FILE", default=None, help="Serve HTTPS with this PEM certificate (chain) file "
              "(server.tls.cert, env STIGMER_SERVER_TLS_CERT).")
@click.option("--tls-key", metavar="FILE", default=None,
              help="The certificate's PEM private key file (server.tls.key, env STIGMER_SERVER_TLS_KEY).")
@click.option("--behind-proxy", is_flag=True, default=False,
              help="A reverse proxy in front terminates TLS: allows a non-loopback --host without --tls-cert, and "
                   "honours X-Forwarded-For/-Proto from --trusted-proxy addresses only (server.behind_proxy).")
@click.option("--trusted-proxy", multiple=True, metavar="ADDRESS|CIDR",
              help="A proxy whose forwarded headers count, repeatable (server.trusted_proxies; default loopback).")
@click.option("--temporal-address", default=None, help="host:port of the Temporal frontend (TEMPORAL_ADDRESS).")
@click.option("--temporal-namespace", default=None, help="Temporal namespace (TEMPORAL_NAMESPACE; default 'default').")
@click.option("--temporal-tls", is_flag=True, default=False, help="Connect to Temporal over TLS (TEMPORAL_TLS).")
@click.option("--temporal-tls-cert", metavar="FILE", default=None, help="Client certificate for Temporal mTLS.")
@click.option("--temporal-tls-key", metavar="FILE", default=None, help="Client key for Temporal mTLS.")
@click.option("--temporal-tls-ca", metavar="FILE", default=None, help="CA certificate of the Temporal server.")
@click.option("--temporal-tls-server-name", default=None, help="TLS server name of the Temporal server.")
@click.option("--temporal-api-key-file", metavar="FILE", default=None,
              help="Read the Temporal Cloud API key from FILE (else TEMPORAL_API_KEY or temporal.api_key; never a "
                   "flag of its own).")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="Log one line per request (client address, method, path, status).")
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]),
              show_default=True, help="Log verbosity (logs go to stderr).")
@click.pass_context
def server(ctx: click.Context, **kwargs: Any) -> None:
    """Serve the API alone, for a team: no local Temporal, LLM or runners.

    Run as many replicas as you like behind a load balancer: they share one database (--database-url), a
    Temporal cluster elsewhere (--temporal-address) and runners on any machine (`stigmer runner --server URL
    --token-file FILE`). There is no run/token file: every caller brings a named token from the database, the
    first admin's from `stigmer server init`, the others' from `stigmer token create`. Stops cleanly (exit 0)
    on SIGTERM or Ctrl-C.
    """
    if ctx.invoked_subcommand is not None:
        given = [name for name, value in kwargs.items()
                 if value not in (None, False, ()) and name not in ("access_log", "log_level")]
        if given:
            raise click.UsageError(f"--{given[0].replace('_', '-')} is an option of `stigmer server` itself; "
                                   f"give `{ctx.invoked_subcommand}` its own options after its name")
        return
    from .._hardening import make_undumpable

    make_undumpable()  # the database password and the Temporal key live in this process: closed to its neighbours
    access_log, log_level = kwargs.pop("access_log"), kwargs.pop("log_level")
    cfg = load_config(_serve_flags(kwargs))
    from ..daemon.server import server_settings

    settings = server_settings(cfg)  # every check that needs no import of the API, before anything binds
    _setup_logging(log_level, cfg)
    try:
        from ..daemon.server import run

        code = run(cfg, settings, access_log=access_log)
    except StigmerError as exc:  # as cli.main prints it, but without interpreter finalisation
        click.echo(f"error: {exc}", err=True)
        _exit(exc.exit_code)
    _exit(code)


@server.command("init")
@click.option("--database-url", metavar="URL", default=None,
              help="The database to prepare (as for `stigmer server`; a URL with a password only through "
                   "STIGMER_DATABASE_URL or the config file).")
@click.option("--name", default="admin", show_default=True, help="The admin token's name (`stigmer token list`).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A new file (mode 0600) the admin token is written to; it is never printed.")
def init(database_url: str | None, name: str, out: Path) -> None:
    """Prepare the database (create or migrate its schema) and make its first admin token.

    Refused when the database has an active admin token already: admins make more tokens with `stigmer token
    create`. Run it once, from anywhere that reaches the database, before the first replica.
    """
    flags: dict[str, tuple[Any, str]] = {}
    _database_url(database_url, flags)
    cfg = load_config(flags, quiet=True)
    if out.exists():
        raise ConfigError(f"--out {out} exists already: nothing was created", hint="name a new file")
    from ..daemon.server import Database, init_admin

    database = Database.of(cfg)
    record = init_admin(database, name, out)
    click.echo(f"database {database.shown} is ready; admin token {record['name']!r} written to {out} (0600)\n"
               f"  use it: stigmer --server URL --token-file {out} token create --role viewer --name NAME --out FILE",
               err=True)
