"""``stigmer runner``: start a runner worker alone (cloud deployments, scaling out on many machines).

Configuration is read like everywhere else (flags > env > file > default), and the environment
contract of existing runner deployments works unchanged: ``MODE`` (``cloud``: Anthropic; ``local``: a
local model, even with an Anthropic key around), ``STIGMER_LLM_*``, ``OLLAMA_BASE_URL``,
``TEMPORAL_SERVICE_ADDRESS``, ``TEMPORAL_NAMESPACE``, ``STIGMER_TASK_QUEUE`` /
``TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE``, ``TEMPORAL_MAX_CONCURRENCY``. Its LLM settings are real:
an execution that names no model (no ``stigmer run --model``, no agent ``spec.model``) runs on this
runner's model, through its ``llm.base_url``. It logs what it uses and why (never a key) and stops
cleanly, exit code 0, on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

import click

from ..errors import StigmerError
from ._options import config_flags, flags_from, load_config


def _setup_logging(level: str) -> None:
    """Plain lines on stderr (the Temporal SDK core's join them in :func:`_telemetry`)."""
    component = os.environ.get("STIGMER_COMPONENT", "runner")
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr,
                        format=f"%(asctime)s {component} %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "temporalio.activity", "mcp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _telemetry(cfg: Any) -> None:
    """The SDK core's logs (it would colour its own with ANSI codes) and metrics; traces when OTEL_* asks."""
    from .._telemetry import sdk_metrics, setup_tracing
    from ..worker.main import forward_core_logs

    address = cfg.value("runner.metrics_address")
    forward_core_logs(sdk_metrics(address, os.environ))
    if address:
        logging.getLogger("stigmer.runner").info("metrics: the Temporal SDK's at http://%s/metrics", address)
    setup_tracing("stigmer-runner")


def _load(flags: dict[str, tuple[Any, str]]) -> Any:
    """The runner's configuration; a daemon's runner child says why each value is what it is, not just "env".

    A daemon hands its runners its settings as variables, plus ``STIGMER_CONFIG_ORIGINS`` (the source and
    origin of each, no values); settings this runner got from the environment take those back.
    """
    from ..config.resolve import restore_origins

    return restore_origins(load_config(flags), os.environ)


def _warn_about_llm(cfg: Any) -> None:
    log = logging.getLogger("stigmer.runner")
    provider = cfg.llm.provider
    if provider is None:
        log.warning("no LLM is configured on this runner: executions that name no model (no `stigmer run --model`, "
                    "no agent spec.model) will fail. %s", (cfg.provider_error or "").splitlines()[0])
    elif provider in ("anthropic", "openai") and not cfg.api_key_for(provider):
        var = "ANTHROPIC_API_KEY" if provider == "anthropic" else "OPENAI_API_KEY"
        log.warning("provider %s has no API key: set %s in this runner's environment", provider, var)


async def _serve(cfg: Any) -> None:
    import asyncio

    from ..worker.main import run_worker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(cfg, stop)


def _event_server(server: str | None, token_file: str | None) -> None:
    """``--server``/``--token-file`` as the event sink reads them (``STIGMER_SERVER_URL``/``STIGMER_SERVER_TOKEN``,
    which stay this process's own: the runner hands no stigmer secret to the tools and MCP servers it starts)."""
    from ..config import envvars as ev
    from ..errors import UserError
    from ._client import read_token_file, server_url

    if server is not None:
        os.environ[ev.SERVER_URL] = server_url(server)
    if token_file is not None:
        os.environ[ev.SERVER_TOKEN] = read_token_file(token_file, "--token-file")
    elif server is not None and not os.environ.get(ev.SERVER_TOKEN):
        raise UserError("--server needs a runner token", hint="add --token-file FILE (a file from `stigmer token "
                                                              "create --role runner --out FILE`)")


@click.command("runner")
@config_flags
@click.option("--task-queue", default=None, help="Temporal task queue to poll (default: runner.task_queue).")
@click.option("--max-concurrent", type=int, default=None,
              help="Concurrent activities (default: runner.max_concurrent).")
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]),
              show_default=True, help="Log verbosity (logs go to stderr).")
@click.option("--server", metavar="URL", default=None,
              help="Post execution events to the stigmer server at URL (env STIGMER_SERVER_URL); while it cannot "
                   "be reached they wait in $STIGMER_HOME/data/event-spool, and a runner started again sends "
                   "what its last life left there.")
@click.option("--token-file", metavar="FILE", default=None,
              help="The file (mode 0600) holding a runner token for --server, from `stigmer token create --role "
                   "runner --out FILE` (env STIGMER_SERVER_TOKEN holds the token itself).")
@click.option("--metrics-address", metavar="HOST:PORT", default=None,
              help="Serve the Temporal SDK's metrics for Prometheus at http://HOST:PORT/metrics (env "
                   "STIGMER_RUNNER_METRICS_ADDRESS). Any address may be bound, for scrapers elsewhere; nothing "
                   "there needs a token.")
def runner(**kwargs: Any) -> None:
    """Start a runner worker: it polls the task queue and runs agent executions until SIGTERM.

    The model of each execution it picks up: `stigmer run --model`, else the agent's spec.model,
    else this runner's own --llm-provider/--llm-model/--llm-base-url (or their variables).

    \b
    Examples:
      stigmer runner --temporal-address my-cluster:7233 --llm-model claude-sonnet-5-5
      MODE=cloud TEMPORAL_SERVICE_ADDRESS=temporal:7233 stigmer runner   # legacy deployments
      STIGMER_RUNNER_TASK_QUEUE=gpu-agents stigmer runner --llm-provider ollama
    """
    import asyncio

    from .._hardening import make_undumpable
    from .._telemetry import shutdown as shutdown_tracing

    make_undumpable()  # the keys live in this process's environment: closed to same-user processes (shell, MCP)
    _event_server(kwargs.pop("server"), kwargs.pop("token_file"))
    log_level = kwargs.pop("log_level")
    flags = flags_from(kwargs)
    if kwargs.get("task_queue"):
        flags["runner.task_queue"] = (kwargs["task_queue"], "--task-queue")
    if kwargs.get("max_concurrent") is not None:
        flags["runner.max_concurrent"] = (kwargs["max_concurrent"], "--max-concurrent")
    if kwargs.get("metrics_address") is not None:
        flags["runner.metrics_address"] = (kwargs["metrics_address"], "--metrics-address")
    _setup_logging(log_level)
    cfg = _load(flags)
    _warn_about_llm(cfg)
    try:
        _telemetry(cfg)
        asyncio.run(_serve(cfg))
    except StigmerError as exc:  # same message as cli.main prints, but without interpreter finalisation (below)
        shutdown_tracing()
        click.echo(f"error: {exc}", err=True)
        sys.stderr.flush()
        os._exit(exc.exit_code)
    # A clean stop: flush, then leave without running interpreter finalisation. The Temporal SDK's
    # Rust core can abort during finalisation after a clean shutdown ("Fatal Python error:
    # PyGILState_Release", exit 134; sdk-python#300). Everything is shut down and flushed at this
    # point, so skipping finalisation loses nothing and guarantees exit code 0.
    shutdown_tracing()  # the last spans, before os._exit skips every exit hook
    logging.getLogger("stigmer.runner").info("runner exited cleanly")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
