"""``stigmer local start|stop|status|restart|logs`` with real processes on loopback (scripted LLM, real Temporal)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.support.local_daemon import LocalStack, gone, wait_until

pytestmark = pytest.mark.slow


SECRET = "sk-ant-secret-value-1234"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One stack, started once, for the tests that only look at it."""
    s = LocalStack.scripted(tmp_path_factory.mktemp("running"), ANTHROPIC_API_KEY=SECRET)
    done = s.start()
    assert done.returncode == 0, done.stderr
    yield s
    s.cleanup()


@pytest.fixture
def stack(stigmer_home: Path) -> Iterator[LocalStack]:
    s = LocalStack.scripted(stigmer_home)
    yield s
    s.cleanup()


class _Follower:
    """``stigmer local logs -f COMPONENT -n 0`` running in the background, its lines collected."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc, self.lines = proc, []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def close(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=10)


def _follow_logs(stack: LocalStack, component: str) -> _Follower:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_")}
    env.update(stack.env)
    proc = subprocess.Popen([sys.executable, "-m", "stigmer", "local", "logs", "-f", "-n", "0", component], env=env,
                            stdout=subprocess.PIPE, text=True)
    return _Follower(proc)


def test_start_status_stop_leaves_no_process(stack: LocalStack) -> None:
    done = stack.start()
    assert done.returncode == 0, done.stderr
    assert "stigmer is running" in done.stdout
    assert f"http://127.0.0.1:{stack.api_port}" in done.stdout
    assert f"web UI http://127.0.0.1:{stack.env['STIGMER_TEMPORAL_UI_PORT']}" in done.stdout
    assert "from the environment variable STIGMER_LLM_PROVIDER" in done.stdout
    comps = stack.components()
    assert {"api", "temporal", "runner-1"} <= comps.keys()
    assert all(c["state"] == "ready" and c["pid"] for c in comps.values())
    assert comps["temporal"]["address"] == f"127.0.0.1:{stack.env['STIGMER_TEMPORAL_PORT']}"
    token = stack.home / "run" / "token"
    assert token.stat().st_mode & 0o777 == 0o600
    table = stack.run("local", "status")
    assert table.returncode == 0 and "runner-1" in table.stdout and "ready" in table.stdout

    follower = _follow_logs(stack, "daemon")
    stopped = stack.stop()
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert stack.leftovers() == []
    wait_until(lambda: any("stigmer.daemon: stopped" in line for line in follower.lines), 10, "logs -f saw the stop")
    follower.close()
    assert not (stack.home / "run" / "state.json").exists() and not (stack.home / "run" / "daemon.pid").exists()
    down = stack.run("local", "status")
    assert down.returncode == 3 and "not running" in down.stderr and "stigmer local start" in down.stderr


def test_children_never_get_secrets_in_argv_and_runner_resolves_same_config(running: LocalStack) -> None:
    comps = running.components()
    for pid in running.seen_pids:
        cmdline = " ".join(psutil.Process(pid).cmdline())
        assert SECRET not in cmdline
        assert "scripted" not in cmdline  # settings travel in the environment, not argv
    env = psutil.Process(comps["runner-1"]["pid"]).environ()
    assert env["STIGMER_LLM_PROVIDER"] == "scripted" and env["ANTHROPIC_API_KEY"] == SECRET
    assert env["STIGMER_SERVER_URL"] == f"http://127.0.0.1:{running.api_port}"
    assert "ANTHROPIC_API_KEY" not in psutil.Process(comps["temporal"]["pid"]).environ()
    logs = "".join(p.read_text(errors="replace") for p in (running.home / "logs").glob("*"))
    assert SECRET not in logs


def test_start_is_idempotent_and_a_different_config_asks_for_restart(stack: LocalStack) -> None:
    assert stack.start().returncode == 0
    pid = stack.daemon_pid()
    again = stack.run("local")  # plain `stigmer local` is `start`
    assert again.returncode == 0 and "already running" in again.stdout and str(pid) in again.stdout
    other = stack.start("--workers", "2")
    assert other.returncode == 2
    assert "different configuration" in other.stderr and "stigmer local restart" in other.stderr
    assert stack.daemon_pid() == pid
    restarted = stack.run("local", "restart", "--workers", "2")
    assert restarted.returncode == 0, restarted.stderr
    stack.remember()
    assert gone(pid)
    assert {"runner-1", "runner-2"} <= stack.components().keys()


def test_stale_files_and_orphans_of_a_killed_daemon_are_cleaned(stack: LocalStack) -> None:
    assert stack.start().returncode == 0
    comps = stack.components()
    daemon, runner = comps["api"]["pid"], comps["runner-1"]["pid"]
    os.kill(daemon, signal.SIGKILL)
    wait_until(lambda: gone(daemon), 10, "daemon gone")
    assert not gone(runner)  # children live in their own sessions: the daemon's death leaves them
    status = stack.run("local", "status")
    assert status.returncode == 3  # the stale state.json is not trusted
    again = stack.start()
    assert again.returncode == 0, again.stderr
    assert "did not stop cleanly" in again.stderr
    wait_until(lambda: gone(runner), 10, "orphaned runner ended")
    assert stack.components()["runner-1"]["pid"] != runner


def test_stop_works_with_a_broken_config_and_after_a_crash(stack: LocalStack) -> None:
    assert stack.start().returncode == 0
    (stack.home / "config.yaml").write_text("llm: [this is: not valid\n")
    done = stack.stop()
    assert done.returncode == 0 and "stopped" in done.stdout
    assert stack.leftovers() == []
    assert stack.stop().stdout.strip() == "stigmer is not running"


def test_temporal_port_taken_is_a_clear_error(stack: LocalStack) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(stack.env["STIGMER_TEMPORAL_PORT"])))
        squatter.listen()
        done = stack.start()
    assert done.returncode == 1
    assert f"Temporal's port {stack.env['STIGMER_TEMPORAL_PORT']} on 127.0.0.1 is already in use" in done.stderr
    assert "--temporal-port" in done.stderr and "Traceback" not in done.stderr
    assert stack.run("local", "status").returncode == 3


def test_api_port_taken_is_a_clear_error(stack: LocalStack) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", stack.api_port))
        squatter.listen()
        done = stack.start()
    assert done.returncode == 1
    assert f"API port {stack.api_port}" in done.stderr and "--port" in done.stderr
    assert "Traceback" not in done.stderr


def test_api_refuses_a_non_loopback_host(stack: LocalStack) -> None:
    stack.env["STIGMER_SERVER_HOST"] = "0.0.0.0"
    refused = stack.start()
    assert refused.returncode != 0 and "only binds loopback" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_everything_listens_on_loopback_only(running: LocalStack) -> None:
    listening = []
    for pid in running.seen_pids:
        listening += [c.laddr for c in psutil.Process(pid).net_connections("inet") if c.status == psutil.CONN_LISTEN]
    assert any(addr.port == running.api_port for addr in listening)
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening)


def test_failed_component_start_shows_its_log_and_what_to_do(stigmer_home: Path) -> None:
    stack = LocalStack.bare(stigmer_home, STIGMER_LLM_PROVIDER="ollama", OLLAMA_HOST="127.0.0.1:9",
                            PATH=os.path.dirname(os.__file__))
    done = stack.start()
    assert done.returncode != 0
    assert "ollama" in done.stderr and "ollama.com" in done.stderr and "ANTHROPIC_API_KEY" in done.stderr
    assert "Traceback" not in done.stderr
    assert stack.run("local", "status").returncode == 3


def test_logs_shows_component_lines_and_names_unknown_ones(running: LocalStack) -> None:
    stack = running
    one = stack.run("local", "logs", "-n", "5", "runner-1")
    assert one.returncode == 0 and one.stdout.strip()
    everything = stack.run("local", "logs", "-n", "3")
    assert "temporal" in everything.stdout and "daemon" in everything.stdout
    bad = stack.run("local", "logs", "runer-1")
    assert bad.returncode == 2 and "did you mean" in bad.stderr and "runner-1" in bad.stderr


def test_daemon_log_names_the_llm_and_why_and_logs_are_plain_text(running: LocalStack) -> None:
    daemon_log = (running.home / "logs" / "daemon.log").read_text()
    script = running.env["STIGMER_LLM_MODEL"]
    assert (f"llm: provider scripted (from the environment variable STIGMER_LLM_PROVIDER), model {script} "
            "(from the environment variable STIGMER_LLM_MODEL)") in daemon_log
    for path in (running.home / "logs").glob("*"):
        assert "\x1b[" not in path.read_text(errors="replace"), f"ANSI escape codes in {path.name}"


def test_status_json_reports_llm_source_as_the_cli_resolved_it(running: LocalStack) -> None:
    data = running.status()
    assert data["running"] is True
    assert data["llm"]["provider"]["value"] == "scripted"
    assert data["llm"]["provider"]["origin"] == "STIGMER_LLM_PROVIDER"
    assert json.dumps(data)  # plain JSON for scripts


def test_foreground_runs_in_the_terminal_and_ctrl_c_stops_everything(stack: LocalStack) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_")}
    env.update(stack.env)
    proc = subprocess.Popen([sys.executable, "-m", "stigmer", "local", "start", "--foreground"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: stack.run("local", "status").returncode == 0
                   and all(c["state"] == "ready" for c in stack.status()["components"]), 60, "foreground ready")
        stack.remember()
        assert stack.daemon_pid() == proc.pid
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stigmer is running" in err and "stigmer stopped" in err
    assert stack.leftovers() == []


def test_a_component_that_dies_on_start_is_reported_with_its_last_log_lines(stack: LocalStack) -> None:
    db = stack.home / "temporal" / "temporal.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not an sqlite database" * 500)
    done = stack.start()
    assert done.returncode == 1
    assert "could not start stigmer: temporal: exited with code 1 while starting" in done.stderr
    assert "last log lines" in done.stderr and "file is not a database" in done.stderr
    assert "temporal.log" in done.stderr  # where to read the rest
    assert stack.run("local", "status").returncode == 3
    assert "file is not a database" in stack.run("local", "logs", "temporal").stdout
