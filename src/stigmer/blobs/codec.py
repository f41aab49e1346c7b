"""The claim-check payload codec: large payloads go to the blob store, history keeps a ~150-byte reference.

Every payload the SDK sends to Temporal passes through :class:`BlobCodec.encode`. One whose serialized size is at
least ``blobs.threshold`` bytes (default 4096) is written to the blob store under the namespace of the workflow that
owns it, and replaced by a reference payload: metadata ``encoding: binary/stigmer-blob``, data the JSON
``{"ns": ..., "key": ..., "size": ..., "store": ...}``. ``decode`` turns references back into the original payload
and passes every other payload through untouched, so histories written before the codec (or by a client without
it) still decode. Below the threshold there is no I/O at all: a size check per payload.

The namespace is the workflow id, from the SDK's serialization context (``WithSerializationContext``): a workflow's
input, an activity's input and result, a signal, a query answer all carry the id of the workflow they belong to,
so deleting an execution can delete its blobs. Without a context (a payload not tied to one workflow) the blob goes
to ``_shared``. The reference carries its namespace, so decoding needs no context, and the codec server can decode
a reference the web UI shows it.

Why a PayloadCodec and not the SDK's ``ExternalStorage``/``StorageDriver`` (``temporalio.converter._extstore``):
that API is marked experimental in temporalio 1.35 and its reference format is still moving (the SDK does not yet
write codec-encoded references, by its own flag); and Temporal's web UI and CLI read history through the
codec-server protocol, which applies a *codec*: with the claim check in the codec, the codec server that shows
plain data is this same ``decode``, while external-storage references would need the SDK's retrieval step copied
into the server. The codec runs on the worker outside the workflow sandbox (workflow activations are decoded
before the sandbox sees them), like external storage would; what we give up is its per-task concurrency limit and
metrics, which a 4 KB threshold and content-addressed puts make cheap to do without.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)

from .store import BlobMissing, BlobStore, configured_store

ENCODING = b"binary/stigmer-blob"
SHARED = "_shared"
"""The namespace of payloads that belong to no one workflow (no serialization context)."""


class BlobReferenceMissing(BlobMissing):
    """A reference in history names a blob the store does not have."""


def is_reference(payload: Payload) -> bool:
    return payload.metadata.get("encoding") == ENCODING


def namespace_of(context: SerializationContext | None) -> str:
    """The workflow id a payload belongs to, from the SDK's serialization context; ``_shared`` without one."""
    if isinstance(context, (WorkflowSerializationContext, ActivitySerializationContext)) and context.workflow_id:
        return context.workflow_id
    return SHARED


class BlobCodec(PayloadCodec, WithSerializationContext):
    """Claim check over a :class:`~.store.BlobStore`: payloads of ``threshold`` bytes or more leave history.

    Args:
        store: where blobs go; shared by every copy :meth:`with_context` makes.
        threshold: the serialized size (bytes) from which a payload is stored externally.
        namespace: the owning workflow id (set by :meth:`with_context`).
    """

    def __init__(self, store: BlobStore, threshold: int, namespace: str = SHARED) -> None:
        self.store = store
        self.threshold = threshold
        self.namespace = namespace

    def with_context(self, context: SerializationContext) -> BlobCodec:
        return BlobCodec(self.store, self.threshold, namespace_of(context))

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        threshold = self.threshold
        if all(p.ByteSize() < threshold for p in payloads):  # the common case: no copy, no I/O
            return list(payloads)
        return [await self._store(p) if p.ByteSize() >= threshold else p for p in payloads]

    async def _store(self, payload: Payload) -> Payload:
        data = payload.SerializeToString(deterministic=True)
        key = await self.store.put(self.namespace, data)
        ref = {"ns": self.namespace, "key": key, "size": len(data), "store": self.store.url}
        return Payload(metadata={"encoding": ENCODING}, data=json.dumps(ref, separators=(",", ":")).encode())

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if not any(is_reference(p) for p in payloads):
            return list(payloads)
        return [await self.fetch(p) if is_reference(p) else p for p in payloads]

    async def fetch(self, reference: Payload) -> Payload:
        """The payload a reference stands for; :class:`BlobReferenceMissing` naming the blob, store and cause."""
        ref = parse_reference(reference)
        try:
            data = await self.store.get(ref["ns"], ref["key"])
        except BlobMissing:
            raise BlobReferenceMissing(missing_message(ref, self.store.url)) from None
        return Payload.FromString(data)


def parse_reference(payload: Payload) -> dict[str, Any]:
    try:
        ref = json.loads(payload.data)
        if isinstance(ref, dict) and isinstance(ref.get("ns"), str) and isinstance(ref.get("key"), str):
            return ref
    except ValueError:
        pass
    raise BlobReferenceMissing(f"a {ENCODING.decode()} payload is not a blob reference ({len(payload.data)} bytes)")


def missing_message(ref: dict[str, Any], store_url: str) -> str:
    written = ref.get("store")
    where = f"; it was written to {written}" if written and written != store_url else ""
    return (f"blob {ref['key']} of {ref['ns']} ({ref.get('size', '?')} bytes) is not in the blob store {store_url}"
            f"{where}. Likely causes: the execution that owns it was deleted (`stigmer execution delete`, "
            f"retention.executions) while something still reads its history, or this process uses another "
            f"blob store than the one that wrote it: every runner and the API must share one blobs.url "
            f"(s3://... for several machines)")


def blob_codec(cfg: Any) -> BlobCodec:
    """The codec a resolved configuration asks for (``blobs.url``, ``blobs.threshold``, ``blobs.s3_endpoint``)."""
    return BlobCodec(configured_store(cfg), int(cfg.blobs.threshold))


def data_converter(cfg: Any, codec: PayloadCodec | None = None) -> DataConverter:
    """The SDK's default data converter with the claim-check codec: what every stigmer client uses."""
    return replace(DataConverter.default, payload_codec=codec or blob_codec(cfg))
