"""The runner's workflow sandbox: the SDK's, with its glue code compiled once (``stigmer.worker._sandbox``).

Saved histories replay under it (tests/test_history_replay.py replays every one with this runner), the sandbox
still refuses what a
workflow must not do, and with the SDK this project pins the faster instance is the one in use (were the SDK's
internals to change, the runner would fall back silently and every execution would cost more CPU).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from temporalio import workflow

from stigmer.worker import _sandbox
from stigmer.worker.main import _workflow_runner


def test_the_compiled_once_instance_is_in_use_with_this_sdk() -> None:
    runner = _workflow_runner()
    assert type(runner).__name__ == "Runner"
    assert _sandbox._instance_class() is not None


@workflow.defn(name="SandboxProbe")
class _Probe:
    @workflow.run
    async def run(self) -> str:
        import datetime

        return str(datetime.date.today())  # reading the clock: the sandbox must refuse it


async def test_the_sandbox_still_refuses_a_nondeterministic_call(temporal_server: Any) -> None:
    """The workflow task fails with the sandbox's error (and is retried), as under the SDK's own runner."""
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client
    from temporalio.worker import Worker

    client = await Client.connect(temporal_server.address)
    queue = f"sandbox-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[_Probe], workflow_runner=_workflow_runner()):
        handle = await client.start_workflow("SandboxProbe", id=f"probe-{uuid.uuid4().hex}", task_queue=queue,
                                             execution_timeout=timedelta(seconds=30))
        failure = ""
        for _ in range(100):
            history = await handle.fetch_history()
            failed = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
            if failed:
                failure = failed[0].workflow_task_failed_event_attributes.failure.message
                break
            await asyncio.sleep(0.05)
        await handle.terminate("probe done")
    assert "Cannot access datetime.date.today" in failure or "RestrictedWorkflowAccessError" in failure, failure
