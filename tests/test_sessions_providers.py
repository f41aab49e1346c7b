"""The session and approval flow on real provider protocols, and its usage checked against what each one reported.

A real Temporal dev server, an in-process runner and the real LangChain clients; on the other side the Anthropic
and Ollama protocol doubles (real HTTP servers on loopback) and llama.cpp's real server with the bundled model.
The flow: a session whose second turn sees the first; a ``write_file`` call that waits for a person, is approved
once and runs once; another that is rejected, never runs, and whose reason the model's next request carries.
Between two model calls (while a turn waits for a decision, or between turns) the test sets what the double answers
next and the usage it reports, so every call's usage is known, and the sums and costs the runner reports are
checked against them and against the provider's price table.

The bundled tiny model cannot be relied on to call a tool, so on llama.cpp only the session part runs: turn 2's
model call carries turn 1, and the usage (which that server does not report in a stream) is estimated and free.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from stigmer.providers.anthropic import PRICES
from stigmer.providers.registry import resolve_model
from stigmer.providers.spec import ModelSpec
from stigmer.worker._approval import args_hash
from stigmer.worker.params import CALL_MODEL, STATE, TURN
from tests.support.agents import (
    EventCollector,
    decide,
    event_of,
    last_event,
    resolve_for,
    runner_env,
    send,
    sent_to_model,
    session_input,
    start_session,
    worker_in_process,
)
from tests.support.anthropic_double import AnthropicDouble, start_anthropic_double
from tests.support.ollama_double import FakeModel, OllamaDouble, start_ollama_double

pytestmark = pytest.mark.slow

ANTHROPIC_KEY = "sk-ant-flows-0000"
ANTHROPIC_MODEL = "claude-sonnet-5-5"
OLLAMA_MODEL = "llama3.2:3b"
NOTE = {"path": "note.txt", "content": "hello"}
OTHER = {"path": "other.txt", "content": "not wanted"}
REASON = "not in this folder"

# What the provider reports for each of the flow's five model calls: (input, output, cache read, cache write),
# in Anthropic's terms (its input_tokens leave the cached prompt out). Ollama reports no cache: its counts are
# prompt_eval_count = input and eval_count = output.
REPORTED = [(120, 9, 0, 0), (150, 31, 64, 0), (40, 5, 200, 16), (230, 27, 0, 48), (90, 12, 300, 0)]


class Anthropic:
    """Tells the Anthropic double what to answer next and says what a call so answered should cost."""

    def __init__(self) -> None:
        self.double: AnthropicDouble = start_anthropic_double(ANTHROPIC_KEY)
        self.spec = ModelSpec(provider="anthropic", model=ANTHROPIC_MODEL, base_url=self.double.url, reason="test")
        self.env = {"ANTHROPIC_API_KEY": ANTHROPIC_KEY}

    def next(self, call: int, reply: str = "", tool: dict[str, Any] | None = None) -> dict[str, Any]:
        fresh, output, read, written = REPORTED[call]
        self.double.reply = reply
        self.double.tool_call = {"name": "write_file", "input": tool} if tool else None
        self.double.usage = {"input_tokens": fresh, "output_tokens": output, "cache_read_input_tokens": read,
                             "cache_creation_input_tokens": written}
        price = PRICES[ANTHROPIC_MODEL]  # the table in providers/anthropic.py, no tier at these sizes
        assert price.cached is not None and price.cache_write is not None
        usd = (fresh * price.input + read * price.cached + written * price.cache_write + output * price.output) / 1e6
        return {"input_tokens": fresh + read + written, "output_tokens": output, "cached_tokens": read,
                "estimated": False, "cost_usd": usd}

    def requests(self) -> list[dict[str, Any]]:
        return [r.body for r in list(self.double.requests) if r.path == "/v1/messages"]

    def stop(self) -> None:
        self.double.stop()


class Ollama:
    """Tells the Ollama double what to answer next; a local model costs nothing."""

    def __init__(self) -> None:
        self.double: OllamaDouble = start_ollama_double()
        self.model: FakeModel = self.double.add_model(OLLAMA_MODEL)
        self.spec = ModelSpec(provider="ollama", model=OLLAMA_MODEL, base_url=self.double.url, reason="test")
        self.env = {"OLLAMA_HOST": self.double.url}

    def next(self, call: int, reply: str = "", tool: dict[str, Any] | None = None) -> dict[str, Any]:
        prompt, output, _, _ = REPORTED[call]
        self.model.reply = reply
        self.model.tool_call = {"name": "write_file", "arguments": tool} if tool else None
        self.model.prompt_eval_count, self.model.eval_count = prompt, output
        return {"input_tokens": prompt, "output_tokens": output, "cached_tokens": 0, "estimated": False,
                "cost_usd": 0.0}

    def requests(self) -> list[dict[str, Any]]:
        return self.double.chat_requests()

    def stop(self) -> None:
        self.double.stop()


@pytest.fixture(params=["anthropic", "ollama"])
def provider(request: pytest.FixtureRequest) -> Iterator[Anthropic | Ollama]:
    p = Anthropic() if request.param == "anthropic" else Ollama()
    yield p
    p.stop()


@dataclass
class Flow:
    """What the flow saw: the three turns' events, the approvals asked, the session's state, the usage expected."""

    turns: list[str] = field(default_factory=list)
    ends: list[dict[str, Any]] = field(default_factory=list)
    asked: list[dict[str, Any]] = field(default_factory=list)
    expected: list[dict[str, Any]] = field(default_factory=list)
    """Per model call, in order: the usage the runner should measure from what the provider reported."""
    note_before_approval: bool = True
    state: dict[str, Any] = field(default_factory=dict)
    turn_query: list[dict[str, Any]] = field(default_factory=list)
    """The ``turn`` query of each turn: what the daemon confirms a turn's end and stores its usage from."""


