"""``run_worker(cfg, stop)``: poll the task queue until ``stop`` is set, then shut down cleanly.

One code path for every way a runner starts (the daemon's children, ``stigmer runner`` on
another machine, tests): configuration comes in as a resolved ``Config``, events go to the sink
the environment names (the daemon sets ``STIGMER_SERVER_URL``/``STIGMER_SERVER_TOKEN``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import timedelta
from typing import Any

log = logging.getLogger("stigmer.worker")

CONNECT_PATIENCE_S = 30.0
"""How long a starting runner keeps retrying an unreachable Temporal before it gives up.

The daemon launches its runners alongside the Temporal dev server (their imports overlap its
boot), and a runner deployed next to a cluster may come up first; both wait here."""
STICKY_TIMEOUT = timedelta(seconds=2)
WORKFLOW_TASKS = 100  # the SDK's default number of workflow tasks a runner works on at once
HEARTBEAT_THROTTLE = timedelta(seconds=1)
GRACEFUL_SHUTDOWN = timedelta(seconds=2)
"""How long in-flight activities get to finish on stop; the rest are retried by another worker."""


def warm_up() -> None:
    """Import what every execution needs (provider registry and plugins, LangChain messages) before polling.

    Run in a thread at start-up, so the first activities do not pay for imports on the event loop,
    where a slow import would delay every other activity's heartbeats.
    """
    from langchain_core.messages import AIMessage  # noqa: F401

    from ..providers.registry import provider_names
    from . import _messages  # noqa: F401

    provider_names()


def _workflow_runner() -> Any:
    """Temporal's sandbox, with stigmer's own modules passed through (see :func:`._sandbox.workflow_runner`)."""
    from ._sandbox import workflow_runner

    return workflow_runner()


def describe(cfg: Any) -> str:
    """One line saying what this runner uses and why: provider, model, base URL, Temporal, task queue (no key).

    The model is what executions that name none get (``stigmer run --model`` and an agent's ``spec.model``
    come first); each LLM setting carries its source and origin, as ``stigmer config show`` prints them.
    """
    from ._resolve import runner_origin

    items = cfg.items
    provider = cfg.llm.provider or "none"
    model = f"{cfg.llm.model or '-'} ({runner_origin(cfg)})" if cfg.llm.provider else "-"
    return (f"provider={provider} ({_why(items['llm.provider'])}) model={model} "
            f"base_url={cfg.llm.base_url or '-'} ({_why(items['llm.base_url'])}) temporal={cfg.temporal.address} "
            f"namespace={cfg.temporal.namespace} task_queue={cfg.value('runner.task_queue')} "
            f"({_why(items['runner.task_queue'])}) max_concurrent={cfg.value('runner.max_concurrent')} "
            f"({_why(items['runner.max_concurrent'])}) cached_workflows={cfg.value('runner.cached_workflows')} "
            f"({_why(items['runner.cached_workflows'])})")


def _why(item: Any) -> str:
    return f"{item.source} {item.origin}"


def forward_core_logs(metrics: Any = None) -> None:
    """Send the Temporal SDK core's own log lines (Rust) through Python logging, formatted like ours.

    Left alone, the core writes them straight to stderr with ANSI colour codes, which end up as
    escape sequences in ``logs/runner-N.log`` and in a deployment's log collector. Call once per
    process, before the first Temporal client connects (the default runtime is made then): the
    runtime is the process's one telemetry setup, so its ``metrics`` come in here too
    (:func:`stigmer._telemetry.sdk_metrics`). A Prometheus address that cannot be bound is a ConfigError.
    """
    from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

    forwarding = LogForwardingConfig(logger=logging.getLogger("temporalio.core"), append_target_to_name=False)
    logging_config = LoggingConfig(filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                                   forwarding=forwarding)
    try:
        runtime = Runtime(telemetry=TelemetryConfig(logging=logging_config, metrics=metrics))
    except ValueError as exc:  # the SDK's words: "Failed starting Prometheus exporter: Address already in use"
        from ..errors import ConfigError

        where = getattr(metrics, "bind_address", None) or getattr(metrics, "url", "?")
        raise ConfigError(f"cannot export the runner's metrics at {where}: {exc}",
                          hint="pick a free --metrics-address (STIGMER_RUNNER_METRICS_ADDRESS, runner.metrics_address):"
                               " each runner on a machine needs its own") from None
    Runtime.set_default(runtime, error_if_already_set=False)


async def _connect_patiently(cfg: Any, identity: str, stop: asyncio.Event) -> Any:
    """Connect to Temporal, retrying for up to ``CONNECT_PATIENCE_S`` while it is not up yet."""
    from ..errors import RuntimeFailure
    from .client import connect

    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONNECT_PATIENCE_S
    while True:
        try:
            return await connect(cfg, identity=identity)
        except RuntimeFailure:
            if stop.is_set() or loop.time() > deadline:
                raise
            log.debug("Temporal at %s not reachable yet; retrying", cfg.temporal.address)
            await asyncio.sleep(0.2)


async def run_worker(cfg: Any, stop: asyncio.Event, *, client: Any = None, ready: asyncio.Event | None = None) -> None:
    """Run a worker until ``stop`` is set.

    Args:
        cfg: the resolved configuration.
        stop: set it to shut down (the CLI sets it on SIGTERM/SIGINT).
        client: an existing Temporal client (default: :func:`stigmer.worker.client.connect`).
        ready: set once the worker polls its task queue.
    """
    from temporalio.worker import Worker

    from .activities import Activities
    from .events import SPOOL_DIR, make_sink
    from .session import SessionWorkflow
    from .workflows import AgentWorkflow

    warming = asyncio.create_task(asyncio.to_thread(warm_up))
    if client is None:  # identity pid@host: the daemon finds its runner among the task queue's pollers by pid
        client = await _connect_patiently(cfg, f"{os.getpid()}@{socket.gethostname()}", stop)
    await warming
    sink = make_sink(spool_dir=cfg.path("data") / SPOOL_DIR)
    sink.start()  # a runner that is not the daemon's re-sends, first, what its last life spooled
    activities = Activities(cfg, sink)
    max_concurrent = int(cfg.value("runner.max_concurrent"))
    cached = int(cfg.value("runner.cached_workflows"))
    worker = Worker(client, task_queue=cfg.value("runner.task_queue"), workflows=[AgentWorkflow, SessionWorkflow],
                    workflow_runner=_workflow_runner(), max_cached_workflows=cached,
                    # Temporal wants room in the cache for every workflow task in progress.
                    max_concurrent_workflow_tasks=min(WORKFLOW_TASKS, cached) if cached else WORKFLOW_TASKS,
                    activities=activities.all(), max_concurrent_activities=max_concurrent,
                    max_concurrent_local_activities=max_concurrent, graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
                    # Heartbeats carry cancellation to a running model call. The SDK throttles them to 80% of
                    # the heartbeat timeout (8 s here), which made a cancel take ~8 s; 1 s keeps it prompt.
                    max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
                    default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
                    # A runner killed with -9 leaves its sticky queue behind: the next workflow task of each workflow
                    # it had cached (an approval, a session's next turn) waits there this long before Temporal moves
                    # it to the shared queue. The SDK's 10 s default made a decision after a crash time out.
                    sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT)
    log.info("runner started: %s", describe(cfg))
    try:
        async with worker:
            if ready is not None:
                ready.set()
            await stop.wait()
            log.info("runner stopping")
    finally:
        await activities.aclose()
        await sink.aclose()
    log.info("runner stopped")
