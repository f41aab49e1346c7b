"""Reading and writing ``$STIGMER_HOME/config.yaml``.

Two layouts are read: the flat one stigmer writes (``llm: {provider: ollama}``) and the nested
one existing users have (``backend: {local: {llm: {...}, temporal: {...}}}``); a flat value wins
over a nested one. Writes go to a temporary file that is renamed over the original, mode 0600,
so a failed write never leaves a half-written file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .._fs import write_atomic
from ..errors import ConfigError
from ._suggest import did_you_mean
from .keys import KEYS

_NESTED = ("backend", "local")
_OWN_SECTIONS = ("aliases", "pricing", "backend")
"""Top-level keys read by their own functions, not as dotted settings."""
PRICE_FIELDS = ("input", "output", "cached", "cache_write")
"""The fields of a price under ``pricing:`` (USD per million tokens); input and output are required."""
_PRICING_EXAMPLE = "pricing: {claude-sonnet-5-5: {input: 3.0, output: 15.0, cached: 0.3}}"


@dataclass
class FileValues:
    """What a config file holds: raw values by dotted key, with line numbers for messages."""

    path: Path
    values: dict[str, Any] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    pricing: dict[str, dict[str, float]] = field(default_factory=dict)
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
        own = _OWN_SECTIONS if source is data else ("aliases", "backend")
        for key, value in _flatten({k: v for k, v in source.items() if k not in own}).items():
            _accept(result, key, value, lines.get(prefix + key))
    _read_aliases(result, data.get("aliases"))
    _read_pricing(result, data.get("pricing"), lines)
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


def _read_pricing(result: FileValues, pricing: Any, lines: dict[str, int]) -> None:
    """``pricing:``: model id (or ``provider:model``) -> USD per million tokens; a mistake names file, key, field."""
    if pricing is None:
        return

    def fail(key: str, problem: str) -> ConfigError:
        line = lines.get(key) or lines.get("pricing")
        where = f"{result.path}:{line}" if line else str(result.path)
        return ConfigError(f"{where}: {key}: {problem}",
                           hint=f"prices are USD per million tokens, e.g. `{_PRICING_EXAMPLE}` "
                                f"(fields: {', '.join(PRICE_FIELDS)}; input and output are required)")

    if not isinstance(pricing, dict):
        raise fail("pricing", f"must map model ids to prices, got {type(pricing).__name__}")
    for model, entry in pricing.items():
        key = f"pricing.{model}"
        if not isinstance(model, str) or not model.strip():
            raise fail(key, "the key must be a model id (claude-sonnet-5-5) or provider:model (openai:gpt-5-mini)")
        if not isinstance(entry, dict):
            raise fail(key, f"must be a mapping of {', '.join(PRICE_FIELDS)}, got {type(entry).__name__}")
        for name in entry:
            if name not in PRICE_FIELDS:
                raise fail(f"{key}.{name}", f"unknown field{did_you_mean(str(name), PRICE_FIELDS)}")
        for name in ("input", "output"):
            if name not in entry:
                raise fail(key, f"{name} is missing (USD per million {name} tokens)")
        result.pricing[model.strip()] = {name: _price_value(fail, f"{key}.{name}", value)
                                         for name, value in entry.items()}


def _price_value(fail: Any, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(key, f"must be a number of USD per million tokens, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise fail(key, f"must be 0 or more USD per million tokens, got {value!r}")
    return float(value)


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
