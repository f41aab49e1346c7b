"""``stigmer secret``, ``valueFrom``, the apply-time warning about literal keys, and the run-start grant check.

The CLI runs as a person runs it: a real process, its value from stdin (``-``) or typed at a prompt
on a real pseudo-terminal (where an echo would show). The API parts run against the real app on
loopback with a real SQLite store (``serve_api``) and a stand-in Temporal client that records what
would have been started, so a test sees exactly what an execution would pin.
"""

from __future__ import annotations

import json
import os
import select
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from stigmer.config.secret_store import SecretStore
from tests.support.daemon_api import (
    ApiServer,
    FakeTemporal,
    fake_client,
    invoke,
    make_context,
    scripted_config,
    serve_api,
)
from tests.support.scripted_provider import PLUGIN

REPO = Path(__file__).resolve().parents[1]
VALUE = "ghp_" + "Zx9" * 12
API = "agentic.stigmer.ai/v1"


def stigmer(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STIGMER_HOME": str(home),
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "stigmer", *args], input=stdin, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_value_from_stdin_is_stored_owner_only_and_listed_by_name_only(stigmer_home: Path) -> None:
    done = stigmer(stigmer_home, "secret", "set", "GITHUB_TOKEN", "-", stdin=VALUE + "\n")
    assert done.returncode == 0, done.stderr
    assert "GITHUB_TOKEN stored" in done.stdout and VALUE not in done.stdout + done.stderr
    path = stigmer_home / "secrets.json"
    assert mode(path) == 0o600
    assert SecretStore(stigmer_home).values() == {"GITHUB_TOKEN": VALUE}  # the trailing newline is not part of it
    assert stigmer(stigmer_home, "secret", "set", "JIRA_TOKEN", "-", stdin="jira-1").returncode == 0
    listed = stigmer(stigmer_home, "secret", "list")
    assert listed.returncode == 0 and listed.stdout.split()[:2] == ["NAME", "SET"]
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == ["GITHUB_TOKEN", "JIRA_TOKEN"]
    as_json = json.loads(stigmer(stigmer_home, "secret", "list", "--json").stdout)
    assert [item["name"] for item in as_json] == ["GITHUB_TOKEN", "JIRA_TOKEN"]
    assert all(time.time() - item["set_at"] < 120 for item in as_json)
    for output in (listed.stdout, json.dumps(as_json)):
        assert VALUE not in output and "jira-1" not in output


def test_a_loosened_store_is_put_back_to_0600(stigmer_home: Path) -> None:
    SecretStore(stigmer_home).set("GITHUB_TOKEN", VALUE)
    path = stigmer_home / "secrets.json"
    path.chmod(0o644)
    assert stigmer(stigmer_home, "secret", "list").returncode == 0
    assert mode(path) == 0o600


def test_a_value_on_the_command_line_is_refused_and_not_stored(stigmer_home: Path) -> None:
    done = stigmer(stigmer_home, "secret", "set", "GITHUB_TOKEN", VALUE)
    assert done.returncode == 2
    assert "command line" in done.stderr and "nothing was stored" in done.stderr
    assert "stigmer secret set GITHUB_TOKEN - <" in done.stderr  # how to do it instead
    assert VALUE not in done.stderr + done.stdout
    assert not (stigmer_home / "secrets.json").exists()


def _read_until(fd: int, marker: bytes, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"{marker!r} not seen; got {seen!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        seen += chunk
    return seen


def test_the_prompt_shows_nothing_of_what_is_typed(stigmer_home: Path) -> None:
    env = {**os.environ, "STIGMER_HOME": str(stigmer_home)}
    controller, terminal = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "stigmer", "secret", "set", "GITHUB_TOKEN"], stdin=terminal,
                            stdout=terminal, stderr=terminal, env=env, start_new_session=True)
    os.close(terminal)
    try:
        screen = _read_until(controller, b"(hidden)")
        os.write(controller, VALUE.encode() + b"\n")
        screen += _read_until(controller, b"\x00never")  # everything up to the end of the program
        assert proc.wait(timeout=30) == 0, screen
    finally:
        os.close(controller)
        if proc.poll() is None:
            proc.kill()
    assert b"GITHUB_TOKEN stored" in screen
    assert VALUE.encode() not in screen, "the typed value was echoed"
    assert SecretStore(stigmer_home).values() == {"GITHUB_TOKEN": VALUE}


