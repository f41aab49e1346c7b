"""Hostile tool arguments: what a confused or malicious model can ask the workspace tools to do.

Every hostile call must come back as a message the model sees (a refusal or a bounded answer),
never as an exception escaping the tool layer, and nothing may be read from or written outside
the workspace. The last test runs hostile calls through the real workflow (Temporal dev server,
in-process runner, scripted model) to show the execution survives them and the model sees why.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stigmer.worker.tools import workspace
from tests.support.agents import EventCollector, execution, runner_env, start, wait_for, worker_in_process
from tests.support.codec import codec_client
from tests.support.scripted_provider import write_script

SECRET = "top secret outside the workspace\n"


def call(root: Path, name: str, **args: Any) -> tuple[str, bool]:
    """One tool call as the runner makes it: ``(text the model sees, is_error)``; anything else escapes."""
    try:
        return asyncio.run(workspace.call(name, root, args)), False
    except workspace.ToolFailure as exc:
        return str(exc), True


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` (symlinks not followed) with a digest of its bytes."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                out[str(path)] = "-> " + os.readlink(path)
            elif path.is_file():
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[str(path)] = "dir"
    return out


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A workspace with every kind of escape hatch planted in it, and an outside directory to protect."""
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    ws.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (ws / "inside.txt").write_text("hello\n")
    (ws / "sub").mkdir()
    (ws / "file_link").symlink_to(outside / "secret.txt")
    (ws / "dir_link").symlink_to(outside)
    (ws / "chain_a").symlink_to(ws / "chain_b")
    (ws / "chain_b").symlink_to(ws / "dir_link")
    (ws / "dangling").symlink_to(outside / "created-by-model.txt")
    (ws / "loop_a").symlink_to(ws / "loop_b")
    (ws / "loop_b").symlink_to(ws / "loop_a")
    (ws / "inner_link").symlink_to(ws / "inside.txt")
    before = snapshot(outside)
    yield ws, outside
    assert snapshot(outside) == before, "something outside the workspace changed"


ESCAPES = ["../outside/secret.txt", "sub/../../outside/secret.txt", "./../outside/secret.txt",
           "file_link", "dir_link/secret.txt", "chain_a/secret.txt", "dangling", "loop_a"]


@pytest.mark.parametrize("path", ESCAPES)
def test_reading_out_of_the_workspace_is_refused(tree: tuple[Path, Path], path: str) -> None:
    ws, _ = tree
    text, is_error = call(ws, "read_file", path=path)
    assert is_error and SECRET.strip() not in text
    assert "outside the workspace" in text or "cannot resolve" in text


@pytest.mark.parametrize("path", [*ESCAPES, "dir_link/new.txt", "chain_a/new.txt", "../new.txt"])
def test_writing_out_of_the_workspace_is_refused_and_nothing_is_written(tree: tuple[Path, Path], path: str) -> None:
    ws, outside = tree
    text, is_error = call(ws, "write_file", path=path, content="pwned")
    assert is_error, text
    assert not (outside / "new.txt").exists() and not (outside / "created-by-model.txt").exists()
    assert not (outside.parent / "new.txt").exists()


def test_absolute_paths_outside_are_refused_inside_are_allowed(tree: tuple[Path, Path]) -> None:
    ws, outside = tree
    for path in ("/etc/passwd", str(outside / "secret.txt"), "/"):
        text, is_error = call(ws, "read_file", path=path)
        assert is_error and "outside the workspace" in text and "root:" not in text
    assert call(ws, "list_files", path="/etc")[1]
    assert call(ws, "read_file", path=str(ws / "inside.txt")) == ("hello\n", False)
    assert call(ws, "read_file", path="inner_link") == ("hello\n", False)  # a symlink that stays inside is fine


def test_listing_does_not_follow_links_out(tree: tuple[Path, Path]) -> None:
    ws, _ = tree
    text, is_error = call(ws, "list_files")
    assert not is_error
    assert "inside.txt" in text and "secret.txt" not in text
    for path in ("dir_link", "chain_a", ".."):
        text, is_error = call(ws, "list_files", path=path)
        assert is_error and "outside the workspace" in text


