"""The runner that picks an execution up decides its model: ``stigmer run --model`` > the agent's ``spec.model`` >
the runner's own configuration (flag or env, as a deployment configures it), through the runner's own
``llm.base_url``; the choice is pinned in history before the first model call and announced as ``model_resolved``.
(That a replay or a retry on a differently configured runner keeps the pinned model is in test_worker_durability.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowFailureError

from stigmer.config import Config
from tests.support.agents import EventCollector, runner_env, running, spawn_runner, start, wait_for
from tests.support.codec import codec_client
from tests.support.daemon_api import (
    ApiServer,
    WorkerThread,
    invoke,
    make_context,
    real_client,
    scripted_config,
    serve_api,
)
from tests.support.ollama_double import OllamaDouble, start_ollama_double
from tests.support.scripted_provider import PLUGIN, read_calls, write_script
from tests.support.temporal import TemporalServer

pytestmark = pytest.mark.slow

V1 = "agentic.stigmer.ai/v1"


def unpinned(message: str = "go", *, name: str | None = None, source: str = "runner") -> Any:
    """An execution as the daemon starts it: the model asked for (or none), nothing resolved yet."""
    from stigmer.worker.params import ExecutionInput
    from tests.support.agents import agent

    return ExecutionInput(execution_id=uuid.uuid4().hex[:12], agent_name="tester", agent=agent(), message=message,
                          model_name=name, model_source=source, by_ref=True, final_in_call=True)


def agent_doc(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": V1, "kind": "Agent", "metadata": {"name": name},
            "spec": {"instructions": "Answer briefly.", **spec}}


async def test_a_runner_runs_an_execution_that_names_no_model_on_its_own_configured_model(
        tmp_path: Path, temporal_server: TemporalServer) -> None:
    flagged = write_script(tmp_path / "flag.json", [{"content": "From the runner's --llm-model."}])
    from_env = write_script(tmp_path / "env.json", [{"content": "From the runner's environment."}])
    queue = f"model-{uuid.uuid4().hex[:8]}"
    client = await codec_client(temporal_server.address)
    log = tmp_path / "runner.log"
    with EventCollector() as collector:
        env = runner_env(temporal_server.address, queue, {**collector.env(), "STIGMER_LLM_MODEL": from_env})
        with running(spawn_runner(env, log, "--llm-model", flagged)):
            inp = unpinned()
            result = await (await start(client, inp, queue)).result()
            wait_for(lambda: any(e["type"] == "completed" for e in collector.of(inp.execution_id)), what="completed")
        events = collector.of(inp.execution_id)
    assert result.output == "From the runner's --llm-model."
    assert read_calls(from_env) == []
    resolved = [e["data"] for e in events if e["type"] == "model_resolved"]
    assert resolved == [{"model": {"provider": "scripted", "model": flagged, "base_url": None, "params": {},
                                   "reason": resolved[0]["model"]["reason"]},
                         "source": "runner", "origin": "flag --llm-model"}]
    types = [e["type"] for e in events]
    assert types.index("model_resolved") < types.index("step_started")  # pinned before the first model call
    assert f"model={flagged} (flag --llm-model)" in log.read_text()  # the startup log says which and why


async def test_a_model_the_runner_cannot_resolve_fails_the_execution_at_once(
        tmp_path: Path, temporal_server: TemporalServer) -> None:
    queue = f"model-{uuid.uuid4().hex[:8]}"
    client = await codec_client(temporal_server.address)
    with EventCollector() as collector:
        env = runner_env(temporal_server.address, queue, collector.env())
        with running(spawn_runner(env, tmp_path / "runner.log")):
            inp = unpinned(name="nosuch-model-xyz", source="agent")
            handle = await start(client, inp, queue)
            # Not retried: with the retry policy's backoff, 8 attempts would take minutes.
            with pytest.raises(WorkflowFailureError) as info:
                await asyncio.wait_for(handle.result(), 30)
            wait_for(lambda: any(e["type"] == "failed" for e in collector.of(inp.execution_id)), what="failed")
        failed = [e["data"] for e in collector.of(inp.execution_id) if e["type"] == "failed"]
    assert "unknown model 'nosuch-model-xyz'" in str(info.value.cause)
    assert "unknown model 'nosuch-model-xyz'" in failed[0]["error"] and "provider:model" in failed[0]["error"]


@contextlib.contextmanager
def split(temporal: TemporalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, daemon: dict[str, str],
          runner: dict[str, str]) -> Iterator[ApiServer]:
    """A daemon and a runner configured differently, as a runner deployed on another host is: same Temporal
    and task queue, each its own LLM settings. ``stigmer`` commands in this test talk to this daemon."""
    monkeypatch.setenv("STIGMER_PLUGINS", PLUGIN)
    queue = f"split-{uuid.uuid4().hex[:8]}"
    daemon_cfg = scripted_config(tmp_path / "daemon", temporal.address, STIGMER_RUNNER_TASK_QUEUE=queue, **daemon)
    runner_cfg: Config = scripted_config(tmp_path / "runner", temporal.address, STIGMER_RUNNER_TASK_QUEUE=queue,
                                         **runner)
    monkeypatch.setenv("STIGMER_HOME", str(daemon_cfg.home))
    with serve_api(make_context(daemon_cfg, real_client(daemon_cfg))) as api:
        monkeypatch.setenv("STIGMER_SERVER_URL", api.url)
        monkeypatch.setenv("STIGMER_SERVER_TOKEN", api.token)
        with WorkerThread(runner_cfg):
            yield api


def apply(api: ApiServer, *docs: dict[str, Any]) -> None:
    with httpx.Client(base_url=api.url, headers=api.headers()) as http:
        http.post("/v1/apply", json={"documents": list(docs)}).raise_for_status()


def test_run_model_beats_the_agents_which_beats_the_runners(
        temporal_server: TemporalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    scripts = {who: write_script(tmp_path / f"{who}.json", [{"content": f"Answered by the {who}'s model."}])
               for who in ("daemon", "runner", "agent", "run")}
    with split(temporal_server, tmp_path, monkeypatch, {"STIGMER_LLM_MODEL": scripts["daemon"]},
               {"STIGMER_LLM_MODEL": scripts["runner"]}) as api:
        apply(api, agent_doc("plain"), agent_doc("pinned", model=f"scripted:{scripts['agent']}"))
        ran = {"runner": invoke(capsys, "run", "plain", "hi"), "agent": invoke(capsys, "run", "pinned", "hi"),
               "run": invoke(capsys, "run", "pinned", "hi", "--model", f"scripted:{scripts['run']}")}
        code, listed, _ = invoke(capsys, "execution", "list", "-o", "json")
    assert code == 0
    records = {item["model_source"]: item["model"]["model"] for item in json.loads(listed)}
    assert records == {who: scripts[who] for who in ("runner", "agent", "run")}  # the record says who won
    origins = {"runner": "env STIGMER_LLM_MODEL", "agent": "agent pinned spec.model", "run": "stigmer run --model"}
    for who, (code, out, err) in ran.items():
        assert code == 0, err
        assert out.strip() == f"Answered by the {who}'s model."
        assert f"model scripted:{scripts[who]} ({who}: {origins[who]})" in err
    assert read_calls(scripts["daemon"]) == []  # the daemon's own model was only its expectation


@pytest.fixture
def doubles() -> Iterator[tuple[OllamaDouble, OllamaDouble]]:
    daemons, runners = start_ollama_double(), start_ollama_double()
    for double, who in ((daemons, "daemon"), (runners, "runner")):
        double.add_model("qwen2.5-coder:7b", reply=f"Hello from the {who}'s Ollama.")
        double.add_model("llama3.2:3b", tools=who == "daemon", reply=f"Hello from the {who}'s Ollama.")
    yield daemons, runners
    daemons.stop()
    runners.stop()


def test_the_runner_reaches_its_own_model_server_through_its_llm_base_url(
        temporal_server: TemporalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any,
        doubles: tuple[OllamaDouble, OllamaDouble]) -> None:
    daemons, runners = doubles
    ollama = {"STIGMER_LLM_PROVIDER": "ollama", "STIGMER_LLM_MODEL": "qwen2.5-coder:7b"}
    with split(temporal_server, tmp_path, monkeypatch, {**ollama, "STIGMER_LLM_BASE_URL": daemons.url},
               {**ollama, "STIGMER_LLM_BASE_URL": runners.url}) as api:
        apply(api, agent_doc("plain"), agent_doc("files", tools=["workspace"]))
        code, out, err = invoke(capsys, "run", "plain", "hi")
        assert code == 0, err
        assert out.strip() == "Hello from the runner's Ollama."
        assert daemons.chat_requests() == [] and len(runners.chat_requests()) == 1
        # Named by the run, checked by the daemon against its own server (tools: yes), then by the runner
        # against the one it will call (tools: no): the runner's check is the one that counts, and emulates them.
        code, out, err = invoke(capsys, "run", "files", "list them", "--model", "ollama:llama3.2:3b", "--json")
    assert code == 0, err
    resolved = [json.loads(line) for line in out.splitlines() if '"type": "model_resolved"' in line]
    assert resolved and resolved[0]["data"]["tool_calls"]["mode"] == "emulated", out
    assert resolved[0]["data"]["model"]["tool_calls"] == "emulated"
    assert daemons.chat_requests() == [] and runners.chat_requests()[-1]["format"]["oneOf"]
