"""Sessions and approvals through ``stigmer local``: real daemon, real Temporal, real runner, scripted model.

- a session of two turns: the second turn's model call sees the first (the scripted model answers by the
  number of assistant messages already in the conversation, so a turn that lost its past would get step 0);
- a write_file call waits for a person; approved through the API it runs once; the file is there;
- kill -9 of the runner while a call waits for approval: approved after, the call runs exactly once;
- usage reaches the execution record and the session's totals.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.local_daemon import LocalStack, wait_until
from tests.support.scripted_provider import write_script

pytestmark = pytest.mark.slow

RECOVERY_TIMEOUT_S = 120.0


def _api(stack: LocalStack) -> httpx.Client:
    token = (stack.home / "run" / "token").read_text().strip()
    return httpx.Client(base_url=f"http://127.0.0.1:{stack.api_port}", headers={"Authorization": f"Bearer {token}"},
                        timeout=30, trust_env=False)


def _get(stack: LocalStack, path: str) -> Any:
    with _api(stack) as api:
        return api.get(path).json()


def _agent(path: Path, name: str, script: str, workspace: Path) -> Path:
    path.write_text(f"apiVersion: agentic.stigmer.ai/v1\nkind: Agent\nmetadata:\n  name: {name}\n"
                    f"spec:\n  instructions: Answer briefly.\n  model: 'scripted:{script}'\n"
                    f"  tools: [workspace]\n  workspace: {workspace}\n")
    return path


def _pending(stack: LocalStack, execution_id: str) -> list[dict[str, Any]]:
    return list(_get(stack, f"/v1/approvals?status=pending&execution={execution_id}")["items"])


def _events(stack: LocalStack, execution_id: str) -> list[dict[str, Any]]:
    """The execution's stored events (its SSE stream without following)."""
    with _api(stack) as api:
        text = api.get(f"/v1/executions/{execution_id}/events", params={"follow": "false"}).text
    return [json.loads(line[len("data:"):]) for line in text.splitlines() if line.startswith("data:")]


def _steps(tmp: Path, name: str, usage: bool = True) -> str:
    write = {"content": "", "tool_calls": [{"name": "write_file", "args": {"path": "note.txt", "content": "hi"}}]}
    u = {"usage": {"input_tokens": 100, "output_tokens": 10, "cached_tokens": 0}} if usage else {}
    return write_script(tmp / f"{name}.json", [{"content": "First answer.", **u}, {**write, **u},
                                              {"content": "Wrote it.", **u}, {"content": "Still here.", **u}])


def _start_stack(stigmer_home: Path, tmp_path: Path, name: str) -> tuple[LocalStack, str, Path]:
    stack = LocalStack.scripted(stigmer_home)
    assert stack.start().returncode == 0
    script = _steps(tmp_path, name)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    applied = stack.run("apply", "-f", str(_agent(tmp_path / f"{name}.yaml", name, script, workspace)))
    assert applied.returncode == 0, applied.stderr
    return stack, script, workspace