async def _flow(p: Anthropic | Ollama, client: Client, queue: str, collector: EventCollector, ws: Path,
                temporal_address: str, monkeypatch: pytest.MonkeyPatch) -> Flow:
    inp = session_input("unused", workspace=ws, tools=["workspace"], approvals={"mode": "default"})
    inp.model = p.spec
    flow = Flow()
    env = runner_env(temporal_address, queue, {**collector.env(), **p.env})
    async with worker_in_process(env, monkeypatch):
        handle = await start_session(client, inp, queue)
        # Turn 1: a plain answer.
        flow.expected.append(p.next(0, reply="Nice to meet you, Ada."))
        flow.turns.append((await send(handle, "My name is Ada."))[0])
        flow.ends.append(await last_event(collector, flow.turns[0]))
        # Turn 2: write_file waits for a person; approved, it runs, and the model answers.
        flow.expected.append(p.next(1, tool=NOTE))
        flow.turns.append((await send(handle, "Write a note."))[0])
        flow.asked.append((await event_of(collector, flow.turns[1], "approval_requested"))["data"])
        flow.note_before_approval = (ws / "note.txt").exists()
        flow.expected.append(p.next(2, reply="Written."))
        await decide(handle, flow.asked[0], approve=True)
        flow.ends.append(await last_event(collector, flow.turns[1]))
        # Turn 3: another write_file, rejected with a reason; the model is told and answers.
        flow.expected.append(p.next(3, tool=OTHER))
        flow.turns.append((await send(handle, "Write another note."))[0])
        flow.asked.append((await event_of(collector, flow.turns[2], "approval_requested"))["data"])
        flow.expected.append(p.next(4, reply="I left it alone."))
        await decide(handle, flow.asked[1], approve=False, reason=REASON)
        flow.ends.append(await last_event(collector, flow.turns[2]))
        flow.state = await handle.query(STATE)
        flow.turn_query = [await handle.query(TURN, t) for t in flow.turns]
    return flow


def _text(content: Any) -> str:
    """The text of a message's content as a provider's request carries it: a string or a list of blocks."""
    if isinstance(content, str):
        return content
    return "".join(_text(b.get("content")) if b.get("type") == "tool_result" else str(b.get("text") or "")
                   for b in content or [] if isinstance(b, dict))


