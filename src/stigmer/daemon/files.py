"""The daemon's files under ``$STIGMER_HOME/run/``: lock, PID, tokens, state and the children ledger.

The lock (``daemon.lock``, an ``flock`` held for the daemon's whole life) is the truth about
whether a daemon runs: the kernel drops it when the process dies, even on ``kill -9``, so a
PID file left behind by a crash is recognised as stale and removed instead of trusted.
``children.json`` lists the supervised children (pid + start time) so that a daemon killed
with ``kill -9`` does not leave a llama.cpp server or a runner behind for ever: the next
``start`` or ``stop`` finds them and ends them. Delete only files we wrote.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._fs import write_atomic

PID_FILE = "daemon.pid"
LOCK_FILE = "daemon.lock"
TOKEN_FILE = "token"
RUNNER_TOKEN_FILE = "runner-token"
STATE_FILE = "state.json"
CHILDREN_FILE = "children.json"


@dataclass(frozen=True)
class DaemonState:
    """What ``run/state.json`` holds: how clients find a running daemon (see docs/ARCHITECTURE.md)."""

    pid: int
    host: str
    port: int
    started_at: float
    config_fingerprint: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class DaemonLock:
    """An exclusive ``flock`` on ``run/daemon.lock``; held while the daemon lives."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another live daemon holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def daemon_alive(run_dir: Path) -> bool:
    """True when a daemon holds the lock (the kernel's view, immune to stale PID files)."""
    lock = DaemonLock(run_dir)
    if lock.acquire():
        lock.release()
        return False
    return True


def read_pid(run_dir: Path) -> int | None:
    try:
        return int((run_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def write_pid(run_dir: Path) -> None:
    write_atomic(run_dir / PID_FILE, f"{os.getpid()}\n")


def new_token(run_dir: Path, name: str = TOKEN_FILE) -> str:
    """Create a fresh API token in ``run/<name>`` (the admin's ``token`` by default), owner-only (0600)."""
    token = secrets.token_urlsafe(32)
    write_atomic(run_dir / name, token + "\n", mode=0o600)
    return token


def new_runner_token(run_dir: Path) -> str:
    """The runners' token (role ``runner``: post events, nothing else), in ``run/runner-token`` (0600).

    The daemon hands it to its runner children; the file lets a runner started by hand next to the
    daemon (``STIGMER_SERVER_TOKEN=$(cat run/runner-token) stigmer runner``) post events without the
    admin token.
    """
    return new_token(run_dir, RUNNER_TOKEN_FILE)


def read_token(run_dir: Path) -> str | None:
    try:
        return (run_dir / TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None


def write_state(run_dir: Path, state: DaemonState) -> None:
    data = {"pid": state.pid, "host": state.host, "port": state.port, "started_at": state.started_at,
            "config_fingerprint": state.config_fingerprint}
    write_atomic(run_dir / STATE_FILE, json.dumps(data) + "\n")


def read_state(run_dir: Path) -> DaemonState | None:
    """The state of the running daemon, or None when it is down (or the file is stale)."""
    try:
        data = json.loads((run_dir / STATE_FILE).read_text())
        state = DaemonState(int(data["pid"]), str(data["host"]), int(data["port"]), float(data["started_at"]),
                            str(data["config_fingerprint"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if daemon_alive(run_dir) else None


def remove_run_files(run_dir: Path, *, token: bool = True) -> None:
    """Remove the files a daemon writes (never the lock file itself: another start may hold it)."""
    names = [PID_FILE, STATE_FILE, CHILDREN_FILE] + ([TOKEN_FILE, RUNNER_TOKEN_FILE] if token else [])
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            (run_dir / name).unlink()


def clean_stale(run_dir: Path) -> bool:
    """Remove a crashed daemon's files and end the children it left; True when anything was stale."""
    if daemon_alive(run_dir):
        return False
    stale = any((run_dir / n).exists() for n in (PID_FILE, STATE_FILE, CHILDREN_FILE))
    killed = reap_orphans(run_dir)
    remove_run_files(run_dir)
    return stale or bool(killed)


def _create_time(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


def record_children(run_dir: Path, children: list[dict[str, Any]]) -> None:
    """Write the ledger of live children: ``[{name, pid, create_time}]``."""
    write_atomic(run_dir / CHILDREN_FILE, json.dumps(children) + "\n")


def child_entry(name: str, pid: int) -> dict[str, Any]:
    return {"name": name, "pid": pid, "create_time": _create_time(pid)}


def reap_orphans(run_dir: Path, wait_s: float = 5.0) -> list[int]:
    """End the process groups of children a dead daemon left; a reused PID is left alone.

    A PID counts as ours only when its start time matches the ledger, so a stranger that
    happens to get a recycled PID is never signalled.
    """
    try:
        entries = json.loads((run_dir / CHILDREN_FILE).read_text())
    except (OSError, ValueError):
        return []
    ours = [int(e["pid"]) for e in entries if isinstance(e, dict) and e.get("pid") and
            e.get("create_time") is not None and _create_time(int(e["pid"])) == e["create_time"]]
    for pid in ours:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while any(_exists(p) for p in ours) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in ours:
        _signal_group(pid, signal.SIGKILL)
    return ours


def _exists(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


FAILURE_FILE = "startup-error.json"


def write_failure(run_dir: Path, failure: dict[str, Any]) -> None:
    """Leave why startup failed (component, message, hint, log tail) for the `start` that waits on us."""
    write_atomic(run_dir / FAILURE_FILE, json.dumps(failure) + "\n")


def read_failure(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run_dir / FAILURE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def clear_failure(run_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (run_dir / FAILURE_FILE).unlink()
