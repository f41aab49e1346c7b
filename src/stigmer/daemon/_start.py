"""Starting an execution: everything is resolved and checked here, before a workflow exists.

The agent is looked up, its MCP servers inlined into a snapshot, and the model asked for noted
with where it came from (``stigmer run --model`` / the API's ``model``, else the agent's
``spec.model``, else none: the runner's own configuration). The runner that picks the execution
up resolves and pins it (``stigmer.resolve_model``), because only it knows its own configuration
and model server. When the daemon supervises the runners, they share its configuration, so it
still checks the model first (known, reachable, pulled, able to call tools when the agent has
tools): a run that cannot work fails now with a clear 4xx instead of inside a worker.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from ._state import ApiError, ApiState, not_found

if TYPE_CHECKING:
    from ..config import Config
    from ..providers.spec import ModelSpec
    from ..worker.params import ExecutionInput, SessionInput

log = logging.getLogger("stigmer.daemon.start")

# Seconds to connect to Temporal and start the workflow before answering 503.
START_TIMEOUT_S = 10.0
# Seconds to ask Temporal whether a workflow whose start failed exists after all.
CONFIRM_TIMEOUT_S = 5.0


def _check_model(cfg: Config, name: str | None, needs_tools: bool) -> ModelSpec:
    from ..providers.errors import ProviderError
    from ..providers.registry import preflight, resolve_model

    spec = resolve_model(cfg, name)
    try:
        preflight(spec, cfg, needs_tools)
    except ProviderError as exc:
        raise ApiError(503 if exc.retryable else 400, exc.message, exc.hint, kind=exc.kind) from None
    return spec


def expected_model(cfg: Config, name: str | None, needs_tools: bool) -> dict[str, Any]:
    """The model the execution's record shows until its runner reports the one it resolved (``model_resolved``).

    With runners of its own (``runner.workers`` > 0), which share this configuration, the daemon checks
    the model fully and refuses a run that cannot work. Without, the runners are elsewhere with their own
    configuration: the daemon's resolution is only a guess, and a name it does not know may be one they do.
    """
    if int(cfg.value("runner.workers")) > 0:
        return _check_model(cfg, name, needs_tools).to_dict()
    from ..providers.registry import resolve_model

    try:
        return resolve_model(cfg, name).to_dict()
    except UserError:
        return {"provider": "?", "model": name or "?", "base_url": None, "params": {},
                "reason": "resolved by the runner that picks the execution up"}


def _workspace(cfg: Config, agent_name: str, requested: str | None, configured: str | None) -> str:
    """The run's workspace: the request's, else the agent's, else ``workspaces/<agent>``, checked and made.

    The rules are :mod:`stigmer.resources.workspace`'s: a bad request field is a 422 naming ``body.workspace``;
    a bad ``spec.workspace`` (applied before these rules, or its directory since removed) a 409 naming the agent.
    """
    from ..resources.workspace import resolve_workspace, user_home
    from ._storage_errors import storage_error

    raw, field = ((requested, "body.workspace") if requested is not None else
                  (configured, f"agent {agent_name!r}: spec.workspace") if configured else (agent_name, "workspace"))
    try:
        path = resolve_workspace(raw, stigmer_home=cfg.home, user_home=user_home(), field=field)
        path.mkdir(parents=True, exist_ok=True)  # a relative one is ours to make; an absolute one exists
    except UserError as exc:
        raise _refused(requested is None, field, exc.message, exc.hint) from None
    except OSError as exc:
        if storage_error(exc) is not None:  # a full disk or a read-only home: answered as such
            raise
        raise _refused(requested is None, field, f"{field}: cannot create {raw!r}: {exc.strerror or exc}",
                       "check the directory's parent and its permissions") from None
    return str(path)


def _refused(agents: bool, field: str, message: str, hint: str | None) -> ApiError:
    """409 for the agent's own workspace (the request was fine, the agent is not); 422 naming the request's field."""
    if agents:
        fix = "fix the agent's spec.workspace and apply it again; " if field.endswith("spec.workspace") else ""
        return ApiError(409, message, f"{fix}{hint}")
    return ApiError(422, f"invalid request: {message}", hint,
                    errors=[{"loc": field, "msg": message.removeprefix(f"{field}: ")}])


@dataclass
class Prepared:
    """What executions and sessions start from alike: the agent's snapshot, checked, and where it runs with what.

    Attributes:
        agent_name: the agent's name.
        snapshot: the agent's spec with its MCP servers inlined (``resources.agent_snapshot``), grants checked.
        workspace: the run's workspace directory (made if it was ours to make).
        max_steps: the agent's ``spec.maxSteps``.
        model_name: the model asked for (the request's, else the agent's; None: the runner's own).
        model_source: ``run``, ``agent`` or ``runner``: where ``model_name`` came from.
        expected: the model the record starts with, until the runner's ``model_resolved``.
    """

    agent_name: str
    snapshot: dict[str, Any]
    workspace: str
    max_steps: int
    model_name: str | None
    model_source: str
    expected: dict[str, Any]


async def prepare(state: ApiState, agent_name: str, model: str | None, workspace: str | None) -> Prepared:
    """Everything a new execution or session needs, checked; ApiError/UserError when it cannot run."""
    from ..config.grants import check_run
    from ..resources import Agent, McpServer, agent_snapshot, parse_document

    row = state.store.get_resource("Agent", agent_name)
    if row is None:
        raise not_found("agent", agent_name, state.store.resource_names("Agent"),
                        "create it with `stigmer apply -f FILE`, list them with `stigmer get agents`")
    agent = parse_document(row["document"], f"agent {agent_name!r} as stored")  # a UserError if rules tightened
    assert isinstance(agent, Agent)
    servers = {}
    for name in agent.spec.mcp_servers:
        found = state.store.get_resource("McpServer", name)
        if found is not None:
            servers[name] = McpServer.from_stored(found["document"])
    try:
        snapshot = agent_snapshot(agent, servers)
    except UserError as exc:
        raise ApiError(409, exc.message, exc.hint) from None
    check_run(agent.name, snapshot["mcpServers"], state.ctx.config)  # 422 before a workflow: ungranted references
    requested = model or agent.spec.model
    source = "run" if model else "agent" if agent.spec.model else "runner"
    expected = await asyncio.to_thread(expected_model, state.ctx.config, requested, needs_tools(snapshot))
    path = _workspace(state.ctx.config, agent.name, workspace, agent.spec.workspace)
    return Prepared(agent.name, snapshot, path, agent.spec.max_steps, requested, source, expected)


def needs_tools(snapshot: dict[str, Any]) -> bool:
    """Whether the agent calls tools (natively or emulated), unless its spec says ``toolCalls: none``."""
    return bool(snapshot.get("tools") or snapshot.get("mcpServers")) and snapshot.get("toolCalls") != "none"


async def prepare_input(state: ApiState, execution_id: str, agent_name: str, message: str, model: str | None,
                        workspace: str | None, max_tokens_total: int | None = None
                        ) -> tuple[ExecutionInput, dict[str, Any]]:
    """The workflow input for a new execution and the model its record starts with; ApiError/UserError when it
    cannot run."""
    from ..worker.params import ExecutionInput

    p = await prepare(state, agent_name, model, workspace)
    return ExecutionInput(execution_id=execution_id, agent_name=p.agent_name, agent=p.snapshot, message=message,
                          workspace=p.workspace, max_steps=p.max_steps, model_name=p.model_name,
                          model_source=p.model_source, max_tokens_total=max_tokens_total, by_ref=True,
                          final_in_call=True), p.expected


async def prepare_session(state: ApiState, session_id: str, agent_name: str, model: str | None,
                          workspace: str | None) -> tuple[SessionInput, Prepared]:
    """The workflow input for a new session (checked as for an execution), and what it was prepared from."""
    from ..worker.params import SessionInput

    p = await prepare(state, agent_name, model, workspace)
    return SessionInput(session_id=session_id, agent_name=p.agent_name, agent=p.snapshot, workspace=p.workspace,
                        max_steps=p.max_steps, model_name=p.model_name, model_source=p.model_source, by_ref=True), p


class StartUnconfirmed(ApiError):
    """The start failed in a way that leaves open whether the workflow exists (Temporal did not answer)."""


async def start_workflow(state: ApiState, params: ExecutionInput | SessionInput, workflow_id: str,
                         workflow: str | None = None, what: str = "execution") -> None:
    """Start ``workflow`` (default ``AgentWorkflow``; ``SessionWorkflow`` for a session) on the runners' task queue;
    returns once Temporal has the workflow.

    Idempotent by workflow id: ``WorkflowAlreadyStartedError`` (a retried start) counts as started.
    Raises ApiError(503) when the workflow surely does not exist (Temporal unreachable before the
    request left, refused it, or has no such workflow after a failed start), and StartUnconfirmed
    (503 too) when that cannot be told: the caller then keeps the execution for reconciliation.
    """
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from ..worker.params import WORKFLOW_NAME

    cfg = state.ctx.config
    try:
        client = await asyncio.wait_for(state.ctx.temporal_client(), START_TIMEOUT_S)
    except Exception as exc:  # nothing was sent: nothing was started
        raise _unavailable(cfg, exc, what) from None
    try:
        await asyncio.wait_for(client.start_workflow(workflow or WORKFLOW_NAME, params, id=workflow_id,
                                                     task_queue=cfg.value("runner.task_queue"),
                                                     rpc_timeout=timedelta(seconds=START_TIMEOUT_S)),
                               START_TIMEOUT_S + 1)
        return
    except WorkflowAlreadyStartedError:
        return  # this very start, retried: it runs
    except Exception as exc:
        failure = exc
    exists = await _workflow_exists(client, workflow_id)
    if exists:
        log.warning("the start of %s failed (%s) yet the workflow exists: it runs", workflow_id, _reason(failure))
        return
    if exists is None:
        raise StartUnconfirmed(503, f"could not confirm the start of the {what} on Temporal at "
                                    f"{cfg.temporal.address}: {_reason(failure)}",
                               "it stays pending: it runs if Temporal got it, else it is marked failed within a "
                               "minute; see `stigmer execution get ID`, check `stigmer local status`")
    raise _unavailable(cfg, failure, what)


async def _workflow_exists(client: Any, workflow_id: str) -> bool | None:
    """Does Temporal have the workflow? None when it cannot tell (unreachable, too slow)."""
    from temporalio.service import RPCError, RPCStatusCode

    try:
        await asyncio.wait_for(client.get_workflow_handle(workflow_id).describe(), CONFIRM_TIMEOUT_S)
    except RPCError as exc:
        return False if exc.status == RPCStatusCode.NOT_FOUND else None
    except Exception:
        return None
    return True


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _unavailable(cfg: Config, exc: BaseException, what: str = "execution") -> ApiError:
    return ApiError(503, f"could not start the {what} on Temporal at {cfg.temporal.address}: {_reason(exc)}",
                    "check the stack with `stigmer local status` (or `stigmer doctor`)")