def _conversation(body: dict[str, Any]) -> list[tuple[str, str]]:
    """The person's and the model's texts a request carries, in order (system prompt and tool traffic left out)."""
    return [(m["role"], _text(m.get("content"))) for m in body["messages"]
            if m["role"] in ("user", "assistant") and not m.get("tool_calls")
            and not any(isinstance(b, dict) and b.get("type") in ("tool_use", "tool_result")
                        for b in (m.get("content") if isinstance(m.get("content"), list) else []))]


def _tool_results(body: dict[str, Any]) -> list[str]:
    """The tool results a request carries: Ollama's ``tool`` messages, Anthropic's ``tool_result`` blocks."""
    out = [_text(m.get("content")) for m in body["messages"] if m["role"] == "tool"]
    for m in body["messages"]:
        if isinstance(m.get("content"), list):
            out += [_text(b.get("content")) for b in m["content"] if b.get("type") == "tool_result"]
    return out


def _summed(calls: list[dict[str, Any]]) -> dict[str, Any]:
    return {**{k: sum(c[k] for c in calls) for k in ("input_tokens", "output_tokens", "cached_tokens")},
            "estimated": False,
            "cost_usd": pytest.approx(sum(c["cost_usd"] for c in calls), abs=1e-7), "model_calls": len(calls)}


def _tokens(usage: dict[str, Any]) -> dict[str, Any]:
    keys = ("input_tokens", "output_tokens", "cached_tokens", "estimated", "cost_usd", "model_calls")
    return {k: usage[k] for k in keys if k in usage}


async def test_a_session_with_an_approved_and_a_rejected_call_on_the_provider_protocol(
        provider: Anthropic | Ollama, tmp_path: Path, temporal_server: Any, client: Client, queue: str,
        collector: EventCollector, monkeypatch: pytest.MonkeyPatch) -> None:
    flow = await _flow(provider, client, queue, collector, tmp_path, temporal_server.address, monkeypatch)
    _, two, three = flow.turns
    requests = provider.requests()

    assert [(e["type"], e["data"].get("output", e["data"].get("error")), e["data"]["turn"]) for e in flow.ends] == [
        ("completed", "Nice to meet you, Ada.", 1), ("completed", "Written.", 2), ("completed", "I left it alone.", 3)]
    # One request per model call: nothing was retried, so these five are all the usage the provider reported.
    assert len(requests) == 5
    # Turn 2's model call was sent turn 1 (the person's message and the answer), then turn 2's message.
    assert _conversation(requests[0]) == [("user", "My name is Ada.")]
    assert _conversation(requests[1]) == [("user", "My name is Ada."), ("assistant", "Nice to meet you, Ada."),
                                          ("user", "Write a note.")]

    # The approved call: asked with its exact arguments, nothing ran while it waited, then it ran once.
    assert (flow.asked[0]["tool"], flow.asked[0]["args"]) == ("write_file", NOTE)
    assert flow.asked[0]["args_hash"] == args_hash("write_file", NOTE)
    assert flow.note_before_approval is False
    assert (tmp_path / "note.txt").read_text() == "hello"
    assert [e["type"] for e in collector.of(two)].count("tool_started") == 1
    assert _tool_results(requests[2]) == ["wrote 5 bytes to note.txt"]  # the model was given what it did

    # The rejected call never ran, and the model's next request told it why.
    assert (flow.asked[1]["tool"], flow.asked[1]["args"]) == ("write_file", OTHER)
    assert not (tmp_path / "other.txt").exists()
    assert "tool_started" not in [e["type"] for e in collector.of(three)]
    assert _tool_results(requests[4])[-1] == f"the person rejected this call: {REASON}"
    decided = [e["data"]["decision"] for t in (two, three) for e in collector.of(t) if e["type"] == "approval_decided"]
    assert decided == ["approved", "rejected"]

    # Usage: each call's is what the provider reported (and priced from the table); each turn's and the session's
    # are their sums, in the completed events and in the session's state.
    measured = [e["data"]["usage"] for t in flow.turns for e in collector.of(t) if e["type"] == "message"]
    assert [_tokens(u) for u in measured] == [
        {**c, "cost_usd": pytest.approx(c["cost_usd"], abs=1e-8)} for c in flow.expected]
    per_turn = [flow.expected[:1], flow.expected[1:3], flow.expected[3:]]
    assert [_tokens(e["data"]["usage"]) for e in flow.ends] == [_summed(calls) for calls in per_turn]
    assert [(q["status"], _tokens(q["usage"])) for q in flow.turn_query] == [
        ("completed", _summed(calls)) for calls in per_turn]
    assert _tokens(flow.ends[2]["data"]["session_usage"]) == _summed(flow.expected)
    assert _tokens(flow.state["usage"]) == _summed(flow.expected)
    assert (flow.state["turns"], flow.state["status"]) == (3, "idle")
    if isinstance(provider, Ollama):
        assert flow.state["usage"]["cost_usd"] == 0.0
    else:
        assert flow.state["usage"]["cost_usd"] > 0.0


