"""The workflow sandbox stigmer's runners use: Temporal's, with stigmer passed through and its glue code compiled once.

Temporal's sandboxed instance runs every call into a workflow as ``exec`` of a small code string: once per
activation, and again for each payload the SDK converts (the serialization context of every command and
activity result, three passes each way). ``exec`` of a string compiles it every time; on the bench's 3-step
agent that compiling was ~2 ms of CPU per execution, more than all of stigmer's own workflow code. Here the
same strings run from code objects compiled once per process: the same code, globals and import
restrictions, so what a workflow may do is unchanged.

This leans on a private class of the SDK (``workflow_sandbox._runner._Instance``); where it is missing or its
``_run_code`` has changed shape, :func:`workflow_runner` gives the SDK's own runner, only slower.
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any

log = logging.getLogger("stigmer.worker")


@functools.lru_cache(maxsize=64)
def _compiled(code: str) -> Any:
    """``code`` as ``exec`` would compile it (the SDK passes a handful of fixed strings; see the module docstring)."""
    return compile(code, "<string>", "exec")


def _instance_class() -> type | None:
    """A subclass of the SDK's sandboxed instance whose ``_run_code`` execs cached code objects, or None."""
    try:
        from temporalio.worker.workflow_sandbox import _runner
    except ImportError:
        return None
    base = getattr(_runner, "_Instance", None)
    run_code = getattr(base, "_run_code", None)
    if base is None or run_code is None or list(inspect.signature(run_code).parameters) != [
            "self", "code", "extra_globals"]:
        return None

    class CompiledOnceInstance(base):  # type: ignore[misc, valid-type]
        def _run_code(self, code: str, **extra_globals: Any) -> None:
            # The SDK's own _run_code, which hands ``code`` to exec: a code object runs as its source would.
            super()._run_code(_compiled(code), **extra_globals)

    return CompiledOnceInstance


def workflow_runner() -> Any:
    """Temporal's sandbox, with stigmer's own modules passed through and the SDK's glue compiled once.

    Passing stigmer through: the sandbox re-imports every module a workflow uses, for each workflow it keeps in
    memory: ~360 KiB per cached session, most of it fresh copies of stigmer's modules. Those modules hold no
    mutable state at module level and the workflow code reads no clock and does no I/O (tests replay saved
    histories to hold it so), so one shared copy is safe; the standard library stays restricted as before
    (~115 KiB per cached session).
    """
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    restrictions = SandboxRestrictions.default.with_passthrough_modules("stigmer")
    found = _instance_class()
    if found is None:
        log.debug("the SDK's sandbox internals changed: using its runner as it is")
        return SandboxedWorkflowRunner(restrictions=restrictions)
    instance_class: type = found

    class Runner(SandboxedWorkflowRunner):
        def create_instance(self, det: Any) -> Any:
            return instance_class(det, self.runner_class, self.restrictions)

    return Runner(restrictions=restrictions)
