"""The dataclasses that cross the workflow/activity boundary (and so are recorded in history).

Plain data only, no secrets, no side effects on import: the workflow sandbox imports this module.
Messages are plain dicts (``{"role": "system"|"user"|"assistant"|"tool", "content": ...}``; an
assistant message may hold ``tool_calls: [{"id", "name", "args"}]``; a tool message holds
``tool_call_id``, ``name`` and ``is_error``), so histories stay readable and replayable without
LangChain.
"""

# No ``from __future__ import annotations``: the SDK reads these types with ``get_type_hints`` on every payload it
# converts, and string annotations are parsed and evaluated again each time (~0.3 ms of a model call's input).
from dataclasses import dataclass, field
from typing import Any

from ..providers.spec import ModelSpec

WORKFLOW_NAME = "StigmerAgent"
WORKFLOW_ID_PREFIX = "stigmer-exec-"
SESSION_WORKFLOW_NAME = "StigmerSession"
SESSION_ID_PREFIX = "stigmer-session-"

# The handlers clients call (docs/SESSIONS.md). Updates: a turn of a session, a decision on an approval (both
# workflow types). Signals: cancel one turn, close a session (``cancel`` stops a plain run). Queries: ``state`` and
# ``turn`` of a session, ``status`` of a plain run.
SEND_MESSAGE = "send_message"
DECIDE_APPROVAL = "decide_approval"
CANCEL_TURN = "cancel_turn"
CLOSE = "close"
CANCEL = "cancel"
STATE = "state"
TURN = "turn"
STATUS = "status"

MAX_QUEUED = 8
"""Turns a session accepts while another runs; the next ``send_message`` is rejected."""
CAN_AFTER_TURNS = 100
"""A session continues as new after this many turns in one run (sooner when Temporal suggests it)."""

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


def session_workflow_id(session_id: str) -> str:
    """The Temporal workflow id of a session: ``stigmer-session-<session id>``."""
    return f"{SESSION_ID_PREFIX}{session_id}"


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
    max_payload_bytes: int = 1_800_000
    """Largest model-call input (the conversation and the tool schemas, as JSON). Temporal refuses a payload
    over 2 MiB by default and would retry the workflow task for ever, so past this the execution fails at once
    with a message naming the cause instead of hanging."""
    context_tokens: int = 0
    """The model's context window in tokens (0: what the provider layer knows of the model, else 128,000). When a
    conversation outgrows it, the oldest tool outputs are dropped first, then the oldest turns are summarised by
    the same model (``context_trimmed`` / ``context_summarised`` events); see docs/LONG_RUNS.md."""
    can_after_steps: int = 250
    """A plain run continues as new after this many model calls in one run (sooner when Temporal suggests it),
    carrying its conversation by reference: its history stays small whatever the number of steps."""


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
        max_tokens_total: ``stigmer run --max-tokens-total``: a token budget for this execution, which wins
            over the agent's ``spec.budget.maxTokens`` (None: the agent's, if any).
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
    max_tokens_total: int | None = None
    by_ref: bool = False
    """Conversations go by reference (docs/LONG_RUNS.md): true for every execution started since they do; absent
    (false) in the inputs of executions started before, which replay and go on as they ran."""
    carry: dict[str, Any] | None = None
    """Set by a continue-as-new only: the running execution's state (conversation reference, step, usage,
    loop counts, tools always allowed); the new run goes on from there, with no new ``model_resolved``."""
    final_in_call: bool = False
    """The model call that gives the final answer posts the execution's ``completed`` event itself
    (``ModelCallInput.final``), where the workflow used to post it from a local activity: true for every execution
    started since; absent (false) in the inputs of executions started before, which replay as they ran."""


@dataclass
class TurnRequest:
    """``send_message``'s argument: one turn of a session (the Update id is ``execution_id``).

    Attributes:
        execution_id: the turn's execution id (the daemon's; its events go there).
        message: the person's message.
        model: a model to switch to from this turn on (a name, alias or ``provider:model``); None: the pinned one.
        max_tokens_total: a token budget for this turn (as ``ExecutionInput.max_tokens_total``).
    """

    execution_id: str
    message: str
    model: str | None = None
    max_tokens_total: int | None = None


