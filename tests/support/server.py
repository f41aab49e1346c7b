"""Run ``stigmer server`` as a deployment would: a real subprocess on a free loopback port, stderr to a file.

Readiness is ``GET /v1/health`` answering (never a sleep); ``stop()`` sends SIGTERM and returns the exit code.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.ports import free_port


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    scheme: str = "http"
    ca_file: Path | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def client(self, token: str | None = None) -> httpx.Client:
        verify: Any = ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else True
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, verify=verify, timeout=30)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with self.client() as http:
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"stigmer server exited {self.process.returncode}: {self.output()}")
                try:
                    if http.get("/v1/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"stigmer server not ready after {timeout}s: {self.output()}")
                time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
                raise AssertionError(f"stigmer server ignored signal {sig}: {self.output()}") from None
        return int(self.process.returncode)


def start_server(log_dir: Path, *args: str, env: dict[str, str] | None = None, port: int | None = None,
                 ca_file: Path | None = None, ready: bool = True) -> ServerProcess:
    """``stigmer server --port PORT ARGS`` with the test's environment plus ``env``; waits for readiness."""
    port = port or free_port()
    log = log_dir / f"server-{port}.log"
    full_env = {**os.environ, **(env or {})}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "stigmer", "server", "--port", str(port), *args],
                                env=full_env, stdout=out, stderr=subprocess.STDOUT)
    server = ServerProcess(proc, port, log, "https" if ca_file else "http", ca_file)
    if ready:
        try:
            server.wait_ready()
        except BaseException:
            server.stop(signal.SIGKILL)
            raise
    return server
