"""``stigmer local logs``: the last lines of one component's log, or of all of them, optionally followed."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..errors import UserError


def available(log_dir: Path) -> list[str]:
    """Component names that have a log: ``daemon``, ``temporal``, ``llamacpp``, ``runner-1``, ..."""
    if not log_dir.is_dir():
        return []
    return sorted(p.stem for p in log_dir.glob("*.log"))


def _choose(log_dir: Path, component: str | None) -> list[Path]:
    names = available(log_dir)
    if not names:
        raise UserError(f"no logs yet in {log_dir}", hint="start stigmer with `stigmer local start`")
    if component is None:
        return [log_dir / f"{name}.log" for name in names]
    if component not in names:
        from ..config._suggest import did_you_mean

        raise UserError(f"no log for component {component!r}{did_you_mean(component, names)}",
                        hint=f"choose one of: {', '.join(names)}")
    return [log_dir / f"{component}.log"]


def show_logs(log_dir: Path, component: str | None, count: int, follow: bool) -> None:
    """Print the last ``count`` lines of the chosen logs (prefixed by component when several), then follow."""
    from ..daemon.logs import tail

    paths = _choose(log_dir, component)
    prefix = len(paths) > 1
    for path in paths:
        for line in tail(path, count):
            click.echo(f"{path.stem:<10} | {line}" if prefix else line)
    if follow:
        try:
            _follow(paths, prefix)
        except KeyboardInterrupt:
            return


def _follow(paths: list[Path], prefix: bool) -> None:
    offsets = {p: (p.stat().st_size if p.exists() else 0) for p in paths}
    while True:
        for path in paths:
            offsets[path] = _print_new(path, offsets[path], prefix)
        time.sleep(0.25)


def _print_new(path: Path, offset: int, prefix: bool) -> int:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size < offset:  # rotated or truncated: start from the top of the new file
        offset = 0
    if size == offset:
        return offset
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    complete = data.rfind(b"\n") + 1
    for line in data[:complete].decode("utf-8", errors="replace").splitlines():
        click.echo(f"{path.stem:<10} | {line}" if prefix else line)
    return offset + complete
