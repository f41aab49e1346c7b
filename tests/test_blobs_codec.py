"""The claim-check codec on its own: what leaves history, what comes back, and what a missing blob says."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.converter import ActivitySerializationContext, DataConverter, WorkflowSerializationContext

from stigmer.blobs import BlobMissing
from stigmer.blobs.codec import ENCODING, SHARED, BlobCodec, BlobReferenceMissing, data_converter, is_reference
from stigmer.blobs.store import LocalBlobStore, blob_key, open_store
from stigmer.config import resolve
from stigmer.errors import ConfigError


def _codec(tmp_path: Path, threshold: int = 4096, workflow_id: str = "stigmer-exec-e1") -> BlobCodec:
    context = WorkflowSerializationContext(namespace="default", workflow_id=workflow_id)
    return BlobCodec(LocalBlobStore(tmp_path / "blobs"), threshold).with_context(context)


def _payload(value: object) -> Payload:
    return DataConverter.default.payload_converter.to_payloads([value])[0]


async def test_small_payloads_pass_through_untouched_and_write_nothing(tmp_path: Path) -> None:
    codec = _codec(tmp_path)
    small = _payload("x" * 100)
    assert small.ByteSize() < 4096
    (encoded,) = await codec.encode([small])
    assert encoded is small
    assert not (tmp_path / "blobs").exists()
    assert await codec.decode([encoded]) == [small]


async def test_a_payload_at_the_threshold_leaves_as_a_small_reference_and_comes_back(tmp_path: Path) -> None:
    codec = _codec(tmp_path, threshold=1024)
    big = _payload("y" * 200_000)
    exact = Payload(metadata={"encoding": b"binary/plain"}, data=b"z" * (1024 - 29))
    below = Payload(metadata={"encoding": b"binary/plain"}, data=b"z" * (1023 - 29))
    assert (exact.ByteSize(), below.ByteSize()) == (1024, 1023)  # "at or above the threshold" leaves history
    encoded = await codec.encode([big, exact, below])
    assert [is_reference(p) for p in encoded] == [True, True, False]
    assert all(p.ByteSize() < 300 for p in encoded[:2])
    ref = json.loads(encoded[0].data)
    assert ref["ns"] == "stigmer-exec-e1" and ref["size"] == len(big.SerializeToString())
    assert (tmp_path / "blobs" / "stigmer-exec-e1" / ref["key"]).is_file()
    decoded = await codec.decode(encoded)
    assert decoded[0] == big and decoded[1] == exact
    assert DataConverter.default.payload_converter.from_payloads([decoded[0]])[0] == "y" * 200_000


async def test_puts_are_idempotent_and_blob_files_are_private(tmp_path: Path) -> None:
    codec = _codec(tmp_path)
    big = _payload("same bytes " * 1000)
    first, second = await codec.encode([big]), await codec.encode([big])
    assert first == second
    files = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600


async def test_blobs_stored_in_the_earlier_layout_are_still_read(tmp_path: Path) -> None:
    """Stores written before 2026-12-03 kept a blob one folder down (``<namespace>/<key[:2]>/<key>``)."""
    store = LocalBlobStore(tmp_path / "blobs")
    key = await store.put("wf-1", b"today")
    assert (tmp_path / "blobs" / "wf-1" / key).read_bytes() == b"today"
    old = blob_key(b"before")
    (tmp_path / "blobs" / "wf-1" / old[:2]).mkdir()
    (tmp_path / "blobs" / "wf-1" / old[:2] / old).write_bytes(b"before")
    assert await store.get("wf-1", old) == b"before" and await store.get("wf-1", key) == b"today"
    with pytest.raises(BlobMissing, match="is not in"):
        await store.get("wf-1", blob_key(b"never stored"))


async def test_the_namespace_is_the_owning_workflow_from_the_serialization_context(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    base = BlobCodec(store, 1024)
    activity = ActivitySerializationContext(namespace="default", activity_id="1", activity_type="call_model",
                                            activity_task_queue="q", workflow_id="stigmer-session-s1",
                                            workflow_type="SessionWorkflow", is_local=False)
    big = _payload("a" * 5000)
    (by_activity,) = await base.with_context(activity).encode([big])
    (no_context,) = await base.encode([big])
    assert json.loads(by_activity.data)["ns"] == "stigmer-session-s1"
    assert json.loads(no_context.data)["ns"] == SHARED
    # the reference carries its namespace: a codec with no (or another) context decodes it
    assert await base.decode([by_activity]) == [big]


async def test_a_missing_blob_names_the_blob_the_store_and_the_likely_cause(tmp_path: Path) -> None:
    codec = _codec(tmp_path)
    (ref,) = await codec.encode([_payload("b" * 10_000)])
    await codec.store.delete_namespace("stigmer-exec-e1")
    with pytest.raises(BlobReferenceMissing) as caught:
        await codec.decode([ref])
    message = str(caught.value)
    key = json.loads(ref.data)["key"]
    assert key in message and "stigmer-exec-e1" in message
    assert (tmp_path / "blobs").as_uri() in message
    assert "deleted" in message and "blobs.url" in message


async def test_payloads_written_before_the_codec_still_decode(tmp_path: Path) -> None:
    legacy = [_payload({"conversation": ["m"] * 3000}), Payload(metadata={"encoding": b"json/plain"}, data=b"1"),
              Payload(metadata={"encoding": b"binary/null"})]
    assert await _codec(tmp_path).decode(legacy) == legacy


async def test_the_converter_round_trips_values_through_the_codec(tmp_path: Path) -> None:
    converter = data_converter(None, _codec(tmp_path))
    payloads = await converter.encode(["q" * 50_000, 7])
    assert is_reference(payloads[0]) and not is_reference(payloads[1])
    assert await converter.decode(payloads, [str, int]) == ["q" * 50_000, 7]


def test_blob_settings_resolve_with_provenance_and_bad_values_name_the_key(tmp_path: Path) -> None:
    env = {"STIGMER_HOME": str(tmp_path), "STIGMER_BLOBS_URL": "s3://team-blobs/stigmer",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "STIGMER_LLM_PROVIDER": "ollama"}
    cfg = resolve(env=env)
    assert (cfg.blobs.url, cfg.blobs.threshold, cfg.blobs.s3_endpoint) == (
        "s3://team-blobs/stigmer", 4096, "http://127.0.0.1:9000")
    assert cfg.shown()["blobs.s3_endpoint"]["origin"] == "AWS_ENDPOINT_URL"
    assert cfg.shown()["blobs.threshold"]["source"] == "default"
    for name, value, words in (("STIGMER_BLOBS_THRESHOLD", "12", "256"),
                               ("STIGMER_BLOBS_URL", "s3://AKIAX:hunter2@bucket/p", "credentials"),
                               ("STIGMER_BLOBS_URL", "ftp://host/x", "file:///PATH")):
        with pytest.raises(ConfigError) as caught:
            resolve(env={**env, name: value})
        text = f"{caught.value} {caught.value.hint}"
        assert name in text and words in text
        assert "hunter2" not in text


def test_an_empty_url_is_the_home_blob_folder(tmp_path: Path) -> None:
    store = open_store("", tmp_path)
    assert isinstance(store, LocalBlobStore) and store.root == tmp_path / "blobs"


def test_the_reference_encoding_is_stable() -> None:
    assert ENCODING == b"binary/stigmer-blob"  # written into histories: changing it strands every old reference
