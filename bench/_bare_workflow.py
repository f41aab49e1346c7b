"""The bare Temporal baseline of ``bench_runner.py``: ``n`` sequential no-op activities.

A module of its own, as small as a typical workflow module: Temporal's sandbox re-imports a workflow's
module for every workflow it runs, and with ``PYTHONDONTWRITEBYTECODE`` set (as on the dev machines) it
compiles the source each time, which charged the baseline for compiling the whole benchmark script
(~250 lines) on every workflow: a cost no real workflow module of that size pays with a bytecode cache.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench.noop")
async def noop(arg: str) -> str:
    return arg


@workflow.defn(name="BenchBare")
class BareWorkflow:
    """The baseline: ``n`` sequential no-op activities."""

    @workflow.run
    async def run(self, n: int) -> str:
        out = ""
        for i in range(n):
            out = await workflow.execute_activity("bench.noop", f"step {i}", result_type=str,
                                                  start_to_close_timeout=timedelta(seconds=60))
        return out
