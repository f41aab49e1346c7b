"""``stigmer run`` and ``stigmer execution`` end to end: the API, a real Temporal dev server, a real
runner (in this process) and the scripted chat model. One stack serves the whole module.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stigmer.store import Store
from tests.support.daemon_api import (
    WorkerThread,
    invoke,
    make_context,
    real_client,
    scripted_config,
    serve_api,
)
from tests.support.scripted_provider import PLUGIN, write_script
from tests.support.stack import Stack, scripted_stack
from tests.support.temporal import TemporalServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(temporal_server: TemporalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with scripted_stack(temporal_server, tmp_path_factory, "stack") as running:
        yield running


@pytest.fixture
def env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """This test talks to the module's stack (the autouse fixture gave it a fresh home)."""
    monkeypatch.setenv("STIGMER_HOME", str(stack.home))
    monkeypatch.setenv("STIGMER_PLUGINS", PLUGIN)
    return stack


def apply_agent(stack: Stack, name: str, steps: list[dict[str, Any]], **spec: Any) -> None:
    """Apply an agent whose model is a fresh script (the model id pins the script file)."""
    script = write_script(stack.scripts / f"{name}-{uuid.uuid4().hex[:6]}.json", steps)
    doc = {"apiVersion": "agentic.stigmer.ai/v1", "kind": "Agent", "metadata": {"name": name},
           "spec": {"instructions": "Be helpful.", "model": f"scripted:{script}", **spec}}
    with httpx.Client(base_url=stack.api.url, headers=stack.api.headers()) as http:
        http.post("/v1/apply", json={"documents": [doc]}).raise_for_status()


def test_the_api_starts_an_execution_that_streams_to_completed(env: Stack) -> None:
    apply_agent(env, "api-hello", [{"content": "Hello from the runner."}])
    with httpx.Client(base_url=env.api.url, headers=env.api.headers(), timeout=60) as http:
        execution = http.post("/v1/executions", json={"agent": "api-hello", "message": "hi"}).json()
        with http.stream("GET", f"/v1/executions/{execution['id']}/events") as response:
            events = [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]
        final = http.get(f"/v1/executions/{execution['id']}").json()
    types = [e["type"] for e in events]
    assert types[:2] == ["model_resolved", "step_started"] and types[-1] == "completed"
    assert (events[0]["data"]["source"], events[0]["data"]["origin"]) == ("agent", "agent api-hello spec.model")
    assert "".join(e["data"]["text"] for e in events if e["type"] == "token") == "Hello from the runner."
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert (final["status"], final["output"], final["steps"]) == ("completed", "Hello from the runner.", 1)


def test_run_json_prints_one_event_per_line_ending_with_completed(env: Stack, capsys: Any) -> None:
    apply_agent(env, "hello", [{"content": "Hi there!"}])
    code, out, err = invoke(capsys, "run", "hello", "Say hi", "--json")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[-1]["type"] == "completed"
    assert lines[-1]["data"]["output"] == "Hi there!"
    assert any(line["type"] == "token" for line in lines)


def test_run_shows_tokens_tool_calls_and_the_summary(env: Stack, capsys: Any, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "notes.txt").write_text("buy milk\n")
    apply_agent(env, "files", [{"content": "", "tool_calls": [{"name": "list_files", "args": {}}]},
                               {"content": "You have notes.txt."}], tools=["workspace"])
    code, out, err = invoke(capsys, "run", "files", "What files are there?", "--workspace", str(workspace))
    assert code == 0, err
    assert "→ list_files({})" in out
    assert "notes.txt" in out  # the tool's short result
    assert out.rstrip().endswith("You have notes.txt.")
    assert "✓ completed in 2 steps" in err


def test_a_reply_cut_at_the_token_limit_is_shown_by_run_and_carried_by_json(env: Stack, capsys: Any) -> None:
    cut = {"finish_reason": "length"}  # the stop reason ChatOpenAI reports for a reply cut at max_tokens
    apply_agent(env, "cut", [{"content": "The beginning of a long ans", "response_metadata": cut}])
    code, out, err = invoke(capsys, "run", "cut", "Write a lot")
    assert code == 0, err
    assert out.rstrip() == "The beginning of a long ans"  # the warning is on stderr: a redirected answer stays clean
    assert "! the reply was cut at the token limit: raise llm.max_tokens" in err
    assert "(the answer was cut at the token limit)" in err.splitlines()[-2]  # the summary, before the usage line
    assert err.splitlines()[-1].startswith("usage: ")
    code, out, _ = invoke(capsys, "run", "cut", "Write a lot", "--json")
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["data"]["step"] for e in events if e["type"] == "truncated"] == [1]
    assert events[-1]["type"] == "completed" and events[-1]["data"]["truncated"] is True


