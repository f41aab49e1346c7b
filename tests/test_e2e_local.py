"""End to end through ``stigmer local``: real daemon, real Temporal, real runners, real llama.cpp.

- zero config on this machine (no key, no Ollama) picks the embedded model: start, apply, run, stop;
- hybrid: an external Temporal, and the daemon starts none of its own;
- durability: kill -9 a runner mid-execution, or the daemon and Temporal together; the run completes.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.support.local_daemon import REPO, LocalStack, gone, wait_until
from tests.support.ports import free_port
from tests.support.scripted_provider import write_script
from tests.support.temporal import start_temporal

pytestmark = pytest.mark.slow

HELLO = REPO / "examples" / "agents" / "hello.yaml"
# A killed runner's model call is retried once Temporal's heartbeat timeout (30 s by default) expires.
RECOVERY_TIMEOUT_S = 120.0


def _agent_yaml(path: Path, name: str, script: str) -> Path:
    path.write_text(f"apiVersion: agentic.stigmer.ai/v1\nkind: Agent\nmetadata:\n  name: {name}\n"
                    f"spec:\n  instructions: Answer briefly.\n  model: 'scripted:{script}'\n")
    return path


def _api(stack: LocalStack) -> httpx.Client:
    token = (stack.home / "run" / "token").read_text().strip()
    return httpx.Client(base_url=f"http://127.0.0.1:{stack.api_port}", headers={"Authorization": f"Bearer {token}"},
                        timeout=30, trust_env=False)


def _execution(stack: LocalStack, execution_id: str) -> dict[str, Any]:
    try:
        with _api(stack) as api:
            data: dict[str, Any] = api.get(f"/v1/executions/{execution_id}").json()
            return data
    except httpx.HTTPError:
        return {}


def _calls(script: str) -> list[dict[str, Any]]:
    path = Path(script + ".calls.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_zero_config_embedded_model_start_apply_run_stop(stigmer_home: Path) -> None:
    # The embedded server gets a free port so a developer's own llama.cpp on the default port is not disturbed.
    stack = LocalStack.bare(stigmer_home, STIGMER_LLM_BASE_URL=f"http://127.0.0.1:{free_port()}/v1")
    try:
        done = stack.start()
        assert done.returncode == 0, done.stderr
        assert "llamacpp · smollm2-135m" in done.stdout
        assert "provider detected: no key, no Ollama" in done.stdout
        assert "SmolLM2 135M Instruct" in done.stdout and "For real work" in done.stdout
        llm = stack.components()["llamacpp"]
        assert llm["state"] == "ready" and llm["managed"] is True
        assert not (stigmer_home / "models").exists()  # the default GGUF is read in place from its package

        applied = stack.run("apply", "-f", str(HELLO))
        assert applied.returncode == 0, applied.stderr
        assert "created" in applied.stdout
        ran = stack.run("run", "hello", "Say hello in one word.", "--json", timeout=240)
        assert ran.returncode == 0, ran.stderr
        events = [json.loads(line) for line in ran.stdout.splitlines() if line.strip()]
        assert events[-1]["type"] == "completed" and events[-1]["data"]["output"]
        assert any(e["type"] == "token" for e in events)  # streamed, not one final blob
        _emulated_tool_calls(stack, stigmer_home)

        stopped = stack.stop()
        assert stopped.returncode == 0
        assert stack.leftovers() == [] and gone(llm["pid"])
    finally:
        stack.cleanup()


def _emulated_tool_calls(stack: LocalStack, tmp: Path) -> None:
    """The example agents ``files`` and ``clock`` on the zero-config model: real tool calls, emulated.

    ``files`` runs unasked here (no person at a terminal to approve ``write_file``); the MCP server's path is made
    absolute because the runner does not start in the repository.
    """
    files = (REPO / "examples" / "agents" / "workspace.yaml").read_text().replace(
        "  maxSteps: 10\n", "  maxSteps: 10\n  approvals: {mode: never}\n")
    clock = (REPO / "examples" / "agents" / "mcp.yaml").read_text().replace(
        '"examples/mcp/time_server.py"', f'"{REPO / "examples" / "mcp" / "time_server.py"}"')
    (tmp / "files.yaml").write_text(files)
    (tmp / "clock.yaml").write_text(clock)
    for doc in ("files.yaml", "clock.yaml"):
        applied = stack.run("apply", "-f", str(tmp / doc))
        assert applied.returncode == 0, applied.stderr
    workspace = tmp / "workspaces" / "files"  # the agent's default workspace
    ran = stack.run("run", "files", "Write a haiku to haiku.txt", "--json", timeout=240)
    assert ran.returncode == 0, ran.stderr
    events = [json.loads(line) for line in ran.stdout.splitlines() if line.strip()]
    resolved = next(e for e in events if e["type"] == "model_resolved")["data"]
    assert resolved["tool_calls"]["mode"] == "emulated"
    assert any(e["type"] == "tool_finished" and e["data"]["name"] == "write_file" for e in events), events
    assert [p for p in workspace.rglob("*") if p.is_file()]
    ran = stack.run("run", "clock", "What time is it?", "--json", timeout=240)
    assert ran.returncode == 0, ran.stderr
    events = [json.loads(line) for line in ran.stdout.splitlines() if line.strip()]
    assert any(e["type"] == "tool_finished" and e["data"]["name"] == "get_time" for e in events), events
    assert events[-1]["type"] == "completed"


def test_external_temporal_is_used_and_none_is_started(stigmer_home: Path, tmp_path: Path) -> None:
    external = start_temporal(log=tmp_path / "external-temporal.log")
    stack = LocalStack.scripted(stigmer_home, [{"content": "Answered through the external server."}])
    try:
        done = stack.start("--temporal-address", external.address)
        assert done.returncode == 0, done.stderr
        assert f"{external.address} (external, from --temporal-address" in done.stdout
        temporal = stack.components()["temporal"]
        assert temporal["managed"] is False and temporal["pid"] is None and temporal["state"] == "ready"
        descendants = psutil.Process(stack.daemon_pid()).children(recursive=True)
        assert not any("temporal" in Path(p.exe()).name for p in descendants)
        script = stack.env["STIGMER_LLM_MODEL"]
        assert stack.run("apply", "-f", str(_agent_yaml(tmp_path / "a.yaml", "ext", script))).returncode == 0
        ran = stack.run("run", "ext", "hi")
        assert ran.returncode == 0 and "Answered through the external server." in ran.stdout
    finally:
        stack.cleanup()
        assert external.process.poll() is None  # the user's server is never stopped by stigmer
        external.stop()


def _start_slow_execution(stack: LocalStack, tmp_path: Path, name: str) -> tuple[str, str]:
    """An execution whose first model call takes 20 s on its first attempt only; returns (id, script)."""
    script = write_script(tmp_path / f"{name}.json", [{"content": "Survived.", "delay": 20, "delay_attempts": 1}])
    assert stack.run("apply", "-f", str(_agent_yaml(tmp_path / f"{name}.yaml", name, script))).returncode == 0
    started = stack.run("run", name, "hi", "--detach")
    assert started.returncode == 0, started.stderr
    execution_id = started.stdout.strip()
    wait_until(lambda: len(_calls(script)) == 1, 60, "first model call started")
    return execution_id, script


def test_killed_runner_is_restarted_and_the_execution_completes(stigmer_home: Path, tmp_path: Path) -> None:
    stack = LocalStack.scripted(stigmer_home)
    try:
        assert stack.start().returncode == 0
        execution_id, script = _start_slow_execution(stack, tmp_path, "durable")
        runner = stack.components()["runner-1"]["pid"]
        os.kill(runner, signal.SIGKILL)
        wait_until(lambda: stack.components()["runner-1"]["pid"] not in (None, runner)
                   and stack.components()["runner-1"]["state"] == "ready", 60, "runner restarted")
        assert stack.components()["runner-1"]["restarts"] == 1
        stack.remember()
        wait_until(lambda: _execution(stack, execution_id).get("status") == "completed", RECOVERY_TIMEOUT_S,
                   "execution completed")
        assert [c["step"] for c in _calls(script)] == [0, 0]  # the killed attempt, then one retry
    finally:
        stack.cleanup()


def test_kill_9_daemon_and_temporal_then_start_completes_the_execution(stigmer_home: Path, tmp_path: Path) -> None:
    stack = LocalStack.scripted(stigmer_home)
    try:
        assert stack.start().returncode == 0
        execution_id, _script = _start_slow_execution(stack, tmp_path, "crash")
        comps = stack.components()
        for name in ("api", "temporal"):
            os.kill(comps[name]["pid"], signal.SIGKILL)
        wait_until(lambda: gone(comps["api"]["pid"]) and gone(comps["temporal"]["pid"]), 10, "killed")
        again = stack.start()
        assert again.returncode == 0, again.stderr
        assert gone(comps["runner-1"]["pid"])  # the crashed daemon's orphaned runner was ended
        wait_until(lambda: _execution(stack, execution_id).get("status") == "completed", RECOVERY_TIMEOUT_S,
                   "execution completed after restart")
        out = stack.run("execution", "get", execution_id)
        assert out.returncode == 0 and "Survived." in out.stdout
    finally:
        stack.cleanup()
