"""A full disk and a read-only home: `config set` fails clearly and leaves the file as it was."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import stigmer
from tests.support.mounts import fill, read_only, tiny_tmpfs


def test_config_set_on_a_full_disk(tmp_path: Path) -> None:
    with tiny_tmpfs(tmp_path / "home") as home:
        (home / "config.yaml").write_text("llm:\n  model: keep:me\n")
        fill(home)
        out = stigmer("config", "set", "llm.provider", "ollama", env={"STIGMER_HOME": str(home)})
        assert out.returncode == 2, out
        assert "cannot write config file" in out.stderr and "not changed" in out.stderr
        assert "Traceback" not in out.stderr
        assert (home / "config.yaml").read_text() == "llm:\n  model: keep:me\n"
        assert [p.name for p in home.iterdir() if p.name.startswith(".config.")] == []


def test_config_set_on_a_read_only_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text("llm:\n  model: keep:me\n")
    with read_only(home):
        out = stigmer("config", "set", "llm.provider", "ollama", env={"STIGMER_HOME": str(home)})
        assert out.returncode == 2, out
        assert "Read-only file system" in out.stderr and "Traceback" not in out.stderr
        shown = stigmer("config", "show", env={"STIGMER_HOME": str(home)})
        assert shown.returncode == 0 and "keep:me" in shown.stdout
    assert (home / "config.yaml").read_text() == "llm:\n  model: keep:me\n"
