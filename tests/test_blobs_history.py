"""On a real Temporal dev server: a 200 KB activity result leaves history as a reference and still reads back."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from stigmer.blobs.codec import ENCODING
from tests.support.blob_workflows import LargeValueWorkflow, make_large
from tests.support.codec import codec_client

SIZE = 200 * 1024


async def test_a_200kb_activity_result_is_a_small_reference_in_history_and_the_full_value_with_the_codec(
        temporal_server: Any, stigmer_home: Path) -> None:
    client = await codec_client(temporal_server.address)
    queue, workflow_id = f"blob-{uuid.uuid4().hex[:8]}", f"stigmer-exec-blob-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[LargeValueWorkflow], activities=[make_large]):
        result = await client.execute_workflow(LargeValueWorkflow.run, SIZE, id=workflow_id, task_queue=queue)
    assert len(result) == SIZE and result.startswith("0123456789abcdef")

    plain = await Client.connect(temporal_server.address)  # no codec: what Temporal itself holds
    history = await plain.get_workflow_handle(workflow_id).fetch_history()
    completed = [e.activity_task_completed_event_attributes.result.payloads[0] for e in history.events
                 if e.HasField("activity_task_completed_event_attributes")]
    assert len(completed) == 1
    assert completed[0].metadata["encoding"] == ENCODING and completed[0].ByteSize() < 1024
    assert max(e.ByteSize() for e in history.events) < 2048  # no event carries the value itself
    assert "0123456789abcdef" * 64 not in history.to_json()

    # a client with the codec reads the full value from the same history
    fetched = await client.get_workflow_handle(workflow_id).result()
    assert fetched == result
    folder = stigmer_home / "blobs" / workflow_id
    blobs = [p for p in folder.rglob("*") if p.is_file()]
    assert blobs and all(p.stat().st_size > SIZE for p in blobs)
