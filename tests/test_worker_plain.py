"""``worker._plain``: the hot activities' inputs (and tool results) go to the same payloads, and come back as the
same dataclasses, as through the SDK's converter; inputs from other versions (a field added or not yet there)
decode."""

from __future__ import annotations

from typing import Any

from temporalio.converter import DataConverter

from stigmer.providers.spec import ModelSpec
from stigmer.worker._plain import decoded, plain
from stigmer.worker.params import ModelCallInput, ToolCallInput, ToolResult, ToolSchema, ToolsetInput
from stigmer.worker.tools.builtin import builtin_schemas

CONVERTER = DataConverter.default.payload_converter


def _both(value: Any) -> tuple[Any, Any]:
    """``value`` through a payload, decoded by the SDK as its class and by ``decoded`` from a plain dict."""
    payloads = CONVERTER.to_payloads([value])
    cls = type(value)
    return CONVERTER.from_payloads(payloads, [cls])[0], decoded(cls, CONVERTER.from_payloads(payloads, [dict])[0])


def test_nested_dataclasses_lists_and_optionals_decode_as_the_sdk_does() -> None:
    model = ModelSpec(provider="ollama", model="qwen3:4b", base_url="http://127.0.0.1:11434", params={"num_ctx": 8192},
                      reason="test")
    mcp = ToolSchema("echo", "Echo text.", {"type": "object"}, server="tools", remote_name="echo")
    call = ModelCallInput("e1", 3, model, [{"role": "user", "content": "hi"}], [*builtin_schemas(["workspace"]), mcp],
                          30.0, conversation="a" * 64, by_ref=True, final={"usage": {"input_tokens": 5}})
    tool = ToolCallInput("e1", 3, {"id": "c1", "name": "echo", "args": {"text": "x"}}, mcp,
                         ToolsetInput("e1", ["workspace"], [{"name": "tools", "command": "x"}], "/ws"), by_ref=True)
    for value in (call, tool, ToolCallInput("e1", 1, {"name": "nope"}, None, ToolsetInput("e1", [], [], "")),
                  ToolResult("c1", "read_file", "text", content_ref="b" * 64, chars=9000)):
        sdk, fast = _both(value)
        assert fast == sdk == value and type(fast) is type(value)
        assert CONVERTER.to_payloads([plain(value)]) == CONVERTER.to_payloads([value])
    built = _both(call)[1]
    assert isinstance(built.model, ModelSpec) and all(isinstance(t, ToolSchema) for t in built.tools)


def test_a_field_from_a_newer_version_is_ignored_and_a_missing_one_takes_its_default() -> None:
    value = CONVERTER.from_payloads(CONVERTER.to_payloads([ToolResult("c1", "list_files", "a.txt")]), [dict])[0]
    value["added_later"] = {"x": 1}
    del value["is_error"]
    assert decoded(ToolResult, value) == ToolResult("c1", "list_files", "a.txt")
    already = ToolResult("c2", "read_file", "b")
    assert decoded(ToolResult, already) is already
