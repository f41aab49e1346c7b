"""What ``stigmer local`` shows: the spinner while starting, the banner, the status table (drawn by ``_term``).

The banner answers the first-run question "what is running, and why that?": the provider and
model with the source of each choice (flag, variable, file, or what was detected), the Temporal
address and web UI, the API, and where data and logs live.
"""

from __future__ import annotations

import time
from typing import Any

import click

from ._term import Spinner, table

__all__ = ["Spinner", "banner", "elapsed", "failure_text", "show_status", "step_text"]


def step_text(components: list[dict[str, Any]]) -> str:
    """The step the daemon is on: the first component not ready yet, and what it is doing."""
    for comp in components:
        if comp.get("state") != "ready":
            detail = comp.get("detail") or comp.get("state")
            return f"{comp['name']}: {detail}"
    return "finishing"


def _why(item: dict[str, Any]) -> str:
    source, origin = item.get("source", ""), item.get("origin", "")
    if source == "flag":
        return f"from the flag {origin}"
    if source == "env":
        return f"from the environment variable {origin}"
    if source == "file":
        return f"from the config file {origin}"
    if source == "detected":
        return f"detected: {origin}"
    return f"default ({origin})"


def banner(cfg: Any, status: dict[str, Any], pid: int | None, *, already: bool = False) -> str:
    """The ready banner, built from the CLI's own resolution (sources) and the daemon's status (addresses)."""
    shown = cfg.shown()
    provider, model = shown["llm.provider"], shown["llm.model"]
    comps = {c["name"]: c for c in status.get("components", [])}
    lines = [click.style("stigmer is " + ("already running" if already else "running"), bold=True)
             + (f" (daemon pid {pid})" if pid else "")]
    lines.append(f"  LLM       {provider['value']} · {model['value']}")
    lines.append(f"            provider {_why(provider)}")
    lines.append(f"            model {_why(model)}")
    if provider["value"] == "llamacpp":
        from ..providers.embedded import note

        lines.append(f"            note: {note(str(model['value']))}")
    llm = comps.get("llamacpp") or comps.get("ollama")
    if llm is not None:
        owner = "started by stigmer" if llm.get("managed") else "already running, not managed by stigmer"
        lines.append(f"            server {llm.get('address')} ({owner})")
    lines += _temporal_lines(cfg, comps.get("temporal"))
    api = comps.get("api", {})
    lines.append(f"  API       {api.get('address', '?')}  (token in {cfg.path('run') / 'token'})")
    runners = [c for c in comps.values() if c["name"].startswith("runner-")]
    lines.append(f"  Runners   {len(runners)} on task queue {cfg.value('runner.task_queue')}")
    lines.append(f"  Data      {cfg.path('data')}")
    lines.append(f"  Logs      {cfg.path('logs')}   (stigmer local logs -f)")
    lines.append("Next: stigmer apply -f examples/agents/hello.yaml && stigmer run hello \"Say hello\"")
    return "\n".join(lines)


def _temporal_lines(cfg: Any, comp: dict[str, Any] | None) -> list[str]:
    t = cfg.temporal
    if t.managed:
        return [f"  Temporal  {t.address} (managed dev server, data in {cfg.path('temporal')})",
                f"            web UI http://127.0.0.1:{t.ui_port}"]
    origin = cfg.items["temporal.address"].origin
    return [f"  Temporal  {t.address} (external, from {origin}; namespace {t.namespace}; stigmer starts none)"]


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def show_status(status: dict[str, Any]) -> None:
    """``stigmer local status``: one row per component, then the active LLM and its source."""
    rows: list[list[str]] = []
    notes: list[str] = []
    for comp in status.get("components", []):
        pid = str(comp.get("pid") or ("external" if comp.get("managed") is False else "-"))
        rows.append([comp["name"], comp.get("state", "?"), pid, str(comp.get("address") or "-"),
                     _uptime(comp.get("uptime_s")), str(comp.get("restarts", 0))])
        if comp.get("last_error"):
            notes.append(f"  {comp['name']}: {comp['last_error']}")
    table(["COMPONENT", "STATE", "PID", "ADDRESS", "UPTIME", "RESTARTS"], rows, right=(5,), styles={0: "bold"})
    llm = status.get("llm") or {}
    if llm:
        provider, model = llm.get("provider", {}), llm.get("model", {})
        click.echo(f"\nLLM: {provider.get('value')} · {model.get('value')}  ({_why(provider)})")
    if notes:
        click.echo("\n".join(["\nErrors:", *notes]))


def failure_text(failure: dict[str, Any], log_lines: list[str]) -> str:
    """What a failed start prints: the failing component, why, its last log lines."""
    text = f"could not start stigmer: {failure.get('component')}: {failure.get('message')}"
    tail = failure.get("log_tail") or log_lines
    if tail:
        text += "\n  last log lines:\n" + "\n".join(f"    {line}" for line in tail[-15:])
    return text


def elapsed(since: float) -> str:
    return f"{time.monotonic() - since:.1f}s"