@dataclass
class SessionInput:
    """What a session workflow starts with, and what a continue-as-new carries over.

    The first fields are as :class:`ExecutionInput`'s. ``model`` is the pinned model (None until the first turn
    resolves it). ``messages`` (the conversation), ``usage`` (session totals), ``turns`` (turns run),
    ``always_allow`` (tools the person always allowed), ``queued`` (turns accepted, not yet run) and ``recent``
    (the results of the last turns, for the ``turn`` query) are empty at start and carried by a continue-as-new.
    ``can_after_turns`` bounds the turns of one run (tests lower it).
    """

    session_id: str
    agent_name: str
    agent: dict[str, Any]
    workspace: str = ""
    max_steps: int = 20
    tunables: Tunables = field(default_factory=Tunables)
    model: ModelSpec | None = None
    model_name: str | None = None
    model_source: str = "runner"
    messages: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    turns: int = 0
    always_allow: list[str] = field(default_factory=list)
    queued: list[TurnRequest] = field(default_factory=list)
    recent: dict[str, dict[str, Any]] = field(default_factory=dict)
    can_after_turns: int = CAN_AFTER_TURNS
    by_ref: bool = False
    """As ``ExecutionInput.by_ref``."""
    conversation: dict[str, Any] | None = None
    """The conversation carried by reference (``_conversation.Conversation.carry``); ``messages`` is then empty."""


@dataclass
class SessionResult:
    """A closed session's result: how many turns it ran and what they used."""

    turns: int
    usage: dict[str, Any] | None = None


@dataclass
class ApprovalDecision:
    """``decide_approval``'s argument: a person's answer to one ``approval_requested``.

    Attributes:
        approval_id: the approval (``<execution id>.<step>.<call index>``, or ``.budget`` for a budget).
        args_hash: the hash of the arguments the person saw (``_approval.args_hash``); another one is refused.
        approve: run the call (continue past the budget) or not.
        reason: why (the model sees it when the call is rejected).
        always: approve this tool for the rest of the session (of the run, for a plain run).
        by: who decided (recorded in history and in the ``approval_decided`` event).
    """

    approval_id: str
    args_hash: str
    approve: bool
    reason: str = ""
    always: bool = False
    by: str = ""


@dataclass
class ModelRequest:
    """Input of ``stigmer.resolve_model``: which model an execution asked for, and what it needs of it."""

    execution_id: str
    agent_name: str
    name: str | None
    source: str
    needs_tools: bool
    tool_calls: str = "auto"
    """The agent's ``spec.toolCalls``: ``auto``, or a mode that overrides the runner's (``providers.toolmode``)."""


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
    tool_calls_why: str = ""
    """Why the model's ``tool_calls`` mode was chosen (empty when the agent has no tools)."""


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
    read_only: bool = False
    """The tool only reads (built-in ``list_files``/``read_file``; an MCP tool annotated ``readOnlyHint: true``)."""


@dataclass
class ModelCallInput:
    execution_id: str
    step: int
    model: ModelSpec
    messages: list[dict[str, Any]]
    tools: list[ToolSchema]
    stall_timeout: float = 120.0
    conversation: str | None = None
    """The transcript stored by the previous call (``messages`` come after it); None: ``messages`` are all."""
    by_ref: bool = False
    """Store the transcript and return its reference as the reply's ``conversation`` (``ExecutionInput.by_ref``)."""
    context_tokens: int = 0
    """``Tunables.context_tokens``."""
    toolsets: list[str] | None = None
    """Set when every tool is built in (no MCP server): ``tools`` is empty and the runner makes the schemas of these
    toolsets itself (``tools.builtin.builtin_schemas``, static data), so history does not carry them on every call."""
    final: dict[str, Any] | None = None
    """A plain run's call (``ExecutionInput.final_in_call``): ``{"usage": the execution's usage before this call}``.
    When the reply is a final answer (no tool calls), the call posts the execution's ``completed`` event after its
    ``message`` (output, steps = ``step``, usage with this call's added) and says so in the reply
    (``final_posted``), and, by reference, stores no transcript: no call follows. The daemon stores a terminal event
    only once Temporal's record agrees with it (``daemon/_verify.py``), so a retried call cannot leave a wrong one."""


@dataclass
class ToolCallInput:
    execution_id: str
    step: int
    call: dict[str, Any]
    tool: ToolSchema | None
    toolset: ToolsetInput
    by_ref: bool = False
    """Store an output over ``INLINE_CHARS`` in the blob store and return a reference with a preview."""


@dataclass
class ToolResult:
    """What a tool returned; an error is a result too (the model sees it and can react)."""

    call_id: str
    name: str
    content: str
    is_error: bool = False
    content_ref: str = ""
    """Where the whole output is (a blob key in the execution's namespace); ``content`` is then a preview."""
    chars: int = 0
    """Characters of the whole output when ``content_ref`` is set."""


@dataclass
class EventInput:
    execution_id: str
    type: str
    data: dict[str, Any]


@dataclass
class ExecutionResult:
    """The workflow's result: ``status`` is ``completed`` or ``cancelled``; failures fail the workflow.

    ``usage`` is what the execution's model calls used (``providers.usage``; None in histories from before).
    """

    status: str
    output: str
    steps: int
    usage: dict[str, Any] | None = None
