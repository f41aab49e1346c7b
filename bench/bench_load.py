"""Benchmark: 200 concurrent executions through ``stigmer local``, with 10 live event subscribers.

    python bench/bench_load.py [--executions 200] [--subscribers 10] [--workers 2]

A real stack (``stigmer local start`` in a temp ``STIGMER_HOME``, free loopback ports, managed
Temporal) runs an agent on the zero-latency scripted model: one ``write_file`` tool call, then the
answer. Measured in one run:

- baseline: ``GET /v1/status`` and ``GET /v1/health`` latency with the stack idle;
- under load: the same calls, sampled every 50 ms while 200 executions run and 10 subscribers follow
  their event streams (``stigmer run``'s own client, ``Client.events``);
- throughput (executions/s, first POST to last terminal event), and peak RSS of the daemon, each
  runner and Temporal (psutil, sampled every 200 ms).

Target: every execution completes, every subscriber sees its stream end with ``completed``, and
``GET /v1/status`` p99 stays under 100 ms under load. Exit code 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
P99_TARGET_MS = 100.0
SAMPLE_EVERY_S = 0.05


def _import_path() -> None:
    """The repo root on sys.path, for ``tests.support`` (the scripted model and the stack driver)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


@dataclass
class Sampler:
    """Background samplers: status/health latencies (ms) and peak RSS (MiB) per component."""

    base_url: str
    token: str
    pids: dict[str, int]
    status_ms: list[float] = field(default_factory=list)
    health_ms: list[float] = field(default_factory=list)
    peak_mib: dict[str, float] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def latencies(self) -> None:
        import httpx

        with httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.token}"},
                          timeout=30, trust_env=False) as api:
            while not self.stop.is_set():
                for path, into in (("/v1/status", self.status_ms), ("/v1/health", self.health_ms)):
                    began = time.perf_counter()
                    api.get(path).raise_for_status()
                    into.append((time.perf_counter() - began) * 1000)
                self.stop.wait(SAMPLE_EVERY_S)

    def memory(self) -> None:
        import psutil

        procs = {name: psutil.Process(pid) for name, pid in self.pids.items()}
        while not self.stop.is_set():
            for name, proc in procs.items():
                try:  # a runner's RSS includes its MCP/shell children: none here, so the process alone
                    mib = proc.memory_info().rss / 2**20
                except psutil.Error:
                    continue
                self.peak_mib[name] = max(self.peak_mib.get(name, 0.0), mib)
            self.stop.wait(0.2)

    def cpu(self) -> dict[str, float]:
        """CPU seconds (user + system) each component has used so far."""
        import psutil

        used = {}
        for name, pid in self.pids.items():
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            used[name] = times.user + times.system
        return used

    def __enter__(self) -> Sampler:
        self.cpu_s = {name: -value for name, value in self.cpu().items()}
        self.threads = [threading.Thread(target=self.latencies, daemon=True),
                        threading.Thread(target=self.memory, daemon=True)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for name, value in self.cpu().items():
            self.cpu_s[name] = self.cpu_s.get(name, 0.0) + value
        for thread in self.threads:
            thread.join(timeout=30)


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))] if ordered else float("nan")


def _start_stack(home: Path, workers: int) -> Any:
    _import_path()
    from tests.support.local_daemon import LocalStack

    steps = [{"content": "Noting it.", "tool_calls": [{"name": "write_file",
                                                       "args": {"path": "note.txt", "content": "load"}}]},
             {"content": "Done: the note is written."}]
    stack = LocalStack.scripted(home, steps, STIGMER_RUNNER_WORKERS=str(workers))
    done = stack.start()
    if done.returncode != 0:
        raise SystemExit(f"stigmer local start failed:\n{done.stderr}")
    script = stack.env["STIGMER_LLM_MODEL"]
    agent = home / "load.yaml"
    agent.write_text("apiVersion: agentic.stigmer.ai/v1\nkind: Agent\nmetadata:\n  name: load\n"
                     f"spec:\n  instructions: Write the note.\n  model: 'scripted:{script}'\n  tools: [workspace]\n"
                     "  approvals: {mode: never}\n")
    applied = stack.run("apply", "-f", str(agent))
    if applied.returncode != 0:
        raise SystemExit(f"stigmer apply failed:\n{applied.stderr}")
    return stack


def _idle(base_url: str, token: str, samples: int = 200) -> tuple[list[float], list[float]]:
    """Baseline: status and health latencies (ms) with nothing running."""
    import httpx

    status, health = [], []
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, trust_env=False) as api:
        for _ in range(samples):
            for path, into in (("/v1/status", status), ("/v1/health", health)):
                began = time.perf_counter()
                api.get(path).raise_for_status()
                into.append((time.perf_counter() - began) * 1000)
    return status, health


def _subscribe(home: Path, execution_id: str, outcome: dict[str, str]) -> None:
    """Follow one execution's events as ``stigmer run`` does; note how its stream ended."""
    from stigmer.cli._client import Client

    last = "no events"
    with Client.connect(home) as client:
        for ev in client.events(execution_id):
            last = ev["type"]
    outcome[execution_id] = last


