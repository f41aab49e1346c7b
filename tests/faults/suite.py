"""The crash-fault run: start a stack, run a batch, inject seeded ``kill -9`` faults, recover, then check.

The stack is the real one (``stigmer local start`` in an isolated home, free ports, two runners) with
the scripted chat model. Every execution makes three shell tool calls whose side effect is one line
appended to ``sidefx.log`` in its own workspace, after a pause, so a kill often lands mid tool call.

What is checked afterwards (see :mod:`tests.faults.checks`): each started execution ended, is listed
by ``stigmer get executions -o json`` with the status its last event says, and that last event is
``completed``/``failed``; no tool call ran more often than Temporal started it (a completed call that
ran again would); the SQLite store passes ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from tests.support.local_daemon import LocalStack, gone, wait_until

from . import checks

KINDS = ("runner", "temporal", "daemon")
SHORT_EXECUTIONS = 6
SHORT_KILLS = 3
TOOL_STEPS = checks.TOOL_CALLS
TOOL_SECONDS = 1.0
MODEL_SECONDS = 0.2
START_GAP_S = 1.0
# A killed runner's activity is retried after its heartbeat timeout (10 s); a dead daemon costs a restart.
RECOVER_S = 90.0
FINISH_S = 300.0
AGENT = "faulty"


@dataclass(frozen=True)
class Fault:
    """Kill ``kind`` ``delay`` seconds after execution number ``after`` (0-based) was started."""

    kind: str
    after: int
    delay: float


@dataclass
class Report:
    """What one run found; ``table()`` is what the command prints."""

    seed: int
    started: int = 0
    completed: int = 0
    failed: int = 0
    lost: int = 0
    duplicates: int = 0
    retried_calls: int = 0
    tool_calls: int = 0
    partial_streams: int = 0
    integrity: str = "not checked"
    faults: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (not self.problems and self.lost == 0 and self.duplicates == 0 and self.integrity == "ok"
                and self.completed == self.started > 0)

    def table(self) -> str:
        rows = [("seed", self.seed), *((f"faults injected: kill -9 {k}", n) for k, n in self.faults.items()),
                ("faults injected: total", sum(self.faults.values())), ("executions started", self.started),
                ("executions completed", self.completed), ("executions failed", self.failed),
                ("executions lost", self.lost), ("tool calls (distinct)", self.tool_calls),
                ("tool calls retried after a kill", self.retried_calls),
                ("duplicate tool calls (completed, ran again)", self.duplicates),
                ("event streams missing middle events", self.partial_streams),
                ("SQLite integrity_check", self.integrity), ("wall time (s)", f"{self.seconds:.0f}"),
                ("result", "PASS" if self.ok else "FAIL")]
        width = max(len(str(k)) for k, _ in rows)
        lines = [f"{'measure':<{width}}  value", f"{'-' * width}  -----"]
        lines += [f"{k:<{width}}  {v}" for k, v in rows]
        lines += [f"problem: {p}" for p in self.problems]
        return "\n".join(lines)


def plan_faults(seed: int, executions: int, kills: int) -> list[Fault]:
    """The seeded plan: every kind at least once (when ``kills`` allows), at seeded executions and delays."""
    rng = random.Random(seed)
    kinds = list(KINDS)
    rng.shuffle(kinds)
    kinds = (kinds + [rng.choice(KINDS) for _ in range(max(0, kills - len(kinds)))])[:kills]
    slots = list(range(executions))
    after = sorted(rng.sample(slots, kills) if kills <= len(slots) else [rng.choice(slots) for _ in range(kills)])
    return [Fault(kind, a, round(rng.uniform(0.3, 2.5), 2)) for kind, a in zip(kinds, after, strict=True)]


def _script_steps() -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for n in range(1, TOOL_STEPS + 1):
        command = f'sleep {TOOL_SECONDS}; echo "call {n}" >> sidefx.log'
        steps.append({"content": f"Step {n}.", "delay": MODEL_SECONDS,
                      "tool_calls": [{"name": "run_shell", "args": {"command": command}}]})
    steps.append({"content": "All steps done.", "delay": MODEL_SECONDS})
    return steps


def _agent_yaml(home: Path, script: str) -> Path:
    path = home / "faulty.yaml"
    path.write_text(f"apiVersion: agentic.stigmer.ai/v1\nkind: Agent\nmetadata:\n  name: {AGENT}\n"
                    f"spec:\n  instructions: Run the steps.\n  model: 'scripted:{script}'\n  tools: [shell]\n"
                    "  approvals: {mode: never}\n")
    return path


class Driver:
    """One run: the stack, the executions started so far, the faults injected."""

    def __init__(self, home: Path, seed: int, log: TextIO) -> None:
        self.stack = LocalStack.scripted(home, _script_steps(), STIGMER_RUNNER_WORKERS="2")
        self.rng = random.Random(seed ^ 0x5EED)
        self.report = Report(seed=seed)
        self.executions: dict[str, Path] = {}
        self.log = log

    def say(self, text: str) -> None:
        print(f"[faults {time.strftime('%H:%M:%S')}] {text}", file=self.log, flush=True)

    def api(self) -> httpx.Client:
        token = (self.stack.home / "run" / "token").read_text().strip()
        return httpx.Client(base_url=f"http://127.0.0.1:{self.stack.api_port}", timeout=30, trust_env=False,
                            headers={"Authorization": f"Bearer {token}"})

    def components(self) -> dict[str, dict[str, Any]]:
        try:
            with self.api() as api:
                return {c["name"]: c for c in api.get("/v1/status").json()["components"]}
        except (httpx.HTTPError, OSError, ValueError, KeyError):
            return {}

    def start_stack(self) -> None:
        done = self.stack.start()
        if done.returncode != 0:
            raise RuntimeError(f"stigmer local start failed: {done.stderr}")

    def setup(self) -> None:
        self.start_stack()
        script = self.stack.env["STIGMER_LLM_MODEL"]
        applied = self.stack.run("apply", "-f", str(_agent_yaml(self.stack.home, script)))
        if applied.returncode != 0:
            raise RuntimeError(f"stigmer apply failed: {applied.stderr}")

    def start_execution(self, index: int) -> None:
        workspace = self.stack.home / "workspaces" / f"run-{index:03d}"  # the only part of the home allowed
        workspace.mkdir(parents=True, exist_ok=True)
        body = {"agent": AGENT, "message": f"run {index}", "workspace": str(workspace)}
        with self.api() as api:
            response = api.post("/v1/executions", json=body)
        response.raise_for_status()
        self.executions[response.json()["id"]] = workspace
        self.report.started += 1

    def inject(self, fault: Fault, during: Callable[[], None] | None = None) -> None:
        """Kill, then recover as a user would; ``during`` runs right after a runner or Temporal died (while
        the supervisor brings it back), after the restart for the daemon (nothing answers without it)."""
        comps = self.components()
        if fault.kind == "runner":
            name = self.rng.choice(sorted(n for n in comps if n.startswith("runner-")))
            self._kill(name, comps[name]["pid"])
            if during:
                during()
            wait_until(lambda: self._replaced(name, comps[name]["pid"]), RECOVER_S, f"{name} restarted")
        elif fault.kind == "temporal":
            self._kill("temporal", comps["temporal"]["pid"])
            if during:
                during()
            self._recover_temporal(comps["temporal"]["pid"])
        else:
            pid = self.stack.daemon_pid()
            self._kill("daemon", pid)
            wait_until(lambda: gone(pid), 10, "daemon gone")
            self.start_stack()
            if during:
                during()
        self.report.faults[fault.kind] += 1

    def _kill(self, name: str, pid: int) -> None:
        self.say(f"kill -9 {name} (pid {pid})")
        os.kill(pid, signal.SIGKILL)

    def _replaced(self, name: str, old_pid: int) -> bool:
        comp = self.components().get(name, {})
        return comp.get("pid") not in (None, old_pid) and comp.get("state") == "ready"

    def _recover_temporal(self, old_pid: int) -> None:
        """The supervisor restarts Temporal; if it gives up (or the daemon went with it), start again."""
        try:
            wait_until(lambda: self._replaced("temporal", old_pid), RECOVER_S, "temporal restarted")
        except AssertionError:
            self.say("the supervisor did not bring Temporal back: stigmer local start")
            self.start_stack()

    def wait_all(self) -> None:
        def settled() -> bool:
            try:
                with self.api() as api:
                    return all(api.get(f"/v1/executions/{i}").json().get("status") in checks.TERMINAL
                               for i in self.executions)
            except (httpx.HTTPError, OSError, ValueError):
                return False

        try:
            wait_until(settled, FINISH_S, "every execution ended")
        except AssertionError as exc:
            self.report.problems.append(str(exc))


def run_suite(home: Path, *, seed: int, executions: int, kills: int, log: TextIO) -> Report:
    """Run the whole suite once in ``home``; never leaves a process behind."""
    began = time.monotonic()
    driver = Driver(home, seed, log)
    plan = plan_faults(seed, executions, kills)
    driver.say(f"seed {seed}: {executions} executions, plan {[(f.kind, f.after, f.delay) for f in plan]}")
    try:
        driver.setup()
        for index in range(executions):
            driver.start_execution(index)
            for fault in (f for f in plan if f.after == index):
                time.sleep(fault.delay)  # deliberate: where in the running executions the kill lands
                driver.inject(fault)
            time.sleep(START_GAP_S)  # deliberate pacing: several executions overlap at any moment
        driver.wait_all()
        checks.check_all(driver.stack, driver.executions, driver.report)
    except Exception as exc:  # a broken run is a failed run, with its reason in the table
        driver.report.problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        driver.stack.cleanup()
        driver.report.integrity = checks.integrity(home)
        driver.report.seconds = time.monotonic() - began
    return driver.report
