"""A read-only home and a full disk: `stigmer local start` and `stigmer run` fail with a clear message,
start nothing and store nothing half-written; once space is back, everything stored before is intact.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.support.local_daemon import LocalStack
from tests.support.mounts import fill, read_only, tiny_tmpfs


def _no_traceback(out: str) -> None:
    assert "Traceback" not in out and "internal error" not in out


def _elsewhere(tmp_path: Path) -> LocalStack:
    """A scripted stack whose script lives outside the home under test."""
    (tmp_path / "elsewhere").mkdir(exist_ok=True)
    return LocalStack.scripted(tmp_path / "elsewhere")


def test_start_on_a_read_only_home_starts_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text("llm:\n  model: keep:me\n")
    stack = _elsewhere(tmp_path)
    stack.env["STIGMER_HOME"] = str(home)
    with read_only(home):
        done = stack.run("local", "start", timeout=60)
    assert done.returncode == 1, done
    assert f"cannot write to STIGMER_HOME ({home}): Read-only file system; nothing was started" in done.stderr
    _no_traceback(done.stderr)
    assert sorted(p.name for p in home.iterdir()) == ["config.yaml"]
    assert (home / "config.yaml").read_text() == "llm:\n  model: keep:me\n"


def test_start_on_a_nearly_full_disk_is_refused(tmp_path: Path) -> None:
    with tiny_tmpfs(tmp_path / "home", size="16m") as home:
        stack = _elsewhere(tmp_path)
        stack.env["STIGMER_HOME"] = str(home)
        done = stack.run("local", "start", timeout=60)
        assert done.returncode == 1, done
        assert "MB free on the disk holding STIGMER_HOME" in done.stderr and "at least 64 MB" in done.stderr
        _no_traceback(done.stderr)
        assert list(home.iterdir()) == []


@pytest.fixture
def stack_on_small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    with tiny_tmpfs(tmp_path / "home", size="160m") as home:
        stack = LocalStack.scripted(home, [{"content": "Hello!"}])
        try:
            yield stack
        finally:
            (home / ".filler").unlink(missing_ok=True)
            stack.cleanup()


def test_run_on_a_full_disk_stores_nothing_and_recovers(stack_on_small_disk: LocalStack, tmp_path: Path) -> None:
    stack = stack_on_small_disk
    agent = tmp_path / "agent.yaml"
    agent.write_text("apiVersion: agentic.stigmer.ai/v1\nkind: Agent\nmetadata: {name: hello}\n"
                     "spec: {instructions: Say hello, maxSteps: 1}\n")
    assert stack.start().returncode == 0
    assert stack.run("apply", "-f", str(agent)).returncode == 0
    first = stack.run("run", "hello", "hi", "--json")
    assert first.returncode == 0, first.stderr

    fill(stack.home)
    full = stack.run("run", "hello", "again", "--json", timeout=60)
    assert full.returncode != 0
    assert "the disk holding STIGMER_HOME is full: nothing was stored" in full.stderr
    assert "free some disk space" in full.stderr
    _no_traceback(full.stderr)

    (stack.home / ".filler").unlink()
    listed = json.loads(stack.run("get", "executions", "-o", "json").stdout)
    assert [e["status"] for e in listed] == ["completed"]  # the refused run left no half-made execution
    again = stack.run("run", "hello", "once more", "--json")
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(stack.home / "data" / "stigmer.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
