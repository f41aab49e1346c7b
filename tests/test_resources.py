"""Agent and McpServer documents: the examples load, and a bad document names its bad field."""

from __future__ import annotations

from pathlib import Path

import pytest

from stigmer.errors import UserError
from stigmer.resources import Agent, McpServer, agent_snapshot, load_documents

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "agents"

GOOD = """\
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata: {name: time}
spec:
  stdio: {command: python, args: ["-m", "some_server"], env: {TZ: UTC}}
  enabledTools: [get_time]
---
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {name: hello}
spec:
  instructions: "You are helpful."
  model: qwen2.5-coder
  tools: [workspace]
  mcpServers: [time]
  workspace: ./some/dir
  maxSteps: 7
"""


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_load(path: Path) -> None:
    assert load_documents(path.read_text(), path.name)


def test_a_full_document_loads_with_every_field() -> None:
    server, agent = load_documents(GOOD, "good.yaml")
    assert isinstance(server, McpServer) and isinstance(agent, Agent)
    assert server.spec.enabled_tools == ["get_time"] and server.spec.stdio is not None
    assert (agent.spec.model, agent.spec.tools, agent.spec.max_steps) == ("qwen2.5-coder", ["workspace"], 7)
    assert agent.dump()["spec"]["mcpServers"] == ["time"]


def test_snapshot_inlines_mcp_servers() -> None:
    server, agent = load_documents(GOOD, "good.yaml")
    assert isinstance(agent, Agent) and isinstance(server, McpServer)
    snap = agent_snapshot(agent, {"time": server})
    assert snap["mcpServers"] == [{"name": "time", "stdio": {"command": "python", "args": ["-m", "some_server"],
                                                             "env": {"TZ": "UTC"}},
                                   "enabledTools": ["get_time"], "timeout": 60.0}]
    assert snap["instructions"] == "You are helpful." and snap["maxSteps"] == 7
    with pytest.raises(UserError, match="MCP server 'time' does not exist"):
        agent_snapshot(agent, {})


@pytest.mark.parametrize(("old", "new", "message"), [
    ("mcpServers: [time]", "mcpServers: [tiem]",
     "good.yaml, document 2 (Agent 'hello'): spec.mcpServers[0]: unknown server 'tiem', did you mean 'time'?"),
    ("maxSteps: 7", "maxStep: 7", "spec.maxStep: unknown field, did you mean 'maxSteps'?"),
    ("maxSteps: 7", "maxSteps: 0", "spec.maxSteps: Input should be greater than or equal to 1"),
    ("tools: [workspace]", "tools: [wrkspace]", "spec.tools[0]: Input should be 'workspace' or 'shell'"),
    ('instructions: "You are helpful."', 'instructions: "  "', "spec.instructions: instructions are empty"),
    ("metadata: {name: hello}", "metadata: {name: Hello World}", "metadata.name: String should match pattern"),
    ("kind: Agent", "kind: Agnet", "kind: unknown kind 'Agnet', did you mean 'Agent'?"),
    ("  stdio: {command: python, args: [\"-m\", \"some_server\"], env: {TZ: UTC}}", "  enabledTools: []",
     "spec: Value error, give exactly one of 'stdio'"),
])
def test_bad_documents_name_the_field(old: str, new: str, message: str) -> None:
    text = GOOD.replace(old, new, 1)
    assert text != GOOD
    with pytest.raises(UserError) as info:
        load_documents(text, "good.yaml")
    assert message.replace("Value error, ", "") in str(info.value)


def test_wrong_api_version_and_yaml_errors_say_where() -> None:
    with pytest.raises(UserError, match=r"document 1 .*apiVersion: expected 'agentic.stigmer.ai/v1'"):
        load_documents(GOOD.replace("agentic.stigmer.ai/v1", "v0", 1), "x.yaml")
    with pytest.raises(UserError, match=r"x.yaml: line 2, column \d+: not valid YAML"):
        load_documents("a: b\n  c: [\n", "x.yaml")
    with pytest.raises(UserError, match="no documents"):
        load_documents("---\n", "x.yaml")


def test_references_checked_against_known_servers() -> None:
    agent_only = GOOD.split("---\n", 1)[1]
    assert load_documents(agent_only, "a.yaml", known_servers=["time"])
    with pytest.raises(UserError, match="unknown server 'time'"):
        load_documents(agent_only, "a.yaml", known_servers=["clock"])


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(UserError, match="'time' is also defined in document 1"):
        load_documents(GOOD + "---\n" + GOOD.split("---\n")[0], "dup.yaml")
