"""``stigmer run --session/--continue``, ``stigmer chat``, ``stigmer session`` and ``stigmer usage`` against the
documented API (tests/support/sessions_api_double.py serves docs/SESSIONS.md's routes and events)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import stigmer
from tests.support.daemon_api import invoke
from tests.support.sessions_api_double import Double, serve_double


@pytest.fixture
def double(stigmer_home: Path) -> Iterator[Double]:
    with serve_double(stigmer_home) as served:
        yield served


def sent(double: Double, method: str, path: str) -> list[Any]:
    """The bodies of the requests the CLI made to ``method path`` (the path without its query)."""
    return [body for m, p, body in double.requests if m == method and p.split("?")[0] == path]


def test_run_with_session_twice_sends_the_session_and_continues_it(double: Double, capsys: Any) -> None:
    code, out, err = invoke(capsys, "run", "hello", "I am Ada", "--session", "intro")
    assert code == 0, err
    assert out.strip() == "Hello, turn 1."
    code, out, err = invoke(capsys, "run", "hello", "Who am I?", "--session", "intro", "--max-tokens-total", "500")
    assert code == 0, err
    assert out.strip() == "Hello, turn 2."
    session_id = next(iter(double.sessions))
    assert f"session {session_id} turn 2" in err
    assert "usage: 10 in / 5 out tokens · $0.0010" in err
    bodies = sent(double, "POST", "/v1/executions")
    assert [b.get("session") for b in bodies] == ["intro", "intro"]
    assert "max_tokens_total" not in bodies[0] and bodies[1]["max_tokens_total"] == 500
    code, out, err = invoke(capsys, "run", "hello", "And now?", "--continue")
    assert code == 0 and out.strip() == "Hello, turn 3."
    assert sent(double, "POST", "/v1/executions")[-1]["continue"] is True


def test_run_refuses_session_and_continue_together_and_a_bad_budget(double: Double, capsys: Any) -> None:
    code, _, err = invoke(capsys, "run", "hello", "hi", "--session", "a", "--continue")
    assert code == 2 and "--session and --continue were both given" in err and "Traceback" not in err
    code, _, err = invoke(capsys, "run", "hello", "hi", "--max-tokens-total", "0")
    assert code == 2 and "--max-tokens-total" in err
    assert sent(double, "POST", "/v1/executions") == []


def test_chat_over_stdin_runs_two_turns_shows_usage_and_stops_at_exit(double: Double) -> None:
    done = stigmer("chat", "hello", "--session", "talk", input="Hi\n\n/usage\nAgain\n/exit\nnever sent\n")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line]
    assert lines[0] == "Hello, turn 1." and lines[2] == "Hello, turn 2."
    session = double.session_by("talk")
    assert lines[1] == f"session {session['id']}: 1 turn(s) · 10 in / 5 out tokens · $0.0010"
    assert [b["message"] for b in sent(double, "POST", f"/v1/sessions/{session['id']}/messages")] == ["Hi", "Again"]
    assert sent(double, "POST", "/v1/sessions") == [{"agent": "hello", "name": "talk"}]


def test_chat_continues_a_named_session_and_new_starts_another(double: Double) -> None:
    assert stigmer("chat", "hello", "--session", "talk", input="Hi\n").returncode == 0
    done = stigmer("chat", "hello", "--session", "talk", input="Back again\n/new\nFresh start\n/usage\n")
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stdout.splitlines() if line][:2] == ["Hello, turn 2.", "Hello, turn 1."]
    assert "continued" in done.stderr
    assert len(sent(double, "POST", "/v1/sessions")) == 2  # the first chat's, and /new's
    other = next(s for s in double.sessions.values() if s["name"] is None)
    assert re.search(rf"session {other['id']}: 1 turn", done.stdout)
    done = stigmer("chat", "other-agent", "--session", "talk", input="Hi\n")
    assert done.returncode == 2 and "--session talk: that session is agent 'hello'" in done.stderr


def test_session_list_get_delete_json_shapes(double: Double, capsys: Any) -> None:
    for message in ("one", "two"):
        assert invoke(capsys, "run", "hello", message, "--session", "kept")[0] == 0
    code, out, _ = invoke(capsys, "session", "list", "--json")
    [listed] = json.loads(out)
    assert (listed["name"], listed["agent"], listed["turn_count"]) == ("kept", "hello", 2)
    assert listed["usage"]["input_tokens"] == 20
    code, out, _ = invoke(capsys, "session", "list")
    assert out.splitlines()[0].split() == ["ID", "NAME", "AGENT", "STATUS", "TURNS", "TOKENS", "COST", "AGE"]
    assert out.splitlines()[1].split()[1:6] == ["kept", "hello", "open", "2", "30"]
    code, out, _ = invoke(capsys, "session", "get", "kept", "--json")
    got = json.loads(out)
    assert [t["message"] for t in got["turns"]] == ["one", "two"]
    assert got["turns"][0]["usage"]["output_tokens"] == 5 and got["turns"][0]["tool_calls"] == []
    code, out, _ = invoke(capsys, "session", "get", "kept")
    assert "Turn 2" in out and "  > two" in out and "Hello, turn 2." in out
    assert out.splitlines()[-1] == "Total:   2 turn(s) · 20 in / 10 out tokens · $0.0020"
    code, out, _ = invoke(capsys, "session", "delete", "kept", "--json")
    assert json.loads(out)["deleted"] == {"id": listed["id"], "name": "kept", "turns": 2}
    code, _, err = invoke(capsys, "session", "get", "kept")
    assert code == 2 and "no session 'kept'" in err and "stigmer session list" in err


def test_usage_by_agent_and_since(double: Double, capsys: Any) -> None:
    for agent in ("hello", "hello", "greeter"):
        assert invoke(capsys, "run", agent, "hi")[0] == 0
    code, out, err = invoke(capsys, "usage", "--by", "agent", "--since", "7d")
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["AGENT", "EXECUTIONS", "IN", "OUT", "CACHED", "COST"]
    assert rows[1][:3] == ["greeter", "1", "10"] and rows[2][:3] == ["hello", "2", "20"]
    assert out.splitlines()[-1] == "total: 3 execution(s) · 30 in / 15 out tokens · $0.0030"
    assert sent(double, "GET", "/v1/usage") == [None]
    assert [p for m, p, _ in double.requests if p.startswith("/v1/usage")] == ["/v1/usage?since=604800.0&by=agent"]
    code, out, _ = invoke(capsys, "usage", "--json")
    assert json.loads(out)["total"]["executions"] == 3
    code, _, err = invoke(capsys, "usage", "--since", "soon")
    assert code == 2 and "--since" in err and "30d" in err


def test_execution_get_shows_the_usage(double: Double, capsys: Any) -> None:
    code, out, _ = invoke(capsys, "run", "hello", "hi", "--detach")
    code, out, _ = invoke(capsys, "execution", "get", out.strip())
    assert code == 0
    assert "Usage:     10 in / 5 out tokens · $0.0010" in out.splitlines()


def test_ctrl_c_in_chat_interrupts_the_turn_and_the_session_goes_on(double: Double) -> None:
    """A real pseudo-terminal (prompt-toolkit's own input): Ctrl-C while a turn thinks cancels that turn only."""
    import fcntl
    import os
    import pty
    import subprocess
    import sys
    import termios

    from tests.test_cli_approvals import read_terminal

    primary, secondary = pty.openpty()
    def controlling_terminal() -> None:  # as a login shell's child: the pty's Ctrl-C becomes SIGINT for it
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    chat = subprocess.Popen([sys.executable, "-m", "stigmer", "chat", "sleeper", "--session", "long"], stdin=secondary,
                            stdout=secondary, stderr=secondary, env={**os.environ, "NO_COLOR": "1"},
                            preexec_fn=controlling_terminal)
    os.close(secondary)
    try:
        seen = read_terminal(primary, b"sleeper>")
        os.write(primary, b"think hard\r")
        seen = read_terminal(primary, b"Thinking", seen)
        os.write(primary, b"\x03")  # Ctrl-C, as the terminal sends it
        seen = read_terminal(primary, b"the session goes on", seen)
        os.write(primary, b"/exit\r")
        assert chat.wait(timeout=30) == 0, seen
    finally:
        chat.kill()
        os.close(primary)
    session = double.session_by("long")
    [turn] = [e for e in double.executions.values() if e["session_id"] == session["id"]]
    assert len(sent(double, "POST", f"/v1/executions/{turn['id']}/cancel")) == 1
    assert turn["status"] == "failed" and session["status"] == "open"
    assert sent(double, "DELETE", f"/v1/sessions/{session['id']}") == []
