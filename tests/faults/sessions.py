"""The crash-fault run for sessions and approvals: kill -9 around each approval and turn boundary.

Each session is a conversation with an agent under the default approvals policy (``run_shell`` asks).
Some of its turns make one ``run_shell`` call (sleep 1 s, then append ``call <turn>`` to ``sidefx.log``
in the session's workspace) that waits for a person; the suite decides it through the real API
(``POST /v1/approvals/{id}/approve|reject``, retried on 503 or a refused connection until the API answers
200, or 409 "already decided" when a lost answer had in fact landed: the documented contract). The seed
picks which turns ask, which calls are approved or rejected (at least one of each when two ask), and where
each ``kill -9`` (runner, Temporal, daemon) lands:

- ``waiting``: while the call waits for its decision; the decision is sent at once, while the killed part comes
  back (so it meets 503s and refused connections, and is retried);
- ``queued``: the next turn was sent while this one waits (so it is queued), then the kill and the decision;
- ``decided``: right after the API accepted the decision (0.05-0.9 s: the tool is usually running).
- ``between``: after a turn ended, before the next one is sent.

What is checked afterwards: :mod:`tests.faults.session_checks`.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from tests.support.scripted_provider import write_script

from . import checks, session_checks
from .suite import KINDS, MODEL_SECONDS, RECOVER_S, TOOL_SECONDS, Driver, Fault

MOMENTS = ("waiting", "queued", "decided", "between")
SHORT_SESSIONS = 1
SHORT_TURNS = 3
SHORT_APPROVALS = 2
SHORT_KILLS = 4  # one at each moment; runner, Temporal and daemon at least once
BY = "fault-suite"
TURN_END_S = 180.0


@dataclass(frozen=True)
class TurnPlan:
    """Turn ``index`` of a session: whether its model makes a ``run_shell`` call, and whether it is approved."""

    index: int
    tool: bool
    approve: bool = False


@dataclass(frozen=True)
class SessionFault:
    """Kill ``kind`` at ``moment`` of turn ``turn`` of session ``session``, ``delay`` seconds after it."""

    kind: str
    session: int
    turn: int
    moment: str
    delay: float


@dataclass
class SessionReport:
    """What one run found; ``table()`` is what the command prints."""

    seed: int
    sessions: int = 0
    turns_sent: int = 0
    turns_completed: int = 0
    turns_failed: int = 0
    turns_lost: int = 0
    context_lost: int = 0
    approved: int = 0
    rejected: int = 0
    approved_ran_once: int = 0
    rejected_ran: int = 0
    duplicates: int = 0
    retried_calls: int = 0
    decisions_recorded: int = 0
    decisions_retried: int = 0
    integrity: str = "not checked"
    faults: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})
    moments: dict[str, int] = field(default_factory=lambda: {m: 0 for m in MOMENTS})
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (not self.problems and self.turns_lost == self.context_lost == self.duplicates == 0
                and self.rejected_ran == 0 and self.approved_ran_once == self.approved
                and self.decisions_recorded == self.approved + self.rejected and self.integrity == "ok"
                and self.turns_completed == self.turns_sent > 0)

    def table(self) -> str:
        rows = [("seed", self.seed), *((f"faults injected: kill -9 {k}", n) for k, n in self.faults.items()),
                *((f"faults injected: at {m}", n) for m, n in self.moments.items()),
                ("sessions", self.sessions), ("turns sent (accepted)", self.turns_sent),
                ("turns completed", self.turns_completed), ("turns failed", self.turns_failed),
                ("turns lost", self.turns_lost), ("turns that did not see the earlier turns", self.context_lost),
                ("calls approved", self.approved), ("approved calls that ran exactly once", self.approved_ran_once),
                ("calls rejected", self.rejected), ("rejected calls that ran", self.rejected_ran),
                ("tool calls retried after a kill", self.retried_calls),
                ("duplicate tool calls (completed, ran again)", self.duplicates),
                ("decisions recorded in the store", self.decisions_recorded),
                ("decisions answered 503 and sent again", self.decisions_retried),
                ("SQLite integrity_check", self.integrity), ("wall time (s)", f"{self.seconds:.0f}"),
                ("result", "PASS" if self.ok else "FAIL")]
        width = max(len(str(k)) for k, _ in rows)
        lines = [f"{'measure':<{width}}  value", f"{'-' * width}  -----"]
        lines += [f"{k:<{width}}  {v}" for k, v in rows]
        lines += [f"problem: {p}" for p in self.problems]
        return "\n".join(lines)


def plan_sessions(seed: int, sessions: int, turns: int, approvals: int,
                  kills: int) -> tuple[list[list[TurnPlan]], list[SessionFault]]:
    """The seeded plan: each session's turns (which ask, which are approved), and the faults.

    Every component is killed at least once and every moment is hit at least once when ``kills`` allows;
    two faults never share a moment of a turn.
    """
    rng = random.Random(seed)
    plans: list[list[TurnPlan]] = []
    for _ in range(sessions):
        asking = sorted(rng.sample(range(turns), min(approvals, turns)))
        verdicts = [n % 2 == 0 for n in range(len(asking))]
        rng.shuffle(verdicts)
        decided = dict(zip(asking, verdicts, strict=True))
        plans.append([TurnPlan(t, t in decided, decided.get(t, False)) for t in range(turns)])
    slots = [(s, t.index, m) for s, plan in enumerate(plans) for t in plan for m in _moments(t, turns)]
    kinds = list(KINDS)
    rng.shuffle(kinds)
    kinds = (kinds + [rng.choice(KINDS) for _ in range(max(0, kills - len(kinds)))])[:kills]
    order = list(MOMENTS)
    rng.shuffle(order)
    faults: list[SessionFault] = []
    for n, kind in enumerate(kinds):
        wanted = [slot for slot in slots if slot[2] == order[n % len(order)]] or slots
        if not wanted:
            break
        s, t, moment = rng.choice(wanted)
        slots.remove((s, t, moment))
        delay = rng.uniform(0.05, 0.9) if moment == "decided" else rng.uniform(0.0, 0.5)
        faults.append(SessionFault(kind, s, t, moment, round(delay, 2)))
    return plans, sorted(faults, key=lambda f: (f.session, f.turn, MOMENTS.index(f.moment)))


def _moments(turn: TurnPlan, turns: int) -> list[str]:
    last = turn.index == turns - 1
    return [m for m in MOMENTS if (turn.tool or m == "between") and not (last and m in ("queued", "between"))]


def turn_steps(plan: list[TurnPlan]) -> list[dict[str, Any]]:
    """The scripted model's replies: a turn that asks calls ``run_shell`` first; every turn answers ``Answer <n>.``.

    The model picks its reply by the number of assistant messages in the conversation, so a turn answers
    ``Answer <n>.`` only if its model calls saw every earlier turn.
    """
    steps: list[dict[str, Any]] = []
    for turn in plan:
        if turn.tool:
            command = f'sleep {TOOL_SECONDS}; echo "call {turn.index}" >> sidefx.log'
            steps.append({"content": f"Turn {turn.index} runs a command.", "delay": MODEL_SECONDS,
                          "tool_calls": [{"name": "run_shell", "args": {"command": command}}]})
        steps.append({"content": expected_answer(turn.index), "delay": MODEL_SECONDS})
    return steps


def expected_answer(turn: int) -> str:
    return f"Answer {turn}."


@dataclass
class SessionRun:
    """One session of the run: its plan, script, workspace, id and the turns the API accepted."""

    index: int
    plan: list[TurnPlan]
    script: str
    workspace: Path
    id: str = ""
    sent: dict[int, str] = field(default_factory=dict)
    approvals: dict[int, str] = field(default_factory=dict)


class SessionDriver:
    """Drives the sessions turn by turn and injects the planned faults (through the suite's :class:`Driver`)."""

    def __init__(self, home: Path, seed: int, log: TextIO) -> None:
        self.base = Driver(home, seed, log)
        self.report = SessionReport(seed=seed)
        self.runs: list[SessionRun] = []

    def setup(self, plans: list[list[TurnPlan]]) -> None:
        self.base.start_stack()
        home = self.base.stack.home
        for s, plan in enumerate(plans):
            script = write_script(home / f"session-{s}.json", turn_steps(plan))
            workspace = home / "workspaces" / f"session-{s:03d}"
            workspace.mkdir(parents=True, exist_ok=True)
            path = home / f"talker-{s}.yaml"
            path.write_text(f"apiVersion: agentic.stigmer.ai/v1\nkind: Agent\nmetadata:\n  name: talker-{s}\n"
                            f"spec:\n  instructions: Run the steps.\n  model: 'scripted:{script}'\n  tools: [shell]\n")
            applied = self.base.stack.run("apply", "-f", str(path))
            if applied.returncode != 0:
                raise RuntimeError(f"stigmer apply failed: {applied.stderr}")
            run = SessionRun(s, plan, script, workspace)
            with self.base.api() as api:
                created = api.post("/v1/sessions", json={"agent": f"talker-{s}", "name": f"faults-{s}",
                                                         "workspace": str(workspace)})
            created.raise_for_status()
            run.id = created.json()["id"]
            self.runs.append(run)
        self.report.sessions = len(self.runs)

    def drive(self, run: SessionRun, faults: list[SessionFault]) -> None:
        """Every turn of ``run`` in order, deciding its approval, with the faults planned for it."""
        def at(turn: int, moment: str, during: Callable[[], None] | None = None) -> bool:
            """Inject the faults planned here; True when ``during`` ran (the decision, made mid-recovery)."""
            for fault in (f for f in faults if (f.session, f.turn, f.moment) == (run.index, turn, moment)):
                time.sleep(fault.delay)  # deliberate: where in the turn the kill lands
                self.base.inject(Fault(fault.kind, turn, fault.delay), during)
                self.report.moments[moment] += 1
                return during is not None
            return False

        for turn in run.plan:
            if turn.index not in run.sent:
                self._send(run, turn.index)
            if turn.tool:
                run.approvals[turn.index] = approval = self._pending(run.sent[turn.index])
                queue = any((f.session, f.turn, f.moment) == (run.index, turn.index, "queued") for f in faults)
                # the decision is sent while the killed part comes back (503s, refused connections: retried)
                decide = functools.partial(self._decide, approval, turn.approve)
                decided = at(turn.index, "waiting", None if queue else decide)
                if queue:
                    queued = self._send(run, turn.index + 1)
                    if not queued:
                        self.report.problems.append(f"session {run.id} turn {turn.index + 1}: sent while turn "
                                                    f"{turn.index} waits, it was not queued ({queued!r})")
                    decided = at(turn.index, "queued", decide)
                if not decided:
                    decide()
                at(turn.index, "decided")
            self._ended(run.sent[turn.index])
            at(turn.index, "between")

    def _retry(self, call: Any, what: str) -> Any:
        """``call(api)`` until it answers (None: the API or Temporal is down for now, try again)."""
        deadline = time.monotonic() + RECOVER_S
        while True:
            try:
                with self.base.api() as api:
                    answer = call(api)
            except (httpx.HTTPError, OSError):
                answer = None
            if answer is not None:
                return answer
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: no answer from the API after {RECOVER_S}s")
            time.sleep(0.5)  # the next attempt, not a wait for readiness: each attempt is the real request

    def _send(self, run: SessionRun, turn: int) -> int | None:
        """Send turn ``turn`` (``Idempotency-Key``: a retry is the same turn); its place in the queue."""
        def post(api: httpx.Client) -> dict[str, Any] | None:
            resp = api.post(f"/v1/sessions/{run.id}/messages", json={"message": f"turn {turn}"},
                            headers={"Idempotency-Key": f"{run.id}-turn-{turn}"})
            if resp.status_code == 503:
                return None
            if resp.status_code not in (200, 201):
                raise RuntimeError(f"session {run.id} turn {turn}: the API answered {resp.status_code} {resp.text}")
            return dict(resp.json())

        answer = self._retry(post, f"send turn {turn} of session {run.id}")
        run.sent[turn] = answer["id"]
        self.report.turns_sent += 1
        return answer.get("queued")

    def get(self, path: str, **params: Any) -> Any:
        """``GET path`` as JSON, retried while the daemon is down or answers 5xx."""
        def call(api: httpx.Client) -> Any:
            resp = api.get(path, params=params)
            return resp.json() if resp.status_code == 200 else None

        return self._retry(call, f"GET {path}")

    def _pending(self, execution_id: str) -> str:
        """The id of the execution's approval, once its ``approval_requested`` reached the store."""
        deadline = time.monotonic() + TURN_END_S
        while not (items := self.get("/v1/approvals", execution=execution_id)["items"]):
            if time.monotonic() > deadline:
                raise RuntimeError(f"execution {execution_id}: no approval requested after {TURN_END_S}s")
            time.sleep(0.1)
        return str(items[0]["id"])

    def _decide(self, approval_id: str, approve: bool) -> None:
        """Approve or reject through the API: retried on 503 (or no daemon) until 200, or 409 already decided."""
        verb = "approve" if approve else "reject"
        body: dict[str, Any] = {"by": BY} if approve else {"by": BY, "reason": "not this one"}

        def post(api: httpx.Client) -> int | None:
            resp = api.post(f"/v1/approvals/{approval_id}/{verb}", json=body)
            if resp.status_code == 503:
                self.report.decisions_retried += 1
                return None
            if resp.status_code == 200 or (resp.status_code == 409 and "already" in resp.text):
                return resp.status_code
            raise RuntimeError(f"{verb} {approval_id}: the API answered {resp.status_code} {resp.text}")

        self._retry(post, f"{verb} {approval_id}")

    def _ended(self, execution_id: str) -> None:
        deadline = time.monotonic() + TURN_END_S
        while self.get(f"/v1/executions/{execution_id}").get("status") not in checks.TERMINAL:
            if time.monotonic() > deadline:
                self.report.problems.append(f"turn {execution_id} did not end within {TURN_END_S}s")
                return
            time.sleep(0.1)


def run_session_suite(home: Path, *, seed: int, sessions: int, turns: int, approvals: int, kills: int,
                      log: TextIO) -> SessionReport:
    """Run the sessions suite once in ``home``; never leaves a process behind."""
    began = time.monotonic()
    driver = SessionDriver(home, seed, log)
    plans, faults = plan_sessions(seed, sessions, turns, approvals, kills)
    driver.base.say(f"seed {seed}: {sessions} sessions of {turns} turns, plan "
                    f"{[[(t.index, t.tool, t.approve) for t in p] for p in plans]}, faults "
                    f"{[(f.kind, f.session, f.turn, f.moment, f.delay) for f in faults]}")
    try:
        driver.setup(plans)
        for run in driver.runs:
            driver.drive(run, faults)
        driver.report.faults = driver.base.report.faults
        session_checks.check_all(driver.base, driver.runs, driver.report)
    except Exception as exc:  # a broken run is a failed run, with its reason in the table
        driver.report.problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        driver.report.faults = driver.base.report.faults
        driver.base.stack.cleanup()
        driver.report.integrity = checks.integrity(home)
        driver.report.seconds = time.monotonic() - began
    return driver.report
