"""The supervisor with tiny real child processes: readiness, restart budget, ordered and group stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from stigmer.daemon.service import Service, port_open
from stigmer.daemon.supervisor import FAILED, READY, RestartPolicy, StartupFailed, Supervisor
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[1]
FAST = RestartPolicy(max_restarts=2, stable_window_s=5.0, backoff_s=0.05, poll_interval_s=0.05)


class ChildService(Service):
    """tests/support/children/child.py as a supervised service; ready when its port accepts connections."""

    def __init__(self, name: str, *switches: str, ready_timeout: float = 15.0, stop_order: list[str] | None = None,
                 needs: tuple[str, ...] = ()):
        super().__init__()
        self.name = name
        self.needs = needs
        self.port = free_port()
        self.switches = switches
        self.ready_timeout_s = ready_timeout
        self.stop_timeout_s = 1.0
        self.address = f"127.0.0.1:{self.port}"
        self.launches = 0
        self.stop_order = stop_order

    def command(self) -> tuple[list[str], dict[str, str]]:
        self.launches += 1
        argv = [sys.executable, "-m", "tests.support.children.child", "--port", str(self.port), *self.switches]
        return argv, {**os.environ, "PYTHONPATH": str(REPO)}

    async def ready(self) -> bool:
        return await port_open("127.0.0.1", self.port)

    async def stop(self) -> None:
        if self.stop_order is not None:
            self.stop_order.append(self.name)
        await super().stop()


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_dependents_wait_for_readiness_independents_boot_together_stop_in_reverse(tmp_path: Path) -> None:
    order: list[str] = []
    first = ChildService("temporal", "--slow-start", "1.5", stop_order=order)
    llm = ChildService("llm", "--slow-start", "1.5", stop_order=order)
    second = ChildService("runner-1", stop_order=order, needs=("temporal",))
    sup = Supervisor([first, llm, second], tmp_path / "logs", FAST)
    began = time.monotonic()
    await sup.start()
    try:
        # sequential would take >= 3.0 s: temporal and llm boot side by side
        assert time.monotonic() - began < 2.8
        comps = {c.name: c for c in sup.components}
        assert comps["runner-1"].launched_at is not None and comps["temporal"].ready_at is not None
        assert comps["runner-1"].launched_at >= comps["temporal"].ready_at
        assert await port_open("127.0.0.1", first.port) and await port_open("127.0.0.1", second.port)
        snap = {c["name"]: c for c in sup.snapshot()}
        assert snap["temporal"]["state"] == READY and snap["temporal"]["pid"] == first.pid
        assert snap["runner-1"]["address"] == second.address
        assert "listening" in (tmp_path / "logs" / "temporal.log").read_text()
    finally:
        pids = [first.pid, second.pid]
        await sup.stop()
    assert order == ["runner-1", "llm", "temporal"]
    assert all(gone(pid) for pid in pids if pid)


async def test_slow_start_is_waited_for_by_probe_not_timer(tmp_path: Path) -> None:
    slow = ChildService("llm", "--slow-start", "1.0")
    sup = Supervisor([slow], tmp_path / "logs", FAST)
    began = time.monotonic()
    await sup.start()
    try:
        assert time.monotonic() - began >= 1.0
        assert await port_open("127.0.0.1", slow.port)
    finally:
        await sup.stop()


async def test_too_slow_start_fails_naming_the_component(tmp_path: Path) -> None:
    slow = ChildService("llm", "--slow-start", "30", ready_timeout=0.5)
    sup = Supervisor([slow], tmp_path / "logs", RestartPolicy(max_restarts=0, poll_interval_s=0.05))
    with pytest.raises(StartupFailed, match=r"llm: not ready at 127\.0\.0\.1:\d+ after 0\.5s"):
        await sup.start()
    assert slow.pid is not None and gone(slow.pid)
    await sup.stop()


async def test_fail_on_start_uses_budget_then_reports_log_and_skips_later_components(tmp_path: Path) -> None:
    broken, later = ChildService("temporal", "--fail-on-start"), ChildService("runner-1", needs=("temporal",))
    sup = Supervisor([broken, later], tmp_path / "logs", FAST)
    with pytest.raises(StartupFailed) as info:
        await sup.start()
    await sup.stop()
    assert info.value.component == "temporal"
    assert "exited with code 3 while starting" in str(info.value)
    assert any("bad configuration" in line for line in info.value.log_tail)
    assert broken.launches == 1 + FAST.max_restarts
    assert later.launches == 0
    snap = {c["name"]: c for c in sup.snapshot()}
    assert snap["temporal"]["state"] == FAILED and snap["temporal"]["restarts"] == FAST.max_restarts


async def test_crash_loop_is_restarted_then_reported_failed(tmp_path: Path) -> None:
    crashy = ChildService("runner-1", "--crash-after", "0.2")
    sup = Supervisor([crashy], tmp_path / "logs", FAST)
    await sup.start()
    try:
        await until(lambda: sup.get("runner-1").state == FAILED)
        status = sup.snapshot()[0]
        assert status["restarts"] == FAST.max_restarts
        assert "exited with code 3" in status["last_error"] and "gave up" in status["last_error"]
        assert crashy.launches == 1 + FAST.max_restarts
    finally:
        await sup.stop()


async def test_child_that_ran_past_stable_window_gets_a_fresh_budget(tmp_path: Path) -> None:
    crashy = ChildService("runner-1", "--crash-after", "0.4")
    policy = RestartPolicy(max_restarts=1, stable_window_s=0.3, backoff_s=0.05, poll_interval_s=0.05)
    sup = Supervisor([crashy], tmp_path / "logs", policy)
    await sup.start()
    try:
        await until(lambda: crashy.launches >= 4)
        assert sup.get("runner-1").state != FAILED
    finally:
        await sup.stop()


async def test_killed_child_is_restarted_and_ready_again(tmp_path: Path) -> None:
    child = ChildService("runner-1")
    sup = Supervisor([child], tmp_path / "logs", FAST)
    await sup.start()
    try:
        first = child.pid
        assert first is not None
        os.kill(first, 9)
        await until(lambda: child.pid != first and sup.get("runner-1").state == READY)
        assert await port_open("127.0.0.1", child.port)
        assert sup.snapshot()[0]["restarts"] == 1
    finally:
        await sup.stop()


async def test_stop_kills_whole_group_even_when_sigterm_is_ignored(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    stubborn = ChildService("llm", "--ignore-term", "--spawn-grandchild", str(pidfile))
    sup = Supervisor([stubborn], tmp_path / "logs", FAST)
    await sup.start()
    child_pid, grandchild_pid = stubborn.pid, int(pidfile.read_text())
    assert child_pid is not None and not gone(grandchild_pid)
    await sup.stop()
    assert gone(child_pid)
    await until(lambda: gone(grandchild_pid), timeout=5)


async def test_stop_tolerates_already_exited_children(tmp_path: Path) -> None:
    child = ChildService("runner-1")
    sup = Supervisor([child], tmp_path / "logs", RestartPolicy(max_restarts=0, poll_interval_s=0.05))
    await sup.start()
    assert child.process is not None
    child.process.kill()
    child.process.wait()
    await sup.stop()
    assert sup.snapshot()[0]["state"] in ("stopped", "failed")


async def test_stop_during_start_ends_the_half_started_child(tmp_path: Path) -> None:
    slow = ChildService("llm", "--slow-start", "30")
    sup = Supervisor([slow], tmp_path / "logs", FAST)
    starting = asyncio.create_task(sup.start())
    await until(lambda: slow.pid is not None)
    starting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await starting
    await sup.stop()
    assert slow.pid is not None and gone(slow.pid)
    assert sup.snapshot()[0]["state"] == "stopped"
