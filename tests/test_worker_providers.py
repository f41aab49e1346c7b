"""The same agents on real provider protocols: the Ollama double (native API) and llama.cpp's real server."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError

from stigmer.providers.registry import resolve_model
from stigmer.resources import Agent, agent_snapshot, load_documents
from tests.support.agents import REPO, execution, resolve_for, runner_env, start, worker_in_process
from tests.support.codec import codec_client
from tests.support.ollama_double import start_ollama_double

pytestmark = pytest.mark.slow


def _pinned(inp: Any, spec: Any) -> Any:
    inp.model = spec
    return inp


@pytest.fixture
def ollama() -> Any:
    double = start_ollama_double()
    yield double
    double.stop()


async def test_agent_on_the_ollama_protocol(tmp_path: Path, temporal_server: Any, ollama: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    ollama.add_model("llama3.2:3b", reply="Hello from Ollama.", tool_call={"name": "list_files", "arguments": {}})
    env = {"OLLAMA_HOST": ollama.url}
    spec = resolve_model(resolve_for(env), "ollama:llama3.2:3b")
    queue = f"prov-{uuid.uuid4().hex[:8]}"
    client = await codec_client(temporal_server.address)
    (tmp_path / "seen.txt").write_text("x")
    async with worker_in_process(runner_env(temporal_server.address, queue, env), monkeypatch):
        hello = await (await start(client, _pinned(execution("unused"), spec), queue)).result()
        tools_inp = _pinned(execution("unused", workspace=tmp_path, tools=["workspace"]), spec)
        handle = await start(client, tools_inp, queue)
        with pytest.raises(WorkflowFailureError) as info:  # the double always answers the same tool call
            await handle.result()
        status = await handle.query("status")
    assert hello.output == "Hello from Ollama."
    tool_results = [m["content"] for m in status["messages"] if m["role"] == "tool"]
    assert tool_results and all("seen.txt" in r for r in tool_results)
    assert "'list_files' with the same arguments 3 times" in str(info.value.cause)
    chats = ollama.chat_requests()
    assert chats[-1]["tools"][0]["function"]["name"] == "list_files"
    assert any(m.get("role") == "tool" for m in chats[-1]["messages"])


async def test_tools_on_an_ollama_model_without_them_are_emulated_with_format(
        tmp_path: Path, temporal_server: Any, ollama: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``tools`` capability: no ``tools`` in the request, a JSON schema in ``format``, ordinary tool calls after."""
    ollama.add_model("gemma3:1b", tools=False, family="gemma3", reply="There is seen.txt.",
                     tool_call={"name": "list_files", "arguments": {}})
    env = {"OLLAMA_HOST": ollama.url}
    spec = resolve_model(resolve_for(env), "ollama:gemma3:1b")
    queue = f"prov-{uuid.uuid4().hex[:8]}"
    client = await codec_client(temporal_server.address)
    (tmp_path / "seen.txt").write_text("x")
    async with worker_in_process(runner_env(temporal_server.address, queue, env), monkeypatch):
        handle = await start(client, _pinned(execution("unused", workspace=tmp_path, tools=["workspace"]), spec), queue)
        result = await handle.result()
        status = await handle.query("status")
    assert (result.status, result.output, result.steps) == ("completed", "There is seen.txt.", 2)
    calls = [c for m in status["messages"] if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    assert [c["name"] for c in calls] == ["list_files"]
    assert any("seen.txt" in m["content"] for m in status["messages"] if m["role"] == "tool")
    first, second = ollama.chat_requests()[-2:]
    assert not first.get("tools") and first["format"]["oneOf"][0]["properties"]["tool"] == {"const": "list_files"}
    assert "You can use these tools:" in first["messages"][0]["content"]
    assert second["messages"][-1]["role"] == "user"
    assert second["messages"][-1]["content"].startswith("Result of list_files:")
    assert all(m["role"] != "tool" for m in second["messages"])


async def test_model_missing_on_ollama_fails_at_once(temporal_server: Any, ollama: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"OLLAMA_HOST": ollama.url}
    spec = resolve_model(resolve_for(env), "ollama:nothere:1b")
    queue = f"prov-{uuid.uuid4().hex[:8]}"
    client = await codec_client(temporal_server.address)
    async with worker_in_process(runner_env(temporal_server.address, queue, env), monkeypatch):
        handle = await start(client, _pinned(execution("unused"), spec), queue)
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    assert "not pulled" in str(info.value.cause) and "stigmer llm pull nothere:1b" in str(info.value.cause)
    assert len(ollama.chat_requests()) == 1


async def test_example_hello_agent_on_the_embedded_llamacpp_server(temporal_server: Any, llamacpp_server: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"STIGMER_LLM_PROVIDER": "llamacpp", "STIGMER_LLM_BASE_URL": llamacpp_server, "STIGMER_LLM_MAX_TOKENS": "12"}
    spec = resolve_model(resolve_for(env))
    queue = f"prov-{uuid.uuid4().hex[:8]}"
    client = await codec_client(temporal_server.address)
    (hello,) = load_documents((REPO / "examples" / "agents" / "hello.yaml").read_text(), "hello.yaml")
    assert isinstance(hello, Agent)
    inp = _pinned(execution("unused", "Say hello."), spec)
    inp.agent, inp.max_steps = agent_snapshot(hello, {}), hello.spec.max_steps
    async with worker_in_process(runner_env(temporal_server.address, queue, env), monkeypatch):
        result = await (await start(client, inp, queue)).result()
    assert result.status == "completed" and result.steps == 1
    assert result.output.strip()  # the tiny instruct model answers through the whole stack
