"""Built-in workspace tools, confined to the execution's workspace directory.

``workspace``: ``list_files``, ``read_file``, ``write_file``; ``shell`` (opt-in): ``run_shell``.
Every path is resolved (symlinks followed) and must stay inside the workspace: ``..`` that climbs
out, an absolute path elsewhere, a symlink pointing out, a NUL byte or an over-long name is
refused with a :class:`ToolFailure` whose message the model sees, so it can correct itself.
Outputs are bounded: big files and listings are truncated with a note; binary files are
described, not dumped; ``write_file`` refuses content over its limit (:class:`Limits`, which the
runner fills from ``limits.*``).

The shell runs as the user, with the same scrubbed environment as an MCP child (never the runner's
keys), in a sandbox (``_sandbox.py``: user + mount + PID namespaces) where stigmer's home is an empty
directory except for the workspace, and no other process is visible. Where namespaces are refused it
runs with the scrubbed environment only, and the runner logs that once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _sandbox
from ._childenv import scrubbed_env
from .builtin import SCHEMAS, TOOLSETS

__all__ = ["SCHEMAS", "TOOLSETS", "Limits", "ToolFailure", "call", "resolve_path", "truncate"]

MAX_OUTPUT = 64 * 1024
MAX_WRITE = 10 * 1024 * 1024
NOTE = "\n[… truncated: "
"""How every truncation note starts."""
NOTE_ROOM = 200
"""Characters a truncation note may add past a limit."""
MAX_ENTRIES = 500
MAX_PATH = 4096
MAX_NAME = 255
SHELL_TIMEOUT = 120.0


class ToolFailure(Exception):
    """A tool refused or failed; its message goes back to the model as an error result."""


@dataclass(frozen=True)
class Limits:
    """What a model may make the workspace tools hold or write (the runner fills these from ``limits.*``).

    Attributes:
        output_chars: text ``read_file`` returns at most (``limits.tool_output_chars``).
        write_bytes: the largest content ``write_file`` writes (``limits.write_file_bytes``).
    """

    output_chars: int = MAX_OUTPUT
    write_bytes: int = MAX_WRITE


def truncate(text: str, limit: int = MAX_OUTPUT) -> str:
    """``text`` cut to ``limit`` characters, with a note saying how much was left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"{NOTE}{len(text) - limit} more characters not shown]"


def _is_text(value: str) -> bool:
    """False for strings UTF-8 cannot encode (lone surrogates, which JSON lets a model send)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def resolve_path(root: Path, raw: Any) -> Path:
    """``raw`` as a real path inside ``root``, or a ToolFailure saying why not."""
    if not isinstance(raw, str) or not raw:
        raise ToolFailure("path must be a non-empty string")
    if "\x00" in raw:
        raise ToolFailure("path contains a NUL byte")
    if not _is_text(raw):
        raise ToolFailure("path is not valid Unicode text (it holds a lone surrogate); use a plain file name")
    if len(raw) > MAX_PATH or any(len(part.encode()) > MAX_NAME for part in Path(raw).parts):
        raise ToolFailure(f"path is too long (at most {MAX_PATH} characters, {MAX_NAME} per name)")
    base = root.resolve()
    candidate = Path(raw) if os.path.isabs(raw) else base / raw
    try:
        real = candidate.resolve()
    except (OSError, RuntimeError) as exc:  # symlink loops
        raise ToolFailure(f"cannot resolve {raw!r}: {exc}") from None
    if real != base and base not in real.parents:
        raise ToolFailure(f"{raw!r} is outside the workspace; use a path inside it (relative to its root)")
    return real


def _rel(root: Path, path: Path) -> str:
    return str(path.relative_to(root.resolve())) or "."


def list_files(root: Path, path: str = ".") -> str:
    target = resolve_path(root, path)
    if not target.is_dir():
        raise ToolFailure(f"{path!r} is not a directory")
    lines: list[str] = []
    for dirpath, dirnames, filenames in os.walk(target):
        dirnames.sort()
        here = Path(dirpath)
        for name in dirnames:
            lines.append(_rel(root, here / name) + "/")
        for name in sorted(filenames):
            lines.append(_rel(root, here / name))
        if len(lines) > MAX_ENTRIES:
            break
    if not lines:
        return "(empty)"
    note = f"{NOTE}more than {MAX_ENTRIES} entries]" if len(lines) > MAX_ENTRIES else ""
    return "\n".join(lines[:MAX_ENTRIES]) + note


def read_file(root: Path, path: str, limit: int = MAX_OUTPUT) -> str:
    target = resolve_path(root, path)
    if not target.is_file():
        raise ToolFailure(f"{path!r} does not exist or is not a file" + ("" if target.exists() else
                          "; call list_files to see what is there"))
    size = target.stat().st_size
    with open(target, "rb") as fh:
        head = fh.read(limit * 4 + 1)  # at most 4 bytes a character: enough for `limit` characters
    if b"\x00" in head[:8192]:
        return f"[binary file, {size} bytes: not shown]"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the read boundary
            return f"[binary or non-UTF-8 file, {size} bytes: not shown]"
        text = head[:exc.start].decode("utf-8")
    if len(text) > limit or size > len(head):
        return text[:limit] + f"{NOTE}the file is {size} bytes; only the first {limit} characters shown]"
    return text


def write_file(root: Path, path: str, content: Any, limit: int = MAX_WRITE) -> str:
    if not isinstance(content, str):
        raise ToolFailure("content must be a string")
    if not _is_text(content):
        raise ToolFailure("content is not valid Unicode text (it holds a lone surrogate); nothing was written")
    size = len(content) if len(content) > limit else len(content.encode())  # characters <= bytes: skip encoding
    if size > limit:
        raise ToolFailure(f"content is {'at least ' if size == len(content) else ''}{size} bytes; write_file writes at "
                          f"most {limit} bytes (limits.write_file_bytes); nothing was written: write a shorter file")
    target = resolve_path(root, path)
    if target.is_dir():
        raise ToolFailure(f"{path!r} is a directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    # O_NOFOLLOW: a symlink planted at the final name after the check is not followed out of the workspace.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)
    return f"wrote {len(content.encode())} bytes to {_rel(root, target)}"


log = logging.getLogger("stigmer.worker.shell")
_SANDBOX: dict[str, bool] = {}  # "available" once probed: one probe and at most one warning per runner


def _shell_env(root: Path) -> dict[str, str]:
    """The MCP children's scrubbed environment, the workspace as HOME: the worker's keys stay out."""
    return scrubbed_env(HOME=str(root), LANG="C.UTF-8", TERM="dumb")


PRIVATE_DIRS = ("run", "data", "logs", "temporal")
"""Directories of stigmer's home the shell never runs in: the token, the database, logs and histories."""


