"""Files that hold secrets, and who can reach the API: what another local user could get at.

A real ``stigmer local start`` (scripted LLM, real Temporal) runs in a home that every user may
traverse, so the only barrier a second user meets is each file's own mode. The second user is
uid 65534 (``nobody``), reached by running a child process as that uid (we are root here; the
tests that need it are skipped elsewhere). A control file with mode 0644 next to the secrets
proves the probe can read what it is allowed to, so a refusal means the mode did its job.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from stigmer.config import resolve
from stigmer.errors import ConfigError
from tests.support.local_daemon import LocalStack

pytestmark = pytest.mark.slow

SENTINEL = "sk-ant-sentinel-files-7f3a9c"
CONFIG_SECRET = "sk-ant-sentinel-config-51be"
NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a probe as a second uid")

_PROBE = """
import sys
try:
    data = open(sys.argv[1], "rb").read()
except Exception as exc:
    print(type(exc).__name__)
else:
    print("READ", len(data))
"""


def read_as_other_user(path: Path) -> str:
    """What uid 65534 gets when it opens ``path``: ``READ <n>`` or the exception's name."""
    done = subprocess.run(["/usr/bin/python3", "-c", _PROBE, str(path)], user=NOBODY, group=NOBODY, extra_groups=[],
                          env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=30, check=False)
    return done.stdout.strip() or done.stderr.strip()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    home = Path(tempfile.mkdtemp(prefix="stigmer-sec-", dir="/tmp"))
    home.chmod(0o755)  # traversable by anyone: each file's own mode is the only barrier left
    s = LocalStack.scripted(home, ANTHROPIC_API_KEY=SENTINEL)
    try:
        done = s.start()
        assert done.returncode == 0, done.stderr
        yield s
    finally:
        s.cleanup()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def token(stack: LocalStack) -> str:
    return (stack.home / "run" / "token").read_text().strip()


@pytest.fixture(scope="module")
def runner_token(stack: LocalStack) -> str:
    return (stack.home / "run" / "runner-token").read_text().strip()


def test_the_token_files_are_owner_only(stack: LocalStack, token: str, runner_token: str) -> None:
    for name, value in (("token", token), ("runner-token", runner_token)):
        path = stack.home / "run" / name
        assert mode(path) == 0o600, name
        assert path.stat().st_uid == os.getuid()
        assert len(value) >= 32
        assert value not in (stack.home / "run" / "state.json").read_text()
    assert token != runner_token


def test_runners_hold_the_runner_token_never_the_admin_token(stack: LocalStack, token: str,
                                                             runner_token: str) -> None:
    runner = psutil.Process(stack.components()["runner-1"]["pid"])
    environ = runner.environ()
    assert environ["STIGMER_SERVER_TOKEN"] == runner_token
    assert token not in "\0".join(f"{k}={v}" for k, v in environ.items())


@as_root
def test_another_user_cannot_read_the_token_but_can_read_a_public_file(stack: LocalStack) -> None:
    control = stack.home / "run" / "public-control.txt"
    control.write_text("anyone may read this\n")
    control.chmod(0o644)
    try:
        assert read_as_other_user(control) == "READ 21"
        assert read_as_other_user(stack.home / "run" / "token") == "PermissionError"
        assert read_as_other_user(stack.home / "run" / "runner-token") == "PermissionError"
    finally:
        control.unlink()


@as_root
def test_another_user_cannot_read_the_daemons_environment(stack: LocalStack) -> None:
    """The daemon (and its runners) hold the API key in their environment: /proc/PID/environ must stay closed."""
    pid = stack.daemon_pid()
    assert SENTINEL.encode() in Path(f"/proc/{pid}/environ").read_bytes()  # it is there, for its owner
    for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        assert read_as_other_user(Path(f"/proc/{proc.pid}/environ")) == "PermissionError", proc.cmdline()


def test_config_set_of_a_key_leaves_config_yaml_owner_only(stack: LocalStack) -> None:
    config = stack.home / "config.yaml"
    config.write_text("llm:\n  temperature: 0.5\n")
    config.chmod(0o644)  # a file the person wrote by hand, readable by all
    done = stack.run("config", "set", "llm.api_key", CONFIG_SECRET)
    assert done.returncode == 0, done.stderr
    assert CONFIG_SECRET not in done.stdout + done.stderr
    assert mode(config) == 0o600
    assert CONFIG_SECRET in config.read_text() and "temperature: 0.5" in config.read_text()
    leftovers = [p.name for p in stack.home.iterdir() if p.name.startswith(".config.")]
    assert not leftovers, f"temporary files left next to config.yaml: {leftovers}"
    if os.geteuid() == 0:
        assert read_as_other_user(config) == "PermissionError"
    shown = stack.run("config", "show", "--json")
    assert CONFIG_SECRET not in shown.stdout + shown.stderr


