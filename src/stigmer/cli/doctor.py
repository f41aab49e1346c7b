"""``stigmer doctor``: check each piece of the stack and say what to fix.

Checks, in order: the configuration is valid, a provider is chosen, its key is present (cloud
providers), the model is reachable and able to call tools, the daemon, Temporal, the ports the
stack needs, and disk space. Each check prints one line and, when it is not fine, what to do.
Nothing here contacts anything but what the configuration names.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError, StigmerError
from ._options import config_flags, flags_from, load_config

MIN_FREE_BYTES = 1 << 30  # the embedded model alone is ~260 MB; logs and Temporal's database grow
LOW_FREE_BYTES = 300 << 20
CLOUD_PROVIDERS = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
MARKS = {"ok": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "red"), "skip": ("-", "bright_black")}


@dataclass
class Check:
    """One line of the report: ``status`` is ok, warn, fail or skip; ``fix`` says what to do."""

    name: str
    status: str
    detail: str
    fix: str | None = None


def _error_check(name: str, exc: StigmerError, status: str = "fail") -> Check:
    return Check(name, status, exc.message, exc.hint)


def check_provider(cfg: Any) -> list[Check]:
    """Provider chosen (and why), key present, model reachable and able to call tools."""
    try:
        provider = cfg.require_provider()
    except ConfigError as exc:
        return [_error_check("provider", exc)]
    item = cfg.items["llm.provider"]
    checks = [Check("provider", "ok", f"{provider} (from {item.source}: {item.origin})")]
    if provider in CLOUD_PROVIDERS:
        var = CLOUD_PROVIDERS[provider]
        checks.append(Check("api key", "ok", f"{var} is set") if cfg.api_key_for(provider) else
                      Check("api key", "fail", f"no API key for {provider}", f"set {var} in the environment"))
    checks.append(_check_model(cfg, provider))
    return checks


def _check_model(cfg: Any, provider: str) -> Check:
    from ..providers.errors import ProviderError
    from ..providers.registry import preflight, resolve_model, tool_mode

    try:
        spec = resolve_model(cfg)
        caps = preflight(spec, cfg, needs_tools=True)
        mode = tool_mode(spec, cfg, caps)
    except ProviderError as exc:
        started_by_us = exc.kind == "unreachable" and provider in ("llamacpp", "ollama")
        status = "warn" if exc.kind == "no_tools" or started_by_us else "fail"
        check = _error_check("model", exc, status)
        if started_by_us:
            check.fix = f"{exc.hint}; `stigmer local start` starts it when it is installed"
        return check
    except StigmerError as exc:
        return _error_check("model", exc)
    context = f", context {caps.context_length}" if caps.context_length else ""
    if mode.mode == "none":
        return Check("model", "warn", f"{spec.id} answers; tool calls: none ({mode.why}){context}",
                     "agents with tools get none on this model; set llm.tool_calls to auto to let stigmer decide")
    return Check("model", "ok", f"{spec.id} answers; tool calls: {mode.mode} ({mode.why}){context}")


def check_daemon(cfg: Any) -> tuple[Check, bool]:
    """Is the daemon running and answering its health endpoint?"""
    from ..daemon.files import read_state

    state = read_state(cfg.path("run"))
    if state is None:
        return Check("daemon", "warn", "not running", "start it with `stigmer local start`"), False
    import httpx

    try:
        httpx.get(f"{state.url}/v1/health", timeout=3).raise_for_status()
    except httpx.HTTPError as exc:
        return Check("daemon", "fail", f"pid {state.pid} holds the lock but {state.url} does not answer ({exc})",
                     "restart it: `stigmer local restart`; see `stigmer local logs daemon`"), False
    return Check("daemon", "ok", f"running (pid {state.pid}) at {state.url}"), True


def check_temporal(cfg: Any, daemon_up: bool) -> Check:
    """Reachable when it should be: always for an external server, with the daemon for the managed one."""
    t = cfg.temporal
    if t.managed and not daemon_up:
        return Check("temporal", "skip", f"managed dev server on {t.address}, started by `stigmer local start`")
    import asyncio

    from ..worker.client import connect

    async def probe() -> None:
        await asyncio.wait_for(connect(cfg), 5)

    try:
        asyncio.run(probe())
    except StigmerError as exc:
        return _error_check("temporal", exc)
    except TimeoutError:
        return Check("temporal", "fail", f"{t.address} did not answer within 5s",
                     "check --temporal-address / TEMPORAL_ADDRESS and the network")
    where = "managed" if t.managed else "external"
    return Check("temporal", "ok", f"{where} server at {t.address}, namespace {t.namespace!r}")


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def check_ports(cfg: Any, daemon_up: bool) -> Check:
    """The ports ``stigmer local start`` will listen on must be free (when the daemon is not already on them)."""
    if daemon_up:
        return Check("ports", "skip", "in use by the running daemon")
    wanted = [("server.port", "--port / STIGMER_SERVER_PORT")]
    if cfg.temporal.managed:
        wanted += [("temporal.port", "--temporal-port / STIGMER_TEMPORAL_PORT"),
                   ("temporal.ui_port", "--temporal-ui-port / STIGMER_TEMPORAL_UI_PORT")]
    taken = [(key, how) for key, how in wanted if _port_taken(int(cfg.value(key)))]
    if not taken:
        return Check("ports", "ok", "free: " + ", ".join(f"{cfg.value(k)} ({k})" for k, _ in wanted))
    names = ", ".join(f"{cfg.value(k)} ({k})" for k, _ in taken)
    return Check("ports", "fail", f"in use by another program: {names}",
                 "stop that program, or choose other ports with " + "; ".join(how for _, how in taken))


def check_disk(home: Path) -> Check:
    probe = home
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    detail = f"{free / (1 << 30):.1f} GiB free under {home}"
    if free < LOW_FREE_BYTES:
        return Check("disk", "fail", detail, "free some space (models, logs and Temporal's database live there)")
    if free < MIN_FREE_BYTES:
        return Check("disk", "warn", detail, "less than 1 GiB: the embedded model and logs may not fit")
    return Check("disk", "ok", detail)


def run_checks(flags: dict[str, tuple[Any, str]]) -> list[Check]:
    """Every check; a configuration that does not load stops the ones that need it."""
    from ._client import home_dir

    try:
        cfg = load_config(flags, quiet=True)
    except ConfigError as exc:
        return [_error_check("config", exc), check_disk(home_dir())]
    checks = [Check("config", "ok", f"valid ({cfg.config_path if cfg.config_path.exists() else 'no config file'})")]
    checks += [Check("config", "warn", warning) for warning in cfg.warnings]
    checks += check_provider(cfg)
    daemon, up = check_daemon(cfg)
    checks += [daemon, check_temporal(cfg, up), check_ports(cfg, up), check_disk(cfg.home)]
    return checks


def _print(checks: list[Check]) -> None:
    from ._term import is_terminal

    if is_terminal():
        _draw(checks)
        return
    width = max(len(c.name) for c in checks)
    for check in checks:
        mark, color = MARKS[check.status]
        click.echo(f"{click.style(mark, fg=color)} {check.name:<{width}}  {check.detail}")
        if check.fix and check.status in ("warn", "fail"):
            click.echo(f"  {' ' * width}  → {check.fix}")


def _draw(checks: list[Check]) -> None:
    """At a terminal: a borderless Rich grid, the fix dimmed under the detail it belongs to."""
    from rich.table import Table
    from rich.text import Text

    from ._term import console

    grid = Table.grid(padding=(0, 2))
    for _ in range(3):
        grid.add_column()
    for check in checks:
        mark, color = MARKS[check.status]
        detail = Text(check.detail)
        if check.fix and check.status in ("warn", "fail"):
            detail.append(f"\n→ {check.fix}", style="dim")
        grid.add_row(Text(mark, style=color), Text(check.name, style="bold"), detail)
    console().print(grid)


@click.command()
@config_flags
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor(as_json: bool, **kwargs: Any) -> None:
    """Check every piece of the stack and say what to fix (exit 1 when something must be fixed).

    \b
    Examples:
      stigmer doctor
      stigmer doctor --llm-provider ollama --json
    """
    checks = run_checks(flags_from(kwargs))
    if as_json:
        click.echo(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        _print(checks)
    failed = [c.name for c in checks if c.status == "fail"]
    if not as_json:
        click.echo(f"\n{len(failed)} problem(s) to fix: {', '.join(failed)}" if failed else "\nall good")
    if failed:
        sys.exit(1)
