"""The checks after a fault run: nothing lost, no completed tool call run twice, a sound SQLite store.

Events are delivered at least once (a runner keeps what the daemon could not take, retries it, and
spools it when it is stopped; the daemon drops the ones it already stored): a completed execution's
stream must hold every middle event too, one ``message`` per model step and one ``tool_finished`` per
tool call. A stream missing one is a failure.

A tool call's side effect is a line ``call <n>`` in the execution's ``sidefx.log``. Temporal's
history says how often each call was started (``attempt`` of its ``ActivityTaskStarted`` event): a killed
worker's attempt may have run before it died, so a retried call may leave one line per attempt. More lines
than attempts, or a call scheduled twice, is a completed call that ran again: a duplicate.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.local_daemon import LocalStack
from tests.support.temporal import temporal_binary

TERMINAL = ("completed", "failed", "cancelled")
TOOL_CALLS = 3  # tool calls per execution (the suite's script)
_CALL = re.compile(r"call (\d+)\b")


def check_all(stack: LocalStack, executions: dict[str, Path], report: Any) -> None:
    """Fill ``report`` (statuses, events, duplicates) from the CLI, the API and Temporal; the stack is up."""
    listed = _listed(stack, len(executions))
    for execution_id, workspace in executions.items():
        status = listed.get(execution_id)
        last = _last_event(stack, execution_id, report)
        if status is None or status not in TERMINAL or last is None or _status_of(last) != status:
            report.lost += 1
            report.problems.append(f"execution {execution_id}: listed as {status!r}, last event {last!r}")
            continue
        report.completed += status == "completed"
        report.failed += status != "completed"
        _tool_calls(stack, execution_id, workspace, report)


def _listed(stack: LocalStack, count: int) -> dict[str, str]:
    """``stigmer get executions -o json``: id -> status (what a user sees; it lists the latest 50)."""
    argv = ("get", "executions", "-o", "json") if count <= 50 else ("execution", "list", "-n", "1000", "-o", "json")
    done = stack.run(*argv)
    if done.returncode != 0:
        raise RuntimeError(f"stigmer get executions failed: {done.stderr}")
    return {item["id"]: item["status"] for item in json.loads(done.stdout)}


def _status_of(event: dict[str, Any]) -> str:
    if event["type"] == "failed" and event.get("data", {}).get("cancelled"):
        return "cancelled"
    return str(event["type"])


def _last_event(stack: LocalStack, execution_id: str, report: Any) -> dict[str, Any] | None:
    """The execution's event stream replayed through the API; its last event, or None if it has no end."""
    from stigmer.cli._client import Client

    with Client.connect(stack.home) as client:
        events = list(client.events(execution_id, follow=False))
    terminal = [e for e in events if e["type"] in ("completed", "failed")]
    if terminal and terminal[-1]["type"] == "completed":
        _middle_events(execution_id, events, report)
    if len(terminal) != 1:
        report.problems.append(f"execution {execution_id}: {len(terminal)} terminal events")
    return events[-1] if events and events[-1]["type"] in ("completed", "failed") else None


def _middle_events(execution_id: str, events: list[dict[str, Any]], report: Any) -> None:
    """A completed stream holds a ``message`` for every model step and a ``tool_finished`` for every tool call."""
    finished = {e["data"].get("call_id") for e in events if e["type"] == "tool_finished"}
    steps = {e["data"].get("step") for e in events if e["type"] == "message"}
    if len(finished) < TOOL_CALLS or len(steps) < TOOL_CALLS + 1:
        report.partial_streams += 1
        report.problems.append(f"execution {execution_id}: its event stream misses middle events "
                               f"({len(finished)} of {TOOL_CALLS} tool_finished, {len(steps)} of "
                               f"{TOOL_CALLS + 1} messages)")


def history(stack: LocalStack, workflow_id: str, *, decoded: bool = False) -> list[dict[str, Any]]:
    """The workflow's history as the ``temporal`` CLI prints it (JSON); ``decoded``: through the daemon's codec
    server, as README shows it (the token in ``TEMPORAL_CODEC_AUTH``, never on the command line)."""
    address = f"127.0.0.1:{stack.env['STIGMER_TEMPORAL_PORT']}"
    argv = [temporal_binary(), "workflow", "show", "--workflow-id", workflow_id, "--address", address,
            "--output", "json"]
    env = dict(os.environ)
    if decoded:
        argv += ["--codec-endpoint", f"http://127.0.0.1:{stack.api_port}/v1/codec"]
        env["TEMPORAL_CODEC_AUTH"] = "Bearer " + (stack.home / "run" / "token").read_text().strip()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"temporal workflow show {workflow_id} failed: {done.stderr.strip()}")
    events: list[dict[str, Any]] = json.loads(done.stdout)["events"]
    return events


def _kind(event: dict[str, Any]) -> str:
    return str(event.get("eventType", "")).removeprefix("EVENT_TYPE_").replace("_", "").lower()


def _attrs(event: dict[str, Any]) -> dict[str, Any]:
    return next((v for k, v in event.items() if k.endswith("EventAttributes") and isinstance(v, dict)), {})


def _tool_step(attrs: dict[str, Any]) -> int | None:
    """The ``n`` of ``call <n>`` in a scheduled tool call's input (the shell command), or None."""
    for payload in attrs.get("input", {}).get("payloads", []):
        text = base64.b64decode(payload.get("data", "")).decode("utf-8", errors="replace")
        found = _CALL.search(text)
        if found:
            return int(found.group(1))
    return None


def attempts_by_call(events: list[dict[str, Any]]) -> tuple[Counter[int], dict[int, int]]:
    """(how often each tool call was scheduled, the attempts of its completed activity) from a history."""
    scheduled: dict[int, int] = {}
    times: Counter[int] = Counter()
    attempts: dict[int, int] = {}
    for ev in events:
        kind, attrs = _kind(ev), _attrs(ev)
        if kind == "activitytaskscheduled" and attrs.get("activityType", {}).get("name") == "stigmer.call_tool":
            step = _tool_step(attrs)
            if step is not None:
                scheduled[int(ev["eventId"])] = step
                times[step] += 1
        elif kind == "activitytaskstarted" and int(attrs.get("scheduledEventId", 0)) in scheduled:
            attempts[scheduled[int(attrs["scheduledEventId"])]] = int(attrs.get("attempt", 1))
    return times, attempts


def _tool_calls(stack: LocalStack, execution_id: str, workspace: Path, report: Any) -> None:
    log = workspace / "sidefx.log"
    ran = Counter(int(m.group(1)) for m in _CALL.finditer(log.read_text() + "\n")) if log.exists() else Counter()
    times, attempts = attempts_by_call(history(stack, f"stigmer-exec-{execution_id}"))
    for step, count in times.items():
        report.tool_calls += 1
        allowed = attempts.get(step, 1)
        report.retried_calls += allowed > 1
        extra = (count - 1) + max(0, ran[step] - allowed)
        if extra:
            report.duplicates += extra
            report.problems.append(f"execution {execution_id}: call {step} scheduled {count}x, ran {ran[step]}x, "
                                   f"started {allowed}x")
        if ran[step] == 0:
            report.problems.append(f"execution {execution_id}: call {step} completed without its side effect")


def integrity(home: Path) -> str:
    """``PRAGMA integrity_check`` of the daemon's store (run after the stack stopped)."""
    db = home / "data" / "stigmer.db"
    if not db.exists():
        return "no database"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    return "; ".join(str(r[0]) for r in rows)
