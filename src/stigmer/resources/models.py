"""The resource kinds, as pydantic models: ``Agent`` and ``McpServer`` (``apiVersion: agentic.stigmer.ai/v1``).

Field names are snake_case in Python and camelCase in YAML (``maxSteps``, ``mcpServers``,
``enabledTools``), exactly as people write them; unknown fields are refused so a typo is caught
at apply time instead of being silently ignored at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WrapValidator, field_validator, model_validator
from pydantic.alias_generators import to_camel

from ..config.grants import ENV_NAME, GrantError, refuse_own_secret, value_references
from ..errors import UserError

API_VERSION: Final = "agentic.stigmer.ai/v1"
BUILTIN_TOOLSETS = ("workspace", "shell")
NAME_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$"
DEFAULT_MAX_STEPS = 20


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    def dump(self) -> dict[str, Any]:
        """The document as a person would write it (camelCase, unset fields left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Metadata(_Model):
    """``metadata``: the resource's name (lowercase, digits, ``-``, ``_``, ``.``; up to 63 characters)."""

    name: str = Field(pattern=NAME_PATTERN)
    labels: dict[str, str] = Field(default_factory=dict)


class SecretRef(_Model):
    """``{secret: NAME}``: an entry of the secret store (``stigmer secret set NAME``)."""

    secret: str


class ValueFrom(_Model):
    """``{valueFrom: {secret: NAME}}``: a value filled in by the runner from its secret store, never stored here."""

    value_from: SecretRef


_VALUE_SHAPE = "expected a string (it may use ${NAME}) or {valueFrom: {secret: NAME}}"


def _env_value(value: Any, handler: Callable[[Any], Any]) -> Any:
    """One ``env``/``headers`` value: its shape, then its references (never one of stigmer's own secrets)."""
    if isinstance(value, Mapping) and set(value) != {"valueFrom"}:
        raise ValueError(f"{_VALUE_SHAPE}; a mapping must have exactly one key, valueFrom")
    try:
        parsed = handler(value)
    except ValidationError:
        if isinstance(value, (int, float, bool)):
            raise ValueError(f"{_VALUE_SHAPE}, got {value!r}: quote it (\"{value}\")") from None
        raise ValueError(_VALUE_SHAPE) from None
    if isinstance(parsed, ValueFrom) and not ENV_NAME.match(parsed.value_from.secret):
        raise ValueError(f"valueFrom.secret: {parsed.value_from.secret!r} is not a variable name "
                         "(letters, digits and _, not starting with a digit)")
    raw = parsed.dump() if isinstance(parsed, ValueFrom) else parsed
    for ref in value_references("", raw):
        try:
            refuse_own_secret(ref)
        except GrantError:
            raise ValueError(f"{ref.written} is one of stigmer's own secrets (LLM keys, stigmer's tokens, the "
                             "Temporal key): MCP servers can never be given it; store the server's own credential "
                             "with `stigmer secret set NAME` and reference that") from None
    return parsed


EnvValue = Annotated[str | ValueFrom, WrapValidator(_env_value)]
"""A plain string (``${NAME}`` references allowed) or ``{valueFrom: {secret: NAME}}``."""


class StdioTransport(_Model):
    """Run the MCP server as a child process speaking MCP on stdin/stdout.

    ``env`` is the whole environment the child gets (plus ``PATH`` and the SDK's harmless basics):
    the worker's own variables, its API keys above all, never reach it. A value may reference a
    granted variable as ``${NAME}`` or a secret-store entry as ``{valueFrom: {secret: NAME}}``; the
    runner fills it in when the child starts, so the secret itself never enters the execution's
    history (see ``stigmer.config.grants``). Stigmer's own secrets can never be referenced.
    """

    command: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, EnvValue] = Field(default_factory=dict)
    cwd: str | None = None


class HttpTransport(_Model):
    """Reach the MCP server over streamable HTTP. Header values take references like stdio ``env``."""

    url: str = Field(pattern=r"^https?://")
    headers: dict[str, EnvValue] = Field(default_factory=dict)


class McpServerSpec(_Model):
    stdio: StdioTransport | None = None
    http: HttpTransport | None = None
    enabled_tools: list[str] | None = None
    timeout: float = Field(default=60.0, gt=0, le=3600, description="seconds one tool call may take")

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerSpec:
        if (self.stdio is None) == (self.http is None):
            raise ValueError("give exactly one of 'stdio' (a command to run) or 'http' (a URL)")
        return self


