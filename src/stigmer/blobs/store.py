"""The blob store interface and its local implementation (files, atomic writes, 0600).

A blob is addressed by ``(namespace, key)``: the namespace is the workflow id that owns it, the key the
SHA-256 of its bytes, so writing the same bytes twice is one file and a retried activity or codec call
never leaves a second copy. Reads check nothing but presence: the key is verified on write.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class BlobMissing(LookupError):
    """A referenced blob is not in the store (deleted with its execution, or another store configured)."""


def blob_key(data: bytes) -> str:
    """The key a blob is stored under: the SHA-256 of its bytes, in hex."""
    return hashlib.sha256(data).hexdigest()


def safe_namespace(namespace: str) -> str:
    """A namespace as one path segment: characters outside ``[A-Za-z0-9._-]`` become ``_`` (ids already are)."""
    cleaned = _UNSAFE.sub("_", namespace or "_") or "_"
    return "_" + cleaned if cleaned.startswith(".") else cleaned


class BlobStore(ABC):
    """Where blobs live. ``put`` is idempotent; ``delete_namespace`` removes what one workflow wrote."""

    url: str

    @abstractmethod
    async def put(self, namespace: str, data: bytes) -> str:
        """Store ``data`` under ``namespace``; returns its key."""

    @abstractmethod
    async def get(self, namespace: str, key: str) -> bytes:
        """The bytes stored under ``(namespace, key)``; :class:`BlobMissing` when there are none."""

    @abstractmethod
    async def delete_namespace(self, namespace: str) -> int:
        """Delete every blob of ``namespace``; returns how many went."""

    async def aclose(self) -> None:  # noqa: B027 - most stores hold nothing to close
        """Release what the store holds (connections)."""


class LocalBlobStore(BlobStore):
    """Files under ``root``: ``root/<namespace>/<key>``, written atomically (temp file + rename), 0600.

    One folder per namespace (an execution or a session: hundreds to thousands of blobs, which a file system's
    indexed folders hold well). Stores written before 2026-12-03 put a blob one level down, in ``<key[:2]>/``;
    those are still read (``get_sync``). A namespace's first blob creates its folder; a ``<key[:2]>`` level cost
    every execution a folder per blob (about 0.3 ms per model call, bench/bench_runner.py)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = self.root.as_uri()

    def _path(self, namespace: str, key: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", key):
            raise BlobMissing(f"not a blob key: {key[:80]!r}")
        return self.root / safe_namespace(namespace) / key

    def put_sync(self, namespace: str, data: bytes) -> str:
        key = blob_key(data)
        path = self._path(namespace, key)
        if os.path.exists(path):
            return key
        try:  # mkstemp creates the file 0600
            fd, tmp = tempfile.mkstemp(prefix=".blob.", suffix=".tmp", dir=path.parent)
        except FileNotFoundError:  # the namespace's first blob
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(prefix=".blob.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return key

    def get_sync(self, namespace: str, key: str) -> bytes:
        path = self._path(namespace, key)
        for where in (path, path.parent / key[:2] / key):  # today's place, then the one before 2026-12-03
            try:
                return where.read_bytes()
            except FileNotFoundError:
                continue
        raise BlobMissing(f"blob {key[:12]}… of {namespace} is not in {self.url}")

    async def put(self, namespace: str, data: bytes) -> str:
        if len(data) > 1 << 20:  # a large write goes to a thread, so the event loop keeps serving heartbeats
            return await asyncio.to_thread(self.put_sync, namespace, data)
        return self.put_sync(namespace, data)

    async def get(self, namespace: str, key: str) -> bytes:
        return self.get_sync(namespace, key)

    async def delete_namespace(self, namespace: str) -> int:
        folder = self.root / safe_namespace(namespace)
        if not folder.is_dir():
            return 0
        count = sum(1 for p in folder.rglob("*") if p.is_file())
        await asyncio.to_thread(shutil.rmtree, folder, True)
        return count


def open_store(url: str | None, home: Path, *, s3_endpoint: str | None = None) -> BlobStore:
    """The store ``url`` names: empty or ``file://PATH`` for local files (default ``home/blobs``), or
    ``s3://BUCKET/PREFIX`` for an S3-compatible bucket (at ``s3_endpoint``; else the AWS SDK's own endpoint)."""
    if not url:
        return LocalBlobStore(Path(home) / "blobs")
    if url.startswith("file://"):
        return LocalBlobStore(Path(url[len("file://"):]).expanduser())
    if url.startswith("s3://"):
        from .s3 import S3BlobStore

        return S3BlobStore(url, endpoint=s3_endpoint)
    raise ValueError(f"blobs.url: unsupported store {url.split(':', 1)[0]!r} (use file:///PATH or s3://BUCKET/PREFIX)")


def configured_store(cfg: Any) -> BlobStore:
    """The store a resolved configuration names (``blobs.url``, ``blobs.s3_endpoint``, ``home``)."""
    blobs = cfg.blobs
    return open_store(blobs.url, cfg.home, s3_endpoint=blobs.s3_endpoint)
