"""Workspace tools stay inside the workspace, and what they return stays readable and bounded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stigmer.worker.tools import workspace as ws
from stigmer.worker.tools.workspace import ToolFailure


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "a.txt").write_text("alpha\n")
    (root / "sub").mkdir()
    (root / "sub" / "b.txt").write_text("beta\n")
    (tmp_path / "secret.txt").write_text("outside\n")
    return root


@pytest.mark.parametrize("path", ["../secret.txt", "sub/../../secret.txt", "/etc/passwd", "..", "/"])
async def test_paths_leaving_the_workspace_are_refused(root: Path, path: str) -> None:
    with pytest.raises(ToolFailure, match="outside the workspace"):
        await ws.call("read_file", root, {"path": path})


async def test_symlinks_leaving_the_workspace_are_refused(root: Path, tmp_path: Path) -> None:
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    (root / "linkdir").symlink_to(tmp_path)
    with pytest.raises(ToolFailure, match="outside the workspace"):
        await ws.call("read_file", root, {"path": "link.txt"})
    with pytest.raises(ToolFailure, match="outside the workspace"):
        await ws.call("write_file", root, {"path": "linkdir/new.txt", "content": "x"})
    assert not (tmp_path / "new.txt").exists()
    with pytest.raises(ToolFailure, match="outside the workspace"):
        await ws.call("list_files", root, {"path": "linkdir"})


async def test_a_symlink_inside_the_workspace_works(root: Path) -> None:
    (root / "alias.txt").symlink_to(root / "a.txt")
    assert await ws.call("read_file", root, {"path": "alias.txt"}) == "alpha\n"


@pytest.mark.parametrize(("path", "message"), [("a\x00b", "NUL byte"), ("x" * 300, "too long"),
                                                ("d/" * 2100, "too long"), ("", "non-empty")])
async def test_malformed_paths_are_refused(root: Path, path: str, message: str) -> None:
    with pytest.raises(ToolFailure, match=message):
        await ws.call("write_file", root, {"path": path, "content": "x"})


async def test_absolute_path_inside_the_workspace_is_allowed(root: Path) -> None:
    assert await ws.call("read_file", root, {"path": str(root / "sub" / "b.txt")}) == "beta\n"


async def test_list_write_read(root: Path) -> None:
    assert await ws.call("write_file", root, {"path": "new/deep/c.txt", "content": "gamma"}) == \
        "wrote 5 bytes to new/deep/c.txt"
    listing = (await ws.call("list_files", root, {})).splitlines()
    assert listing == ["new/", "sub/", "a.txt", "new/deep/", "new/deep/c.txt", "sub/b.txt"]
    assert await ws.call("read_file", root, {"path": "new/deep/c.txt"}) == "gamma"


async def test_missing_file_says_what_to_do(root: Path) -> None:
    with pytest.raises(ToolFailure, match=r"does not exist.*list_files"):
        await ws.call("read_file", root, {"path": "nope.txt"})


async def test_huge_file_is_truncated_with_a_note(root: Path) -> None:
    (root / "big.txt").write_text("x" * (ws.MAX_OUTPUT * 10))
    text = await ws.call("read_file", root, {"path": "big.txt"})
    assert len(text) < ws.MAX_OUTPUT + 200
    assert f"the file is {ws.MAX_OUTPUT * 10} bytes" in text


async def test_binary_file_is_reported_not_dumped(root: Path) -> None:
    (root / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(2000))
    assert await ws.call("read_file", root, {"path": "img.png"}) == "[binary file, 2016 bytes: not shown]"


async def test_long_listing_is_truncated(root: Path) -> None:
    for i in range(ws.MAX_ENTRIES + 20):
        (root / f"f{i:04}").write_text("")
    text = await ws.call("list_files", root, {})
    assert text.endswith(f"[… truncated: more than {ws.MAX_ENTRIES} entries]")


async def test_shell_runs_in_the_workspace_without_the_workers_secrets(root: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-1234")
    out = await ws.call("run_shell", root, {"command": "cat a.txt; echo key=${ANTHROPIC_API_KEY:-none}; exit 3"})
    assert out == "exit code 3\nalpha\nkey=none\n"


async def test_shell_timeout_kills_the_command(root: Path) -> None:
    with pytest.raises(ToolFailure, match=r"timed out after 0\.3s"):
        await ws.run_shell(root, "sleep 30", timeout=0.3)
