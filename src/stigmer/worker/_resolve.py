"""Which model an execution uses, decided on the runner that picks it up (the body of ``stigmer.resolve_model``).

First present wins: the run's model (``stigmer run --model``, the API's ``model``), the agent's
``spec.model``, then the runner's own configuration (``--llm-provider/--llm-model/--llm-base-url``,
their variables, its config file, detection), as a cloud deployment configures a runner. A name is
resolved with this runner's configuration, so its aliases apply and, for models of its configured
provider, its ``llm.base_url`` is used: that is how a runner on another host reaches its own model
server. The workflow records the result, so a replay or a retry on another runner never changes the
model.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from temporalio.exceptions import ApplicationError

from ..errors import StigmerError, UserError
from .params import ModelRequest, ResolvedModel

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger("stigmer.worker")


def runner_origin(cfg: Config) -> str:
    """What set this runner's model, as ``config show`` says it (``env STIGMER_LLM_MODEL``); never a value."""
    model, provider = cfg.items["llm.model"], cfg.items["llm.provider"]
    if model.source == "default":  # the provider's default model: the provider's own origin is the real reason
        return f"{model.origin}; provider {provider.source}: {provider.origin}"
    return f"{model.source} {model.origin}"


def request_origin(cfg: Config, request: ModelRequest) -> str:
    """The origin of the model ``request`` names: the run, the agent, or this runner's setting."""
    if request.source == "run":
        return "stigmer run --model"
    if request.source == "agent":
        return f"agent {request.agent_name} spec.model"
    return runner_origin(cfg)


async def resolve_request(cfg: Config, request: ModelRequest) -> ResolvedModel:
    """Resolve ``request`` with this runner's configuration and check the model can serve it (tools too).

    Raises:
        ApplicationError: non-retryable when retrying cannot help (unknown model, no provider, no tool
            calling, a rejected key), retryable when the model server may come back (unreachable, 5xx).
    """
    import asyncio

    from ..providers.registry import apreflight, resolve_model, tool_mode, with_tool_mode

    why = ""
    try:
        # In a thread: the first resolution imports the provider modules, which must not stall the event loop.
        spec = await asyncio.to_thread(resolve_model, cfg, request.name)
        caps = await apreflight(spec, cfg, request.needs_tools, request.tool_calls)
        if request.needs_tools:  # pinned with the model: every call of the execution uses the same mode
            mode = tool_mode(spec, cfg, caps, request.tool_calls)
            spec, why = with_tool_mode(spec, mode), mode.why
    except Exception as exc:
        raise _failure(exc, request) from None
    source = request.source if request.name else "runner"
    origin = request_origin(cfg, request) if request.name else runner_origin(cfg)
    return ResolvedModel(model=spec, source=source, origin=origin, tool_calls_why=why)


def _failure(exc: BaseException, request: ModelRequest) -> ApplicationError:
    from ..providers.errors import ProviderError

    if isinstance(exc, ProviderError):
        if exc.retryable:
            log.warning("resolving the model of %s failed (will retry): %s", request.execution_id, exc.message)
        return ApplicationError(str(exc), type="ProviderError", non_retryable=not exc.retryable,
                                next_retry_delay=_delay(exc.retry_after))
    if isinstance(exc, UserError):  # an unknown model or provider, no provider configured: retrying cannot help
        return ApplicationError(str(exc), type="ConfigError", non_retryable=True)
    if isinstance(exc, StigmerError):
        return ApplicationError(str(exc), type="ModelResolution")
    return ApplicationError(f"could not resolve the model {request.name or '(runner default)'!r}: {exc}",
                            type="ModelResolution")


def _delay(seconds: float | None) -> Any:
    from datetime import timedelta

    return timedelta(seconds=seconds) if seconds is not None else None