def _check_workspace(root: Path, home: Path) -> None:
    """Refuse a workspace that is stigmer's home or lies in one of its private directories.

    The sandbox shows the command an empty home with only the workspace mounted back, so any other
    directory under the home is fine; these would bring the token or the database back into view.
    """
    real, home = root.resolve(), home.resolve()
    private = [home / name for name in PRIVATE_DIRS]
    if real == home or any(real == p or p in real.parents for p in private):
        raise ToolFailure(f"the workspace {root} is stigmer's home or one of its private directories "
                          f"({', '.join(PRIVATE_DIRS)}): the shell tool does not run there; use a workspace "
                          "elsewhere (the default is $STIGMER_HOME/workspaces/<agent>)")


async def _sandboxed(root: Path, hidden: Sequence[str], command: str) -> list[str]:
    """The argv that runs ``command`` in the sandbox, or plain bash where this machine cannot build one."""
    if "available" not in _SANDBOX:
        proc = await asyncio.create_subprocess_exec(
            *_sandbox.argv(str(root), hidden, ":", probe=True), env=_shell_env(root), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
        out, err = await proc.communicate()
        _SANDBOX["available"] = proc.returncode == 0
        if proc.returncode != 0:
            reason = err.decode(errors="replace").strip().removeprefix(_sandbox.MARK).strip()
            reason = reason or f"exit {proc.returncode}"
            log.warning("the shell tool runs unsandboxed on this machine (%s): commands get the scrubbed environment "
                        "but can read what this user can, stigmer's home included", reason)
        elif out.strip():
            log.warning("shell sandbox: %s", out.decode(errors="replace").strip())
    if _SANDBOX["available"]:
        return _sandbox.argv(str(root), hidden, command)
    return ["bash", "-c", command]


def _hidden(home: Path, hidden: Sequence[Path]) -> list[str]:
    return [str(Path(p).expanduser().resolve()) for p in (home, *hidden) if p and Path(p).expanduser().exists()]


async def run_shell(root: Path, command: Any, timeout: float = SHELL_TIMEOUT, *, limit: int = MAX_OUTPUT,
                    home: Path | None = None,
                    hidden: Sequence[Path] = ()) -> str:
    """Run ``command`` with bash in the workspace, sandboxed (stigmer's ``home`` and ``hidden`` files unseen)."""
    if not isinstance(command, str) or not command.strip():
        raise ToolFailure("command must be a non-empty string")
    if "\x00" in command:
        raise ToolFailure("command contains a NUL byte")
    home = home if home is not None else _default_home()
    _check_workspace(root, home)
    argv = await _sandboxed(root.resolve(), _hidden(home, hidden), command)
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=root.resolve(), env=_shell_env(root), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError) as exc:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise ToolFailure(f"command timed out after {timeout:g}s and was killed") from None
    text = out.decode("utf-8", errors="replace")
    if proc.returncode == _sandbox.UNAVAILABLE and text.startswith(_sandbox.MARK):
        raise ToolFailure(f"the shell sandbox could not be set up, nothing ran: {text.strip()}")
    return truncate(f"exit code {proc.returncode}\n{text}", limit)


def _default_home() -> Path:
    from ...config.resolve import default_home

    return default_home(os.environ)


async def call(name: str, root: Path, args: dict[str, Any], limits: Limits | None = None, *,
               home: Path | None = None, hidden: Sequence[Path] = ()) -> str:
    """Run built-in tool ``name`` with ``args`` (bad arguments are a ToolFailure, like any refusal).

    ``home`` (default: ``$STIGMER_HOME``) and the ``hidden`` files are what a shell command must not see.
    """
    limits = limits or Limits()
    root.mkdir(parents=True, exist_ok=True)
    try:
        if name == "run_shell":
            return await run_shell(root, args.get("command"), limit=limits.output_chars, home=home, hidden=hidden)
        if name == "list_files":
            return await asyncio.to_thread(list_files, root, str(args.get("path") or "."))
        if name == "read_file":
            return await asyncio.to_thread(read_file, root, args.get("path"), limits.output_chars)  # type: ignore[arg-type]
        if name == "write_file":
            return await asyncio.to_thread(write_file, root, args.get("path"), args.get("content"),  # type: ignore[arg-type]
                                           limits.write_bytes)
    except OSError as exc:
        raise ToolFailure(f"{name} failed: {exc.strerror or exc}") from None
    raise ToolFailure(f"unknown tool {name!r}")
