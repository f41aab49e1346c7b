"""Zero config: ``stigmer local start`` with no flags picks the LLM the machine offers, and the banner says why.

The embedded case (no key, no Ollama) is the end-to-end test in ``test_e2e_local.py``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stigmer.config import DEFAULT_MODELS
from tests.support.local_daemon import LocalStack, gone
from tests.support.ollama_double import FakeModel, OllamaDouble, start_ollama_double
from tests.support.ports import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def ollama() -> Iterator[OllamaDouble]:
    double = start_ollama_double()
    yield double
    double.stop()


def _stack(home: Path, **env: str) -> LocalStack:
    # No runner: these tests are about the choice of LLM and the servers around it.
    return LocalStack.bare(home, STIGMER_RUNNER_WORKERS="0", **env)


def test_anthropic_key_present_picks_anthropic_and_says_why(stigmer_home: Path) -> None:
    stack = _stack(stigmer_home, ANTHROPIC_API_KEY="sk-ant-test-0000000000abcd")
    try:
        done = stack.start()
        assert done.returncode == 0, done.stderr
        assert f"anthropic · {DEFAULT_MODELS['anthropic']}" in done.stdout
        assert "provider detected: Anthropic key found (ANTHROPIC_API_KEY)" in done.stdout
        assert "sk-ant-test" not in done.stdout + done.stderr
        status = stack.status()
        assert status["llm"]["provider"]["source"] == "detected"  # not "env": how it travelled to the daemon
        assert {c["name"] for c in status["components"]} == {"api", "temporal"}
    finally:
        stack.cleanup()


def test_ollama_answering_is_used_never_stopped_and_missing_model_pulled(stigmer_home: Path,
                                                                         ollama: OllamaDouble) -> None:
    model = DEFAULT_MODELS["ollama"]
    ollama.pullable[model] = FakeModel(name=model)
    stack = _stack(stigmer_home, OLLAMA_HOST=ollama.url)
    try:
        done = stack.start()
        assert done.returncode == 0, done.stderr
        assert f"ollama · {model}" in done.stdout
        assert f"provider detected: Ollama answers at {ollama.url}" in done.stdout
        assert "already running, not managed by stigmer" in done.stdout
        assert any(r.path == "/api/pull" for r in ollama.requests)
        comps = stack.components()
        assert comps["ollama"]["managed"] is False and comps["ollama"]["pid"] is None
        assert stack.stop().returncode == 0
        assert model in ollama.models  # the user's Ollama kept what it pulled and still serves
        assert any(r.path == "/api/version" for r in ollama.requests)
    finally:
        stack.cleanup()


def test_no_pull_with_a_missing_model_fails_saying_how_to_pull(stigmer_home: Path, ollama: OllamaDouble) -> None:
    stack = _stack(stigmer_home, OLLAMA_HOST=ollama.url, STIGMER_LLM_MODEL="llama3.2:3b")
    try:
        done = stack.start("--no-pull")
        assert done.returncode == 2 or done.returncode == 1
        assert "llama3.2:3b" in done.stderr and "ollama pull llama3.2:3b" in done.stderr
        assert not any(r.path == "/api/pull" for r in ollama.requests)
        assert stack.run("local", "status").returncode == 3
    finally:
        stack.cleanup()


def test_installed_ollama_not_running_is_started_supervised_and_stopped(stigmer_home: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "ollama"
    launcher.write_text(f"#!/bin/sh\nexec {sys.executable} -m tests.support.children.fake_ollama \"$@\"\n")
    launcher.chmod(0o755)
    port = free_port()
    stack = _stack(stigmer_home, OLLAMA_HOST=f"127.0.0.1:{port}", PATH=f"{bin_dir}:{os.environ['PATH']}")
    try:
        done = stack.start()
        assert done.returncode == 0, done.stderr
        assert f"provider detected: ollama installed at {launcher}" in done.stdout
        assert "started by stigmer" in done.stdout
        ollama = stack.components()["ollama"]
        assert ollama["managed"] is True and ollama["state"] == "ready" and ollama["pid"]
        assert stack.stop().returncode == 0
        assert gone(ollama["pid"])
    finally:
        stack.cleanup()
