"""Starting an execution: everything is resolved and checked here, before a workflow exists.

The agent is looked up, its MCP servers inlined into a snapshot, the model resolved once and
pinned (``ModelSpec``, no secret), and the model checked (reachable, pulled, able to call tools
when the agent has tools), so a run that cannot work fails now with a clear 4xx instead of
minutes later inside a worker.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError
from ._state import ApiError, ApiState, not_found

if TYPE_CHECKING:
    from ..config import Config
    from ..providers.spec import ModelSpec
    from ..worker.params import ExecutionInput

# Seconds to connect to Temporal and start the workflow before answering 503.
START_TIMEOUT_S = 10.0


def _check_model(cfg: Config, name: str | None, needs_tools: bool) -> ModelSpec:
    from ..providers.errors import ProviderError
    from ..providers.registry import preflight, resolve_model

    spec = resolve_model(cfg, name)
    try:
        preflight(spec, cfg, needs_tools)
    except ProviderError as exc:
        raise ApiError(503 if exc.retryable else 400, exc.message, exc.hint, kind=exc.kind) from None
    return spec


def _workspace(cfg: Config, agent_name: str, requested: str | None, configured: str | None) -> str:
    """The run's workspace: the request's (absolute), else the agent's, else ``workspaces/<agent>``."""
    if requested is not None:
        path = Path(requested).expanduser()
        if not path.is_absolute() or not path.is_dir():
            raise ApiError(422, f"workspace: {requested!r} is not an existing directory (absolute path)",
                           "pass an existing directory as --workspace")
        return str(path)
    base = cfg.path("workspaces")
    path = (base / Path(configured).expanduser()) if configured else base / agent_name
    path.mkdir(parents=True, exist_ok=True)
    return str(path.resolve())


async def prepare_input(state: ApiState, execution_id: str, agent_name: str, message: str, model: str | None,
                        workspace: str | None) -> ExecutionInput:
    """The workflow input for a new execution; ApiError/UserError when it cannot run."""
    from ..config.grants import check_run
    from ..resources import Agent, McpServer, agent_snapshot
    from ..worker.params import ExecutionInput

    row = state.store.get_resource("Agent", agent_name)
    if row is None:
        raise not_found("agent", agent_name, state.store.resource_names("Agent"),
                        "create it with `stigmer apply -f FILE`, list them with `stigmer get agents`")
    agent = Agent.model_validate(row["document"])
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
    needs_tools = bool(agent.spec.tools or agent.spec.mcp_servers)
    spec = await asyncio.to_thread(_check_model, state.ctx.config, model or agent.spec.model, needs_tools)
    path = _workspace(state.ctx.config, agent.name, workspace, agent.spec.workspace)
    return ExecutionInput(execution_id=execution_id, agent_name=agent.name, agent=snapshot, model=spec,
                          message=message, workspace=path, max_steps=agent.spec.max_steps)


async def start_workflow(state: ApiState, params: ExecutionInput, workflow_id: str) -> None:
    """Start ``AgentWorkflow`` on the runners' task queue; 503 (with what to check) when Temporal fails."""
    from ..worker.params import WORKFLOW_NAME

    cfg = state.ctx.config
    try:
        client = await asyncio.wait_for(state.ctx.temporal_client(), START_TIMEOUT_S)
        await asyncio.wait_for(client.start_workflow(WORKFLOW_NAME, params, id=workflow_id,
                                                     task_queue=cfg.value("runner.task_queue")), START_TIMEOUT_S)
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        raise ApiError(503, f"could not start the execution on Temporal at {cfg.temporal.address}: {reason}",
                       "check the stack with `stigmer local status` (or `stigmer doctor`)") from None