class Approvals(_Model):
    """``spec.approvals``: which tool calls wait for a person (docs/SESSIONS.md, "Approvals inside a turn").

    A tool matching ``require`` asks; else one matching ``auto`` runs; else ``mode`` decides: ``default``
    runs read-only tools (``list_files``, ``read_file``, MCP tools annotated ``readOnlyHint``) unasked and
    asks for the rest, ``never`` runs everything unasked, ``always`` asks for everything. Globs are
    ``fnmatch`` patterns over tool names (``github_*``).
    """

    mode: Literal["default", "never", "always"] = "default"
    require: list[str] = Field(default_factory=list)
    auto: list[str] = Field(default_factory=list)

    @field_validator("require", "auto")
    @classmethod
    def _no_blank_globs(cls, value: list[str]) -> list[str]:
        if any(not glob.strip() for glob in value):
            raise ValueError("an empty pattern matches no tool: remove it or write a tool name or glob (github_*)")
        return value


class Budget(_Model):
    """``spec.budget``: what one execution (one turn) may use before it stops, or asks a person to go on."""

    max_tokens: int | None = Field(default=None, ge=1, description="input + output tokens of one execution")
    max_cost_usd: float | None = Field(default=None, gt=0, description="USD of one execution (cloud models)")
    on_exceeded: Literal["fail", "ask"] = "fail"

    @model_validator(mode="after")
    def _some_limit(self) -> Budget:
        if self.max_tokens is None and self.max_cost_usd is None:
            raise ValueError("give maxTokens, maxCostUsd or both (a budget without a limit bounds nothing)")
        return self


class AgentSpec(_Model):
    instructions: str = Field(min_length=1)
    model: str | None = None
    tools: list[Literal["workspace", "shell"]] = Field(default_factory=list)
    mcp_servers: list[str] = Field(default_factory=list)
    workspace: str | None = None
    max_steps: int = Field(default=DEFAULT_MAX_STEPS, ge=1, le=500)
    approvals: Approvals | None = None
    approval_timeout: str | None = None
    budget: Budget | None = None
    tool_calls: Literal["auto", "native", "emulated", "none"] | None = None
    """How the model calls this agent's tools (unset: ``auto``, the runner's ``llm.tool_calls`` then the model's own
    capability); ``emulated`` forces schema-constrained JSON calls, ``none`` gives the model no tools."""

    @field_validator("approval_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        """A duration as people type it (``90s``, ``15m``, ``1h``); kept as written, checked here once."""
        if value is None:
            return None
        from ..config.durations import parse_duration

        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise ValueError(f"{exc}; leave it out to wait for ever") from None
        if seconds <= 0:
            raise ValueError("must be more than 0 (leave it out to wait for ever)")
        return str(value)

    @field_validator("instructions")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("instructions are empty: say what the agent is for")
        return value

    @field_validator("workspace")
    @classmethod
    def _safe_workspace(cls, value: str | None) -> str | None:
        """Refuse at apply a workspace no run may use (``/``, ``..`` out of workspaces/, system directories).

        The rules are :mod:`stigmer.resources.workspace`'s, with this process's homes. The directory need
        not exist yet; the daemon checks again, existence included, when a run starts.
        """
        if value is not None:
            from .workspace import default_homes, workspace_path

            stigmer_home, user_home = default_homes()
            workspace_path(value, stigmer_home=stigmer_home, user_home=user_home, must_exist=False)
        return value


class Agent(_Model):
    api_version: Literal["agentic.stigmer.ai/v1"] = API_VERSION
    kind: Literal["Agent"] = "Agent"
    metadata: Metadata
    spec: AgentSpec

    @property
    def name(self) -> str:
        return self.metadata.name


class McpServer(_Model):
    api_version: Literal["agentic.stigmer.ai/v1"] = API_VERSION
    kind: Literal["McpServer"] = "McpServer"
    metadata: Metadata
    spec: McpServerSpec

    @property
    def name(self) -> str:
        return self.metadata.name

    @classmethod
    def from_stored(cls, document: Mapping[str, Any]) -> McpServer:
        """A stored document, as a UserError if today's rules refuse it (stored before they existed).

        For example a reference to one of stigmer's own secrets applied by an older version: such a
        server must not start, and a run that uses it must say why instead of failing with a 500.
        """
        try:
            return cls.model_validate(document)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            name = (document.get("metadata") or {}).get("name", "?")
            raise UserError(f"MCP server {name!r} as stored is no longer valid: {where}: "
                            f"{str(first['msg']).removeprefix('Value error, ')}",
                            hint="fix it and apply it again with `stigmer apply -f FILE`") from None


Resource = Agent | McpServer
KINDS: dict[str, type[Agent] | type[McpServer]] = {"Agent": Agent, "McpServer": McpServer}
