"""File helpers shared by every layer (no stigmer imports: config, the ground floor, uses them too)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str, mode: int = 0o644, *, fsync: bool = False) -> None:
    """Write ``text`` to ``path`` through a temp file + rename, so readers never see half a file.

    The temp file gets ``mode`` before any byte is written (a secret is never readable by others,
    even for a moment) and is removed if anything fails, so a full disk leaves the old file as it
    was. ``fsync`` makes the content durable before the rename (for files a person edits).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
