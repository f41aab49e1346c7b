"""A runner's terminal event sticks only when Temporal agrees: a forged ``completed`` cannot end a run.

The real API, a real Temporal dev server and a real runner (in this process) posting its events
with the runner token, as the daemon's runners do. A forger holds the same runner token. What a
user would notice: an execution's answer is the one its workflow returned, never a posted one;
the real ``completed``/``failed``/cancelled events still end their streams, right after the
workflow closes.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.daemon_api import ApiServer, WorkerThread, make_context, real_client, scripted_config, serve_api
from tests.support.scripted_provider import PLUGIN, write_script
from tests.support.temporal import TemporalServer

pytestmark = pytest.mark.slow

VERIFY_TIMEOUT_S = 1.5  # how long a runner's terminal event may wait for its workflow to close, here


@dataclass
class Stack:
    api: ApiServer
    scripts: Path

    def http(self, runner: bool = False) -> httpx.Client:
        headers = self.api.runner_headers() if runner else self.api.headers()
        return httpx.Client(base_url=self.api.url, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def stack(temporal_server: TemporalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("forged-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STIGMER_HOME", str(home))
        mp.setenv("STIGMER_PLUGINS", PLUGIN)
        cfg = scripted_config(home, temporal_server.address, STIGMER_RUNNER_TASK_QUEUE=f"test-{uuid.uuid4().hex[:8]}")
        ctx = make_context(cfg, real_client(cfg), verify_timeout_s=VERIFY_TIMEOUT_S)
        with serve_api(ctx) as api:
            mp.setenv("STIGMER_SERVER_URL", api.url)
            mp.setenv("STIGMER_SERVER_TOKEN", api.runner_token)  # as the daemon gives its runners
            with WorkerThread(cfg):
                yield Stack(api, tmp_path_factory.mktemp("scripts"))


def start(stack: Stack, steps: list[dict[str, Any]], **spec: Any) -> str:
    name = f"a-{uuid.uuid4().hex[:6]}"
    script = write_script(stack.scripts / f"{name}.json", steps)
    doc = {"apiVersion": "agentic.stigmer.ai/v1", "kind": "Agent", "metadata": {"name": name},
           "spec": {"instructions": "Be helpful.", "model": f"scripted:{script}", **spec}}
    with stack.http() as http:
        http.post("/v1/apply", json={"documents": [doc]}).raise_for_status()
        started = http.post("/v1/executions", json={"agent": name, "message": "hi"})
        started.raise_for_status()
        return str(started.json()["id"])


def forge(stack: Stack, execution_id: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    with stack.http(runner=True) as runner:
        response = runner.post("/v1/events", json={"events": [
            {"id": uuid.uuid4().hex, "execution_id": execution_id, "type": kind, "data": data, "ts": time.time()}]})
        response.raise_for_status()
        return dict(response.json())


def follow(stack: Stack, execution_id: str) -> list[tuple[float, dict[str, Any]]]:
    """The whole stream, live, to its end: (arrival time, event) each."""
    with stack.http() as http, http.stream("GET", f"/v1/executions/{execution_id}/events") as response:
        return [(time.time(), json.loads(line[5:])) for line in response.iter_lines() if line.startswith("data:")]


def record(stack: Stack, execution_id: str) -> dict[str, Any]:
    with stack.http() as http:
        return dict(http.get(f"/v1/executions/{execution_id}").json())


def test_a_forged_completed_for_a_running_execution_does_not_stick(stack: Stack,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    execution_id = start(stack, [{"content": "The real answer.", "delay": 2 * VERIFY_TIMEOUT_S}])
    with caplog.at_level(logging.WARNING, logger="stigmer.daemon.verify"):
        answer = forge(stack, execution_id, "completed", {"output": "FORGED", "steps": 1})
        assert answer == {"stored": 0, "verifying": 1, "ignored": 0}
        assert record(stack, execution_id)["status"] in ("pending", "running")  # not ended by a POST
        events = [event for _, event in follow(stack, execution_id)]
    final = record(stack, execution_id)
    assert (final["status"], final["output"]) == ("completed", "The real answer.")
    assert events[-1]["type"] == "completed" and events[-1]["data"]["output"] == "The real answer."
    assert "reconciled" not in events[-1]["data"]  # the runner's own event, confirmed by Temporal
    assert "FORGED" not in json.dumps(events)
    warning = "did not close within"
    assert any(warning in r.getMessage() and execution_id in r.getMessage() for r in caplog.records), caplog.text
    assert "FORGED" not in caplog.text and stack.api.runner_token not in caplog.text


def test_a_forged_answer_for_a_finishing_execution_loses_to_temporals(stack: Stack,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    execution_id = start(stack, [{"content": "Truth.", "delay": VERIFY_TIMEOUT_S / 3}])
    with caplog.at_level(logging.WARNING, logger="stigmer.daemon.verify"):
        assert forge(stack, execution_id, "completed", {"output": "Lies.", "steps": 1})["verifying"] == 1
        events = [event for _, event in follow(stack, execution_id)]
        deadline = time.monotonic() + 10  # the forged event's verification ends right after the close
        while not any("different answer" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.02)
    assert [e["data"]["output"] for e in events if e["type"] == "completed"] == ["Truth."]
    assert record(stack, execution_id)["output"] == "Truth."
    assert "Lies." not in json.dumps(events)
    # and once it has ended, a forged terminal event is not even considered
    assert forge(stack, execution_id, "failed", {"error": "forged"}) == {"stored": 0, "verifying": 0, "ignored": 1}
    assert record(stack, execution_id)["status"] == "completed"


def test_a_forged_failure_does_not_end_a_running_execution(stack: Stack) -> None:
    execution_id = start(stack, [{"content": "Fine.", "delay": 2 * VERIFY_TIMEOUT_S}])
    assert forge(stack, execution_id, "failed", {"error": "forged failure"})["verifying"] == 1
    events = [event for _, event in follow(stack, execution_id)]
    assert [e["type"] for e in events if e["type"] in ("completed", "failed")] == ["completed"]
    assert record(stack, execution_id)["error"] is None


def test_the_runners_real_failed_and_cancelled_events_are_confirmed(stack: Stack) -> None:
    failing = start(stack, [{"content": "", "tool_calls": [{"name": "list_files", "args": {}}]}], tools=["workspace"],
                    maxSteps=1)
    events = [event for _, event in follow(stack, failing)]
    assert events[-1]["type"] == "failed" and "maxSteps" in events[-1]["data"]["error"]
    assert "reconciled" not in events[-1]["data"]
    assert record(stack, failing)["status"] == "failed"

    slow = start(stack, [{"content": "Too late.", "delay": 30}])
    with stack.http() as http:
        deadline = time.monotonic() + 30
        while record(stack, slow)["status"] != "running":  # the model call has begun
            assert time.monotonic() < deadline
            time.sleep(0.05)
        http.post(f"/v1/executions/{slow}/cancel").raise_for_status()
    events = [event for _, event in follow(stack, slow)]
    assert events[-1]["type"] == "failed" and events[-1]["data"].get("cancelled") is True
    assert "reconciled" not in events[-1]["data"]
    assert record(stack, slow)["status"] == "cancelled"


def test_a_confirmed_completed_event_arrives_right_after_the_workflow_closes(stack: Stack) -> None:
    """Verification waits for the close with a long poll: the stream's end is not delayed by a timer."""
    import asyncio

    from stigmer.worker.client import connect

    lags = []
    for _ in range(3):
        execution_id = start(stack, [{"content": "Quick."}])
        arrived, last = follow(stack, execution_id)[-1]
        assert last["type"] == "completed" and "reconciled" not in last["data"]

        async def closed_at(workflow_id: str) -> float:
            client = await connect(stack.api.ctx.config)
            description = await client.get_workflow_handle(workflow_id).describe()
            assert description.close_time is not None
            return description.close_time.timestamp()

        lags.append(arrived - asyncio.run(closed_at(f"stigmer-exec-{execution_id}")))
    print(f"completed event arrival after the workflow's close, seconds: {[round(lag, 3) for lag in lags]}")
    assert sorted(lags)[1] < 0.25, lags
