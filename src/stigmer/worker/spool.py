"""Events on a runner's disk: the spool file of a backlog, and the files an earlier life left behind.

A spool file is JSON lines (0600), one event a line, named ``events-<ns>-<pid>.jsonl`` so files sort
oldest first and two runners sharing one ``$STIGMER_HOME`` never write the same file.

Where the files go depends on who delivers them after the runner stops:

- a runner the local daemon started (``STIGMER_MANAGED_RUNNER=1``) spools to ``data/event-spool/``
  itself; the daemon stores those files when it starts (``daemon.events.ingest_spool``) and the runner
  never re-sends them (two deliverers would race for the same file);
- any other runner (``stigmer runner --server URL``, a runner on another machine) spools to
  ``data/event-spool/<host_port>-<hash>/``, one directory per server, which the daemon does not read:
  the runner delivers what is there itself when it starts again (:class:`Leftovers`). A runner never
  sends one server's events to another.

A runner that may re-send holds an exclusive ``flock`` on ``events-<ns>-<pid>.lock`` for as long as it
writes its spool file; a runner re-sending takes the same lock first (without waiting), so it skips the
file of a runner that is still alive, and two runners starting at once never deliver the same file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

log = logging.getLogger("stigmer.events")

SPOOL_DIR = "event-spool"  # under $STIGMER_HOME/data
_PATTERN = "events-*.jsonl"


def server_spool_dir(base: Path, url: str) -> Path:
    """The spool directory of a runner that posts to ``url`` and re-sends its own spool (``base``/host_port-hash)."""
    url = url.rstrip("/")
    netloc = urlsplit(url).netloc.rsplit("@", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9.-]+", "_", netloc).strip("_") or "server"
    return base / f"{name}-{hashlib.sha256(url.encode()).hexdigest()[:10]}"


def parse(line: str | bytes) -> dict[str, Any] | None:
    """One spooled event, or None for a line cut short by a kill (or anything else that is not an event)."""
    try:
        item = json.loads(line)
    except ValueError:
        return None
    return item if isinstance(item, dict) and "execution_id" in item and "type" in item else None


def _lines(events: list[dict[str, Any]]) -> list[bytes]:
    # ASCII-escaped JSON: text a model produced may hold lone surrogates, which UTF-8 cannot carry.
    return [(json.dumps(item, default=str) + "\n").encode("ascii") for item in events]


class SpoolFile:
    """One sink's backlog on disk. Appends are whole lines; ``rewrite`` replaces the file atomically.

    ``size`` and ``lines`` say what this process wrote (the sink keeps byte offsets into the file);
    ``lock`` makes it hold ``<name>.lock`` while the file may exist (see the module docstring).
    """

    def __init__(self, directory: Path, *, lock: bool = False) -> None:
        self.directory = directory
        self.path = directory / f"events-{time.time_ns()}-{os.getpid()}.jsonl"
        self.size = self.lines = 0
        self._locking, self._lock_fd = lock, -1

    def append(self, events: list[dict[str, Any]]) -> list[int]:
        """Add ``events``; returns the offset of each one's line."""
        data = _lines(events)
        starts, at = [], self.size
        for line in data:
            starts.append(at)
            at += len(line)
        self._prepare()
        try:
            self._write(self.path, os.O_APPEND, data)
        except OSError:
            with contextlib.suppress(OSError):  # a part may have been written (disk full): count what is there
                self.size = self.path.stat().st_size
            raise
        self.size, self.lines = at, self.lines + len(events)
        return starts

    def rewrite(self, head: list[dict[str, Any]], tail_from: int | None = None) -> int:
        """Replace the file with ``head``, then (when ``tail_from`` is given) the old file from that offset on.

        Returns where the copied tail starts in the new file. A reader sees the old file or the new one.
        """
        self._prepare()
        data = _lines(head)
        partial = self.path.with_suffix(".partial")
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        self._write(partial, os.O_EXCL, data)
        start = sum(len(line) for line in data)
        size, copied = start, 0
        if tail_from is not None:
            with open(self.path, "rb") as old, open(partial, "ab") as new:
                old.seek(tail_from)
                for chunk in iter(lambda: old.read(1 << 20), b""):
                    new.write(chunk)
                    copied += chunk.count(b"\n")
                size = new.tell()
        os.replace(partial, self.path)
        self.size, self.lines = size, len(head) + copied
        return start

    def read_from(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int, int]:
        """Up to ``limit`` lines from ``offset``: ``(events, offset after them, lines read)``."""
        events: list[dict[str, Any]] = []
        read = 0
        with open(self.path, "rb") as spool:
            spool.seek(offset)
            while read < limit:
                line = spool.readline()
                if not line:
                    break
                read += 1
                item = parse(line)
                if item is not None:
                    events.append(item)
            return events, spool.tell(), read

    def clear(self) -> None:
        """Remove the file (its events were delivered); the lock stays: the sink may spool again."""
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)
        self.size = self.lines = 0

    def release(self) -> None:
        """The runner stops: let a later runner take the file (if one is left)."""
        if self._lock_fd >= 0:
            with contextlib.suppress(OSError):
                self.path.with_suffix(".lock").unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self._locking and self._lock_fd < 0:
            self._lock_fd = _try_lock(self.path.with_suffix(".lock"))
            if self._lock_fd < 0:  # our own name: only a clock gone backwards could make it taken
                raise OSError(f"{self.path.with_suffix('.lock')} is held by another process")

    @staticmethod
    def _write(path: Path, flag: int, data: list[bytes]) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | flag, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(b"".join(data))


