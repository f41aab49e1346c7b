"""The crash-fault suite, short version (CI): kill -9 a runner, Temporal and the daemon mid-run; nothing is lost.

And its sessions version: one session of three turns, one call approved, one rejected, a kill at each of its
moments (waiting for a decision, a turn queued, right after the decision, between turns).

The full versions are one command: ``python -m tests.faults --seed N --executions 20`` and
``python -m tests.faults --seed N --sessions 3 --turns 6``.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.faults import Report, checks, plan_faults, run_suite, session_checks, sessions
from tests.faults.suite import KINDS, SHORT_EXECUTIONS, SHORT_KILLS

pytestmark = pytest.mark.slow

SEED = 7


def test_the_plan_is_seeded_and_kills_every_kind() -> None:
    plan = plan_faults(SEED, SHORT_EXECUTIONS, SHORT_KILLS)
    assert plan == plan_faults(SEED, SHORT_EXECUTIONS, SHORT_KILLS)  # same seed, same faults: replayable
    assert sorted(f.kind for f in plan) == sorted(KINDS)
    assert plan != plan_faults(SEED + 1, SHORT_EXECUTIONS, SHORT_KILLS)


def test_kill_9_runner_temporal_and_daemon_loses_nothing_and_repeats_no_tool_call(stigmer_home: Path) -> None:
    log = io.StringIO()
    report = run_suite(stigmer_home, seed=SEED, executions=SHORT_EXECUTIONS, kills=SHORT_KILLS, log=log)
    table = report.table()
    print(table)
    assert report.faults == {"runner": 1, "temporal": 1, "daemon": 1}, table
    assert report.started == SHORT_EXECUTIONS and report.completed == SHORT_EXECUTIONS, table
    assert report.lost == 0 and report.failed == 0, table
    assert report.duplicates == 0, table
    assert report.tool_calls == 3 * SHORT_EXECUTIONS, table  # every tool call left its side effect and history
    assert report.integrity == "ok", table
    assert report.problems == [], table
    assert report.ok and "PASS" in table


def _history(attempt: int) -> list[dict[str, Any]]:
    """A history as ``temporal workflow show --output json`` prints it: call 1 scheduled once, started ``attempt``."""
    data = base64.b64encode(json.dumps({"call": {"args": {"command": 'echo "call 1 $PPID"'}}}).encode()).decode()
    return [{"eventId": "5", "eventType": "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED",
             "activityTaskScheduledEventAttributes": {"activityType": {"name": "stigmer.call_tool"},
                                                      "input": {"payloads": [{"data": data}]}}},
            {"eventId": "6", "eventType": "EVENT_TYPE_ACTIVITY_TASK_STARTED",
             "activityTaskStartedEventAttributes": {"scheduledEventId": "5", "attempt": attempt}}]


@pytest.mark.parametrize(("attempt", "duplicates", "retried"), [(1, 1, 0), (2, 0, 1)])
def test_a_call_that_ran_more_often_than_temporal_started_it_is_a_duplicate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, attempt: int, duplicates: int, retried: int) -> None:
    (tmp_path / "sidefx.log").write_text("call 1 100\ncall 1 200\n")  # the side effect happened twice
    monkeypatch.setattr(checks, "history", lambda stack, workflow_id: _history(attempt))
    report = Report(seed=0)
    checks._tool_calls(None, "abc", tmp_path, report)  # type: ignore[arg-type]
    assert (report.duplicates, report.retried_calls, report.tool_calls) == (duplicates, retried, 1)
    assert bool(report.problems) == bool(duplicates)


def test_the_sessions_plan_is_seeded_and_kills_every_kind_at_every_moment() -> None:
    plans, faults = sessions.plan_sessions(SEED, 1, sessions.SHORT_TURNS, sessions.SHORT_APPROVALS,
                                           sessions.SHORT_KILLS)
    assert (plans, faults) == sessions.plan_sessions(SEED, 1, sessions.SHORT_TURNS, sessions.SHORT_APPROVALS,
                                                     sessions.SHORT_KILLS)
    assert {f.kind for f in faults} == set(KINDS) and {f.moment for f in faults} == set(sessions.MOMENTS)
    assert sorted(t.approve for t in plans[0] if t.tool) == [False, True]  # one call approved, one rejected
    assert len({(f.turn, f.moment) for f in faults}) == len(faults)


def test_kill_9_around_approvals_and_turns_loses_no_turn_and_runs_approved_calls_once(stigmer_home: Path) -> None:
    log = io.StringIO()
    report = sessions.run_session_suite(stigmer_home, seed=SEED, sessions=1, turns=sessions.SHORT_TURNS,
                                        approvals=sessions.SHORT_APPROVALS, kills=sessions.SHORT_KILLS, log=log)
    table = report.table()
    print(table)
    assert set(report.faults) == set(KINDS) and all(report.faults.values()), table
    assert report.moments == {m: 1 for m in sessions.MOMENTS}, table
    assert report.turns_sent == report.turns_completed == sessions.SHORT_TURNS, table
    assert report.turns_lost == report.context_lost == 0, table  # every turn saw the turns before it
    assert (report.approved, report.approved_ran_once) == (1, 1), table
    assert (report.rejected, report.rejected_ran) == (1, 0), table
    assert report.duplicates == 0 and report.decisions_recorded == 2, table
    assert report.integrity == "ok" and report.problems == [], table
    assert report.ok and "PASS" in table


@pytest.mark.parametrize(("approve", "scheduled", "ran", "started", "problem"),
                         [(True, 1, 1, 1, False), (True, 1, 2, 1, True), (True, 2, 2, 2, True),
                          (True, 1, 0, 1, True), (False, 0, 0, 1, False), (False, 1, 1, 1, True)])
def test_an_approved_call_must_run_once_and_a_rejected_one_never(
        approve: bool, scheduled: int, ran: int, started: int, problem: bool) -> None:
    report = sessions.SessionReport(seed=0)
    session_checks._side_effect(0, approve, scheduled, started, ran, "turn 0", report)
    assert bool(report.problems) == problem
    assert report.rejected_ran == (not approve and problem)
    assert report.approved_ran_once == (approve and not problem)
