"""A workflow and activity that move a large value through history, for the claim-check tests.

Its own module, importing nothing but the SDK: the workflow sandbox re-imports it for every run.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def make_large(size: int) -> str:
    """A value of ``size`` characters, as a tool or a model call with a long answer would return."""
    return ("0123456789abcdef" * (size // 16 + 1))[:size]


@workflow.defn
class LargeValueWorkflow:
    @workflow.run
    async def run(self, size: int) -> str:
        value = await workflow.execute_activity(make_large, size, start_to_close_timeout=timedelta(seconds=30))
        return value
