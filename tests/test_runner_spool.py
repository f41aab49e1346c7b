"""A runner on another machine (``stigmer runner --server URL``) keeps its events through a server outage.

What a user would notice: the events a runner could not post while its server was down reach the
server once, in order, when it is back: while the runner still runs, after a clean stop and a restart,
and after a ``kill -9`` and a restart; the spool is gone afterwards. Real runner processes, a real
Temporal dev server, and a stand-in event server (``EventCollector``) that comes up on the port the
runner was told to post to. The in-process tests pin the bounds and who may deliver which spool file.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from stigmer.worker.events import HttpSink, event, make_sink, read_spool
from stigmer.worker.spool import SPOOL_DIR, server_spool_dir
from tests.support.agents import EventCollector, execution, runner_env, running, spawn_runner, start, until, wait_for
from tests.support.codec import codec_client
from tests.support.daemon_api import scripted_config
from tests.support.ports import free_port
from tests.support.scripted_provider import write_script

TOKEN = "test-token"


class Remote:
    """A runner's view of a server at ``port``: its flags, and the spool directory it keeps for that server."""

    def __init__(self, home: Path, tmp_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        token_file = tmp_path / "runner.token"
        token_file.write_text(TOKEN)
        token_file.chmod(0o600)
        self.args = ("--server", self.url, "--token-file", str(token_file))
        self.spool = server_spool_dir(home / "data" / SPOOL_DIR, self.url)

    def files(self) -> list[Path]:
        return sorted(self.spool.glob("events-*")) if self.spool.is_dir() else []

    def kept(self, execution_id: str) -> list[dict[str, Any]]:
        """The execution's events in the spool files, in the order they were made."""
        return [e for _, events in read_spool(self.spool) for e in events if e["execution_id"] == execution_id]


async def _run_during_outage(tmp_path: Path, temporal: Any, remote: Remote, log: Path) -> tuple[Any, Any, dict]:
    """Start a runner posting to ``remote`` (nothing listens), run one execution to its end; the runner goes on."""
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    script = write_script(tmp_path / f"s-{uuid.uuid4().hex[:6]}.json", [
        {"content": "Writing the file now.", "tool_calls": [{"name": "write_file",
                                                             "args": {"path": "x.txt", "content": "1"}}]},
        {"content": "All done."}])
    queue = f"spool-{uuid.uuid4().hex[:8]}"
    env = runner_env(temporal.address, queue)
    client = await codec_client(temporal.address)
    inp = execution(script, workspace=ws, tools=["workspace"])
    proc = spawn_runner(env, log, *remote.args)
    result = await (await start(client, inp, queue)).result()
    assert result.output == "All done."
    return proc, inp, env


def _assert_delivered_once_in_order(collector: EventCollector, kept: list[dict[str, Any]], execution_id: str) -> None:
    got = collector.of(execution_id)
    assert [e["id"] for e in got] == [e["id"] for e in kept]
    types = [e["type"] for e in got]
    assert types[-1] == "completed" and types.count("completed") == 1
    assert {"step_started", "token", "message", "tool_started", "tool_finished"} <= set(types)
    assert collector.rejected == 0


@pytest.mark.slow
async def test_a_runner_stopped_during_an_outage_delivers_its_events_when_it_starts_again(
        tmp_path: Path, stigmer_home: Path, temporal_server: Any) -> None:
    remote = Remote(stigmer_home, tmp_path)
    proc, inp, env = await _run_during_outage(tmp_path, temporal_server, remote, tmp_path / "first.log")
    with running(proc):
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    kept = remote.kept(inp.execution_id)
    assert kept and kept[-1]["type"] == "completed"
    assert "before the runner stopped: kept in" in (tmp_path / "first.log").read_text()
    assert [oct(p.stat().st_mode & 0o777) for p in remote.files()] == ["0o600"]  # the runner released its lock
    with EventCollector(TOKEN, port=remote.port) as collector, \
            running(spawn_runner(env, tmp_path / "again.log", *remote.args)):
        wait_for(lambda: not remote.files(), what="the spool delivered and removed")
        _assert_delivered_once_in_order(collector, kept, inp.execution_id)
    assert f"delivered {len(kept)} spooled event(s)" in (tmp_path / "again.log").read_text()


@pytest.mark.slow
async def test_a_runner_killed_during_an_outage_delivers_what_was_on_disk_when_it_starts_again(
        tmp_path: Path, stigmer_home: Path, temporal_server: Any) -> None:
    remote = Remote(stigmer_home, tmp_path)
    proc, inp, env = await _run_during_outage(tmp_path, temporal_server, remote, tmp_path / "first.log")
    with running(proc):
        # every event reaches the disk before the sink takes the next: the end of the run is there, then kill -9
        wait_for(lambda: any(e["type"] == "completed" for e in remote.kept(inp.execution_id)), what="completed on disk")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    kept = remote.kept(inp.execution_id)
    assert {p.suffix for p in remote.files()} == {".jsonl", ".lock"}  # the dead runner's lock file stays behind
    with EventCollector(TOKEN, port=remote.port) as collector, \
            running(spawn_runner(env, tmp_path / "again.log", *remote.args)):
        wait_for(lambda: not remote.files(), what="the spool delivered, it and its lock removed")
        _assert_delivered_once_in_order(collector, kept, inp.execution_id)


@pytest.mark.slow
async def test_a_server_that_comes_back_while_the_runner_runs_gets_every_event_once(
        tmp_path: Path, stigmer_home: Path, temporal_server: Any) -> None:
    remote = Remote(stigmer_home, tmp_path)
    log = tmp_path / "runner.log"
    proc, inp, _ = await _run_during_outage(tmp_path, temporal_server, remote, log)
    with running(proc):
        wait_for(lambda: any(e["type"] == "completed" for e in remote.kept(inp.execution_id)), what="completed on disk")
        kept = remote.kept(inp.execution_id)
        assert "server unreachable" in log.read_text() and "kept on disk in" in log.read_text()
        with EventCollector(TOKEN, port=remote.port) as collector:
            wait_for(lambda: "reachable again: delivered" in log.read_text(), what="the backlog delivered")
            assert not [p for p in remote.files() if p.suffix == ".jsonl"]
            _assert_delivered_once_in_order(collector, kept, inp.execution_id)


def _tokens(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [event("e1", "token", {"text": f"t{i}"}) for i in range(start, start + n)]


async def test_past_the_memory_bound_events_wait_on_disk_and_past_the_disk_bound_the_oldest_go(
        tmp_path: Path, stigmer_home: Path) -> None:
    remote = Remote(stigmer_home, tmp_path)
    sink = HttpSink(remote.url, TOKEN, max_queued=4, max_spooled=12, max_batch=3, backoff=(0.02, 0.05),
                    spool_dir=remote.spool, resend=True)
    made = _tokens(16)
    try:
        for item in made:  # one at a time, as activities do: memory keeps 4, the file the rest
            await sink.publish([item])
        assert (sink.queued, sink.dropped) == (12, 4)
        on_disk = [e["id"] for _, events in read_spool(remote.spool) for e in events]
        assert on_disk[-12:] == [e["id"] for e in made[4:]]
        with EventCollector(TOKEN, port=remote.port) as collector:
            await until(lambda: len(collector.events) >= 12, what="the backlog delivered")
            await until(lambda: not [p for p in remote.files() if p.suffix == ".jsonl"], what="the spool removed")
            assert [e["id"] for e in collector.events] == [e["id"] for e in made[4:]]
    finally:
        await sink.aclose()
    assert remote.files() == []


async def test_a_live_runners_spool_is_left_to_it_and_delivered_once(tmp_path: Path, stigmer_home: Path) -> None:
    """Two runners share one STIGMER_HOME: the second to start does not take the file the first still writes."""
    remote = Remote(stigmer_home, tmp_path)
    first = HttpSink(remote.url, TOKEN, backoff=(60, 60), close_timeout=5, spool_dir=remote.spool, resend=True)
    await first.publish(_tokens(3))  # the server is down: first keeps them in its spool file, and its lock
    with EventCollector(TOKEN, port=remote.port) as collector:
        second = HttpSink(remote.url, TOKEN, spool_dir=remote.spool, resend=True)
        second.start()
        await second.aclose()
        assert collector.events == [] and len([p for p in remote.files() if p.suffix == ".jsonl"]) == 1
        await first.aclose()  # the server is back: first delivers its own backlog
        assert [e["data"]["text"] for e in collector.events] == ["t0", "t1", "t2"]
    assert remote.files() == []


async def test_a_runner_the_daemon_started_leaves_its_spool_to_the_daemon(stigmer_home: Path) -> None:
    """The daemon stores its runners' spool when it starts: they must not re-send it too, nor must other runners."""
    from stigmer.daemon.runner import runner_env as daemon_runner_env

    base = stigmer_home / "data" / SPOOL_DIR
    down = f"http://127.0.0.1:{free_port()}"
    child_env = daemon_runner_env(scripted_config(stigmer_home), down, TOKEN, "runner-0")  # what the daemon hands on
    managed = make_sink(child_env, spool_dir=base)
    managed.start()
    await managed.publish(_tokens(2))
    await managed.aclose()  # no daemon listens: kept where the daemon's ingest_spool reads
    [(daemon_file, kept)] = list(read_spool(base))
    assert len(kept) == 2
    with EventCollector(TOKEN) as collector:
        again = make_sink({**child_env, **collector.env()}, spool_dir=base)
        again.start()  # its next life leaves the file alone: the daemon stores it
        await again.aclose()
        remote = make_sink(collector.env(), spool_dir=base)
        remote.start()  # so does a runner posting to a server of its own
        await remote.aclose()
        assert collector.events == [] and daemon_file.exists()
    remote_spool = server_spool_dir(base, down)
    sink = make_sink({k: v for k, v in child_env.items() if k != "STIGMER_MANAGED_RUNNER"}, spool_dir=base)
    await sink.publish(_tokens(1))
    await sink.aclose()  # a runner of its own keeps its spool in its server's directory, which the daemon never reads
    assert [p.suffix for p in remote_spool.iterdir()] == [".jsonl"]
    assert [path for path, _ in read_spool(base)] == [daemon_file]


async def test_a_refused_token_leaves_the_spool_for_a_later_start(tmp_path: Path, stigmer_home: Path) -> None:
    remote = Remote(stigmer_home, tmp_path)
    remote.spool.mkdir(parents=True)
    left = remote.spool / "events-1-1.jsonl"
    left.write_text("".join(json.dumps(e) + "\n" for e in _tokens(2)))
    with EventCollector("another-token", port=remote.port) as collector:
        sink = HttpSink(remote.url, TOKEN, spool_dir=remote.spool, resend=True)
        sink.start()
        await until(lambda: collector.rejected == 1, what="the refusal")
        await sink.aclose()
    assert left.exists() and sink.dropped == 0


@pytest.mark.parametrize("seed", range(4))
async def test_a_flapping_server_gets_each_event_once_in_order_or_it_is_counted_dropped(
        tmp_path: Path, stigmer_home: Path, seed: int) -> None:
    """Randomized: the server goes down and up between publishes, bounds are small (memory, disk, batch)."""
    import random

    rnd = random.Random(seed)
    remote = Remote(stigmer_home, tmp_path)
    sink = HttpSink(remote.url, TOKEN, max_queued=rnd.choice([3, 5, 8]), max_spooled=rnd.choice([10, 20, 40]),
                    max_batch=rnd.choice([1, 2, 4]), backoff=(0.005, 0.02), spool_dir=remote.spool, resend=True)
    made: list[dict[str, Any]] = []
    servers: list[EventCollector] = []
    up: EventCollector | None = None
    try:
        for _ in range(150):
            roll = rnd.random()
            if roll < 0.05 and up is None:
                up = EventCollector(TOKEN, port=remote.port).__enter__()
                servers.append(up)
            elif roll < 0.05 and up is not None:
                up.__exit__(None, None, None)
                up = None
            elif roll < 0.15:
                await asyncio.sleep(rnd.random() * 0.02)
            else:
                batch = [event("e1", "token", {"i": len(made) + k}) for k in range(rnd.randint(1, 3))]
                made += batch
                await sink.publish(batch)
        if up is None:
            up = EventCollector(TOKEN, port=remote.port).__enter__()
            servers.append(up)
        await until(lambda: sum(len(server.events) for server in servers) + sink.dropped >= len(made),
                    what="the backlog delivered")
        await sink.aclose()
    finally:
        for server in servers:
            server.__exit__(None, None, None)
    got = [e["id"] for server in servers for e in server.events]
    position = {e["id"]: i for i, e in enumerate(made)}
    assert len(got) == len(set(got)) and got == sorted(got, key=position.__getitem__)
    assert len(got) + sink.dropped == len(made)
    assert remote.files() == []
