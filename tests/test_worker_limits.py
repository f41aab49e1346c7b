"""What a model controls is bounded by the runner's configuration, and a reply cut at the token limit is said.

Through the real workflow (a real Temporal dev server, a runner in this process, the scripted chat
model, the real MCP example server): ``write_file`` content over ``limits.write_file_bytes`` is an
error result the model sees, nothing written; every tool result, built-in or MCP, is cut to
``limits.tool_output_chars`` with a note; and a reply whose stop reason says "token limit" emits a
``truncated`` event and marks the ``completed`` event when it was the final answer.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from stigmer.worker.tools import workspace
from tests.support.agents import REPO, EventCollector, execution, runner_env, start, wait_for, worker_in_process
from tests.support.scripted_provider import read_calls, write_script

pytestmark = pytest.mark.slow

OUTPUT_LIMIT = 300
WRITE_LIMIT = 1024
CUT = {"finish_reason": "length"}  # where ChatOpenAI (OpenAI, llama.cpp's server) puts a reply cut at max_tokens


def limits_env(temporal_server: Any, queue: str, collector: EventCollector) -> dict[str, str]:
    return runner_env(temporal_server.address, queue, {**collector.env(),
                                                       "STIGMER_LIMIT_TOOL_OUTPUT_CHARS": str(OUTPUT_LIMIT),
                                                       "STIGMER_LIMIT_WRITE_FILE_BYTES": str(WRITE_LIMIT)})


async def test_write_file_over_the_limit_is_an_error_the_model_sees_and_nothing_is_written(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    script = write_script(tmp_path / "s.json", [
        {"content": "", "tool_calls": [{"name": "write_file", "args": {"path": "big.txt", "content": "é" * 600}},
                                       {"name": "write_file", "args": {"path": "small.txt", "content": "ok"}}]},
        {"content": "The big file was refused."},
    ])
    inp = execution(script, workspace=ws, tools=["workspace"])
    async with worker_in_process(limits_env(temporal_server, queue, collector), monkeypatch):
        handle = await start(client, inp, queue)
        result = await handle.result()
        status = await handle.query("status")
    assert result.status == "completed"
    big, small = [m for m in status["messages"] if m["role"] == "tool"]
    assert big["is_error"] and not small["is_error"]
    assert big["content"] == (f"content is 1200 bytes; write_file writes at most {WRITE_LIMIT} bytes "
                              "(limits.write_file_bytes); nothing was written: write a shorter file")
    assert not (ws / "big.txt").exists() and (ws / "small.txt").read_text() == "ok"


def _echo_server() -> dict[str, Any]:
    return {"name": "time", "stdio": {"command": sys.executable, "args": [str(REPO / "examples/mcp/time_server.py")],
                                      "env": {}}, "enabledTools": ["echo"]}


async def test_every_tool_result_is_cut_to_the_configured_limit_with_a_note(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "long.txt").write_text("r" * 5000)
    script = write_script(tmp_path / "s.json", [
        {"content": "", "tool_calls": [{"name": "read_file", "args": {"path": "long.txt"}},
                                       {"name": "run_shell", "args": {"command": "printf 's%.0s' $(seq 5000)"}},
                                       {"name": "echo", "args": {"text": "m" * 5000}},
                                       {"name": "read_file", "args": {"path": "missing.txt"}}]},
        {"content": "Done."},
    ])
    inp = execution(script, workspace=ws, tools=["workspace", "shell"], mcp=[_echo_server()])
    async with worker_in_process(limits_env(temporal_server, queue, collector), monkeypatch):
        handle = await start(client, inp, queue)
        assert (await handle.result()).status == "completed"
        status = await handle.query("status")
    read, shell, echo, missing = [m for m in status["messages"] if m["role"] == "tool"]
    assert read["content"] == "r" * OUTPUT_LIMIT + (
        f"\n[… truncated: the file is 5000 bytes; only the first {OUTPUT_LIMIT} characters shown]")
    cut = OUTPUT_LIMIT - len("exit code 0\n")
    assert shell["content"] == f"exit code 0\n{'s' * cut}\n[… truncated: {5000 - cut} more characters not shown]"
    assert echo["content"] == "m" * OUTPUT_LIMIT + f"\n[… truncated: {5000 - OUTPUT_LIMIT} more characters not shown]"
    assert missing["is_error"] and len(missing["content"]) < OUTPUT_LIMIT  # short results are left alone


async def test_a_final_answer_cut_at_the_token_limit_is_marked_and_announced(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path / "s.json", [
        {"content": "", "tool_calls": [{"name": "list_files", "args": {}}], "response_metadata": CUT},
        {"content": "The answer is lon", "response_metadata": CUT},
    ])
    inp = execution(script, workspace=tmp_path, tools=["workspace"])
    async with worker_in_process(limits_env(temporal_server, queue, collector), monkeypatch):
        handle = await start(client, inp, queue)
        result = await handle.result()
    assert (result.status, result.output) == ("completed", "The answer is lon")
    wait_for(lambda: any(e["type"] == "completed" for e in collector.of(inp.execution_id)), what="completed event")
    events = collector.of(inp.execution_id)
    assert [e["data"] for e in events if e["type"] == "truncated"] == [{"step": 1, "max_tokens": None},
                                                                         {"step": 2, "max_tokens": None}]
    assert [e["data"].get("truncated") for e in events if e["type"] == "message"] == [True, True]
    assert events[-1]["type"] == "completed"
    assert {k: v for k, v in events[-1]["data"].items() if k != "usage"} == {
        "output": "The answer is lon", "steps": 2, "truncated": True}


async def test_an_answer_that_ended_by_itself_is_not_marked(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path / "s.json", [
        {"content": "", "tool_calls": [{"name": "list_files", "args": {}}], "response_metadata": CUT},
        {"content": "All done.", "response_metadata": {"finish_reason": "stop"}},
    ])
    inp = execution(script, workspace=tmp_path, tools=["workspace"])
    async with worker_in_process(limits_env(temporal_server, queue, collector), monkeypatch):
        assert (await (await start(client, inp, queue)).result()).status == "completed"
    wait_for(lambda: any(e["type"] == "completed" for e in collector.of(inp.execution_id)), what="completed event")
    events = collector.of(inp.execution_id)
    assert [e["data"]["step"] for e in events if e["type"] == "truncated"] == [1]  # the tool-call step was cut
    assert {k: v for k, v in events[-1]["data"].items() if k != "usage"} == {"output": "All done.", "steps": 2}


@pytest.mark.parametrize(("content", "limit", "refused"), [("x" * 10, 10, False), ("x" * 11, 10, True),
                                                            ("é" * 5, 10, False), ("é" * 6, 10, True)])
async def test_write_file_counts_bytes_not_characters(tmp_path: Path, content: str, limit: int, refused: bool) -> None:
    limits = workspace.Limits(write_bytes=limit)
    if refused:
        with pytest.raises(workspace.ToolFailure, match=r"limits\.write_file_bytes\); nothing was written"):
            await workspace.call("write_file", tmp_path, {"path": "f.txt", "content": content}, limits)
        assert not (tmp_path / "f.txt").exists()
    else:
        await workspace.call("write_file", tmp_path, {"path": "f.txt", "content": content}, limits)
        assert (tmp_path / "f.txt").read_text() == content


async def test_a_limit_raised_past_64_kib_lets_every_tool_return_more(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``limits.tool_output_chars`` is the only cut: no tool keeps a 64 KiB limit of its own."""
    ws = tmp_path / "ws"
    ws.mkdir()
    size = 100_000
    (ws / "long.txt").write_text("r" * size)
    shell = f"head -c {size} /dev/zero | tr '\\0' s"
    script = write_script(tmp_path / "s.json", [
        {"content": "", "tool_calls": [{"name": "read_file", "args": {"path": "long.txt"}},
                                       {"name": "run_shell", "args": {"command": shell}},
                                       {"name": "echo", "args": {"text": "m" * size}}]},
        {"content": "Done."},
    ])
    # 400,000 characters in one step (the echo call's argument counts too): a window that holds them.
    inp = execution(script, workspace=ws, tools=["workspace", "shell"], mcp=[_echo_server()], context_tokens=400_000)
    env = {**limits_env(temporal_server, queue, collector), "STIGMER_LIMIT_TOOL_OUTPUT_CHARS": "200000"}
    async with worker_in_process(env, monkeypatch) as cfg:
        handle = await start(client, inp, queue)
        assert (await handle.result()).status == "completed"
        status = await handle.query("status")
    read, shell, echo = [m for m in status["messages"] if m["role"] == "tool"]
    # History keeps a preview; the whole output is in the blob store, where the next model call reads it.
    blobs = cfg.home / "blobs" / handle.id
    assert read["chars"] == size and _blob(blobs, read["content_ref"]) == "r" * size
    assert shell["chars"] == size + 12 and _blob(blobs, shell["content_ref"]) == f"exit code 0\n{'s' * size}"
    assert echo["chars"] == size and _blob(blobs, echo["content_ref"]) == "m" * size
    assert read["content"].startswith("r" * 400) and len(read["content"]) < 500


