"""Drive ``stigmer local`` as a person would: real subprocesses, free loopback ports, an isolated home.

``LocalStack`` holds the environment of one test's stack (scripted provider by default, so a
runner needs no model server) and always stops what it started, checking by PID that nothing is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from tests.support.ports import free_port
from tests.support.scripted_provider import PLUGIN, write_script

REPO = Path(__file__).resolve().parents[2]


def gone(pid: int) -> bool:
    """True when no live process has this PID (a zombie counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(condition: Any, timeout: float = 60.0, what: str = "condition") -> None:
    """Poll ``condition()`` until true (a real check each time), failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met after {timeout}s")
        time.sleep(0.1)


@dataclass
class LocalStack:
    """One test's ``stigmer local`` environment."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)
    seen_pids: set[int] = field(default_factory=set)

    @classmethod
    def scripted(cls, home: Path, steps: list[dict[str, Any]] | None = None, **extra: str) -> LocalStack:
        """A stack whose LLM is the scripted chat model, on free ports, 1 runner."""
        script = write_script(home / f"script-{uuid.uuid4().hex[:6]}.json", steps or [{"content": "Hello!"}])
        env = {"STIGMER_PLUGINS": PLUGIN, "STIGMER_LLM_PROVIDER": "scripted", "STIGMER_LLM_MODEL": script}
        env.update(extra)
        return cls.bare(home, **env)

    @classmethod
    def bare(cls, home: Path, **extra: str) -> LocalStack:
        """A stack on free ports with only ``extra`` set (zero-config tests)."""
        # src/ first: this checkout's code, even where the venv's editable install points at another checkout
        env = {"STIGMER_HOME": str(home), "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
               "STIGMER_SERVER_PORT": str(free_port()),
               "STIGMER_TEMPORAL_PORT": str(free_port()), "STIGMER_TEMPORAL_UI_PORT": str(free_port())}
        env.update(extra)
        return cls(home=home, env=env)

    @property
    def api_port(self) -> int:
        return int(self.env["STIGMER_SERVER_PORT"])

    def run(self, *args: str, timeout: float = 300, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """``stigmer ARGS`` in this stack's environment."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_")}
        env.update(self.env)
        return subprocess.run([sys.executable, "-m", "stigmer", *args], env=env, input=input, text=True,
                              capture_output=True, timeout=timeout, check=False)

    def start(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = self.run("local", "start", *args, timeout=timeout)
        if done.returncode == 0:
            self.remember()
        return done

    def status(self) -> dict[str, Any]:
        done = self.run("local", "status", "--json")
        data: dict[str, Any] = json.loads(done.stdout)
        return data

    def components(self) -> dict[str, dict[str, Any]]:
        return {c["name"]: c for c in self.status().get("components", [])}

    def remember(self) -> None:
        """Note every PID the daemon reports, to check later that none is left."""
        for comp in self.status().get("components", []):
            if comp.get("pid"):
                self.seen_pids.add(int(comp["pid"]))

    def daemon_pid(self) -> int:
        return int((self.home / "run" / "daemon.pid").read_text())

    def stop(self) -> subprocess.CompletedProcess[str]:
        return self.run("local", "stop", timeout=120)

    def leftovers(self) -> list[int]:
        return [pid for pid in self.seen_pids if not gone(pid)]

    def cleanup(self) -> None:
        """Stop the stack; kill anything of ours still alive (so a failing test does not leak processes)."""
        self.stop()
        for pid in self.leftovers():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
