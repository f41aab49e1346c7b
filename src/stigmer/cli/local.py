"""``stigmer local``: start, stop, status, restart and logs of the local stack.

``start`` resolves the configuration once and hands it to the daemon through the environment
only (``cfg.to_env()``), never argv. It is idempotent (a daemon with the same configuration is
reported, a different one is left alone with advice to restart) and cleans up after a daemon
that crashed. ``stop``, ``status`` and ``logs`` never resolve the configuration: they must work
when the configuration is broken, which is exactly when people reach for them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from ..errors import RuntimeFailure, UserError
from ._options import config_flags, flags_from, load_config

START_TIMEOUT_S = 600.0  # the first embedded start assembles and loads a model; Ollama may pull one
STOP_TIMEOUT_S = 60.0
NOT_RUNNING_EXIT = 3  # like LSB `status`: the service is not running


def _home() -> Path:
    from ..config.resolve import default_home

    return default_home(os.environ)


def _run_dir(home: Path | None = None) -> Path:
    return (home or _home()) / "run"


@click.group(invoke_without_command=True)
@click.pass_context
def local(ctx: click.Context) -> None:
    """Start, stop and inspect the local stack: daemon, Temporal, the LLM server, runners.

    \b
    Plain `stigmer local` is `stigmer local start`.
    Examples:
      stigmer local start                          # zero config
      ANTHROPIC_API_KEY=... stigmer local start    # Anthropic
      stigmer local start --llm-provider ollama --llm-model llama3.2
      stigmer local start --temporal-address my-cluster:7233
      stigmer local status
      stigmer local logs -f runner-1
      stigmer local stop
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(start)


def _start_options(func: Any) -> Any:
    options = [
        click.option("--workers", type=int, default=None, help="Runner processes to start (default: runner.workers)."),
        click.option("--port", type=int, default=None, help="Port of the API on 127.0.0.1 (default: server.port)."),
        click.option("--temporal-port", type=int, default=None, help="Port of the managed Temporal dev server."),
        click.option("--temporal-ui-port", type=int, default=None, help="Port of the managed Temporal web UI."),
        click.option("--no-pull", is_flag=True, help="Do not pull a missing Ollama model; fail instead."),
        click.option("--foreground", is_flag=True, help="Run the daemon in this terminal (logs on stderr)."),
    ]
    for option in reversed(options):
        func = option(func)
    return config_flags(func)


_EXTRA_FLAGS = (("workers", "runner.workers", "--workers"), ("port", "server.port", "--port"),
                ("temporal_port", "temporal.port", "--temporal-port"),
                ("temporal_ui_port", "temporal.ui_port", "--temporal-ui-port"))


def _resolve(kwargs: dict[str, Any]) -> Any:
    flags = flags_from(kwargs)
    for name, key, flag in _EXTRA_FLAGS:
        if kwargs.get(name) is not None:
            flags[key] = (kwargs[name], flag)
    cfg = load_config(flags)
    cfg.require_provider()
    return cfg


@local.command()
@_start_options
def start(no_pull: bool, foreground: bool, **kwargs: Any) -> None:
    """Start the daemon in the background and wait until every component is ready.

    \b
    Examples:
      stigmer local start
      stigmer local start --workers 2 --port 7790
      stigmer local start --llm-provider ollama --llm-model llama3.2 --no-pull
    """
    cfg = _resolve(kwargs)
    _start(cfg, no_pull=no_pull, foreground=foreground)


def _start(cfg: Any, *, no_pull: bool, foreground: bool) -> None:
    from ..daemon import files
    from ..daemon.main import fingerprint

    run_dir = cfg.path("run")
    _check_home(cfg)
    state = files.read_state(run_dir)
    if state is not None or files.daemon_alive(run_dir):
        _already_running(cfg, state, fingerprint(cfg))
        return
    if files.clean_stale(run_dir):
        click.echo("note: cleaned up after a stigmer daemon that did not stop cleanly", err=True)
    files.clear_failure(run_dir)
    if foreground:
        _foreground(cfg, no_pull)
        return
    proc = _launch(cfg, no_pull)
    status = _wait_ready(cfg, proc)
    from ._local_ui import banner

    click.echo(banner(cfg, status, proc.pid))


MIN_FREE_MB = 64
"""Below this, the Temporal database, the store and the logs cannot be trusted to fit: refuse to start."""


