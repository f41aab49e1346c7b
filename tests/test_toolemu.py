"""Emulated tool calls, deterministic parts: the schema, the prompt, the parsing of constrained output, the mode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stigmer.config import resolve
from stigmer.errors import UserError
from stigmer.providers.base import Capabilities
from stigmer.providers.names import infer_provider
from stigmer.providers.registry import resolve_model, tool_mode
from stigmer.providers.toolmode import decide
from stigmer.resources import load_documents
from stigmer.worker import _toolemu
from stigmer.worker.params import ToolSchema
from stigmer.worker.tools.builtin import builtin_schemas

WRITE = builtin_schemas(["workspace"])
TIME = ToolSchema("get_time", "The current time in UTC.",
                  {"type": "object", "properties": {"timezone": {"type": "string", "default": "UTC"}},
                   "$schema": "http://json-schema.org/draft-07/schema#"}, server="time")


def test_the_schema_is_one_call_per_tool_or_an_answer() -> None:
    schema = _toolemu.schema([*WRITE, TIME])
    options = schema["oneOf"]
    assert [o["properties"].get("tool", {}).get("const") for o in options] == [
        "list_files", "read_file", "write_file", "get_time", None]
    write = options[2]["properties"]["arguments"]
    assert write["required"] == ["path", "content"]
    assert "$schema" not in options[3]["properties"]["arguments"]
    assert options[-1] == {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


def test_llama_cpp_compiles_the_schema_into_a_grammar() -> None:
    """What the embedded server does with ``response_format``: the schema must be one its converter supports."""
    llama_grammar = pytest.importorskip("llama_cpp.llama_grammar")
    grammar = llama_grammar.json_schema_to_gbnf(json.dumps(_toolemu.schema([*WRITE, TIME])))
    assert '"\\"write_file\\""' in grammar and "answer" in grammar


def test_calls_and_results_become_text_the_model_can_read() -> None:
    messages = [{"role": "system", "content": "You manage files."},
                {"role": "user", "content": "Write a haiku to haiku.txt"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "call_1_0", "name": "write_file", "args": {"path": "haiku.txt", "content": "sea"}}]},
                {"role": "tool", "tool_call_id": "call_1_0", "name": "write_file", "content": "wrote 3 bytes"},
                {"role": "tool", "tool_call_id": "call_1_1", "name": "read_file", "content": "no", "is_error": True},
                {"role": "assistant", "content": "Done."}]
    out = _toolemu.render(messages, WRITE)
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user", "user", "assistant"]
    assert out[0]["content"].startswith("You manage files.\n\nYou can use these tools:")
    assert "- write_file(path: string, content: string): Create or overwrite" in out[0]["content"]
    assert json.loads(out[2]["content"]) == {"tool": "write_file", "arguments": {"path": "haiku.txt", "content": "sea"}}
    assert out[3]["content"] == "Result of write_file: wrote 3 bytes"
    assert out[4]["content"] == "Result of read_file (error): no"
    assert json.loads(out[5]["content"]) == {"answer": "Done."}
    assert _toolemu.render([{"role": "user", "content": "hi"}], WRITE)[0]["role"] == "system"


@pytest.mark.parametrize(("text", "expected"), [
    ('{"tool": "write_file", "arguments": {"path": "h.txt", "content": "x"}}',
     {"content": "", "tool_calls": [{"id": "call_3_0", "name": "write_file",
                                     "args": {"path": "h.txt", "content": "x"}}]}),
    ('{"answer": "It is noon."}', {"content": "It is noon."}),
    ('{"tool": "get_time", "arguments": {}}',
     {"content": "", "tool_calls": [{"id": "call_3_0", "name": "get_time", "args": {}}]}),
    ("not json at all", {"content": "not json at all"}),  # a server that did not constrain: a text answer
    ('{"answer": "cut', {"content": '{"answer": "cut'}),  # cut at the token limit
    ("[1, 2]", {"content": "[1, 2]"}),
    ('{"something": "else"}', {"content": '{"something": "else"}'}),
])
def test_constrained_output_becomes_an_ordinary_reply(text: str, expected: dict[str, Any]) -> None:
    assert _toolemu.parse(text, [*WRITE, TIME], 3) == {"role": "assistant", **expected}


def test_an_unknown_tool_or_bad_arguments_reach_the_model_not_a_crash() -> None:
    unknown = _toolemu.parse('{"tool": "launch_rockets", "arguments": {}}', WRITE, 1)["tool_calls"][0]
    assert unknown["name"] == "launch_rockets" and "invalid_args" not in unknown  # the tool call answers "unknown tool"
    missing = _toolemu.parse('{"tool": "write_file", "arguments": {"path": "a"}}', WRITE, 1)["tool_calls"][0]
    assert missing["invalid_args"].startswith("missing required argument content")
    not_object = _toolemu.parse('{"tool": "read_file", "arguments": "a.txt"}', WRITE, 1)["tool_calls"][0]
    assert not_object["args"] == {} and "not a JSON object" in not_object["invalid_args"]


def test_the_answer_streams_as_text_not_json() -> None:
    stream = _toolemu.AnswerStream()
    pieces = ['{"', 'answer', '": "', 'Hello', ', \\"wor', 'ld\\"', ' \\u00e9', '!"', "}"]
    assert "".join(stream.feed(p) for p in pieces) == 'Hello, "world" é!'
    call = _toolemu.AnswerStream()
    assert "".join(call.feed(p) for p in ['{"tool": "get_time", ', '"arguments": {}}']) == ""


@pytest.mark.parametrize(("caps", "mode"), [
    (Capabilities(tools=True, source="Ollama /api/show", constrained=True), "native"),
    (Capabilities(tools=False, source="Ollama /api/show", constrained=True), "emulated"),
    (Capabilities(tools=True, forced_tools_only=True, constrained=True, source="llama.cpp server"), "emulated"),
    (Capabilities(tools=False, source="x"), "none"),
])
def test_auto_picks_native_then_emulated_then_none(caps: Capabilities, mode: str) -> None:
    decided = decide(caps)
    assert decided.mode == mode and not decided.forced and decided.why.startswith(caps.source)


def test_a_setting_forces_a_mode_the_agent_first() -> None:
    caps = Capabilities(tools=True, constrained=True)
    assert decide(caps, configured="emulated", configured_origin="env: STIGMER_LLM_TOOL_CALLS").mode == "emulated"
    forced = decide(caps, agent="none", configured="emulated")
    assert forced.mode == "none" and "spec.toolCalls" in forced.why
    with pytest.raises(UserError, match="cannot constrain"):
        decide(Capabilities(tools=True), configured="emulated")


def test_llm_tool_calls_is_validated_and_reaches_the_decision(stigmer_home: Path) -> None:
    env = {"STIGMER_HOME": str(stigmer_home), "STIGMER_LLM_TOOL_CALLS": "emulated"}
    cfg = resolve({"llm.provider": ("ollama", "--llm-provider")}, env=env, infer_provider=infer_provider)
    mode = tool_mode(resolve_model(cfg, "ollama:qwen3:8b"), cfg, Capabilities(tools=True, constrained=True))
    assert mode.mode == "emulated" and "STIGMER_LLM_TOOL_CALLS" in mode.why
    with pytest.raises(Exception, match=r"unknown tool-call mode 'emulate'.*did you mean 'emulated'"):
        resolve({}, env={**env, "STIGMER_LLM_TOOL_CALLS": "emulate"}, infer_provider=infer_provider)


def test_an_agent_says_how_its_model_calls_tools() -> None:
    doc = ("apiVersion: agentic.stigmer.ai/v1\nkind: Agent\nmetadata: {name: a}\n"
           "spec: {instructions: hi, tools: [workspace], toolCalls: %s}\n")
    (agent,) = load_documents(doc % "emulated", "a.yaml")
    assert agent.spec.dump()["toolCalls"] == "emulated"
    with pytest.raises(UserError, match="toolCalls"):
        load_documents(doc % "sometimes", "a.yaml")


def test_a_bundled_models_turn_is_one_call_then_the_answer() -> None:
    """The schemas sent to a model with ``one_call_per_turn``: a call while none ran this turn, then an answer."""
    call_only = _toolemu.schema(WRITE, answer=False)
    assert all("tool" in o["properties"] for o in call_only["oneOf"])
    answer_only = _toolemu.schema(WRITE, calls=False)
    assert [list(o["properties"]) for o in answer_only["oneOf"]] == [["answer"]]
    asked = [{"role": "system", "content": "s"}, {"role": "user", "content": "Write a haiku"}]
    assert _toolemu.awaits_call(asked)
    assert not _toolemu.awaits_call([*asked, {"role": "assistant", "content": "", "tool_calls": [{"name": "x"}]},
                                     {"role": "tool", "content": "ok"}])


def test_the_bundled_models_are_emulated_one_call_per_turn_and_greedy(stigmer_home: Path) -> None:
    cfg = resolve({"llm.provider": ("llamacpp", "--llm-provider")}, env={"STIGMER_HOME": str(stigmer_home)},
                  infer_provider=infer_provider)
    spec = resolve_model(cfg)
    assert spec.params["temperature"] == 0.0
    caps = Capabilities(tools=True, forced_tools_only=True, constrained=True, source="llama.cpp server")
    mode = tool_mode(spec, cfg, caps)
    assert mode.mode == "emulated" and "a turn is one tool call, then the answer" in mode.why
    other = resolve_model(cfg, str(stigmer_home / "mine.gguf"))
    assert "temperature" not in other.params and "a turn is" not in tool_mode(other, cfg, caps).why
