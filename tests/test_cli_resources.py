"""``stigmer apply / get / describe / delete`` against a live API (uvicorn on loopback), and with it down."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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

AGENTS = """\
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata: {name: time}
spec:
  stdio: {command: python, args: [-m, mcp_time]}
---
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {name: clock}
spec:
  instructions: Tell the time.
  mcpServers: [time]
---
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {name: hello}
spec:
  instructions: Say hello.
  model: claude-haiku
"""


@pytest.fixture
def api(stigmer_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiServer]:
    monkeypatch.setenv("STIGMER_PLUGINS", PLUGIN)
    cfg = scripted_config(stigmer_home)
    with serve_api(make_context(cfg, fake_client(FakeTemporal()))) as served:
        yield served


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_apply_a_directory_prints_created_then_unchanged_then_updated(api: ApiServer, tmp_path: Path,
                                                                      capsys: Any) -> None:
    write(tmp_path / "agents" / "all.yaml", AGENTS)
    code, out, err = invoke(capsys, "apply", "-f", str(tmp_path / "agents"))
    assert code == 0, err
    assert out.splitlines() == ["mcpserver/time created", "agent/clock created", "agent/hello created"]
    assert invoke(capsys, "apply", "-f", str(tmp_path / "agents"))[1].splitlines()[-1] == "agent/hello unchanged"
    write(tmp_path / "agents" / "all.yaml", AGENTS.replace("Say hello.", "Say hi."))
    assert invoke(capsys, "apply", "-f", str(tmp_path / "agents"))[1].splitlines()[-1] == "agent/hello updated"


def test_an_agent_may_use_a_server_from_another_file_or_already_applied(api: ApiServer, tmp_path: Path,
                                                                        capsys: Any) -> None:
    server, agents = AGENTS.split("---\n", 1)
    write(tmp_path / "a-agents.yaml", agents)
    write(tmp_path / "b-server.yaml", server)
    assert invoke(capsys, "apply", "-f", str(tmp_path / "a-agents.yaml"), "-f", str(tmp_path / "b-server.yaml"))[0] == 0
    write(tmp_path / "more.yaml", AGENTS.split("---\n")[1].replace("clock", "clock2"))
    assert invoke(capsys, "apply", "-f", str(tmp_path / "more.yaml"))[1].strip() == "agent/clock2 created"


def test_a_bad_file_names_the_file_document_and_field_and_applies_nothing(api: ApiServer, tmp_path: Path,
                                                                          capsys: Any) -> None:
    bad = write(tmp_path / "bad.yaml", AGENTS.replace("mcpServers: [time]", "mcpServers: [tiem]"))
    code, _out, err = invoke(capsys, "apply", "-f", str(bad))
    assert code == 2
    assert f"{bad}, document 2 (Agent 'clock'): spec.mcpServers[0]: unknown server 'tiem', did you mean 'time'?" \
        in err
    assert "Traceback" not in err
    typo = write(tmp_path / "typo.yaml", AGENTS.replace("instructions: Say hello.", "instruction: Say hello."))
    code, _, err = invoke(capsys, "apply", "-f", str(typo))
    assert code == 2 and "document 3 (Agent 'hello')" in err and "did you mean 'instructions'" in err
    assert invoke(capsys, "get", "agents", "-o", "json")[1].strip() == "[]"


def test_get_describe_and_delete(api: ApiServer, tmp_path: Path, capsys: Any) -> None:
    invoke(capsys, "apply", "-f", str(write(tmp_path / "a.yaml", AGENTS)))
    code, out, _ = invoke(capsys, "get", "agents")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "MODEL", "TOOLS", "MCP", "SERVERS", "AGE"]
    assert [row.split()[:2] for row in rows] == [["clock", "(default)"], ["hello", "claude-haiku"]]
    servers = json.loads(invoke(capsys, "get", "mcpservers", "-o", "json")[1])
    assert [s["name"] for s in servers] == ["time"]
    code, out, _ = invoke(capsys, "describe", "agent", "clock")
    assert "MCP servers: time" in out and "Tell the time." in out and "none yet" in out
    code, _, err = invoke(capsys, "delete", "mcpserver", "time")
    assert code == 2 and "used by agent(s) clock" in err
    assert invoke(capsys, "delete", "agent", "clock")[1].strip() == "agent/clock deleted"
    code, _, err = invoke(capsys, "describe", "agent", "clok")
    assert code == 2 and "no agent named 'clok'" in err
    code, _, err = invoke(capsys, "get", "agnets")
    assert code == 2 and "did you mean 'agents'" in err


def test_with_the_daemon_down_commands_say_so_and_how_to_start_it(capsys: Any) -> None:
    for argv in (["get", "agents"], ["execution", "list"], ["run", "hello", "hi", "--no-start"]):
        code, _out, err = invoke(capsys, *argv)
        assert code != 0
        assert "daemon is not running" in err and "stigmer local start" in err
        assert "Traceback" not in err


def test_a_stale_state_file_means_down_too(stigmer_home: Path, capsys: Any) -> None:
    """A daemon killed with -9 leaves run/state.json behind; nothing holds the lock, so it is not trusted."""
    write(stigmer_home / "run" / "state.json", json.dumps({"pid": 999999, "host": "127.0.0.1", "port": 9,
                                                           "started_at": 0, "config_fingerprint": "x"}))
    write(stigmer_home / "run" / "token", "t\n")
    code, _, err = invoke(capsys, "get", "agents")
    assert code == 1 and "daemon is not running" in err
