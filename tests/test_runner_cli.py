"""``stigmer runner`` as deployments run it: env contract, start-up log, events to the daemon, clean SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from stigmer.config import DEFAULT_MODELS
from tests.support.agents import EventCollector, execution, runner_env, running, spawn_runner, start, wait_for
from tests.support.codec import codec_client
from tests.support.ports import free_port
from tests.support.scripted_provider import read_calls, write_script

pytestmark = pytest.mark.slow

SECRET = "sk-ant-api03-never-log-me-4242"


def _legacy_env(address: str, queue: str) -> dict[str, str]:
    """What an existing upstream runner deployment sets (MODE=cloud: Anthropic), and nothing stigmer-specific."""
    return {"MODE": "cloud", "ANTHROPIC_API_KEY": SECRET, "TEMPORAL_SERVICE_ADDRESS": address,
            "TEMPORAL_NAMESPACE": "default", "STIGMER_RUNNER_TASK_QUEUE": queue}


def test_legacy_env_contract_logs_what_it_uses_and_stops_cleanly_on_sigterm(tmp_path: Path,
                                                                            temporal_server: Any) -> None:
    for i in range(3):  # the SDK's exit abort (sdk-python#300) was intermittent: a clean stop must always be 0
        queue = f"cli-{uuid.uuid4().hex[:8]}"
        log = tmp_path / f"runner{i}.log"
        proc = spawn_runner(_legacy_env(temporal_server.address, queue), log)
        with running(proc):
            wait_for(lambda log=log: "runner started" in log.read_text(), timeout=60, what="runner start")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, log.read_text()
        text = log.read_text()
        assert "provider=anthropic (env MODE=cloud)" in text
        assert f"model={DEFAULT_MODELS['anthropic']} (default model for anthropic; provider env: MODE=cloud)" in text
        assert f"temporal={temporal_server.address} namespace=default task_queue={queue}" in text
        assert "runner exited cleanly" in text
        assert SECRET not in text and SECRET[-8:] not in text
        assert "Traceback" not in text


def test_unreachable_temporal_is_a_clear_error_without_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "STIGMER_HOME": str(tmp_path), "LLM_PROVIDER": "ollama",
           "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
    out = subprocess.run([sys.executable, "-m", "stigmer", "runner"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1
    assert "error: cannot connect to Temporal at 127.0.0.1:" in out.stderr
    assert "check --temporal-address / TEMPORAL_ADDRESS" in out.stderr
    assert "Traceback" not in out.stderr


async def test_runner_child_posts_events_to_the_daemon_with_its_token(tmp_path: Path, temporal_server: Any) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    script = write_script(tmp_path / "s.json", [
        {"content": "Writing.", "tool_calls": [{"name": "write_file", "args": {"path": "x.txt", "content": "1"}}]},
        {"content": "All done."}])
    queue = f"cli-{uuid.uuid4().hex[:8]}"
    client = await codec_client(temporal_server.address)
    inp = execution(script, workspace=ws, tools=["workspace"])
    with EventCollector() as collector:
        env = runner_env(temporal_server.address, queue, collector.env())
        with running(spawn_runner(env, tmp_path / "runner.log")):
            result = await (await start(client, inp, queue)).result()
            wait_for(lambda: any(e["type"] == "completed" for e in collector.of(inp.execution_id)), what="completed")
        events = collector.of(inp.execution_id)
    assert result.output == "All done."
    types = [e["type"] for e in events]
    assert types[-1] == "completed" and types.count("completed") == 1
    assert {"step_started", "token", "message", "tool_started", "tool_finished"} <= set(types)
    assert collector.rejected == 0
    assert collector.token not in (tmp_path / "runner.log").read_text()


async def test_a_daemon_that_is_down_does_not_fail_the_execution(tmp_path: Path, temporal_server: Any) -> None:
    script = write_script(tmp_path / "s.json", [{"content": "Still fine."}])
    queue = f"cli-{uuid.uuid4().hex[:8]}"
    client = await codec_client(temporal_server.address)
    env = runner_env(temporal_server.address, queue, {"STIGMER_SERVER_URL": f"http://127.0.0.1:{free_port()}",
                                                      "STIGMER_SERVER_TOKEN": "t"})
    log = tmp_path / "runner.log"
    with running(spawn_runner(env, log)):
        result = await (await start(client, execution(script), queue)).result()
    assert result.output == "Still fine."
    assert "could not post" in log.read_text()


@pytest.mark.parametrize("queue_var", ["STIGMER_TASK_QUEUE", "TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE"])
async def test_upstream_task_queue_and_concurrency_variables_are_read_and_the_flags_still_win(
        tmp_path: Path, temporal_server: Any, queue_var: str) -> None:
    client = await codec_client(temporal_server.address)
    script = write_script(tmp_path / "s.json", [{"content": "Polled."}])
    upstream_queue, flag_queue = f"up-{uuid.uuid4().hex[:8]}", f"flag-{uuid.uuid4().hex[:8]}"
    env = {**runner_env(temporal_server.address, "unused"), queue_var: upstream_queue, "TEMPORAL_MAX_CONCURRENCY": "3"}
    del env["STIGMER_RUNNER_TASK_QUEUE"]
    log = tmp_path / "upstream.log"
    with running(spawn_runner(env, log)):
        assert (await (await start(client, execution(script), upstream_queue)).result()).output == "Polled."
    text = log.read_text()
    assert f"task_queue={upstream_queue} (env {queue_var}) max_concurrent=3 (env TEMPORAL_MAX_CONCURRENCY)" in text
    flagged = tmp_path / "flags.log"
    with running(spawn_runner(env, flagged, "--task-queue", flag_queue, "--max-concurrent", "4")):
        assert (await (await start(client, execution(script), flag_queue)).result()).output == "Polled."
    wanted = f"task_queue={flag_queue} (flag --task-queue) max_concurrent=4 (flag --max-concurrent)"
    assert wanted in flagged.read_text()


async def test_a_runner_that_keeps_no_workflow_in_memory_still_runs_an_agent_to_the_end(
        tmp_path: Path, temporal_server: Any) -> None:
    """``runner.cached_workflows: 0``: every step replays the history instead of finding the workflow in memory."""
    client = await codec_client(temporal_server.address)
    script = write_script(tmp_path / "s.json", [{"content": "", "tool_calls": [{"name": "list_files", "args": {}}]},
                                                {"content": "Replayed fine."}])
    queue = f"nocache-{uuid.uuid4().hex[:8]}"
    env = {**runner_env(temporal_server.address, queue), "STIGMER_RUNNER_CACHED_WORKFLOWS": "0"}
    log = tmp_path / "runner.log"
    with running(spawn_runner(env, log)):
        inp = execution(script, workspace=tmp_path, tools=["workspace"])
        assert (await (await start(client, inp, queue)).result()).output == "Replayed fine."
    assert "cached_workflows=0 (env STIGMER_RUNNER_CACHED_WORKFLOWS)" in log.read_text()
    assert [c["step"] for c in read_calls(script)] == [0, 1]  # replays re-ran no model call


def test_runner_logs_are_plain_text_when_not_on_a_terminal(tmp_path: Path) -> None:
    """The Temporal SDK core's own warnings (here: its server went away) carried ANSI colour codes into log files."""
    from tests.support.temporal import start_temporal

    server = start_temporal(log=tmp_path / "temporal.log")
    log = tmp_path / "runner.log"
    try:
        proc = spawn_runner(runner_env(server.address, f"plain-{uuid.uuid4().hex[:8]}"), log)
        with running(proc):
            wait_for(lambda: "runner started" in log.read_text(), timeout=60, what="runner start")
            server.kill()
            wait_for(lambda: "retried" in log.read_text(), timeout=60, what="the SDK core's retry warning")
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    finally:
        server.stop()
    text = log.read_text()
    assert "\x1b[" not in text, [line for line in text.splitlines() if "\x1b[" in line][:3]
    assert "WARNING temporalio.core" in text  # the core's lines come through Python logging, formatted like ours


