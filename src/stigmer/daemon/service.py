"""The one small interface every supervised service implements: launch, ready, poll, stop.

A :class:`Service` knows how to start its program (``command()``), how to tell that it is
really serving (``ready()``: a port answering, a health endpoint, a poller on a task queue,
never a timer), and how long it may take to stop. Process handling is shared here: each child
runs in its own session (so its whole process group can be signalled, and a Ctrl-C in the
terminal that started stigmer does not reach it), its output goes to ``logs/<name>.log``, and
stopping is SIGTERM to the group, then SIGKILL after ``stop_timeout_s``, tolerating a child
that has already exited (jupyter_client's provisioner, honcho's manager).

A service with ``managed = False`` (a Temporal cluster or an Ollama the user runs) is only
health-checked: it is never launched and never stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from . import logs

# Variables holding secrets: only runners need them; servers we start (Temporal, llama.cpp,
# Ollama) get an environment without them.
SECRET_VARS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "STIGMER_LLM_API_KEY", "TEMPORAL_API_KEY",
               "STIGMER_SERVER_TOKEN")


def server_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a server child: the daemon's, without any secret."""
    env = dict(os.environ if base is None else base)
    for name in SECRET_VARS:
        env.pop(name, None)
    return env


class Service:
    """A supervised program. Subclass per service (temporal.py, ollama.py, embedded.py, runner.py).

    Attributes:
        name: the component name in status and the log file name (``logs/<name>.log``).
        managed: False when the service runs elsewhere and is only health-checked.
        address: where it serves (host:port or URL), shown in status and the banner.
        detail: a short human note about what it is doing (``pulling qwen2.5 41%``), shown by the spinner.
        ready_timeout_s: how long a launch may take to pass ``ready()``.
        stop_timeout_s: how long SIGTERM may take before SIGKILL.
        needs: names of the services that must be ready before this one launches.
    """

    name = "service"
    needs: tuple[str, ...] = ()
    ready_timeout_s = 30.0
    stop_timeout_s = 5.0

    def __init__(self) -> None:
        self.managed = True
        self.address: str | None = None
        self.detail = ""
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    async def prepare(self) -> None:
        """Run once before the first launch: check ports, fetch a model, decide managed or external.

        Raise :class:`~stigmer.errors.StigmerError` with a message that says what to do.
        """

    def command(self) -> tuple[list[str], dict[str, str]]:
        """The argv and full environment of the child. Secrets only in the environment, never argv."""
        raise NotImplementedError

    async def ready(self) -> bool:
        """One real readiness probe; True when the service answers."""
        raise NotImplementedError

    def unready_message(self) -> tuple[str, str] | None:
        """A (message, hint) pair for "never became ready", when the service can say better than a timeout."""
        return None

    async def after_ready(self) -> None:
        """Run once after the first successful probe (e.g. pull a missing model). Raise StigmerError to fail."""

    def launch(self, log_dir: Path) -> int:
        """Start the child in its own session, output appended to its (rotated) log; return its pid."""
        argv, env = self.command()
        self.log_path = log_dir / f"{self.name}.log"
        logs.rotate(self.log_path)
        with open(self.log_path, "ab") as out:
            out.write(f"--- stigmer: starting {self.name} at {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
            out.flush()
            self.process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        return self.process.pid

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def poll(self) -> int | None:
        """The child's exit code, or None while it runs (always None for an unmanaged service)."""
        return self.process.poll() if self.process is not None else None

    async def stop(self) -> None:
        """SIGTERM the child's process group, SIGKILL it after ``stop_timeout_s``; fine if already gone."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            signal_group(proc.pid, signal.SIGTERM)
            if not await wait_exit(proc, self.stop_timeout_s):
                signal_group(proc.pid, signal.SIGKILL)
                await wait_exit(proc, 5.0)
        # The leader may be gone while members of its group linger (a shell's children).
        signal_group(proc.pid, signal.SIGKILL)


def signal_group(pid: int, sig: int) -> None:
    """Signal a child's whole process group; a group that no longer exists is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait (without blocking the loop) until ``proc`` exits; False on timeout."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def port_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port`` (we could bind it)."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


async def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when ``host:port`` accepts a TCP connection."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (TimeoutError, OSError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when ``GET url`` answers 2xx."""
    import httpx

    try:
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            response = await client.get(url)
    except httpx.HTTPError:
        return False
    return 200 <= response.status_code < 300
