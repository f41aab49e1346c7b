"""What the terminal shows: Rich tables, colour and spinners at a real pseudo-terminal, plain text in a pipe,
no colour under ``NO_COLOR``, and no Rich at all for ``stigmer --help`` (it must stay fast).

The listings run against tests/support/sessions_api_double.py (the documented API, served on loopback).
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import stigmer
from tests.support.local_daemon import LocalStack, wait_until
from tests.support.sessions_api_double import Double, serve_double

# An SGR sequence that sets a colour (foreground/background, 16, 256 or RGB); bold and dim are not colours.
COLOUR = re.compile(rb"\x1b\[(?:[0-9;]*;)?(?:3[0-9]|4[0-9]|9[0-7]|10[0-7])(?:;[0-9;]*)?m")
BOX = "─".encode()


@pytest.fixture
def double(stigmer_home: Path) -> Iterator[Double]:
    with serve_double(stigmer_home) as served:
        yield served


def at_terminal(*args: str, env: dict[str, str] | None = None, cols: int = 120, timeout: float = 60) -> bytes:
    """``stigmer ARGS`` with stdin, stdout and stderr on a fresh pseudo-terminal ``cols`` wide; all it showed."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, cols, 0, 0))
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES")}
    child = subprocess.Popen([sys.executable, "-m", "stigmer", *args], stdin=secondary, stdout=secondary,
                             stderr=secondary, env={**base, "TERM": "xterm-256color", **(env or {})})
    os.close(secondary)
    seen, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([primary], [], [], 0.5)[0]:
                try:
                    chunk = os.read(primary, 4096)
                except OSError:  # the terminal closed: the process ended
                    break
                if not chunk:
                    break
                seen += chunk
            elif child.poll() is not None:
                break
        assert child.wait(timeout=10) == 0, seen
    finally:
        child.kill()
        os.close(primary)
    return seen