def test_the_api_needs_the_token_on_every_route_but_health(stack: LocalStack, token: str) -> None:
    url = f"http://127.0.0.1:{stack.api_port}"
    routes = [("GET", "/v1/status"), ("GET", "/v1/config"), ("POST", "/v1/apply"), ("GET", "/v1/agents"),
              ("GET", "/v1/agents/x"), ("DELETE", "/v1/agents/x"), ("GET", "/v1/mcpservers"),
              ("DELETE", "/v1/mcpservers/x"), ("POST", "/v1/executions"), ("GET", "/v1/executions"),
              ("GET", "/v1/executions/x"), ("POST", "/v1/executions/x/cancel"), ("GET", "/v1/executions/x/events"),
              ("POST", "/v1/events")]
    wrong = [{}, {"Authorization": "Bearer"}, {"Authorization": "Bearer " + token[:-1]},
             {"Authorization": "Bearer " + token + "x"}, {"Authorization": token}, {"Authorization": "Basic " + token},
             {"X-Token": token}]
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/v1/health").status_code == 200
        for method, path in routes:
            for headers in wrong:
                response = client.request(method, path, headers=headers, json={})
                assert response.status_code == 401, (method, path, headers.keys(), response.status_code)
                assert token not in response.text and SENTINEL not in response.text
        good = client.get("/v1/status", headers={"Authorization": f"Bearer {token}"})
        assert good.status_code == 200 and SENTINEL not in good.text


def test_the_runner_token_may_only_post_events(stack: LocalStack, runner_token: str) -> None:
    url = f"http://127.0.0.1:{stack.api_port}"
    routes = [("GET", "/v1/status"), ("GET", "/v1/config"), ("POST", "/v1/apply"), ("GET", "/v1/agents"),
              ("DELETE", "/v1/agents/x"), ("POST", "/v1/executions"), ("GET", "/v1/executions"),
              ("POST", "/v1/executions/x/cancel"), ("DELETE", "/v1/executions/x"), ("POST", "/v1/executions/prune")]
    with httpx.Client(base_url=url, timeout=10, headers={"Authorization": f"Bearer {runner_token}"}) as client:
        for method, path in routes:
            response = client.request(method, path, json={})
            assert response.status_code == 403, (method, path, response.status_code)
            assert "runner token" in response.json()["detail"] and runner_token not in response.text
        assert client.post("/v1/events", json={"events": []}).json() == {"stored": 0, "verifying": 0, "ignored": 0}


def test_the_api_listens_on_loopback_only(stack: LocalStack) -> None:
    daemon = psutil.Process(stack.daemon_pid())
    listening = [c.laddr for c in daemon.net_connections("inet") if c.status == psutil.CONN_LISTEN]
    assert [a for a in listening if a.port == stack.api_port] == [("127.0.0.1", stack.api_port)]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com", "127.0.0.1.nip.io",
                                  "localhost.evil", "*"])
def test_a_non_loopback_server_host_is_refused_with_the_way_out(stigmer_home: Path, host: str) -> None:
    from stigmer.daemon.main import loopback_host

    cfg = resolve({}, {"STIGMER_HOME": str(stigmer_home), "STIGMER_SERVER_HOST": host})
    with pytest.raises(ConfigError) as info:
        loopback_host(cfg)
    assert "only binds loopback" in str(info.value) and "STIGMER_SERVER_HOST" in str(info.value)


@pytest.mark.parametrize(("host", "bound"), [("127.0.0.1", "127.0.0.1"), ("localhost", "127.0.0.1"), ("::1", "::1"),
                                             ("127.0.0.2", "127.0.0.2")])
def test_loopback_hosts_are_accepted(stigmer_home: Path, host: str, bound: str) -> None:
    from stigmer.daemon.main import loopback_host

    cfg = resolve({}, {"STIGMER_HOME": str(stigmer_home), "STIGMER_SERVER_HOST": host})
    assert loopback_host(cfg) == bound


def test_the_key_is_nowhere_after_a_run(stack: LocalStack) -> None:
    """After a real run: not in any file of the home (logs, SQLite, run files), argv, or `config show`."""
    assert stack.run("apply", "-f", "examples/agents/hello.yaml").returncode == 0
    done = stack.run("run", "hello", "Say hello", "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    assert SENTINEL not in done.stdout + done.stderr
    for args in (("config", "show"), ("config", "show", "--json"), ("local", "status", "--json")):
        shown = stack.run(*args)
        assert shown.returncode == 0 and SENTINEL not in shown.stdout + shown.stderr, args
    holders = [p for p in stack.home.rglob("*") if p.is_file() and SENTINEL.encode() in p.read_bytes()]
    assert not holders, f"the API key was written to {holders}"
    daemon = psutil.Process(stack.daemon_pid())
    for proc in [daemon, *daemon.children(recursive=True)]:
        assert SENTINEL not in " ".join(proc.cmdline()), proc.pid