def _try_lock(path: Path) -> int:
    """An open fd holding the exclusive lock on ``path`` (created 0600), or -1 when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return -1
    return fd


class Leftovers:
    """The spool files an earlier life of this runner (or another runner, now gone) left for the same server.

    Listed once, when the runner starts; delivered oldest first, ``batch`` events at a time: the sink posts
    :meth:`next_batch` until the server takes it, then calls :meth:`ack`. A file is removed once all of it
    was taken; a runner killed half-way sends the whole file again next time (the server keeps each event
    ``id`` once). A file whose lock is held belongs to a runner still running: it is left to that runner.
    """

    def __init__(self, directory: Path, batch: int) -> None:
        self.directory, self._size = directory, batch
        self._paths = deque(sorted(directory.glob(_PATTERN))) if directory.is_dir() else deque()
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._lock_fd = -1
        self._batch: list[dict[str, Any]] = []
        self.delivered = 0

    def count(self) -> int:
        """How many events the files hold (lines; read once, for the log)."""
        total = 0
        for path in self._paths:
            with contextlib.suppress(OSError), open(path, "rb") as spool:
                while chunk := spool.read(1 << 20):
                    total += chunk.count(b"\n")
        return total

    def pending(self) -> bool:
        return bool(self._batch or self._file is not None or self._paths)

    def next_batch(self) -> list[dict[str, Any]] | None:
        """The events to post now (the same ones again until :meth:`ack`), or None when every file is done."""
        while not self._batch:
            if self._file is None and not self._open_next():
                return None
            assert self._file is not None
            for line in self._file:
                item = parse(line)
                if item is not None:
                    self._batch.append(item)
                    if len(self._batch) >= self._size:
                        break
            else:
                if not self._batch:
                    self._done()
        return self._batch

    def ack(self) -> None:
        """The server took the current batch (stored it, or refused it for good)."""
        self.delivered += len(self._batch)
        self._batch = []

    def stop(self) -> None:
        """Leave what is not delivered on disk, for the next start (the runner stops, or its token is refused)."""
        self._paths.clear()
        self._batch = []
        self._close()

    def _open_next(self) -> bool:
        while self._paths:
            path = self._paths.popleft()
            fd = _try_lock(path.with_suffix(".lock"))
            if fd < 0:
                log.info("%s belongs to a runner that is still running: left to it", path.name)
                continue
            self._path, self._lock_fd = path, fd
            try:
                self._file = open(path, "rb")  # noqa: SIM115 - read batch by batch, closed in _close
            except OSError:  # delivered by another runner meanwhile
                self._done()
                continue
            return True
        return False

    def _done(self) -> None:
        """The current file is delivered: remove it, then its lock."""
        if self._path is not None:
            with contextlib.suppress(OSError):
                self._path.unlink(missing_ok=True)
                self._path.with_suffix(".lock").unlink(missing_ok=True)
        self._close()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
        self._path = None


def read_spool(directory: Path) -> Iterator[tuple[Path, list[dict[str, Any]]]]:
    """Each spool file in ``directory`` (not its subdirectories), oldest first, with its events (bad lines skipped)."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob(_PATTERN)):
        try:
            lines = path.read_bytes().splitlines()
        except OSError as exc:
            log.warning("cannot read the event spool %s: %s", path, exc)
            continue
        yield path, [item for item in map(parse, lines) if item is not None]