def test_help_does_not_import_rich() -> None:
    code = ("import sys\nfrom stigmer.cli.main import main\nmain(['--help'])\n"
            "assert not [m for m in sys.modules if m == 'rich' or m.startswith('rich.')], 'rich imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "Commands:" in done.stdout


def test_a_listing_at_a_terminal_is_a_rich_table_with_coloured_states(double: Double) -> None:
    assert stigmer("run", "asker", "write a note", "--detach").returncode == 0
    seen = at_terminal("approval", "list")
    assert BOX in seen  # the rule under the header
    assert re.search(rb"ID\S*\s.*STATUS", seen)
    assert re.search(rb"\x1b\[33m[^\x1b]*pending", seen), seen  # the state word in yellow
    assert b"write_file" in seen


def test_no_color_at_a_terminal_keeps_the_table_and_drops_the_colour(double: Double) -> None:
    assert stigmer("run", "asker", "write a note", "--detach").returncode == 0
    seen = at_terminal("approval", "list", env={"NO_COLOR": "1"})
    assert BOX in seen and b"pending" in seen
    assert not COLOUR.search(seen), seen
    shown = at_terminal("config", "show", env={"NO_COLOR": "1"})
    assert BOX in shown and not COLOUR.search(shown)


def test_a_pipe_gets_plain_aligned_text(double: Double) -> None:
    assert stigmer("run", "asker", "write a note", "--detach").returncode == 0
    listed = stigmer("approval", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split() == ["ID", "STATUS", "EXECUTION", "SESSION", "CALL", "AGE"]
    assert "\x1b" not in listed.stdout + listed.stderr and "─" not in listed.stdout
    shown = stigmer("config", "show")
    assert shown.stdout.splitlines()[0].startswith("llm.provider ") and "\x1b" not in shown.stdout
    forced = stigmer("config", "show", env={"FORCE_COLOR": "1"})  # a CI log that renders colour asked for it
    assert "─" in forced.stdout and "\x1b[" in forced.stdout


def test_config_show_at_a_terminal_has_headers_and_colour() -> None:
    seen = at_terminal("config", "show")
    assert BOX in seen and COLOUR.search(seen)
    assert re.search(rb"KEY\S*\s.*VALUE\S*\s.*SOURCE\S*\s.*ORIGIN", seen)
    assert b"llm.provider" in seen


def test_a_run_at_a_terminal_streams_the_answer_then_the_summary(double: Double) -> None:
    seen = at_terminal("run", "hello", "hi")
    text = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", seen)
    assert b"Hello, turn 1." in text
    assert text.index(b"Hello, turn 1.") < text.index(b"completed") < text.index(b"usage: 10 in / 5 out")
    assert COLOUR.search(seen)  # the summary is green, the usage dim grey
    quiet = at_terminal("run", "hello", "hi", env={"NO_COLOR": "1"})
    assert b"completed" in quiet and not COLOUR.search(quiet)


class _Terminal(io.StringIO):
    """A stream that says it is a terminal: what Rich draws there, captured."""

    def isatty(self) -> bool:
        return True


def test_the_spinner_names_the_wait_and_is_gone_before_the_answer() -> None:
    from stigmer.cli.run import Renderer

    out, err, threads = _Terminal(), _Terminal(), threading.active_count()
    renderer = Renderer(out, err)
    for kind, data in (("step_started", {"step": 1, "attempt": 1}), ("tool_started", {"name": "get_time", "args": {}}),
                       ("tool_finished", {"result": "12:00"}), ("token", {"step": 2, "text": "Noon."}),
                       ("completed", {"output": "Noon.", "steps": 2})):
        renderer.show({"type": kind, "data": data}, time.monotonic())
        time.sleep(0.15)
    renderer.pause()
    assert "waiting for the model" in err.getvalue() and "running get_time" in err.getvalue()
    assert "waiting for the model" not in out.getvalue() and "Noon." in out.getvalue()
    assert err.getvalue().rstrip().endswith("\x1b[0m") and "✓ completed in 2 steps" in err.getvalue()
    assert threading.active_count() == threads  # the spinner's redraw thread is stopped


def test_pull_progress_draws_bars_at_a_terminal_and_lines_in_a_pipe() -> None:
    from stigmer.cli._term import Progress

    bars, piped = Progress(_Terminal()), Progress(io.StringIO())
    for progress in (bars, piped):
        progress.note("pulling manifest")
        for done in (0, 500_000, 1_000_000):
            progress.update("sha256:abc", "pulling abc", done, 1_000_000)
        progress.note("success")
        progress.close()
    assert "━" in bars.stream.getvalue() and "success" in bars.stream.getvalue()
    assert piped.stream.getvalue().splitlines() == ["pulling manifest", "pulling abc: 0% of 1.0 MB",
                                                    "pulling abc: 50% of 1.0 MB", "pulling abc: 100% of 1.0 MB",
                                                    "success"]


@pytest.mark.slow
def test_local_start_spins_then_status_is_a_table(stigmer_home: Path) -> None:
    """The real stack (scripted LLM, real Temporal): a spinner names each step, then the status is a table."""
    stack = LocalStack.scripted(stigmer_home)
    try:
        started = at_terminal("local", "start", env=stack.env, timeout=300)
        stack.remember()
        assert re.search("[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]".encode(), started), started  # Rich's spinner frames
        assert b"stigmer is running" in started
        status = at_terminal("local", "status", env=stack.env)
        assert BOX in status and re.search(rb"COMPONENT\S*\s.*STATE", status)
        assert re.search(rb"\x1b\[32m[^\x1b]*ready", status), status  # ready in green
    finally:
        stack.cleanup()
    assert not stack.leftovers()


def _own_terminal() -> None:
    """In the child: a session of its own whose controlling terminal is the pty, so ^C there is its SIGINT."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """``stigmer ARGS`` on a pseudo-terminal, driven as a person would: read until a text shows, then type."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.primary, secondary = pty.openpty()
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
        self.child = subprocess.Popen([sys.executable, "-m", "stigmer", *args], stdin=secondary, stdout=secondary,
                                      stderr=secondary, env={**base, **env}, preexec_fn=_own_terminal)
        os.close(secondary)
        self.seen = b""

    def expect(self, text: bytes, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            assert time.monotonic() < deadline, f"no {text!r} on the terminal: {self.seen[-2000:]!r}"
            if select.select([self.primary], [], [], 0.5)[0]:
                try:
                    self.seen += os.read(self.primary, 4096)
                except OSError:
                    break
        assert text in self.seen, self.seen[-2000:]

    def type(self, text: bytes) -> None:
        os.write(self.primary, text)

    def close(self) -> None:
        self.child.kill()
        os.close(self.primary)


@pytest.mark.slow
def test_ctrl_c_at_a_terminal_stops_the_spinner_and_asks(stigmer_home: Path) -> None:
    """Ctrl-C while the spinner waits for the model: the spinner goes, the question is asked, cancel cancels."""
    stack = LocalStack.scripted(stigmer_home, [{"content": "Too late.", "delay": 60}])
    run: Terminal | None = None
    try:
        assert stack.start().returncode == 0
        assert stack.run("apply", "-f", "examples/agents/hello.yaml").returncode == 0
        run = Terminal("run", "hello", "take your time", env=stack.env)
        run.expect(b"waiting for the model")
        run.type(b"\x03")  # the terminal turns it into SIGINT for the foreground process
        run.expect(b"cancel the execution or detach from it?")
        question = run.seen[run.seen.rindex(b"waiting for the model"):]
        assert b"\x1b[2K" in question  # the spinner's line was erased before the question
        run.type(b"cancel\n")
        run.expect(b"cancelling execution")
        assert run.child.wait(timeout=30) == 130
        assert b"Traceback" not in run.seen
        execution = json.loads(stack.run("execution", "list", "-o", "json").stdout)[0]
        wait_until(lambda: json.loads(stack.run("execution", "get", execution["id"], "-o", "json").stdout)["status"]
                   == "cancelled", 60, "the execution cancelled")
    finally:
        if run is not None:
            run.close()
        stack.cleanup()