def test_a_failed_run_exits_non_zero_with_the_error(env: Stack, capsys: Any) -> None:
    apply_agent(env, "looper", [{"content": "", "tool_calls": [{"name": "list_files", "args": {}}]}],
                tools=["workspace"], maxSteps=1)
    code, out, _err = invoke(capsys, "run", "looper", "go", "--json")
    assert code == 1
    last = json.loads(out.splitlines()[-1])
    assert last["type"] == "failed" and "maxSteps" in last["data"]["error"]


def test_detach_then_execution_commands(env: Stack, capsys: Any) -> None:
    apply_agent(env, "later", [{"content": "Done later."}])
    code, out, _ = invoke(capsys, "run", "later", "go", "--detach")
    assert code == 0
    execution_id = out.strip()
    code, out, _ = invoke(capsys, "execution", "logs", execution_id, "-f", "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["type"] == "completed"
    code, out, _ = invoke(capsys, "execution", "get", execution_id)
    assert "completed" in out and "Done later." in out
    code, out, _ = invoke(capsys, "execution", "list")
    assert execution_id in out
    code, out, _ = invoke(capsys, "get", "executions", "-o", "json")
    assert execution_id in {item["id"] for item in json.loads(out)}
    code, _, err = invoke(capsys, "execution", "cancel", execution_id)
    assert code == 2 and "already completed" in err


def test_a_run_whose_runner_never_posts_its_end_is_reconciled_with_temporal(
        temporal_server: TemporalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner here has no event sink: only Temporal knows the execution completed."""
    from stigmer.daemon import _reconcile

    monkeypatch.setattr(_reconcile, "GRACE_S", 0.0)
    monkeypatch.setenv("STIGMER_PLUGINS", PLUGIN)
    cfg = scripted_config(tmp_path / "home", temporal_server.address,
                          STIGMER_RUNNER_TASK_QUEUE=f"test-{uuid.uuid4().hex[:8]}")
    script = write_script(tmp_path / "s.json", [{"content": "Silent answer."}])
    doc = {"apiVersion": "agentic.stigmer.ai/v1", "kind": "Agent", "metadata": {"name": "quiet"},
           "spec": {"instructions": "x", "model": f"scripted:{script}"}}
    ctx = make_context(cfg, real_client(cfg), reconcile_interval_s=0.2)
    with serve_api(ctx, publish=False) as api, WorkerThread(cfg), \
            httpx.Client(base_url=api.url, headers=api.headers(), timeout=30) as http:
        http.post("/v1/apply", json={"documents": [doc]}).raise_for_status()
        execution_id = http.post("/v1/executions", json={"agent": "quiet", "message": "hi"}).json()["id"]
        # no GET meanwhile: the daemon's periodic reconciliation alone must notice (read straight from the store)
        store, deadline = Store.open(ctx.store_path), time.monotonic() + 30
        while store.get_execution(execution_id)["status"] != "completed":
            assert time.monotonic() < deadline, store.get_execution(execution_id)
            time.sleep(0.05)
        store.close()
        current = http.get(f"/v1/executions/{execution_id}").json()
        with http.stream("GET", f"/v1/executions/{execution_id}/events") as response:
            events = [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]
    assert current["output"] == "Silent answer."
    assert [e["type"] for e in events] == ["completed"] and events[0]["data"]["reconciled"] is True


def test_the_renderer_prints_a_non_streamed_reply_once_and_marks_retries() -> None:
    import io

    from stigmer.cli.run import Renderer

    out, err = io.StringIO(), io.StringIO()
    renderer = Renderer(out, err)
    for kind, data in (("step_started", {"step": 1, "attempt": 1}), ("token", {"step": 1, "text": "Hal"}),
                       ("step_started", {"step": 1, "attempt": 2}), ("token", {"step": 1, "text": "Hello."}),
                       ("message", {"step": 1, "content": "Hello."}),
                       ("message", {"step": 2, "content": "Unstreamed answer."}),
                       ("completed", {"output": "Unstreamed answer.", "steps": 2})):
        renderer.show({"type": kind, "data": data}, 0.0)
    lines = out.getvalue().splitlines()
    assert lines == ["Hal", "↻ step 1: retrying (attempt 2)", "Hello.", "Unstreamed answer."]
    assert "✓ completed in 2 steps" in err.getvalue()


def test_the_renderer_warns_of_a_cut_reply_with_its_budget_after_the_streamed_text() -> None:
    import io

    from stigmer.cli.run import Renderer

    out, err = io.StringIO(), io.StringIO()
    renderer = Renderer(out, err)
    for kind, data in (("token", {"step": 1, "text": "Half a sent"}), ("truncated", {"step": 1, "max_tokens": 1024})):
        renderer.show({"type": kind, "data": data}, 0.0)
    assert out.getvalue() == "Half a sent\n"  # the warning does not land in the middle of the answer's line
    assert err.getvalue().startswith("! the reply was cut at the token limit (max_tokens 1024): raise llm.max_tokens")


def test_ctrl_c_detaches_then_cancel_ends_the_execution_as_cancelled(env: Stack, capsys: Any) -> None:
    import os
    import signal
    import subprocess
    import sys

    apply_agent(env, "slow", [{"content": "Too late.", "delay": 60}])
    child = subprocess.Popen([sys.executable, "-m", "stigmer", "run", "slow", "take your time"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "STIGMER_HOME": str(env.home)})
    assert child.stderr is not None
    header = child.stderr.readline()  # printed once the execution started and the stream is being opened
    assert header.startswith("execution "), header
    execution_id = header.split()[1]
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 130
    assert f"stigmer execution logs {execution_id} -f" in err and "Traceback" not in err

    code, out, _ = invoke(capsys, "execution", "cancel", execution_id)
    assert code == 0 and "cancel requested" in out
    code, out, _ = invoke(capsys, "execution", "logs", execution_id, "-f", "--json")
    last = json.loads(out.splitlines()[-1])
    assert code == 1 and last["type"] == "failed" and last["data"]["cancelled"] is True
    code, out, _ = invoke(capsys, "execution", "get", execution_id, "-o", "json")
    assert json.loads(out)["status"] == "cancelled"


async def test_a_run_that_continues_as_new_is_one_execution_with_one_stream(
        env: Stack, temporal_server: TemporalServer) -> None:
    """Issue 11: a plain run continues as new after 250 model calls (``Tunables.can_after_steps``). Through the API
    it is still one execution: one record with every step and all the usage, one event stream numbered without a
    gap, one ``model_resolved`` and one ``completed``."""
    from temporalio.client import Client

    steps = [{"content": "", "tool_calls": [{"name": "lookup", "args": {"n": i}}]} for i in range(259)]
    script = write_script(env.scripts / f"long-{uuid.uuid4().hex[:6]}.json", [*steps, {"content": "All looked up."}],
                          record=False)
    doc = {"apiVersion": "agentic.stigmer.ai/v1", "kind": "Agent", "metadata": {"name": "long"},
           "spec": {"instructions": "Look everything up.", "model": f"scripted:{script}", "maxSteps": 300}}
    async with httpx.AsyncClient(base_url=env.api.url, headers=env.api.headers(), timeout=300) as http:
        (await http.post("/v1/apply", json={"documents": [doc]})).raise_for_status()
        execution = (await http.post("/v1/executions", json={"agent": "long", "message": "go"})).json()
        async with http.stream("GET", f"/v1/executions/{execution['id']}/events") as response:
            events = [json.loads(line[5:]) async for line in response.aiter_lines() if line.startswith("data:")]
        final = (await http.get(f"/v1/executions/{execution['id']}")).json()
    assert (final["status"], final["output"], final["steps"]) == ("completed", "All looked up.", 260)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    types = [e["type"] for e in events]
    assert types.count("model_resolved") == 1 and types.count("completed") == 1 and types[-1] == "completed"
    assert [e["data"]["step"] for e in events if e["type"] == "step_started"] == list(range(1, 261))
    total = events[-1]["data"]["usage"]
    assert total["model_calls"] == 260  # every call of both runs counted, and the record says the same
    assert {k: final["usage"][k] for k in ("input_tokens", "output_tokens")} == {
        k: total[k] for k in ("input_tokens", "output_tokens")}
    client = await Client.connect(temporal_server.address)
    history = await client.get_workflow_handle(f"stigmer-exec-{execution['id']}").fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    assert started.continued_execution_run_id  # the run that finished it is not the first