def _blob(folder: Path, key: str) -> str:
    return (folder / key).read_text()


async def test_forty_steps_of_64_kib_outputs_complete_with_the_conversation_by_reference(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11's measurement: a tool reading 64 KB per step used to hang at ~32 steps (the model call's input
    passed Temporal's 2 MB payload limit, and the workflow task was retried for ever). Model calls now get a
    reference to the conversation and tool outputs stay out of history: the run completes, and no event in its
    history carries the outputs."""
    ws = tmp_path / "ws"
    ws.mkdir()
    for i in range(40):
        (ws / f"part{i}.txt").write_text(f"{i:02d}" * 32 * 1024)  # 64 KiB each, all different
    steps = [{"content": "", "tool_calls": [{"name": "read_file", "args": {"path": f"part{i}.txt"}}]}
             for i in range(40)]
    script = write_script(tmp_path / "s.json", [*steps, {"content": "all read"}])
    inp = execution(script, workspace=ws, tools=["workspace"], max_steps=50)
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start(client, inp, queue)
        result = await handle.result()
        history = await handle.fetch_history()
    assert (result.status, result.output, result.steps) == ("completed", "all read", 41)
    assert len(read_calls(script)) == 41
    biggest = max(len(event.SerializeToString()) for event in history.events)
    assert biggest < 16_000, biggest
    assert len(history.to_json()) < 1_000_000


def wait_for_event(collector: EventCollector, execution_id: str, type_: str) -> dict[str, Any]:
    def found() -> list[dict[str, Any]]:
        return [e for e in collector.events if e["execution_id"] == execution_id and e["type"] == type_]

    wait_for(lambda: bool(found()), 30, type_)
    return found()[0]
