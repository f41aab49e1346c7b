"""The opt-in shell tool cannot reach stigmer's secrets: not in its environment, not in stigmer's home, not in /proc.

Real ``run_shell`` calls (``workspace.call``, as the runner's activity makes them) in a process whose
environment holds every one of stigmer's own secrets as a sentinel, next to a home holding a token,
a config file with a key and a secret store. The command tries what a curious model would: ``cat``
the files, read every ``/proc/PID/environ`` (this test process plays the runner), run ``env``; it can
still read and write its workspace. The runner and the daemon are non-dumpable, so even where no
sandbox can be built a process of the same user cannot read their environment.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from stigmer.config.envvars import stigmer_secrets
from stigmer.config.secret_store import SecretStore
from stigmer.worker.tools import _sandbox, workspace
from stigmer.worker.tools.workspace import ToolFailure

CORE = secrets.token_hex(8)
SENTINELS = {name: f"sentinel-{name.lower()}-{CORE}" for name in sorted(stigmer_secrets())}
SENTINELS["WORKER_PRIVATE"] = f"sentinel-private-{CORE}"
NOBODY = 65534
REPO_SRC = Path(__file__).resolve().parents[1] / "src"
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run processes as a second uid")


@pytest.fixture
def home(stigmer_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home as a running stack leaves it, and a runner environment full of sentinels."""
    for name, value in SENTINELS.items():
        monkeypatch.setenv(name, value)
    (stigmer_home / "run").mkdir()
    (stigmer_home / "run" / "token").write_text(f"token-{CORE}\n")
    (stigmer_home / "config.yaml").write_text(f"llm:\n  api_key: sk-ant-config-{CORE}\n")
    SecretStore(stigmer_home).set("GITHUB_TOKEN", f"ghp_store_{CORE}")
    return stigmer_home


def _workspace(home: Path) -> Path:
    ws = home / "workspaces" / "agent"
    ws.mkdir(parents=True)
    (ws / "in.txt").write_text("inside\n")
    return ws


async def test_a_shell_command_sees_none_of_stigmers_secrets(home: Path) -> None:
    ws = _workspace(home)
    command = f"""
        cat {home}/run/token {home}/config.yaml {home}/secrets.json
        echo "HOME-LISTING:$(ls -A {home} | tr '\\n' ' ')"
        cat /proc/{os.getpid()}/environ
        for p in /proc/[0-9]*; do cat $p/environ 2>/dev/null; echo; done
        env
        cat in.txt && echo written > out.txt && echo wrote
    """
    out = await workspace.call("run_shell", ws, {"command": command})
    assert CORE not in out, "a secret reached the shell command"
    assert "HOME-LISTING:workspaces \n" in out  # the home is empty but for the way to the workspace
    assert "inside" in out and "wrote" in out and (ws / "out.txt").read_text() == "written\n"
    assert "PATH=" in out  # `env` ran: only the scrubbed environment was there to print
    assert (home / "run" / "token").read_text() == f"token-{CORE}\n"  # hidden from the command, not harmed