def _check_home(cfg: Any) -> None:
    """Fail before starting anything when STIGMER_HOME cannot be written (read-only, full disk).

    A probe file is written, synced and removed in the home; on failure it is removed too, so a
    refused start leaves the home exactly as it was.
    """
    import errno
    import shutil

    home = cfg.home
    probe = home / f".write-probe-{os.getpid()}"
    try:
        home.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as handle:
            handle.write(b"\0" * 65536)
            handle.flush()
            os.fsync(handle.fileno())
        free_mb = shutil.disk_usage(home).free / 2**20
    except OSError as exc:
        reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise RuntimeFailure(f"cannot write to STIGMER_HOME ({home}): {reason}; nothing was started",
                             hint="free disk space or fix the permissions, or point STIGMER_HOME at a "
                                  "writable directory") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    if free_mb < MIN_FREE_MB:
        raise RuntimeFailure(f"only {free_mb:.0f} MB free on the disk holding STIGMER_HOME ({home}); stigmer needs "
                             f"at least {MIN_FREE_MB} MB for Temporal's database, its store and logs",
                             hint="free disk space, or point STIGMER_HOME at a larger disk")


def _already_running(cfg: Any, state: Any, wanted: str) -> None:
    from ._local_ui import banner

    if state is None:
        raise RuntimeFailure("a stigmer daemon is starting or stopping for this STIGMER_HOME",
                             hint="wait a moment, then `stigmer local status`")
    if state.config_fingerprint != wanted:
        raise UserError(f"stigmer is already running (pid {state.pid}) with a different configuration",
                        hint="apply the new one with `stigmer local restart` and the same flags, "
                             "or keep the running one: `stigmer local status`")
    click.echo(banner(cfg, _status(cfg.home), state.pid, already=True))