def test_very_long_names_and_nul_bytes_are_refused(tree: tuple[Path, Path]) -> None:
    ws, _ = tree
    cases = {"a" * 300: "too long", "d/" * 2100 + "f": "too long", "in\x00side.txt": "NUL byte",
             "x\x00/../../outside/secret.txt": "NUL byte"}
    for path, expected in cases.items():
        for name, extra in (("read_file", {}), ("write_file", {"content": "x"}), ("list_files", {})):
            text, is_error = call(ws, name, path=path, **extra)
            assert is_error and expected in text, (name, path[:20], text[:80])
    text, is_error = call(ws, "run_shell", command="echo hi\x00")
    assert is_error and "NUL byte" in text


def test_a_path_longer_than_the_system_allows_is_a_message_not_a_crash(tree: tuple[Path, Path]) -> None:
    ws, _ = tree
    deep = "/".join(["n" * 200] * 20)  # 4019 characters: within the tool's limit, about PATH_MAX once joined
    text, is_error = call(ws, "write_file", path=deep, content="x")  # a message either way, never an exception
    assert ("write_file failed" in text) if is_error else (ws / deep).read_text() == "x"
    text, is_error = call(ws, "read_file", path="/".join(["n" * 250] * 16))
    assert is_error and ("does not exist" in text or "failed" in text)


def test_arguments_of_the_wrong_type_are_refused(tree: tuple[Path, Path]) -> None:
    ws, _ = tree
    assert call(ws, "read_file", path=5) == ("path must be a non-empty string", True)
    assert call(ws, "read_file") == ("path must be a non-empty string", True)
    assert call(ws, "write_file", path="a.txt", content={"x": 1}) == ("content must be a string", True)
    assert call(ws, "run_shell", command=["rm", "-rf", "/"]) == ("command must be a non-empty string", True)
    assert call(ws, "format_disk")[1]


def test_text_that_is_not_valid_unicode_is_refused_not_raised(tree: tuple[Path, Path]) -> None:
    """JSON lets a model send a lone surrogate (``"\\udc80"``); it cannot be a file name or UTF-8 content."""
    ws, _ = tree
    for name, args in (("read_file", {"path": "\udc80.txt"}), ("write_file", {"path": "a\udc80", "content": "x"}),
                       ("write_file", {"path": "ok.txt", "content": "bad \udc80 text"}),
                       ("list_files", {"path": "\udc80"})):
        text, is_error = call(ws, name, **args)
        assert is_error, (name, text)


def test_huge_outputs_are_truncated_with_a_note(tree: tuple[Path, Path]) -> None:
    ws, _ = tree
    (ws / "big.txt").write_text("line of text\n" * 200_000)  # 2.6 MB
    text, is_error = call(ws, "read_file", path="big.txt")
    assert not is_error
    assert len(text) < workspace.MAX_OUTPUT + 200
    assert "truncated" in text and "2600000 bytes" in text
    many = ws / "many"
    many.mkdir()
    for i in range(700):
        (many / f"f{i:04}.txt").touch()
    text, _ = call(ws, "list_files", path="many")
    assert len(text.splitlines()) <= workspace.MAX_ENTRIES + 1 and "truncated" in text
    text, is_error = call(ws, "run_shell", command="yes 0123456789 | head -c 3000000")
    assert not is_error and len(text) < workspace.MAX_OUTPUT + 200 and "truncated" in text


def test_binary_files_are_described_not_dumped(tree: tuple[Path, Path]) -> None:
    ws, _ = tree
    (ws / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 10)
    (ws / "latin1.txt").write_bytes("caf\xe9 cr\xe8me ".encode("latin-1") * 100)
    assert call(ws, "read_file", path="image.png") == ("[binary file, 2576 bytes: not shown]", False)
    text, is_error = call(ws, "read_file", path="latin1.txt")
    assert not is_error and text.startswith("[binary or non-UTF-8 file")


_PIECES = st.sampled_from(["..", ".", "", "sub", "inside.txt", "file_link", "dir_link", "chain_a", "dangling",
                           "loop_a", "inner_link", "secret.txt", "new.txt", "\x00", "\udc80", "~", "%2e%2e", "..."])
