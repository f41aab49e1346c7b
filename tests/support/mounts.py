"""Small real filesystems for fault tests: a full disk (tiny tmpfs) and a read-only home (ro bind mount).

Both need mount privileges (root, as on the dev machines and CI here). Where the machine refuses a
mount, the fixture says so and the test is skipped with that reason: the check needs the capability,
not a workaround.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"this machine refuses mounts ({result.stderr.strip()}); disk-full/read-only need them")


@contextmanager
def tiny_tmpfs(path: Path, size: str = "256k") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path``: fill it to get ENOSPC."""
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """``path`` made read-only in place by a read-only bind mount over itself."""
    _mount("--bind", str(path), str(path))
    try:
        _mount("-o", "remount,bind,ro", str(path))
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> None:
    """Fill the filesystem holding ``path`` until it is full."""
    handle = open(path / ".filler", "wb", buffering=0)  # noqa: SIM115
    try:
        while True:
            handle.write(b"\0" * 4096)
    except OSError:
        pass
    finally:
        handle.close()