def _launch(cfg: Any, no_pull: bool) -> subprocess.Popen[bytes]:
    """Start ``python -m stigmer.daemon.main`` in its own session; settings only in its environment."""
    from ..config import envvars as ev
    from ..daemon.main import origins_env

    env = dict(os.environ)
    env.update(cfg.to_env())
    env[ev.CONFIG_ORIGINS] = origins_env(cfg)
    if no_pull:
        env[ev.DAEMON_NO_PULL] = "1"
    from ..daemon.logs import rotate

    log_dir = cfg.path("logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    rotate(log_dir / "daemon.out")
    with open(log_dir / "daemon.out", "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "stigmer.daemon.main"], env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)


def _wait_ready(cfg: Any, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Poll the daemon's /v1/health and /v1/status until every component is ready, naming each step."""
    from ..daemon import files
    from ._local_ui import Spinner, step_text

    spinner, began = Spinner(), time.monotonic()
    try:
        while time.monotonic() - began < START_TIMEOUT_S:
            if proc.poll() is not None:
                spinner.done()
                _report_failure(cfg)
            status = _probe(cfg.home) if files.read_state(cfg.path("run")) else None
            comps = (status or {}).get("components", [])
            if comps and all(c.get("state") == "ready" for c in comps):
                spinner.done()
                return status or {}
            spinner.update(step_text(comps) if comps else "starting the daemon")
            time.sleep(0.1)
    except KeyboardInterrupt:
        spinner.done()
        click.echo("interrupted: stopping the half-started daemon", err=True)
        _stop(cfg.home)
        raise SystemExit(130) from None
    spinner.done()
    raise RuntimeFailure(f"stigmer did not become ready in {START_TIMEOUT_S:g}s (still: {spinner.last})",
                         hint="see `stigmer local logs` and `stigmer local status`; stop it with `stigmer local stop`")


def _probe(home: Path) -> dict[str, Any] | None:
    """/v1/health then /v1/status, or None while the API is not answering yet."""
    from ..errors import StigmerError
    from ._client import Client

    try:
        with Client.connect(home) as client:
            client.get("/v1/health")
            status: dict[str, Any] = client.get("/v1/status")
            return status
    except StigmerError:
        return None


def _report_failure(cfg: Any) -> None:
    from ..daemon import files
    from ..daemon.logs import tail
    from ._local_ui import failure_text

    failure = files.read_failure(cfg.path("run")) or {"component": "daemon", "message": "exited while starting"}
    component = str(failure.get("component") or "daemon")
    log_lines = tail(cfg.path("logs") / f"{component}.log", 15) or tail(cfg.path("logs") / "daemon.out", 15)
    hint = failure.get("hint") or f"see the whole log with `stigmer local logs {component}`"
    raise RuntimeFailure(failure_text(failure, log_lines), hint=hint)


def _foreground(cfg: Any, no_pull: bool) -> None:
    from ..daemon.main import run
    from ._local_ui import banner

    def ready(daemon: Any) -> None:
        click.echo(banner(cfg, {"components": daemon.components()}, os.getpid()), err=True)

    code = run(cfg, pull=not no_pull, echo_logs=True, on_ready=ready)
    if code:
        from ..daemon import files

        failure = files.read_failure(cfg.path("run"))
        if failure:
            from ._local_ui import failure_text

            raise RuntimeFailure(failure_text(failure, []), hint=failure.get("hint"))
    click.echo("stigmer stopped", err=True)
    # Leave without interpreter finalisation: the Temporal SDK can abort there after a clean stop (sdk-python#300).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _status(home: Path) -> dict[str, Any]:
    from ._client import Client

    with Client.connect(home) as client:
        status: dict[str, Any] = client.get("/v1/status")
        return status


@local.command()
def stop() -> None:
    """Stop the daemon and everything it started: runners, LLM server, Temporal, then the API.

    Works without a valid configuration; also ends processes left by a daemon that crashed.
    """
    _stop(_home())


def _stop(home: Path) -> None:
    from ..daemon import files

    run_dir = _run_dir(home)
    if not files.daemon_alive(run_dir):
        cleaned = files.clean_stale(run_dir)
        click.echo("stigmer is not running" + (" (cleaned up after a daemon that crashed)" if cleaned else ""))
        return
    pid = _daemon_pid(run_dir)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_down(run_dir, STOP_TIMEOUT_S):
        click.echo(f"the daemon (pid {pid}) did not stop in {STOP_TIMEOUT_S:g}s: killing it", err=True)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        _wait_down(run_dir, 10)
        files.clean_stale(run_dir)
    click.echo("stigmer stopped")


def _daemon_pid(run_dir: Path) -> int:
    from ..daemon import files

    deadline = time.monotonic() + 5
    while (pid := files.read_pid(run_dir)) is None:  # a daemon between taking the lock and writing its pid
        if time.monotonic() > deadline:
            raise RuntimeFailure("a stigmer daemon holds the lock but wrote no PID file",
                                 hint=f"find it with `fuser {run_dir / files.LOCK_FILE}` and stop it")
        time.sleep(0.05)
    return pid


def _wait_down(run_dir: Path, timeout: float) -> bool:
    from ..daemon import files

    deadline = time.monotonic() + timeout
    while files.daemon_alive(run_dir):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@local.command()
@_start_options
def restart(no_pull: bool, foreground: bool, **kwargs: Any) -> None:
    """Stop the daemon (if running) and start it again, with this command's configuration."""
    cfg = _resolve(kwargs)
    _stop(cfg.home)
    _start(cfg, no_pull=no_pull, foreground=foreground)


@local.command()
@click.option("--json", "as_json", is_flag=True, help="Print the daemon's status as JSON.")
def status(as_json: bool) -> None:
    """Each component (state, pid, address, uptime, restarts) and the active LLM and its source.

    Exits 3 when stigmer is not running.
    """
    import json

    from ..errors import DaemonNotRunning
    from ._local_ui import show_status

    try:
        data = _status(_home())
    except DaemonNotRunning:
        if as_json:
            click.echo(json.dumps({"running": False}))
        else:
            click.echo("stigmer is not running\n  → start it with `stigmer local start`", err=True)
        sys.exit(NOT_RUNNING_EXIT)
    if as_json:
        click.echo(json.dumps({"running": True, **data}, indent=2))
    else:
        show_status(data)


@local.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines as they are written (Ctrl-C to stop).")
@click.option("-n", "--lines", "count", type=int, default=40, show_default=True, help="Lines to show from the end.")
@click.argument("component", required=False)
def logs(follow: bool, count: int, component: str | None) -> None:
    """Show the logs: the daemon's and each component's (temporal, llamacpp, ollama, runner-N).

    \b
    Examples:
      stigmer local logs
      stigmer local logs -f runner-1
      stigmer local logs -n 100 temporal
    """
    from ._local_logs import show_logs

    show_logs(_home() / "logs", component, count, follow)