def _model_calls(history: Any) -> list[dict[str, Any]]:
    """The input of every model-call activity in a workflow's history: what the runner sent the model."""
    from temporalio.converter import DataConverter

    out = []
    for ev in history.events:
        if ev.HasField("activity_task_scheduled_event_attributes"):
            attrs = ev.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == CALL_MODEL:
                (arg,) = DataConverter.default.payload_converter.from_payloads(list(attrs.input.payloads))
                out.append(arg)
    return out


def _estimate(chars: int) -> int:
    return max(1, (chars + 3) // 4) if chars else 0


async def test_a_session_on_the_embedded_llamacpp_server_carries_turn_one_and_estimates_free_usage(
        tmp_path: Path, temporal_server: Any, llamacpp_server: str, client: Client, queue: str,
        collector: EventCollector, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**collector.env(), "STIGMER_LLM_PROVIDER": "llamacpp", "STIGMER_LLM_BASE_URL": llamacpp_server,
           "STIGMER_LLM_MAX_TOKENS": "12"}
    inp = session_input("unused", workspace=tmp_path)
    inp.model = resolve_model(resolve_for(env))
    async with worker_in_process(runner_env(temporal_server.address, queue, env), monkeypatch) as cfg:
        handle = await start_session(client, inp, queue)
        one, _ = await send(handle, "My name is Ada.")
        end1 = await last_event(collector, one)
        two, _ = await send(handle, "What is my name?")
        end2 = await last_event(collector, two)
        state = await handle.query(STATE)
        # What each call was sent: its input holds a transcript reference and the messages after it.
        calls = [{"messages": await sent_to_model(cfg.home, handle.id, call)}
                 for call in _model_calls(await handle.fetch_history())]

    assert [(e["type"], e["data"]["turn"]) for e in (end1, end2)] == [("completed", 1), ("completed", 2)]
    answer1 = end1["data"]["output"]
    # Turn 2's model call carried turn 1: the person's message and the model's own answer, then the new message.
    assert len(calls) == 2
    assert [(m["role"], m["content"]) for m in calls[1]["messages"][1:]] == [
        ("user", "My name is Ada."), ("assistant", answer1), ("user", "What is my name?")]
    assert calls[1]["messages"][0]["role"] == "system" and state["messages"] == 5

    # That server sends no usage in a stream: each call is estimated from what was sent and received, and free.
    for call, end in zip(calls, (end1, end2), strict=True):
        usage = end["data"]["usage"]
        sent = sum(len(m["content"] or "") for m in call["messages"])
        received = len(end["data"]["output"])
        assert _tokens(usage) == {"input_tokens": _estimate(sent), "output_tokens": _estimate(received),
                                  "cached_tokens": 0, "estimated": True, "cost_usd": 0.0, "model_calls": 1}
    total = state["usage"]
    assert total["input_tokens"] == end1["data"]["usage"]["input_tokens"] + end2["data"]["usage"]["input_tokens"]
    assert total["output_tokens"] == end1["data"]["usage"]["output_tokens"] + end2["data"]["usage"]["output_tokens"]
    assert (total["estimated"], total["cost_usd"], total["model_calls"]) == (True, 0.0, 2)
    assert end2["data"]["session_usage"] == total
