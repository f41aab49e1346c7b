"""The checks after a sessions fault run: no turn lost, approved calls once, rejected calls never, decisions kept.

- **turns**: every turn the API accepted is one of its session's turns (``GET /v1/sessions/{id}``), ends
  ``completed`` with exactly one terminal event, and answers ``Answer <n>.``: the scripted model picks its reply
  by the number of assistant messages in the conversation, so a turn whose model calls did not see every
  earlier turn answers something else (**turns that did not see the earlier turns**). Every scripted reply was
  asked for, and none past the script's end.
- **approved** calls: scheduled once in the session workflow's history, with at least one ``call <n>`` line in
  ``sidefx.log`` and no more lines than Temporal started attempts (a runner killed mid call may have run it);
  **rejected** calls: never scheduled, no line.
- **decisions**: ``GET /v1/approvals/{id}`` shows the decision made (status, ``decided_by``, ``decided_at``),
  and the turn's stream holds ``approval_requested`` and ``approval_decided`` with that decision.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.scripted_provider import read_calls

from . import checks

if TYPE_CHECKING:
    from .sessions import SessionReport, SessionRun
    from .suite import Driver

_CALL = re.compile(r"call (\d+)\b")


def check_all(driver: Driver, runs: list[SessionRun], report: SessionReport) -> None:
    """Fill ``report`` from the API, the event streams, Temporal's histories and the side effects; the stack is up."""
    from .sessions import BY, expected_answer

    for run in runs:
        session = _get(driver, f"/v1/sessions/{run.id}")
        listed = [t["id"] for t in session.get("turns", [])]
        accepted = [run.sent[t] for t in sorted(run.sent)]
        if listed != accepted:
            report.problems.append(f"session {run.id}: its turns are {listed}, the API accepted {accepted}")
        times, attempts = checks.attempts_by_call(checks.history(driver.stack, f"stigmer-session-{run.id}"))
        log = run.workspace / "sidefx.log"
        ran = Counter(int(m.group(1)) for m in _CALL.finditer(log.read_text())) if log.exists() else Counter()
        for turn in run.plan:
            execution_id = run.sent.get(turn.index)
            if execution_id is None:
                report.turns_lost += 1
                report.problems.append(f"session {run.id}: turn {turn.index} was never accepted")
                continue
            record = _get(driver, f"/v1/executions/{execution_id}")
            if not _turn_ended(driver, record, execution_id, report):
                continue
            if record.get("output") != expected_answer(turn.index):
                report.context_lost += 1
                report.problems.append(f"turn {turn.index} ({execution_id}) answered {record.get('output')!r}, "
                                       f"not {expected_answer(turn.index)!r}: it did not see the earlier turns")
            if turn.tool:
                _decision(driver, run.approvals.get(turn.index), turn.approve, BY, execution_id, report)
                _side_effect(turn.index, turn.approve, times[turn.index], attempts.get(turn.index, 1),
                             ran[turn.index], f"session {run.id} turn {turn.index}", report)
        _model_calls(run, report)


def _get(driver: Driver, path: str) -> dict[str, Any]:
    with driver.api() as api:
        resp = api.get(path)
    resp.raise_for_status()
    return dict(resp.json())


def _events(driver: Driver, execution_id: str) -> list[dict[str, Any]]:
    from stigmer.cli._client import Client

    with Client.connect(driver.stack.home) as client:
        return list(client.events(execution_id, follow=False))


def _turn_ended(driver: Driver, record: dict[str, Any], execution_id: str, report: SessionReport) -> bool:
    """Count the turn's end; False (and a problem) unless it completed with one terminal event that says so."""
    events = _events(driver, execution_id)
    terminal = [e["type"] for e in events if e["type"] in ("completed", "failed")]
    status = record.get("status")
    if status not in checks.TERMINAL or terminal[-1:] != [status] or len(terminal) != 1:
        report.turns_lost += 1
        report.problems.append(f"turn {execution_id}: status {status!r}, terminal events {terminal}")
        return False
    if status != "completed":
        report.turns_failed += 1
        report.problems.append(f"turn {execution_id} failed: {record.get('error')!r}")
        return False
    report.turns_completed += 1
    return True


def _decision(driver: Driver, approval_id: str | None, approve: bool, by: str, execution_id: str,
              report: SessionReport) -> None:
    """The store and the turn's stream hold the decision that was made."""
    wanted = "approved" if approve else "rejected"
    report.approved += approve
    report.rejected += not approve
    if approval_id is None:
        report.problems.append(f"turn {execution_id}: no approval was requested")
        return
    approval = _get(driver, f"/v1/approvals/{approval_id}")
    if (approval.get("status"), approval.get("decided_by")) != (wanted, by) or not approval.get("decided_at"):
        report.problems.append(f"approval {approval_id}: recorded {approval.get('status')!r} by "
                               f"{approval.get('decided_by')!r} at {approval.get('decided_at')!r}, not {wanted!r}")
    else:
        report.decisions_recorded += 1
    events = _events(driver, execution_id)
    asked = sum(e["type"] == "approval_requested" for e in events)
    decided = [e["data"].get("decision") for e in events if e["type"] == "approval_decided"]
    if asked != 1 or decided != [wanted]:
        report.problems.append(f"turn {execution_id}: {asked} approval_requested, approval_decided {decided}, "
                               f"wanted 1 and [{wanted!r}]")


def _side_effect(turn: int, approve: bool, scheduled: int, started: int, ran: int, label: str,
                 report: SessionReport) -> None:
    """An approved call: scheduled once, run at least once and at most once per attempt; a rejected one: never."""
    if not approve:
        if scheduled or ran:
            report.rejected_ran += 1
            report.problems.append(f"{label}: the rejected call was scheduled {scheduled}x and ran {ran}x")
        return
    report.retried_calls += started > 1
    extra = max(0, scheduled - 1) + max(0, ran - started)
    report.duplicates += extra
    if extra:
        report.problems.append(f"{label}: the approved call was scheduled {scheduled}x, ran {ran}x, "
                               f"started {started}x")
    elif scheduled == 1 and ran >= 1:
        report.approved_ran_once += 1
    else:
        report.problems.append(f"{label}: the approved call was scheduled {scheduled}x and ran {ran}x")


def _model_calls(run: SessionRun, report: SessionReport) -> None:
    """Every scripted reply was asked for (retries allowed), none past the script's end."""
    from .sessions import turn_steps

    steps = {call["step"] for call in read_calls(Path(run.script))}
    wanted = set(range(len(turn_steps(run.plan))))
    if steps != wanted:
        report.problems.append(f"session {run.id}: model calls for steps {sorted(steps)}, "
                               f"the script has {sorted(wanted)}")
