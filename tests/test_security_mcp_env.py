"""MCP servers get only the environment their resource declares, and only the references the user granted.

A real stdio MCP server (the official ``mcp`` SDK) reports its whole environment through a tool; an
agent whose model calls that tool runs through the real workflow on a real Temporal dev server with
an in-process runner whose environment holds every one of stigmer's own secrets as a sentinel (the
LLM keys, stigmer's tokens, the Temporal API key and TLS key path). What the server may see is what
its resource declares, plus ``PATH`` and the SDK's harmless basics (HOME, LOGNAME, SHELL, TERM, USER).
A reference is an explicit grant: ``${NAME}`` from the secret store or from the runner's environment
when ``mcp.allow_env`` names it, ``valueFrom: {secret: NAME}`` from the store only. Stigmer's own
secrets can never be referenced: ``stigmer apply`` and ``POST /v1/apply`` refuse the document, and a
runner refuses one pinned before that rule existed. No granted value and no sentinel reaches the
workflow history (payloads decoded) or the events.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import secrets
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError

from stigmer.config.envvars import stigmer_secrets
from stigmer.config.secret_store import SecretStore
from tests.support.agents import EventCollector, execution, resolve_for, runner_env, start, wait_for
from tests.support.daemon_api import FakeTemporal, fake_client, invoke, make_context, scripted_config, serve_api
from tests.support.scripted_provider import PLUGIN, write_script

pytestmark = pytest.mark.slow

CORE = secrets.token_hex(8)
# What the brief calls stigmer's own secrets; the definition (envvars.stigmer_secrets) must cover each one.
NAMED = {"ANTHROPIC_API_KEY", "OPENAI_API_KEY", "STIGMER_LLM_API_KEY", "STIGMER_SERVER_TOKEN", "TEMPORAL_API_KEY",
         "TEMPORAL_TLS_CLIENT_KEY_PATH"}
SENTINELS = {name: f"sentinel-{name.lower()}-{CORE}" for name in sorted(stigmer_secrets() | NAMED)}
SENTINELS["STIGMER_FUTURE_TOKEN"] = f"sentinel-future-{CORE}"  # any STIGMER_* token is one of stigmer's own
# A database URL must parse as one: the sentinel is its password.
SENTINELS["STIGMER_DATABASE_URL"] = f"postgresql://stigmer:{SENTINELS['STIGMER_DATABASE_URL']}@127.0.0.1:1/stigmer"
PRIVATE = {"WORKER_PRIVATE": f"sentinel-private-{CORE}", "UNGRANTED_VAR": f"sentinel-ungranted-{CORE}"}
ALLOWED_VALUE = f"allowed-{secrets.token_hex(8)}"
STORED_VALUE = f"ghp_stored_{secrets.token_hex(8)}"
BASICS = {"PATH", "HOME", "LOGNAME", "SHELL", "TERM", "USER", "LC_CTYPE"}

SERVER = textwrap.dedent('''
    """An MCP server (official SDK) whose one tool reports the environment it was started with."""
    import hashlib
    import json
    import os

    from mcp.server.mcpserver import MCPServer

    server = MCPServer("env-reporter")


    @server.tool()
    def environment() -> str:
        """Every variable this process has; values of SECRET_* are shown as sha256 digests."""
        return json.dumps({k: (hashlib.sha256(v.encode()).hexdigest() if k.startswith("SECRET_") else v)
                           for k, v in os.environ.items()})


    if __name__ == "__main__":
        server.run()
''')


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def history_text(node: Any) -> str:
    """A history as text with every payload decoded (payload ``data`` is base64 in the JSON form)."""
    if isinstance(node, dict):
        own = ""
        if isinstance(node.get("data"), str) and "metadata" in node:
            own = base64.b64decode(node["data"]).decode("utf-8", errors="replace")
        return own + "\n".join(history_text(v) for v in node.values())
    if isinstance(node, list):
        return "\n".join(history_text(v) for v in node)
    return str(node)


def _server(tmp_path: Path, env: dict[str, Any]) -> dict[str, Any]:
    script = tmp_path / "env_server.py"
    script.write_text(SERVER)
    return {"name": "envdump", "stdio": {"command": sys.executable, "args": [str(script)], "env": env}}


@contextlib.asynccontextmanager
async def sentinel_runner(address: str, queue: str, collector: EventCollector, monkeypatch: pytest.MonkeyPatch,
                          **extra: str) -> AsyncIterator[Client]:
    """A real runner in this loop whose environment holds every sentinel (and ``extra``); yields a client.

    Its Temporal client is given: the sentinel Temporal key and TLS key path are for leaking, not for
    connecting (this test's dev server takes neither).
    """
    from stigmer.worker.main import run_worker

    env = runner_env(address, queue, {**SENTINELS, **PRIVATE, **collector.env(), **extra})
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = await Client.connect(address)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_worker(resolve_for(env), stop, client=client, ready=ready))
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED, timeout=60)
    if task in done:
        task.result()
    try:
        yield client
    finally:
        waiter.cancel()
        stop.set()
        await asyncio.wait_for(task, 30)


def assert_nothing_leaked(*texts: str, also: tuple[str, ...] = ()) -> None:
    for text in texts:
        assert CORE not in text, "a sentinel (one of stigmer's own secrets) leaked"
        for value in also:
            assert value not in text, "a granted value leaked"


async def test_an_mcp_child_sees_only_what_its_resource_grants(tmp_path: Path, temporal_server: Any,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               stigmer_home: Path) -> None:
    SecretStore(stigmer_home).set("STORED_TOKEN", STORED_VALUE)
    server = _server(tmp_path, {"DECLARED": "yes", "SECRET_ALLOWED": "${ALLOWED_VAR}",
                                "SECRET_STORED": {"valueFrom": {"secret": "STORED_TOKEN"}},
                                "SECRET_MIXED": "Bearer ${STORED_TOKEN}"})
    script = write_script(tmp_path / "s.json", [{"content": "", "tool_calls": [{"name": "environment", "args": {}}]},
                                                {"content": "done"}])
    inp = execution(script, mcp=[server])
    queue = f"mcpenv-{uuid.uuid4().hex[:8]}"
    with EventCollector(token=SENTINELS["STIGMER_SERVER_TOKEN"]) as collector:
        async with sentinel_runner(temporal_server.address, queue, collector, monkeypatch,
                                   STIGMER_MCP_ALLOW_ENV="ALLOWED_VAR", ALLOWED_VAR=ALLOWED_VALUE) as client:
            handle = await start(client, inp, queue)
            result = await handle.result()
            status = await handle.query("status")
            history = history_text((await handle.fetch_history()).to_json_dict())
        wait_for(lambda: any(e["type"] == "completed" for e in collector.of(inp.execution_id)), what="completed")
        events = json.dumps(collector.of(inp.execution_id))

    assert result.output == "done"
    reply = next(m for m in status["messages"] if m["role"] == "tool")
    assert not reply["is_error"], reply["content"]
    child_env = json.loads(reply["content"])
    declared = {"DECLARED", "SECRET_ALLOWED", "SECRET_STORED", "SECRET_MIXED"}
    assert set(child_env) <= BASICS | declared, f"undeclared variables: {sorted(set(child_env) - BASICS - declared)}"
    assert child_env["DECLARED"] == "yes" and "PATH" in child_env
    assert child_env["SECRET_ALLOWED"] == digest(ALLOWED_VALUE)  # the allow-listed variable of the runner
    assert child_env["SECRET_STORED"] == digest(STORED_VALUE)  # valueFrom: the secret store
    assert child_env["SECRET_MIXED"] == digest(f"Bearer {STORED_VALUE}")  # ${NAME}: the store comes first
    assert_nothing_leaked(reply["content"])
    assert_nothing_leaked(history, events, also=(ALLOWED_VALUE, STORED_VALUE))
    assert "${ALLOWED_VAR}" in history and "STORED_TOKEN" in history  # decoded: only the references are there


async def _failed_run(tmp_path: Path, temporal_server: Any, monkeypatch: pytest.MonkeyPatch, env: dict[str, Any],
                      **runner_extra: str) -> tuple[str, str, str]:
    """Run an agent whose server has ``env``; it must fail: (the failed event's error, history, events)."""
    script = write_script(tmp_path / "s.json", [{"content": "never reached"}])
    inp = execution(script, mcp=[_server(tmp_path, env)])
    queue = f"mcpenv-{uuid.uuid4().hex[:8]}"
    with EventCollector(token=SENTINELS["STIGMER_SERVER_TOKEN"]) as collector:
        async with sentinel_runner(temporal_server.address, queue, collector, monkeypatch, **runner_extra) as client:
            handle = await start(client, inp, queue)
            with pytest.raises(WorkflowFailureError):
                await handle.result()
            history = history_text((await handle.fetch_history()).to_json_dict())
        wait_for(lambda: any(e["type"] == "failed" for e in collector.of(inp.execution_id)), what="failed")
        events = collector.of(inp.execution_id)
    error = next(e for e in events if e["type"] == "failed")["data"]["error"]
    return error, history, json.dumps(events)


async def test_an_ungranted_reference_fails_the_run_and_says_how_to_grant_it(
        tmp_path: Path, temporal_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    error, history, events = await _failed_run(tmp_path, temporal_server, monkeypatch, {"X": "${UNGRANTED_VAR}"})
    for part in ("'envdump'", "spec.stdio.env.X", "${UNGRANTED_VAR}", "stigmer secret set UNGRANTED_VAR",
                 "mcp.allow_env UNGRANTED_VAR"):
        assert part in error, f"{part!r} missing from: {error}"
    assert_nothing_leaked(error, history, events)


async def test_a_pinned_reference_to_a_stigmer_secret_is_refused_even_when_allowed(
        tmp_path: Path, temporal_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A document stored (and a run pinned) before apply refused it: the runner refuses it too."""
    error, history, events = await _failed_run(tmp_path, temporal_server, monkeypatch, {"X": "${ANTHROPIC_API_KEY}"},
                                               STIGMER_MCP_ALLOW_ENV="ANTHROPIC_API_KEY")
    assert "${ANTHROPIC_API_KEY}" in error and "one of stigmer's own secrets" in error
    assert_nothing_leaked(error, history, events)


def _document(name: str, form: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "env": {"stdio": {"command": "python", "env": {"TOKEN": f"prefix-${{{name}}}"}}},
        "valueFrom": {"stdio": {"command": "python", "env": {"TOKEN": {"valueFrom": {"secret": name}}}}},
        "header": {"http": {"url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": f"Bearer ${{{name}}}"}}},
    }[form]
    return {"apiVersion": "agentic.stigmer.ai/v1", "kind": "McpServer", "metadata": {"name": "leaky"}, "spec": spec}


FIELDS = {"env": "spec.stdio.env.TOKEN", "valueFrom": "spec.stdio.env.TOKEN",
          "header": "spec.http.headers.Authorization"}


def test_every_stigmer_secret_is_refused_by_apply_on_the_cli_and_the_api(tmp_path: Path, stigmer_home: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: Any) -> None:
    import yaml

    assert stigmer_secrets() >= NAMED
    monkeypatch.setenv("STIGMER_PLUGINS", PLUGIN)
    with serve_api(make_context(scripted_config(stigmer_home), fake_client(FakeTemporal()))) as api, \
            httpx.Client(base_url=api.url, headers=api.headers()) as http:
        for name in SENTINELS:
            for form, field in FIELDS.items():
                path = tmp_path / f"{name}-{form}.yaml"
                path.write_text(yaml.safe_dump(_document(name, form)))
                code, out, err = invoke(capsys, "apply", "-f", str(path))
                assert code == 2 and out == "", err
                for part in (str(path), "document 1 (McpServer 'leaky')", field, name, "stigmer's own secrets"):
                    assert part in err, f"{part!r} missing from: {err}"
                answer = http.post("/v1/apply", json={"documents": [_document(name, form)], "source": "leaky.yaml"})
                assert answer.status_code == 422, answer.text
                detail = answer.json()["detail"]
                for part in ("leaky.yaml, document 1 (McpServer 'leaky')", field, name):
                    assert part in detail, f"{part!r} missing from: {detail}"
        assert http.get("/v1/mcpservers").json()["items"] == []  # nothing was stored


async def test_the_shell_tool_gets_the_same_scrubbed_environment(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from stigmer.worker.tools import workspace

    for name, value in {**SENTINELS, **PRIVATE}.items():
        monkeypatch.setenv(name, value)
    output = await workspace.call("run_shell", tmp_path, {"command": "env"})
    names = {line.split("=", 1)[0] for line in output.splitlines()[1:] if "=" in line}
    assert output.startswith("exit code 0")
    assert names <= BASICS | {"LANG", "PWD", "SHLVL", "_", "OLDPWD"}, names
    assert_nothing_leaked(output)