async def test_a_workspace_that_holds_the_home_sees_it_empty(home: Path, tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("mine\n")
    out = await workspace.call("run_shell", tmp_path, {
        "command": f"ls -A {home.name} | wc -l; cat mine.txt; cat {home.name}/run/token; touch new.txt"})
    assert out.startswith("exit code 0\n0\nmine\n") and CORE not in out
    assert (tmp_path / "new.txt").exists()


@pytest.mark.parametrize("inside", [".", "run", "data/sub", "logs", "temporal"])
async def test_the_shell_does_not_run_in_stigmers_private_directories(home: Path, inside: str) -> None:
    target = home / inside
    target.mkdir(parents=True, exist_ok=True)
    with pytest.raises(ToolFailure, match="stigmer's home or one of its private directories"):
        await workspace.call("run_shell", target, {"command": "cat run/token token"})


async def test_a_workspace_elsewhere_under_the_home_sees_only_itself(home: Path) -> None:
    ws = home / "ws" / "run-001"
    ws.mkdir(parents=True)
    out = await workspace.call("run_shell", ws, {"command": f"echo x >> side.log; ls -A {home}; cat {home}/run/token"})
    assert out.startswith("exit code 1\nws\n") and CORE not in out
    assert (ws / "side.log").read_text() == "x\n"


async def test_what_the_command_leaves_running_dies_with_it(home: Path) -> None:
    ws = _workspace(home)
    started = time.monotonic()
    out = await workspace.call("run_shell", ws, {"command": "setsid sleep 41.3 & sleep 41.4 & echo started"})
    assert out == "exit code 0\nstarted\n"
    assert time.monotonic() - started < 10  # no leftover process holds the output open

    def leftovers() -> list[int]:
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            if proc.info["cmdline"] and proc.info["cmdline"][-1] in ("41.3", "41.4"):
                found.append(proc.pid)
        return found

    deadline = time.monotonic() + 10
    while leftovers() and time.monotonic() < deadline:  # the kernel ends the namespace's processes: poll it
        time.sleep(0.05)
    assert leftovers() == []


async def test_without_namespaces_the_shell_runs_with_the_scrubbed_environment_and_says_so_once(
        home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A machine that refuses user namespaces (a stand-in helper answers as the real one does there)."""
    refusing = [sys.executable, "-c", f"import sys; print('{_sandbox.MARK} unshare: Operation not permitted', "
                f"file=sys.stderr); sys.exit({_sandbox.UNAVAILABLE})"]
    monkeypatch.setattr(workspace, "_SANDBOX", {})
    monkeypatch.setattr(_sandbox, "argv", lambda *args, **kwargs: refusing)
    ws = _workspace(home)
    with caplog.at_level(logging.WARNING, logger="stigmer.worker.shell"):
        first = await workspace.call("run_shell", ws, {"command": "env; cat in.txt"})
        second = await workspace.call("run_shell", ws, {"command": "echo again"})
    assert first.startswith("exit code 0\n") and "inside" in first and "PATH=" in first
    assert CORE not in first and second == "exit code 0\nagain\n"
    warnings = [r.getMessage() for r in caplog.records if "unsandboxed" in r.getMessage()]
    assert len(warnings) == 1 and "Operation not permitted" in warnings[0]


_HOLDER = """
import sys, time
if sys.argv[1] == "undumpable":
    helper = {}
    exec(sys.stdin.readline().encode().decode("unicode_escape"), helper)  # stigmer/_hardening.py, as shipped
    assert helper["make_undumpable"]()
print("ready", flush=True)
time.sleep(60)
"""
_READER = """
import sys
try:
    data = open(sys.argv[1], "rb").read()
except Exception as exc:
    print(type(exc).__name__)
else:
    print("READ" if sys.argv[2].encode() in data else "READ-WITHOUT-SENTINEL")
"""


def _environ_as_nobody(undumpable: bool) -> str:
    """What uid 65534 reads in the environ of another uid-65534 process that holds a sentinel key.

    The holder gets ``stigmer/_hardening.py``'s source on stdin: uid 65534 may not be able to read the
    checkout (CI clones under a private directory).
    """
    from stigmer import _hardening

    sentinel = f"sk-ant-dump-{CORE}"
    source = Path(_hardening.__file__).read_text().encode("unicode_escape").decode() + "\n"
    holder = subprocess.Popen(["/usr/bin/python3", "-c", _HOLDER, "undumpable" if undumpable else "plain"],
                              user=NOBODY, group=NOBODY, extra_groups=[], cwd="/",
                              env={"PATH": "/usr/bin:/bin", "ANTHROPIC_API_KEY": sentinel}, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.write(source)
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "ready"
        done = subprocess.run(["/usr/bin/python3", "-c", _READER, f"/proc/{holder.pid}/environ", sentinel],
                              user=NOBODY, group=NOBODY, extra_groups=[], env={"PATH": "/usr/bin:/bin"}, cwd="/",
                              capture_output=True, text=True, timeout=30, check=False)
        return done.stdout.strip() or done.stderr.strip()
    finally:
        holder.kill()
        holder.wait(timeout=10)


@as_root
def test_a_non_dumpable_process_keeps_its_environment_from_the_same_user() -> None:
    assert _environ_as_nobody(undumpable=False) == "READ"  # the control: same user, readable by default
    assert _environ_as_nobody(undumpable=True) == "PermissionError"


def _dumpable_after(code: str, env: dict[str, str]) -> str:
    full = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(REPO_SRC), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=60,
                          check=False)
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr


def test_the_runner_command_makes_itself_non_dumpable_before_it_serves(stigmer_home: Path) -> None:
    code = """
import ctypes, os
import stigmer.worker.main as worker_main
async def report(cfg, stop, **kwargs):
    print("dumpable", ctypes.CDLL(None).prctl(3, 0, 0, 0, 0), flush=True)
worker_main.run_worker = report
from stigmer.cli.main import main
main(["runner"])
"""
    from tests.support.scripted_provider import PLUGIN

    env = {"STIGMER_HOME": str(stigmer_home), "STIGMER_PLUGINS": PLUGIN, "STIGMER_LLM_PROVIDER": "scripted"}
    assert _dumpable_after(code, env) == "dumpable 0"


def test_the_daemon_makes_itself_non_dumpable(stigmer_home: Path) -> None:
    from stigmer.daemon.files import DaemonLock
    from tests.support.scripted_provider import PLUGIN

    code = """
import ctypes
from stigmer.daemon.main import resolve_from_env, run
from stigmer.errors import StigmerError
try:
    run(resolve_from_env())
except StigmerError as exc:
    print("stopped:", exc.message)
print("dumpable", ctypes.CDLL(None).prctl(3, 0, 0, 0, 0), flush=True)
"""
    lock = DaemonLock(stigmer_home / "run")
    assert lock.acquire()  # "another daemon runs": run() stops right after its start-up steps
    try:
        env = {"STIGMER_HOME": str(stigmer_home), "STIGMER_PLUGINS": PLUGIN, "STIGMER_LLM_PROVIDER": "scripted"}
        assert _dumpable_after(code, env) == "dumpable 0"
    finally:
        lock.release()

