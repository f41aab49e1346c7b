"""The dataclasses that cross the workflow/activity boundary (and so are recorded in history).

Plain data only, no secrets, no side effects on import: the workflow sandbox imports this module.
Messages are plain dicts (``{"role": "system"|"user"|"assistant"|"tool", "content": ...}``; an
assistant message may hold ``tool_calls: [{"id", "name", "args"}]``; a tool message holds
``tool_call_id``, ``name`` and ``is_error``), so histories stay readable and replayable without
LangChain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..providers.spec import ModelSpec

WORKFLOW_NAME = "StigmerAgent"
WORKFLOW_ID_PREFIX = "stigmer-exec-"

# Activity names (the workflow refers to activities by name, so it never imports the I/O code).
LIST_TOOLS = "stigmer.list_tools"
CALL_MODEL = "stigmer.call_model"
CALL_TOOL = "stigmer.call_tool"
PUBLISH = "stigmer.publish"
RESOLVE_MODEL = "stigmer.resolve_model"

# Where the model of an execution came from, in precedence order (ExecutionInput.model_source, ResolvedModel.source).
MODEL_SOURCES = ("run", "agent", "runner")


def workflow_id(execution_id: str) -> str:
    """The Temporal workflow id of an execution: ``stigmer-exec-<execution id>``."""
    return f"{WORKFLOW_ID_PREFIX}{execution_id}"


@dataclass
class Tunables:
    """Timeouts and retry bounds of one execution, pinned in its input so a replay sees the same ones."""

    model_timeout: float = 600.0
    """Seconds one model call (one attempt) may take, streaming included."""
    model_heartbeat: float = 10.0
    """Seconds without a heartbeat (sent on a timer while the call runs) before an attempt is presumed dead:
    a killed worker's model call is retried by another worker after this long. Cancellation reaches a running
    call with its next heartbeat, so this also bounds how long a cancel takes (about 0.8x)."""
    model_max_attempts: int = 8
    """Attempts of one model call on retryable errors (429, 5xx, overloaded, connection reset)."""
    tool_timeout: float = 300.0
    """Seconds one tool call may take."""
    tool_heartbeat: float = 10.0
    """Seconds without a heartbeat before a tool call's worker is presumed dead and the call retried elsewhere."""
    tool_max_attempts: int = 3
    """Attempts of one tool call when its worker dies (tool errors themselves go back to the model, unretried)."""
    retry_initial: float = 1.0
    """First retry backoff in seconds (a server's retry-after overrides it)."""
    retry_max: float = 60.0
    """Longest backoff between attempts, in seconds."""
    loop_repeats: int = 3
    """Stop when the model makes the same tool call with the same arguments this many times."""
    model_stall: float = 120.0
    """Seconds a model stream may go without a chunk (the first one included) before the attempt is abandoned
    as stalled and retried. The timer heartbeat keeps a live-but-stuck stream from ever hitting the heartbeat
    timeout, so this is what catches a provider that stops sending mid-answer."""


@dataclass
class ExecutionInput:
    """What an execution runs: everything is pinned, nothing is looked up again later.

    The model is pinned too, but by the runner: the daemon passes the name the run asked for
    (``model_name``, from ``model_source``), and the workflow's first step resolves it on the
    runner that picks the execution up (``stigmer.resolve_model``), whose result history keeps.

    Attributes:
        execution_id: the daemon's execution id (the workflow id is ``stigmer-exec-<id>``).
        agent_name: the agent's name, for events and logs.
        agent: the agent spec snapshot (``stigmer.resources.agent_snapshot``): instructions, tools,
            ``mcpServers`` inlined as dicts, workspace, maxSteps.
        message: the user's message.
        workspace: the directory the workspace tools are confined to (absolute path; empty: no workspace).
        max_steps: model calls allowed before the execution stops.
        tunables: timeouts and retries.
        model: an already resolved model, used as-is with no resolution step (executions started
            before resolution moved to the runner, tests, direct callers). None: the runner resolves.
        model_name: the model asked for (a name, alias or ``provider:model``); None: the runner's own
            ``llm.provider``/``llm.model``/``llm.base_url``.
        model_source: where ``model_name`` came from: ``run`` (``stigmer run --model``, the API's
            ``model``), ``agent`` (its ``spec.model``), or ``runner`` (no name: the runner's configuration).
    """

    execution_id: str
    agent_name: str
    agent: dict[str, Any]
    message: str
    workspace: str = ""
    max_steps: int = 20
    tunables: Tunables = field(default_factory=Tunables)
    model: ModelSpec | None = None
    model_name: str | None = None
    model_source: str = "runner"


@dataclass
class ModelRequest:
    """Input of ``stigmer.resolve_model``: which model an execution asked for, and what it needs of it."""

    execution_id: str
    agent_name: str
    name: str | None
    source: str
    needs_tools: bool


@dataclass
class ResolvedModel:
    """Result of ``stigmer.resolve_model``, pinned in history: the model every call of the execution uses.

    Attributes:
        model: the resolved model (no secret).
        source: ``run``, ``agent`` or ``runner``: which of the three won.
        origin: what set it: ``stigmer run --model``, ``agent NAME spec.model``, or the runner's own
            setting (``env STIGMER_LLM_MODEL``, ``flag --llm-model``, a file and line, a detection).
    """

    model: ModelSpec
    source: str
    origin: str


@dataclass
class ToolsetInput:
    """Which tools an execution may use (built-in tool sets and inlined MCP servers)."""

    execution_id: str
    toolsets: list[str]
    mcp_servers: list[dict[str, Any]]
    workspace: str


@dataclass
class ToolSchema:
    """One tool as the model sees it; ``server`` is the MCP server's name (empty for a built-in tool)."""

    name: str
    description: str
    parameters: dict[str, Any]
    server: str = ""
    remote_name: str = ""


@dataclass
class ModelCallInput:
    execution_id: str
    step: int
    model: ModelSpec
    messages: list[dict[str, Any]]
    tools: list[ToolSchema]
    stall_timeout: float = 120.0


@dataclass
class ToolCallInput:
    execution_id: str
    step: int
    call: dict[str, Any]
    tool: ToolSchema | None
    toolset: ToolsetInput


@dataclass
class ToolResult:
    """What a tool returned; an error is a result too (the model sees it and can react)."""

    call_id: str
    name: str
    content: str
    is_error: bool = False


@dataclass
class EventInput:
    execution_id: str
    type: str
    data: dict[str, Any]


@dataclass
class ExecutionResult:
    """The workflow's result: ``status`` is ``completed`` or ``cancelled``; failures fail the workflow."""

    status: str
    output: str
    steps: int