async def test_a_runner_elsewhere_posts_to_the_server_with_a_token_from_a_file(tmp_path: Path,
                                                                             temporal_server: Any) -> None:
    """Issue 12: ``stigmer runner --server URL --token-file FILE`` on another machine: the token never on the
    command line, the file must be its owner's alone, the events reach the server."""
    script = write_script(tmp_path / "s.json", [{"content": "From afar."}])
    queue = f"cli-{uuid.uuid4().hex[:8]}"
    client = await codec_client(temporal_server.address)
    inp = execution(script)
    with EventCollector() as collector:
        token_file = tmp_path / "runner.token"
        token_file.write_text(collector.token + "\n")
        token_file.chmod(0o644)
        env = runner_env(temporal_server.address, queue)
        loose = subprocess.run([sys.executable, "-m", "stigmer", "runner", "--server", collector.url, "--token-file",
                                str(token_file)], env={**os.environ, **env}, capture_output=True, text=True,
                               timeout=60)
        assert loose.returncode != 0 and f"chmod 600 {token_file}" in loose.stderr and "Traceback" not in loose.stderr
        token_file.chmod(0o600)
        clear = subprocess.run([sys.executable, "-m", "stigmer", "runner", "--server", "http://203.0.113.7:7780",
                                "--token-file", str(token_file)], env={**os.environ, **env}, capture_output=True,
                               text=True, timeout=60)  # refused before any connection: nothing leaves loopback
        assert clear.returncode != 0 and "would send the token unencrypted" in clear.stderr
        log = tmp_path / "runner.log"
        with running(spawn_runner(env, log, "--server", collector.url, "--token-file", str(token_file))):
            result = await (await start(client, inp, queue)).result()
            wait_for(lambda: any(e["type"] == "completed" for e in collector.of(inp.execution_id)), what="completed")
    assert result.output == "From afar."
    assert collector.rejected == 0 and collector.token not in log.read_text()