def _post(api: Any, index: int, took: list[float]) -> str:
    """Start one execution (``POST /v1/executions``), noting how long the call took (ms)."""
    began = time.perf_counter()
    response = api.post("/v1/executions", json={"agent": "load", "message": f"n{index}"})
    response.raise_for_status()
    took.append((time.perf_counter() - began) * 1000)
    return str(response.json()["id"])


def _finished(base_url: str, token: str) -> int:
    """Executions in a terminal state (filtered by status, so the listing reconciles nothing)."""
    import httpx

    total = 0
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, trust_env=False,
                      timeout=30) as api:
        for status in ("completed", "failed", "cancelled"):
            total += len(api.get("/v1/executions", params={"status": status, "limit": 1000}).json()["items"])
    return total


def run_load(home: Path, executions: int, subscribers: int, workers: int) -> dict[str, Any]:
    import httpx

    stack = _start_stack(home, workers)
    try:
        base_url, token = f"http://127.0.0.1:{stack.api_port}", (home / "run" / "token").read_text().strip()
        idle_status, idle_health = _idle(base_url, token)
        comps = stack.components()
        pids = {name: int(c["pid"]) for name, c in comps.items() if c.get("pid")}
        outcome: dict[str, str] = {}
        post_ms: list[float] = []
        with Sampler(base_url, token, pids) as sampler:
            began = time.perf_counter()
            with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, trust_env=False,
                              timeout=60, limits=httpx.Limits(max_connections=20)) as api, \
                    ThreadPoolExecutor(20) as pool:
                ids = list(pool.map(lambda i: _post(api, i, post_ms), range(executions)))
            posted = time.perf_counter() - began
            subs = [threading.Thread(target=_subscribe, args=(home, i, outcome), daemon=True)
                    for i in ids[-subscribers:]]
            for thread in subs:
                thread.start()
            while _finished(base_url, token) < executions:
                time.sleep(0.5)  # deliberate poll period of the completion check (not a readiness wait)
            wall = time.perf_counter() - began
            for thread in subs:
                thread.join(timeout=60)
        completed = len(httpx.get(f"{base_url}/v1/executions", params={"status": "completed", "limit": 1000},
                                  headers={"Authorization": f"Bearer {token}"}, trust_env=False).json()["items"])
    finally:
        stack.cleanup()
    return {"executions": executions, "completed": completed, "wall_s": wall, "post_s": posted,
            "idle_status": idle_status, "idle_health": idle_health, "load_status": sampler.status_ms,
            "load_health": sampler.health_ms, "peak_mib": sampler.peak_mib, "cpu_s": sampler.cpu_s,
            "subscribers": outcome, "wanted_subscribers": subscribers, "post_ms": post_ms}


def table(r: dict[str, Any]) -> str:
    rows = [("measure", "idle (baseline)", "under load", "ratio")]
    for name, idle, load in (("GET /v1/status", r["idle_status"], r["load_status"]),
                             ("GET /v1/health", r["idle_health"], r["load_health"])):
        for q in (50, 99):
            a, b = pct(idle, q), pct(load, q)
            rows.append((f"{name} p{q} ms", f"{a:.1f}", f"{b:.1f}", f"{b / a:.1f}x"))
    for q in (50, 99):
        rows.append((f"POST /v1/executions p{q} ms", "", f"{pct(r['post_ms'], q):.1f}", ""))
    lines = [f"{a:<27} {b:>16} {c:>11} {d:>7}" for a, b, c, d in rows]
    ended = sum(1 for v in r["subscribers"].values() if v == "completed")
    lines += ["", f"executions: {r['completed']}/{r['executions']} completed in {r['wall_s']:.1f} s "
              f"({r['executions'] / r['wall_s']:.1f} executions/s; all POSTed in {r['post_s']:.1f} s)",
              f"subscribers: {ended}/{r['wanted_subscribers']} streams ended with 'completed'",
              f"status samples under load: {len(r['load_status'])}",
              "peak RSS MiB: " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(r["peak_mib"].items())),
              "CPU seconds used during the load: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(r["cpu_s"].items()))]
    p99 = pct(r["load_status"], 99)
    lines.append(f"target GET /v1/status p99 < {P99_TARGET_MS:.0f} ms under load: "
                 f"{'met' if p99 < P99_TARGET_MS else 'MISSED'} ({p99:.1f} ms)")
    return "\n".join(lines)


def ok(r: dict[str, Any]) -> bool:
    ended = sum(1 for v in r["subscribers"].values() if v == "completed")
    return (r["completed"] == r["executions"] and ended == r["wanted_subscribers"]
            and pct(r["load_status"], 99) < P99_TARGET_MS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=200)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="runner processes")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="stigmer-load-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        result = run_load(home, args.executions, args.subscribers, args.workers)
    print(table(result))
    return 0 if ok(result) else 1


if __name__ == "__main__":
    sys.exit(main())
