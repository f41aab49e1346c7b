"""``ModelSpec``: exactly what will be called, pinned into each execution. Never holds a secret.

Side-effect free and dependency free: workflow code imports it inside Temporal's sandbox.
"""

# No ``from __future__ import annotations``: see ``stigmer.worker.params`` (the SDK converts this type often).
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model.

    Attributes:
        provider: registry name (``anthropic``, ``ollama``, ``openai``, ``llamacpp``, or a plugin).
        model: the provider's full model id (or a GGUF path for llamacpp).
        base_url: where the provider's API is (None: the provider's public default).
        params: provider-native parameters (``num_predict`` for Ollama, ``max_tokens`` for others, ...).
        reason: why this name resolved this way (alias, prefix, inferred from family, default).
        tool_calls: how the model calls tools, pinned when a runner resolves it for an agent with tools:
            ``native``, ``emulated`` (schema-constrained JSON, see ``worker/_toolemu.py``) or ``none``;
            empty when not decided (the runner decides at the call, as ``auto``).
    """

    provider: str
    model: str
    base_url: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    tool_calls: str = ""

    @property
    def id(self) -> str:
        return f"{self.provider}:{self.model}"

    def to_dict(self) -> dict[str, Any]:
        """As a plain dict; ``tool_calls`` only when decided, so a spec that never had one reads as before."""
        data = asdict(self)
        if not self.tool_calls:
            del data["tool_calls"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        return cls(provider=data["provider"], model=data["model"], base_url=data.get("base_url"),
                   params=dict(data.get("params") or {}), reason=data.get("reason", ""),
                   tool_calls=data.get("tool_calls", ""))
