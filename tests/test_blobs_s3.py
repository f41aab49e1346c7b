"""The S3 blob store against a real S3-compatible HTTP endpoint (moto's server mode on loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.converter import WorkflowSerializationContext

from stigmer.blobs.codec import BlobCodec, BlobReferenceMissing, blob_codec, is_reference
from stigmer.blobs.s3 import S3BlobStore
from stigmer.blobs.store import BlobMissing, blob_key
from stigmer.config import resolve
from tests.support.s3 import SECRET_KEY, S3Server, s3_server  # noqa: F401  (fixture)


def _store(s3: S3Server, prefix: str = "team/stigmer") -> S3BlobStore:
    return S3BlobStore(f"s3://{s3.bucket}/{prefix}", endpoint=s3.endpoint)


async def test_put_get_and_delete_namespace_on_an_s3_endpoint(s3_server: S3Server) -> None:  # noqa: F811
    store = _store(s3_server)
    data = b"\x00large blob\xff" * 10_000
    key = await store.put("stigmer-exec-a", data)
    assert key == blob_key(data)
    assert await store.put("stigmer-exec-a", data) == key  # idempotent: one object
    await store.put("stigmer-exec-b", b"other")
    assert sorted(s3_server.object_keys()) == sorted([f"team/stigmer/stigmer-exec-a/{key}",
                                               f"team/stigmer/stigmer-exec-b/{blob_key(b'other')}"])
    assert await store.get("stigmer-exec-a", key) == data
    assert await store.delete_namespace("stigmer-exec-a") == 1
    assert s3_server.object_keys() == [f"team/stigmer/stigmer-exec-b/{blob_key(b'other')}"]
    with pytest.raises(BlobMissing, match=f"s3://{s3_server.bucket}/team/stigmer"):
        await store.get("stigmer-exec-a", key)


async def test_delete_namespace_removes_more_than_one_page_and_not_a_namespace_sharing_its_prefix(
        s3_server: S3Server) -> None:  # noqa: F811
    store = _store(s3_server, prefix="")
    raw = s3_server.client()
    for i in range(1005):  # two pages of list_objects_v2, two delete_objects calls
        raw.put_object(Bucket=s3_server.bucket, Key=f"stigmer-exec-many/{blob_key(str(i).encode())}", Body=b"")
    await store.put("stigmer-exec-many2", b"keep me")
    assert await store.delete_namespace("stigmer-exec-many") == 1005
    assert s3_server.object_keys() == [f"stigmer-exec-many2/{blob_key(b'keep me')}"]


async def test_the_codec_round_trips_through_s3_configured_by_url(s3_server: S3Server, tmp_path: Path) -> None:  # noqa: F811
    cfg = resolve(env={"STIGMER_HOME": str(tmp_path), "STIGMER_LLM_PROVIDER": "ollama",
                       "STIGMER_BLOBS_URL": f"s3://{s3_server.bucket}/runs",
                       "STIGMER_BLOBS_S3_ENDPOINT": s3_server.endpoint})
    context = WorkflowSerializationContext(namespace="default", workflow_id="stigmer-exec-s3")
    codec = blob_codec(cfg).with_context(context)
    big = Payload(metadata={"encoding": b"json/plain"}, data=b'"' + b"s" * 200_000 + b'"')
    (ref,) = await codec.encode([big])
    assert is_reference(ref) and ref.ByteSize() < 1024
    assert SECRET_KEY.encode() not in ref.SerializeToString()
    assert [k.split("/")[:2] for k in s3_server.object_keys()] == [["runs", "stigmer-exec-s3"]]
    assert await BlobCodec(codec.store, 4096).decode([ref]) == [big]
    await codec.store.delete_namespace("stigmer-exec-s3")
    with pytest.raises(BlobReferenceMissing, match="runs"):
        await codec.decode([ref])
    assert not (tmp_path / "blobs").exists()  # nothing went to the local folder
