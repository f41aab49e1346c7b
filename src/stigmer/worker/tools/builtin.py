"""The built-in tools' names and schemas: pure data, so workflow code can offer them without an activity.

``workspace``: ``list_files``, ``read_file``, ``write_file``; ``shell`` (opt-in): ``run_shell``.
The implementations (all I/O) live in ``workspace.py`` and run in activities. ``READ_ONLY`` names the
ones that only read (they run unasked under the default approval policy).
"""

from __future__ import annotations

from typing import Any

from ..params import ToolSchema

_PATH = {"type": "string", "description": "a path relative to the workspace root"}
SCHEMAS: dict[str, dict[str, Any]] = {
    "list_files": {"description": "List files and directories in the workspace (recursively, up to 500 entries).",
                   "parameters": {"type": "object", "properties": {"path": {**_PATH, "default": "."}}}},
    "read_file": {"description": "Read a text file from the workspace.",
                  "parameters": {"type": "object", "properties": {"path": _PATH}, "required": ["path"]}},
    "write_file": {"description": "Create or overwrite a text file in the workspace (parent directories are created).",
                   "parameters": {"type": "object", "properties": {"path": _PATH, "content": {"type": "string"}},
                                  "required": ["path", "content"]}},
    "run_shell": {"description": "Run a shell command (bash) in the workspace directory; returns exit code and output.",
                  "parameters": {"type": "object", "properties": {"command": {"type": "string"}},
                                 "required": ["command"]}},
}
READ_ONLY = frozenset({"list_files", "read_file"})
TOOLSETS: dict[str, tuple[str, ...]] = {"workspace": ("list_files", "read_file", "write_file"),
                                        "shell": ("run_shell",)}


def builtin_tools(toolsets: list[str]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(name, description, parameters)`` of every built-in tool in ``toolsets``, in a stable order."""
    return [(name, SCHEMAS[name]["description"], SCHEMAS[name]["parameters"])
            for toolset in toolsets for name in TOOLSETS.get(toolset, ())]


def builtin_schemas(toolsets: list[str]) -> list[ToolSchema]:
    """The built-in tools of ``toolsets`` as the model and the approval policy see them."""
    return [ToolSchema(name, desc, params, read_only=name in READ_ONLY)
            for name, desc, params in builtin_tools(toolsets)]
