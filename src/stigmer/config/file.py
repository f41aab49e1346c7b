"""Reading and writing ``$STIGMER_HOME/config.yaml``.

Two layouts are read: the flat one stigmer writes (``llm: {provider: ollama}``) and the nested
one existing users have (``backend: {local: {llm: {...}, temporal: {...}}}``); a flat value wins
over a nested one. Writes go to a temporary file that is renamed over the original, mode 0600,
so a failed write never leaves a half-written file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .._fs import write_atomic
from ..errors import ConfigError
from ._suggest import did_you_mean
from .keys import KEYS

_NESTED = ("backend", "local")


@dataclass
class FileValues:
    """What a config file holds: raw values by dotted key, with line numbers for messages."""

    path: Path
    values: dict[str, Any] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def where(self, key: str) -> str:
        line = self.lines.get(key)
        return f"{self.path}:{line}" if line else str(self.path)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}", hint="fix its permissions or remove it") from None


def _parse_yaml(path: Path, text: str) -> tuple[Any, yaml.Node | None]:
    try:
        return yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            f"{where}: config file is not valid YAML ({problem})",
            hint=f"fix the file, or move it away and run `stigmer config set` again (file: {path})",
        ) from None


def _node_lines(node: yaml.Node | None, prefix: str = "") -> dict[str, int]:
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            name = f"{prefix}{key_node.value}"
            lines[name] = key_node.start_mark.line + 1
            lines.update(_node_lines(value_node, name + "."))
    return lines


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name not in KEYS:
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def load(path: Path) -> FileValues:
    """Read the config file; a missing file is an empty configuration."""
    result = FileValues(path=path)
    text = _read_text(path)
    if text is None:
        return result
    data, node = _parse_yaml(path, text)
    if data is None:
        return result
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config file must be a mapping of settings, got {type(data).__name__}",
                          hint="see `stigmer config show` for the keys")
    lines = _node_lines(node)
    nested = data.get(_NESTED[0], {})
    nested = nested.get(_NESTED[1], {}) if isinstance(nested, dict) else {}
    for source, prefix in ((nested if isinstance(nested, dict) else {}, "backend.local."), (data, "")):
        for key, value in _flatten({k: v for k, v in source.items() if k != "aliases" and k != "backend"}).items():
            _accept(result, key, value, lines.get(prefix + key))
    _read_aliases(result, data.get("aliases"))
    return result


def _accept(result: FileValues, key: str, value: Any, line: int | None) -> None:
    if key == "temporal.tls" and isinstance(value, bool):
        key = "temporal.tls.enabled"
    if key not in KEYS:
        where = f"{result.path}:{line}" if line else str(result.path)
        result.warnings.append(f"{where}: unknown setting {key!r}{did_you_mean(key, KEYS)} (ignored)")
        return
    result.values[key] = value
    if line:
        result.lines[key] = line


def _read_aliases(result: FileValues, aliases: Any) -> None:
    if aliases is None:
        return
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise ConfigError(f"{result.path}: 'aliases' must map names to model ids, e.g. `aliases: {{fast: llama3.2}}`")
    result.aliases = {str(k): v for k, v in aliases.items()}


def _load_raw(path: Path) -> dict[str, Any]:
    text = _read_text(path)
    if text is None:
        return {}
    data, _ = _parse_yaml(path, text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config file must be a mapping of settings; not changing it")
    return data


def set_value(path: Path, key: str, value: Any) -> None:
    """Set ``key`` (flat layout) keeping every other setting; the file ends up mode 0600."""
    data = _load_raw(path)
    node = data
    *parents, last = key.split(".")
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[last] = list(value) if isinstance(value, tuple) else value
    _write(path, data)


def unset_value(path: Path, key: str) -> bool:
    """Remove ``key`` from the flat and the nested layout; returns whether anything was removed."""
    data = _load_raw(path)
    removed = False
    for root in (data, data.get("backend", {}).get("local", {}) if isinstance(data.get("backend"), dict) else {}):
        removed = _remove(root, key.split(".")) or removed
    if removed:
        _write(path, data)
    return removed


def _remove(node: Any, parts: list[str]) -> bool:
    if not isinstance(node, dict) or parts[0] not in node:
        return False
    if len(parts) == 1:
        del node[parts[0]]
        return True
    removed = _remove(node[parts[0]], parts[1:])
    if removed and node[parts[0]] == {}:
        del node[parts[0]]
    return removed


def _write(path: Path, data: dict[str, Any]) -> None:
    try:
        write_atomic(path, yaml.safe_dump(data, sort_keys=False, default_flow_style=False), 0o600, fsync=True)
    except OSError as exc:
        raise ConfigError(f"cannot write config file {path}: {exc.strerror or exc}",
                          hint="free disk space or fix the permissions of STIGMER_HOME; the file was not changed"
                          ) from None