def test_without_a_terminal_or_a_dash_nothing_is_read(stigmer_home: Path) -> None:
    done = stigmer(stigmer_home, "secret", "set", "GITHUB_TOKEN", stdin=VALUE)
    assert done.returncode == 2 and "no terminal" in done.stderr and "-" in done.stderr
    assert not (stigmer_home / "secrets.json").exists()


@pytest.mark.parametrize("name", ["ANTHROPIC_API_KEY", "STIGMER_SERVER_TOKEN", "TEMPORAL_API_KEY",
                                  "STIGMER_LLM_API_KEY", "OPENAI_API_KEY"])
def test_stigmers_own_secrets_cannot_be_stored(stigmer_home: Path, capsys: Any, name: str) -> None:
    code, _, err = invoke(capsys, "secret", "set", name, "-")
    assert code == 2 and "one of stigmer's own secrets" in err and "stigmer config" in err
    assert not (stigmer_home / "secrets.json").exists()


@pytest.mark.parametrize("name", ["1TOKEN", "GH-TOKEN", "A B", ""])
def test_a_name_that_is_no_variable_name_is_refused(stigmer_home: Path, capsys: Any, name: str) -> None:
    code, _, err = invoke(capsys, "secret", "set", name, "-")
    assert code == 2 and "not a valid secret name" in err


def test_delete_removes_the_entry_and_an_unknown_name_gets_a_suggestion(stigmer_home: Path, capsys: Any) -> None:
    store = SecretStore(stigmer_home)
    store.set("GITHUB_TOKEN", VALUE)
    store.set("JIRA_TOKEN", "j")
    code, _, err = invoke(capsys, "secret", "delete", "GITHUB_TOKN")
    assert code == 2 and "did you mean 'GITHUB_TOKEN'" in err
    code, out, _ = invoke(capsys, "secret", "delete", "GITHUB_TOKEN")
    assert code == 0 and out.strip() == "secret GITHUB_TOKEN deleted"
    assert store.values() == {"JIRA_TOKEN": "j"} and mode(store.path) == 0o600