_HOSTILE = st.one_of(
    st.lists(st.one_of(_PIECES, st.text(max_size=12)), max_size=8).map("/".join),
    st.lists(_PIECES, min_size=1, max_size=6).map(lambda parts: "/" + "/".join(parts)),
    st.text(max_size=40),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=_HOSTILE, tool=st.sampled_from(["read_file", "write_file", "list_files"]))
def test_any_path_is_either_inside_the_workspace_or_refused(tree: tuple[Path, Path], path: str, tool: str) -> None:
    ws, _ = tree
    extra = {"content": "written by hypothesis"} if tool == "write_file" else {}
    text, is_error = call(ws, tool, path=path, **extra)
    assert SECRET.strip() not in text
    if not is_error and tool != "list_files":
        real = workspace.resolve_path(ws, path)
        assert real == ws.resolve() or ws.resolve() in real.parents


async def _through_the_workflow(ws: Path, temporal_server: Any, monkeypatch: pytest.MonkeyPatch,
                                calls: list[dict[str, Any]], final: str) -> tuple[Any, list[dict[str, Any]]]:
    """Run one execution whose model makes ``calls`` then answers ``final``: (result, tool messages)."""
    script = write_script(ws.parent / f"s-{uuid.uuid4().hex[:6]}.json", [{"content": "", "tool_calls": calls},
                                                                         {"content": final}])
    queue = f"tools-{uuid.uuid4().hex[:8]}"
    inp = execution(script, workspace=ws, tools=["workspace"], tool_max_attempts=1)
    with EventCollector() as collector:
        async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
            client = await codec_client(temporal_server.address)
            handle = await start(client, inp, queue)
            result = await asyncio.wait_for(handle.result(), 60)
            status = await handle.query("status")
        wait_for(lambda: any(e["type"] == "completed" for e in collector.of(inp.execution_id)), what="completed")
        finished = [e for e in collector.of(inp.execution_id) if e["type"] == "tool_finished"]
    # `stigmer run` shows each call live: a hostile argument must not cost the call its events.
    assert len(finished) == len(calls), [e["data"]["name"] for e in finished]
    return result, [m for m in status["messages"] if m["role"] == "tool"]


@pytest.mark.slow
async def test_hostile_calls_through_the_workflow_end_as_messages_the_model_sees(
        tree: tuple[Path, Path], temporal_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ws, _ = tree
    hostile = [{"name": "read_file", "args": {"path": "../outside/secret.txt"}},
               {"name": "write_file", "args": {"path": "dir_link/pwned.txt", "content": "x"}},
               {"name": "read_file", "args": {"path": "file_link"}},
               {"name": "read_file", "args": {"path": "in\x00side"}},
               {"name": "write_file", "args": {"path": "\udc80", "content": "x"}},
               {"name": "no_such_tool", "args": {}}]
    result, tool_msgs = await _through_the_workflow(ws, temporal_server, monkeypatch, hostile, "I could not get out.")
    assert (result.status, result.output) == ("completed", "I could not get out.")
    assert len(tool_msgs) == len(hostile)
    assert all(m["is_error"] for m in tool_msgs), [m["content"][:60] for m in tool_msgs]
    assert "outside the workspace" in tool_msgs[0]["content"]
    assert "NUL byte" in tool_msgs[3]["content"]
    assert "unknown tool" in tool_msgs[5]["content"]
    assert all(SECRET.strip() not in m["content"] for m in tool_msgs)


@pytest.mark.slow
async def test_a_call_with_malformed_arguments_is_answered_not_dropped(
        tree: tuple[Path, Path], temporal_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model whose tool-call arguments are not a JSON object must hear so, not have its call vanish."""
    ws, _ = tree
    calls = [{"name": "read_file", "args": "inside.txt"}]
    result, tool_msgs = await _through_the_workflow(ws, temporal_server, monkeypatch, calls, "Sorry, retrying.")
    assert (result.status, result.output, result.steps) == ("completed", "Sorry, retrying.", 2)
    assert len(tool_msgs) == 1 and tool_msgs[0]["is_error"]
