"""Log files under ``$STIGMER_HOME/logs/``: rotation and reading the last lines back.

Children write straight into ``logs/<component>.log`` (no pipe through the daemon, so a
child never blocks or dies on a full pipe if the daemon is gone); the file is rotated when a
child is launched. The daemon's own log uses a size-rotating handler.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
from pathlib import Path

MAX_BYTES = 5 * 1024 * 1024
BACKUPS = 3


def rotate(path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
    """Shift ``x.log`` to ``x.log.1`` (and so on) when it has grown past ``max_bytes``."""
    try:
        if path.stat().st_size < max_bytes:
            return
    except FileNotFoundError:
        return
    for index in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{index + 1}"))
    with contextlib.suppress(FileNotFoundError):
        path.replace(path.with_name(f"{path.name}.1"))


def tail(path: Path, lines: int = 20) -> list[str]:
    """The last ``lines`` lines of a log file (empty when it does not exist)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024 * max(1, lines // 200 + 1)))
            data = handle.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace").splitlines()
    return text[-lines:] if lines > 0 else []


def setup_daemon_logging(log_dir: Path, *, echo: bool = False) -> None:
    """Send the daemon's log records to ``logs/daemon.log`` (rotated), and to stderr in the foreground."""
    log_dir.mkdir(parents=True, exist_ok=True)
    handler: logging.Handler = logging.handlers.RotatingFileHandler(
        log_dir / "daemon.log", maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(fmt)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    if echo:
        stream = logging.StreamHandler()
        stream.setFormatter(fmt)
        root.addHandler(stream)
    root.setLevel(logging.INFO)
    for noisy in ("httpx", "httpcore", "temporalio", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
