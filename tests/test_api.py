"""The daemon's HTTP API, served by uvicorn on loopback, with a stand-in Temporal client.

What a client of the API would notice: the token is required, bad payloads name the field,
applies are all-or-nothing, executions start with the model asked for, and event streams replay,
go live, and end with the execution's last event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stigmer.config import Config
from tests.support.backends import both_backends  # noqa: F401  (each test on SQLite and PostgreSQL)
from tests.support.daemon_api import ApiServer, FakeTemporal, fake_client, make_context, scripted_config, serve_api
from tests.support.scripted_provider import PLUGIN

V1 = "agentic.stigmer.ai/v1"


def agent(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": V1, "kind": "Agent", "metadata": {"name": name},
            "spec": {"instructions": "Answer briefly.", **spec}}


def server_doc(name: str) -> dict[str, Any]:
    return {"apiVersion": V1, "kind": "McpServer", "metadata": {"name": name},
            "spec": {"stdio": {"command": "python", "args": ["-m", "time_server"]}}}


@pytest.fixture
def cfg(stigmer_home: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("STIGMER_PLUGINS", PLUGIN)
    return scripted_config(stigmer_home, ANTHROPIC_API_KEY="sk-ant-secret-0000")


@pytest.fixture
def api(cfg: Config, temporal: FakeTemporal, database_url: str | None) -> Iterator[ApiServer]:
    with serve_api(make_context(cfg, fake_client(temporal), database_url=database_url), publish=False) as served:
        yield served


def test_health_is_open_and_everything_else_needs_the_token(api: ApiServer) -> None:
    assert httpx.get(f"{api.url}/v1/health").json() == {"ok": True}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": api.token}):
        response = httpx.get(f"{api.url}/v1/agents", headers=headers)
        assert response.status_code == 401
        assert "run/token" in response.json()["hint"]
    assert httpx.post(f"{api.url}/v1/events", json={"events": []}).status_code == 401


def test_status_and_config_show_the_active_model_and_no_secret(http: httpx.Client) -> None:
    status = http.get("/v1/status").json()
    assert status["llm"]["provider"]["value"] == "scripted"
    assert status["llm"]["provider"]["source"] == "env"
    assert isinstance(status["components"], list)
    config_text = http.get("/v1/config").text
    assert "sk-ant-secret-0000" not in config_text


def test_a_bad_payload_gets_422_naming_the_field(http: httpx.Client) -> None:
    response = http.post("/v1/executions", json={"agent": "hello"})
    assert response.status_code == 422
    assert "body.message" in response.json()["detail"]
    response = http.post("/v1/apply", json={"documents": "nope"})
    assert response.status_code == 422
    assert "body.documents" in response.json()["detail"]


def test_a_failed_apply_writes_nothing_and_names_the_document_and_field(http: httpx.Client) -> None:
    bad = {"apiVersion": V1, "kind": "Agent", "metadata": {"name": "broken"}, "spec": {}}
    response = http.post("/v1/apply", json={"documents": [agent("good"), bad]})
    assert response.status_code == 422
    assert "document 2" in response.json()["detail"] and "spec.instructions" in response.json()["detail"]
    assert http.get("/v1/agents").json()["items"] == []


def test_an_agent_naming_an_unknown_mcp_server_is_refused_with_did_you_mean(http: httpx.Client) -> None:
    response = http.post("/v1/apply", json={"documents": [server_doc("time"), agent("clock", mcpServers=["tiem"])]})
    assert response.status_code == 422
    assert "spec.mcpServers[0]: unknown server 'tiem', did you mean 'time'?" in response.json()["detail"]
    assert http.get("/v1/mcpservers").json()["items"] == []


def test_apply_get_and_delete_resources(http: httpx.Client) -> None:
    docs = [server_doc("time"), agent("clock", mcpServers=["time"])]
    outcomes = [r["outcome"] for r in http.post("/v1/apply", json={"documents": docs}).json()["results"]]
    assert outcomes == ["created", "created"]
    docs[1] = agent("clock", mcpServers=["time"], maxSteps=5)
    outcomes = [r["outcome"] for r in http.post("/v1/apply", json={"documents": docs}).json()["results"]]
    assert outcomes == ["unchanged", "updated"]
    assert http.get("/v1/agents/clock").json()["document"]["spec"]["maxSteps"] == 5
    # a server in use cannot be deleted; a missing agent gets a did-you-mean
    in_use = http.delete("/v1/mcpservers/time")
    assert in_use.status_code == 409 and "clock" in in_use.json()["detail"]
    missing = http.get("/v1/agents/clok")
    assert missing.status_code == 404 and "did you mean 'clock'" in missing.json()["detail"]
    assert http.delete("/v1/agents/clock").json() == {"deleted": {"kind": "Agent", "name": "clock"}}
    assert http.delete("/v1/mcpservers/time").status_code == 200
    assert http.get("/v1/agents").json()["items"] == []


def test_starting_an_execution_asks_for_the_model_and_inlines_the_servers(
        http: httpx.Client, temporal: FakeTemporal, tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    http.post("/v1/apply", json={"documents": [server_doc("time"), agent("clock", mcpServers=["time"])]})
    response = http.post("/v1/executions", json={"agent": "clock", "message": "What time is it?",
                                                 "model": f"scripted:{script}"})
    assert response.status_code == 201, response.text
    execution = response.json()
    assert execution["status"] == "pending"
    started = temporal.started[0]
    assert started["id"] == f"stigmer-exec-{execution['id']}"
    assert started["task_queue"] == "stigmer-agents"
    params = started["input"]
    # The runner pins the model (stigmer.resolve_model); the daemon passes what was asked for and by whom.
    assert (params.model, params.model_name, params.model_source) == (None, f"scripted:{script}", "run")
    assert (execution["model"]["provider"], execution["model"]["model"]) == ("scripted", str(script))
    assert params.agent["mcpServers"][0]["name"] == "time"
    assert params.agent["mcpServers"][0]["stdio"]["command"] == "python"
    assert Path(params.workspace).is_dir()
    assert "sk-ant-secret-0000" not in repr(params)
    assert http.get(f"/v1/executions/{execution['id']}").json()["agent"] == "clock"


def test_the_model_asked_for_comes_from_the_run_else_the_agent_else_the_runner(
        http: httpx.Client, temporal: FakeTemporal) -> None:
    http.post("/v1/apply", json={"documents": [agent("pinned", model="scripted:agent.json"), agent("plain")]})
    for body in ({"agent": "pinned", "model": "scripted:run.json"}, {"agent": "pinned"}, {"agent": "plain"}):
        assert http.post("/v1/executions", json={**body, "message": "hi"}).status_code == 201
    asked = [(s["input"].model_name, s["input"].model_source) for s in temporal.started]
    assert asked == [("scripted:run.json", "run"), ("scripted:agent.json", "agent"), (None, "runner")]


def test_without_runners_of_its_own_the_daemon_leaves_an_unknown_model_name_to_the_runners(
        stigmer_home: Path, monkeypatch: pytest.MonkeyPatch, temporal: FakeTemporal) -> None:
    """Remote runners have their own configuration (aliases, model servers): only they can say no."""
    monkeypatch.setenv("STIGMER_PLUGINS", PLUGIN)
    remote = scripted_config(stigmer_home, STIGMER_RUNNER_WORKERS="0")
    with serve_api(make_context(remote, fake_client(temporal)), publish=False) as api, \
            httpx.Client(base_url=api.url, headers=api.headers(), timeout=10) as client:
        client.post("/v1/apply", json={"documents": [agent("hello")]})
        response = client.post("/v1/executions", json={"agent": "hello", "message": "hi", "model": "team-fast"})
    assert response.status_code == 201, response.text
    assert temporal.started[0]["input"].model_name == "team-fast"
    assert response.json()["model"]["model"] == "team-fast"


def test_with_runners_of_its_own_an_unknown_model_name_is_refused_at_once(
        http: httpx.Client, temporal: FakeTemporal) -> None:
    http.post("/v1/apply", json={"documents": [agent("hello")]})
    response = http.post("/v1/executions", json={"agent": "hello", "message": "hi", "model": "team-fast"})
    assert response.status_code == 400
    assert "unknown model 'team-fast'" in response.json()["detail"]
    assert temporal.started == []


def test_an_unknown_agent_is_a_404_with_did_you_mean(http: httpx.Client, temporal: FakeTemporal) -> None:
    http.post("/v1/apply", json={"documents": [agent("hello")]})
    response = http.post("/v1/executions", json={"agent": "helo", "message": "hi"})
    assert response.status_code == 404
    assert "did you mean 'hello'" in response.json()["detail"]
    assert temporal.started == []


def test_a_model_without_tools_fails_before_the_run(
        http: httpx.Client, temporal: FakeTemporal, monkeypatch: pytest.MonkeyPatch) -> None:
    from stigmer.providers.base import Capabilities
    from tests.support.scripted_provider import ScriptedProvider

    monkeypatch.setattr(ScriptedProvider, "capabilities", lambda self, spec, cfg: Capabilities(tools=False))
    http.post("/v1/apply", json={"documents": [agent("files", tools=["workspace"])]})
    response = http.post("/v1/executions", json={"agent": "files", "message": "list", "model": "scripted:x.json"})
    assert response.status_code == 400
    assert "does not support tool calling" in response.json()["detail"]
    assert temporal.started == []
    assert http.get("/v1/executions").json()["items"] == []


def test_when_temporal_fails_no_execution_is_left_behind(http: httpx.Client, temporal: FakeTemporal) -> None:
    temporal.fail = RuntimeError("connection refused")
    http.post("/v1/apply", json={"documents": [agent("hello")]})
    response = http.post("/v1/executions", json={"agent": "hello", "message": "hi", "model": "scripted:x.json"})
    assert response.status_code == 503
    assert "connection refused" in response.json()["detail"]
    assert http.get("/v1/executions").json()["items"] == []


def start(http: httpx.Client) -> str:
    http.post("/v1/apply", json={"documents": [agent("hello")]})
    response = http.post("/v1/executions", json={"agent": "hello", "message": "hi", "model": "scripted:x.json"})
    return str(response.json()["id"])


def post(http: httpx.Client, execution_id: str, *events: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    body = {"events": [{"execution_id": execution_id, "type": t, "data": d, "ts": 1.0} for t, d in events]}
    result: dict[str, Any] = http.post("/v1/events", json=body).json()
    return result


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.startswith("data:"):
            yield json.loads(line[5:])


def test_an_event_stream_replays_then_goes_live_then_ends_with_the_last_event(http: httpx.Client) -> None:
    execution_id = start(http)
    post(http, execution_id, ("step_started", {"step": 1}), ("token", {"text": "Hel"}))
    seen: list[tuple[int, str]] = []
    with http.stream("GET", f"/v1/executions/{execution_id}/events", params={"after": 0}) as response:
        events = sse_events(response.iter_lines())
        for _ in range(2):
            event = next(events)
            seen.append((event["seq"], event["type"]))
        # live from here: posted while the subscriber is connected
        post(http, execution_id, ("token", {"text": "lo"}), ("completed", {"output": "Hello", "steps": 1}))
        seen.extend((event["seq"], event["type"]) for event in events)  # ends by itself after `completed`
    assert seen == [(1, "step_started"), (2, "token"), (3, "token"), (4, "completed")]
    execution = http.get(f"/v1/executions/{execution_id}").json()
    assert (execution["status"], execution["output"], execution["steps"]) == ("completed", "Hello", 1)


def test_a_stream_after_n_replays_only_later_events(http: httpx.Client) -> None:
    execution_id = start(http)
    post(http, execution_id, ("token", {"text": "a"}), ("token", {"text": "b"}), ("failed", {"error": "boom"}))
    with http.stream("GET", f"/v1/executions/{execution_id}/events", params={"after": 1}) as response:
        got = [(e["seq"], e["type"]) for e in sse_events(response.iter_lines())]
    assert got == [(2, "token"), (3, "failed")]
    assert http.get(f"/v1/executions/{execution_id}").json()["error"] == "boom"


def test_cancel_signals_the_workflow_and_a_finished_one_cannot_be_cancelled(
        http: httpx.Client, temporal: FakeTemporal) -> None:
    execution_id = start(http)
    assert http.post(f"/v1/executions/{execution_id}/cancel").json()["cancel_requested"] is True
    assert temporal.signals == [(f"stigmer-exec-{execution_id}", "cancel")]
    post(http, execution_id, ("failed", {"error": "cancelled", "cancelled": True}))
    assert http.get(f"/v1/executions/{execution_id}").json()["status"] == "cancelled"
    again = http.post(f"/v1/executions/{execution_id}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]


def test_events_for_unknown_executions_are_ignored_not_errors(http: httpx.Client) -> None:
    assert post(http, "nope", ("token", {"text": "x"})) == {"stored": 0, "verifying": 0, "ignored": 1}


def test_cancelling_an_execution_temporal_lost_ends_it_and_its_stream(http: httpx.Client, temporal: FakeTemporal
                                                                      ) -> None:
    execution_id = start(http)
    temporal.lost = True
    assert http.post(f"/v1/executions/{execution_id}/cancel").json()["status"] == "cancelled"
    with http.stream("GET", f"/v1/executions/{execution_id}/events") as response:
        got = [(e["type"], e["data"].get("cancelled")) for e in sse_events(response.iter_lines())]
    assert got == [("failed", True)]
