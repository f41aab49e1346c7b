"""``kill -9`` the embedded llama.cpp server in the middle of a streamed model call (issue 6).

A real stack on the embedded provider (real daemon, Temporal, runner and Gemma 3 270M served by
llama.cpp), ``stigmer run --json`` streaming, and once the first token has arrived the model
server is killed. What a user must notice: the supervisor brings the server back (a new PID,
``ready``, one restart), the model call is retried (a second ``step_started`` with attempt 2) and
the run still ends ``completed``; ``stigmer get executions`` agrees; ``stigmer local stop`` leaves
no process behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.local_daemon import REPO, LocalStack, gone, wait_until
from tests.support.ports import free_port

pytestmark = pytest.mark.slow

HELLO = REPO / "examples" / "agents" / "hello.yaml"
# Enough tokens that the call outlasts the kill (1.5 s at ~90 tokens/s, more on a busy machine): it lands mid-stream.
MAX_TOKENS = "150"


class _RunJson:
    """``stigmer run ... --json`` in the stack's environment; a thread queues each event line as it is printed."""

    def __init__(self, stack: LocalStack, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_")}
        env.update(stack.env)
        self.proc = subprocess.Popen([sys.executable, "-m", "stigmer", "run", *args, "--json"], env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def read_until(self, kind: str | None, timeout: float) -> list[dict[str, Any]]:
        """Events up to the first of type ``kind`` (or to the end of output when None), failing after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {kind or 'end of output'} after {timeout}s: {self.events[-3:]}") from None
            if line is None:
                if kind is None:
                    return self.events
                raise AssertionError(f"`stigmer run` ended before a {kind} event: {self.events[-3:]}")
            if line.strip():
                self.events.append(json.loads(line))
                if self.events[-1]["type"] == kind:
                    return self.events

    def close(self) -> str:
        """Wait for the command (killing it if still running) and return its stderr."""
        if self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        if self.proc.poll() is None:
            self.proc.kill()
        _, err = self.proc.communicate()
        return err


def test_kill_9_llamacpp_mid_stream_is_restarted_and_the_execution_completes(stigmer_home: Path) -> None:
    stack = LocalStack.bare(stigmer_home, STIGMER_LLM_BASE_URL=f"http://127.0.0.1:{free_port()}/v1",
                            STIGMER_LLM_MAX_TOKENS=MAX_TOKENS)
    run: _RunJson | None = None
    try:
        done = stack.start()
        assert done.returncode == 0, done.stderr
        before = stack.components()["llamacpp"]
        assert before["state"] == "ready" and before["restarts"] == 0
        assert stack.run("apply", "-f", str(HELLO)).returncode == 0

        run = _RunJson(stack, "hello", "Tell me a long story about a lighthouse.")
        run.read_until("token", timeout=60)
        os.kill(before["pid"], signal.SIGKILL)
        killed_at = time.monotonic()

        wait_until(lambda: (c := stack.components()["llamacpp"])["pid"] not in (None, before["pid"])
                   and c["state"] == "ready", 60, "llama.cpp server restarted")
        restarted_after = time.monotonic() - killed_at
        after = stack.components()["llamacpp"]
        assert after["restarts"] == 1 and gone(before["pid"])
        stack.remember()

        events = run.read_until(None, timeout=60)
        stderr = run.close()
        assert run.proc.returncode == 0, stderr
        attempts = [e["data"]["attempt"] for e in events if e["type"] == "step_started"]
        # The killed call, then retries with backoff (1 s, 2 s, 4 s, ...), within the budget of 8 attempts: the
        # first retries may find the server still loading (connection refused), which is retryable too.
        assert attempts == list(range(1, len(attempts) + 1)) and 2 <= len(attempts) <= 8, attempts
        last_start = max(i for i, e in enumerate(events) if e["type"] == "step_started")
        assert any(e["type"] == "token" for e in events[last_start:])  # the retry streams again
        assert events[-1]["type"] == "completed" and events[-1]["data"]["output"]
        execution_id = events[-1]["execution_id"]
        completed_after = time.monotonic() - killed_at
        print(f"\nllama.cpp restarted {restarted_after:.1f}s after the kill; run completed after "
              f"{completed_after:.1f}s; model call attempts: {attempts}")

        # The runner's log says why each attempt was retried: the stream cut, then the server still restarting.
        runner_log = (stack.home / "logs" / "runner-1.log").read_text()
        assert "failed (attempt 1, will retry): the connection to llamacpp was lost mid-call" in runner_log
        listed = stack.run("get", "executions", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        rows = {row["id"]: row for row in json.loads(listed.stdout)}
        assert rows[execution_id]["status"] == "completed"

        assert stack.stop().returncode == 0
        assert stack.leftovers() == [] and gone(after["pid"])
    finally:
        if run is not None:
            run.close()
        stack.cleanup()
