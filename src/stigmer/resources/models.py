"""The resource kinds, as pydantic models: ``Agent`` and ``McpServer`` (``apiVersion: agentic.stigmer.ai/v1``).

Field names are snake_case in Python and camelCase in YAML (``maxSteps``, ``mcpServers``,
``enabledTools``), exactly as people write them; unknown fields are refused so a typo is caught
at apply time instead of being silently ignored at run time.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

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


class StdioTransport(_Model):
    """Run the MCP server as a child process speaking MCP on stdin/stdout.

    ``env`` is the whole environment the child gets (plus ``PATH`` and the SDK's harmless basics):
    the worker's own variables, its API keys above all, never reach it. A value may name one of
    the worker's variables as ``${NAME}``; it is filled in by the worker when the child starts,
    so the secret itself never enters the execution's history.
    """

    command: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None


class HttpTransport(_Model):
    """Reach the MCP server over streamable HTTP. Header values may use ``${NAME}`` like stdio ``env``."""

    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)


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


class AgentSpec(_Model):
    instructions: str = Field(min_length=1)
    model: str | None = None
    tools: list[Literal["workspace", "shell"]] = Field(default_factory=list)
    mcp_servers: list[str] = Field(default_factory=list)
    workspace: str | None = None
    max_steps: int = Field(default=DEFAULT_MAX_STEPS, ge=1, le=500)

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


Resource = Agent | McpServer
KINDS: dict[str, type[Agent] | type[McpServer]] = {"Agent": Agent, "McpServer": McpServer}
