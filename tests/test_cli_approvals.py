"""``stigmer run`` meeting an approval (prompted at a terminal, announced without one) and ``stigmer approval``,
against the documented API (tests/support/sessions_api_double.py serves docs/SESSIONS.md's routes and events)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from stigmer.worker._approval import args_hash
from tests.support.daemon_api import invoke
from tests.support.sessions_api_double import TOOL_ARGS, Double, serve_double

EXPECTED_HASH = args_hash("write_file", TOOL_ARGS)


@pytest.fixture
def double(stigmer_home: Path) -> Iterator[Double]:
    with serve_double(stigmer_home) as served:
        yield served


def start_run(*args: str) -> subprocess.Popen[str]:
    """``stigmer run`` as a subprocess without a terminal (pipes), as a script would run it."""
    return subprocess.Popen([sys.executable, "-m", "stigmer", "run", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_until(stream: IO[str], marker: str) -> list[str]:
    """Lines of ``stream`` up to the first one holding ``marker`` (the process's own output is the readiness)."""
    lines: list[str] = []
    while not lines or marker not in lines[-1]:
        line = stream.readline()
        assert line, f"the stream ended before {marker!r}: {lines}"
        lines.append(line.rstrip("\n"))
    return lines


def decisions(double: Double, verb: str) -> list[Any]:
    return [body for m, p, body in double.requests if m == "POST" and p.endswith(f"/{verb}")]


def test_a_run_without_a_terminal_announces_the_approval_and_waits_for_approval_approve(
        double: Double, capsys: Any) -> None:
    run = start_run("asker", "write a note")
    assert run.stderr is not None
    lines = read_until(run.stderr, "stigmer approval approve")
    [approval_id] = double.approvals
    assert f"? approval needed (write_file is not read-only): write_file({json.dumps(TOOL_ARGS)})" in lines
    assert lines[-1].strip() == (f"waiting; decide with `stigmer approval approve {approval_id}` or "
                                 f"`stigmer approval reject {approval_id} --reason TEXT`")
    code, out, err = invoke(capsys, "approval", "approve", approval_id)
    assert code == 0, err
    assert out.strip() == f"approved {approval_id}"
    assert decisions(double, "approve") == [{"by": "cli", "args_hash": EXPECTED_HASH, "always": False}]
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert "→ write_file(" in out and "wrote 5 bytes" in out and "I wrote notes.txt." in out
    assert "✓ approved by cli" in out
    assert "usage: 10 in / 5 out tokens" in err


def test_a_json_run_prints_the_event_and_a_reject_reaches_the_model(double: Double, capsys: Any) -> None:
    run = start_run("asker", "write a note", "--json")
    assert run.stdout is not None
    [line] = read_until(run.stdout, "approval_requested")[-1:]
    event = json.loads(line)
    assert event["data"]["args"] == TOOL_ARGS and event["data"]["args_hash"] == EXPECTED_HASH
    code, out, err = invoke(capsys, "approval", "reject", event["data"]["approval_id"], "--reason", "not today")
    assert code == 0, err
    assert decisions(double, "reject") == [{"by": "cli", "args_hash": EXPECTED_HASH, "reason": "not today"}]
    out, err = run.communicate(timeout=60)
    events = [json.loads(line) for line in out.splitlines()]
    decided = next(e for e in events if e["type"] == "approval_decided")
    assert (decided["data"]["decision"], decided["data"]["reason"]) == ("rejected", "not today")
    assert events[-1]["type"] == "completed" and "tool_started" not in {e["type"] for e in events}
    assert "stigmer approval approve" in err  # how to decide, on stderr: stdout stays JSON Lines


def test_a_second_decision_and_other_arguments_are_refused_clearly(double: Double, capsys: Any) -> None:
    assert invoke(capsys, "run", "asker", "go", "--detach")[0] == 0
    [approval_id] = double.approvals
    double.approvals[approval_id]["args"] = {"path": "elsewhere.txt"}  # not the call that waits: its hash differs
    code, _, err = invoke(capsys, "approval", "approve", approval_id)
    assert code == 2 and "these arguments are not the ones awaiting approval" in err and "Traceback" not in err
    double.approvals[approval_id]["args"] = TOOL_ARGS
    assert invoke(capsys, "approval", "approve", approval_id, "--always")[0] == 0
    assert decisions(double, "approve")[-1]["always"] is True
    code, _, err = invoke(capsys, "approval", "reject", approval_id)
    assert code == 2 and "error: the decision was refused: approval" in err and "already approved" in err
    code, _, err = invoke(capsys, "approval", "approve", "nope")
    assert code == 2 and "no approval 'nope'" in err and "stigmer approval list" in err


def test_approval_list_and_get(double: Double, capsys: Any) -> None:
    assert invoke(capsys, "run", "asker", "go", "--detach")[0] == 0
    [approval_id] = double.approvals
    code, out, _ = invoke(capsys, "approval", "list", "--json")
    [item] = json.loads(out)
    assert (item["id"], item["status"], item["tool"]) == (approval_id, "pending", "write_file")
    code, out, _ = invoke(capsys, "approval", "list")
    assert out.splitlines()[0].split() == ["ID", "STATUS", "EXECUTION", "SESSION", "CALL", "AGE"]
    assert out.splitlines()[1].startswith(f"{approval_id}  pending")
    assert invoke(capsys, "approval", "reject", approval_id, "--reason", "no")[0] == 0
    code, out, err = invoke(capsys, "approval", "list")
    assert out == "" and "no approvals are waiting" in err
    code, out, _ = invoke(capsys, "approval", "list", "--all", "--json")
    assert [a["status"] for a in json.loads(out)] == ["rejected"]
    code, out, _ = invoke(capsys, "approval", "get", approval_id)
    assert code == 0
    assert f"Args hash: {EXPECTED_HASH}" in out and "Reason:    no" in out


def read_terminal(fd: int, marker: bytes, seen: bytes = b"") -> bytes:
    """What the terminal showed, read until ``marker`` appears (or the terminal closes); fails after 60 s."""
    deadline = time.monotonic() + 60
    while marker not in seen:
        assert time.monotonic() < deadline, f"no {marker!r} on the terminal: {seen!r}"
        if select.select([fd], [], [], 0.5)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the terminal closed: the process ended
                return seen
            if not chunk:
                return seen
            seen += chunk
    return seen


def test_a_run_at_a_terminal_asks_inline_and_always_allows(double: Double) -> None:
    """A real pseudo-terminal: the run shows the call and the choices, the answer ``a`` approves with always."""
    primary, secondary = pty.openpty()
    run = subprocess.Popen([sys.executable, "-m", "stigmer", "run", "asker", "write a note"], stdin=secondary,
                           stdout=secondary, stderr=secondary, env={**os.environ, "NO_COLOR": "1"})
    os.close(secondary)
    try:
        seen = read_terminal(primary, b"[a] always allow")
        assert b"write_file(" in seen and b"notes.txt" in seen
        os.write(primary, b"a\n")
        seen = read_terminal(primary, b"completed", seen)
        assert run.wait(timeout=60) == 0, seen
    finally:
        run.kill()
        os.close(primary)
    assert decisions(double, "approve") == [{"by": "cli", "args_hash": EXPECTED_HASH, "always": True}]
    assert b"I wrote notes.txt." in seen and b"approved (always, for this session) by cli" in seen
