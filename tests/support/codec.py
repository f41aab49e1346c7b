"""Temporal clients for tests, with the claim-check codec a runner uses (over this test's ``$STIGMER_HOME/blobs``).

A runner stores payloads of ``blobs.threshold`` bytes or more (a large result, a long conversation) in the blob
store and writes only a reference into history; a test client without the same codec would read the reference,
not the value. Tests that start workflows for a runner connect with :func:`codec_client`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from temporalio.client import Client

from stigmer.blobs.codec import BlobCodec, data_converter
from stigmer.blobs.store import LocalBlobStore

DEFAULT_THRESHOLD = 4096


def local_codec(home: Path | None = None, threshold: int = DEFAULT_THRESHOLD) -> BlobCodec:
    """The codec a runner with the default ``blobs.*`` settings uses under ``home`` (default ``$STIGMER_HOME``)."""
    root = Path(home or os.environ["STIGMER_HOME"]) / "blobs"
    return BlobCodec(LocalBlobStore(root), threshold)


async def codec_client(address: str, home: Path | None = None, **kwargs: Any) -> Client:
    """A client of ``address`` that encodes and decodes payloads as the runners do."""
    return await Client.connect(address, data_converter=data_converter(None, local_codec(home)), **kwargs)