def test_concurrent_sets_keep_every_entry(stigmer_home: Path) -> None:
    env = {**os.environ, "STIGMER_HOME": str(stigmer_home)}
    procs = [subprocess.Popen([sys.executable, "-m", "stigmer", "secret", "set", f"TOKEN_{i}", "-"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True) for i in range(5)]
    for i, proc in enumerate(procs):
        proc.communicate(f"value-{i}", timeout=60)
        assert proc.returncode == 0
    assert SecretStore(stigmer_home).values() == {f"TOKEN_{i}": f"value-{i}" for i in range(5)}


# --- the API: apply warnings, valueFrom, and the grant check at run start ----------------------------------

def server(name: str, env: dict[str, Any] | None = None, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    spec = {"http": {"url": "http://127.0.0.1:9/mcp", "headers": headers}} if headers is not None else {
        "stdio": {"command": "python", "args": ["-m", "x"], "env": env or {}}}
    return {"apiVersion": API, "kind": "McpServer", "metadata": {"name": name}, "spec": spec}


def agent(name: str, servers: list[str]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "Agent", "metadata": {"name": name},
            "spec": {"instructions": "Use the tools.", "mcpServers": servers}}


def serve(home: Path, temporal: FakeTemporal, **env: str) -> Any:
    return serve_api(make_context(scripted_config(home, **env), fake_client(temporal)))


@pytest.fixture
def api(stigmer_home: Path, monkeypatch: pytest.MonkeyPatch, temporal: FakeTemporal) -> Iterator[ApiServer]:
    monkeypatch.setenv("STIGMER_PLUGINS", PLUGIN)
    with serve(stigmer_home, temporal) as served:
        yield served


LITERALS = {"GITHUB_TOKEN": VALUE, "OPENAI_KEY": "sk-proj-" + "a1B2" * 8, "AWS_KEY": "AKIAIOSFODNN7EXAMPLE",
            "JWT": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlc2ln",
            "RANDOM": "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3"}
BENIGN = {"LOG_LEVEL": "debug", "CONFIG": "/usr/lib/python3/dist-packages/app.toml", "URL": "http://127.0.0.1:8080/v1",
          "REF": "${GITHUB_TOKEN}", "FROM": {"valueFrom": {"secret": "GITHUB_TOKEN"}}, "LANG": "en_US.UTF-8"}


def test_apply_warns_about_literal_keys_without_showing_them(http: httpx.Client) -> None:
    answer = http.post("/v1/apply", json={"documents": [
        server("gh", env={**LITERALS, **BENIGN}), server("web", headers={"Authorization": f"Bearer {VALUE}"})],
        "source": "servers.yaml"})
    assert answer.status_code == 200, answer.text
    warnings = answer.json()["warnings"]
    fields = sorted(w.split(": ")[1].split(" ")[0] for w in warnings)
    assert fields == sorted([*(f"spec.stdio.env.{k}" for k in LITERALS), "spec.http.headers.Authorization"])
    for warning in warnings:
        assert warning.startswith("servers.yaml, document ") and "stigmer secret set" in warning
        for literal in [*LITERALS.values(), VALUE]:
            assert literal[4:-4] not in warning, "a warning shows the value"
    github = next(w for w in warnings if "env.GITHUB_TOKEN" in w)
    assert "(…" + VALUE[-4:] + ")" in github and "GITHUB_TOKEN: {valueFrom: {secret: GITHUB_TOKEN}}" in github
    header = next(w for w in warnings if "Authorization" in w)
    assert 'Authorization: "Bearer ${AUTHORIZATION}"' in header
    assert [r["outcome"] for r in answer.json()["results"]] == ["created", "created"]  # a warning, not a refusal
    assert http.post("/v1/apply", json={"documents": [server("ok", env=BENIGN)]}).json()["warnings"] == []


def test_the_cli_prints_the_warnings_naming_the_file(api: ApiServer, tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "gh.yaml"
    path.write_text(yaml.safe_dump(server("gh", env={"GITHUB_TOKEN": VALUE, "LOG_LEVEL": "debug"})))
    code, out, err = invoke(capsys, "apply", "-f", str(path))
    assert code == 0 and out.strip() == "mcpserver/gh created"
    assert err.count("warning:") == 1 and f"{path}, document 1 (McpServer 'gh'): spec.stdio.env.GITHUB_TOKEN" in err
    assert VALUE not in err and VALUE[4:-4] not in err


def test_a_value_from_the_secret_store_is_stored_and_pinned_as_a_reference_only(
        http: httpx.Client, temporal: FakeTemporal, stigmer_home: Path) -> None:
    SecretStore(stigmer_home).set("GITHUB_TOKEN", VALUE)
    docs = [server("gh", env={"GITHUB_TOKEN": {"valueFrom": {"secret": "GITHUB_TOKEN"}}, "AUTH": "token ${JIRA}"}),
            agent("dev", ["gh"])]
    SecretStore(stigmer_home).set("JIRA", "jira-value-77")
    assert http.post("/v1/apply", json={"documents": docs}).json()["warnings"] == []
    stored = http.get("/v1/mcpservers/gh").json()["document"]
    assert stored["spec"]["stdio"]["env"]["GITHUB_TOKEN"] == {"valueFrom": {"secret": "GITHUB_TOKEN"}}
    response = http.post("/v1/executions", json={"agent": "dev", "message": "go"})
    assert response.status_code == 201, response.text
    pinned = temporal.started[0]["input"]
    assert pinned.agent["mcpServers"][0]["stdio"]["env"] == {"GITHUB_TOKEN": {"valueFrom": {"secret": "GITHUB_TOKEN"}},
                                                             "AUTH": "token ${JIRA}"}
    assert VALUE not in repr(pinned) and "jira-value-77" not in repr(pinned)
    db = b"".join(p.read_bytes() for p in (stigmer_home / "data").glob("stigmer.db*"))
    assert VALUE.encode() not in db and b"jira-value-77" not in db


@pytest.mark.parametrize("env", [{"GITHUB_TOKEN": "${GITHUB_TOKEN}"},
                                 {"GITHUB_TOKEN": {"valueFrom": {"secret": "GITHUB_TOKEN"}}}])
def test_an_ungranted_reference_is_refused_before_a_run_starts(http: httpx.Client, temporal: FakeTemporal,
                                                               stigmer_home: Path, env: dict[str, Any]) -> None:
    http.post("/v1/apply", json={"documents": [server("gh", env=env), agent("dev", ["gh"])]})
    response = http.post("/v1/executions", json={"agent": "dev", "message": "go"})
    assert response.status_code == 422, response.text
    body = response.json()
    for part in ("agent 'dev'", "MCP server 'gh'", "spec.stdio.env.GITHUB_TOKEN", "GITHUB_TOKEN"):
        assert part in body["detail"], body["detail"]
    assert "stigmer secret set GITHUB_TOKEN" in body["hint"]
    assert temporal.started == [] and http.get("/v1/executions").json()["items"] == []
    SecretStore(stigmer_home).set("GITHUB_TOKEN", VALUE)  # granted: the same run starts
    assert http.post("/v1/executions", json={"agent": "dev", "message": "go"}).status_code == 201


def test_the_allow_list_grants_a_runner_variable(stigmer_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                 temporal: FakeTemporal) -> None:
    monkeypatch.setenv("STIGMER_PLUGINS", PLUGIN)
    docs = [server("gh", env={"GITHUB_TOKEN": "${GITHUB_TOKEN}"}), agent("dev", ["gh"])]
    with serve(stigmer_home, temporal, STIGMER_MCP_ALLOW_ENV="GITHUB_TOKEN") as api, \
            httpx.Client(base_url=api.url, headers=api.headers()) as http:
        http.post("/v1/apply", json={"documents": docs})
        assert http.post("/v1/executions", json={"agent": "dev", "message": "go"}).status_code == 201
    with serve(stigmer_home, temporal, STIGMER_RUNNER_WORKERS="0") as api, \
            httpx.Client(base_url=api.url, headers=api.headers()) as http:  # runners elsewhere: they check
        assert http.post("/v1/executions", json={"agent": "dev", "message": "go"}).status_code == 201
    assert len(temporal.started) == 2


def test_a_server_stored_before_the_rule_is_refused_at_run_start_not_a_crash(
        http: httpx.Client, temporal: FakeTemporal, stigmer_home: Path) -> None:
    from stigmer.store import Store

    store = Store.open(stigmer_home / "data" / "stigmer.db")
    try:  # what an older stigmer accepted: a reference to the Anthropic key
        store.apply([server("old", env={"KEY": "${ANTHROPIC_API_KEY}"}), agent("legacy", ["old"])])
    finally:
        store.close()
    response = http.post("/v1/executions", json={"agent": "legacy", "message": "go"})
    assert response.status_code == 400, response.text
    assert "'old' as stored is no longer valid" in response.json()["detail"]
    assert "ANTHROPIC_API_KEY" in response.json()["detail"] and temporal.started == []