def _send(stack: LocalStack, session: str, message: str) -> str:
    with _api(stack) as api:
        resp = api.post(f"/v1/sessions/{session}/messages", json={"message": message})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def _calls(script: str) -> list[dict[str, Any]]:
    path = Path(script + ".calls.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_session_turns_see_each_other_and_an_approved_write_runs_once(stigmer_home: Path, tmp_path: Path) -> None:
    stack, script, workspace = _start_stack(stigmer_home, tmp_path, "talker")
    try:
        with _api(stack) as api:
            created = api.post("/v1/sessions", json={"agent": "talker", "name": "chat-1"})
        assert created.status_code == 201, created.text
        first = _send(stack, "chat-1", "Hello")
        wait_until(lambda: _get(stack, f"/v1/executions/{first}").get("status") == "completed", 60, "turn 1")
        second = _send(stack, "chat-1", "Now write a note")
        wait_until(lambda: _pending(stack, second), 60, "approval requested")
        approval = _pending(stack, second)[0]
        assert approval["tool"] == "write_file" and not (workspace / "note.txt").exists()
        with _api(stack) as api:
            ok = api.post(f"/v1/approvals/{approval['id']}/approve", json={})
            again = api.post(f"/v1/approvals/{approval['id']}/approve", json={})
        assert ok.status_code == 200, ok.text
        assert again.status_code == 409  # a second decision is refused
        wait_until(lambda: _get(stack, f"/v1/executions/{second}").get("status") == "completed", 60, "turn 2")
        assert (workspace / "note.txt").read_text() == "hi"
        # turn 2 continued the conversation: its model calls were steps 1 and 2, not a fresh step 0
        assert [c["step"] for c in _calls(script)] == [0, 1, 2]
        record = _get(stack, f"/v1/executions/{second}")
        assert record["usage"]["input_tokens"] == 200 and record["usage"]["output_tokens"] == 20
        session = _get(stack, "/v1/sessions/chat-1")
        assert [t["id"] for t in session["turns"]] == [first, second]
        assert session["usage"]["input_tokens"] == 300
    finally:
        stack.cleanup()


def test_runner_killed_while_waiting_for_approval_runs_the_call_once(stigmer_home: Path, tmp_path: Path) -> None:
    stack, script, workspace = _start_stack(stigmer_home, tmp_path, "crashy")
    try:
        with _api(stack) as api:
            assert api.post("/v1/sessions", json={"agent": "crashy", "name": "c"}).status_code == 201
        first = _send(stack, "c", "Hello")
        wait_until(lambda: _get(stack, f"/v1/executions/{first}").get("status") == "completed", 60, "turn 1")
        second = _send(stack, "c", "Write")
        wait_until(lambda: _pending(stack, second), 60, "approval requested")
        runner = stack.components()["runner-1"]["pid"]
        os.kill(runner, signal.SIGKILL)
        wait_until(lambda: stack.components()["runner-1"]["pid"] not in (None, runner)
                   and stack.components()["runner-1"]["state"] == "ready", 60, "runner restarted")
        stack.remember()
        approval = _pending(stack, second)[0]
        with _api(stack) as api:
            assert api.post(f"/v1/approvals/{approval['id']}/approve", json={}).status_code == 200
        wait_until(lambda: _get(stack, f"/v1/executions/{second}").get("status") == "completed",
                   RECOVERY_TIMEOUT_S, "turn 2 after the kill")
        assert (workspace / "note.txt").read_text() == "hi"
        assert [e["type"] for e in _events(stack, second)].count("tool_finished") == 1
        assert [c["step"] for c in _calls(script)] == [0, 1, 2]  # no model call repeated by the kill
    finally:
        stack.cleanup()



def test_the_cli_runs_a_session_and_a_decision_made_from_another_terminal(stigmer_home: Path, tmp_path: Path) -> None:
    """``run --session`` twice, the second waiting for ``stigmer approval approve`` (no terminal: no prompt);
    then ``chat`` over stdin continues the same session, and ``session get``/``usage`` show what was spent."""
    stack, script, workspace = _start_stack(stigmer_home, tmp_path, "clitalk")
    try:
        first = stack.run("run", "clitalk", "Hello", "--session", "work")
        assert first.returncode == 0, first.stderr
        assert "First answer." in first.stdout and "usage: 100 in / 10 out tokens" in first.stderr
        env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_")} | stack.env
        waiting = subprocess.Popen([sys.executable, "-m", "stigmer", "run", "clitalk", "Write", "--session", "work"],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                   text=True)
        try:
            wait_until(lambda: _get(stack, "/v1/approvals?status=pending")["items"], 60, "approval requested")
            approval = _get(stack, "/v1/approvals?status=pending")["items"][0]
            assert waiting.poll() is None and not (workspace / "note.txt").exists()  # waiting for a person
            decided = stack.run("approval", "approve", approval["id"])
            assert decided.returncode == 0, decided.stderr
            out, err = waiting.communicate(timeout=60)
        finally:
            if waiting.poll() is None:
                waiting.kill()
        assert waiting.returncode == 0, err
        assert f"stigmer approval approve {approval['id']}" in err  # told how to decide elsewhere
        assert "Wrote it." in out and (workspace / "note.txt").read_text() == "hi"
        again = stack.run("approval", "approve", approval["id"])
        assert again.returncode != 0 and "the decision was refused" in again.stderr and "has ended" in again.stderr
        assert "Traceback" not in again.stderr
        listed = json.loads(stack.run("session", "list", "--json").stdout)
        assert [(s["name"], s["turn_count"]) for s in listed] == [("work", 2)]
        chat = stack.run("chat", "clitalk", "--session", "work", input="Are you there?\n/usage\n/exit\n")
        assert chat.returncode == 0, chat.stderr
        assert "Still here." in chat.stdout and "3 turn(s)" in chat.stdout  # the chat continued the session
        usage = json.loads(stack.run("usage", "--by", "agent", "--json").stdout)
        assert usage["total"]["input_tokens"] == 400
        assert [c["step"] for c in _calls(script)] == [0, 1, 2, 3]
    finally:
        stack.cleanup()
