"""Granted values reach an MCP server through the whole stack, and land in no database, history, event or log.

A real ``stigmer local start`` (scripted model, managed Temporal, one runner) whose environment holds
stigmer's LLM keys as sentinels, an allow-listed variable (``mcp.allow_env``) and an unlisted one; a
value stored with ``stigmer secret set ... -``. An agent's MCP server (a real stdio server reporting
digests of its environment) references the allowed variable as ``${NAME}`` and the stored one as
``valueFrom``; a second agent references the unlisted variable and is refused before it starts.
Then the SQLite store, Temporal's own database, the logs, the events and the histories are searched
for every value: only the secret store itself holds the stored one.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.faults.checks import history
from tests.support.local_daemon import LocalStack
from tests.support.scripted_provider import write_script
from tests.test_security_mcp_env import SERVER

pytestmark = pytest.mark.slow

CORE = secrets.token_hex(8)
SENTINELS = {"ANTHROPIC_API_KEY": f"sk-ant-{CORE}", "OPENAI_API_KEY": f"sk-oa-{CORE}",
             "STIGMER_LLM_API_KEY": f"sk-llm-{CORE}", "UNGRANTED_VAR": f"ungranted-{CORE}"}
ALLOWED = f"allowed-{secrets.token_hex(8)}"
STORED = f"ghp_{secrets.token_hex(12)}"


def _documents(home: Path) -> Path:
    (home / "env_server.py").write_text(SERVER)
    script = write_script(home / "mcp-script.json", [
        {"content": "", "tool_calls": [{"name": "environment", "args": {}}]}, {"content": "done"}])
    path = home / "mcp.yaml"
    stdio = {"command": "python", "args": [str(home / "env_server.py")]}
    path.write_text(yaml.safe_dump_all([
        {"apiVersion": "agentic.stigmer.ai/v1", "kind": "McpServer", "metadata": {"name": "granted"},
         "spec": {"stdio": {**stdio, "env": {"SECRET_ALLOWED": "${ALLOWED_VAR}",
                                             "SECRET_STORED": {"valueFrom": {"secret": "STORED_TOKEN"}}}}}},
        {"apiVersion": "agentic.stigmer.ai/v1", "kind": "McpServer", "metadata": {"name": "ungranted"},
         "spec": {"stdio": {**stdio, "env": {"SECRET_X": "${UNGRANTED_VAR}"}}}},
        {"apiVersion": "agentic.stigmer.ai/v1", "kind": "Agent", "metadata": {"name": "dev"},
         "spec": {"instructions": "Report.", "model": f"scripted:{script}", "mcpServers": ["granted"],
                  "approvals": {"mode": "never"}}},
        {"apiVersion": "agentic.stigmer.ai/v1", "kind": "Agent", "metadata": {"name": "nosy"},
         "spec": {"instructions": "Report.", "model": f"scripted:{script}", "mcpServers": ["ungranted"],
                  "approvals": {"mode": "never"}}},
    ]))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("secrets-stack") / "home"
    home.mkdir()
    stack = LocalStack.scripted(home, **SENTINELS, STIGMER_MCP_ALLOW_ENV="ALLOWED_VAR", ALLOWED_VAR=ALLOWED)
    out: dict[str, Any] = {"home": home}
    try:
        stored = stack.run("secret", "set", "STORED_TOKEN", "-", input=STORED)
        assert stored.returncode == 0, stored.stderr
        started = stack.start()
        assert started.returncode == 0, started.stderr
        applied = stack.run("apply", "-f", str(_documents(home)))
        assert applied.returncode == 0, applied.stderr
        out["good"] = stack.run("run", "dev", "go", "--json")
        out["refused"] = stack.run("run", "nosy", "go")
        listed = json.loads(stack.run("get", "executions", "-o", "json").stdout)
        out["events"] = [stack.run("execution", "logs", e["id"], "--json").stdout for e in listed]
        out["histories"] = [json.dumps(history(stack, f"stigmer-exec-{e['id']}")) for e in listed]
    finally:
        stack.cleanup()
    yield out


def test_the_granted_values_reach_the_server(run: dict[str, Any]) -> None:
    assert run["good"].returncode == 0, run["good"].stderr
    finished = [json.loads(line) for line in run["good"].stdout.splitlines() if '"tool_finished"' in line]
    reported = json.loads(finished[0]["data"]["result"])
    assert reported["SECRET_ALLOWED"] == hashlib.sha256(ALLOWED.encode()).hexdigest()
    assert reported["SECRET_STORED"] == hashlib.sha256(STORED.encode()).hexdigest()
    assert not any(name in reported for name in SENTINELS)


def test_an_ungranted_reference_is_refused_before_the_run_with_what_to_do(run: dict[str, Any]) -> None:
    refused = run["refused"]
    assert refused.returncode != 0
    for part in ("MCP server 'ungranted'", "spec.stdio.env.SECRET_X", "${UNGRANTED_VAR}",
                 "stigmer secret set UNGRANTED_VAR", "mcp.allow_env UNGRANTED_VAR"):
        assert part in refused.stderr, refused.stderr
    assert len(run["histories"]) == 1  # no workflow was started for it


def test_no_value_lands_in_the_store_temporal_the_logs_or_the_events(run: dict[str, Any]) -> None:
    home: Path = run["home"]
    surfaces: dict[str, list[bytes]] = {
        "SQLite store": [p.read_bytes() for p in (home / "data").glob("stigmer.db*")],
        "Temporal's database": [p.read_bytes() for p in (home / "temporal").rglob("*") if p.is_file()],
        "logs": [p.read_bytes() for p in (home / "logs").rglob("*") if p.is_file()],
        "events": [text.encode() for text in run["events"]],
        "histories": [text.encode() for text in run["histories"]],
        "stigmer run output": [(r.stdout + r.stderr).encode() for r in (run["good"], run["refused"])],
    }
    for name, texts in surfaces.items():
        assert any(texts), f"{name}: nothing collected"
        for text in texts:
            for value in (CORE, ALLOWED, STORED):
                assert value.encode() not in text, f"a secret value is in the {name}"
    assert b"STORED_TOKEN" in b"".join(surfaces["SQLite store"])  # the reference is stored, not the value
    assert STORED in (home / "secrets.json").read_text()  # the store, and only it, holds the value
